//! One Daedalus decision: learn from the new observations, then plan.

use crate::Params;
use crate::anomaly::Watch;
use crate::forecast::Forecast;
use crate::recovery::{Backlog, over_latency_time, recovery_time};
use crate::state::State;
use daedalus_policy_sdk::history::mean_finite;
use daedalus_policy_sdk::{Decision, DecisionInput, Metric, ParamSpec, PolicyError, PolicyInfo};

/// The policy's self-description.
pub fn describe() -> PolicyInfo {
    let p = |n: &str, d: &str, desc: &str| ParamSpec::new(n, d, desc);
    PolicyInfo {
        name: "daedalus".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Daedalus: capacity models, forecasting and recovery-time-aware scaling."
            .into(),
        params: vec![
            p("decision_interval_secs", "60", "MAPE-K loop period, s"),
            p(
                "cooldown_secs",
                "180",
                "no decision this long after a rescale, s",
            ),
            p(
                "target_recovery_secs",
                "600",
                "a candidate must recover within this, s",
            ),
            p(
                "keep_window_secs",
                "600",
                "keep a sufficient scale-out this long after a rescale, s",
            ),
            p(
                "short_forecast_secs",
                "60",
                "forecast span the kept scale-out must cover, s",
            ),
            p(
                "checkpoint_interval_secs",
                "10",
                "records since the last checkpoint are replayed, s",
            ),
            p(
                "downtime_up_secs",
                "30",
                "initial scale-up downtime estimate, s",
            ),
            p(
                "downtime_down_secs",
                "15",
                "initial scale-down downtime estimate, s",
            ),
            p(
                "downtime_max_secs",
                "600",
                "upper bound of adapted downtimes, s",
            ),
            p(
                "warm_up_secs",
                "120",
                "worker samples this soon after a rescale are ignored, s",
            ),
            p(
                "backlog_tolerance_secs",
                "10",
                "no scale-down while lag exceeds this much input, s",
            ),
            p(
                "calm_secs",
                "30",
                "normal samples in a row that end a recovery, s",
            ),
            p(
                "react_secs",
                "30",
                "lag growing this long means falling behind: plan at once (0: off), s",
            ),
            p(
                "latency_target_secs",
                "objective",
                "latency objective: prefer candidates that restore it soonest, s; `objective` follows the job's objective from the host (off if none), 0 turns it off",
            ),
            p(
                "latency_slack_secs",
                "60",
                "how much later than the best candidate one may restore the latency, s",
            ),
            p(
                "forecast_margin",
                "1.0",
                "standard deviations of input movement to cover until the next chance to act",
            ),
            p(
                "min_cpu_spread",
                "0.03",
                "CPU standard deviation needed to trust a regression slope",
            ),
            p("forecast_horizon_secs", "900", "ARIMA horizon, s"),
            p("linear_horizon_secs", "600", "linear-trend horizon, s"),
            p("wape_use", "0.25", "use ARIMA while its WAPE is below this"),
            p(
                "wape_good",
                "0.10",
                "a forecast with WAPE below this is good",
            ),
            p(
                "retrain_after",
                "15",
                "bad forecasts in a row before re-selecting the order",
            ),
            p(
                "forecast_history_secs",
                "7200",
                "input-rate history kept for forecasting, s",
            ),
            p(
                "fallback",
                "recovering",
                "when no scale-out covers the whole forecast: `recovering` (smallest that recovers in time) or `max` (the reference)",
            ),
            p(
                "staged",
                "on",
                "scale up in stages when one more rescale costs less than provisioning for the horizon's peak now (`off`: the reference)",
            ),
            p(
                "early_scale_down",
                "on",
                "once the last rescale has recovered and the lag is small, scale down past the cooldown and keep window (`off`: the reference)",
            ),
            p(
                "upper_bound",
                "trend",
                "the forecast's upper bound starts from the latest input extended by its significant upward trend (`forecast`: the forecast's peak only)",
            ),
            p(
                "cover_recovery",
                "upper",
                "a candidate covers the upper bound with its margin over its whole recovery (`forecast`: the reference's point forecast)",
            ),
            p(
                "refit_after_rescale",
                "on",
                "restart the per-worker regressions after every rescale (`off`: the reference)",
            ),
            p(
                "defer_scale_up",
                "on",
                "hold a scale-up while the queue, plus the shortfall under the upper bound until the next chance to act, stays within the backlog tolerance (`off`: the reference)",
            ),
            p(
                "staged_scale_down",
                "on",
                "scale down into a trough shorter than the horizon when what it saves exceeds the rescale there and back (`off`: the reference)",
            ),
            p(
                "reached_capacity",
                "observed",
                "falling behind, take the reached throughput as the capacity at the current scale-out and extrapolate from it (`proportional`: scale every candidate by the shortfall)",
            ),
            p(
                "queue_budget",
                "0.25",
                "with a skilled forecast and a latency target, ride short peaks on the queue when it drains within this fraction of the target (`0`: off, the reference)",
            ),
            p(
                "extrapolation",
                "marginal",
                "capacity beyond the largest observed scale-out: the last marginal gain (`marginal`), or also bounded by the Universal Scalability Law fitted to the observations (`usl`)",
            ),
            p(
                "forecast_scoring",
                "horizon",
                "choose the forecast model by its WAPE over the whole horizon (`horizon`) or by the last forecast's first period (`reference`)",
            ),
        ],
    }
}

