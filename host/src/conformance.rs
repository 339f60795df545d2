//! The policy conformance kit: invariants every policy component must keep, checked through the
//! real runtime, for `daedalus policy test` and for our own policies in CI.
//!
//! Checks: it loads and describes itself; every decision on a spread of generated inputs stays
//! within the bounds (the host's validation); the same input gives the same decision and burns
//! the same fuel; its own state blob is accepted on the next call; a foreign state blob does not
//! trap it; an unknown parameter is rejected as `invalid-params`; a long history (1 h of 1-s
//! samples, 18 workers) fits the fuel and memory limits (the defaults, or those given). Wall-clock times are measured
//! and reported, never judged (the machine may be busy).

use crate::clock::Stopwatch;
use crate::model::{Bounds, DecisionInput, GuestError, Observation, OperatorSample, WorkerSample};
use crate::policy::{LoadedPolicy, PolicyError, PolicyLimits};
use serde::Serialize;

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Whether the invariant held.
    pub passed: bool,
    /// What was seen.
    pub detail: String,
}

/// All checks of one component.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The checks, in order.
    pub checks: Vec<Check>,
    /// Largest fuel one decision used.
    pub max_fuel: u64,
    /// Median wall time of a decision, µs (measured, not judged).
    pub decide_us_p50: f64,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }
}

/// A synthetic job sample: `p` workers sharing `rate` with CPU `cpu`, three operators.
fn sample(at_s: u64, p: u32, rate: f64, cpu: f64, lag: f64) -> Observation {
    let op = |id: &str, up: &[&str], busy: f64| OperatorSample {
        operator_id: id.into(),
        upstream: up.iter().map(|s| s.to_string()).collect(),
        parallelism: p,
        max_parallelism: 128,
        busy_ratio: Some(busy.min(1.0)),
        backpressure_ratio: Some(0.0),
        records_in_per_sec: Some(rate),
        records_out_per_sec: Some(rate),
    };
    Observation {
        at_ms: at_s * 1000,
        parallelism: p,
        input_records_per_sec: Some(rate),
        throughput_records_per_sec: Some(rate),
        lag_records: Some(lag),
        workers: (0..p)
            .map(|i| WorkerSample {
                worker_id: format!("w{i}"),
                cpu_utilization: Some((cpu + 0.02 * f64::from(i % 3)).min(1.0)),
                throughput_records_per_sec: Some(rate / f64::from(p)),
            })
            .collect(),
        operators: vec![
            op("source", &[], cpu * 0.3),
            op("work", &["source"], cpu),
            op("sink", &["work"], cpu * 0.2),
        ],
    }
}

/// An input at `now_s` with `secs` seconds of 1-s history at a steady load.
pub fn synthetic_input(
    now_s: u64,
    secs: u64,
    p: u32,
    rate: f64,
    cpu: f64,
    bounds: (u32, u32),
) -> DecisionInput {
    let mut history: Vec<Observation> = (0..secs)
        .map(|k| sample(now_s - secs + k, p, rate, cpu, 0.0))
        .collect();
    let current = history
        .pop()
        .unwrap_or_else(|| sample(now_s, p, rate, cpu, 0.0));
    let mut input = DecisionInput::probe(
        "conformance",
        current,
        Bounds {
            min_parallelism: bounds.0,
            max_parallelism: bounds.1,
        },
    );
    input.now_ms = now_s * 1000;
    input.history = history;
    input
}

/// Checks `params` before a job or a simulation runs with them, so a typo fails at startup
/// instead of holding the job on every tick: every key must be one the policy documents in
/// `describe`, and a probe decision on a steady synthetic input (one worker, two minutes of
/// history) with these params and `latency_objective_ms` must not answer `invalid-params` (a
/// value out of range). Any other probe outcome (not enough history, a trap) is left to the
/// run, which holds the job on it.
pub fn check_params(
    policy: &LoadedPolicy,
    params: &[(String, String)],
    limits: &PolicyLimits,
    latency_objective_ms: Option<u64>,
) -> Result<(), GuestError> {
    policy.check_param_keys(params)?;
    let probe = params_probe(params, latency_objective_ms);
    match policy.decide_blocking(&probe, limits) {
        Err(PolicyError::Guest(e @ GuestError::InvalidParams(_))) => Err(e),
        _ => Ok(()),
    }
}

/// The input [`check_params`] probes with: one worker at a steady 1000 records/s and 50% CPU,
/// two minutes of history, bounds 1-2, with `params` and `latency_objective_ms`. Also the hot
/// swap's probe when the job has not been observed yet.
pub fn params_probe(
    params: &[(String, String)],
    latency_objective_ms: Option<u64>,
) -> DecisionInput {
    let mut probe = synthetic_input(100_000, 120, 1, 1_000.0, 0.5, (1, 2));
    probe.params = params.to_vec();
    probe.latency_objective_ms = latency_objective_ms;
    probe
}

fn check(name: &'static str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        passed,
        detail: detail.into(),
    }
}

/// Runs every check on `policy` with `params`.
pub fn run(policy: &LoadedPolicy, params: &[(String, String)]) -> Report {
    run_with_limits(policy, params, &PolicyLimits::default())
}

