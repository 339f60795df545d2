//! One job's MAPE-K loop: collect -> policy -> guardrails -> actuate, one cycle per tick.
//!
//! Rules the loop keeps whatever the engine or the policy does:
//! - a failed collection, a "not ready" job or a failed policy holds the job (no action);
//! - while a rescale is in flight nothing new is requested; the rescale ends when the engine
//!   reports the target reached, or is abandoned after `rescale_timeout`;
//! - the proposal is clamped to the job's bounds, and the clamp is shown to the policy on the
//!   next tick (`previous.clamped-by`);
//! - `dry_run` logs what would be done and changes nothing.

use crate::engine::{Actuator, ApplyOutcome, Collected, Collector, Progress, Target};
use crate::mapek::{ScalingPolicy, plan};
use crate::model::{Action, Bounds, DecisionInput, Observation, PreviousOutcome, RescaleStatus};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// Settings of one job's loop.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Job name (logs, and the policy's `job-id`).
    pub name: String,
    /// Parallelism bounds.
    pub bounds: Bounds,
    /// Observations handed to the policy.
    pub history: Duration,
    /// Give up waiting for a rescale after this long.
    pub rescale_timeout: Duration,
    /// Recommend only.
    pub dry_run: bool,
    /// Policy parameters.
    pub params: Vec<(String, String)>,
}

/// What one cycle did.
#[derive(Debug, Clone, PartialEq)]
pub enum Cycle {
    /// Collection failed; the job holds.
    EngineError(String),
    /// The job is not ready (restarting, warming up, incomplete metrics); the job holds.
    NotReady(String),
    /// A rescale is still in flight.
    Rescaling(String),
    /// The policy decided (a hold when it failed).
    Decided {
        /// Parallelism when the cycle started.
        current: u32,
        /// What the policy proposed (job-level; for per-operator proposals the maximum).
        proposed: u32,
        /// After the guardrails.
        target: u32,
        /// The policy's reason (or why it failed).
        reason: String,
        /// What the actuator said, if anything was sent.
        applied: Option<ApplyOutcome>,
        /// Guardrails that changed the proposal.
        clamped_by: Vec<String>,
        /// The policy failed and the job held.
        policy_failed: bool,
    },
}

struct Pending {
    target: Target,
    started_ms: u64,
}

/// The loop of one job. Cycles never overlap: [`JobLoop::cycle`] takes `&mut self`.
pub struct JobLoop {
    settings: JobSettings,
    collector: Box<dyn Collector>,
    actuator: Box<dyn Actuator>,
    policy: Arc<dyn ScalingPolicy>,
    history: VecDeque<Observation>,
    state: Option<Vec<u8>>,
    previous: Option<PreviousOutcome>,
    rescale: RescaleStatus,
    pending: Option<Pending>,
}

impl JobLoop {
    /// A loop over the given connectors and policy.
    pub fn new(
        settings: JobSettings,
        collector: Box<dyn Collector>,
        actuator: Box<dyn Actuator>,
        policy: Arc<dyn ScalingPolicy>,
    ) -> Self {
        JobLoop {
            settings,
            collector,
            actuator,
            policy,
            history: VecDeque::new(),
            state: None,
            previous: None,
            rescale: RescaleStatus::default(),
            pending: None,
        }
    }

    /// The job's settings.
    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// Rescales applied so far.
    pub fn rescales(&self) -> u32 {
        self.rescale.count
    }

    /// The latest observation, if any.
    pub fn latest(&self) -> Option<&Observation> {
        self.history.back()
    }

