//! Analyze C: workload forecasting.
//!
//! The input rate is kept as 10-second means (up to `max_points`). Two forecasters:
//!
//! - **ARIMA(p, d, 0)**, p <= 5, d in {0, 1}: autoregression on the (differenced) series fitted
//!   by least squares (normal equations, Gaussian elimination with partial pivoting), order
//!   chosen by AIC at (re)training, coefficients refitted
//!   at the chosen order on every update (as pmdarima's `update`). Moving-average terms of the
//!   reference's auto-ARIMA are left out: they need iterative likelihood fits that do not fit
//!   a policy's fuel budget, and a pure AR of order <= 5 on 10-s means forecasts these traces as
//!   well (see the WAPE tests);
//! - **linear trend**: the robust (Theil-Sen) slope of the last minute, extrapolated from the
//!   latest point (see [`linear`]).
//!
//! Each evaluation scores the previous ARIMA forecast by WAPE against what arrived; ARIMA is used
//! while its WAPE is below `wape_use` (0.25), the linear trend otherwise; after `retrain_after`
//! (15) consecutive forecasts with WAPE >= `wape_good` (0.10) the order is re-selected.
//!
//! **Scoring at the horizon** (deviation from the reference, `forecast_scoring = "horizon"`, the
//! default): the reference scores a forecast by its first loop period only (the next window
//! arrives 60 s after a 900-s forecast), so a model that follows the last minute closely is
//! trusted for all 15 minutes, although the plan sizes scale-outs by the forecast's *peak* over
//! the whole horizon. An AR model of a rising load carries the rise past the turn: on a sine
//! whose peak is 300k records/s it forecast 417k ten minutes ahead, with a 60-s WAPE of 0.002,
//! and the plan provisioned for a load that never came. So once a minute the forecaster keeps
//! each model's forecast (one value per minute of lead, for two horizons: [`Past`]), scores each
//! model (ARIMA, the linear trend, and the last value held) by its WAPE over every lead that
//! has arrived, and uses the one with the lowest; ARIMA still only while its short WAPE is
//! below `wape_use`. Until `MIN_SCORED` pairs have arrived the reference's rule applies.
//!
//! Determinism: the component must decide bit for bit as the native library, so this module
//! uses only `+ - * /` (and exactly rounded `sqrt`-free code paths): no platform `libm` (`ln`, `hypot`, ... differ in
//! the last bit between native and wasm builds) and no linear-algebra crate whose kernels pick
//! SIMD/FMA paths at run time. The logarithm in the AIC is [`ln`], a series in plain arithmetic.

use serde::{Deserialize, Serialize};

/// Seconds per series point.
pub const STEP_S: u64 = 10;

/// Forecasting knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastParams {
    /// ARIMA horizon, s.
    pub horizon_s: u64,
    /// Linear-trend horizon, s.
    pub linear_horizon_s: u64,
    /// WAPE below which ARIMA is used.
    pub wape_use: f64,
    /// WAPE below which a forecast counts as good.
    pub wape_good: f64,
    /// Consecutive bad forecasts before the order is re-selected.
    pub retrain_after: u32,
    /// Points kept (10 s each).
    pub max_points: usize,
    /// Choose the model by its WAPE over the whole horizon (see the module docs); `false` is
    /// the reference's choice by the last forecast's first period.
    pub score_horizon: bool,
}

/// Pairs of (forecast, actual) a model needs before its horizon WAPE is used.
pub const MIN_SCORED: usize = 20;

/// Points between the values a [`Past`] forecast keeps (one per minute of lead).
const PAST_EVERY: usize = 6;
/// The most forecasts kept for scoring (two horizons' worth: one a minute up to a 30-minute
/// horizon, sparser beyond).
const MAX_PAST: usize = 60;

/// One model forecast kept for scoring at every lead: the value of point
/// `PAST_EVERY * k + PAST_EVERY - 1` (the last 10 s of each minute of lead) for each model,
/// whose last kept value holds beyond its own horizon.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Past {
    /// Start of the forecast's first point, ms.
    pub start_ms: u64,
    /// ARIMA, linear trend and last value held, one value per minute of lead (empty: that
    /// model made no forecast, or ARIMA was retrained since).
    pub models: [Vec<f64>; 3],
}

/// Horizon WAPE of each model over the kept [`Past`] forecasts.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Skill {
    /// WAPE of ARIMA, linear trend and last value held, `None` with fewer than [`MIN_SCORED`]
    /// scored pairs.
    pub wape: [Option<f64>; 3],
}

/// A stored forecast, one value per `STEP_S` starting at `start_ms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// Start of the first step, ms.
    pub start_ms: u64,
    /// Values, records/s.
    pub values: Vec<f64>,
}

