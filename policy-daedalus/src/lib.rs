//! Daedalus (Pfister et al., ICPE 2024): a self-adaptive MAPE-K scaling policy.
//!
//! Each decision (at most every `decision_interval_secs`; the calls in between only learn):
//!
//! 1. **Monitor/learn** from the host-owned history: per-worker regressions of throughput on
//!    CPU ([`capacity`]), the input-rate series ([`forecast`]), the statistics of
//!    `input - throughput` and the recovery being watched ([`anomaly`]).
//! 2. **Analyze**: job capacity at the current scale-out (skew-aware), capacity per candidate,
//!    the forecast (ARIMA, linear trend or last value held, by WAPE at the horizon).
//! 3. **Plan** ([`plan`]): the smallest scale-out that recovers within the target
//!    ([`recovery`]), covers the forecast peak during recovery and over the horizon, behind the
//!    cooldown, keep-if-sufficient and no-scale-down-with-backlog guards; the largest capacity
//!    when nothing qualifies.
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
//!
//! Also beyond the reference, which assumes a clean signal and that every plan is carried out:
//! with no input rate in the last minute the policy answers `insufficient-history` (the load
//! is unknown, not zero); a proposal the host did not apply at all (`previous` shows the job
//! where it was: a guardrail held it, the engine refused or was busy) starts no cooldown and
//! no recovery watch, so it is proposed again at the next evaluation (a scale-down the host
//! delays, `scale_down_delay_secs`, is proposed again on every tick in between, since a hold
//! would cancel it); a timestamp ahead of
//! `now_ms` (a clock stepped back) is no recent rescale; forecasts kept for scoring thin out
//! beyond a 30-minute horizon so the state stays small.
//!
//! Beyond the reference (each a param, with its default and the value that turns it off):
//!
//! - **Falling behind** (`react_secs` 30, off: 0): when the lag has grown for `react_secs`, all
//!   after the last rescale, and exceeds `backlog_tolerance_secs` of input, the policy plans at
//!   once, past its loop period, the cooldown and the keep window, with every candidate's
//!   capacity scaled by the throughput the job actually reaches over the model's estimate. The
//!   reference waits up to its 60 s loop plus the 180 s cooldown while the lag grows.
//! - **Forecast margin** (`forecast_margin` 1.0, off: 0): a scale-out must also cover the forecast
//!   plus this many robust standard deviations of the input's 10-s movement, grown with the
//!   square root of the time until the policy could act again. A point forecast of a random
//!   walk is flat; the reference scaled down to 2% of headroom and then violated the latency.
//! - **Latency target** (`latency_target_secs`; by default the job's latency objective the host
//!   hands over, WIT 0.2.0's `latency-objective-ms`, off when there is none; 0 turns it off).
//!   A candidate must bring the queue back within that much input no more than
//!   `latency_slack_secs` (60) after the best candidate does; the keep window does not hold
//!   while the queue exceeds it. The reference has only its 600 s recovery target.
//! - **Robust trend**: the linear fallback uses the Theil-Sen slope from the latest point and
//!   follows it only as far ahead as it was measured (a minute), so a level shift is not read
//!   as a trend and a minute's slope is not extrapolated for ten (see
//!   [`forecast::linear`]).
//! - **Forecasts scored at the horizon** (`forecast_scoring` `horizon`, off: `reference`): each
//!   model (ARIMA, the linear trend, the last value held) is scored by its WAPE over every lead
//!   of the last two horizons' forecasts, the best is used, and ARIMA's bad-forecast count
//!   follows that score; the ARIMA order is also re-selected whenever the history has doubled
//!   since it was chosen. The reference scores only the next minute of a 15-minute forecast
//!   whose peak sizes the plan (see [`forecast`]).
//! - **Staged scale-ups** (`staged` `on`, off: `off`): a smaller scale-out that recovers in time is
//!   taken when the worker-seconds it saves until the forecast outgrows it exceed one more
//!   rescale to the scale-out sized for the horizon's peak.
//! - **Early scale-down** (`early_scale_down` `on`, off: `off`): once the last rescale has
//!   recovered (the recovery watch ended) and the lag is within `backlog_tolerance_secs` of
//!   input, a scale-down is planned past the cooldown and the keep window; scale-ups still wait
//!   for the cooldown unless the job falls behind.
//! - **Upper bound from the latest input** (`upper_bound` `trend`, off: `forecast`): the bound
//!   a scale-out must cover starts no lower than the latest 10-s input rate extended by its
//!   significant upward trend ([`forecast::Forecaster::drift`]).
//! - **Recovery covered with the margin** (`cover_recovery` `upper`, off: `forecast`): a
//!   candidate must cover that upper bound over its whole predicted recovery, not only the
//!   point forecast's peak.
//! - **Regressions restart after a rescale** (`refit_after_rescale` `on`, off: `off`): a
//!   worker's throughput per CPU depends on the scale-out; the observed capacities per
//!   scale-out are kept.
//! - **Deferred scale-ups** (`defer_scale_up` `on`, off: `off`): when the current scale-out
//!   covers the current rate, a scale-up waits while the lag plus its shortfall under the upper
//!   bound until the policy could act again stays within `backlog_tolerance_secs` of input.
//! - **Staged scale-downs** (`staged_scale_down` `on`, off: `off`): the reference scales down
//!   only to a scale-out covering the forecast peak over the whole horizon; a smaller one that
//!   covers the upper bound until the policy could scale up again is taken when what it saves
//!   until the bound outgrows it (less a scale-up's lead) exceeds the two rescales it costs.
//! - **Reached capacity as observed** (`reached_capacity` `observed`, off: `proportional`,
//!   our earlier rule; the reference has none): falling behind, the throughput reached is the
//!   capacity at the current scale-out, and larger ones are extrapolated from it
//!   ([`capacity::curve`]); optionally bounded by the Universal Scalability Law
//!   (`extrapolation` `usl`, [`capacity::usl_contention`]).
//! - **Riding a skilled forecast** (`queue_budget` 0.25, off: `0`): with a latency target and a
//!   forecast whose WAPE over the horizon is below `wape_good`, the smallest scale-out whose
//!   queue ([`recovery::ride`]) drains within that fraction of the target and is empty by the
//!   horizon's end replaces the plan, so short peaks are absorbed instead of provisioned for.
//! - **Useful capacity**: a scale-up must add capacity, and when nothing qualifies the target
//!   is the smallest scale-out with the maximum's capacity, not the maximum: instances beyond
//!   the partitions only add a rebalance.

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
        let params = Params::resolve(&input.params, input.latency_objective_ms)?;
        decide(&params, &input)
    }
}

#[cfg(target_arch = "wasm32")]
mod component;

#[cfg(test)]
mod tests;
