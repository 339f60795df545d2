//! Hot swap: a policy slot whose active policy is replaced atomically after validation.

use super::engine::{Digested, PolicyEngine};
use super::error::{LoadError, PolicyError};
use super::limits::PolicyLimits;
use super::loaded::{LoadReport, LoadedPolicy};
use crate::model::{Decision, DecisionInput, GuestError};
use arc_swap::ArcSwap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What a successful swap did and how long each step took.
#[derive(Debug, Clone)]
pub struct SwapReport {
    /// Digest of the policy that was active before.
    pub old_digest: String,
    /// Digest of the policy active now.
    pub new_digest: String,
    /// Load steps (compile or cache load, pre-instantiation, describe).
    pub load: LoadReport,
    /// The probe decision on the last input.
    pub validate: Duration,
    /// The atomic switch itself.
    pub swap: Duration,
    /// Whether the new policy accepted the job's state blob; if not, the job starts it fresh.
    pub state_handed_over: bool,
    /// The probe decision (not acted on).
    pub probe: Option<Decision>,
}

/// The policy of one job (or of several jobs sharing a policy), swappable while in use.
///
/// Readers call [`PolicySlot::active`] once at the start of a cycle and use that `Arc` to the
/// end, so a swap takes effect at the next tick boundary and a cycle in flight finishes on the
/// policy it started with. There is always an active policy: a failed reload changes nothing.
pub struct PolicySlot {
    engine: Arc<PolicyEngine>,
    limits: PolicyLimits,
    active: ArcSwap<LoadedPolicy>,
}

impl std::fmt::Debug for PolicySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicySlot")
            .field("active", &self.active.load().digest())
            .finish_non_exhaustive()
    }
}

impl PolicySlot {
    /// A slot with `initial` active, calling it under `limits`.
    pub fn new(engine: Arc<PolicyEngine>, initial: LoadedPolicy, limits: PolicyLimits) -> Self {
        PolicySlot {
            engine,
            limits,
            active: ArcSwap::from_pointee(initial),
        }
    }

    /// The active policy.
    pub fn active(&self) -> Arc<LoadedPolicy> {
        self.active.load_full()
    }

    /// Makes `policy` active again without validation (a rollback to a policy that already
    /// ran); returns the one it replaces.
    pub fn restore(&self, policy: Arc<LoadedPolicy>) -> Arc<LoadedPolicy> {
        self.active.swap(policy)
    }

    /// The engine the slot loads with.
    pub fn engine(&self) -> &Arc<PolicyEngine> {
        &self.engine
    }

    /// The limits applied to every call.
    pub fn limits(&self) -> &PolicyLimits {
        &self.limits
    }

    /// Loads `path` and swaps it in if it validates (see [`PolicySlot::swap_in`]). Blocking.
    pub fn reload_file(
        &self,
        path: &Path,
        expected_sha256: Option<&str>,
        probe: Option<&DecisionInput>,
    ) -> Result<SwapReport, LoadError> {
        let result = Digested::read(path).and_then(|wasm| {
            wasm.check(expected_sha256)?;
            self.load_and_swap(wasm, probe)
        });
        log_outcome(&self.active(), &result.as_ref());
        result
    }

    /// [`PolicySlot::reload_file`], except that a file holding the active component (and
    /// matching the pin, if any) is not loaded again: `Ok(None)`, nothing logged. The file is
    /// read and hashed once either way. Blocking.
    pub fn reload_file_if_changed(
        &self,
        path: &Path,
        expected_sha256: Option<&str>,
        probe: Option<&DecisionInput>,
    ) -> Result<Option<SwapReport>, LoadError> {
        match Digested::read(path) {
            Ok(wasm) => self.reload_digested_if_changed(wasm, expected_sha256, probe),
            Err(e) => {
                log_outcome(&self.active(), &Err(&e));
                Err(e)
            }
        }
    }