/// Learns from observations newer than the state has seen.
fn learn(params: &Params, input: &DecisionInput, st: &mut State) {
    let warm_until = input
        .rescale
        .last_finished_ms
        .map_or(0, |t| t + params.warm_up_ms);
    let rescale_from = if input.rescale.in_progress {
        input.rescale.started_ms
    } else {
        None
    };
    // A worker's throughput per CPU depends on the scale-out: regressions restart with each.
    if params.refit_after_rescale
        && let Some(f) = input.rescale.last_finished_ms
    {
        st.capacity.start_epoch(f);
    }
    for obs in input.observations() {
        if obs.at_ms <= st.last_seen_ms {
            continue;
        }
        st.last_seen_ms = obs.at_ms;
        if let Some(rate) = obs.input_records_per_sec {
            st.forecaster
                .push(obs.at_ms, rate, params.forecast.max_points);
        }
        let during_rescale = rescale_from.is_some_and(|s| obs.at_ms >= s);
        let diff = match (obs.input_records_per_sec, obs.throughput_records_per_sec) {
            (Some(i), Some(t)) if i.is_finite() && t.is_finite() => Some((i - t, i)),
            _ => None,
        };
        if let Some(w) = st.watch.as_mut() {
            let finished_after = input
                .rescale
                .last_finished_ms
                .is_some_and(|f| f >= w.started_ms && obs.at_ms > f);
            if finished_after
                && let Some((d, i)) = diff
                && let Some(observed) = w.feed(obs.at_ms, st.diff.anomalous(d, i), params.calm_s)
            {
                {
                    let (up, predicted) = (w.up, w.predicted_s);
                    let slot = if up {
                        &mut st.downtime_up_s
                    } else {
                        &mut st.downtime_down_s
                    };
                    let current = slot.unwrap_or(if up {
                        params.downtime_up_s
                    } else {
                        params.downtime_down_s
                    });
                    let step = if observed > predicted { 1.0 } else { -1.0 };
                    *slot = Some((current + step).clamp(1.0, params.downtime_max_s));
                    st.watch = None;
                }
            }
        } else if !during_rescale
            && obs.at_ms >= warm_until
            && let Some((d, _)) = diff
        {
            st.diff.add(d);
        }
        if !during_rescale && obs.at_ms >= warm_until {
            for w in &obs.workers {
                st.capacity.observe(
                    &w.worker_id,
                    w.cpu_utilization,
                    w.throughput_records_per_sec,
                );
            }
        }
    }
}

