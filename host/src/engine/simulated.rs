//! A simulated job as a live engine: the simulator's job model ([`crate::sim::dynamics`])
//! behind the [`Collector`] and [`Actuator`] traits, so `daedalus run` works with no engine
//! installed, and the control plane can be tested and benchmarked end to end.
//!
//! Time is the loop's clock: each collection advances the model to `now_ms` (one model second
//! per clock second since the job's start), so the same job runs in real time or accelerated,
//! depending on the clock the loop is given. A rescale costs the profile's downtime, replays
//! the records since the last checkpoint, and is reported by [`Actuator::progress`] once the
//! job processes again.
//!
//! With a `state_file`, the job outlives the host like a real engine: its state is written
//! (atomically) after every step and rescale and picked up again by the next host, so a host
//! killed mid-run finds the job where it left it.

use super::{Actuator, ApplyOutcome, Collected, Collector, EngineError, Progress, Target};
use crate::sim::dynamics::{JobState, Model};
use crate::sim::metrics::observe;
use crate::sim::rng::Rng;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What survives the host: the job's model state and clock origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Persisted {
    /// Clock time of model second 0, ms.
    epoch_ms: u64,
    /// Next model second to simulate.
    t: usize,
    ops: Vec<u32>,
    lag: u64,
    downtime_left: u32,
    since_checkpoint: u64,
    arrived: u64,
    processed: u64,
    /// Rescales the engine has started (the truth a crash test compares the host's records to).
    rescales: u32,
}

struct Inner {
    p: Option<Persisted>,
    metrics_rng: Rng,
    jitter_rng: Rng,
    last: Option<crate::model::Observation>,
}

/// A simulated job; one value serves as both the collector and the actuator.
#[derive(Clone)]
pub struct SimulatedJob {
    model: Arc<Model>,
    seed: u64,
    state_file: Option<PathBuf>,
    inner: Arc<Mutex<Inner>>,
}

impl SimulatedJob {
    /// A job running `model`, randomised by `seed`; with `state_file`, resumed from it when it
    /// exists and saved to it as it runs.
    pub fn new(
        model: Arc<Model>,
        seed: u64,
        state_file: Option<PathBuf>,
    ) -> Result<Self, EngineError> {
        let p = match &state_file {
            Some(f) if f.exists() => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| EngineError::Other(format!("{}: {e}", f.display())))?;
                let p: Persisted =
                    serde_json::from_str(&text).map_err(|e| EngineError::Malformed {
                        endpoint: f.display().to_string(),
                        detail: format!("simulated job state: {e}"),
                    })?;
                if p.ops.len() != model.profile.operators.len() {
                    return Err(EngineError::Malformed {
                        endpoint: f.display().to_string(),
                        detail: format!(
                            "the simulated job state has {} operators, the profile {}",
                            p.ops.len(),
                            model.profile.operators.len()
                        ),
                    });
                }
                Some(p)
            }
            _ => None,
        };
        let t = p.as_ref().map_or(0, |p| p.t as u64);
        Ok(SimulatedJob {
            inner: Arc::new(Mutex::new(Inner {
                p,
                metrics_rng: Rng::derive(seed ^ t, 2),
                jitter_rng: Rng::derive(seed ^ t, 3),
                last: None,
            })),
            model,
            seed,
            state_file,
        })
    }

    /// The seed the job was built with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Clock time of the job's second 0, once it has started (kept in the state file, so an
    /// accelerated clock can resume where it was).
    pub fn epoch_ms(&self) -> Option<u64> {
        self.lock().p.as_ref().map(|p| p.epoch_ms)
    }

    /// Rescales the engine has started so far.
    pub fn rescales(&self) -> u32 {
        self.lock().p.as_ref().map_or(0, |p| p.rescales)
    }

    /// The job's current parallelism (the profile's initial one before the first collection).
    pub fn parallelism(&self) -> u32 {
        self.lock()
            .p
            .as_ref()
            .map_or(self.model.profile.initial_parallelism, |p| {
                p.ops.iter().copied().max().unwrap_or(1)
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, p: &Persisted) -> Result<(), EngineError> {
        let Some(f) = &self.state_file else {
            return Ok(());
        };
        let tmp = f.with_extension("tmp");
        let text = serde_json::to_string(p).expect("plain data serialises");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, f))
            .map_err(|e| EngineError::Other(format!("{}: {e}", f.display())))
    }
}

