//! Shared helpers of the integration tests and benchmarks: where the built components are,
//! a shared engine, input builders in host terms, and the bridge to the SDK's types.
//!
//! The components come from `cargo xtask build-policies`; a missing one fails the test with
//! the command to run.
#![allow(
    clippy::missing_panics_doc,
    reason = "test helpers panic with a message by design"
)]

pub mod fake_http;
pub mod services;

use daedalus_host::model::{Bounds, DecisionInput, Observation, OperatorSample, WorkerSample};
use daedalus_host::policy::{EngineOptions, PolicyEngine};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives one level below the root")
        .to_path_buf()
}

fn artifact(rel: &str) -> PathBuf {
    let path = workspace_root().join("target/policies").join(rel);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask build-policies` first (the README's test command does)",
        path.display()
    );
    path
}

/// A built baseline policy, e.g. `policy_path("hpa")`.
pub fn policy_path(name: &str) -> PathBuf {
    artifact(&format!("{name}.wasm"))
}

/// A built sandbox-test guest, e.g. `guest_path("hostile")`.
pub fn guest_path(name: &str) -> PathBuf {
    artifact(&format!("testing/{name}.wasm"))
}

/// The bytes of a built component.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// One engine shared by the tests of a binary, with a precompiled cache under `target/`, so
/// each component is compiled once per machine rather than once per test.
pub fn engine() -> Arc<PolicyEngine> {
    static ENGINE: OnceLock<Arc<PolicyEngine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            PolicyEngine::new(EngineOptions {
                cache_dir: Some(workspace_root().join("target/test-precompiled")),
                ..EngineOptions::default()
            })
            .expect("the engine starts")
        })
        .clone()
}

/// Appends a custom section to a component: same behaviour, different digest (a "v2" build).
pub fn with_custom_section(bytes: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// Converts a host value into the SDK's type of the same WIT shape (both derive serde with
/// the WIT's field names), so native policies and components see identical inputs.
pub fn to_sdk<T: serde::de::DeserializeOwned>(value: &impl serde::Serialize) -> T {
    serde_json::from_value(serde_json::to_value(value).expect("serializable"))
        .expect("host and SDK types have the same shape")
}

/// A worker-level sample: `n` workers at `cpu` with a little deterministic spread.
pub fn observation(at_s: u64, parallelism: u32, rate: f64, cpu: f64) -> Observation {
    let workers = (0..parallelism)
        .map(|i| WorkerSample {
            worker_id: format!("tm-{i}"),
            cpu_utilization: Some((cpu + 0.01 * f64::from(i % 3)).min(1.0)),
            throughput_records_per_sec: Some(rate / f64::from(parallelism.max(1))),
        })
        .collect();
    let op = |id: &str, up: &[&str], busy: f64, rin: f64, rout: f64| OperatorSample {
        operator_id: id.to_string(),
        upstream: up.iter().map(|s| s.to_string()).collect(),
        parallelism,
        max_parallelism: 128,
        busy_ratio: Some(busy),
        backpressure_ratio: Some(0.0),
        records_in_per_sec: Some(rin),
        records_out_per_sec: Some(rout),
    };
    Observation {
        at_ms: at_s * 1000,
        parallelism,
        input_records_per_sec: Some(rate),
        throughput_records_per_sec: Some(rate.min(1000.0 * f64::from(parallelism))),
        lag_records: Some(0.0),
        workers,
        operators: vec![
            op("source", &[], (cpu * 0.3).min(1.0), rate, rate),
            op("window", &["source"], cpu.min(1.0), rate, rate * 0.5),
            op("sink", &["window"], (cpu * 0.2).min(1.0), rate * 0.5, 0.0),
        ],
    }
}

/// An input with a history of `history.len()` samples 10 s apart ending at `now_s`.
pub fn input(
    now_s: u64,
    parallelism: u32,
    rates_cpus: &[(f64, f64)],
    bounds: (u32, u32),
) -> DecisionInput {
    let n = rates_cpus.len() as u64;
    assert!(n > 0, "at least the current sample");
    let mut obs: Vec<Observation> = rates_cpus
        .iter()
        .enumerate()
        .map(|(i, (r, c))| observation(now_s - 10 * (n - 1 - i as u64), parallelism, *r, *c))
        .collect();
    let current = obs.pop().expect("n > 0");
    let mut input = DecisionInput::probe(
        "job",
        current,
        Bounds {
            min_parallelism: bounds.0,
            max_parallelism: bounds.1,
        },
    );
    input.history = obs;
    input
}

/// Sets params on an input.
pub fn with_params(mut input: DecisionInput, params: &[(&str, &str)]) -> DecisionInput {
    input.params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    input
}

/// What the live calibration tests offer: 3000 records/s (more than one instance of the
/// test jobs takes at 1.5 ms per record), parallelism 1 then 2 and back, 15 s to settle and
/// 20 s to measure at each.
pub fn calibration_options(
    rescale_timeout: std::time::Duration,
) -> daedalus_host::live::calibrate::CalibrationOptions {
    daedalus_host::live::calibrate::CalibrationOptions {
        parallelisms: vec![1, 2],
        offered_rate: 3000,
        settle: std::time::Duration::from_secs(15),
        measure: std::time::Duration::from_secs(20),
        rescale_timeout,
    }
}

/// Checks a live calibration under [`calibration_options`]: one worker saturated at a
/// plausible capacity, a capacity at two, and one downtime each way.
pub fn check_calibration(cal: &daedalus_host::live::calibrate::Calibration) {
    let c1 = cal.capacity[&1];
    assert!((50.0..3000.0).contains(&c1), "capacity at 1: {c1}");
    assert!(
        cal.saturated[&1],
        "3000/s must saturate one worker at 1.5 ms per record"
    );
    assert!(cal.capacity[&2] > 0.0);
    assert_eq!((cal.downtime_up_s.len(), cal.downtime_down_s.len()), (1, 1));
    assert!(cal.downtime_up_s[0] > 0.0 && cal.downtime_down_s[0] > 0.0);
}