/// The mean throughput of a job that is falling behind, or `None` when it is not: over the
/// last `react_secs`, all after the last rescale, the lag grew, the input outran the
/// throughput, and the lag now exceeds `backlog_tolerance_secs` of input.
fn falling_behind(params: &Params, input: &DecisionInput, since_ms: Option<u64>) -> Option<f64> {
    if params.react_ms == 0 || input.rescale.in_progress {
        return None;
    }
    let from = input.now_ms.saturating_sub(params.react_ms);
    if since_ms.is_some_and(|s| s > from) {
        return None;
    }
    let window: Vec<_> = input.window(params.react_ms).collect();
    let lags: Vec<f64> = window
        .iter()
        .filter_map(|o| o.lag_records.filter(|l| l.is_finite()))
        .collect();
    let (first, last) = (*lags.first()?, *lags.last()?);
    let load = mean_finite(window.iter().map(|o| o.input_records_per_sec))?;
    // What the job reaches now (the window's start may predate the overload).
    let thr = mean_finite(
        input
            .window(params.react_ms / 3)
            .map(|o| o.throughput_records_per_sec),
    )?;
    let spans = window.last()?.at_ms.saturating_sub(window.first()?.at_ms) >= params.react_ms / 2;
    (spans
        && lags.len() >= 2
        && last > first
        && thr < load
        && last > params.backlog_tolerance_s * load.max(1.0))
    .then_some(thr)
}

