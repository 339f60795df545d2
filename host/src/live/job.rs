//! One job's MAPE-K loop: collect -> policy (and shadows) -> guardrails -> actuate, one cycle
//! per tick.
//!
//! Rules the loop keeps whatever the engine or the policy does:
//! - a failed collection, a "not ready" job or a failed policy holds the job (no action);
//! - while a rescale is in flight nothing new is requested; the rescale ends when the engine
//!   reports the target reached, or is abandoned after `rescale_timeout`;
//! - the proposal goes through the [`Guardrails`]; each clamp is recorded with the decision and
//!   shown to the policy on the next tick (`previous.clamped-by`);
//! - `dry_run` and a paused job decide and record, and change nothing;
//! - swaps and promotions requested through [`JobShared`] take effect at a tick boundary; a
//!   swapped-in policy that fails `rollback_after` times in a row is rolled back to the last
//!   good one;
//! - with a [`Store`], everything is recorded, a rescale request is written before the engine
//!   is called, and [`JobLoop::restore`] resumes a job after a restart (state, history, an open
//!   rescale re-sent idempotently).

use super::guardrails::{GuardState, Guardrails};
use super::metrics::Metrics;
use super::shared::{Component, Divergence, JobShared, PolicyRef, Request, ShadowStatus};
use crate::engine::{Actuator, ApplyOutcome, Collected, Collector, Progress, Target};
use crate::mapek::{PlanOutcome, ScalingPolicy, plan_metered};
use crate::model::{
    Action, Bounds, Decision, DecisionInput, Observation, PreviousOutcome, RescaleStatus,
};
use crate::policy::{LoadedPolicy, PolicySlot};
use crate::store::{DecisionRecord, Store, explanation_json};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
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
    /// The job's latency objective, handed to the policy (none: the operator set none).
    pub latency_objective: Option<Duration>,
    /// Recommend only.
    pub dry_run: bool,
    /// Policy parameters.
    pub params: Vec<(String, String)>,
    /// Guardrails beyond the bounds.
    pub guardrails: Guardrails,
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

impl Cycle {
    fn kind(&self) -> &'static str {
        match self {
            Cycle::EngineError(_) => "engine-error",
            Cycle::NotReady(_) => "not-ready",
            Cycle::Rescaling(_) => "rescaling",
            Cycle::Decided { .. } => "decided",
        }
    }
}

struct Pending {
    target: Target,
    started_ms: u64,
    id: Option<i64>,
}

/// A candidate deciding in shadow.
pub struct Shadow {
    /// Name in reports.
    pub name: String,
    /// The candidate.
    pub policy: Arc<dyn ScalingPolicy>,
    /// Its slot, when it is a component (needed to promote it).
    pub slot: Option<Arc<PolicySlot>>,
    /// Its parameters.
    pub params: Vec<(String, String)>,
    state: Option<Vec<u8>>,
    previous: Option<PreviousOutcome>,
    divergence: Divergence,
}

impl Shadow {
    /// A candidate named `name`.
    pub fn new(
        name: &str,
        policy: Arc<dyn ScalingPolicy>,
        slot: Option<Arc<PolicySlot>>,
        params: Vec<(String, String)>,
    ) -> Self {
        Shadow {
            name: name.into(),
            policy,
            slot,
            params,
            state: None,
            previous: None,
            divergence: Divergence::default(),
        }
    }
}

/// A policy with the params and state blob it ran with.
type LastGood = (Arc<LoadedPolicy>, Vec<(String, String)>, Option<Vec<u8>>);

/// How the active policy is swapped and rolled back.
pub struct PolicyControl {
    /// The active policy's slot.
    pub slot: Arc<PolicySlot>,
    /// Its file (reloaded when the watcher reports a change).
    pub path: PathBuf,
    /// Its pinned digest, if any.
    pub sha256: Option<String>,
    /// Failures in a row of a swapped-in policy before it is rolled back.
    pub rollback_after: u32,
    /// The policy, params and state blob active before the last swap.
    last_good: Option<LastGood>,
    failures: u32,
    /// What the configuration sets: the configured file's digest (as last loaded from it) and
    /// the job's configured params. An override saved against another basis is not resumed.
    basis_digest: String,
    basis_params: Vec<(String, String)>,
    /// Who set the active policy, while it is not the configured one.
    set_by: Option<String>,
}

impl PolicyControl {
    /// Control over `slot`, loaded from `path`.
    pub fn new(
        slot: Arc<PolicySlot>,
        path: PathBuf,
        sha256: Option<String>,
        rollback_after: u32,
    ) -> Self {
        PolicyControl {
            slot,
            path,
            sha256,
            rollback_after,
            last_good: None,
            failures: 0,
            basis_digest: String::new(),
            basis_params: Vec::new(),
            set_by: None,
        }
    }
}

/// What the loop keeps across restarts besides the policy states.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LoopState {
    guard: GuardState,
    previous: Option<PreviousOutcome>,
    rescale: RescaleStatus,
    divergence: BTreeMap<String, Divergence>,
    /// Paused through the API: a restart keeps the job paused.
    #[serde(default)]
    paused: bool,
}

/// The loop of one job. Cycles never overlap: [`JobLoop::cycle`] takes `&mut self`.
pub struct JobLoop {
    settings: JobSettings,
    collector: Box<dyn Collector>,
    actuator: Box<dyn Actuator>,
    policy: Arc<dyn ScalingPolicy>,
    control: Option<PolicyControl>,
    shadows: Vec<Shadow>,
    store: Option<Arc<Store>>,
    metrics: Option<Arc<Metrics>>,
    shared: Arc<JobShared>,
    history: VecDeque<Observation>,
    state: Option<Vec<u8>>,
    ls: LoopState,
    pending: Option<Pending>,
    last_input: Option<DecisionInput>,
}

