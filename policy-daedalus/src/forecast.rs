//! Analyze C: workload forecasting.
//!
//! The input rate is kept as 10-second means (up to `max_points`). Two forecasters:
//!
//! - **ARIMA(p, d, 0)**, p <= 5, d in {0, 1}: autoregression on the (differenced) series fitted
//!   by least squares (nalgebra SVD), order chosen by AIC at (re)training, coefficients refitted
//!   at the chosen order on every update (as pmdarima's `update`). Moving-average terms of the
//!   reference's auto-ARIMA are left out: they need iterative likelihood fits that do not fit
//!   a policy's fuel budget, and a pure AR of order <= 5 on 10-s means forecasts these traces as
//!   well (see the WAPE tests);
//! - **linear trend**: least squares through the last minute, extrapolated.
//!
//! Each evaluation scores the previous ARIMA forecast by WAPE against what arrived; ARIMA is used
//! while its WAPE is below `wape_use` (0.25), the linear trend otherwise; after `retrain_after`
//! (15) consecutive forecasts with WAPE >= `wape_good` (0.10) the order is re-selected.

use nalgebra::{DMatrix, DVector};
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
}

/// Which model produced a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// ARIMA(p, d, 0).
    Arima,
    /// Linear trend.
    Linear,
    /// Too little data: the last value held flat.
    Flat,
}

/// A forecast at 1-s resolution, `values[0]` = the coming second.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Records/s per second ahead.
    pub values: Vec<f64>,
    /// The model used.
    pub model: Model,
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

    /// Scores the previous forecast, (re)fits, and forecasts from `now_ms`.
    pub fn forecast(&mut self, now_ms: u64, p: &ForecastParams) -> Forecast {
        self.score();
        let completed_ms = self.next_start_ms;
        if self.series.len() < 12 {
            let last = self.series.last().copied().unwrap_or(0.0);
            return Forecast {
                values: vec![last; p.linear_horizon_s as usize],
                model: Model::Flat,
            };
        }
        if self.order.is_none() || self.bad >= p.retrain_after {
            self.order = Some(select_order(&self.series));
            self.bad = 0;
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
        let use_arima = self.wape.is_some_and(|w| w < p.wape_use);
        let (points, model) = match arima {
            Some(v) if use_arima => (v, Model::Arima),
            _ => (
                linear(&self.series, p.linear_horizon_s.div_ceil(STEP_S) as usize),
                Model::Linear,
            ),
        };
        // Expand to seconds from now (the forecast starts at the end of the last full point).
        let skip = now_ms.saturating_sub(completed_ms) / 1000;
        let values = (0..(points.len() as u64 * STEP_S).saturating_sub(skip))
            .map(|s| points[((s + skip) / STEP_S) as usize])
            .collect();
        Forecast { values, model }
    }

    /// WAPE of the last ARIMA forecast against the points that have arrived since.
    fn score(&mut self) {
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
        let wape = if sum > 0.0 {
            err / sum
        } else if err == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
        self.wape = Some(wape);
        if wape < 0.10 {
            self.bad = 0;
        } else {
            self.bad += 1;
        }
    }
}

fn difference(s: &[f64], d: usize) -> Vec<f64> {
    let mut v = s.to_vec();
    for _ in 0..d {
        v = v.windows(2).map(|w| w[1] - w[0]).collect();
    }
    v
}

/// Least-squares AR(p) with intercept on `s` differenced `d` times: `[c, a1..ap]`.
pub fn fit(s: &[f64], p: usize, d: usize) -> Option<Vec<f64>> {
    let x = difference(s, d);
    if x.len() <= p + 2 {
        return None;
    }
    let rows = x.len() - p;
    let a = DMatrix::from_fn(rows, p + 1, |r, c| if c == 0 { 1.0 } else { x[r + p - c] });
    let b = DVector::from_iterator(rows, x[p..].iter().copied());
    let coef = a.svd(true, true).solve(&b, 1e-9).ok()?;
    coef.iter()
        .all(|c| c.is_finite())
        .then(|| coef.iter().copied().collect())
}

/// Residual variance based AIC of an AR fit.
fn aic(s: &[f64], p: usize, d: usize) -> Option<f64> {
    let coef = fit(s, p, d)?;
    let x = difference(s, d);
    let n = (x.len() - p) as f64;
    let rss: f64 = (p..x.len())
        .map(|t| {
            let pred = coef[0] + (1..=p).map(|i| coef[i] * x[t - i]).sum::<f64>();
            (x[t] - pred).powi(2)
        })
        .sum();
    Some(n * (rss / n).max(1e-12).ln() + 2.0 * (p as f64 + 1.0))
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

/// Least-squares line through the last minute (6 points), extrapolated `steps` points.
pub fn linear(s: &[f64], steps: usize) -> Vec<f64> {
    let w = &s[s.len().saturating_sub(6)..];
    let n = w.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = w.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in w.iter().enumerate() {
        sxy += (i as f64 - mx) * (y - my);
        sxx += (i as f64 - mx).powi(2);
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (1..=steps)
        .map(|k| (my + slope * (n - 1.0 + k as f64 - mx)).max(0.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn linear_extends_a_ramp() {
        let s: Vec<f64> = (0..20).map(|i| 100.0 * i as f64).collect();
        assert_eq!(linear(&s, 2), vec![2000.0, 2100.0]);
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