fn to_state(p: &Persisted) -> JobState {
    JobState {
        ops: p.ops.clone(),
        lag: p.lag,
        downtime_left: p.downtime_left,
        since_checkpoint: p.since_checkpoint,
        arrived: p.arrived,
        processed: p.processed,
    }
}

fn store(p: &mut Persisted, s: JobState) {
    p.ops = s.ops;
    p.lag = s.lag;
    p.downtime_left = s.downtime_left;
    p.since_checkpoint = s.since_checkpoint;
    p.arrived = s.arrived;
    p.processed = s.processed;
}

#[async_trait::async_trait]
impl Collector for SimulatedJob {
    async fn collect(&self, now_ms: u64) -> Result<Collected, EngineError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let model = &self.model;
        let p = inner.p.get_or_insert_with(|| {
            let s = model.initial_state();
            Persisted {
                epoch_ms: now_ms,
                t: 0,
                ops: s.ops,
                lag: 0,
                downtime_left: 0,
                since_checkpoint: 0,
                arrived: 0,
                processed: 0,
                rescales: 0,
            }
        });
        let n = model.duration_s();
        let until = (now_ms.saturating_sub(p.epoch_ms) / 1000) as usize;
        if until > n {
            return Ok(Collected::NotReady {
                reason: format!("the simulated trace ended after {n} s"),
                parallelism: Some(p.ops.iter().copied().max().unwrap_or(1)),
            });
        }
        let mut s = to_state(p);
        while p.t < until.min(n) {
            let out = model.step(p.t, &mut s);
            inner.last = Some(observe(model, p.t, &s, &out, &mut inner.metrics_rng));
            p.t += 1;
        }
        store(p, s);
        let snapshot = p.clone();
        let last = inner.last.clone();
        drop(guard);
        self.save(&snapshot)?;
        let parallelism = snapshot.ops.iter().copied().max().unwrap_or(1);
        match last {
            _ if snapshot.downtime_left > 0 => Ok(Collected::NotReady {
                reason: format!("rescaling, {} s of downtime left", snapshot.downtime_left),
                parallelism: Some(parallelism),
            }),
            Some(mut obs) => {
                obs.at_ms = now_ms;
                Ok(Collected::Ready(obs))
            }
            None => Ok(Collected::NotReady {
                reason: "no second simulated yet".into(),
                parallelism: Some(parallelism),
            }),
        }
    }
}

