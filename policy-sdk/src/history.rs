//! Helpers over the host-owned observation window.

use crate::{DecisionInput, Observation};

impl DecisionInput {
    /// Every observation, oldest first, ending with `current`.
    pub fn observations(&self) -> impl DoubleEndedIterator<Item = &Observation> + Clone {
        self.history.iter().chain(std::iter::once(&self.current))
    }

    /// Observations taken within the last `window_ms` (inclusive), oldest first, ending with `current`.
    pub fn window(&self, window_ms: u64) -> impl DoubleEndedIterator<Item = &Observation> + Clone {
        let since = self.now_ms.saturating_sub(window_ms);
        self.observations().filter(move |o| o.at_ms >= since)
    }

    /// Milliseconds since the last rescale finished, if one ever did.
    pub fn ms_since_last_rescale(&self) -> Option<u64> {
        self.rescale
            .last_finished_ms
            .map(|t| self.now_ms.saturating_sub(t))
    }
}

/// Mean of the finite values, or `None` when there are none (NaN and missing samples are skipped).
pub fn mean_finite(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let (mut sum, mut n) = (0.0, 0u32);
    for v in values.into_iter().flatten() {
        if v.is_finite() {
            sum += v;
            n += 1;
        }
    }
    (n > 0).then(|| sum / f64::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_skips_nan_and_missing() {
        assert_eq!(
            mean_finite([Some(1.0), None, Some(f64::NAN), Some(3.0)]),
            Some(2.0)
        );
        assert_eq!(mean_finite([None, Some(f64::INFINITY)]), None);
    }
}
