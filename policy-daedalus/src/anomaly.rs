//! Analyze B: the observed recovery time after a rescale, for self-adaptation.
//!
//! The signal is `input rate - throughput`. Its running mean and deviation are learned (Welford)
//! from samples outside rescales — live, unlike the reference, which read canned files. After a
//! rescale starts, a sample is anomalous while `|diff - mean| > deviation` (1 sigma) and the
//! diff exceeds 5% of the input; the job has
//! recovered once `calm_s` (30) consecutive samples are normal, and the recovery time is from the
//! rescale start to the first of them.

use serde::{Deserialize, Serialize};

/// Running statistics of the diff signal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffStats {
    /// Samples.
    pub n: f64,
    /// Mean, records/s.
    pub mean: f64,
    /// Sum of squared deviations.
    pub m2: f64,
}

impl DiffStats {
    /// Adds a sample.
    pub fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.n += 1.0;
        let d = v - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (v - self.mean);
    }

    /// Whether `v` (at input rate `input`) is anomalous: more than one standard deviation from
    /// the mean, and more than 5% of the input away from zero. The second condition keeps a job
    /// whose history was mostly overloaded (a biased mean) from never counting as recovered.
    pub fn anomalous(&self, v: f64, input: f64) -> bool {
        let sd = if self.n >= 2.0 {
            (self.m2 / self.n).sqrt()
        } else {
            0.0
        };
        (v - self.mean).abs() > sd && v.abs() > 0.05 * input.abs()
    }
}

/// A recovery being watched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watch {
    /// When the rescale was decided, ms.
    pub started_ms: u64,
    /// True for a scale-up.
    pub up: bool,
    /// The predicted recovery time, s.
    pub predicted_s: f64,
    /// Start of the current run of normal samples, ms.
    pub calm_since_ms: Option<u64>,
}

impl Watch {
    /// Feeds one sample taken at `at_ms` after the rescale finished; returns the observed
    /// recovery time in seconds once `calm_s` normal samples in a row have been seen.
    pub fn feed(&mut self, at_ms: u64, anomalous: bool, calm_s: u64) -> Option<f64> {
        if anomalous {
            self.calm_since_ms = None;
            return None;
        }
        let since = *self.calm_since_ms.get_or_insert(at_ms);
        (at_ms.saturating_sub(since) >= calm_s * 1000)
            .then(|| (since.saturating_sub(self.started_ms)) as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_is_measured_from_the_start_to_the_calm() {
        let mut stats = DiffStats::default();
        for i in 0..100 {
            stats.add(if i % 2 == 0 { 10.0 } else { -10.0 });
        }
        assert!(stats.anomalous(500.0, 1000.0) && !stats.anomalous(5.0, 1000.0));
        assert!(!stats.anomalous(40.0, 1000.0), "within 5% of the input");
        let mut w = Watch {
            started_ms: 0,
            up: true,
            predicted_s: 60.0,
            calm_since_ms: None,
        };
        let mut got = None;
        for t in 30..200u64 {
            let diff = if t < 80 { 5000.0 } else { 0.0 };
            if let Some(rt) = w.feed(t * 1000, stats.anomalous(diff, 10_000.0), 30) {
                got = Some(rt);
                break;
            }
        }
        assert_eq!(got, Some(80.0));
    }
}