#[async_trait::async_trait]
impl Actuator for SimulatedJob {
    async fn apply(&self, target: &Target) -> Result<ApplyOutcome, EngineError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(p) = inner.p.as_mut() else {
            return Ok(ApplyOutcome::InProgress("the job has not started".into()));
        };
        let prof = &self.model.profile;
        let ops: Vec<u32> = prof
            .operators
            .iter()
            .map(|o| target.for_operator(&o.id))
            .collect();
        if ops.iter().any(|v| *v == 0 || *v > prof.max_parallelism) {
            return Ok(ApplyOutcome::Rejected(format!(
                "parallelism must be within 1..={} (the profile's maximum)",
                prof.max_parallelism
            )));
        }
        if ops == p.ops {
            return Ok(ApplyOutcome::AlreadyAtTarget);
        }
        if p.downtime_left > 0 {
            return Ok(ApplyOutcome::InProgress(
                "a rescale is still in progress".into(),
            ));
        }
        let from = p.ops.iter().copied().max().unwrap_or(1);
        let to = ops.iter().copied().max().unwrap_or(1);
        let u = 2.0 * inner.jitter_rng.uniform() - 1.0;
        let downtime = self.model.downtime_s(from, to, u);
        let mut s = to_state(p);
        self.model.start_rescale(&mut s, ops, downtime);
        store(p, s);
        p.rescales += 1;
        let snapshot = p.clone();
        drop(guard);
        self.save(&snapshot)?;
        Ok(ApplyOutcome::Applied(format!(
            "simulated rescale {from} -> {to}, {downtime} s downtime"
        )))
    }

    async fn progress(&self, target: &Target) -> Result<Progress, EngineError> {
        let inner = self.lock();
        let Some(p) = inner.p.as_ref() else {
            return Ok(Progress::Pending("not started".into()));
        };
        let reached = self
            .model
            .profile
            .operators
            .iter()
            .zip(&p.ops)
            .all(|(o, v)| target.for_operator(&o.id) == *v);
        Ok(match (reached, p.downtime_left) {
            (true, 0) => Progress::Done,
            (true, d) => Progress::Pending(format!("{d} s of downtime left")),
            (false, _) => Progress::Pending("running at another parallelism".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::profile::{Engine, JobProfile};
    use crate::sim::trace::Trace;

    fn job(file: Option<PathBuf>) -> SimulatedJob {
        let profile = JobProfile::default_for(Engine::Flink);
        let trace = Trace {
            name: "flat".into(),
            rates: vec![20_000; 600],
        };
        SimulatedJob::new(Arc::new(Model::new(&profile, &trace, 1)), 1, file).unwrap()
    }

    #[tokio::test]
    async fn collects_rescales_and_reports_progress() {
        let j = job(None);
        assert!(matches!(
            j.collect(0).await.unwrap(),
            Collected::NotReady { .. }
        ));
        let Collected::Ready(o) = j.collect(10_000).await.unwrap() else {
            panic!("ready after 10 s")
        };
        assert_eq!(o.at_ms, 10_000);
        assert_eq!(o.input_records_per_sec, Some(20_000.0));
        let p0 = o.parallelism;
        let target = Target::job(p0 + 2);
        assert!(matches!(
            j.apply(&target).await.unwrap(),
            ApplyOutcome::Applied(_)
        ));
        assert_eq!(
            j.apply(&target).await.unwrap(),
            ApplyOutcome::AlreadyAtTarget
        );
        assert!(matches!(
            j.progress(&target).await.unwrap(),
            Progress::Pending(_)
        ));
        assert!(matches!(
            j.collect(11_000).await.unwrap(),
            Collected::NotReady { .. }
        ));
        let Collected::Ready(o) = j.collect(120_000).await.unwrap() else {
            panic!("ready after the downtime")
        };
        assert_eq!(o.parallelism, p0 + 2);
        assert_eq!(j.progress(&target).await.unwrap(), Progress::Done);
        assert_eq!(j.rescales(), 1);
        assert!(matches!(
            j.apply(&Target::job(1000)).await.unwrap(),
            ApplyOutcome::Rejected(_)
        ));
        let Collected::NotReady { reason, .. } = j.collect(3_600_000).await.unwrap() else {
            panic!("the trace is 600 s long")
        };
        assert!(reason.contains("ended"), "{reason}");
    }

    #[tokio::test]
    async fn a_state_file_carries_the_job_across_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("job.json");
        let a = job(Some(f.clone()));
        a.collect(10_000).await.unwrap();
        a.apply(&Target::job(5)).await.unwrap();
        drop(a);
        let b = job(Some(f.clone()));
        assert_eq!((b.parallelism(), b.rescales()), (5, 1));
        assert_eq!(
            b.apply(&Target::job(5)).await.unwrap(),
            ApplyOutcome::AlreadyAtTarget
        );
        std::fs::write(&f, "{not json").unwrap();
        assert!(SimulatedJob::new(job(None).model.clone(), 1, Some(f)).is_err());
    }
}