/// The first 12 hex digits of a digest, for messages.
pub(super) fn short(d: &str) -> &str {
    &d[..d.len().min(12)]
}

impl JobLoop {
    /// A loop over the given connectors and policy.
    pub fn new(
        settings: JobSettings,
        collector: Box<dyn Collector>,
        actuator: Box<dyn Actuator>,
        policy: Arc<dyn ScalingPolicy>,
    ) -> Self {
        let shared = Arc::new(JobShared::new(&settings.name));
        JobLoop {
            settings,
            collector,
            actuator,
            policy,
            control: None,
            shadows: Vec::new(),
            store: None,
            metrics: None,
            shared,
            history: VecDeque::new(),
            state: None,
            ls: LoopState::default(),
            pending: None,
            last_input: None,
        }
    }

    /// Records everything in `store` (call [`JobLoop::restore`] before the first cycle).
    pub fn with_store(mut self, store: Arc<Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Exports metrics into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Adds shadow candidates.
    pub fn with_shadows(mut self, shadows: Vec<Shadow>) -> Self {
        self.shadows = shadows;
        self
    }

    /// Enables swaps, file reloads and rollback of the active policy.
    pub fn with_control(mut self, mut control: PolicyControl) -> Self {
        control.basis_digest = control.slot.active().digest().to_string();
        control.basis_params = self.settings.params.clone();
        self.control = Some(control);
        self
    }

    /// What the API and the watcher share with this loop.
    pub fn shared(&self) -> Arc<JobShared> {
        self.shared.clone()
    }

    /// The job's settings.
    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// Stops what the host runs for the job (a process group's instances, gracefully);
    /// a job on an engine keeps running.
    pub async fn shutdown(&self) {
        self.actuator.shutdown().await;
    }

    /// Rescales applied so far.
    pub fn rescales(&self) -> u32 {
        self.ls.rescale.count
    }

    /// The active policy's digest.
    pub fn policy_digest(&self) -> String {
        self.policy.digest()
    }

    /// The latest observation, if any.
    pub fn latest(&self) -> Option<&Observation> {
        self.history.back()
    }

    /// Records a cycle that panicked (a host bug, not a policy's: policies trap inside their
    /// sandbox): logged with the panic's message and counted as a `cycle` error. The loop goes
    /// on with the next tick, which decides afresh from the engine's answer.
    pub fn cycle_panicked(&self, panic: &(dyn std::any::Any + Send)) {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        tracing::error!(job = %self.settings.name, panic = %message, "The job's cycle panicked; the job goes on at its next tick.");
        if let Some(m) = &self.metrics {
            m.errors
                .get_or_create(&Metrics::kind(&self.settings.name, "cycle"))
                .inc();
        }
    }

    fn store_err(&self, what: &str, e: impl std::fmt::Display) {
        tracing::error!(job = %self.settings.name, error = %e, "Cannot record {what}.");
        if let Some(m) = &self.metrics {
            m.errors
                .get_or_create(&Metrics::kind(&self.settings.name, "store"))
                .inc();
        }
    }

    /// Resumes from the store after a restart: the loop's and the policies' state, the
    /// observation history, and an unfinished rescale (re-sent; actuators are idempotent).
    pub async fn restore(&mut self) -> anyhow::Result<()> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let name = self.settings.name.clone();
        if let Some(ls) = store.loop_state::<LoopState>(&name)? {
            self.ls = ls;
        }
        if self.ls.paused {
            tracing::warn!(job = %name, "The job was paused before the restart and stays paused (POST /jobs/{{job}}/resume).");
            self.shared.set_paused(true);
        }
        if let Some(o) = store.policy_override(&name)? {
            self.resume_override(&store, o).await;
        }
        let digest = self.policy.digest();
        if let Some((d, state)) = store.policy_state(&name, "active")?
            && d == digest
        {
            self.state = state;
        }
        for s in &mut self.shadows {
            if let Some((d, state)) = store.policy_state(&name, &format!("shadow:{}", s.name))?
                && d == s.policy.digest()
            {
                s.state = state;
            }
            s.divergence = self.ls.divergence.get(&s.name).cloned().unwrap_or_default();
        }
        self.history = store
            .recent_observations(&name, self.settings.history.as_millis() as u64)?
            .into();
        // Pruning drops old rescale rows: the count is the larger of the loop's and the rows'.
        self.ls.rescale.count = self.ls.rescale.count.max(store.rescale_count(&name)?);
        if let Some(open) = store.open_rescale(&name)? {
            let target: Target = serde_json::from_str(&open.target)?;
            let mut id = Some(open.id);
            let b = self.settings.bounds;
            let within = |p: u32| (b.min_parallelism..=b.max_parallelism).contains(&p);
            let allowed = !self.settings.dry_run
                && !self.shared.paused()
                && within(target.job)
                && target.operators.values().all(|p| within(*p));
            if !open.applied && !allowed {
                // Not sent again under a config that would not send it now (dry run, paused,
                // bounds that exclude it): the loop decides afresh.
                store.rescale_outcome(open.id, "abandoned")?;
                tracing::warn!(job = %name, target = target.job,
                    "The rescale interrupted by the restart is not re-sent: the job is in dry run, paused, or the target is out of its bounds now.");
                id = None;
            } else if !open.applied {
                // The host stopped between writing the request and recording the engine's
                // answer: ask again. If the first request landed this sends nothing.
                let outcome = self.actuator.apply(&target).await;
                tracing::info!(job = %name, ?outcome, "Re-sent the rescale interrupted by the restart.");
                match outcome {
                    Ok(ApplyOutcome::Applied(_)) | Ok(ApplyOutcome::AlreadyAtTarget) => {
                        store.rescale_outcome(open.id, "applied")?;
                        self.ls.rescale.count += 1;
                        self.settings.guardrails.on_rescale(
                            &mut self.ls.guard,
                            open.requested_ms,
                            true,
                        );
                    }
                    Ok(ApplyOutcome::InProgress(_)) => {}
                    Ok(ApplyOutcome::Rejected(why)) => {
                        store.rescale_outcome(open.id, "rejected")?;
                        tracing::warn!(job = %name, %why, "The interrupted rescale is refused now.");
                        id = None;
                    }
                    Err(e) => {
                        // Not waited for until the rescale timeout: the loop decides afresh
                        // and asks again if the target still holds.
                        store.rescale_outcome(open.id, "error")?;
                        tracing::warn!(job = %name, error = %e, "Cannot re-send the interrupted rescale; deciding afresh.");
                        id = None;
                    }
                }
            }
            if id.is_some() {
                self.ls.rescale.in_progress = true;
                self.ls.rescale.started_ms = Some(open.requested_ms);
                self.pending = Some(Pending {
                    target,
                    started_ms: open.requested_ms,
                    id,
                });
            }
        }
        if self.pending.is_none() {
            // No rescale is open: a stored "in progress" is stale (policies hold while it is
            // set).
            self.ls.rescale.in_progress = false;
            self.ls.rescale.started_ms = None;
        }
        tracing::info!(job = %name, observations = self.history.len(), rescales = self.ls.rescale.count,
            resumed_rescale = self.pending.is_some(), "Restored from the store.");
        Ok(())
    }

