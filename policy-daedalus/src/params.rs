//! Daedalus parameters, with the reference defaults.

use crate::forecast::ForecastParams;
use daedalus_policy_sdk::PolicyError;
use daedalus_policy_sdk::params::Params as Raw;

/// Every knob, validated. Keys are the `snake_case` names below with their unit suffix.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `decision_interval_secs` (60): the MAPE-K loop period; calls in between only learn.
    pub decision_interval_ms: u64,
    /// `cooldown_secs` (180): no decision this long after a rescale.
    pub cooldown_ms: u64,
    /// `target_recovery_secs` (600): a candidate must recover within this.
    pub target_recovery_s: usize,
    /// `keep_window_secs` (600): after a rescale, keep the scale-out this long if it covers the
    /// current rate and the next `short_forecast_secs`.
    pub keep_window_ms: u64,
    /// `short_forecast_secs` (60).
    pub short_forecast_s: usize,
    /// `checkpoint_interval_secs` (10): records since the last checkpoint are replayed.
    pub checkpoint_interval_s: u64,
    /// `downtime_up_secs` (30) / `downtime_down_secs` (15): initial downtime estimates.
    pub downtime_up_s: f64,
    /// See `downtime_up_s`.
    pub downtime_down_s: f64,
    /// `downtime_max_secs` (600): bound of the adapted downtimes (the lower bound is 1 s).
    pub downtime_max_s: f64,
    /// `warm_up_secs` (120): worker samples this soon after a rescale are not learned from.
    pub warm_up_ms: u64,
    /// `backlog_tolerance_secs` (10): no scale-down while the lag exceeds this many seconds of
    /// input (the reference compared a rate with a count).
    pub backlog_tolerance_s: f64,
    /// `min_cpu_spread` (0.03): the standard deviation of a worker's CPU utilization (a
    /// fraction) below which its regression slope is not trusted and the ratio model is used
    /// (see the capacity module).
    pub min_cpu_spread: f64,
    /// `calm_secs` (30): normal samples in a row that end a recovery.
    pub calm_s: u64,
    /// `react_secs` (30): when the lag has grown for this long (after the last rescale
    /// finished) and exceeds `backlog_tolerance_secs` of input, the job is falling behind: the
    /// policy plans at once, past the loop period, the cooldown and the keep window, and scales
    /// every candidate's capacity by the throughput actually reached. 0 turns it off (the
    /// reference waits for its next loop and its cooldown).
    pub react_ms: u64,
    /// `latency_target_secs` (`objective`: the job's latency objective from the host, WIT
    /// 0.2.0's `latency-objective-ms`, off when the operator set none; 0: off; or seconds).
    /// When set, a candidate must
    /// bring the queue back within this much input (see `recovery::over_latency_time`) no more
    /// than `latency_slack_secs` later than the best candidate does. The reference has no
    /// latency term: a 600 s recovery target lets the latency run far beyond most SLOs.
    pub latency_target_s: f64,
    /// `latency_slack_secs` (60, one loop period).
    pub latency_slack_s: usize,
    /// `forecast_margin` (1.0): a scale-out must also cover the forecast plus this many
    /// standard deviations of the input's movement until the policy could act again (the loop
    /// period plus a scale-up's downtime to keep; plus the cooldown to rescale), the deviation
    /// growing with the square root of that time as for a random walk (see
    /// `Forecaster::volatility`). 0 is the reference's point forecast.
    pub forecast_margin: f64,
    /// `fallback` (`recovering`): when no candidate covers the whole forecast horizon, take the
    /// smallest one (not below the current) that recovers in time and covers the peak during its
    /// recovery; `max` is the reference's maximum scale-out. A forecast that extrapolates a
    /// sudden jump otherwise sends the job to the maximum.
    pub fallback_recovering: bool,
    /// `staged` (`on`): a scale-up may stop at a smaller scale-out that covers the forecast
    /// only part of the horizon when the worker-seconds it saves until the forecast outgrows it
    /// exceed what one more rescale to the long-lived scale-out costs (that scale-out's workers
    /// for a scale-up's downtime plus its recovery); `off` is the reference, which provisions
    /// every scale-up for the forecast peak over the whole horizon at once.
    pub staged: bool,
    /// `early_scale_down` (`on`): once the last rescale has recovered (its recovery watch
    /// ended) and the lag is within `backlog_tolerance_secs` of input, a scale-down is planned
    /// past the cooldown and the keep window; scale-ups still wait out the cooldown unless the
    /// job falls behind. `off`: the reference, which holds every scale-out for the cooldown and
    /// a sufficient one for the keep window.
    pub early_scale_down: bool,
    /// `upper_bound` (`trend`): the forecast's upper bound is never below the latest 10-s input
    /// rate extended by its upward trend (when significant), plus the margin. `forecast`: the
    /// forecast's peak plus the margin only.
    pub trend_floor: bool,
    /// `cover_recovery` (`upper`): a candidate must cover the upper bound (with its margin)
    /// over its whole predicted recovery. `forecast`: the reference, the point forecast's peak
    /// during the recovery.
    pub cover_recovery_upper: bool,
    /// `refit_after_rescale` (`on`): the per-worker regressions restart after every rescale,
    /// since a worker's throughput per CPU depends on the scale-out; the observed capacities
    /// per scale-out are kept. `off`: the reference, one regression per worker for its
    /// lifetime.
    pub refit_after_rescale: bool,
    /// `defer_scale_up` (`on`): a scale-up waits while the lag, plus what the current
    /// scale-out falls short of the upper bound until the policy could act again, stays within
    /// `backlog_tolerance_secs` of input; a shortfall that persists makes the lag grow and the
    /// policy react. `off`: the reference, which scales up for any shortfall.
    pub defer_scale_up: bool,
    /// `staged_scale_down` (`on`): a scale-down may go to a smaller scale-out that covers the
    /// upper bound only part of the horizon (at least until the policy could scale up again)
    /// when the worker-seconds it saves, until the bound outgrows it less the lead a scale-up
    /// needs, exceed the two rescales it costs (the current workers for both downtimes and
    /// recoveries); the largest saving wins. `off`: the reference, which scales down only to a
    /// scale-out covering the forecast peak over the whole horizon, so a trough shorter than the
    /// horizon is ridden out at the scale-out of the last peak.
    pub staged_scale_down: bool,
    /// `reached_capacity` (`observed`): when the job falls behind, the throughput it reaches
    /// is taken as the capacity observed at the current scale-out, and larger scale-outs are
    /// extrapolated from it along the learned scaling curve (sub-linear when the observations
    /// show it). `proportional`: every candidate's modelled capacity is scaled by the shortfall,
    /// which extrapolates a scale-up that fell short in proportion again.
    pub reached_as_observed: bool,
    /// `extrapolation` (`marginal`): beyond the largest observed scale-out, capacity grows by
    /// the marginal gain between the two largest (never more than proportional; linear from a
    /// single observation, as the reference). `usl`: also bounded by the Universal Scalability
    /// Law's contention fitted to every observation, which bends the curve further down for a
    /// job that scales markedly sub-linearly (fewer scale-ups that fall short, more
    /// worker-seconds where scaling is near linear).
    pub usl: bool,
    /// `queue_budget` (0.25): while the forecast in use scores a WAPE below `wape_good` over
    /// the horizon and a latency target is set, the smallest scale-out whose queue, fed by the
    /// forecast after its downtime and replay, always drains within this fraction of the
    /// latency target and is empty by the horizon's end may replace the planned one: short
    /// peaks are absorbed by the queue instead of provisioned for (a scale-down this way must
    /// save more over the horizon than two rescales' downtime). `0`: off, the reference.
    pub queue_budget: f64,
    /// Forecasting: `forecast_horizon_secs` (900), `linear_horizon_secs` (600), `wape_use`
    /// (0.25), `wape_good` (0.10), `retrain_after` (15), `forecast_history_secs` (7200),
    /// `forecast_scoring` (`horizon`: the model with the lowest WAPE over every lead of the
    /// last two horizons' forecasts; `reference`: ARIMA while the last forecast's first period
    /// scored below `wape_use`, see the forecast module).
    pub forecast: ForecastParams,
}