    /// Runs one cycle at `now_ms`.
    pub async fn cycle(&mut self, now_ms: u64) -> Cycle {
        let name = self.settings.name.clone();
        let obs = match self.collector.collect(now_ms).await {
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "Collection failed; holding the job.");
                return Cycle::EngineError(e.to_string());
            }
            Ok(Collected::NotReady { reason, .. }) => {
                if let Some(c) = self.check_pending(now_ms).await {
                    return c;
                }
                tracing::info!(job = %name, %reason, "Job not ready; holding.");
                return Cycle::NotReady(reason);
            }
            Ok(Collected::Ready(obs)) => obs,
        };
        self.history.push_back(obs.clone());
        let since = now_ms.saturating_sub(self.settings.history.as_millis() as u64);
        while self.history.front().is_some_and(|o| o.at_ms < since) {
            self.history.pop_front();
        }
        if let Some(c) = self.check_pending(now_ms).await {
            return c;
        }
        let current = obs.parallelism;
        let input = DecisionInput {
            job_id: name.clone(),
            now_ms,
            current: obs.clone(),
            history: self
                .history
                .iter()
                .take(self.history.len().saturating_sub(1))
                .cloned()
                .collect(),
            bounds: self.settings.bounds,
            rescale: self.rescale.clone(),
            previous: self.previous.clone(),
            params: self.settings.params.clone(),
            state: self.state.clone(),
        };
        let outcome = plan(self.policy.as_ref(), input).await;
        let policy_failed = matches!(outcome, crate::mapek::PlanOutcome::Held { .. });
        let decision = outcome.decision().clone();
        self.state = decision.state.clone();
        // Per-operator targets over the current parallelism of every operator.
        let mut per_op: BTreeMap<String, u32> = obs
            .operators
            .iter()
            .map(|o| (o.operator_id.clone(), o.parallelism))
            .collect();
        let proposed_job = match &decision.action {
            Action::Hold => current,
            Action::Job(p) => {
                per_op.values_mut().for_each(|v| *v = *p);
                *p
            }
            Action::Operators(targets) => {
                for t in targets {
                    per_op.insert(t.operator_id.clone(), t.parallelism);
                }
                per_op.values().copied().max().unwrap_or(current)
            }
        };
        // Guardrails: the bounds.
        let b = self.settings.bounds;
        let mut clamped_by = Vec::new();
        for v in per_op.values_mut() {
            let c = (*v).clamp(b.min_parallelism, b.max_parallelism);
            if c != *v {
                *v = c;
                if !clamped_by.contains(&"bounds".to_string()) {
                    clamped_by.push("bounds".to_string());
                }
            }
        }
        let target_job = proposed_job.clamp(b.min_parallelism, b.max_parallelism);
        let changes = obs
            .operators
            .iter()
            .any(|o| per_op.get(&o.operator_id) != Some(&o.parallelism))
            || (obs.operators.is_empty() && target_job != current);
        let mut applied = None;
        let mut applied_p = current;
        if changes {
            let target = Target {
                job: target_job,
                operators: per_op,
            };
            if self.settings.dry_run {
                clamped_by.push("dry-run".to_string());
                tracing::info!(job = %name, current, target = target_job, reason = %decision.explanation.reason, "Dry run: would rescale.");
            } else {
                match self.actuator.apply(&target).await {
                    Ok(out) => {
                        match &out {
                            ApplyOutcome::Applied(detail) => {
                                self.rescale.count += 1;
                                self.rescale.in_progress = true;
                                self.rescale.started_ms = Some(now_ms);
                                self.pending = Some(Pending {
                                    target: target.clone(),
                                    started_ms: now_ms,
                                });
                                applied_p = target_job;
                                tracing::info!(job = %name, current, target = target_job, %detail, "Rescale applied.");
                            }
                            ApplyOutcome::AlreadyAtTarget => applied_p = target_job,
                            ApplyOutcome::InProgress(why) => {
                                clamped_by.push("engine-busy".to_string());
                                tracing::info!(job = %name, %why, "Engine busy; will retry.");
                            }
                            ApplyOutcome::Rejected(why) => {
                                clamped_by.push("engine-rejected".to_string());
                                tracing::warn!(job = %name, %why, "Rescale rejected by the engine.");
                            }
                        }
                        applied = Some(out);
                    }
                    Err(e) => {
                        clamped_by.push("engine-error".to_string());
                        tracing::warn!(job = %name, error = %e, "Rescale request failed; holding.");
                        applied = Some(ApplyOutcome::Rejected(e.to_string()));
                    }
                }
            }
        }
        let fmt = |v: Option<f64>| v.map_or_else(|| "?".to_string(), |v| format!("{v:.0}"));
        tracing::info!(
            job = %name,
            policy = %self.policy.info().name,
            input_rate = %fmt(obs.input_records_per_sec),
            lag = %fmt(obs.lag_records),
            current,
            proposed = proposed_job,
            target = applied_p,
            clamped = ?clamped_by,
            reason = %decision.explanation.reason,
            "Decision."
        );
        self.previous = Some(PreviousOutcome {
            proposed_parallelism: proposed_job,
            applied_parallelism: applied_p,
            clamped_by: clamped_by.clone(),
        });
        Cycle::Decided {
            current,
            proposed: proposed_job,
            target: target_job,
            reason: decision.explanation.reason.clone(),
            applied,
            clamped_by,
            policy_failed,
        }
    }

    /// While a rescale is in flight: `Some(cycle)` to end this cycle (still rescaling), `None`
    /// to go on deciding (finished or abandoned).
    async fn check_pending(&mut self, now_ms: u64) -> Option<Cycle> {
        let p = self.pending.as_ref()?;
        let name = &self.settings.name;
        let waited = now_ms.saturating_sub(p.started_ms);
        let status = match self.actuator.progress(&p.target).await {
            Ok(Progress::Done) => {
                tracing::info!(job = %name, seconds = waited as f64 / 1000.0, "Rescale finished.");
                self.finish(now_ms);
                return None;
            }
            Ok(Progress::Pending(why)) => why,
            Err(e) => e.to_string(),
        };
        if waited > self.settings.rescale_timeout.as_millis() as u64 {
            tracing::warn!(job = %name, %status, "Rescale did not finish in time; giving up on it.");
            self.finish(now_ms);
            return None;
        }
        Some(Cycle::Rescaling(status))
    }

    fn finish(&mut self, now_ms: u64) {
        self.pending = None;
        self.rescale.in_progress = false;
        self.rescale.started_ms = None;
        self.rescale.last_finished_ms = Some(now_ms);
    }
}