    /// Makes the policy set through the API before the restart active again, with its params,
    /// if the configuration it overrode is unchanged; a changed configuration wins and the
    /// override is forgotten. The configured policy stays the rollback target.
    async fn resume_override(&mut self, store: &Store, o: crate::store::PolicyOverride) {
        let name = self.settings.name.clone();
        let forget = |why: &str| {
            tracing::warn!(job = %name, digest = %short(&o.digest), source = %o.source,
                "The policy set before the restart is not resumed: {why}; the configured policy runs.");
            if let Err(e) = store.clear_policy_override(&name) {
                tracing::error!(job = %name, error = %e, "Cannot forget the policy override.");
            }
        };
        let Some(c) = self.control.as_ref() else {
            forget("this job's policy cannot be swapped");
            return;
        };
        if o.basis_digest != c.basis_digest || o.basis_params != c.basis_params {
            forget("the configured policy or its params changed since it was set");
            return;
        }
        let wasm = crate::policy::Digested::owned(o.wasm);
        if wasm.digest() != o.digest {
            forget("its saved bytes do not match its digest");
            return;
        }
        let configured = c.slot.active();
        if configured.digest() == o.digest && self.settings.params == o.params {
            return;
        }
        let probe = crate::conformance::params_probe(
            &o.params,
            self.settings
                .latency_objective
                .map(|d| d.as_millis() as u64),
        );
        let slot = c.slot.clone();
        let loaded = if configured.digest() == o.digest {
            // Same component, other params: only the params change (checked when they were
            // set, against these same bytes).
            Ok(())
        } else {
            tokio::task::spawn_blocking(move || slot.reload_digested(wasm, Some(&probe)).map(drop))
                .await
                .unwrap_or_else(|e| Err(crate::policy::LoadError::Host(e.to_string())))
        };
        if let Err(e) = loaded {
            forget(&format!("it no longer loads ({e})"));
            return;
        }
        let c = self.control.as_mut().expect("checked above");
        c.last_good = Some((configured.clone(), self.settings.params.clone(), None));
        c.set_by = Some(o.source.clone());
        self.shared
            .update(|s| s.policy_set_by = Some(o.source.clone()));
        self.settings.params = o.params.clone();
        if let Some(shadow) = o.source.strip_prefix("promote:")
            && let Some(i) = self
                .shadows
                .iter()
                .position(|s| s.name == shadow && s.policy.digest() == o.digest)
        {
            // Promoted before the restart: it is the active policy, not a shadow any more.
            self.shadows.remove(i);
        }
        tracing::warn!(job = %name, digest = %short(&o.digest), source = %o.source,
            "Resumed the policy set before the restart (the configuration is unchanged since); the configured policy is its rollback target.");
    }

    /// Saves the active policy and params when they differ from the configured ones (so a
    /// restart resumes them), and forgets any saved override when they are the configured
    /// ones again. Saves the policy state under the active policy too.
    fn persist_override(&mut self, source: &str, now_ms: u64) {
        let Some(c) = self.control.as_mut() else {
            return;
        };
        let active = c.slot.active();
        let configured =
            active.digest() == c.basis_digest && self.settings.params == c.basis_params;
        c.set_by = (!configured).then(|| source.to_string());
        let set_by = c.set_by.clone();
        self.shared.update(|s| s.policy_set_by = set_by);
        let (Some(store), Some(c)) = (&self.store, &self.control) else {
            return;
        };
        // The state goes with the policy now active, so a restart before its next decision
        // still finds it.
        let state = store.put_policy_state(
            &self.settings.name,
            "active",
            active.digest(),
            self.state.as_deref(),
        );
        let result = if configured {
            store.clear_policy_override(&self.settings.name)
        } else {
            store.put_policy_override(&crate::store::PolicyOverride {
                job: self.settings.name.clone(),
                at_ms: now_ms,
                source: source.into(),
                digest: active.digest().into(),
                params: self.settings.params.clone(),
                wasm: active.source().to_vec(),
                basis_digest: c.basis_digest.clone(),
                basis_params: c.basis_params.clone(),
            })
        };
        for (what, r) in [("the policy state", state), ("the active policy", result)] {
            if let Err(e) = r {
                self.store_err(what, e);
            }
        }
    }

