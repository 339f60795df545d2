//! The host's Prometheus metrics (`GET /metrics`, OpenMetrics text): cycles, decisions,
//! rescales, policy call latency and fuel, errors, and per-job parallelism and lag.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of per-job series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabel {
    /// Job name.
    pub job: String,
}

/// Labels of per-job, per-kind series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobKind {
    /// Job name.
    pub job: String,
    /// What happened (a cycle's outcome, a decision's role, an error's source).
    pub kind: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the host exports.
pub struct Metrics {
    registry: Registry,
    /// Cycles by outcome (`decided`, `engine-error`, `not-ready`, `rescaling`).
    pub cycles: Family<JobKind, Counter>,
    /// Decisions by role (`active`, or a shadow's name).
    pub decisions: Family<JobKind, Counter>,
    /// Rescales applied.
    pub rescales: Family<JobLabel, Counter>,
    /// Errors by source (`policy`, `engine`, `actuator`, `store`).
    pub errors: Family<JobKind, Counter>,
    /// Policy swaps and rollbacks by kind.
    pub policy_events: Family<JobKind, Counter>,
    /// Wall time of the active policy's decide call, seconds.
    pub policy_seconds: Family<JobLabel, Histogram>,
    /// Fuel burned by the active policy's decide call.
    pub policy_fuel: Family<JobLabel, Histogram>,
    /// Current job-level parallelism.
    pub parallelism: Family<JobLabel, Gauge>,
    /// Parallelism after the last decision and guardrails.
    pub desired_parallelism: Family<JobLabel, Gauge>,
    /// Consumer lag, records.
    pub lag: Family<JobLabel, FloatGauge>,
    /// Input rate, records/s.
    pub input_rate: Family<JobLabel, FloatGauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `daedalus` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("daedalus");
        let cycles = Family::<JobKind, Counter>::default();
        let decisions = Family::<JobKind, Counter>::default();
        let rescales = Family::<JobLabel, Counter>::default();
        let errors = Family::<JobKind, Counter>::default();
        let policy_events = Family::<JobKind, Counter>::default();
        let policy_seconds = Family::<JobLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(1e-4, 2.5, 14))) as fn() -> Histogram,
        );
        let policy_fuel = Family::<JobLabel, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(1e4, 4.0, 14))) as fn() -> Histogram,
        );
        let parallelism = Family::<JobLabel, Gauge>::default();
        let desired_parallelism = Family::<JobLabel, Gauge>::default();
        let lag = Family::<JobLabel, FloatGauge>::default();
        let input_rate = Family::<JobLabel, FloatGauge>::default();
        registry.register("cycles", "Loop cycles by outcome", cycles.clone());
        registry.register("decisions", "Policy decisions by role", decisions.clone());
        registry.register("rescales", "Rescales applied", rescales.clone());
        registry.register("errors", "Errors by source", errors.clone());
        registry.register(
            "policy_events",
            "Policy swaps, rollbacks and promotions",
            policy_events.clone(),
        );
        registry.register(
            "policy_call_seconds",
            "Wall time of the active policy's decide call",
            policy_seconds.clone(),
        );
        registry.register(
            "policy_call_fuel",
            "Fuel burned by the active policy's decide call",
            policy_fuel.clone(),
        );
        registry.register("parallelism", "Current parallelism", parallelism.clone());
        registry.register(
            "desired_parallelism",
            "Parallelism after the last decision and guardrails",
            desired_parallelism.clone(),
        );
        registry.register("lag_records", "Consumer lag", lag.clone());
        registry.register("input_records_per_second", "Input rate", input_rate.clone());
        Metrics {
            registry,
            cycles,
            decisions,
            rescales,
            errors,
            policy_events,
            policy_seconds,
            policy_fuel,
            parallelism,
            desired_parallelism,
            lag,
            input_rate,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Per-job label.
    pub fn job(job: &str) -> JobLabel {
        JobLabel { job: job.into() }
    }

    /// Per-job, per-kind label.
    pub fn kind(job: &str, kind: &str) -> JobKind {
        JobKind {
            job: job.into(),
            kind: kind.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_appear_in_the_exposition() {
        let m = Metrics::new();
        m.cycles
            .get_or_create(&Metrics::kind("wc", "decided"))
            .inc();
        m.parallelism.get_or_create(&Metrics::job("wc")).set(4);
        m.lag.get_or_create(&Metrics::job("wc")).set(12.5);
        m.policy_seconds
            .get_or_create(&Metrics::job("wc"))
            .observe(0.002);
        let text = m.encode();
        assert!(
            text.contains("daedalus_cycles_total{job=\"wc\",kind=\"decided\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("daedalus_parallelism{job=\"wc\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("daedalus_lag_records{job=\"wc\"} 12.5"),
            "{text}"
        );
        assert!(
            text.contains("daedalus_policy_call_seconds_count{job=\"wc\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
