//! Builders for policy inputs in native tests.
//!
//! ```
//! use daedalus_policy_sdk::testing::{input, observation};
//! let mut obs = observation(0, 4);
//! obs.input_records_per_sec = Some(1000.0);
//! let inp = input(obs, 1, 10);
//! assert_eq!(inp.current.parallelism, 4);
//! ```

use crate::{Bounds, DecisionInput, Observation, OperatorSample, RescaleStatus, WorkerSample};

/// An observation at `at_ms` with job parallelism `parallelism` and no metrics.
pub fn observation(at_ms: u64, parallelism: u32) -> Observation {
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

/// `n` workers, all at CPU utilization `cpu` and throughput `records_per_sec` each.
pub fn workers(n: u32, cpu: f64, records_per_sec: f64) -> Vec<WorkerSample> {
    (0..n)
        .map(|i| WorkerSample {
            worker_id: format!("w{i}"),
            cpu_utilization: Some(cpu),
            throughput_records_per_sec: Some(records_per_sec),
        })
        .collect()
}

/// An operator with the given id, upstream ids and parallelism, and no metrics.
pub fn operator(id: &str, upstream: &[&str], parallelism: u32) -> OperatorSample {
    OperatorSample {
        operator_id: id.to_string(),
        upstream: upstream.iter().map(|s| s.to_string()).collect(),
        parallelism,
        max_parallelism: 0,
        busy_ratio: None,
        backpressure_ratio: None,
        records_in_per_sec: None,
        records_out_per_sec: None,
    }
}

/// A decision input for job `job` at `current.at_ms`, with no history, params or state.
pub fn input(current: Observation, min: u32, max: u32) -> DecisionInput {
    DecisionInput {
        job_id: "job".to_string(),
        now_ms: current.at_ms,
        current,
        history: Vec::new(),
        bounds: Bounds {
            min_parallelism: min,
            max_parallelism: max,
        },
        latency_objective_ms: None,
        rescale: RescaleStatus {
            in_progress: false,
            started_ms: None,
            last_finished_ms: None,
            count: 0,
        },
        previous: None,
        params: Vec::new(),
        state: None,
    }
}

/// Sets parameters on an input.
pub fn with_params(mut input: DecisionInput, params: &[(&str, &str)]) -> DecisionInput {
    input.params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    input
}