    /// Records a pause or resume set through the API that is not recorded yet: at once, so it
    /// survives a restart before the next decision (the job's loop calls this when one is
    /// set, and before each cycle).
    pub fn record_pause(&mut self) {
        let paused = self.shared.paused();
        if paused != self.ls.paused {
            self.ls.paused = paused;
            if let Some(store) = &self.store
                && let Err(e) = store.put_loop_state(&self.settings.name, &self.ls)
            {
                self.store_err("the pause", e);
            }
        }
    }

    /// Runs one cycle at `now_ms`.
    pub async fn cycle(&mut self, now_ms: u64) -> Cycle {
        self.handle_requests(now_ms).await;
        self.record_pause();
        let cycle = self.cycle_inner(now_ms).await;
        let name = self.settings.name.clone();
        if let Some(m) = &self.metrics {
            m.cycles
                .get_or_create(&Metrics::kind(&name, cycle.kind()))
                .inc();
        }
        let rescales = self.ls.rescale.count;
        let rescaling = self.pending.is_some();
        let text = match &cycle {
            Cycle::EngineError(e) => format!("engine error: {e}"),
            Cycle::NotReady(r) => format!("not ready: {r}"),
            Cycle::Rescaling(r) => format!("rescaling: {r}"),
            Cycle::Decided { reason, .. } => format!("decided: {reason}"),
        };
        self.shared.update(|s| {
            s.last_cycle = text;
            s.last_cycle_ms = now_ms;
            s.rescales = rescales;
            s.rescaling = rescaling;
            s.dry_run = self.settings.dry_run;
        });
        cycle
    }

