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

/// A job's loop clock: Unix time, optionally accelerated. `now = origin + (unix - origin) *
/// speedup`, so an accelerated clock stays continuous across host restarts when `origin` is
/// kept (a simulated job keeps it in its state file). Reads tokio's clock, so tests can pause
/// and advance it.
#[derive(Debug, Clone, Copy)]
pub struct JobClock {
    origin_ms: u64,
    base_unix_ms: u64,
    base: tokio::time::Instant,
    speedup: f64,
}

impl JobClock {
    /// Real time.
    pub fn real() -> Self {
        Self::accelerated(unix_now_ms(), 1.0)
    }

    /// `speedup` clock milliseconds per wall millisecond since `origin_ms`.
    pub fn accelerated(origin_ms: u64, speedup: f64) -> Self {
        JobClock {
            origin_ms,
            base_unix_ms: unix_now_ms(),
            base: tokio::time::Instant::now(),
            speedup,
        }
    }

    /// The clock's speedup.
    pub fn speedup(&self) -> f64 {
        self.speedup
    }

    /// Now, ms.
    pub fn now_ms(&self) -> u64 {
        let unix = self.base_unix_ms + self.base.elapsed().as_millis() as u64;
        let since = unix.saturating_sub(self.origin_ms) as f64 * self.speedup;
        self.origin_ms + since as u64
    }
}
