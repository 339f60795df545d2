//! `FlinkRescaleActuator`: in-place per-vertex rescaling through the adaptive scheduler's
//! `PUT /jobs/{id}/resource-requirements`.
//!
//! It sets every vertex's upper bound to its target (clamped to the vertex's max parallelism),
//! reads the requirements back to confirm the scheduler kept them, and reports
//! [`ApplyOutcome::AlreadyAtTarget`] without sending anything when the job already runs there
//! (idempotent). It respects the scheduler's own `cooldown-after-rescaling`, read from the
//! JobManager's configuration: a request inside it is reported as in progress, not sent. When
//! the job needs more slots than the cluster has, a [`TaskManagerPool`] (if configured) starts
//! TaskManagers; without one the request is rejected with the numbers. Clusters on the default
//! scheduler (no resource-requirements endpoint) are rejected with that reason; use
//! [`super::SavepointRescaleActuator`] for them.

use super::pool::TaskManagerPool;
use super::rest::{FlinkRest, ParallelismBounds, Requirements, VertexRequirement, parse_duration};
use super::{JobSelector, resolve};
use crate::clock::unix_now_ms;
use crate::engine::{Actuator, ApplyOutcome, EngineError, Progress, Target};
use std::sync::Mutex;
use std::time::Duration;

const COOLDOWN_KEY: &str = "jobmanager.adaptive-scheduler.executing.cooldown-after-rescaling";

/// The actuator.
pub struct FlinkRescaleActuator {
    rest: FlinkRest,
    job: JobSelector,
    pool: Option<Box<dyn TaskManagerPool>>,
    /// TaskManagers this actuator started (it only ever stops those).
    added: Mutex<u32>,
    /// The scheduler's cooldown, read once.
    cooldown: Mutex<Option<Duration>>,
    /// When this actuator last changed the requirements, ms since the epoch.
    last_applied_ms: Mutex<Option<u64>>,
}

impl std::fmt::Debug for FlinkRescaleActuator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlinkRescaleActuator")
            .field("rest", &self.rest.base())
            .field("job", &self.job)
            .field("pool", &self.pool.is_some())
            .finish_non_exhaustive()
    }
}

impl FlinkRescaleActuator {
    /// An actuator for `job`; `pool` grows the cluster when slots run short.
    pub fn new(rest: FlinkRest, job: JobSelector, pool: Option<Box<dyn TaskManagerPool>>) -> Self {
        FlinkRescaleActuator {
            rest,
            job,
            pool,
            added: Mutex::new(0),
            cooldown: Mutex::new(None),
            last_applied_ms: Mutex::new(None),
        }
    }

    async fn cooldown(&self) -> Duration {
        if let Some(c) = *self.cooldown.lock().expect("no panics while held") {
            return c;
        }
        // Flink's default is 30 s; an unreadable config keeps that, conservatively.
        let c = match self.rest.jobmanager_config().await {
            Ok(cfg) => cfg
                .get(COOLDOWN_KEY)
                .and_then(|v| parse_duration(v))
                .unwrap_or(Duration::from_secs(30)),
            Err(_) => return Duration::from_secs(30),
        };
        *self.cooldown.lock().expect("no panics while held") = Some(c);
        c
    }

    /// Makes sure the cluster has `needed` slots, starting TaskManagers through the pool;
    /// `Err(reason)` when it cannot.
    async fn ensure_slots(&self, needed: u32) -> Result<Result<(), String>, EngineError> {
        let ov = self.rest.overview().await?;
        if ov.slots_total >= needed {
            return Ok(Ok(()));
        }
        let Some(pool) = &self.pool else {
            return Ok(Err(format!(
                "needs {needed} slots, the cluster has {} and no TaskManager pool is configured",
                ov.slots_total
            )));
        };
        let per_tm = ov
            .slots_total
            .checked_div(ov.taskmanagers)
            .unwrap_or(1)
            .max(1);
        let missing = (needed - ov.slots_total).div_ceil(per_tm);
        for _ in 0..missing {
            pool.add().await?;
            *self.added.lock().expect("no panics while held") += 1;
        }
        tracing::info!(
            needed,
            have = ov.slots_total,
            started = missing,
            "Started TaskManagers for the rescale."
        );
        Ok(Ok(()))
    }

    /// [`Self::release_slots`] once the job is at its target: a TaskManager that cannot be
    /// stopped now is a leftover to report, not a rescale to keep pending (the next call tries
    /// again).
    async fn release_spare_slots(&self, needed: u32) {
        if let Err(e) = self.release_slots(needed).await {
            tracing::warn!(error = %e, "The job runs at its target; could not stop a spare TaskManager.");
        }
    }

    /// Stops TaskManagers this actuator started that the job no longer needs.
    async fn release_slots(&self, needed: u32) -> Result<(), EngineError> {
        let Some(pool) = &self.pool else {
            return Ok(());
        };
        let ov = self.rest.overview().await?;
        if ov.taskmanagers == 0 {
            return Ok(());
        }
        let per_tm = (ov.slots_total / ov.taskmanagers).max(1);
        let spare = ov.slots_total.saturating_sub(needed) / per_tm;
        let ours = *self.added.lock().expect("no panics while held");
        for _ in 0..spare.min(ours) {
            pool.remove().await?;
            *self.added.lock().expect("no panics while held") -= 1;
        }
        Ok(())
    }
}

