//! A compiled, checked policy, instantiated afresh for every call.

use super::bindings::{ScalingPolicyPre, v0_1};
use super::convert;
use super::engine::PolicyEngine;
use super::error::PolicyError;
use super::limits::PolicyLimits;
use super::sandbox::HostState;
use crate::model::{Decision, DecisionInput, GuestError, PolicyInfo};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::Store;

/// How long each load step took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadReport {
    /// Compiling, or loading the precompiled cache entry.
    pub compile: Duration,
    /// Whether the precompiled cache served the component.
    pub cache_hit: bool,
    /// Whether a copy of the same component already loaded in this engine served it: no
    /// compile, no cache read, and the compiled code and bytes are shared with that copy.
    pub shared: bool,
    /// Checking the interface and pre-instantiating.
    pub instantiate: Duration,
    /// The first `describe` call (instantiation included).
    pub describe: Duration,
}

/// A pre-instantiated component of one of the WIT versions the host serves.
#[derive(Clone)]
pub(crate) enum GuestPre {
    /// The current version.
    Current(ScalingPolicyPre<HostState>),
    /// 0.1.0, adapted by `convert::v0_1`.
    V0_1(v0_1::ScalingPolicyPre<HostState>),
}

/// Runs `body` with `pre` bound to the version's pre-instance and `conv` to its adapter in
/// `convert.rs`: one call path for every served version.
macro_rules! per_version {
    ($guest:expr, $pre:ident, $conv:ident => $body:expr) => {
        match $guest {
            GuestPre::Current($pre) => {
                use convert::current as $conv;
                $body
            }
            GuestPre::V0_1($pre) => {
                use convert::v0_1 as $conv;
                $body
            }
        }
    };
}

/// What a component compiles to, checked and pre-instantiated: shared by every
/// [`LoadedPolicy`] of the same bytes in one engine (see `PolicyEngine::load_bytes`).
pub(crate) struct Compiled {
    pub(crate) pre: GuestPre,
    pub(crate) wit_version: &'static str,
    pub(crate) digest: String,
    pub(crate) source: Arc<[u8]>,
    pub(crate) imports: Vec<String>,
}

/// A compiled component that passed the load checks, ready to be called.
///
/// Every call runs in a new `Store` with the limits set (fuel, epoch deadline, memory cap), so
/// guest memory never carries over between calls and a trapped instance is simply dropped.
/// The calls block: run them on `spawn_blocking` in async code.
#[derive(Clone)]
pub struct LoadedPolicy {
    engine: Arc<PolicyEngine>,
    compiled: Arc<Compiled>,
    info: PolicyInfo,
    report: LoadReport,
}

impl std::fmt::Debug for LoadedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPolicy")
            .field("name", &self.info.name)
            .field("digest", &self.compiled.digest)
            .finish_non_exhaustive()
    }
}

/// A finished call: its result and the fuel it burned.
#[derive(Debug, Clone)]
pub struct CallOutcome {
    /// The validated decision, or why there is none.
    pub result: Result<Decision, PolicyError>,
    /// Fuel consumed by the call (instantiation included).
    pub fuel_used: u64,
}

impl LoadedPolicy {
    pub(crate) fn new(engine: Arc<PolicyEngine>, compiled: Arc<Compiled>) -> Self {
        LoadedPolicy {
            engine,
            compiled,
            info: PolicyInfo {
                name: "unknown".into(),
                version: String::new(),
                description: String::new(),
                params: Vec::new(),
            },
            report: LoadReport::default(),
        }
    }

    pub(crate) fn set_info(&mut self, info: PolicyInfo) {
        self.info = info;
    }

    pub(crate) fn set_report(&mut self, report: LoadReport) {
        self.report = report;
    }

    /// The component's bytes as loaded (what [`LoadedPolicy::digest`] hashes): kept so the
    /// host can persist the active policy across restarts, whatever happens to its file.
    pub fn source(&self) -> &[u8] {
        &self.compiled.source
    }

    /// The policy's self-description.
    pub fn info(&self) -> &PolicyInfo {
        &self.info
    }

