//! The MAPE-K loop's roles. This issue provides the Plan role ([`ScalingPolicy`]) and the rule
//! that a failed plan holds the job ([`plan`]); the collectors, actuators and the loop itself
//! build on it.

mod plan;

pub use plan::{PlanOutcome, ScalingPolicy, plan, plan_metered};
