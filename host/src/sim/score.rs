//! The scorecard of a run (`report.json` entries). Field names are stable so reports stay
//! comparable across versions.

use super::run::RunResult;
use serde::{Deserialize, Serialize};

/// One policy's results on one trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// Display name of the policy (or `oracle`).
    pub policy: String,
    /// sha256 of the component (empty for the oracle).
    pub digest: String,
    /// Trace name.
    pub trace: String,
    /// Engine profile.
    pub engine: String,
    /// Seed of the run.
    pub seed: u64,
    /// Simulated duration, s.
    pub duration_s: u64,
    /// Integral of job parallelism over time, worker-seconds.
    pub worker_seconds: u64,
    /// Mean parallelism.
    pub avg_parallelism: f64,
    /// Largest parallelism used.
    pub max_parallelism: u32,
    /// Rescales applied.
    pub rescales: u32,
    /// Seconds of rescale downtime.
    pub downtime_s: u64,
    /// Median latency over seconds, ms.
    pub latency_ms_p50: f64,
    /// 95th percentile latency over seconds, ms.
    pub latency_ms_p95: f64,
    /// 99th percentile latency over seconds, ms.
    pub latency_ms_p99: f64,
    /// Largest lag, records.
    pub max_lag_records: u64,
    /// Lag at the end, records.
    pub final_lag_records: u64,
    /// Worker-seconds the largest job would need after the run to work off
    /// `final_lag_records` (the oracle's terminal cost, `Model::drain_worker_seconds`).
    /// `worker_seconds + drain_worker_seconds` compares runs that leave different amounts of
    /// work undone; absent from reports written before it (read as 0).
    #[serde(default)]
    pub drain_worker_seconds: u64,
    /// Seconds with latency above the profile's SLO.
    pub slo_violation_s: u64,
    /// Records that arrived.
    pub records_in: u64,
    /// Records processed (net of replays); `records_in - records_processed == final_lag_records`.
    pub records_processed: u64,
    /// Decisions that failed (the job held).
    pub policy_errors: u32,
    /// Median wall time of a decide call, µs (measured; the only non-deterministic fields).
    pub decide_us_p50: f64,
    /// 99th percentile wall time of a decide call, µs.
    pub decide_us_p99: f64,
}

/// The `q` quantile (nearest rank) of `v`; 0 for an empty slice.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

/// Labels of a scorecard.
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    /// Policy display name.
    pub policy: &'a str,
    /// Component digest.
    pub digest: &'a str,
    /// Trace name.
    pub trace: &'a str,
    /// Engine name.
    pub engine: &'a str,
    /// Seed.
    pub seed: u64,
    /// SLO, ms.
    pub slo_ms: f64,
    /// Worker-seconds to work off one record left waiting at the end (see
    /// `Scorecard::drain_worker_seconds`).
    pub drain_ws_per_record: f64,
}

/// Scores a run.
pub fn score(r: &RunResult, l: &Labels<'_>) -> Scorecard {
    let tl = &r.timeline;
    let worker_seconds: u64 = tl.parallelism.iter().map(|p| u64::from(*p)).sum();
    let n = tl.parallelism.len().max(1) as f64;
    let records_in: u64 = tl.input.iter().sum();
    let final_lag = tl.lag.last().copied().unwrap_or(0);
    Scorecard {
        policy: l.policy.to_string(),
        digest: l.digest.to_string(),
        trace: l.trace.to_string(),
        engine: l.engine.to_string(),
        seed: l.seed,
        duration_s: tl.parallelism.len() as u64,
        worker_seconds,
        avg_parallelism: round3(worker_seconds as f64 / n),
        max_parallelism: tl.parallelism.iter().copied().max().unwrap_or(0),
        rescales: r.rescales,
        downtime_s: r.downtime_s,
        latency_ms_p50: round3(quantile(&tl.latency_ms, 0.50)),
        latency_ms_p95: round3(quantile(&tl.latency_ms, 0.95)),
        latency_ms_p99: round3(quantile(&tl.latency_ms, 0.99)),
        max_lag_records: tl.lag.iter().copied().max().unwrap_or(0),
        final_lag_records: final_lag,
        drain_worker_seconds: (final_lag as f64 * l.drain_ws_per_record).round() as u64,
        slo_violation_s: tl.latency_ms.iter().filter(|v| **v > l.slo_ms).count() as u64,
        records_in,
        records_processed: r.records_processed,
        policy_errors: r.policy_errors,
        decide_us_p50: round3(quantile(&r.decide_us, 0.50)),
        decide_us_p99: round3(quantile(&r.decide_us, 0.99)),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
