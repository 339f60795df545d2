//! Counterfactual replay and split-arm reports from a job's recorded live history.
//!
//! - [`recorded_trace`] rebuilds the arrival trace a job saw from its stored samples (each
//!   sample's input rate over the interval it closes), and [`counterfactual`] runs any set of
//!   policies, and the oracle, through the simulator on it, with the job's profile (the
//!   simulated job's own, or one written by `daedalus calibrate` for a real job): what would
//!   each policy have done on exactly this load;
//! - [`arm_report`] summarises the live data of the jobs assigned to each arm of a split test.

use crate::policy::{PolicyEngine, PolicyLimits};
use crate::sim::compare::{PolicySpec, Scored, simulate_all};
use crate::sim::profile::JobProfile;
use crate::sim::run::RunConfig as SimConfig;
use crate::sim::trace::Trace;
use crate::store::{Sample, Store};
use anyhow::{Context, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The per-second arrival trace behind `samples` (oldest first): a sample taken at `t` with
/// rate `r` stands for every second since the previous sample. Missing rates repeat the last
/// known one. The first sample covers the typical interval before it.
pub fn recorded_trace(name: &str, samples: &[Sample]) -> anyhow::Result<Trace> {
    if samples.len() < 2 {
        bail!(
            "job {name:?} has {} recorded samples; a replay needs at least 2",
            samples.len()
        );
    }
    let mut gaps: Vec<u64> = samples
        .windows(2)
        .map(|w| w[1].at_ms.saturating_sub(w[0].at_ms))
        .collect();
    gaps.sort_unstable();
    let typical = gaps[gaps.len() / 2].max(1000);
    let origin = samples[0].at_ms.saturating_sub(typical);
    let mut rates = Vec::new();
    let mut last = samples
        .iter()
        .find_map(|s| s.input_rate)
        .with_context(|| format!("job {name:?} never recorded an input rate"))?;
    let mut from_s = 0u64;
    for s in samples {
        if let Some(r) = s.input_rate.filter(|r| r.is_finite() && *r >= 0.0) {
            last = r;
        }
        let to_s = s.at_ms.saturating_sub(origin) / 1000;
        for _ in from_s..to_s {
            rates.push(last.round() as u64);
        }
        from_s = from_s.max(to_s);
    }
    Ok(Trace {
        name: format!("{name}-recorded"),
        rates,
    })
}

/// Replays `samples` through the simulator for each policy in `specs` (and the oracle) on
/// `profile` (with the job's bounds and objective: [`JobProfile::for_job`]), deciding as
/// `cfg` says (the job's tick and history window) under the job's `limits`, as the live loop
/// did.
pub fn counterfactual(
    engine: &Arc<PolicyEngine>,
    job: &str,
    samples: &[Sample],
    profile: &JobProfile,
    specs: &[PolicySpec],
    cfg: &SimConfig,
    limits: &PolicyLimits,
) -> anyhow::Result<(Trace, Vec<Scored>)> {
    let trace = recorded_trace(job, samples)?;
    let scored = simulate_all(engine, specs, profile, &trace, cfg, limits, true, false)?;
    Ok((trace, scored))
}

/// One arm of a split test, from live data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ArmReport {
    /// Arm name.
    pub arm: String,
    /// Jobs in the arm.
    pub jobs: Vec<String>,
    /// Seconds of recorded history, summed over the jobs.
    pub observed_s: f64,
    /// Integral of parallelism over the recorded time, summed over the jobs.
    pub worker_seconds: f64,
    /// `worker_seconds / observed_s`: the arm's mean parallelism per job.
    pub mean_parallelism: f64,
    /// Seconds with lag above the threshold, summed over the jobs.
    pub lag_over_threshold_s: f64,
    /// Largest lag seen, records.
    pub max_lag: f64,
    /// Rescales the engines accepted, summed over the jobs.
    pub rescales: u32,
    /// Rescales per job-hour.
    pub rescales_per_hour: f64,
    /// Decisions in which the active policy failed.
    pub policy_errors: u64,
}

