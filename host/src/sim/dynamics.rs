//! The job model: capacity, the lag queue, rescale downtime and checkpoint replay, latency.
//! Deterministic: randomness (downtime jitter, metric noise) is drawn by the caller.

use super::profile::JobProfile;
use super::rng::Rng;
use super::trace::Trace;

/// The dynamic state of the simulated job. Records are whole numbers, so conservation is exact:
/// `arrived - processed == lag` at every step.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobState {
    /// Parallelism of each operator (profile order).
    pub ops: Vec<u32>,
    /// Records waiting (consumer lag).
    pub lag: u64,
    /// Seconds of rescale downtime still to go.
    pub downtime_left: u32,
    /// Records processed since the last completed checkpoint (replayed on a rescale).
    pub since_checkpoint: u64,
    /// Records arrived so far.
    pub arrived: u64,
    /// Records processed so far, net of replays.
    pub processed: u64,
}

impl JobState {
    /// Job-level parallelism: slots in use, the largest operator parallelism.
    pub fn parallelism(&self) -> u32 {
        self.ops.iter().copied().max().unwrap_or(1)
    }

    /// Whether a rescale is in progress.
    pub fn rescaling(&self) -> bool {
        self.downtime_left > 0
    }
}

/// What happened in one second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOut {
    /// Records that arrived.
    pub arrived: u64,
    /// Records processed.
    pub processed: u64,
    /// Capacity available this second (0 while down), records/s.
    pub capacity: u64,
    /// Latency of the oldest waiting record at the end of the second, ms.
    pub latency_ms: f64,
}

/// The model of one job on one trace.
#[derive(Debug, Clone)]
pub struct Model {
    /// The profile.
    pub profile: JobProfile,
    rates: Vec<u64>,
    /// `cumulative[s]` = records arrived before second `s`.
    cumulative: Vec<u64>,
    /// Load weight of worker `i` (skew), for the first `max_parallelism` workers.
    weights: Vec<f64>,
    /// Job capacity (records/s at the source) with every operator at parallelism `p`, index `p`.
    job_capacity: Vec<u64>,
}

impl Model {
    /// Builds the model; `seed` fixes the worker skew.
    pub fn new(profile: &JobProfile, trace: &Trace, seed: u64) -> Model {
        let mut cumulative = Vec::with_capacity(trace.rates.len() + 1);
        let mut sum = 0u64;
        cumulative.push(0);
        for r in &trace.rates {
            sum += r;
            cumulative.push(sum);
        }
        let mut rng = Rng::derive(seed, 1);
        let weights: Vec<f64> = (0..profile.max_parallelism.max(1))
            .map(|_| (1.0 + profile.worker_skew * rng.normal().clamp(-2.5, 2.5)).max(0.2))
            .collect();
        let mut m = Model {
            profile: profile.clone(),
            rates: trace.rates.clone(),
            cumulative,
            weights,
            job_capacity: Vec::new(),
        };
        m.job_capacity = (0..=profile.max_parallelism)
            .map(|p| {
                if p == 0 {
                    0
                } else {
                    m.capacity(&vec![p; profile.operators.len()])
                }
            })
            .collect();
        m
    }

    /// Trace length, seconds.
    pub fn duration_s(&self) -> usize {
        self.rates.len()
    }

    /// Records arriving in second `t`.
    pub fn rate(&self, t: usize) -> u64 {
        self.rates[t]
    }

    /// The initial state.
    pub fn initial_state(&self) -> JobState {
        JobState {
            ops: vec![self.profile.initial_parallelism; self.profile.operators.len()],
            lag: 0,
            downtime_left: 0,
            since_checkpoint: 0,
            arrived: 0,
            processed: 0,
        }
    }

    /// Share of the job's records that worker `i` of `p` handles.
    pub fn worker_share(&self, i: usize, p: u32) -> f64 {
        let total: f64 = self.weights[..p as usize].iter().sum();
        self.weights[i] / total
    }

    /// `p` times the hottest worker's share: how much skew lowers capacity (1 = no skew).
    fn skew_factor(&self, p: u32) -> f64 {
        let w = &self.weights[..p.max(1) as usize];
        let total: f64 = w.iter().sum();
        let max = w.iter().copied().fold(0.0, f64::max);
        f64::from(p.max(1)) * max / total
    }

    /// Records per second operator `i` can take in at parallelism `p` (its own input units).
    pub fn operator_capacity(&self, i: usize, p: u32) -> f64 {
        let op = &self.profile.operators[i];
        op.capacity_per_instance * self.profile.speedup(self.profile.useful_instances(i, p))
    }

