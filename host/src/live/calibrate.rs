//! Calibration: measure a live job and write a simulator profile, so `simulate` predicts it.
//!
//! For each parallelism in turn (e.g. 1 then 2, then back to the first): rescale in place and
//! time the restart (request to every vertex running: the rescale downtime, up or down), then
//! offer more than the job can take and measure what it consumes once the meters have settled
//! (the capacity at that parallelism; the lag must grow, or the job was not saturated and the
//! number is only a lower bound). The profile keeps the engine's defaults for what is not
//! measured and fits the Universal Scalability Law's contention term to the capacities.

use crate::clock::{Stopwatch, unix_now_ms};
use crate::engine::kafka::KafkaTopic;
use crate::engine::{Actuator, ApplyOutcome, Collected, Collector, EngineError, Progress, Target};
use crate::loadgen::{self, LoadgenOptions};
use crate::sim::profile::{JobProfile, OperatorProfile};
use crate::sim::trace::Trace;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How to calibrate.
#[derive(Debug, Clone)]
pub struct CalibrationOptions {
    /// Parallelisms to measure, in order (at least one).
    pub parallelisms: Vec<u32>,
    /// Records per second offered while measuring: more than the job can take.
    pub offered_rate: u64,
    /// Time to let the job and its meters settle at a new parallelism.
    pub settle: Duration,
    /// Measurement window.
    pub measure: Duration,
    /// Give up on a rescale after this long.
    pub rescale_timeout: Duration,
}

/// What was measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Calibration {
    /// Consumption at saturation, records/s, per parallelism.
    pub capacity: BTreeMap<u32, f64>,
    /// Whether the lag grew during each measurement (false: a lower bound only).
    pub saturated: BTreeMap<u32, bool>,
    /// Measured scale-up downtimes, s.
    pub downtime_up_s: Vec<f64>,
    /// Measured scale-down downtimes, s.
    pub downtime_down_s: Vec<f64>,
}

/// Whether a measurement ran saturated: the lag grew over it, or records arrived clearly
/// faster than they were consumed. The second matters where the lag metric goes stale under
/// a backlog (a Kafka Streams consumer stops fetching, and so stops updating `records-lag`,
/// for partitions whose buffer is full).
fn saturated(lags: &[f64], input_mean: Option<f64>, consumed: f64) -> bool {
    let grew = lags.len() >= 2 && lags[lags.len() - 1] > lags[0];
    grew || input_mean.is_some_and(|i| i > 1.1 * consumed)
}

/// The largest contention term a calibrated profile gets (the simulator needs it below 1).
const MAX_SIGMA: f64 = 0.99;

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

impl Calibration {
    /// A profile for this job: `base` with the measured capacities and downtimes.
    /// `keyed_operator` names the bottleneck the capacity is attributed to; the other
    /// operators get four times as much, so they never limit the simulated job.
    pub fn profile(&self, base: &JobProfile, name: &str, partitions: u32) -> Option<JobProfile> {
        let (&p1, &c1) = self.capacity.iter().next()?;
        let per_instance = c1 / f64::from(p1);
        let mut prof = base.clone();
        prof.name = name.to_string();
        prof.partitions = partitions.max(1);
        // USL with kappa = 0 through the measured points: C(p) = p c / (1 + sigma (p - 1)).
        let sigmas: Vec<f64> = self
            .capacity
            .iter()
            .filter(|(p, _)| **p > p1)
            .map(|(p, c)| {
                let p = f64::from(*p);
                // No gain (or a loss) from more instances is sigma >= 1, which the law does
                // not allow: cap it just below, where capacity stays flat.
                ((p * per_instance / c - 1.0) / (p - 1.0)).clamp(0.0, MAX_SIGMA)
            })
            .collect();
        prof.usl_sigma = mean(&sigmas).unwrap_or(base.usl_sigma);
        prof.usl_kappa = 0.0;
        if let Some(d) = mean(&self.downtime_up_s) {
            prof.scale_up_downtime_s = Some(d);
        }
        if let Some(d) = mean(&self.downtime_down_s) {
            prof.scale_down_downtime_s = Some(d);
        }
        prof.operators = vec![
            OperatorProfile {
                id: "source".into(),
                capacity_per_instance: 4.0 * per_instance,
                selectivity: 1.0,
                keyed: false,
            },
            OperatorProfile {
                id: "count".into(),
                capacity_per_instance: per_instance,
                selectivity: 1.0,
                keyed: true,
            },
            OperatorProfile {
                id: "sink".into(),
                capacity_per_instance: 4.0 * per_instance,
                selectivity: 1.0,
                keyed: false,
            },
        ];
        Some(prof)
    }
}