/// The forecaster's knowledge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Forecaster {
    /// 10-s means of the input rate, oldest first.
    pub series: Vec<f64>,
    /// Start of the next point to complete, ms (aligned to 10 s).
    pub next_start_ms: u64,
    /// Sum and count of the samples of the point being filled.
    pub partial: (f64, u32),
    /// Selected ARIMA order `(p, d)`, if trained.
    pub order: Option<(usize, usize)>,
    /// The last ARIMA forecast.
    pub last_arima: Option<Stored>,
    /// WAPE of the last scored ARIMA forecast (infinite before the first).
    pub wape: Option<f64>,
    /// Consecutive bad forecasts.
    pub bad: u32,
    /// Length of the series the order was selected on.
    #[serde(default)]
    pub selected_on: usize,
    /// Forecasts of the last two horizons, one a minute, for scoring at every lead.
    #[serde(default)]
    pub past: Vec<Past>,
}

/// Which model produced a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// ARIMA(p, d, 0).
    Arima,
    /// Linear trend.
    Linear,
    /// The last value held (too little data, or it forecast best at the horizon).
    Flat,
}

/// A forecast at 1-s resolution, `values[0]` = the coming second.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Records/s per second ahead.
    pub values: Vec<f64>,
    /// The model used.
    pub model: Model,
    /// How each model forecast at the horizon (empty before any scoring).
    pub skill: Skill,
}

impl Forecast {
    /// The peak over the first `secs` seconds (all of it if shorter).
    pub fn peak(&self, secs: usize) -> f64 {
        self.values
            .iter()
            .take(secs.max(1))
            .copied()
            .fold(0.0, f64::max)
    }
}

impl Forecaster {
    /// Adds an input-rate sample taken at `at_ms`; samples must come in time order.
    pub fn push(&mut self, at_ms: u64, rate: f64, max_points: usize) {
        if !rate.is_finite() || rate < 0.0 {
            return;
        }
        let step_ms = STEP_S * 1000;
        if self.next_start_ms == 0 && self.series.is_empty() && self.partial.1 == 0 {
            self.next_start_ms = at_ms - at_ms % step_ms;
        }
        if at_ms < self.next_start_ms {
            return;
        }
        while at_ms >= self.next_start_ms + step_ms {
            if self.partial.1 > 0 {
                self.series.push(self.partial.0 / f64::from(self.partial.1));
            } else if let Some(last) = self.series.last().copied() {
                self.series.push(last); // a gap: hold the last value
            }
            self.partial = (0.0, 0);
            self.next_start_ms += step_ms;
        }
        self.partial.0 += rate;
        self.partial.1 += 1;
        if self.series.len() > max_points {
            let cut = self.series.len() - max_points;
            self.series.drain(..cut);
        }
    }

    /// Scores the previous forecasts, (re)fits, and forecasts from `now_ms`.
    pub fn forecast(&mut self, now_ms: u64, p: &ForecastParams) -> Forecast {
        let skill = self.skill();
        // Scored at the horizon, a model is bad when its forecasts over every lead are: one
        // that tracks the next minute but not the next ten is retrained too.
        let horizon_wape = skill.wape[0].filter(|_| p.score_horizon);
        self.score(p.wape_good, horizon_wape);
        let completed_ms = self.next_start_ms;
        if self.series.len() < 12 {
            let last = self.series.last().copied().unwrap_or(0.0);
            return Forecast {
                values: vec![last; p.linear_horizon_s as usize],
                model: Model::Flat,
                skill: Skill::default(),
            };
        }
        // The order is also re-selected each time the history has doubled since it was chosen
        // (deviation: the reference selects once, on its first window, and again only after
        // bad forecasts; an order chosen on the first two minutes of a sine carried its rise
        // far past the peak, while its next-minute forecasts stayed good).
        let grown = self.series.len() >= 2 * self.selected_on;
        if self.order.is_none() || self.bad >= p.retrain_after || grown {
            self.order = Some(select_order(&self.series));
            self.selected_on = self.series.len();
            self.bad = 0;
            // The new order is judged by its own forecasts.
            for f in &mut self.past {
                f.models[0].clear();
            }
        }
        let (ar_p, d) = self.order.expect("set above");
        let steps = p.horizon_s.div_ceil(STEP_S) as usize;
        let arima =
            fit(&self.series, ar_p, d).map(|coef| predict(&self.series, &coef, ar_p, d, steps));
        if let Some(values) = &arima {
            self.last_arima = Some(Stored {
                start_ms: completed_ms,
                values: values.clone(),
            });
        }
        let lin_steps = p.linear_horizon_s.div_ceil(STEP_S) as usize;
        let lin = linear(&self.series, lin_steps);
        let last = *self.series.last().expect("checked above");
        self.keep(
            completed_ms,
            steps.max(lin_steps),
            [arima.as_deref(), Some(&lin), Some(&[last])],
        );
        let arima_ok = arima.is_some() && self.wape.is_some_and(|w| w < p.wape_use);
        let model = match skill.wape {
            // The model that forecast best over the horizon (ties to the earlier: ARIMA).
            [a, Some(l), Some(f)] if p.score_horizon && (a.is_some() || !arima_ok) => {
                let mut best = (if arima_ok { a } else { None }).map(|a| (Model::Arima, a));
                for (m, w) in [(Model::Linear, l), (Model::Flat, f)] {
                    if best.is_none_or(|(_, b)| w < b) {
                        best = Some((m, w));
                    }
                }
                best.expect("linear is scored").0
            }
            _ if arima_ok => Model::Arima,
            _ => Model::Linear,
        };
        let points = match (model, arima) {
            (Model::Arima, Some(v)) => v,
            (Model::Flat, _) => vec![last; lin_steps],
            _ => lin,
        };
        // Expand to seconds from now (the forecast starts at the end of the last full point).
        let skip = now_ms.saturating_sub(completed_ms) / 1000;
        let values = (0..(points.len() as u64 * STEP_S).saturating_sub(skip))
            .map(|s| points[((s + skip) / STEP_S) as usize])
            .collect();
        Forecast {
            values,
            model,
            skill,
        }
    }