    /// [`PolicySlot::reload_file_if_changed`] for bytes already read and hashed (one file
    /// swapped into many jobs is read and hashed once). Blocking.
    pub fn reload_digested_if_changed(
        &self,
        wasm: Digested<'_>,
        expected_sha256: Option<&str>,
        probe: Option<&DecisionInput>,
    ) -> Result<Option<SwapReport>, LoadError> {
        let result = wasm.check(expected_sha256).and_then(|()| {
            if wasm.digest() == self.active().digest() {
                return Ok(None);
            }
            self.load_and_swap(wasm, probe).map(Some)
        });
        match &result {
            Ok(None) => {}
            Ok(Some(r)) => log_outcome(&self.active(), &Ok(r)),
            Err(e) => log_outcome(&self.active(), &Err(e)),
        }
        result
    }

    /// Loads `bytes` and swaps them in if they validate. Blocking.
    pub fn reload_bytes(
        &self,
        bytes: &[u8],
        probe: Option<&DecisionInput>,
    ) -> Result<SwapReport, LoadError> {
        self.reload_digested(Digested::new(bytes), probe)
    }

    /// [`PolicySlot::reload_bytes`] for bytes already hashed. Blocking.
    pub fn reload_digested(
        &self,
        wasm: Digested<'_>,
        probe: Option<&DecisionInput>,
    ) -> Result<SwapReport, LoadError> {
        let result = self.load_and_swap(wasm, probe);
        log_outcome(&self.active(), &result.as_ref());
        result
    }

    fn load_and_swap(
        &self,
        wasm: Digested<'_>,
        probe: Option<&DecisionInput>,
    ) -> Result<SwapReport, LoadError> {
        self.engine
            .load_digested(wasm, &self.limits)
            .and_then(|p| self.swap_in(p, probe))
    }

    /// Validates an already loaded policy with one dry decision on `probe` (the job's last
    /// input with its state blob, or the synthetic [`crate::conformance::params_probe`] before
    /// the first observation), then makes it active. Without a probe nothing is checked.
    ///
    /// The probe's params must all be documented by the new policy's `describe`. The probe may
    /// fail with `insufficient-history` (a fresh policy may need more data); any other failure
    /// (a trap, invalid params or output, a state it rejects even fresh) refuses the swap and
    /// the old policy stays active.
    pub fn swap_in(
        &self,
        new: LoadedPolicy,
        probe: Option<&DecisionInput>,
    ) -> Result<SwapReport, LoadError> {
        let mut clock = crate::clock::Stopwatch::start();
        if let Some(input) = probe {
            new.check_param_keys(&input.params)
                .map_err(|e| LoadError::Validation(Box::new(PolicyError::Guest(e))))?;
        }
        let (probe_decision, state_handed_over) = match probe {
            None => (None, false),
            Some(input) => match new.decide_with_state_fallback(input, &self.limits) {
                (Ok(d), kept) => (Some(d), kept),
                (Err(PolicyError::Guest(GuestError::InsufficientHistory(_))), kept) => (None, kept),
                (Err(e), _) => return Err(LoadError::Validation(Box::new(e))),
            },
        };
        let validate = clock.lap();
        let load = new.load_report();
        let new_digest = new.digest().to_string();
        let old = self.active.swap(Arc::new(new));
        let swap = clock.lap();
        Ok(SwapReport {
            old_digest: old.digest().to_string(),
            new_digest,
            load,
            validate,
            swap,
            state_handed_over,
            probe: probe_decision,
        })
    }
}

fn log_outcome(active: &LoadedPolicy, result: &Result<&SwapReport, &LoadError>) {
    match result {
        Ok(r) => tracing::info!(
            from = %short(&r.old_digest),
            to = %short(&r.new_digest),
            compile_ms = r.load.compile.as_secs_f64() * 1e3,
            cache_hit = r.load.cache_hit,
            shared = r.load.shared,
            validate_ms = r.validate.as_secs_f64() * 1e3,
            swap_us = r.swap.as_secs_f64() * 1e6,
            state_handed_over = r.state_handed_over,
            "Policy reloaded."
        ),
        Err(e) => tracing::warn!(
            active = %short(active.digest()),
            error = %e,
            "Policy reload failed; the active policy is unchanged."
        ),
    }
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}
