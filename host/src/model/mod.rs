//! Plain data the host passes around: what a policy sees and what it answers.
//!
//! These types mirror `wit/types.wit` field by field (same names, same units), so that the
//! rest of the host never names a wasm binding. `policy::convert` is the only place that maps
//! between the two. They derive serde with the WIT's snake_case names, so JSON fixtures and
//! `daedalus policy decide --input` read and write the same shape a guest sees.

mod decision;
mod input;
mod observation;

pub use decision::{
    Action, Decision, Explanation, GuestError, MAX_EXPLANATION_BYTES, Metric, ParamSpec,
    PolicyInfo, ScaleTarget,
};
pub use input::{Bounds, DecisionInput, PreviousOutcome, RescaleStatus};
pub use observation::{Observation, OperatorSample, WorkerSample};