/// [`run`] under the limits the policy will run with (a job's `limits` in the run config).
pub fn run_with_limits(
    policy: &LoadedPolicy,
    params: &[(String, String)],
    limits: &PolicyLimits,
) -> Report {
    let limits = limits.clone();
    let mut checks = Vec::new();
    let info = policy.info();
    let mut names: Vec<&str> = info.params.iter().map(|p| p.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    checks.push(check(
        "describe",
        !info.name.is_empty() && !info.version.is_empty() && names.len() == info.params.len(),
        format!(
            "{} {} with {} documented parameters",
            info.name,
            info.version,
            info.params.len()
        ),
    ));
    // A spread of loads, scale-outs and bounds.
    let mut inputs = Vec::new();
    for (p, rate, cpu) in [
        (1, 1_000.0, 0.05),
        (2, 50_000.0, 0.95),
        (4, 200_000.0, 1.0),
        (8, 10_000.0, 0.1),
        (16, 400_000.0, 0.7),
    ] {
        for bounds in [(1, 24), (2, 6), (3, 3)] {
            let mut i = synthetic_input(100_000, 120, p, rate, cpu, bounds);
            i.params = params.to_vec();
            inputs.push(i);
        }
    }
    let (mut out_of_bounds, mut failures, mut max_fuel, mut times) =
        (Vec::new(), 0, 0u64, Vec::new());
    let mut nondeterministic = Vec::new();
    let mut state_problems = Vec::new();
    for input in &inputs {
        let mut sw = Stopwatch::start();
        let a = policy.call_blocking(input, &limits);
        times.push(sw.lap().as_secs_f64() * 1e6);
        let b = policy.call_blocking(input, &limits);
        max_fuel = max_fuel.max(a.fuel_used);
        let same = match (&a.result, &b.result) {
            (Ok(x), Ok(y)) => serde_json::to_string(x).ok() == serde_json::to_string(y).ok(),
            (Err(x), Err(y)) => x.to_string() == y.to_string(),
            _ => false,
        };
        if !same || a.fuel_used != b.fuel_used {
            nondeterministic.push(input.current.parallelism);
        }
        match &a.result {
            Err(PolicyError::InvalidOutput(why)) => out_of_bounds.push(why.clone()),
            Err(PolicyError::Guest(GuestError::InsufficientHistory(_))) => {}
            Err(_) => failures += 1,
            Ok(d) => {
                // Its own state must be accepted on the next tick.
                let mut next = input.clone();
                next.now_ms += 10_000;
                next.current.at_ms += 10_000;
                next.state = d.state.clone();
                if let Err(e) = policy.decide_blocking(&next, &limits)
                    && !matches!(e, PolicyError::Guest(GuestError::InsufficientHistory(_)))
                {
                    state_problems.push(e.to_string());
                }
            }
        }
    }
    checks.push(check(
        "bounds",
        out_of_bounds.is_empty(),
        if out_of_bounds.is_empty() {
            format!("{} inputs, every target within the bounds", inputs.len())
        } else {
            format!(
                "{} invalid outputs, e.g. {}",
                out_of_bounds.len(),
                out_of_bounds[0]
            )
        },
    ));
    checks.push(check(
        "no-failures",
        failures == 0,
        format!("{failures} of {} decisions trapped or returned an error other than insufficient-history", inputs.len()),
    ));
    checks.push(check(
        "deterministic",
        nondeterministic.is_empty(),
        if nondeterministic.is_empty() {
            "same input, same decision and fuel".to_string()
        } else {
            format!("differs at parallelism {nondeterministic:?}")
        },
    ));
    checks.push(check(
        "state-round-trip",
        state_problems.is_empty(),
        state_problems
            .first()
            .cloned()
            .unwrap_or_else(|| "its own state blob is accepted".into()),
    ));
    let mut foreign = inputs[0].clone();
    foreign.state = Some(b"\xff\x00not a state blob of this policy".to_vec());
    let foreign_result = policy.decide_blocking(&foreign, &limits);
    checks.push(check(
        "foreign-state",
        !matches!(foreign_result, Err(PolicyError::Trap { .. })),
        match &foreign_result {
            Ok(_) => "ignored".to_string(),
            Err(e) => e.to_string(),
        },
    ));
    let mut bad = inputs[0].clone();
    bad.params
        .push(("__conformance_unknown_key__".into(), "1".into()));
    let bad_result = policy.decide_blocking(&bad, &limits);
    checks.push(check(
        "malformed-params",
        matches!(
            bad_result,
            Err(PolicyError::Guest(GuestError::InvalidParams(_)))
        ),
        match &bad_result {
            Ok(_) => "an unknown parameter was accepted silently".to_string(),
            Err(e) => e.to_string(),
        },
    ));
    let mut long = synthetic_input(100_000, 3600, 18, 300_000.0, 0.8, (1, 24));
    long.params = params.to_vec();
    let long_outcome = policy.call_blocking(&long, &limits);
    max_fuel = max_fuel.max(long_outcome.fuel_used);
    checks.push(check(
        "long-history",
        !matches!(long_outcome.result, Err(PolicyError::Trap { .. })),
        format!(
            "1 h of history with 18 workers: {} fuel of {}{}",
            long_outcome.fuel_used,
            limits.fuel,
            match &long_outcome.result {
                Err(e) => format!(", {e}"),
                Ok(_) => String::new(),
            }
        ),
    ));
    times.sort_by(f64::total_cmp);
    Report {
        checks,
        max_fuel,
        decide_us_p50: times.get(times.len() / 2).copied().unwrap_or(0.0),
    }
}