    /// Keeps this forecast for scoring at every lead if a minute has passed since the last kept
    /// one, and drops those older than two horizons. `models` are ARIMA's, the trend's and the
    /// held value's points (a model without a forecast this time keeps none).
    fn keep(&mut self, start_ms: u64, steps: usize, models: [Option<&[f64]>; 3]) {
        let step_ms = STEP_S * 1000;
        let span_ms = 2 * steps as u64 * step_ms;
        self.past.retain(|f| f.start_ms + span_ms >= start_ms);
        // One a minute; over long horizons fewer, so at most `MAX_PAST` are kept and the
        // state blob stays far below the host's limit (it grows with the horizon squared).
        let every = PAST_EVERY.max((2 * steps).div_ceil(MAX_PAST)) as u64;
        if self
            .past
            .last()
            .is_some_and(|f| f.start_ms + every * step_ms > start_ms)
        {
            return;
        }
        let leads: Vec<usize> = (PAST_EVERY - 1..steps).step_by(PAST_EVERY).collect();
        self.past.push(Past {
            start_ms,
            models: models.map(|m| match m {
                Some(v) if !v.is_empty() => {
                    let mut kept: Vec<f64> = leads
                        .iter()
                        .take_while(|&&i| i < v.len())
                        .map(|&i| v[i])
                        .collect();
                    // Past its own horizon a model holds its last value: kept once.
                    let last_taken = kept.len().checked_sub(1).map(|k| leads[k]);
                    if kept.len() < leads.len() && last_taken != Some(v.len() - 1) {
                        kept.push(v[v.len() - 1]);
                    }
                    kept
                }
                _ => Vec::new(),
            }),
        });
    }

    /// Each model's WAPE over every kept forecast's leads that have arrived.
    pub fn skill(&self) -> Skill {
        let step_ms = STEP_S * 1000;
        let mut acc = [(0.0, 0.0, 0usize); 3];
        for f in &self.past {
            let leads = f.models.iter().map(Vec::len).max().unwrap_or(0);
            for k in 0..leads {
                let point_start = f.start_ms + ((PAST_EVERY * k + PAST_EVERY - 1) as u64) * step_ms;
                if point_start + step_ms > self.next_start_ms {
                    break; // not arrived yet
                }
                let back = ((self.next_start_ms - point_start) / step_ms) as usize;
                let Some(&actual) = self
                    .series
                    .len()
                    .checked_sub(back)
                    .and_then(|i| self.series.get(i))
                else {
                    continue; // no longer in the series
                };
                for (m, a) in acc.iter_mut().enumerate() {
                    // Beyond a model's own horizon its last value holds.
                    if let Some(fc) = f.models[m].get(k).or(f.models[m].last()) {
                        a.0 += (actual - fc).abs();
                        a.1 += actual.abs();
                        a.2 += 1;
                    }
                }
            }
        }
        Skill {
            wape: acc.map(|(err, sum, n)| (n >= MIN_SCORED).then(|| wape(err, sum))),
        }
    }

    /// How much the input rate moves in one point (10 s), robustly: 1.4826 times the median
    /// absolute deviation of the last `points` differences (a standard deviation for normal
    /// moves, unmoved by a single level shift). 0 with fewer than 3 differences.
    pub fn volatility(&self, points: usize) -> f64 {
        let s = &self.series[self.series.len().saturating_sub(points + 1)..];
        let mut d: Vec<f64> = s.windows(2).map(|w| w[1] - w[0]).collect();
        if d.len() < 3 {
            return 0.0;
        }
        let med = median(&mut d);
        let mut dev: Vec<f64> = d.iter().map(|x| (x - med).abs()).collect();
        1.4826 * median(&mut dev)
    }

