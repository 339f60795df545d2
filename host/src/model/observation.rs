//! What the host observed about a job (see `wit/types.wit` for the units).

use serde::{Deserialize, Serialize};

/// One worker at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSample {
    /// Stable worker identifier.
    pub worker_id: String,
    /// CPU utilization, fraction of the worker's allotted CPU.
    pub cpu_utilization: Option<f64>,
    /// Records processed by this worker, records/s.
    pub throughput_records_per_sec: Option<f64>,
}

/// One operator at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSample {
    /// Stable operator identifier.
    pub operator_id: String,
    /// Operators feeding this one; empty for a source.
    pub upstream: Vec<String>,
    /// Current number of parallel instances.
    pub parallelism: u32,
    /// Max parallelism (key groups) or partition count; 0 when unknown.
    pub max_parallelism: u32,
    /// Busy-time fraction, averaged over instances.
    pub busy_ratio: Option<f64>,
    /// Back-pressured-time fraction, averaged over instances.
    pub backpressure_ratio: Option<f64>,
    /// Records in, summed over instances, records/s.
    pub records_in_per_sec: Option<f64>,
    /// Records out, summed over instances, records/s.
    pub records_out_per_sec: Option<f64>,
}

/// Everything observed about a job at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// Sample time, ms since the epoch.
    pub at_ms: u64,
    /// Job-level parallelism at that instant.
    pub parallelism: u32,
    /// Arrival rate at the job's input, records/s.
    pub input_records_per_sec: Option<f64>,
    /// Consumption rate of the job, records/s.
    pub throughput_records_per_sec: Option<f64>,
    /// Consumer lag, records.
    pub lag_records: Option<f64>,
    /// Per-worker samples.
    pub workers: Vec<WorkerSample>,
    /// Per-operator samples.
    pub operators: Vec<OperatorSample>,
}

/// A measured value kept only when it is finite and not negative: a rate, count or fraction
/// from an engine is never `NaN`, infinite (a sum that overflowed) or below zero.
fn measured(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite() && *x >= 0.0)
}

impl Observation {
    /// The observation with every value no engine can mean (`NaN`, infinite, negative) made
    /// unknown: the host's one check at the boundary, whatever connector collected it, so such
    /// a value reaches neither a policy, a gauge nor the store.
    pub fn sanitized(mut self) -> Self {
        self.input_records_per_sec = measured(self.input_records_per_sec);
        self.throughput_records_per_sec = measured(self.throughput_records_per_sec);
        self.lag_records = measured(self.lag_records);
        for w in &mut self.workers {
            w.cpu_utilization = measured(w.cpu_utilization);
            w.throughput_records_per_sec = measured(w.throughput_records_per_sec);
        }
        for o in &mut self.operators {
            o.busy_ratio = measured(o.busy_ratio);
            o.backpressure_ratio = measured(o.backpressure_ratio);
            o.records_in_per_sec = measured(o.records_in_per_sec);
            o.records_out_per_sec = measured(o.records_out_per_sec);
        }
        self
    }

    /// An observation with no metrics, for tests and for engines that report only parallelism.
    pub fn empty(at_ms: u64, parallelism: u32) -> Self {
        Observation {
            at_ms,
            parallelism,
            input_records_per_sec: None,
            throughput_records_per_sec: None,
            lag_records: None,
            workers: Vec::new(),
            operators: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_no_engine_can_mean_become_unknown() {
        let mut o = Observation::empty(1, 2);
        o.input_records_per_sec = Some(f64::INFINITY);
        o.throughput_records_per_sec = Some(f64::NAN);
        o.lag_records = Some(-3.0);
        o.workers.push(WorkerSample {
            worker_id: "w".into(),
            cpu_utilization: Some(0.5),
            throughput_records_per_sec: Some(f64::NEG_INFINITY),
        });
        o.operators.push(OperatorSample {
            operator_id: "op".into(),
            upstream: Vec::new(),
            parallelism: 2,
            max_parallelism: 0,
            busy_ratio: Some(f64::NAN),
            backpressure_ratio: Some(0.0),
            records_in_per_sec: Some(1e308 * 10.0),
            records_out_per_sec: Some(7.0),
        });
        let s = o.sanitized();
        assert_eq!(
            (
                s.input_records_per_sec,
                s.throughput_records_per_sec,
                s.lag_records
            ),
            (None, None, None)
        );
        assert_eq!(s.workers[0].cpu_utilization, Some(0.5));
        assert_eq!(s.workers[0].throughput_records_per_sec, None);
        let op = &s.operators[0];
        assert_eq!(
            (
                op.busy_ratio,
                op.backpressure_ratio,
                op.records_in_per_sec,
                op.records_out_per_sec
            ),
            (None, Some(0.0), None, Some(7.0))
        );
    }
}