/// The arms' reports: `arms` maps each job to its arm; `lag_threshold` (records) counts the
/// seconds a job spent behind.
pub fn arm_report(
    store: &Store,
    arms: &BTreeMap<String, String>,
    since: impl Fn(&str) -> u64,
    lag_threshold: f64,
) -> anyhow::Result<Vec<ArmReport>> {
    let mut out: BTreeMap<String, ArmReport> = BTreeMap::new();
    for (job, arm) in arms {
        // Each job's own window: jobs may run on clocks of their own (a simulated job at 60x).
        let since_ms = since(job);
        let r = out.entry(arm.clone()).or_insert_with(|| ArmReport {
            arm: arm.clone(),
            ..ArmReport::default()
        });
        r.jobs.push(job.clone());
        let samples = store.samples(job, since_ms)?;
        for w in samples.windows(2) {
            let dt = w[1].at_ms.saturating_sub(w[0].at_ms) as f64 / 1000.0;
            r.observed_s += dt;
            r.worker_seconds += f64::from(w[0].parallelism) * dt;
            if w[1].lag.is_some_and(|l| l > lag_threshold) {
                r.lag_over_threshold_s += dt;
            }
        }
        r.max_lag = samples
            .iter()
            .filter_map(|s| s.lag)
            .fold(r.max_lag, f64::max);
        r.rescales += store
            .rescales(job)?
            .iter()
            .filter(|x| {
                x.requested_ms >= since_ms
                    && matches!(x.outcome.as_str(), "applied" | "done" | "timeout")
            })
            .count() as u32;
        r.policy_errors += store.policy_errors(job, "active", since_ms)?;
    }
    Ok(out
        .into_values()
        .map(|mut r| {
            if r.observed_s > 0.0 {
                r.mean_parallelism = r.worker_seconds / r.observed_s;
                r.rescales_per_hour = f64::from(r.rescales) * 3600.0 / r.observed_s;
            }
            r
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: u64, rate: Option<f64>, p: u32, lag: f64) -> Sample {
        Sample {
            at_ms: at_s * 1000,
            parallelism: p,
            input_rate: rate,
            throughput: None,
            lag: Some(lag),
        }
    }

    #[test]
    fn each_sample_covers_the_interval_it_closes() {
        let s = vec![
            sample(110, Some(5.0), 1, 0.0),
            sample(120, Some(7.0), 1, 0.0),
            sample(130, None, 1, 0.0),
            sample(135, Some(9.0), 1, 0.0),
        ];
        let t = recorded_trace("j", &s).unwrap();
        let mut want = vec![5; 10];
        want.extend([7; 10]);
        want.extend([7; 10]);
        want.extend([9; 5]);
        assert_eq!(t.rates, want);
        assert!(recorded_trace("j", &s[..1]).is_err());
    }

    #[test]
    fn arms_sum_their_jobs() {
        let store = Store::in_memory().unwrap();
        for (job, p) in [("a1", 2), ("a2", 4), ("b1", 3)] {
            for t in 0..=6 {
                let mut o = crate::model::Observation::empty(t * 10_000, p);
                o.lag_records = Some(if t >= 5 { 1000.0 } else { 0.0 });
                store.put_observation(job, &o).unwrap();
            }
        }
        let id = store.begin_rescale("b1", 1, 3, 4, "{}").unwrap();
        store.finish_rescale(id, 2, "done").unwrap();
        let arms = BTreeMap::from([
            ("a1".to_string(), "A".to_string()),
            ("a2".to_string(), "A".to_string()),
            ("b1".to_string(), "B".to_string()),
        ]);
        let r = arm_report(&store, &arms, |_| 0, 500.0).unwrap();
        assert_eq!(r[0].arm, "A");
        assert_eq!(r[0].observed_s, 120.0);
        assert_eq!(r[0].worker_seconds, 60.0 * 2.0 + 60.0 * 4.0);
        assert_eq!(r[0].mean_parallelism, 3.0);
        assert_eq!(r[0].lag_over_threshold_s, 40.0);
        assert_eq!((r[1].rescales, r[1].mean_parallelism), (1, 3.0));
        assert_eq!(r[1].rescales_per_hour, 60.0);
        // Each job's own window (its clock may run ahead of the others'), and the failed
        // decisions in it.
        for (at_ms, error) in [
            (10_000, Some("trap")),
            (50_000, Some("trap")),
            (60_000, None),
        ] {
            store
                .put_decision(&crate::store::DecisionRecord {
                    job: "b1".into(),
                    at_ms,
                    role: "active".into(),
                    policy: "p".into(),
                    digest: "d".into(),
                    current: 3,
                    proposed: 3,
                    target: 3,
                    clamped_by: Vec::new(),
                    reason: String::new(),
                    explanation: serde_json::Value::Null,
                    error: error.map(String::from),
                })
                .unwrap();
        }
        let r = arm_report(
            &store,
            &arms,
            |job| if job == "b1" { 40_000 } else { 0 },
            500.0,
        )
        .unwrap();
        assert_eq!(r[0].observed_s, 120.0);
        assert_eq!((r[1].observed_s, r[1].policy_errors), (20.0, 1));
    }
}
