//! One Daedalus decision: learn from the new observations, then plan.

use crate::Params;
use crate::anomaly::Watch;
use crate::forecast::Forecast;
use crate::recovery::{Backlog, recovery_time};
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
    if st
        .last_eval_ms
        .is_some_and(|t| now < t + params.decision_interval_ms && now >= t)
    {
        return Ok(Decision::hold("between evaluations").with_state(st.encode()));
    }
    st.last_eval_ms = Some(now);
    let last_rescale = st.last_rescale_ms.max(input.rescale.last_finished_ms);
    if last_rescale.is_some_and(|t| now < t + params.cooldown_ms) {
        return hold(&st, "cooldown after a rescale");
    }
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
    let cap = |i: u32| st.capacity.capacity(i.min(useful_cap));
    if cap(p_now) <= 0.0 {
        return hold(&st, "no capacity information yet");
    }
    let forecast = st.forecaster.forecast(now, &params.forecast);
    let load = mean_finite(window.iter().map(|o| o.input_records_per_sec)).unwrap_or(0.0);
    let lag = input
        .current
        .lag_records
        .filter(|l| l.is_finite())
        .unwrap_or(0.0)
        .max(0.0);
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
    let (d_up, d_down) = (
        st.downtime_up_s.unwrap_or(params.downtime_up_s),
        st.downtime_down_s.unwrap_or(params.downtime_down_s),
    );
    metrics.push(Metric::new("downtime-up", d_up, "s"));
    metrics.push(Metric::new("downtime-down", d_down, "s"));
    let short_peak = forecast.peak(params.short_forecast_s);
    if last_rescale.is_some_and(|t| now < t + params.keep_window_ms)
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
    let mut reason = String::from("nothing qualifies: maximum scale-out");
    let mut choice = hi;
    let mut chosen_rt = f64::NAN;
    // The smallest candidate that recovers in time and covers the peak during its recovery,
    // for the `recovering` fallback when none covers the whole horizon.
    let mut recovering: Option<(u32, usize)> = None;
    for i in lo..=hi {
        let c = cap(i);
        if c <= load {
            continue;
        }
        let rescale = i != p_now;
        let downtime = if !rescale {
            0.0
        } else if i < p_now {
            d_down
        } else {
            d_up
        };
        let rt = recovery_time(&backlog, c, downtime.round() as usize, rescale);
        metrics.push(Metric::new(&format!("capacity:{i}"), c, "records/s"));
        metrics.push(Metric::new(
            &format!("recovery:{i}"),
            rt.map_or(f64::INFINITY, |r| r as f64),
            "s",
        ));
        let Some(rt) = rt.filter(|r| *r <= params.target_recovery_s) else {
            continue;
        };
        if c < forecast.peak(rt) {
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
        if c > forecast.peak(usize::MAX) {
            choice = i;
            chosen_rt = rt as f64;
            reason = format!(
                "{p_now} -> {i}: smallest scale-out recovering in {rt} s and covering the forecast peak"
            );
            break;
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
    if chosen_rt.is_finite() {
        metrics.push(Metric::new("chosen-recovery", chosen_rt, "s"));
    }
    if choice != p_now {
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
