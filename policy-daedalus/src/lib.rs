//! Daedalus (Pfister et al., ICPE 2024): a self-adaptive MAPE-K scaling policy.
//!
//! Each decision (at most every `decision_interval_secs`; the calls in between only learn):
//!
//! 1. **Monitor/learn** from the host-owned history: per-worker regressions of throughput on
//!    CPU ([`capacity`]), the input-rate series ([`forecast`]), the statistics of
//!    `input - throughput` and the recovery being watched ([`anomaly`]).
//! 2. **Analyze**: job capacity at the current scale-out (skew-aware), capacity per candidate,
//!    the forecast (ARIMA or linear trend by WAPE).
//! 3. **Plan** ([`plan`]): the smallest scale-out that recovers within the target
//!    ([`recovery`]), covers the forecast peak during recovery and over the horizon, behind the
//!    cooldown, keep-if-sufficient and no-scale-down-with-backlog guards; the maximum when
//!    nothing qualifies.
//! 4. **Self-adapt**: after each rescale the observed recovery time moves the downtime estimate
//!    of that direction by one second (bounded).
//!
//! All knowledge lives in the state blob ([`state`]), so a hot swap or a restart keeps it.
//!
//! Deviations from the reference implementation (each fixes a defect it documents): the
//! recovery time counts the downtime once (`D + k + 1`, not `2D + k`); keeping the current
//! scale-out has no downtime and no replay; the anomaly statistics come from the live signal,
//! not canned files; the backlog guard compares records with records (lag vs
//! `backlog_tolerance_secs` of input); no wall-clock offset (time is the input's `now_ms`);
//! statistics use exact Welford/Chan updates; a worker with flat CPU gets a ratio model instead
//! of a division by zero; candidates beyond the useful parallelism (partitions) get the
//! capacity of the cap; the forecaster is ARIMA(p, d, 0) (see [`forecast`]); observed
//! capacities at two scale-outs are interpolated and extended rather than extrapolated
//! linearly; when no candidate covers the whole forecast, the smallest recovering one is taken
//! instead of the maximum (`fallback = max` restores the reference).

pub mod anomaly;
pub mod capacity;
pub mod forecast;
pub mod params;
pub mod plan;
pub mod recovery;
pub mod state;

pub use params::Params;
pub use plan::decide;

use daedalus_policy_sdk::{Decision, DecisionInput, Policy, PolicyError, PolicyInfo};

/// Daedalus behind the SDK's [`Policy`] trait (exported as the component on wasm).
pub struct Daedalus;

impl Policy for Daedalus {
    fn describe() -> PolicyInfo {
        plan::describe()
    }

    fn decide(input: DecisionInput) -> Result<Decision, PolicyError> {
        let params = Params::parse(&input.params)?;
        decide(&params, &input)
    }
}

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(test)]
mod tests;