    /// Refuses a parameter key the policy does not document in `describe` (the WIT's
    /// `policy-info.params` lists the parameters a policy accepts), naming the key and the
    /// accepted ones.
    pub fn check_param_keys(&self, params: &[(String, String)]) -> Result<(), GuestError> {
        let documented: Vec<&str> = self.info.params.iter().map(|p| p.name.as_str()).collect();
        match params
            .iter()
            .find(|(k, _)| !documented.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) => Err(GuestError::InvalidParams(format!(
                "unknown parameter `{k}`; {} accepts {}",
                self.info.name,
                if documented.is_empty() {
                    "none".to_string()
                } else {
                    documented.join(", ")
                }
            ))),
        }
    }

    /// The version of `daedalus:autoscaler` the component targets (one the host serves).
    pub fn wit_version(&self) -> &'static str {
        self.compiled.wit_version
    }

    /// Lower-case hex sha256 of the component file.
    pub fn digest(&self) -> &str {
        &self.compiled.digest
    }

    /// The component's imports, with versions.
    pub fn imports(&self) -> &[String] {
        &self.compiled.imports
    }

    /// How long loading took.
    pub fn load_report(&self) -> LoadReport {
        self.report
    }

    fn store(&self, limits: &PolicyLimits) -> Result<Store<HostState>, PolicyError> {
        let mut store = Store::new(
            self.engine.wasmtime(),
            HostState::sandboxed(&self.info.name, limits),
        );
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| PolicyError::Host(format!("cannot set fuel: {e}")))?;
        store.set_epoch_deadline(self.engine.deadline_ticks(limits.deadline()));
        Ok(store)
    }

    /// Calls `describe` in a fresh store.
    pub fn describe_blocking(&self, limits: &PolicyLimits) -> Result<PolicyInfo, PolicyError> {
        let mut store = self.store(limits)?;
        let result = per_version!(&self.compiled.pre, pre, conv => pre
            .instantiate(&mut store)
            .and_then(|g| g.daedalus_autoscaler_policy().call_describe(&mut store))
            .map(conv::info));
        result.map_err(|e| convert::call_error(e, store.data()))
    }

    /// Calls `decide` in a fresh store and validates the answer against `input`.
    pub fn decide_blocking(
        &self,
        input: &DecisionInput,
        limits: &PolicyLimits,
    ) -> Result<Decision, PolicyError> {
        self.call_blocking(input, limits).result
    }

    /// Like [`Self::decide_blocking`], also reporting the fuel the call burned.
    pub fn call_blocking(&self, input: &DecisionInput, limits: &PolicyLimits) -> CallOutcome {
        let mut store = match self.store(limits) {
            Ok(s) => s,
            Err(e) => {
                return CallOutcome {
                    result: Err(e),
                    fuel_used: 0,
                };
            }
        };
        let raw = per_version!(&self.compiled.pre, pre, conv => {
            let wit_input = conv::input(input);
            pre.instantiate(&mut store).and_then(|g| {
                g.daedalus_autoscaler_policy()
                    .call_decide(&mut store, &wit_input)
                    .map(|r| r.map(conv::decision).map_err(conv::guest_error))
            })
        });
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let result = match raw {
            Err(e) => Err(convert::call_error(e, store.data())),
            Ok(Err(e)) => Err(PolicyError::Guest(e)),
            Ok(Ok(d)) => d
                .validate(input, limits.max_state_bytes)
                .map(|()| d)
                .map_err(PolicyError::InvalidOutput),
        };
        CallOutcome { result, fuel_used }
    }

    /// Decides, and when the policy rejects the state blob (`invalid-state`) decides again
    /// without it. Returns the outcome, and whether the state was kept: `false` once the
    /// policy rejected it, whatever the fresh decision then answered.
    pub fn decide_with_state_fallback(
        &self,
        input: &DecisionInput,
        limits: &PolicyLimits,
    ) -> (Result<Decision, PolicyError>, bool) {
        match self.decide_blocking(input, limits) {
            Err(PolicyError::Guest(GuestError::InvalidState(why))) if input.state.is_some() => {
                tracing::info!(policy = %self.info.name, reason = %why, "Policy refused the state blob; starting it fresh.");
                let mut fresh = input.clone();
                fresh.state = None;
                (self.decide_blocking(&fresh, limits), false)
            }
            other => (other, input.state.is_some()),
        }
    }
}
