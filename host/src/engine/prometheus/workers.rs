//! Per-worker samples from Prometheus for an engine whose job-level metrics come from
//! elsewhere: [`PrometheusWorkers`] wraps a collector (Flink's REST collector) and replaces the
//! workers of each observation with one sample per instance from a [`PrometheusCollector`]
//! (per TaskManager with the Flink preset), filling the lag if the wrapped collector had none.

use super::PrometheusCollector;
use crate::engine::{Collected, Collector, EngineError};

/// A collector whose worker samples come from Prometheus.
pub struct PrometheusWorkers<C> {
    inner: C,
    prom: PrometheusCollector,
}

impl<C: Collector> PrometheusWorkers<C> {
    /// Wraps `inner`; `prom` supplies the workers (its CPU, throughput and threads queries) and
    /// the lag.
    pub fn new(inner: C, prom: PrometheusCollector) -> Self {
        PrometheusWorkers { inner, prom }
    }
}

#[async_trait::async_trait]
impl<C: Collector> Collector for PrometheusWorkers<C> {
    async fn collect(&self, now_ms: u64) -> Result<Collected, EngineError> {
        let mut obs = match self.inner.collect(now_ms).await? {
            Collected::Ready(obs) => obs,
            not_ready => return Ok(not_ready),
        };
        match self.prom.view().await {
            Ok(v) => {
                obs.workers = self.prom.workers(&v);
                if obs.lag_records.is_none() {
                    obs.lag_records = v.lag;
                }
            }
            Err(e) => {
                // Missing data, not zeros: the job-level metrics still stand.
                tracing::warn!(error = %e, "Prometheus unavailable; no worker samples this tick.");
                obs.workers.clear();
            }
        }
        Ok(Collected::Ready(obs))
    }
}