    async fn cycle_inner(&mut self, now_ms: u64) -> Cycle {
        let name = self.settings.name.clone();
        let obs = match self.collector.collect(now_ms).await {
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "Collection failed; holding the job.");
                if let Some(m) = &self.metrics {
                    m.errors
                        .get_or_create(&Metrics::kind(&name, "engine"))
                        .inc();
                }
                return Cycle::EngineError(e.to_string());
            }
            Ok(Collected::NotReady {
                reason,
                parallelism,
            }) => {
                if let Some(p) = parallelism {
                    self.shared.update(|s| s.current = Some(p));
                }
                if let Some(c) = self.check_pending(now_ms).await {
                    return c;
                }
                match self.actuator.recover().await {
                    Ok(None) => {}
                    Ok(Some(why)) => {
                        tracing::warn!(job = %name, %reason, %why, "Job down after a rescale; recovering it.");
                        return Cycle::NotReady(format!("{reason}; {why}"));
                    }
                    Err(e) => {
                        tracing::warn!(job = %name, error = %e, "Cannot recover the job yet.");
                        return Cycle::NotReady(format!("{reason}; recovery failed: {e}"));
                    }
                }
                tracing::info!(job = %name, %reason, "Job not ready; holding.");
                return Cycle::NotReady(reason);
            }
            Ok(Collected::Ready(obs)) => obs.sanitized(),
        };
        if let Some(store) = &self.store
            && let Err(e) = store.put_observation(&name, &obs)
        {
            self.store_err("the observation", e);
        }
        if let Some(m) = &self.metrics {
            let l = Metrics::job(&name);
            m.parallelism
                .get_or_create(&l)
                .set(i64::from(obs.parallelism));
            if let Some(v) = obs.lag_records {
                m.lag.get_or_create(&l).set(v);
            }
            if let Some(v) = obs.input_records_per_sec {
                m.input_rate.get_or_create(&l).set(v);
            }
        }
        self.shared.update(|s| {
            s.current = Some(obs.parallelism);
            s.lag = obs.lag_records;
            s.input_rate = obs.input_records_per_sec;
        });
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
            latency_objective_ms: self
                .settings
                .latency_objective
                .map(|d| d.as_millis() as u64),
            rescale: self.ls.rescale.clone(),
            previous: self.ls.previous.clone(),
            params: self.settings.params.clone(),
            state: self.state.clone(),
        };
        self.last_input = Some(input.clone());
        let clock = crate::clock::Stopwatch::start();
        let (outcome, fuel) = plan_metered(self.policy.as_ref(), input.clone()).await;
        if let Some(m) = &self.metrics {
            let l = Metrics::job(&name);
            m.policy_seconds
                .get_or_create(&l)
                .observe(clock.elapsed().as_secs_f64());
            m.policy_fuel.get_or_create(&l).observe(fuel as f64);
            m.decisions
                .get_or_create(&Metrics::kind(&name, "active"))
                .inc();
        }
        let policy_error = match &outcome {
            PlanOutcome::Held { error, .. } => Some(error.to_string()),
            PlanOutcome::Decided(_) => None,
        };
        // A policy that needs more history holds by design (the WIT's `insufficient-history`):
        // not a failure, so neither counted as an error nor toward a rollback.
        let needs_history = matches!(
            &outcome,
            PlanOutcome::Held {
                error: crate::policy::PolicyError::Guest(
                    crate::model::GuestError::InsufficientHistory(_)
                ),
                ..
            }
        );
        let policy_failed = policy_error.is_some() && !needs_history;
        if policy_failed && let Some(m) = &self.metrics {
            m.errors
                .get_or_create(&Metrics::kind(&name, "policy"))
                .inc();
        }
        let decision = outcome.decision().clone();
        self.state = decision.state.clone();
        let digest = self.policy.digest();
        let policy_name = self.policy.info().name;
        if !needs_history {
            self.track_failures(policy_failed, now_ms);
        }

        // Per-operator view of the current and proposed parallelism (key "" when the job
        // reports no operators).
        let mut cur_map: BTreeMap<String, u32> = obs
            .operators
            .iter()
            .map(|o| (o.operator_id.clone(), o.parallelism))
            .collect();
        if cur_map.is_empty() {
            cur_map.insert(String::new(), current);
        }
        let (proposed_map, proposed_job) = proposal(&decision, &cur_map, current);
        let verdict = self.settings.guardrails.apply(
            self.settings.bounds,
            &mut self.ls.guard,
            now_ms,
            &cur_map,
            &proposed_map,
        );
        let mut clamped_by = verdict.clamped_by.clone();
        let target_job = verdict.job();
        let changes = verdict.targets != cur_map;

        let mut applied = None;
        let mut applied_p = current;
        if changes {
            let operators = verdict
                .targets
                .iter()
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            let target = Target {
                job: target_job,
                operators,
            };
            if self.settings.dry_run || self.shared.paused() {
                clamped_by.push(
                    if self.settings.dry_run {
                        "dry-run"
                    } else {
                        "paused"
                    }
                    .to_string(),
                );
                tracing::info!(job = %name, current, target = target_job, reason = %decision.explanation.reason, "Recommend only: would rescale.");
            } else {
                let (out, p) = self.actuate(&target, current, now_ms).await;
                applied_p = p;
                if let Some(c) = match &out {
                    ApplyOutcome::InProgress(_) => Some("engine-busy"),
                    ApplyOutcome::Rejected(_) => Some("engine-rejected"),
                    _ => None,
                } {
                    clamped_by.push(c.to_string());
                }
                applied = Some(out);
            }
        }
        // Shadows decide on the identical input, with their own params, state and history of
        // outcomes; their targets go through the same guardrails (on a copy of their state).
        // After the active policy's rescale is sent: a slow shadow never delays it.
        let shadow_targets = self.run_shadows(&input, &cur_map, current, now_ms).await;
        let rescaled = matches!(applied, Some(ApplyOutcome::Applied(_)));
        for (s, t) in self.shadows.iter_mut().zip(&shadow_targets) {
            s.divergence
                .record(current, if rescaled { target_job } else { current }, *t);
            s.previous = Some(PreviousOutcome {
                proposed_parallelism: t.unwrap_or(current),
                applied_parallelism: applied_p,
                clamped_by: vec!["shadow".to_string()],
            });
        }
        let fmt = |v: Option<f64>| v.map_or_else(|| "?".to_string(), |v| format!("{v:.0}"));
        // One line per decision: at info when it would change the parallelism, else at debug
        // (a steady fleet logs nothing at info).
        macro_rules! decision {
            ($level:ident) => {
                tracing::$level!(
                    job = %name,
                    policy = %policy_name,
                    input_rate = %fmt(obs.input_records_per_sec),
                    lag = %fmt(obs.lag_records),
                    current,
                    proposed = proposed_job,
                    target = applied_p,
                    clamped = ?clamped_by,
                    reason = %decision.explanation.reason,
                    "Decision."
                )
            };
        }
        if proposed_job != current || applied_p != current {
            decision!(info);
        } else {
            decision!(debug);
        }
        self.ls.previous = Some(PreviousOutcome {
            proposed_parallelism: proposed_job,
            applied_parallelism: applied_p,
            clamped_by: clamped_by.clone(),
        });
        let record = DecisionRecord {
            job: name.clone(),
            at_ms: now_ms,
            role: "active".into(),
            policy: policy_name.clone(),
            digest: digest.clone(),
            current,
            proposed: proposed_job,
            target: target_job,
            clamped_by: clamped_by.clone(),
            reason: decision.explanation.reason.clone(),
            explanation: explanation_json(&decision),
            error: policy_error,
        };
        self.persist(&record);
        if let Some(m) = &self.metrics {
            m.desired_parallelism
                .get_or_create(&Metrics::job(&name))
                .set(i64::from(target_job));
        }
        let shadows: Vec<ShadowStatus> = self
            .shadows
            .iter()
            .map(|s| ShadowStatus {
                name: s.name.clone(),
                policy: PolicyRef {
                    name: s.policy.info().name,
                    digest: s.policy.digest(),
                },
                disagreement_rate: s.divergence.disagreement_rate(),
                divergence: s.divergence.clone(),
            })
            .collect();
        let set_by = self.control.as_ref().and_then(|c| c.set_by.clone());
        // The policy active now (after a rollback on this tick, the one rolled back to; the
        // record names the one that decided).
        let active = PolicyRef {
            name: self.policy.info().name,
            digest: self.policy.digest(),
        };
        self.shared.update(|s| {
            s.desired = Some(target_job);
            s.policy_set_by = set_by;
            s.policy = active;
            s.shadows = shadows;
            s.recent_decisions.push_front(record);
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

    /// Sends `target` to the engine with the request written ahead; returns the outcome and
    /// the parallelism the job is at or heading to.
    async fn actuate(&mut self, target: &Target, current: u32, now_ms: u64) -> (ApplyOutcome, u32) {
        let name = self.settings.name.clone();
        let id = self.store.as_ref().and_then(|s| {
            let json = serde_json::to_string(target).expect("plain data");
            s.begin_rescale(&name, now_ms, current, target.job, &json)
                .map_err(|e| self.store_err("the rescale request", e))
                .ok()
        });
        failpoint("after-rescale-request");
        let out = match self.actuator.apply(target).await {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "Rescale request failed; holding.");
                if let Some(m) = &self.metrics {
                    m.errors
                        .get_or_create(&Metrics::kind(&name, "actuator"))
                        .inc();
                }
                ApplyOutcome::Rejected(e.to_string())
            }
        };
        failpoint("after-actuator-call");
        let (label, p) = match &out {
            ApplyOutcome::Applied(detail) => {
                self.ls.rescale.count += 1;
                self.ls.rescale.in_progress = true;
                self.ls.rescale.started_ms = Some(now_ms);
                self.settings
                    .guardrails
                    .on_rescale(&mut self.ls.guard, now_ms, true);
                self.pending = Some(Pending {
                    target: target.clone(),
                    started_ms: now_ms,
                    id,
                });
                if let Some(m) = &self.metrics {
                    m.rescales.get_or_create(&Metrics::job(&name)).inc();
                }
                tracing::info!(job = %name, current, target = target.job, %detail, "Rescale applied.");
                ("applied", target.job)
            }
            ApplyOutcome::AlreadyAtTarget => ("already", target.job),
            ApplyOutcome::InProgress(why) => {
                tracing::info!(job = %name, %why, "Engine busy; will retry.");
                ("busy", current)
            }
            ApplyOutcome::Rejected(why) => {
                tracing::warn!(job = %name, %why, "Rescale rejected by the engine.");
                ("rejected", current)
            }
        };
        if let (Some(store), Some(id)) = (&self.store, id)
            && let Err(e) = store.rescale_outcome(id, label)
        {
            self.store_err("the rescale outcome", e);
        }
        (out, p)
    }

    async fn run_shadows(
        &mut self,
        input: &DecisionInput,
        cur_map: &BTreeMap<String, u32>,
        current: u32,
        now_ms: u64,
    ) -> Vec<Option<u32>> {
        let mut out = Vec::with_capacity(self.shadows.len());
        let name = self.settings.name.clone();
        for s in &mut self.shadows {
            let mut si = input.clone();
            si.params = s.params.clone();
            si.state = s.state.clone();
            si.previous = s.previous.clone();
            let (outcome, _) = plan_metered(s.policy.as_ref(), si).await;
            let error = match &outcome {
                PlanOutcome::Held { error, .. } => Some(error.to_string()),
                PlanOutcome::Decided(_) => None,
            };
            let d = outcome.decision().clone();
            s.state = d.state.clone();
            let (pm, pj) = proposal(&d, cur_map, current);
            let mut guard = self.ls.guard.clone();
            let v = self.settings.guardrails.apply(
                self.settings.bounds,
                &mut guard,
                now_ms,
                cur_map,
                &pm,
            );
            out.push(error.is_none().then(|| v.job()));
            if let Some(m) = &self.metrics {
                m.decisions
                    .get_or_create(&Metrics::kind(&name, &s.name))
                    .inc();
            }
            let digest = s.policy.digest();
            if let Some(store) = &self.store {
                let rec = DecisionRecord {
                    job: name.clone(),
                    at_ms: now_ms,
                    role: s.name.clone(),
                    policy: s.policy.info().name,
                    digest: digest.clone(),
                    current,
                    proposed: pj,
                    target: v.job(),
                    clamped_by: v.clamped_by.clone(),
                    reason: d.explanation.reason.clone(),
                    explanation: explanation_json(&d),
                    error,
                };
                if let Err(e) = store.put_decision(&rec).and_then(|()| {
                    store.put_policy_state(
                        &name,
                        &format!("shadow:{}", s.name),
                        &digest,
                        s.state.as_deref(),
                    )
                }) {
                    tracing::error!(job = %name, error = %e, "Cannot record a shadow decision.");
                }
            }
        }
        out
    }

    /// Records the decision, the policy state (under the policy active now: after a rollback,
    /// the one rolled back to) and the loop state.
    fn persist(&mut self, record: &DecisionRecord) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let digest = self.policy.digest();
        self.ls.divergence = self
            .shadows
            .iter()
            .map(|s| (s.name.clone(), s.divergence.clone()))
            .collect();
        let name = &self.settings.name;
        let r = store
            .put_decision(record)
            .and_then(|()| store.put_policy_state(name, "active", &digest, self.state.as_deref()))
            .and_then(|()| store.put_loop_state(name, &self.ls));
        if let Err(e) = r {
            self.store_err("the decision", e);
        }
    }

    /// Counts failures of a swapped-in policy and rolls it back after `rollback_after` in a row.
    fn track_failures(&mut self, failed: bool, now_ms: u64) {
        let Some(c) = self.control.as_mut() else {
            return;
        };
        if !failed {
            c.failures = 0;
            return;
        }
        c.failures += 1;
        if c.failures < c.rollback_after {
            return;
        }
        let Some((good, params, state)) = c.last_good.take() else {
            return;
        };
        let bad = c.slot.restore(good.clone());
        c.failures = 0;
        self.settings.params = params;
        self.state = state;
        let detail = format!(
            "{} failed {} decisions in a row; rolled back to {}",
            bad.info().name,
            c.rollback_after,
            good.info().name
        );
        tracing::warn!(job = %self.settings.name, from = %short(bad.digest()), to = %short(good.digest()), "Policy rolled back: {detail}.");
        self.event("rollback", bad.digest(), good.digest(), &detail, now_ms);
        self.persist_override("rollback", now_ms);
    }

    fn event(&self, kind: &str, from: &str, to: &str, detail: &str, now_ms: u64) {
        if let Some(m) = &self.metrics {
            m.policy_events
                .get_or_create(&Metrics::kind(&self.settings.name, kind))
                .inc();
        }
        if let Some(store) = &self.store
            && let Err(e) = store.put_policy_event(&crate::store::PolicyEvent {
                job: self.settings.name.clone(),
                at_ms: now_ms,
                kind: kind.into(),
                from_digest: from.into(),
                to_digest: to.into(),
                detail: detail.into(),
            })
        {
            self.store_err("the policy event", e);
        }
    }

    /// Applies queued swaps and promotions (at the tick boundary).
    async fn handle_requests(&mut self, now_ms: u64) {
        let mut requests = self.shared.take_requests();
        // A file edit goes first: an API request handled on the same tick is the deliberate
        // act, and is not replaced right after it was answered.
        if self.shared.take_policy_changed()
            && let Some(swap) = self.configured_file_edit().await
        {
            requests.insert(0, swap);
        }
        for r in requests {
            match r {
                Request::Swap {
                    component,
                    sha256,
                    params,
                    source,
                    reply,
                } => {
                    let result = self.swap(component, sha256, params, &source, now_ms).await;
                    if let Some(tx) = reply {
                        let _ = tx.send(result);
                    }
                }
                Request::Reset { reply } => {
                    let result = match &self.control {
                        Some(c) => {
                            let file = Component::File(c.path.clone());
                            let (sha256, params) = (c.sha256.clone(), Some(c.basis_params.clone()));
                            self.swap(file, sha256, params, "reset", now_ms).await
                        }
                        None => Err("this job's policy cannot be swapped (not a component)".into()),
                    };
                    if let Some(tx) = reply {
                        let _ = tx.send(result);
                    }
                }
                Request::Promote { shadow, reply } => {
                    let result = self.promote(&shadow, now_ms);
                    if let Some(tx) = reply {
                        let _ = tx.send(result);
                    }
                }
            }
        }
    }

    /// The swap a change the watcher reported asks for, if the configured file's bytes did
    /// change. Bytes as last loaded (the file touched, rewritten the same, or its ConfigMap
    /// updated for another key) ask for nothing: the active policy stays, one set through the
    /// API or a promotion included. New bytes are the configuration now: they replace whatever
    /// runs, with the configured params (as a reset would), and replacing a policy set
    /// elsewhere is logged as a warning. A file that cannot be read is handed to the swap,
    /// which refuses it with the reason.
    async fn configured_file_edit(&self) -> Option<Request> {
        let c = self.control.as_ref()?;
        let path = c.path.clone();
        let read = tokio::task::spawn_blocking(move || crate::policy::Digested::read(&path))
            .await
            .ok()
            .and_then(Result::ok);
        let component = match read {
            Some(wasm) if wasm.digest() == c.basis_digest => {
                tracing::info!(job = %self.settings.name, file = %c.path.display(),
                    "The configured policy file's bytes are unchanged; the active policy stays.");
                return None;
            }
            Some(wasm) => {
                if let Some(by) = &c.set_by {
                    tracing::warn!(job = %self.settings.name, file = %c.path.display(), set_by = %by,
                        "The configured policy file changed: it replaces the policy set by {by}, with the configured params.");
                }
                Component::Bytes {
                    name: c.path.display().to_string(),
                    wasm: Arc::new(wasm),
                }
            }
            None => Component::File(c.path.clone()),
        };
        Some(Request::Swap {
            component,
            sha256: c.sha256.clone(),
            params: Some(c.basis_params.clone()),
            source: "file-watch".into(),
            reply: None,
        })
    }

    async fn swap(
        &mut self,
        component: Component,
        sha256: Option<String>,
        params: Option<Vec<(String, String)>>,
        source: &str,
        now_ms: u64,
    ) -> Result<String, String> {
        let Some(c) = self.control.as_ref() else {
            return Err("this job's policy cannot be swapped (not a component)".into());
        };
        let slot = c.slot.clone();
        let before = slot.active();
        // The last input; before the job's first observation, the synthetic input the
        // start-up check uses, so the new policy and its params are checked either way.
        let mut probe = self.last_input.clone().unwrap_or_else(|| {
            crate::conformance::params_probe(
                &self.settings.params,
                self.settings
                    .latency_objective
                    .map(|d| d.as_millis() as u64),
            )
        });
        probe.state = self.state.clone();
        if let Some(params) = &params {
            probe.params = params.clone();
        }
        let name = component.name();
        // New params are checked and applied even with the same component.
        let same_params = params.as_ref().is_none_or(|p| *p == self.settings.params);
        let result = tokio::task::spawn_blocking(move || {
            let pin = sha256.as_deref();
            match (component, same_params) {
                // Same bytes, same params: nothing to do.
                (Component::File(path), true) => {
                    slot.reload_file_if_changed(&path, pin, Some(&probe))
                }
                (Component::File(path), false) => {
                    slot.reload_file(&path, pin, Some(&probe)).map(Some)
                }
                (Component::Bytes { wasm, .. }, true) => {
                    slot.reload_digested_if_changed(wasm.borrowed(), pin, Some(&probe))
                }
                (Component::Bytes { wasm, .. }, false) => wasm
                    .check(pin)
                    .and_then(|()| slot.reload_digested(wasm.borrowed(), Some(&probe)))
                    .map(Some),
            }
        })
        .await
        .map_err(|e| format!("swap did not complete: {e}"))?;
        match result {
            Ok(None) => {
                if source == "reset" || source == "file-watch" {
                    // The configured file holds the active policy: that is the configuration.
                    let c = self.control.as_mut().expect("checked above");
                    c.basis_digest = self.policy.digest();
                    self.persist_override(source, now_ms);
                }
                Ok(format!("unchanged: {name} holds the active policy"))
            }
            Ok(Some(report)) => {
                let c = self.control.as_mut().expect("checked above");
                c.last_good = Some((before, self.settings.params.clone(), self.state.clone()));
                c.failures = 0;
                if source == "api" {
                    // The watcher follows the file the job was configured with.
                    tracing::info!(job = %self.settings.name, "Swapped through the API; the configured file stays watched.");
                } else if source == "file-watch" || source == "reset" {
                    // The configured file as it is now: that is the configuration.
                    c.basis_digest = report.new_digest.clone();
                }
                if let Some(p) = params {
                    self.settings.params = p;
                }
                if !report.state_handed_over {
                    self.state = None;
                }
                let detail = format!(
                    "{source}: {name} (state {})",
                    if report.state_handed_over {
                        "kept"
                    } else {
                        "started fresh"
                    }
                );
                self.event(
                    "swap",
                    &report.old_digest,
                    &report.new_digest,
                    &detail,
                    now_ms,
                );
                self.persist_override(source, now_ms);
                Ok(format!(
                    "swapped to {}; {detail}",
                    short(&report.new_digest)
                ))
            }
            Err(e) => {
                let active = self.policy.digest();
                self.event(
                    "swap-refused",
                    &active,
                    "",
                    &format!("{source}: {e}"),
                    now_ms,
                );
                Err(format!("swap refused, the active policy is unchanged: {e}"))
            }
        }
    }

    fn promote(&mut self, shadow: &str, now_ms: u64) -> Result<String, String> {
        let Some(i) = self.shadows.iter().position(|s| s.name == shadow) else {
            return Err(format!("no shadow named {shadow:?}"));
        };
        let Some(c) = self.control.as_mut() else {
            return Err("this job's policy cannot be swapped (not a component)".into());
        };
        let Some(candidate) = self.shadows[i].slot.as_ref().map(|s| s.active()) else {
            return Err(format!("shadow {shadow:?} is not a component"));
        };
        let s = self.shadows.remove(i);
        let old = c.slot.restore(candidate.clone());
        c.last_good = Some((
            old.clone(),
            self.settings.params.clone(),
            self.state.clone(),
        ));
        c.failures = 0;
        self.settings.params = s.params;
        self.state = s.state;
        self.ls.previous = s.previous;
        let detail = format!("shadow {shadow:?} promoted to active");
        self.event("promote", old.digest(), candidate.digest(), &detail, now_ms);
        self.persist_override(&format!("promote:{shadow}"), now_ms);
        Ok(detail)
    }

    /// While a rescale is in flight: `Some(cycle)` to end this cycle (still rescaling), `None`
    /// to go on deciding (finished or abandoned).
    async fn check_pending(&mut self, now_ms: u64) -> Option<Cycle> {
        let p = self.pending.as_ref()?;
        let name = self.settings.name.clone();
        let waited = now_ms.saturating_sub(p.started_ms);
        let status = match self.actuator.progress(&p.target).await {
            Ok(Progress::Done) => {
                tracing::info!(job = %name, seconds = waited as f64 / 1000.0, "Rescale finished.");
                self.finish(now_ms, "done");
                return None;
            }
            Ok(Progress::Pending(why)) => why,
            Err(e) => e.to_string(),
        };
        if waited > self.settings.rescale_timeout.as_millis() as u64 {
            tracing::warn!(job = %name, %status, "Rescale did not finish in time; giving up on it.");
            self.finish(now_ms, "timeout");
            return None;
        }
        Some(Cycle::Rescaling(status))
    }

    /// Drops the job's stored history older than `cutoff_ms`, and its full observations
    /// older than twice the policies' history window before `now_ms`.
    pub fn prune(&self, now_ms: u64, cutoff_ms: u64) {
        let window = 2 * self.settings.history.as_millis() as u64;
        if let Some(store) = &self.store {
            match store.prune(
                &self.settings.name,
                cutoff_ms,
                now_ms.saturating_sub(window),
            ) {
                Ok(n) => {
                    tracing::debug!(job = %self.settings.name, rows = n, "Pruned old history.")
                }
                Err(e) => self.store_err("the pruning", e),
            }
        }
    }

    fn finish(&mut self, now_ms: u64, outcome: &str) {
        if let Some(Pending { id: Some(id), .. }) = self.pending.take()
            && let Some(store) = &self.store
            && let Err(e) = store.finish_rescale(id, now_ms, outcome)
        {
            self.store_err("the end of the rescale", e);
        }
        self.ls.rescale.in_progress = false;
        self.ls.rescale.started_ms = None;
        self.ls.rescale.last_finished_ms = Some(now_ms);
        self.settings
            .guardrails
            .on_rescale(&mut self.ls.guard, now_ms, false);
        if let Some(store) = &self.store
            && let Err(e) = store.put_loop_state(&self.settings.name, &self.ls)
        {
            self.store_err("the loop state", e);
        }
    }
}

/// The per-operator proposal of `d` over `cur`, and its job-level parallelism.
fn proposal(
    d: &Decision,
    cur: &BTreeMap<String, u32>,
    current: u32,
) -> (BTreeMap<String, u32>, u32) {
    let mut m = cur.clone();
    let job = match &d.action {
        Action::Hold => current,
        Action::Job(p) => {
            m.values_mut().for_each(|v| *v = *p);
            *p
        }
        Action::Operators(targets) => {
            for t in targets {
                if let Some(v) = m.get_mut(&t.operator_id) {
                    *v = t.parallelism;
                }
            }
            m.values().copied().max().unwrap_or(current)
        }
    };
    (m, job)
}

/// Test hook for crash-recovery tests: when `DAEDALUS_FAILPOINT` names this point, the process
/// aborts here, as a host killed at that instant would.
fn failpoint(name: &str) {
    if std::env::var("DAEDALUS_FAILPOINT").is_ok_and(|v| v == name) {
        tracing::error!(failpoint = name, "Failpoint reached; aborting the process.");
        std::process::abort();
    }
}