/// Decides for validated parameters.
pub fn decide(params: &Params, input: &DecisionInput) -> Result<Decision, PolicyError> {
    let mut st = State::decode(input.state.as_deref())?;
    learn(params, input, &mut st);
    let hold = |st: &State, reason: &str| {
        Ok(Decision::hold(reason)
            .with_state(st.encode())
            .with_metric("guard", 0.0, reason))
    };
    if input.rescale.in_progress {
        return hold(&st, "rescale in progress");
    }
    let now = input.now_ms;
    // The host's previous outcome: a proposal it did not apply at all (a guardrail held it,
    // the engine refused or was busy) was no rescale, so it starts no cooldown or watch.
    let mut delayed = None;
    if let Some(prop) = st.proposal.take()
        && let Some(prev) = input
            .previous
            .as_ref()
            .filter(|p| p.proposed_parallelism == prop.target && p.applied_parallelism == prop.from)
    {
        st.last_rescale_ms = prop.last_rescale_before;
        st.watch = None;
        // A scale-down the host delays (`scale_down_delay_secs`) is made only if it is still
        // proposed when the delay ends; a hold would cancel it.
        if prev.clamped_by.iter().any(|c| c == "scale-down-delay")
            && prop.from == input.current.parallelism
        {
            delayed = Some(prop);
        }
    }
    // A time ahead of now (a clock stepped back, a state from another host) is no recent
    // rescale: it would hold every scale-up until the clock caught up.
    let last_rescale = st
        .last_rescale_ms
        .max(input.rescale.last_finished_ms)
        .filter(|t| *t <= now);
    let behind = falling_behind(params, input, last_rescale);
    if behind.is_none()
        && st
            .last_eval_ms
            .is_some_and(|t| now < t + params.decision_interval_ms && now >= t)
    {
        if let Some(prop) = delayed {
            // Between evaluations, the delayed scale-down is proposed again as it was.
            let target = prop.target;
            st.proposal = Some(crate::state::Proposal {
                last_rescale_before: st.last_rescale_ms,
                ..prop
            });
            st.last_rescale_ms = Some(now);
            return Ok(Decision::job(
                target,
                format!(
                    "{} -> {target} again: the host delays the scale-down",
                    prop.from
                ),
            )
            .with_state(st.encode()));
        }
        return Ok(Decision::hold("between evaluations").with_state(st.encode()));
    }
    st.last_eval_ms = Some(now);
    // Without the input rate the load is unknown, not zero: deciding on 0 would take the job
    // to its smallest scale-out (an input topic unreachable, an engine without one).
    let Some(load_now) = mean_finite(input.window(60_000).map(|o| o.input_records_per_sec)) else {
        return Err(PolicyError::InsufficientHistory(
            "no input rate in the last minute: the load is unknown".into(),
        ));
    };
    let lag_now = input
        .current
        .lag_records
        .filter(|l| l.is_finite())
        .unwrap_or(0.0)
        .max(0.0);
    // The last rescale has recovered and no backlog is left: a scale-down may come early.
    let settled = params.early_scale_down
        && st.watch.is_none()
        && lag_now <= params.backlog_tolerance_s * load_now.max(1.0);
    let in_cooldown = last_rescale.is_some_and(|t| now < t + params.cooldown_ms);
    if behind.is_none() && in_cooldown && !settled {
        return hold(&st, "cooldown after a rescale");
    }
    let no_up = behind.is_none() && in_cooldown;
    let p_now = input.current.parallelism.max(1);
    // Analyze: capacity at the current scale-out from the last minute's CPU per worker.
    let alive: Vec<&str> = input
        .current
        .workers
        .iter()
        .map(|w| w.worker_id.as_str())
        .collect();
    st.capacity.retain(&alive);
    let window: Vec<_> = input.window(60_000).collect();
    let window_cpu: Vec<(&str, f64)> = alive
        .iter()
        .filter_map(|w| {
            let cpu = mean_finite(window.iter().flat_map(|o| {
                o.workers
                    .iter()
                    .filter(|x| x.worker_id == *w)
                    .map(|x| x.cpu_utilization)
            }));
            cpu.map(|c| (*w, c))
        })
        .collect();
    let warm = input
        .rescale
        .last_finished_ms
        .is_some_and(|t| now < t + params.warm_up_ms);
    let useful_cap = input
        .current
        .operators
        .iter()
        .map(|o| o.max_parallelism)
        .filter(|m| *m > 0)
        .min()
        .unwrap_or(u32::MAX);
    if !warm {
        // Keyed by the useful parallelism: instances beyond the partitions add nothing.
        st.capacity
            .evaluate(p_now.min(useful_cap), &window_cpu, params.min_cpu_spread);
    }
    let model_cap = |i: u32| st.capacity.capacity_with(i.min(useful_cap), params.usl);
    if model_cap(p_now) <= 0.0 {
        return hold(&st, "no capacity information yet");
    }
    // Falling behind, the job runs at its capacity: what it reaches corrects the model. With
    // `reached_capacity = observed` it is taken as observed at the current scale-out, and
    // larger ones are extrapolated from it along the learned scaling curve; `proportional`
    // (the earlier rule) scales every candidate by the shortfall.
    let shortfall = behind.map_or(1.0, |thr| (thr / model_cap(p_now)).min(1.0));
    let reached = behind
        .filter(|_| shortfall < 1.0 && params.reached_as_observed)
        .map(|thr| {
            let mut observed = st.capacity.observed.clone();
            observed.insert(p_now.min(useful_cap), thr.max(0.0).trunc());
            observed
        });
    let cap = |i: u32| match &reached {
        Some(observed) => crate::capacity::curve(observed, i.min(useful_cap), params.usl),
        None => model_cap(i) * shortfall,
    };
    let forecast = st.forecaster.forecast(now, &params.forecast);
    let load = mean_finite(window.iter().map(|o| o.input_records_per_sec)).unwrap_or(0.0);
    let lag = lag_now;
    let ci = params.checkpoint_interval_s as usize;
    let since_checkpoint = mean_finite(
        input
            .window(params.checkpoint_interval_s * 1000)
            .map(|o| o.input_records_per_sec),
    )
    .unwrap_or(load)
        * ci as f64;
    let mut metrics = vec![
        Metric::new("capacity-now", cap(p_now), "records/s"),
        Metric::new("input-rate", load, "records/s"),
        Metric::new("lag", lag, "records"),
        Metric::new("forecast-peak", forecast.peak(usize::MAX), "records/s"),
        Metric::new(
            "forecast-model",
            match forecast.model {
                crate::forecast::Model::Flat => 0.0,
                crate::forecast::Model::Linear => 1.0,
                crate::forecast::Model::Arima => 2.0,
            },
            "0 flat, 1 linear, 2 arima",
        ),
    ];
    if let Some(w) = st.forecaster.wape.filter(|w| w.is_finite()) {
        metrics.push(Metric::new("forecast-wape", w, "ratio"));
    }
    for (name, w) in ["arima", "linear", "flat"].iter().zip(forecast.skill.wape) {
        if let Some(w) = w.filter(|w| w.is_finite()) {
            metrics.push(Metric::new(&format!("horizon-wape-{name}"), w, "ratio"));
        }
    }
    let (d_up, d_down) = (
        st.downtime_up_s.unwrap_or(params.downtime_up_s),
        st.downtime_down_s.unwrap_or(params.downtime_down_s),
    );
    metrics.push(Metric::new("downtime-up", d_up, "s"));
    metrics.push(Metric::new("downtime-down", d_down, "s"));
    if let Some(thr) = behind {
        metrics.push(Metric::new("falling-behind-throughput", thr, "records/s"));
        metrics.push(Metric::new("capacity-correction", shortfall, "ratio"));
    }
    // The forecast's upper bound over the next `secs`: its peak plus `forecast_margin`
    // deviations of the input's 10-s movement, grown as for a random walk.
    let sigma = st.forecaster.volatility(30);
    // Whether the forecast in use has proved itself over the horizon.
    let skilled = forecast.skill.wape[match forecast.model {
        crate::forecast::Model::Arima => 0,
        crate::forecast::Model::Linear => 1,
        crate::forecast::Model::Flat => 2,
    }]
    .is_some_and(|w| w.is_finite() && w < params.forecast.wape_good);
    // With `upper_bound = trend`, the bound starts no lower than the latest 10-s input
    // extended by its significant upward trend over the last 5 minutes.
    let (floor, drift) = if params.trend_floor {
        let recent =
            mean_finite(input.window(10_000).map(|o| o.input_records_per_sec)).unwrap_or(load);
        (recent, st.forecaster.drift(30).max(0.0))
    } else {
        (0.0, 0.0)
    };
    if drift > 0.0 {
        metrics.push(Metric::new("input-trend", drift, "records/s per s"));
    }
    // The bound over the next `secs` given the forecast's peak over them.
    let bound = |peak: f64, secs: f64| {
        peak.max(floor + drift * secs)
            + params.forecast_margin * sigma * (secs / crate::forecast::STEP_S as f64).sqrt()
    };
    let upper = |secs: u64| bound(forecast.peak(secs as usize), secs as f64);
    let (interval_s, cooldown_s) = (
        params.decision_interval_ms / 1000,
        params.cooldown_ms / 1000,
    );
    // Until the policy could act on a shortfall: its next loop (or, reacting, `react_secs`)
    // plus a scale-up's downtime; after a rescale also the cooldown, unless it reacts.
    let keep_until = if params.react_ms > 0 {
        (params.react_ms / 1000).min(interval_s)
    } else {
        interval_s
    } + d_up.round() as u64;
    let rescale_until = keep_until + if params.react_ms > 0 { 0 } else { cooldown_s };
    if sigma > 0.0 {
        metrics.push(Metric::new("input-volatility", sigma, "records/s per 10 s"));
    }
    let short_peak = forecast
        .peak(params.short_forecast_s)
        .max(upper(keep_until));
    let latency_at_risk = params.latency_target_s > 0.0 && lag > params.latency_target_s * load;
    if behind.is_none()
        && !latency_at_risk
        && !settled
        && last_rescale.is_some_and(|t| now < t + params.keep_window_ms)
        && cap(p_now) > load
        && cap(p_now) > short_peak
    {
        return finish(
            st,
            metrics,
            None,
            "keep: current scale-out suffices since the recent rescale",
            p_now,
            &forecast,
        );
    }
    let backlog = Backlog {
        since_checkpoint,
        lag,
        forecast: &forecast.values,
    };
    let (lo, hi) = (input.bounds.min_parallelism, input.bounds.max_parallelism);
    let downtime_of = |i: u32| {
        if i == p_now {
            0
        } else if i < p_now {
            d_down.round() as usize
        } else {
            d_up.round() as usize
        }
    };
    // Seconds each candidate needs to bring the latency back within the target, and the best.
    let allowed = params.latency_target_s * load.max(0.0);
    let over: Vec<Option<usize>> = (lo..=hi)
        .map(|i| {
            (params.latency_target_s > 0.0 && cap(i) > load).then(|| {
                over_latency_time(&backlog, cap(i), downtime_of(i), i != p_now, allowed)
                    .unwrap_or(usize::MAX)
            })
        })
        .collect();
    let best_over = over.iter().flatten().copied().min();
    if let Some(b) = best_over.filter(|b| *b > 0 && *b < usize::MAX) {
        metrics.push(Metric::new("latency-restored-best", b as f64, "s"));
    }
    // The maximum scale-out's capacity, at the smallest scale-out (not below the current one)
    // reaching it: instances beyond the useful parallelism (partitions) add downtime and
    // nothing else.
    let top = (p_now.clamp(lo, hi)..=hi)
        .find(|i| cap(*i) >= cap(hi))
        .unwrap_or(hi);
    let mut reason = if top == p_now {
        format!("nothing qualifies: {p_now} already has the most capacity")
    } else {
        format!("nothing qualifies: the largest capacity, at {top}")
    };
    let mut choice = top;
    let mut chosen_rt = f64::NAN;
    // The smallest candidate that recovers in time and covers the peak during its recovery,
    // for the `recovering` fallback when none covers the whole horizon.
    let mut recovering: Option<(u32, usize)> = None;
    // `upper(s)` for s = 1..=horizon, from the forecast's running peak (linear, not quadratic,
    // in the horizon), and how long a capacity keeps covering it: the staged scale-up's and
    // scale-down's life.
    let horizon = forecast.values.len().max(1);
    let mut running = 0.0_f64;
    let upper_curve: Vec<f64> = forecast
        .values
        .iter()
        .enumerate()
        .map(|(k, v)| {
            running = running.max(*v);
            bound(running, (k + 1) as f64)
        })
        .collect();
    let life_of = |c: f64| {
        upper_curve
            .iter()
            .position(|u| *u >= c)
            .map_or(horizon, |k| k + 1)
    };
    // The smaller scale-out saving the most over its two rescales: (scale-out, recovery, life,
    // saving, cost).
    let mut trough: Option<(u32, usize, usize, f64, f64)> = None;
    for i in lo..=hi {
        let c = cap(i);
        if c <= load || (i > p_now && c <= cap(p_now)) {
            continue;
        }
        let rescale = i != p_now;
        let rt = recovery_time(&backlog, c, downtime_of(i), rescale);
        metrics.push(Metric::new(&format!("capacity:{i}"), c, "records/s"));
        metrics.push(Metric::new(
            &format!("recovery:{i}"),
            rt.map_or(f64::INFINITY, |r| r as f64),
            "s",
        ));
        let Some(rt) = rt.filter(|r| *r <= params.target_recovery_s) else {
            continue;
        };
        if let (Some(Some(o)), Some(b)) = (over.get((i - lo) as usize), best_over)
            && *o > b.saturating_add(params.latency_slack_s)
        {
            continue;
        }
        if c < forecast.peak(rt) {
            continue;
        }
        // Until it has recovered the job has no headroom for a rise: cover its upper bound.
        if params.cover_recovery_upper && c < upper(rt as u64) {
            continue;
        }
        if c < upper(if rescale { rescale_until } else { keep_until }) {
            continue;
        }
        if i == p_now {
            choice = p_now;
            chosen_rt = rt as f64;
            reason = format!("keep {p_now}: recovers in {rt} s and covers the forecast");
            break;
        }
        if i < p_now && lag > params.backlog_tolerance_s * load.max(1.0) {
            continue;
        }
        if recovering.is_none() && i >= p_now {
            recovering = Some((i, rt));
        }
        if i < p_now && params.staged_scale_down && c <= forecast.peak(usize::MAX) {
            let life = life_of(c);
            let saving = f64::from(p_now - i) * life.saturating_sub(keep_until as usize) as f64;
            let cost = f64::from(p_now) * (d_down + d_up + 2.0 * rt as f64);
            if saving > cost && trough.is_none_or(|t| saving - cost > t.3 - t.4) {
                trough = Some((i, rt, life, saving, cost));
            }
        }
        if c > forecast.peak(usize::MAX) {
            choice = i;
            chosen_rt = rt as f64;
            reason = format!(
                "{p_now} -> {i}: smallest scale-out recovering in {rt} s and covering the forecast peak"
            );
            break;
        }
    }
    // Staged scale-down: rather than ride out a trough shorter than the horizon at the current
    // scale-out, go down for as long as the upper bound stays below the smaller capacity.
    if choice == p_now
        && chosen_rt.is_finite()
        && let Some((i, rt, life, saving, cost)) = trough
    {
        metrics.push(Metric::new("staged-life", life as f64, "s"));
        metrics.push(Metric::new("staged-saving", saving, "worker-s"));
        metrics.push(Metric::new("staged-rescale-cost", cost, "worker-s"));
        reason = format!(
            "{p_now} -> {i}: staged scale-down, recovers in {rt} s and covers the upper bound for {life} s (saves {saving:.0} worker-s against {cost:.0} for this rescale and the scale-up after it)"
        );
        choice = i;
        chosen_rt = rt as f64;
    }
    // Staged scale-up: the smaller scale-out that recovers in time, for as long as the forecast
    // (with its margin) stays below its capacity, if that saves more worker-seconds than one
    // more rescale to the long-lived choice costs.
    if params.staged
        && choice > p_now
        && chosen_rt.is_finite()
        && let Some((i, rt)) = recovering.filter(|(i, _)| *i < choice)
    {
        let life = life_of(cap(i));
        let saving = f64::from(choice - i) * life as f64;
        let penalty = f64::from(choice) * (d_up + chosen_rt);
        metrics.push(Metric::new("staged-life", life as f64, "s"));
        metrics.push(Metric::new("staged-saving", saving, "worker-s"));
        metrics.push(Metric::new("staged-rescale-cost", penalty, "worker-s"));
        if saving > penalty {
            reason = format!(
                "{p_now} -> {i}: staged, recovers in {rt} s and covers the forecast for {life} s (saves {saving:.0} worker-s against {penalty:.0} for one more rescale to {choice})"
            );
            choice = i;
            chosen_rt = rt as f64;
        }
    }
    if !chosen_rt.is_finite()
        && params.fallback_recovering
        && let Some((i, rt)) = recovering
    {
        choice = i;
        chosen_rt = rt as f64;
        reason = format!(
            "{p_now} -> {i}: no scale-out covers the whole forecast; smallest recovering in {rt} s and covering the peak meanwhile"
        );
    }
    // Riding a skilled forecast: when the forecast has proved itself over the horizon, the
    // smallest scale-out whose queue, fed by the forecast, never takes longer than
    // `queue_budget` of the latency target to drain and is empty again by the horizon's end may
    // replace the choice; short peaks are then absorbed by the queue rather than provisioned
    // for, as the oracle does. A scale-down this way must save more than its rescale costs.
    if params.queue_budget > 0.0
        && params.latency_target_s > 0.0
        && skilled
        && behind.is_none()
        && !latency_at_risk
    {
        let budget = params.queue_budget * params.latency_target_s;
        let horizon_s = horizon as f64;
        // Sustainable: above the forecast's mean (a flat forecast is never ridden below it).
        let mean = forecast.values.iter().sum::<f64>() / horizon_s;
        let ride = (lo..=choice.max(lo)).find_map(|i| {
            let (drain, left) = crate::recovery::ride(&backlog, cap(i), downtime_of(i), i != p_now);
            let ok = cap(i) > mean
                && drain <= budget
                && left <= params.backlog_tolerance_s * load.max(1.0);
            ok.then_some((i, drain))
        });
        if let Some((i, drain)) = ride.filter(|(i, _)| *i < choice) {
            let worth = i >= p_now
                || (lag <= params.backlog_tolerance_s * load.max(1.0)
                    && f64::from(p_now - i) * horizon_s > f64::from(p_now) * 2.0 * (d_down + d_up));
            if worth {
                metrics.push(Metric::new("ride-drain", drain, "s"));
                let plan = if i == p_now {
                    format!("keep {p_now}")
                } else {
                    format!("{p_now} -> {i}")
                };
                reason = format!(
                    "{plan}: rides the forecast, its queue drains within {drain:.0} s (budget {budget:.0} s) and is empty by the horizon"
                );
                choice = i;
                chosen_rt = f64::NAN;
            }
        }
    }
    // Deferred scale-up: when the current scale-out covers the current rate and the queue, plus
    // what it falls short of the upper bound until the policy could act again, stays within
    // the backlog tolerance, the rescale (and its downtime) can wait; if the rise comes, the
    // lag grows and the policy reacts then.
    if params.defer_scale_up && choice > p_now && behind.is_none() && cap(p_now) > load {
        let short = (upper(keep_until) - cap(p_now)).max(0.0) * keep_until as f64;
        let tolerated = params.backlog_tolerance_s * load.max(1.0);
        if lag + short <= tolerated {
            metrics.push(Metric::new("deferred-shortfall", short, "records"));
            return finish(
                st,
                metrics,
                None,
                &format!(
                    "defer {p_now} -> {choice}: the queue stays within {tolerated:.0} records until the next chance to act ({lag:.0} waiting, {short:.0} short)"
                ),
                p_now,
                &forecast,
            );
        }
    }
    if no_up && choice > p_now {
        return hold(
            &st,
            "cooldown after a rescale (only a scale-down may come early)",
        );
    }
    if chosen_rt.is_finite() {
        metrics.push(Metric::new("chosen-recovery", chosen_rt, "s"));
    }
    if choice != p_now {
        st.proposal = Some(crate::state::Proposal {
            from: p_now,
            target: choice,
            last_rescale_before: st.last_rescale_ms,
        });
        st.last_rescale_ms = Some(now);
        st.watch = Some(Watch {
            started_ms: now,
            up: choice > p_now,
            predicted_s: if chosen_rt.is_finite() {
                chosen_rt
            } else {
                params.target_recovery_s as f64
            },
            calm_since_ms: None,
        });
    }
    finish(
        st,
        metrics,
        (choice != p_now).then_some(choice),
        &reason,
        p_now,
        &forecast,
    )
}

fn finish(
    st: State,
    metrics: Vec<Metric>,
    target: Option<u32>,
    reason: &str,
    p_now: u32,
    _f: &Forecast,
) -> Result<Decision, PolicyError> {
    let mut d = match target {
        Some(t) if t != p_now => Decision::job(t, reason),
        _ => Decision::hold(reason),
    };
    d.explanation.metrics = metrics;
    Ok(d.with_state(st.encode()))
}
