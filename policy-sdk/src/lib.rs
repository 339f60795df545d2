//! SDK for scaling policies of the Daedalus autoscaler.
//!
//! A policy is a type implementing [`Policy`], registered with [`export_policy!`], in a
//! crate with `crate-type = ["cdylib", "rlib"]` built for `wasm32-wasip2`:
//!
//! ```text
//! use daedalus_policy_sdk::{export_policy, Action, Decision, DecisionInput, Policy, PolicyError, PolicyInfo};
//!
//! struct Mine;
//! impl Policy for Mine {
//!     fn describe() -> PolicyInfo { /* name, version, params */ }
//!     fn decide(input: DecisionInput) -> Result<Decision, PolicyError> { /* the algorithm */ }
//! }
//! export_policy!(Mine);
//! ```
//!
//! Module map:
//! - the types ([`DecisionInput`], [`Decision`], ...) are generated from `wit/` and are plain
//!   Rust data, usable in native tests;
//! - [`params`]: typed, validated access to the `key = "value"` parameters;
//! - [`history`]: helpers over the host-owned observation window;
//! - [`log`]: the host's log sink.
//!
//! The types derive `serde` so tests can load inputs from JSON fixtures.
#![deny(missing_docs)]

pub mod history;
pub mod params;
pub mod testing;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "scaling-policy",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export_policy",
        default_bindings_module: "daedalus_policy_sdk::bindings",
        additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
    });
}

pub use bindings::daedalus::autoscaler::types::{
    Action, Bounds, Decision, DecisionInput, Explanation, LogLevel, Metric, Observation,
    OperatorSample, ParamSpec, PolicyError, PolicyInfo, PreviousOutcome, RescaleStatus,
    ScaleTarget, WorkerSample,
};
/// The trait a policy implements: `describe` and `decide`, both associated functions.
/// One component instance serves one call, so a policy keeps no memory between calls:
/// what it must remember goes in [`Decision::state`].
pub use bindings::exports::daedalus::autoscaler::policy::Guest as Policy;

/// Registers a type implementing [`Policy`] as the component's export.
///
/// Use it once, in code compiled only for wasm:
/// `#[cfg(target_arch = "wasm32")] daedalus_policy_sdk::export_policy!(MyPolicy);`
pub use bindings::export_policy;

/// Writes a line to the host's log. On native builds (tests) it writes to stderr.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

impl Metric {
    /// A named number for an [`Explanation`].
    pub fn new(name: &str, value: f64, unit: &str) -> Self {
        Metric {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
        }
    }
}

impl Decision {
    /// A decision to keep the current parallelism.
    pub fn hold(reason: impl Into<String>) -> Self {
        Decision {
            action: Action::Hold,
            explanation: Explanation {
                reason: reason.into(),
                metrics: Vec::new(),
            },
            state: None,
        }
    }

    /// A decision to run the whole job at `parallelism`.
    pub fn job(parallelism: u32, reason: impl Into<String>) -> Self {
        Decision {
            action: Action::Job(parallelism),
            ..Decision::hold(reason)
        }
    }

    /// Adds a metric to the explanation.
    pub fn with_metric(mut self, name: &str, value: f64, unit: &str) -> Self {
        self.explanation
            .metrics
            .push(Metric::new(name, value, unit));
        self
    }

    /// Sets the state blob handed back on the next call.
    pub fn with_state(mut self, state: Vec<u8>) -> Self {
        self.state = Some(state);
        self
    }

    /// The metric named `name`, if present.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.explanation
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }
}

impl ParamSpec {
    /// Describes one parameter.
    pub fn new(name: &str, default_value: &str, description: &str) -> Self {
        ParamSpec {
            name: name.to_string(),
            default_value: default_value.to_string(),
            description: description.to_string(),
        }
    }
}

impl Bounds {
    /// Clamps `p` into `[min_parallelism, max_parallelism]`.
    pub fn clamp(&self, p: u32) -> u32 {
        p.clamp(
            self.min_parallelism,
            self.max_parallelism.max(self.min_parallelism),
        )
    }
}