async fn rescale_and_time(
    actuator: &dyn Actuator,
    p: u32,
    timeout: Duration,
) -> Result<Option<f64>, EngineError> {
    let target = Target::job(p);
    let clock = Stopwatch::start();
    loop {
        match actuator.apply(&target).await? {
            ApplyOutcome::AlreadyAtTarget => return Ok(None),
            ApplyOutcome::Applied(_) => break,
            ApplyOutcome::InProgress(why) if clock.elapsed() < timeout => {
                tracing::debug!(%why, "Engine busy; retrying the rescale.");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            ApplyOutcome::InProgress(why) | ApplyOutcome::Rejected(why) => {
                return Err(EngineError::Other(format!("cannot rescale to {p}: {why}")));
            }
        }
    }
    let clock = Stopwatch::start();
    loop {
        if actuator.progress(&target).await? == Progress::Done {
            return Ok(Some(clock.elapsed().as_secs_f64()));
        }
        if clock.elapsed() > timeout {
            return Err(EngineError::Other(format!(
                "rescale to {p} not done in {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Runs the calibration; `progress` gets one line per step.
pub async fn calibrate(
    collector: &dyn Collector,
    actuator: &dyn Actuator,
    input: KafkaTopic,
    opts: &CalibrationOptions,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Calibration, EngineError> {
    let mut cal = Calibration::default();
    let mut steps = opts.parallelisms.clone();
    if steps.len() > 1 {
        steps.push(steps[0]); // back down: a scale-down downtime too
    }
    // Offer load for the whole calibration.
    let per_step = opts.settle + opts.measure + opts.rescale_timeout;
    let total_s = per_step.as_secs() * steps.len() as u64 + 60;
    let trace = Trace {
        name: "calibration".into(),
        rates: vec![opts.offered_rate; total_s as usize],
    };
    let load = tokio::spawn(async move {
        loadgen::run(&input, &trace, &LoadgenOptions::default(), &mut |_, _| {}).await
    });
    let mut current: Option<u32> = None;
    let result = async {
        for (i, &p) in steps.iter().enumerate() {
            let took = rescale_and_time(actuator, p, opts.rescale_timeout).await?;
            if let (Some(d), Some(c)) = (took, current) {
                if p > c {
                    cal.downtime_up_s.push(d);
                } else {
                    cal.downtime_down_s.push(d);
                }
                progress(&format!("rescale {c} -> {p}: running again after {d:.1} s"));
            }
            current = Some(p);
            if i == steps.len() - 1 && steps.len() > 1 {
                break; // the way back only measures the downtime
            }
            tokio::time::sleep(opts.settle).await;
            let mut samples: Vec<(f64, Option<f64>, Option<f64>)> = Vec::new();
            let clock = Stopwatch::start();
            while clock.elapsed() < opts.measure {
                // A failed or not-ready sample is skipped: right after a rescale the REST API
                // can briefly miss metrics of the redeployed vertices.
                match collector.collect(unix_now_ms()).await {
                    Ok(Collected::Ready(o)) => {
                        if let Some(t) = o.throughput_records_per_sec {
                            samples.push((t, o.lag_records, o.input_records_per_sec));
                        }
                    }
                    Ok(Collected::NotReady { reason, .. }) => {
                        tracing::debug!(%reason, "Not ready; sample skipped.");
                    }
                    Err(e) => tracing::warn!(error = %e, "Collection failed; sample skipped."),
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            let rates: Vec<f64> = samples.iter().map(|s| s.0).collect();
            let Some(c) = mean(&rates) else {
                return Err(EngineError::Other(format!(
                    "no throughput measured at parallelism {p} (job never ready?)"
                )));
            };
            let lags: Vec<f64> = samples.iter().filter_map(|s| s.1).collect();
            let inputs: Vec<f64> = samples.iter().filter_map(|s| s.2).collect();
            let grew = saturated(&lags, mean(&inputs), c);
            progress(&format!(
                "parallelism {p}: {c:.0} records/s consumed{}",
                if grew {
                    ""
                } else {
                    " (not saturated: the lag did not grow and arrivals did not exceed it; a lower bound)"
                }
            ));
            cal.capacity.insert(p, c);
            cal.saturated.insert(p, grew);
        }
        Ok::<(), EngineError>(())
    }
    .await;
    load.abort();
    result.map(|()| cal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_is_a_growing_lag_or_arrivals_beyond_consumption() {
        assert!(saturated(&[10.0, 50.0], None, 100.0));
        assert!(!saturated(&[50.0, 50.0], None, 100.0));
        assert!(!saturated(&[50.0], Some(105.0), 100.0));
        assert!(saturated(&[50.0, 50.0], Some(3000.0), 451.0), "a stale lag");
        assert!(!saturated(&[], None, 100.0));
    }
    use crate::sim::profile::Engine;

    #[test]
    fn the_profile_fits_the_measured_points() {
        let mut cal = Calibration::default();
        cal.capacity.insert(1, 1000.0);
        cal.capacity.insert(2, 1600.0);
        cal.downtime_up_s.push(4.0);
        cal.downtime_down_s.push(3.0);
        let base = JobProfile::default_for(Engine::Flink);
        let prof = cal.profile(&base, "wc", 4).unwrap();
        assert_eq!(prof.operators[1].capacity_per_instance, 1000.0);
        assert!((prof.usl_sigma - 0.25).abs() < 1e-12);
        assert_eq!(prof.scale_up_downtime_s, Some(4.0));
        assert_eq!(prof.scale_down_downtime_s, Some(3.0));
        // The simulator reproduces the measured capacities.
        assert!(
            (prof.speedup(2) * 1000.0 - 1600.0).abs() < 1.0,
            "{}",
            prof.speedup(2)
        );
        let text = toml::to_string(&prof).unwrap();
        assert_eq!(JobProfile::parse(&text, "t").unwrap(), prof);
    }

    #[test]
    fn no_gain_from_more_instances_still_gives_a_valid_profile() {
        let mut cal = Calibration::default();
        cal.capacity.insert(1, 600.0);
        cal.capacity.insert(2, 550.0);
        let base = JobProfile::default_for(Engine::Flink);
        let prof = cal.profile(&base, "wc", 4).unwrap();
        assert_eq!(prof.usl_sigma, MAX_SIGMA);
        let text = toml::to_string(&prof).unwrap();
        assert_eq!(JobProfile::parse(&text, "t").unwrap(), prof);
    }
}