/// Whether reading a running job's resource requirements failed because the cluster does not
/// run the adaptive scheduler: Flink without the endpoint answers 404 (or 405); Flink with it,
/// on the default scheduler, answers 500 with an `UnsupportedOperationException`.
fn without_adaptive_scheduler(e: &EngineError) -> bool {
    match e {
        // The job was just found, so a 404 under it is the endpoint's.
        EngineError::JobNotFound(path) => path.ends_with("/resource-requirements"),
        EngineError::Status { status, body, .. } => {
            matches!(status, 404 | 405)
                || (*status == 500
                    && (body.contains("UnsupportedOperationException")
                        || body.contains("does not support changing the parallelism")))
        }
        _ => false,
    }
}

#[async_trait::async_trait]
impl Actuator for FlinkRescaleActuator {
    async fn apply(&self, target: &Target) -> Result<ApplyOutcome, EngineError> {
        let job = resolve(&self.rest, &self.job).await?;
        if job.state != "RUNNING" {
            return Ok(ApplyOutcome::InProgress(format!("job is {}", job.state)));
        }
        let current = match self.rest.requirements(&job.jid).await {
            Ok(r) => r,
            Err(e) if without_adaptive_scheduler(&e) => {
                return Ok(ApplyOutcome::Rejected(format!(
                    "the cluster does not run the adaptive scheduler (the resource-requirements \
                     endpoint answered: {e}); set jobmanager.scheduler: adaptive, or rescale = \
                     \"savepoint\""
                )));
            }
            Err(e) => return Err(e),
        };
        let mut wanted = Requirements::new();
        let mut at_target = true;
        for v in &job.vertices {
            let mut p = target.for_operator(&v.id).max(1);
            if v.max_parallelism > 0 {
                p = p.min(u32::try_from(v.max_parallelism).unwrap_or(u32::MAX));
            }
            at_target &= v.parallelism == p;
            wanted.insert(
                v.id.clone(),
                VertexRequirement {
                    parallelism: ParallelismBounds {
                        lower_bound: 1,
                        upper_bound: p,
                    },
                },
            );
        }
        let needed = wanted
            .values()
            .map(|r| r.parallelism.upper_bound)
            .max()
            .unwrap_or(1);
        if at_target && current == wanted {
            self.release_spare_slots(needed).await;
            return Ok(ApplyOutcome::AlreadyAtTarget);
        }
        if current == wanted {
            return Ok(ApplyOutcome::InProgress(
                "requirements already set; the scheduler is still rescaling".into(),
            ));
        }
        let cooldown = self.cooldown().await;
        let last = *self.last_applied_ms.lock().expect("no panics while held");
        let now = unix_now_ms();
        if let Some(t) = last
            && now < t.saturating_add(u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX))
        {
            return Ok(ApplyOutcome::InProgress(format!(
                "within the scheduler's {} s cooldown after rescaling",
                cooldown.as_secs_f64()
            )));
        }
        if let Err(reason) = self.ensure_slots(needed).await? {
            return Ok(ApplyOutcome::Rejected(reason));
        }
        self.rest.set_requirements(&job.jid, &wanted).await?;
        let back = self.rest.requirements(&job.jid).await?;
        if back != wanted {
            return Ok(ApplyOutcome::Rejected(format!(
                "the scheduler did not keep the requirements (asked {wanted:?}, reads {back:?})"
            )));
        }
        *self.last_applied_ms.lock().expect("no panics while held") = Some(now);
        let summary: Vec<String> = job
            .vertices
            .iter()
            .map(|v| {
                format!(
                    "{} {}->{}",
                    v.name, v.parallelism, wanted[&v.id].parallelism.upper_bound
                )
            })
            .collect();
        Ok(ApplyOutcome::Applied(summary.join(", ")))
    }

    async fn progress(&self, target: &Target) -> Result<Progress, EngineError> {
        let job = match resolve(&self.rest, &self.job).await {
            Ok(j) => j,
            Err(EngineError::JobNotFound(why)) => return Ok(Progress::Pending(why)),
            Err(e) => return Err(e),
        };
        if job.state != "RUNNING" {
            return Ok(Progress::Pending(format!("job is {}", job.state)));
        }
        for v in &job.vertices {
            let mut p = target.for_operator(&v.id).max(1);
            if v.max_parallelism > 0 {
                p = p.min(u32::try_from(v.max_parallelism).unwrap_or(u32::MAX));
            }
            if v.status != "RUNNING" || v.parallelism != p {
                return Ok(Progress::Pending(format!(
                    "vertex {:?} is {} at {} (target {p})",
                    v.name, v.status, v.parallelism
                )));
            }
        }
        let needed = job
            .vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(1);
        self.release_spare_slots(needed).await;
        Ok(Progress::Done)
    }
}
