//! Plan, part 1: the recovery time a candidate scale-out would need.
//!
//! After a rescale the job must work off a backlog: the records since the last checkpoint
//! (replayed), the records that arrive during the downtime, and the current lag. It works it off
//! with the surplus of the candidate's capacity over the forecast. The recovery time is the
//! downtime plus the seconds until the cumulative surplus exceeds the backlog.
//!
//! Deviation from the reference: the reference adds the downtime twice (≈ 2·D + k); we return
//! `D + k + 1`. Keeping the current scale-out has no downtime and no replay.

/// The inputs of one prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct Backlog<'a> {
    /// Records since the last checkpoint (the sum of the last checkpoint interval of input).
    pub since_checkpoint: f64,
    /// Current consumer lag, records.
    pub lag: f64,
    /// Forecast input rate per second from now.
    pub forecast: &'a [f64],
}

/// Seconds until a job at `capacity` (records/s) has worked off the backlog after a downtime
/// of `downtime_s` (0 when keeping the current scale-out, which also replays nothing), or
/// `None` when it does not within the forecast.
pub fn recovery_time(
    b: &Backlog<'_>,
    capacity: f64,
    downtime_s: usize,
    rescale: bool,
) -> Option<usize> {
    let f = b.forecast;
    let arriving: f64 = f.iter().take(downtime_s).sum();
    let replay = if rescale { b.since_checkpoint } else { 0.0 };
    let backlog = replay + arriving + b.lag.max(0.0);
    if backlog <= 0.0 {
        return Some(downtime_s);
    }
    let mut drained = 0.0;
    for (k, rate) in f.iter().skip(downtime_s).enumerate() {
        drained += (capacity - rate).max(0.0);
        if drained > backlog {
            return Some(downtime_s + k + 1);
        }
    }
    None
}

/// Seconds from now until the queue behind a new record is short enough for latency within
/// the target again: until at most `allowed` records wait (the target times the input rate).
/// 0 when the queue never exceeds it; `None` when it does not get there within the forecast.
/// The queue peaks when the downtime ends (lag + replay + arrivals), and is worked off by the
/// surplus over the forecast, as in [`recovery_time`].
pub fn over_latency_time(
    b: &Backlog<'_>,
    capacity: f64,
    downtime_s: usize,
    rescale: bool,
    allowed: f64,
) -> Option<usize> {
    let f = b.forecast;
    let arriving: f64 = f.iter().take(downtime_s).sum();
    let replay = if rescale { b.since_checkpoint } else { 0.0 };
    let excess = replay + arriving + b.lag.max(0.0) - allowed;
    if excess <= 0.0 {
        return Some(0);
    }
    let mut drained = 0.0;
    for (k, rate) in f.iter().skip(downtime_s).enumerate() {
        drained += (capacity - rate).max(0.0);
        if drained >= excess {
            return Some(downtime_s + k + 1);
        }
    }
    None
}

/// Riding the forecast at `capacity` after a downtime of `downtime_s` (with the replay when
/// `rescale`): the longest the queue would take to drain at that capacity (s), its peak latency
/// in effect, and the records still queued when the forecast ends. The queue starts at the lag,
/// grows by the whole input during the downtime and by the input above capacity after it.
pub fn ride(b: &Backlog<'_>, capacity: f64, downtime_s: usize, rescale: bool) -> (f64, f64) {
    if capacity <= 0.0 {
        return (f64::INFINITY, f64::INFINITY);
    }
    let mut queue = b.lag.max(0.0) + if rescale { b.since_checkpoint } else { 0.0 };
    let mut worst: f64 = queue;
    for (k, rate) in b.forecast.iter().enumerate() {
        queue = if k < downtime_s {
            queue + rate
        } else {
            (queue + rate - capacity).max(0.0)
        };
        worst = worst.max(queue);
    }
    (worst / capacity, queue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn riding_a_peak_queues_what_exceeds_the_capacity() {
        // 10 s at 150 over a capacity of 100, then 100 s at 50: 500 queued at the peak, 5 s
        // to drain at 100; none left at the end.
        let mut f = vec![150.0; 10];
        f.extend(vec![50.0; 100]);
        let b = Backlog {
            since_checkpoint: 0.0,
            lag: 0.0,
            forecast: &f,
        };
        assert_eq!(ride(&b, 100.0, 0, false), (5.0, 0.0));
        // With a 2-s downtime and 40 replayed: 40 + 300 + 8 x 50 = 740 at the peak.
        let b = Backlog {
            since_checkpoint: 40.0,
            ..b
        };
        assert_eq!(ride(&b, 100.0, 2, true), (7.4, 0.0));
        // Below the base rate the queue never drains.
        let (_, left) = ride(&b, 40.0, 0, false);
        assert!(left > 0.0);
    }

    #[test]
    fn hand_computed_cases() {
        let f = vec![100.0; 100];
        // Downtime 10 s: 1000 arrive; replay 500; lag 300 => 1800 records. Surplus at 400
        // records/s is 300/s: drained > 1800 after 7 s (2100) => 10 + 7 = 17.
        let b = Backlog {
            since_checkpoint: 500.0,
            lag: 300.0,
            forecast: &f,
        };
        assert_eq!(recovery_time(&b, 400.0, 10, true), Some(17));
        // Keeping the scale-out: only the lag, 300 records at 300/s surplus: > 300 after 2 s.
        assert_eq!(recovery_time(&b, 400.0, 0, false), Some(2));
        // No surplus: never.
        assert_eq!(recovery_time(&b, 100.0, 10, true), None);
        // Nothing to work off: the downtime alone.
        let zero = vec![0.0; 100];
        let b = Backlog {
            since_checkpoint: 0.0,
            lag: 0.0,
            forecast: &zero,
        };
        assert_eq!(recovery_time(&b, 10.0, 5, true), Some(5));
    }

    #[test]
    fn over_latency_hand_computed() {
        let f = vec![100.0; 100];
        // Lag 3000, replay 500, 10 s downtime brings 1000: 4500 queued; 1500 may wait (a 15 s
        // target at 100/s). At 400/s the surplus is 300/s: 3000 worked off after 10 s => 20.
        let b = Backlog {
            since_checkpoint: 500.0,
            lag: 3000.0,
            forecast: &f,
        };
        assert_eq!(over_latency_time(&b, 400.0, 10, true, 1500.0), Some(20));
        // A larger scale-out gets there sooner: surplus 900/s, 3000 after 4 s => 14.
        assert_eq!(over_latency_time(&b, 1000.0, 10, true, 1500.0), Some(14));
        // Keeping: 3000 queued, 1500 excess at 300/s => 5 s.
        assert_eq!(over_latency_time(&b, 400.0, 0, false, 1500.0), Some(5));
        // A queue within the allowance: never over.
        assert_eq!(over_latency_time(&b, 400.0, 10, true, 10_000.0), Some(0));
        // No surplus: never back.
        assert_eq!(over_latency_time(&b, 100.0, 10, true, 1500.0), None);
    }
}
