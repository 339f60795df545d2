//! The workload generator: replays a trace's input rate into a Kafka topic.
//!
//! Every `step` (100 ms) it computes how many records the trace has offered up to the current
//! trace time (wall time times `speedup`, rates times `rate_scale`) and sends the difference,
//! so short stalls are caught up rather than lost, and the total is exact. Records are single
//! words from a vocabulary of `words` (`w0`, `w1`, ...), spread over the partitions.

use crate::clock::Stopwatch;
use crate::engine::EngineError;
use crate::engine::kafka::KafkaTopic;
use crate::sim::trace::Trace;
use serde::Serialize;
use std::time::Duration;

/// How to replay.
#[derive(Debug, Clone)]
pub struct LoadgenOptions {
    /// Trace seconds per wall second.
    pub speedup: f64,
    /// Factor on the trace's rates.
    pub rate_scale: f64,
    /// Distinct words.
    pub words: u32,
    /// Send interval.
    pub step: Duration,
    /// Largest produce batch.
    pub max_batch: usize,
}

impl Default for LoadgenOptions {
    fn default() -> Self {
        LoadgenOptions {
            speedup: 1.0,
            rate_scale: 1.0,
            words: 1000,
            step: Duration::from_millis(100),
            max_batch: 5000,
        }
    }
}

/// What was sent.
#[derive(Debug, Clone, Serialize)]
pub struct LoadgenReport {
    /// Records the trace asked for (after scaling).
    pub expected: u64,
    /// Records written to the topic.
    pub sent: u64,
    /// Wall time, s.
    pub wall_secs: f64,
    /// Per reporting window (10 trace seconds): `(trace second, expected, sent)`.
    pub windows: Vec<(u64, u64, u64)>,
}

impl LoadgenReport {
    /// Largest relative rate error over windows that asked for at least 100 records.
    pub fn max_window_error(&self) -> f64 {
        self.windows
            .iter()
            .filter(|w| w.1 >= 100)
            .map(|w| (w.2 as f64 - w.1 as f64).abs() / w.1 as f64)
            .fold(0.0, f64::max)
    }
}

/// Records the trace offers up to trace time `t` seconds.
pub fn offered(trace: &Trace, scale: f64, t: f64) -> u64 {
    let whole = (t.floor() as usize).min(trace.rates.len());
    let mut sum: f64 = trace.rates[..whole].iter().map(|r| *r as f64).sum();
    if whole < trace.rates.len() {
        sum += trace.rates[whole] as f64 * (t - whole as f64);
    }
    (sum * scale).floor() as u64
}

/// Replays `trace` into `topic`; `progress(trace_second, sent)` is called about once a second.
pub async fn run(
    topic: &KafkaTopic,
    trace: &Trace,
    opts: &LoadgenOptions,
    progress: &mut (dyn FnMut(u64, u64) + Send),
) -> Result<LoadgenReport, EngineError> {
    let clock = Stopwatch::start();
    let duration = trace.duration_s() as f64;
    let mut sent: u64 = 0;
    let mut seq: u64 = 0;
    let mut windows: Vec<(u64, u64, u64)> = Vec::new();
    let mut window_start = (0u64, 0u64, 0u64); // (trace second, expected at start, sent at start)
    let mut last_progress = 0u64;
    loop {
        let t = (clock.elapsed().as_secs_f64() * opts.speedup).min(duration);
        let due = offered(trace, opts.rate_scale, t);
        while sent < due {
            let n = ((due - sent) as usize).min(opts.max_batch);
            let values: Vec<Vec<u8>> = (0..n as u64)
                .map(|i| format!("w{}", (seq + i) % u64::from(opts.words.max(1))).into_bytes())
                .collect();
            topic.produce(values, (seq % 1024) as usize).await?;
            seq += n as u64;
            sent += n as u64;
        }
        let second = t as u64;
        if second >= window_start.0 + 10 || t >= duration {
            let exp_now = offered(trace, opts.rate_scale, second as f64);
            windows.push((
                window_start.0,
                exp_now - window_start.1,
                sent - window_start.2,
            ));
            window_start = (second, exp_now, sent);
        }
        if second > last_progress {
            last_progress = second;
            progress(second, sent);
        }
        if t >= duration {
            break;
        }
        tokio::time::sleep(opts.step).await;
    }
    Ok(LoadgenReport {
        expected: offered(trace, opts.rate_scale, duration),
        sent,
        wall_secs: clock.elapsed().as_secs_f64(),
        windows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offered_integrates_the_trace() {
        let t = Trace {
            name: "t".into(),
            rates: vec![10, 20, 30],
        };
        assert_eq!(offered(&t, 1.0, 0.0), 0);
        assert_eq!(offered(&t, 1.0, 0.5), 5);
        assert_eq!(offered(&t, 1.0, 1.5), 20);
        assert_eq!(offered(&t, 1.0, 3.0), 60);
        assert_eq!(offered(&t, 1.0, 99.0), 60);
        assert_eq!(offered(&t, 0.5, 3.0), 30);
    }
}
