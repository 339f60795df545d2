//! The only place that reads the real clock.
#![allow(clippy::disallowed_methods, reason = "this module is the clock")]

use std::time::{Duration, Instant};

/// Measures how long steps take.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    last: Instant,
}

impl Stopwatch {
    /// Starts measuring now.
    pub fn start() -> Self {
        Stopwatch {
            last: Instant::now(),
        }
    }

    /// Time since the start or the previous lap, without starting a new lap.
    pub fn elapsed(&self) -> Duration {
        self.last.elapsed()
    }

    /// Time since the start or the previous lap, and starts a new lap.
    pub fn lap(&mut self) -> Duration {
        let now = Instant::now();
        let d = now - self.last;
        self.last = now;
        d
    }
}

/// Milliseconds since the Unix epoch, from the system clock.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