    /// The input's trend in records/s per second over the last `points` differences: their
    /// median, when their mean passes [`drift_is_significant`]; 0 otherwise.
    pub fn drift(&self, points: usize) -> f64 {
        let s = &self.series[self.series.len().saturating_sub(points + 1)..];
        let mut d: Vec<f64> = s.windows(2).map(|w| w[1] - w[0]).collect();
        if !drift_is_significant(&d) {
            return 0.0;
        }
        median(&mut d) / STEP_S as f64
    }

    /// WAPE of the last ARIMA forecast against the points that have arrived since; counts a bad
    /// forecast by `horizon_wape` when given (ARIMA's WAPE over every lead), else by that.
    fn score(&mut self, wape_good: f64, horizon_wape: Option<f64>) {
        let Some(f) = &self.last_arima else { return };
        let step_ms = STEP_S * 1000;
        let arrived = ((self.next_start_ms.saturating_sub(f.start_ms)) / step_ms) as usize;
        let n = arrived.min(f.values.len()).min(self.series.len());
        if n == 0 {
            return;
        }
        let actual = &self.series[self.series.len() - arrived.min(self.series.len())..];
        let (mut err, mut sum) = (0.0, 0.0);
        for (a, fc) in actual.iter().zip(&f.values).take(n) {
            err += (a - fc).abs();
            sum += a.abs();
        }
        let wape = wape(err, sum);
        self.wape = Some(wape);
        if horizon_wape.unwrap_or(wape) < wape_good {
            self.bad = 0;
        } else {
            self.bad += 1;
        }
    }
}

/// Weighted absolute percentage error from the summed absolute errors and actuals: 0 when both
/// are 0, infinite when only the actuals are.
fn wape(err: f64, sum: f64) -> f64 {
    if sum > 0.0 {
        err / sum
    } else if err == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

fn difference(s: &[f64], d: usize) -> Vec<f64> {
    let mut v = s.to_vec();
    for _ in 0..d {
        v = v.windows(2).map(|w| w[1] - w[0]).collect();
    }
    v
}

/// Least-squares AR(p) on `s` differenced `d` times: `[c, a1..ap]`. On a differenced series the
/// intercept is a drift, fitted only when it is significant (see [`drift_is_significant`]);
/// otherwise `c` is 0.
pub fn fit(s: &[f64], p: usize, d: usize) -> Option<Vec<f64>> {
    let x = difference(s, d);
    if x.len() <= p + 2 {
        return None;
    }
    let intercept = d == 0 || drift_is_significant(&x);
    // Columns of the design matrix: 0 is the intercept, c >= 1 is lag c.
    let cols: Vec<usize> = (usize::from(!intercept)..=p).collect();
    let k = cols.len();
    // Normal equations (X'X) b = X'y, rows t = p..len: [1, x_{t-1}, ..., x_{t-p}] -> x_t.
    let mut a = vec![vec![0.0; k + 1]; k];
    for t in p..x.len() {
        let row = |c: usize| if c == 0 { 1.0 } else { x[t - c] };
        for (i, line) in a.iter_mut().enumerate() {
            for (j, cell) in line.iter_mut().take(k).enumerate() {
                *cell += row(cols[i]) * row(cols[j]);
            }
            line[k] += row(cols[i]) * x[t];
        }
    }
    let b = solve(a)?;
    Some(if intercept {
        b
    } else {
        std::iter::once(0.0).chain(b).collect()
    })
}

/// Whether the mean of a differenced series is a real drift: its t-statistic is at least 2.
///
/// Deviation from the reference (pmdarima fits the drift of an ARIMA with `d = 1`
/// unconditionally): one level shift in the history, e.g. a step from 20k to 250k records/s,
/// makes the mean difference positive, and a fitted drift then extrapolates the step for the
/// whole horizon (+50k records/s after 15 min on that step), so every plan over-provisions
/// against a load that has long been flat. A trend shows in every difference and passes the
/// test; a single jump does not. Computed without a square root: `n * mean^2 >= 4 * var`.
pub fn drift_is_significant(x: &[f64]) -> bool {
    let n = x.len() as f64;
    if n < 3.0 {
        return false;
    }
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0);
    n * mean * mean >= 4.0 * var
}

/// Solves an augmented `k x (k+1)` system by Gaussian elimination with partial pivoting.
fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let k = a.len();
    let scale = a
        .iter()
        .flat_map(|r| r[..k].iter())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    for col in 0..k {
        let pivot = (col..k).max_by(|i, j| a[*i][col].abs().total_cmp(&a[*j][col].abs()))?;
        if a[pivot][col].abs() <= 1e-12 * scale.max(1e-300) {
            return None; // singular: e.g. a constant series
        }
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for row in a.iter_mut().skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (cell, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                *cell -= f * p;
            }
        }
    }
    let mut b = vec![0.0; k];
    for r in (0..k).rev() {
        let tail: f64 = (r + 1..k).map(|c| a[r][c] * b[c]).sum();
        b[r] = (a[r][k] - tail) / a[r][r];
    }
    b.iter().all(|v| v.is_finite()).then_some(b)
}

