//! Analyze A: the capacity model.
//!
//! Per worker, an online linear regression of throughput on CPU utilization (Chan et al.'s
//! parallel merge, so batching and ordering of samples do not change the result beyond
//! rounding). A worker's capacity is the regression evaluated at the skew-aware point: the
//! hottest worker at 100% CPU, every other at 100% minus its gap to the hottest. Job capacity is
//! the sum. Per scale-out, observed capacities decay by half with each new measurement; unseen
//! scale-outs are interpolated between observed ones, or extrapolated (linearly from a single
//! observation, as the reference does; with the last marginal gain beyond two, optionally
//! bounded by the Universal Scalability Law fitted to the observations).
//!
//! Deviation from the reference: when a worker's CPU has (almost) no variance the slope is
//! undefined; the reference divides by zero, we use the ratio model `y = x * (mean_y / mean_x)`.
//! The same holds when the spread is small but not zero: under a steady load the CPU samples
//! differ only by measurement noise, and least squares then attenuates the slope towards zero
//! (errors in the regressor), so the capacity at 100% CPU collapses towards the current
//! throughput and every later plan over-provisions. The slope is therefore trusted only once
//! the CPU's standard deviation reaches `min_cpu_spread` (0.03 by default: above the noise of a
//! CPU gauge sampled each second, about 0.02 in our measurements and the simulator's profiles;
//! raise it for noisier gauges); below it the ratio model, which errs on the safe side by the
//! idle CPU share, is used.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Running regression statistics of one worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    /// Samples seen.
    pub n: f64,
    /// Mean CPU.
    pub mean_x: f64,
    /// Mean throughput.
    pub mean_y: f64,
    /// Sum of squared CPU deviations.
    pub m2_x: f64,
    /// Sum of co-deviations.
    pub c_xy: f64,
}

impl Regression {
    /// Adds one `(cpu, throughput)` pair (Welford).
    pub fn add(&mut self, x: f64, y: f64) {
        self.merge(&Regression {
            n: 1.0,
            mean_x: x,
            mean_y: y,
            m2_x: 0.0,
            c_xy: 0.0,
        });
    }

    /// Merges another set of statistics (Chan et al.).
    pub fn merge(&mut self, o: &Regression) {
        if o.n == 0.0 {
            return;
        }
        let n = self.n + o.n;
        let dx = o.mean_x - self.mean_x;
        let dy = o.mean_y - self.mean_y;
        self.m2_x += o.m2_x + dx * dx * self.n * o.n / n;
        self.c_xy += o.c_xy + dx * dy * self.n * o.n / n;
        self.mean_x += dx * o.n / n;
        self.mean_y += dy * o.n / n;
        self.n = n;
    }

    /// Predicted throughput at CPU `x`; `None` before any sample. The fitted slope is used only
    /// when the CPU's standard deviation is at least `min_spread` (and above rounding noise).
    pub fn predict(&self, x: f64, min_spread: f64) -> Option<f64> {
        if self.n < 1.0 {
            return None;
        }
        let var = self.m2_x / self.n;
        if var > 1e-6 && var >= min_spread * min_spread && self.n >= 3.0 {
            let slope = self.c_xy / self.m2_x;
            if slope > 0.0 {
                return Some(self.mean_y + slope * (x - self.mean_x));
            }
        }
        (self.mean_x > 1e-3).then(|| x * self.mean_y / self.mean_x)
    }
}

/// The capacity knowledge of one job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapacityModel {
    /// Per-worker regressions, by worker id.
    pub workers: BTreeMap<String, Regression>,
    /// Observed job capacity per scale-out (records/s), decayed by half per measurement.
    pub observed: BTreeMap<u32, f64>,
    /// When the rescale the worker regressions were learned after finished, ms (0: none).
    #[serde(default)]
    pub epoch_ms: u64,
}

impl CapacityModel {
    /// Feeds one worker sample; NaN, negative and missing values are skipped.
    pub fn observe(&mut self, worker: &str, cpu: Option<f64>, throughput: Option<f64>) {
        if let (Some(x), Some(y)) = (cpu, throughput)
            && x.is_finite()
            && y.is_finite()
            && x >= 0.0
            && y >= 0.0
        {
            self.workers
                .entry(worker.to_string())
                .or_default()
                .add(x, y);
        }
    }

    /// Restarts the per-worker regressions when a rescale newer than the last one seen
    /// finished at `finished_ms`; the observed capacities per scale-out are kept.
    pub fn start_epoch(&mut self, finished_ms: u64) {
        if finished_ms > self.epoch_ms {
            self.workers.clear();
            self.epoch_ms = finished_ms;
        }
    }

    /// Drops the models of workers not in `alive`.
    pub fn retain(&mut self, alive: &[&str]) {
        self.workers.retain(|w, _| alive.contains(&w.as_str()));
    }