    /// Records per source record reaching operator `i`.
    pub fn input_ratio(&self, i: usize) -> f64 {
        self.profile.operators[..i]
            .iter()
            .map(|o| o.selectivity)
            .product()
    }

    /// Index of the operator that limits the pipeline at `ops`.
    pub fn bottleneck(&self, ops: &[u32]) -> usize {
        (0..ops.len())
            .min_by(|a, b| {
                let ca = self.operator_capacity(*a, ops[*a]) / self.input_ratio(*a);
                let cb = self.operator_capacity(*b, ops[*b]) / self.input_ratio(*b);
                ca.total_cmp(&cb)
            })
            .unwrap_or(0)
    }

    /// Job capacity at `ops`, source records per second (the slowest operator, lowered by skew).
    pub fn capacity(&self, ops: &[u32]) -> u64 {
        let raw = (0..ops.len())
            .map(|i| self.operator_capacity(i, ops[i]) / self.input_ratio(i))
            .fold(f64::INFINITY, f64::min);
        let p = ops.iter().copied().max().unwrap_or(1);
        (raw / self.skew_factor(p)).floor() as u64
    }

    /// Job capacity with every operator at `p`.
    pub fn job_capacity(&self, p: u32) -> u64 {
        self.job_capacity
            .get(p as usize)
            .copied()
            .unwrap_or_else(|| self.capacity(&vec![p; self.profile.operators.len()]))
    }

    /// Worker-seconds the largest job needs to work off `lag` records left waiting at the end of
    /// a run: the oracle's terminal cost, and the scorecard's `drain_worker_seconds`, so runs
    /// that leave different amounts of work undone compare on one charge.
    pub fn drain_worker_seconds(&self, lag: u64) -> f64 {
        let (lo, hi) = (self.profile.min_parallelism, self.profile.max_parallelism);
        let best = (lo..=hi)
            .map(|p| self.job_capacity(p))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        f64::from(hi) * lag as f64 / best
    }

    /// Downtime of a rescale from `from` to `to` slots, whole seconds, with jitter `u` in [-1, 1].
    pub fn downtime_s(&self, from: u32, to: u32, u: f64) -> u32 {
        let base = if to > from {
            self.profile.up_downtime_s()
        } else {
            self.profile.down_downtime_s()
        };
        (base * (1.0 + self.profile.downtime_jitter * u))
            .round()
            .max(0.0) as u32
    }

    /// Starts a rescale: records since the last checkpoint go back to the queue, processing
    /// stops for `downtime_s`, and the new parallelism holds from now on.
    pub fn start_rescale(&self, s: &mut JobState, ops: Vec<u32>, downtime_s: u32) {
        s.lag += s.since_checkpoint;
        s.processed -= s.since_checkpoint;
        s.since_checkpoint = 0;
        s.downtime_left = downtime_s;
        s.ops = ops;
    }

    /// Advances one second (`t`).
    pub fn step(&self, t: usize, s: &mut JobState) -> StepOut {
        let arrived = self.rates[t];
        s.arrived += arrived;
        s.lag += arrived;
        let (processed, capacity) = if s.downtime_left > 0 {
            s.downtime_left -= 1;
            (0, 0)
        } else {
            let cap = if s.ops.iter().all(|p| *p == s.ops[0]) {
                self.job_capacity(s.ops[0])
            } else {
                self.capacity(&s.ops)
            };
            let done = s.lag.min(cap);
            s.lag -= done;
            s.processed += done;
            s.since_checkpoint += done;
            if (t as u64 + 1).is_multiple_of(u64::from(self.profile.checkpoint_interval_s)) {
                s.since_checkpoint = 0;
            }
            (done, cap)
        };
        StepOut {
            arrived,
            processed,
            capacity,
            latency_ms: self.latency_ms(t, s),
        }
    }

