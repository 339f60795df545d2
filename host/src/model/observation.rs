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

impl Observation {
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