    /// Evaluates the job capacity at scale-out `p` from the workers' mean CPU in the current
    /// window (`(worker, mean cpu)`), records it as observed, and returns it. `None` when no
    /// worker has a model yet. `min_spread` is [`Regression::predict`]'s.
    pub fn evaluate(&mut self, p: u32, window_cpu: &[(&str, f64)], min_spread: f64) -> Option<f64> {
        let hottest = window_cpu
            .iter()
            .map(|(_, c)| *c)
            .fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        let mut any = false;
        for (w, cpu) in window_cpu {
            let target = (1.0 - (hottest - cpu)).clamp(0.0, 1.0);
            if let Some(cap) = self
                .workers
                .get(*w)
                .and_then(|r| r.predict(target, min_spread))
            {
                total += cap.max(0.0).trunc();
                any = true;
            }
        }
        if !any || total <= 0.0 {
            return None;
        }
        let entry = self.observed.entry(p).or_insert(total);
        *entry = ((*entry + total) / 2.0).trunc();
        Some(total)
    }

    /// Capacity at scale-out `p` from the observed capacities ([`curve`], without the USL
    /// bound).
    pub fn capacity(&self, p: u32) -> f64 {
        curve(&self.observed, p, false)
    }

    /// [`capacity`](Self::capacity), bounded beyond the largest observed scale-out by the
    /// Universal Scalability Law's curve when `usl`.
    pub fn capacity_with(&self, p: u32, usl: bool) -> f64 {
        curve(&self.observed, p, usl)
    }
}

/// Capacity at scale-out `p` from capacities observed per scale-out: observed if measured
/// there; between two observed scale-outs, interpolated; below the smallest, proportional to
/// it; above the largest, extended with the marginal gain between the two largest (never more
/// than proportional), so sub-linear scaling learned from the job is not extrapolated away;
/// with `usl`, also never beyond the Universal Scalability Law's curve fitted to every
/// observation ([`usl_contention`]) through the largest, which bends further down. With one
/// observation this is the reference's linear estimate.
pub fn curve(observed: &BTreeMap<u32, f64>, p: u32, usl: bool) -> f64 {
    if let Some(c) = observed.get(&p) {
        return *c;
    }
    let below = observed.range(..p).next_back();
    let above = observed.range(p + 1..).next();
    let pf = f64::from(p);
    let c = match (below, above) {
        (Some((&a, &ca)), Some((&b, &cb))) => {
            ca + (cb - ca) * (pf - f64::from(a)) / f64::from(b - a)
        }
        (None, Some((&b, &cb))) => cb * pf / f64::from(b),
        (Some((&b, &cb)), None) => {
            let linear = cb * pf / f64::from(b);
            match observed.range(..b).next_back() {
                Some((&a, &ca)) => {
                    let gain = ((cb - ca) / f64::from(b - a)).clamp(0.0, cb / f64::from(b));
                    let marginal = (cb + gain * (pf - f64::from(b))).min(linear);
                    if usl {
                        let sigma = usl_contention(observed);
                        let u = |n: f64| n / (1.0 + sigma * (n - 1.0));
                        marginal.min(cb * u(pf) / u(f64::from(b)))
                    } else {
                        marginal
                    }
                }
                None => linear,
            }
        }
        (None, None) => 0.0,
    };
    c.max(0.0).trunc()
}