/// Natural logarithm in plain arithmetic (bit-identical on every platform): `x = m * 2^e` with
/// `m` in [1, 2), `ln x = e ln 2 + 2 atanh((m - 1) / (m + 1))` by its series.
pub fn ln(x: f64) -> f64 {
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || x < 0.0 || x.is_infinite() {
        return f64::NAN;
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if e == -1023 {
        // Subnormal: normalise by 2^52.
        let y = x * f64::from_bits(0x4330_0000_0000_0000);
        let yb = y.to_bits();
        e = ((yb >> 52) & 0x7ff) as i64 - 1023 - 52;
        m = f64::from_bits((yb & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    }
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let (mut term, mut sum) = (z, 0.0);
    for n in 0..40 {
        sum += term / (2 * n + 1) as f64;
        term *= z2;
    }
    e as f64 * std::f64::consts::LN_2 + 2.0 * sum
}

/// Residual variance based AIC of an AR fit.
fn aic(s: &[f64], p: usize, d: usize) -> Option<f64> {
    let coef = fit(s, p, d)?;
    let x = difference(s, d);
    let n = (x.len() - p) as f64;
    let rss: f64 = (p..x.len())
        .map(|t| {
            let pred = coef[0] + (1..=p).map(|i| coef[i] * x[t - i]).sum::<f64>();
            (x[t] - pred) * (x[t] - pred)
        })
        .sum();
    Some(n * ln((rss / n).max(1e-12)) + 2.0 * (p as f64 + 1.0))
}

/// Chooses `(p, d)` by AIC; `d` is compared on the same sample (the last `len - 1` points) so
/// the criteria are comparable.
pub fn select_order(s: &[f64]) -> (usize, usize) {
    let mut best = ((1, 1), f64::INFINITY);
    for d in 0..=1 {
        let sample = &s[1 - d..];
        for p in 1..=5 {
            if let Some(a) = aic(sample, p, d)
                && a < best.1
            {
                best = ((p, d), a);
            }
        }
    }
    best.0
}

/// Forecasts `steps` points ahead with AR coefficients on the `d`-times differenced series.
pub fn predict(s: &[f64], coef: &[f64], p: usize, d: usize, steps: usize) -> Vec<f64> {
    let mut x = difference(s, d);
    let mut level = *s.last().expect("non-empty");
    let mut out = Vec::with_capacity(steps);
    for _ in 0..steps {
        let n = x.len();
        let next = coef[0] + (1..=p).map(|i| coef[i] * x[n - i]).sum::<f64>();
        x.push(next);
        let value = if d == 0 { next } else { level + next };
        level = value;
        out.push(value.max(0.0));
    }
    out
}

/// The median of `v` (sorted in place); 0 when empty.
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The trend of the last minute (6 points), extrapolated `steps` points from the latest one.
///
/// Deviation from the reference (a least-squares line through the window): the slope is the
/// Theil-Sen estimate (the median of the pairwise slopes) and the line starts at the latest
/// point. A least-squares line through a window that holds a level shift turns the jump into a
/// trend (a step from 20k to 250k records/s read as +2.3M records/s after 10 minutes); the
/// median slope of a window with one jump is that of its flat parts. And the trend is followed
/// only as far ahead as the window it was measured over (a minute), then held: a minute's
/// slope of a random walk extrapolated for ten minutes forecast 560k records/s from 61k.
pub fn linear(s: &[f64], steps: usize) -> Vec<f64> {
    let w = &s[s.len().saturating_sub(6)..];
    let Some(&last) = w.last() else {
        return vec![0.0; steps];
    };
    // Theil-Sen: the median of the pairwise slopes.
    let mut slopes: Vec<f64> = (0..w.len())
        .flat_map(|i| (i + 1..w.len()).map(move |j| (w[j] - w[i]) / (j - i) as f64))
        .collect();
    let slope = median(&mut slopes);
    let span = w.len().saturating_sub(1).max(1);
    (1..=steps)
        .map(|k| (last + slope * k.min(span) as f64).max(0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forecasts kept for scoring stay few over the longest horizons the params allow, so
    /// the state blob stays far below the host's 1 MiB (at a 7200 s horizon, one a minute
    /// came to about 1 MB after five hours).
    #[test]
    fn long_horizons_keep_few_past_forecasts() {
        let mut f = Forecaster::default();
        let steps = 7200 / STEP_S as usize;
        let values: Vec<f64> = (0..steps).map(|i| 50_000.123 + i as f64 * 0.731).collect();
        for minute in 0..6 * 60 {
            let v = Some(values.as_slice());
            f.keep(minute * 60_000, steps, [v, v, v]);
        }
        assert!(f.past.len() <= MAX_PAST, "{}", f.past.len());
        let bytes = serde_json::to_vec(&f).unwrap().len();
        assert!(bytes < 512 << 10, "{bytes} bytes");
        // The default horizon keeps one a minute, as before.
        let mut f = Forecaster::default();
        let steps = 900 / STEP_S as usize;
        for minute in 0..60 {
            let v = Some(&values[..steps]);
            f.keep(minute * 60_000, steps, [v, v, v]);
        }
        assert_eq!(f.past.len(), 31);
    }

    #[test]
    fn ar_recovers_a_known_process() {
        // x_t = 10 + 0.8 x_{t-1}: stationary at 50.
        let mut s = vec![20.0];
        for _ in 0..200 {
            let last = *s.last().unwrap();
            s.push(10.0 + 0.8 * last);
        }
        let c = fit(&s, 1, 0).unwrap();
        assert!(
            (c[0] - 10.0).abs() < 1e-6 && (c[1] - 0.8).abs() < 1e-9,
            "{c:?}"
        );
        let f = predict(&s, &c, 1, 0, 3);
        assert!(f.iter().all(|v| (v - 50.0).abs() < 1e-6));
    }

    #[test]
    fn ln_matches_the_platform_closely() {
        for x in [1e-300, 1e-5, 0.5, 1.0, 1.5, 2.0, 10.0, 12345.678, 1e300] {
            assert!(
                (ln(x) - x.ln()).abs() <= 1e-12 * x.ln().abs().max(1.0),
                "{x}"
            );
        }
        assert!(ln(0.0) == f64::NEG_INFINITY && ln(-1.0).is_nan());
    }

    #[test]
    fn a_level_shift_is_not_extrapolated_but_a_trend_is() {
        // Two hours flat at 20k, then a step to 250k held for ten minutes.
        let mut step = vec![20_000.0; 660];
        step.extend(vec![250_000.0; 60]);
        for (i, v) in step.iter_mut().enumerate() {
            *v += f64::from((i * 7919 % 13) as u32) * 100.0; // a little noise
        }
        let x = difference(&step, 1);
        assert!(!drift_is_significant(&x));
        let c = fit(&step, 1, 1).unwrap();
        assert_eq!(c[0], 0.0);
        let f = predict(&step, &c, 1, 1, 90);
        let peak = f.iter().copied().fold(0.0, f64::max);
        assert!(peak < 255_000.0, "{peak}");
        // A steady ramp keeps its drift.
        let ramp: Vec<f64> = (0..200)
            .map(|i| 1000.0 * f64::from(i) + f64::from((i * 31 % 7) as u32))
            .collect();
        let c = fit(&ramp, 1, 1).unwrap();
        assert!(c[0] > 900.0, "{c:?}");
    }

    #[test]
    fn linear_extends_a_ramp() {
        let s: Vec<f64> = (0..20).map(|i| 100.0 * i as f64).collect();
        assert_eq!(linear(&s, 2), vec![2000.0, 2100.0]);
        // Followed for the minute it was measured over (5 steps of the 6-point window), then held.
        assert_eq!(linear(&s, 8)[4..], [2400.0, 2400.0, 2400.0, 2400.0]);
    }

    #[test]
    fn linear_does_not_extrapolate_a_level_shift() {
        // Five points at 20k and the latest at 250k: the step is the level, not a trend.
        let s = [20e3, 20e3, 20e3, 20e3, 20e3, 250e3];
        assert_eq!(linear(&s, 60), vec![250e3; 60]);
        // Least squares would have read a slope of ~66k per point.
    }

    #[test]
    fn volatility_is_robust_to_a_jump_and_zero_on_a_ramp() {
        let with = |series: Vec<f64>| Forecaster {
            series,
            ..Forecaster::default()
        };
        let ramp: Vec<f64> = (0..40).map(|i| 1000.0 * i as f64).collect();
        assert_eq!(with(ramp).volatility(30), 0.0);
        let mut step = vec![20e3; 20];
        step.extend(vec![250e3; 20]);
        assert_eq!(with(step).volatility(30), 0.0);
        // Alternating moves of +-1000: MAD 1000, i.e. 1482.6.
        let zigzag: Vec<f64> = (0..40).map(|i| 1000.0 * (i % 2) as f64).collect();
        assert!((with(zigzag).volatility(30) - 1482.6).abs() < 1e-6);
        assert_eq!(with(vec![1.0, 2.0]).volatility(30), 0.0);
    }

    #[test]
    fn drift_follows_a_ramp_but_not_a_jump_or_a_wobble() {
        let with = |series: Vec<f64>| Forecaster {
            series,
            ..Forecaster::default()
        };
        // +1000 per 10-s point: 100 records/s per second.
        let ramp: Vec<f64> = (0..40).map(|i| 1000.0 * i as f64).collect();
        assert_eq!(with(ramp).drift(30), 100.0);
        let mut step = vec![20e3; 20];
        step.extend(vec![250e3; 20]);
        assert_eq!(with(step).drift(30), 0.0);
        let zigzag: Vec<f64> = (0..40).map(|i| 1000.0 * (i % 2) as f64).collect();
        assert_eq!(with(zigzag).drift(30), 0.0);
        // A falling ramp is a negative drift (the plan uses only rises).
        let fall: Vec<f64> = (0..40).map(|i| 1e5 - 500.0 * i as f64).collect();
        assert_eq!(with(fall).drift(30), -50.0);
        assert_eq!(with(vec![1.0, 2.0]).drift(30), 0.0);
    }

    #[test]
    fn skill_scores_every_arrived_lead_of_the_kept_forecasts() {
        let mut f = Forecaster::default();
        for t in 0..200u64 {
            f.push(t * 1000, 100.0, 720);
        }
        // 20 points of 100 so far. Keep forecasts made at 200 s: ARIMA 110 (10% off), the
        // trend 100, the held value 80 (20% off), 15 minutes long.
        let start = f.next_start_ms;
        f.keep(
            start,
            90,
            [Some(&[110.0; 90]), Some(&[100.0; 90]), Some(&[80.0])],
        );
        assert_eq!(f.past.len(), 1);
        assert_eq!(f.past[0].models.each_ref().map(Vec::len), [15, 15, 1]);
        assert_eq!(f.skill().wape, [None; 3], "nothing has arrived");
        // A second forecast within the minute is not kept.
        f.keep(start + 10_000, 90, [None, None, None]);
        assert_eq!(f.past.len(), 1);
        // Twenty minutes later every lead has arrived: 15 pairs, below MIN_SCORED.
        for t in 200..1400u64 {
            f.push(t * 1000, 100.0, 720);
        }
        assert_eq!(f.skill().wape, [None; 3]);
        let later = f.next_start_ms;
        f.keep(
            later - 360_000,
            90,
            [Some(&[100.0; 90]), Some(&[100.0; 90]), Some(&[100.0])],
        );
        let [a, l, h] = f.skill().wape;
        // 15 + 6 pairs: ARIMA 15 * 10 off over 21 * 100.
        assert!((a.unwrap() - 150.0 / 2100.0).abs() < 1e-12, "{a:?}");
        assert_eq!(l, Some(0.0));
        assert!((h.unwrap() - 300.0 / 2100.0).abs() < 1e-12, "{h:?}");
        // Forecasts older than two horizons are dropped.
        f.keep(start + 2 * 900_000 + 10_000, 90, [None, None, None]);
        assert!(f.past.iter().all(|p| p.start_ms > start));
    }

    #[test]
    fn an_order_chosen_on_the_first_minutes_is_revisited_as_history_grows() {
        // The first rise of a sine (5k to 300k records/s, one-hour period), watched from its
        // start and forecast once a minute. The order chosen on the first 12 points carried
        // the rise past the peak (a 900-s peak forecast of 453k); re-selected as the history
        // doubles, the forecast peak stays near the real one.
        let rates: Vec<f64> = (0..3600u64)
            .map(|t| {
                let x = t as f64 / 3600.0 * std::f64::consts::TAU;
                (5_000.0 + 295_000.0 * (1.0 - x.cos()) / 2.0).round()
            })
            .collect();
        let mut f = Forecaster::default();
        let mut worst = 0.0f64;
        for (t, r) in rates.iter().enumerate() {
            f.push((t as u64 + 1) * 1000, *r, 720);
            if t >= 120 && t % 60 == 10 && t + 900 < rates.len() {
                let fc = f.forecast((t as u64 + 1) * 1000, &params());
                if t >= 480 {
                    let actual = rates[t..t + 900].iter().copied().fold(0.0, f64::max);
                    worst = worst.max(fc.peak(900) / actual);
                }
            }
        }
        assert!(worst < 1.05, "forecast peak up to {worst} x the real one");
    }

    #[test]
    fn a_bad_forecast_is_counted_by_its_horizon_wape_when_scored_there() {
        let mut f = Forecaster::default();
        for t in 0..200u64 {
            f.push(t * 1000, 100.0, 720);
        }
        let exact = Stored {
            start_ms: f.next_start_ms - 50_000,
            values: vec![100.0; 90],
        };
        f.last_arima = Some(exact.clone());
        f.score(0.10, None);
        assert_eq!((f.wape, f.bad), (Some(0.0), 0), "the next minute was exact");
        f.score(0.10, Some(0.3));
        assert_eq!((f.wape, f.bad), (Some(0.0), 1), "but the horizon was not");
        f.score(0.10, Some(0.05));
        assert_eq!(f.bad, 0);
    }

    /// The policy's default forecasting knobs.
    pub(super) fn params() -> ForecastParams {
        crate::Params::parse(&[]).expect("defaults parse").forecast
    }

    #[test]
    fn buckets_hold_gaps_and_skip_bad_samples() {
        let mut f = Forecaster::default();
        for t in 0..30u64 {
            let rate = if t == 5 { f64::NAN } else { 100.0 };
            f.push(t * 1000, rate, 100);
        }
        f.push(55_000, 200.0, 100);
        assert_eq!(f.series, vec![100.0, 100.0, 100.0, 100.0, 100.0]);
    }
}

#[cfg(test)]
mod trace_tests {
    use super::tests::params;
    use super::*;

    fn trace(name: &str) -> Vec<f64> {
        let path = format!("{}/../traces/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split('|').nth(1).unwrap().parse().unwrap())
            .collect()
    }

    /// Feeds `rates` and, every 60 s after the first hour, forecasts the next 600 s; returns
    /// the WAPE of the chosen forecasts against what then arrived, and how often ARIMA was used.
    fn held_out_wape(rates: &[f64]) -> (f64, f64) {
        let mut f = Forecaster::default();
        let (mut err, mut sum, mut arima, mut n) = (0.0, 0.0, 0usize, 0usize);
        for (t, r) in rates.iter().enumerate() {
            f.push(t as u64 * 1000, *r, 720);
            if t >= 3600 && t % 60 == 0 && t + 600 < rates.len() {
                let fc = f.forecast(t as u64 * 1000 + 1000, &params());
                arima += usize::from(fc.model == Model::Arima);
                n += 1;
                for (k, v) in fc.values.iter().take(600).enumerate() {
                    err += (rates[t + 1 + k] - v).abs();
                    sum += rates[t + 1 + k];
                }
            }
        }
        (err / sum, arima as f64 / n as f64)
    }

    /// 10-minute-ahead WAPE of each candidate forecaster on its own, every 60 s after the first
    /// hour: (ARIMA(p,d,0) with the order chosen once by AIC, linear trend, last value held).
    fn candidates(rates: &[f64]) -> (f64, f64, f64) {
        let mut series: Vec<f64> = Vec::new();
        let mut order = None;
        let (mut e_a, mut e_l, mut e_n, mut sum) = (0.0, 0.0, 0.0, 0.0);
        for (t, chunk) in rates.chunks(10).enumerate() {
            series.push(chunk.iter().sum::<f64>() / chunk.len() as f64);
            if series.len() > 720 {
                series.remove(0);
            }
            let sec = (t + 1) * 10;
            if sec < 3600 || sec % 60 != 0 || sec + 600 > rates.len() {
                continue;
            }
            let (p, d) = *order.get_or_insert_with(|| select_order(&series));
            let arima = fit(&series, p, d)
                .map(|c| predict(&series, &c, p, d, 60))
                .unwrap();
            let lin = linear(&series, 60);
            let last = *series.last().unwrap();
            for k in 0..600 {
                let actual = rates[sec + k];
                e_a += (actual - arima[k / 10]).abs();
                e_l += (actual - lin[k / 10]).abs();
                e_n += (actual - last).abs();
                sum += actual;
            }
        }
        (e_a / sum, e_l / sum, e_n / sum)
    }

    #[test]
    fn arima_beats_the_other_candidates_on_the_bundled_traces() {
        for name in ["sine_60000_6h.csv", "advertising_6h_550K_max.csv"] {
            let (arima, lin, naive) = candidates(&trace(name));
            assert!(
                arima < lin && arima < naive,
                "{name}: arima {arima} linear {lin} naive {naive}"
            );
        }
    }

    #[test]
    fn wape_on_held_out_parts_of_the_bundled_traces() {
        // 10-minute-ahead forecasts, scored on data the forecaster had not seen.
        let (sine, sine_arima) = held_out_wape(&trace("sine_60000_6h.csv"));
        assert!(sine < 0.01, "sine WAPE {sine}");
        let (ads, ads_arima) = held_out_wape(&trace("advertising_6h_550K_max.csv"));
        assert!(ads < 0.05, "advertising WAPE {ads}");
        assert!(
            sine_arima > 0.5 && ads_arima > 0.5,
            "ARIMA mostly selected: {sine_arima} {ads_arima}"
        );
    }

    #[test]
    fn the_linear_fallback_engages_when_arima_is_worse() {
        // A random square wave: no AR model predicts its jumps, so WAPE stays high.
        let mut rng = 7u64;
        let mut rates = Vec::new();
        let mut level = 1000.0;
        for t in 0..4000 {
            if t % 37 == 0 {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                level = if rng >> 63 == 1 { 100.0 } else { 5000.0 };
            }
            rates.push(level);
        }
        let mut f = Forecaster::default();
        let mut models = Vec::new();
        for (t, r) in rates.iter().enumerate() {
            f.push(t as u64 * 1000, *r, 720);
            if t > 600 && t % 60 == 0 {
                models.push(f.forecast(t as u64 * 1000, &params()).model);
            }
        }
        assert!(f.wape.unwrap() >= 0.25, "wape {:?}", f.wape);
        assert_ne!(models.last(), Some(&Model::Arima));
    }
}