    /// Latency at the end of second `t`: the age of the oldest waiting record plus processing.
    pub fn latency_ms(&self, t: usize, s: &JobState) -> f64 {
        let base = self.profile.processing_latency_ms;
        if s.lag == 0 {
            return base;
        }
        // The oldest waiting record is record number `processed`; it arrived in second k with
        // cumulative[k] <= processed < cumulative[k + 1].
        let k = self
            .cumulative
            .partition_point(|c| *c <= s.processed)
            .saturating_sub(1);
        (t.saturating_sub(k)) as f64 * 1000.0 + base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::profile::{Engine, JobProfile};

    fn profile() -> JobProfile {
        let mut p = JobProfile::default_for(Engine::Flink);
        p.worker_skew = 0.0;
        p.usl_sigma = 0.0;
        p.usl_kappa = 0.0;
        p.downtime_jitter = 0.0;
        p.operators.truncate(1);
        p.operators[0].capacity_per_instance = 100.0;
        p.checkpoint_interval_s = 10;
        p
    }

    fn trace(rates: Vec<u64>) -> Trace {
        Trace {
            name: "t".into(),
            rates,
        }
    }

    #[test]
    fn undone_work_is_charged_at_the_largest_job() {
        // Linear scaling, 100 records/s per instance: the largest job (max_parallelism
        // instances) works off a record in 1/100 of a worker-second, whatever its size.
        let p = profile();
        let m = Model::new(&p, &trace(vec![0; 10]), 1);
        assert_eq!(m.drain_worker_seconds(0), 0.0);
        let per_instance = m.job_capacity(p.max_parallelism) as f64 / f64::from(p.max_parallelism);
        let want = 5000.0 / per_instance;
        assert!((m.drain_worker_seconds(5000) - want).abs() < 1e-9);
        // Contention makes the largest job slower per worker, and the charge higher.
        let mut sub = profile();
        sub.usl_sigma = 0.05;
        let ms = Model::new(&sub, &trace(vec![0; 10]), 1);
        assert!(ms.drain_worker_seconds(5000) > m.drain_worker_seconds(5000));
    }

    #[test]
    fn records_are_conserved_every_step() {
        let m = Model::new(
            &JobProfile::default_for(Engine::Flink),
            &Trace::synthetic("sine:min=0,max=200000,period=300,duration=900").unwrap(),
            7,
        );
        let mut s = m.initial_state();
        for t in 0..m.duration_s() {
            if t % 100 == 50 {
                let p = (t / 100) as u32 % 5 + 1;
                m.start_rescale(&mut s, vec![p; 3], 20);
            }
            m.step(t, &mut s);
            assert_eq!(s.arrived - s.processed, s.lag, "t={t}");
        }
    }

    #[test]
    fn enough_capacity_means_zero_lag() {
        let m = Model::new(&profile(), &trace(vec![99; 50]), 1);
        let mut s = m.initial_state();
        for t in 0..50 {
            let out = m.step(t, &mut s);
            assert_eq!(s.lag, 0);
            assert_eq!(out.latency_ms, 50.0);
        }
    }

    #[test]
    fn lag_grows_by_the_surplus_when_pinned_below_need() {
        let m = Model::new(&profile(), &trace(vec![130; 20]), 1);
        let mut s = m.initial_state();
        for t in 0..20 {
            m.step(t, &mut s);
            assert_eq!(s.lag, 30 * (t as u64 + 1));
        }
        // The oldest waiting record arrived in second 0... after 20 s the head is from second 15.
        assert!(m.latency_ms(19, &s) > 1000.0);
    }

    #[test]
    fn downtime_and_replay_add_exactly_the_expected_backlog() {
        // 100 records/s capacity, 50 arriving: no lag. Checkpoints complete at the end of
        // seconds 9, 19, ...; rescale at t = 15 replays seconds 10..14 (5 x 50 = 250 records),
        // then 20 s of downtime add 20 x 50 = 1000 arrivals.
        let m = Model::new(&profile(), &trace(vec![50; 60]), 1);
        let mut s = m.initial_state();
        for t in 0..15 {
            m.step(t, &mut s);
        }
        assert_eq!((s.lag, s.since_checkpoint), (0, 250));
        m.start_rescale(&mut s, vec![2], 20);
        assert_eq!(s.lag, 250);
        for t in 15..35 {
            let out = m.step(t, &mut s);
            assert_eq!(out.processed, 0);
        }
        assert_eq!(s.lag, 250 + 1000);
        assert_eq!(m.downtime_s(1, 2, 0.0), 30);
        assert_eq!(m.downtime_s(2, 1, 0.0), 15);
    }

    #[test]
    fn partition_cap_limits_useful_parallelism() {
        let mut p = profile();
        p.partitions = 4;
        let m = Model::new(&p, &trace(vec![1; 2]), 1);
        assert_eq!(m.job_capacity(4), m.job_capacity(8));
        assert!(m.job_capacity(4) > m.job_capacity(3));
    }
}