/// The contention `sigma` of the Universal Scalability Law `C(n) = lambda n / (1 + sigma (n -
/// 1))` fitted to the observed capacities by least squares on its linear form `n / C = 1 /
/// lambda + (sigma / lambda) (n - 1)`; 0 (linear scaling) with fewer than two observations or
/// when the fit shows no contention. The coherency term of the full law is left out: it needs
/// a third scale-out, and contention alone already bends the curve down.
pub fn usl_contention(observed: &BTreeMap<u32, f64>) -> f64 {
    let pts: Vec<(f64, f64)> = observed
        .iter()
        .filter(|(n, c)| **n > 0 && **c > 0.0)
        .map(|(n, c)| (f64::from(*n - 1), f64::from(*n) / c))
        .collect();
    if pts.len() < 2 {
        return 0.0;
    }
    let k = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / k,
        pts.iter().map(|p| p.1).sum::<f64>() / k,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return 0.0;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    if intercept > 0.0 && slope > 0.0 {
        slope / intercept
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_epoch_restarts_the_regressions_and_keeps_the_observed_capacities() {
        let mut m = CapacityModel::default();
        for i in 0..10 {
            m.observe(
                "w0",
                Some(0.1 + 0.05 * f64::from(i)),
                Some(1000.0 * f64::from(i)),
            );
        }
        assert!(m.evaluate(1, &[("w0", 0.5)], 0.03).is_some());
        let observed = m.observed.clone();
        m.start_epoch(5_000);
        assert!(m.workers.is_empty());
        assert_eq!(m.observed, observed);
        // The same rescale again (every later decision sees it) changes nothing.
        m.observe("w0", Some(0.5), Some(5000.0));
        m.start_epoch(5_000);
        assert_eq!(m.workers.len(), 1);
        m.start_epoch(4_000);
        assert_eq!(m.workers.len(), 1);
    }

    #[test]
    fn regression_is_exact_on_a_line_and_order_free() {
        let pts: Vec<(f64, f64)> = (0..50)
            .map(|i| {
                (
                    0.2 + 0.01 * i as f64,
                    1000.0 + 40_000.0 * (0.2 + 0.01 * i as f64),
                )
            })
            .collect();
        let mut a = Regression::default();
        pts.iter().for_each(|(x, y)| a.add(*x, *y));
        let mut b = Regression::default();
        pts.iter().rev().for_each(|(x, y)| b.add(*x, *y));
        let mut c = Regression::default();
        for chunk in pts.chunks(7) {
            let mut part = Regression::default();
            chunk.iter().for_each(|(x, y)| part.add(*x, *y));
            c.merge(&part);
        }
        for r in [&a, &b, &c] {
            assert!((r.predict(1.0, 0.05).unwrap() - 41_000.0).abs() < 1e-6);
        }
    }

    #[test]
    fn flat_cpu_uses_the_ratio_model_and_nothing_is_none() {
        let mut r = Regression::default();
        assert_eq!(r.predict(1.0, 0.05), None);
        for _ in 0..10 {
            r.add(0.5, 20_000.0);
        }
        assert!((r.predict(1.0, 0.05).unwrap() - 40_000.0).abs() < 1e-6);
    }

    #[test]
    fn noise_around_a_steady_load_does_not_collapse_the_capacity() {
        // True line: 5% idle CPU, 60k records/s at 100% (slope 63k per unit of CPU). Steady
        // load at 20k; most of the CPU's variance is measurement noise, so throughput moves
        // with only a fifth of it and least squares fits a fifth of the true slope.
        let mut r = Regression::default();
        let mut seed = 7u64;
        for _ in 0..600 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let noise = ((seed >> 33) as f64 / f64::from(u32::MAX) - 0.5) * 0.03;
            r.add(0.05 + 0.95 / 3.0 + noise, 20_000.0 + 0.2 * 63_000.0 * noise);
        }
        let ols = r.predict(1.0, 0.0).unwrap();
        let guarded = r.predict(1.0, 0.05).unwrap();
        assert!(ols < 35_000.0, "least squares is attenuated: {ols}");
        assert!((50_000.0..=60_000.0).contains(&guarded), "{guarded}");
    }

    #[test]
    fn sub_linear_scaling_is_interpolated_and_extended() {
        let mut m = CapacityModel::default();
        m.observed.insert(2, 20_000.0);
        m.observed.insert(4, 36_000.0);
        assert_eq!(m.capacity(3), 28_000.0);
        assert_eq!(m.capacity(1), 10_000.0);
        // Above 4: +8000 per worker (the last marginal gain), not +9000 (linear from 4).
        assert_eq!(m.capacity(6), 52_000.0);
        // Never more than proportional, never negative.
        m.observed.insert(8, 30_000.0);
        assert_eq!(m.capacity(10), 30_000.0);
        assert_eq!(m.capacity(6), 33_000.0);
    }

    #[test]
    fn the_usl_fit_recovers_the_contention_and_bends_the_extrapolation() {
        // Exact USL points, lambda 10k, sigma 0.1: C(n) = 10k n / (1 + 0.1 (n - 1)).
        let usl = |n: u32| 10_000.0 * f64::from(n) / (1.0 + 0.1 * f64::from(n - 1));
        let mut m = CapacityModel::default();
        for n in [1, 3, 6] {
            m.observed.insert(n, usl(n));
        }
        assert!((usl_contention(&m.observed) - 0.1).abs() < 1e-9);
        // Beyond 6 the marginal gain (3 to 6) overshoots the curve; the USL bound follows it.
        let marginal = m.capacity(10);
        let bent = m.capacity_with(10, true);
        assert!(bent < marginal, "{bent} vs {marginal}");
        assert!((bent - usl(10)).abs() <= 1.0, "{bent} vs {}", usl(10));
        // Linear scaling shows no contention, and a single point none either.
        let mut lin = BTreeMap::new();
        lin.insert(2, 20_000.0);
        lin.insert(4, 40_000.0);
        assert_eq!(usl_contention(&lin), 0.0);
        assert_eq!(curve(&lin, 8, true), 80_000.0);
        lin.remove(&4);
        assert_eq!(usl_contention(&lin), 0.0);
    }

    #[test]
    fn observed_decays_and_unseen_extrapolates() {
        let mut m = CapacityModel::default();
        for i in 0..20 {
            let x = 0.3 + 0.02 * f64::from(i);
            m.observe("a", Some(x), Some(50_000.0 * x));
            m.observe("b", Some(x), Some(f64::NAN));
        }
        let c = m.evaluate(2, &[("a", 0.6), ("b", 0.6)], 0.05).unwrap();
        assert!((c - 50_000.0).abs() < 2.0, "{c}");
        assert_eq!(m.capacity(4), (4.0 * c / 2.0).trunc());
        assert_eq!(m.capacity(2), c);
    }
}