/// The accepted keys.
pub const KEYS: &[&str] = &[
    "decision_interval_secs",
    "cooldown_secs",
    "target_recovery_secs",
    "keep_window_secs",
    "short_forecast_secs",
    "checkpoint_interval_secs",
    "downtime_up_secs",
    "downtime_down_secs",
    "downtime_max_secs",
    "warm_up_secs",
    "backlog_tolerance_secs",
    "calm_secs",
    "react_secs",
    "latency_target_secs",
    "latency_slack_secs",
    "forecast_margin",
    "min_cpu_spread",
    "forecast_horizon_secs",
    "linear_horizon_secs",
    "wape_use",
    "wape_good",
    "retrain_after",
    "forecast_history_secs",
    "fallback",
    "forecast_scoring",
    "staged",
    "early_scale_down",
    "upper_bound",
    "cover_recovery",
    "refit_after_rescale",
    "defer_scale_up",
    "staged_scale_down",
    "reached_capacity",
    "extrapolation",
    "queue_budget",
];

impl Params {
    /// Parses and validates, with no latency objective from the host.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, PolicyError> {
        Self::resolve(pairs, None)
    }

    /// Parses and validates; `objective_ms` is the job's latency objective from the host,
    /// which `latency_target_secs = "objective"` (the default) follows.
    pub fn resolve(
        pairs: &[(String, String)],
        objective_ms: Option<u64>,
    ) -> Result<Self, PolicyError> {
        let p = Raw::new(pairs, KEYS)?;
        let secs = |k: &str, d: u64, lo: u64, hi: u64| p.u64_in(k, d, lo, hi);
        Ok(Params {
            decision_interval_ms: secs("decision_interval_secs", 60, 1, 3600)? * 1000,
            cooldown_ms: secs("cooldown_secs", 180, 0, 86_400)? * 1000,
            target_recovery_s: secs("target_recovery_secs", 600, 1, 86_400)? as usize,
            keep_window_ms: secs("keep_window_secs", 600, 0, 86_400)? * 1000,
            short_forecast_s: secs("short_forecast_secs", 60, 1, 3600)? as usize,
            checkpoint_interval_s: secs("checkpoint_interval_secs", 10, 0, 3600)?,
            downtime_up_s: p.f64_in("downtime_up_secs", 30.0, 0.0, 3600.0)?,
            downtime_down_s: p.f64_in("downtime_down_secs", 15.0, 0.0, 3600.0)?,
            downtime_max_s: p.f64_in("downtime_max_secs", 600.0, 1.0, 3600.0)?,
            warm_up_ms: secs("warm_up_secs", 120, 0, 3600)? * 1000,
            backlog_tolerance_s: p.f64_in("backlog_tolerance_secs", 10.0, 0.0, 86_400.0)?,
            calm_s: secs("calm_secs", 30, 1, 3600)?,
            react_ms: secs("react_secs", 30, 0, 3600)? * 1000,
            latency_target_s: match p.raw("latency_target_secs") {
                None | Some("objective") => objective_ms.map_or(0.0, |ms| ms as f64 / 1000.0),
                Some(_) => p.f64_in("latency_target_secs", 0.0, 0.0, 86_400.0)?,
            },
            latency_slack_s: secs("latency_slack_secs", 60, 0, 3600)? as usize,
            forecast_margin: p.f64_in("forecast_margin", 1.0, 0.0, 10.0)?,
            min_cpu_spread: p.f64_in("min_cpu_spread", 0.03, 0.0, 1.0)?,
            fallback_recovering: p.choice("fallback", "recovering", &["recovering", "max"])?
                == "recovering",
            staged: p.choice("staged", "on", &["on", "off"])? == "on",
            early_scale_down: p.choice("early_scale_down", "on", &["on", "off"])? == "on",
            trend_floor: p.choice("upper_bound", "trend", &["trend", "forecast"])? == "trend",
            cover_recovery_upper: p.choice("cover_recovery", "upper", &["upper", "forecast"])?
                == "upper",
            refit_after_rescale: p.choice("refit_after_rescale", "on", &["on", "off"])? == "on",
            defer_scale_up: p.choice("defer_scale_up", "on", &["on", "off"])? == "on",
            staged_scale_down: p.choice("staged_scale_down", "on", &["on", "off"])? == "on",
            reached_as_observed: p.choice(
                "reached_capacity",
                "observed",
                &["observed", "proportional"],
            )? == "observed",
            usl: p.choice("extrapolation", "marginal", &["marginal", "usl"])? == "usl",
            queue_budget: p.f64_in("queue_budget", 0.25, 0.0, 1.0)?,
            forecast: ForecastParams {
                horizon_s: secs("forecast_horizon_secs", 900, 60, 7200)?,
                linear_horizon_s: secs("linear_horizon_secs", 600, 60, 7200)?,
                wape_use: p.f64_in("wape_use", 0.25, 0.0, 10.0)?,
                wape_good: p.f64_in("wape_good", 0.10, 0.0, 10.0)?,
                retrain_after: secs("retrain_after", 15, 1, 10_000)? as u32,
                max_points: (secs("forecast_history_secs", 7200, 600, 86_400)?
                    / crate::forecast::STEP_S) as usize,
                score_horizon: p.choice(
                    "forecast_scoring",
                    "horizon",
                    &["horizon", "reference"],
                )? == "horizon",
            },
        })
    }
}
