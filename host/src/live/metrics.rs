//! The host's Prometheus metrics (`GET /metrics`, OpenMetrics text): cycles, decisions,
//! rescales, policy call latency and fuel, errors, per-job parallelism and lag, and the
//! policy components the host holds.

use crate::policy::PolicyEngine;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};

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
    /// Errors by source (`policy`, `engine`, `actuator`, `store`; `cycle`: a panic in the host's own
    /// cycle, caught).
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

    /// [`Metrics::new`], plus `daedalus_policy_components_held`: how many distinct policy
    /// components `engine` holds, read at each scrape (see [`PolicyEngine::held_components`]).
    /// After a fleet-wide swap it shows the old component go once no job runs it or keeps it
    /// as its rollback target.
    pub fn with_engine(engine: &Arc<PolicyEngine>) -> Self {
        let mut m = Self::new();
        m.registry
            .register_collector(Box::new(HeldComponents(Arc::downgrade(engine))));
        m
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

/// Reads [`PolicyEngine::held_components`] at scrape time; the metrics do not keep the engine
/// alive (a dropped engine exports nothing).
#[derive(Debug)]
struct HeldComponents(Weak<PolicyEngine>);

impl Collector for HeldComponents {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(engine) = self.0.upgrade() else {
            return Ok(());
        };
        let gauge = ConstGauge::new(engine.held_components() as i64);
        let metric = encoder.encode_descriptor(
            "policy_components_held",
            "Distinct policy components loaded and held by a job, a shadow or a rollback target",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that the exposition holds every one of `lines` and ends as
    /// OpenMetrics requires, showing the whole text when it does not.
    fn assert_exposition(text: &str, lines: &[&str]) {
        let missing: Vec<&&str> = lines.iter().filter(|l| !text.contains(*l)).collect();
        assert!(missing.is_empty(), "missing {missing:?} in:\n{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

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
        assert_exposition(
            &text,
            &[
                "daedalus_cycles_total{job=\"wc\",kind=\"decided\"} 1",
                "daedalus_parallelism{job=\"wc\"} 4",
                "daedalus_lag_records{job=\"wc\"} 12.5",
                "daedalus_policy_call_seconds_count{job=\"wc\"} 1",
            ],
        );
        assert!(!text.contains("components_held"), "{text}");
    }

    #[test]
    fn held_components_are_read_at_each_scrape_and_vanish_with_the_engine() {
        let engine = PolicyEngine::new(crate::policy::EngineOptions::default()).unwrap();
        let m = Metrics::with_engine(&engine);
        assert_exposition(
            &m.encode(),
            &[
                "# TYPE daedalus_policy_components_held gauge\n",
                "\ndaedalus_policy_components_held 0\n",
            ],
        );
        drop(engine);
        assert!(!m.encode().contains("components_held"));
    }
}
