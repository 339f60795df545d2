//! One observation from the job's engine plus its input topic.
//!
//! The engine collector says how the job runs; the input's arrival rate comes from the topic
//! (the engine only sees what it consumed). The consumption rate is then
//! `arrivals - d(lag)/dt`, from two fresh numbers, instead of a 60-second meter that lags
//! behind every rescale; the engine's own rate is kept when the lag or arrivals are missing.

use super::kafka::ArrivalRate;
use super::{Collected, Collector, EngineError};
use std::sync::Mutex;

/// A job collector plus an input-rate source.
pub struct WithInput {
    job: Box<dyn Collector>,
    input: ArrivalRate,
    last_lag: Mutex<Option<(u64, f64)>>,
}

impl std::fmt::Debug for WithInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithInput")
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

impl WithInput {
    /// Combines `job` with the arrival rate of its input.
    pub fn new(job: Box<dyn Collector>, input: ArrivalRate) -> Self {
        WithInput {
            job,
            input,
            last_lag: Mutex::new(None),
        }
    }
}

#[async_trait::async_trait]
impl Collector for WithInput {
    async fn collect(&self, now_ms: u64) -> Result<Collected, EngineError> {
        // The arrival rate is sampled every tick, ready or not, so it is warm when the job is.
        let arrivals = self.input.sample(now_ms).await;
        let collected = self.job.collect(now_ms).await?;
        let Collected::Ready(mut obs) = collected else {
            *self.last_lag.lock().expect("no panics while held") = None;
            return Ok(collected);
        };
        let arrivals = match arrivals {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "Input topic unavailable; arrival rate missing.");
                None
            }
        };
        obs.input_records_per_sec = arrivals;
        let mut last = self.last_lag.lock().expect("no panics while held");
        if let (Some(a), Some(lag), Some((t, prev))) = (arrivals, obs.lag_records, *last)
            && now_ms > t
        {
            let drain = (lag - prev) * 1000.0 / (now_ms - t) as f64;
            obs.throughput_records_per_sec = Some((a - drain).max(0.0));
        }
        *last = obs.lag_records.map(|l| (now_ms, l));
        Ok(Collected::Ready(obs))
    }
}
