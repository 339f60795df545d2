//! The oracle: a clairvoyant schedule that knows the whole trace and the true capacity curve.
//!
//! It minimises `worker_seconds + violation_cost * slo_violation_s` over every schedule that
//! changes the job-level parallelism only at the policies' decision times, paying the same
//! rescale costs (nominal downtime, checkpoint replay) and obeying the same rule that no rescale
//! starts while one is in progress. A minimiser of a positively weighted sum is Pareto-optimal:
//! no schedule uses fewer worker-seconds without more SLO violation or more work left undone at
//! the end, so a policy's worker-seconds read as a ratio to the best possible.
//!
//! Dynamic programming over decision times: the states reached at each parallelism are kept as
//! a Pareto front over (cost so far, lag, records since the checkpoint, downtime left) — a state
//! no worse in all four can do no worse in the future. Fronts are capped at `max_front` by
//! sampling them along the lag axis; if a cap ever bites (overloaded jobs with huge, diverse
//! lags), the result is flagged `exact = false` and may be slightly above optimal.

use super::dynamics::{JobState, Model};

/// Oracle settings.
#[derive(Debug, Clone)]
pub struct OracleConfig {
    /// Seconds between decision times (the policies' interval).
    pub interval_s: u32,
    /// Worker-seconds one second of SLO violation costs. Default: 100 times the profile's max
    /// parallelism, so the oracle violates the SLO only where no affordable schedule avoids it
    /// and then is the cheapest schedule that keeps latency within the SLO.
    pub violation_cost: f64,
    /// Largest Pareto front kept per parallelism.
    pub max_front: usize,
}

impl OracleConfig {
    /// Defaults for `model` at `interval_s`.
    pub fn new(model: &Model, interval_s: u32) -> Self {
        OracleConfig {
            interval_s,
            violation_cost: 100.0 * f64::from(model.profile.max_parallelism),
            max_front: 64,
        }
    }
}

/// The oracle's schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// `(second, parallelism)` of each rescale, in time order.
    pub rescales: Vec<(u64, u32)>,
    /// The objective reached.
    pub cost: f64,
    /// False if a front cap pruned states (the result may then be slightly above optimal).
    pub exact: bool,
}

impl Schedule {
    /// The target the schedule sets at second `t`, if it rescales then.
    pub fn target_at(&self, t: u64) -> Option<u32> {
        self.rescales
            .iter()
            .find(|(at, _)| *at == t)
            .map(|(_, p)| *p)
    }
}

#[derive(Clone)]
struct Entry {
    state: JobState,
    cost: f64,
    node: u32,
}

const ROOT: u32 = u32::MAX;

fn dominates(a: &Entry, b: &Entry) -> bool {
    a.cost <= b.cost
        && a.state.lag <= b.state.lag
        && a.state.since_checkpoint <= b.state.since_checkpoint
        && a.state.downtime_left <= b.state.downtime_left
}

/// Thins an over-full front to at most `max` entries while keeping its shape: the front is a
/// trade-off curve between cost so far and lag, so it is sampled along the lag axis — the
/// cheapest entry per lag bucket (16 buckets per doubling of the lag, ~4%), then, if still too
/// many, evenly spaced entries in lag order (the lowest and highest lag always kept).
fn truncate_front(list: &mut Vec<Entry>, max: usize) {
    list.sort_by(|a, b| {
        a.state
            .lag
            .cmp(&b.state.lag)
            .then(a.cost.total_cmp(&b.cost))
    });
    let bucket = |e: &Entry| ((e.state.lag as f64 + 1.0).log2() * 16.0) as u64;
    let mut thinned: Vec<Entry> = Vec::with_capacity(max);
    for e in list.drain(..) {
        // The lowest-lag entry is never replaced: approximations must not compound there.
        let protected = thinned.len() <= 1;
        match thinned.last_mut() {
            Some(last) if bucket(last) == bucket(&e) && !protected => {
                if e.cost < last.cost {
                    *last = e;
                }
            }
            _ => thinned.push(e),
        }
    }
    if thinned.len() > max {
        let n = thinned.len();
        let keep: Vec<usize> = (0..max).map(|i| i * (n - 1) / (max - 1).max(1)).collect();
        thinned = thinned
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.binary_search(i).is_ok())
            .map(|(_, e)| e)
            .collect();
    }
    *list = thinned;
}

/// Advances `e` through seconds `from..to`, adding their cost.
fn advance(model: &Model, cfg: &OracleConfig, e: &mut Entry, from: usize, to: usize) {
    let slo = model.profile.slo_latency_ms;
    for t in from..to {
        let out = model.step(t, &mut e.state);
        e.cost += f64::from(e.state.parallelism());
        if out.latency_ms > slo {
            e.cost += cfg.violation_cost;
        }
    }
}

/// Computes the optimal schedule.
pub fn solve(model: &Model, cfg: &OracleConfig) -> Schedule {
    let n = model.duration_s();
    let interval = cfg.interval_s.max(1) as usize;
    let prof = &model.profile;
    let ops = prof.operators.len();
    let (lo, hi) = (prof.min_parallelism, prof.max_parallelism);
    let mut nodes: Vec<(u32, u64, u32)> = Vec::new();
    let mut exact = true;
    let mut first = Entry {
        state: model.initial_state(),
        cost: 0.0,
        node: ROOT,
    };
    advance(model, cfg, &mut first, 0, interval.min(n));
    let mut fronts: Vec<Vec<Entry>> = vec![Vec::new(); hi as usize + 1];
    fronts[prof.initial_parallelism as usize].push(first);
    let mut t = interval;
    while t < n {
        let end = (t + interval).min(n);
        let mut next: Vec<Vec<Entry>> = vec![Vec::new(); hi as usize + 1];
        for (p, front) in fronts.iter().enumerate() {
            let p = p as u32;
            for e in front {
                let choices = if e.state.rescaling() { p..=p } else { lo..=hi };
                for q in choices {
                    let mut cand = e.clone();
                    if q != p {
                        let d = model.downtime_s(p, q, 0.0);
                        model.start_rescale(&mut cand.state, vec![q; ops], d);
                        nodes.push((e.node, t as u64, q));
                        cand.node = (nodes.len() - 1) as u32;
                    }
                    advance(model, cfg, &mut cand, t, end);
                    let list = &mut next[q as usize];
                    if list.iter().any(|f| dominates(f, &cand)) {
                        continue;
                    }
                    list.retain(|f| !dominates(&cand, f));
                    list.push(cand);
                    if list.len() > cfg.max_front {
                        truncate_front(list, cfg.max_front);
                        exact = false;
                    }
                }
            }
        }
        fronts = next;
        t = end;
    }
    // Terminal cost: records still waiting at the end must be worked off after it, at best at
    // the largest capacity with the largest job. Without it a schedule could let the lag grow
    // towards the end (or rescale in the last interval) for free.
    let terminal = |e: &Entry| e.cost + model.drain_worker_seconds(e.state.lag);
    for e in fronts.iter_mut().flatten() {
        e.cost = terminal(e);
    }
    let best = fronts
        .iter()
        .flatten()
        .min_by(|a, b| a.cost.total_cmp(&b.cost))
        .expect("at least the initial schedule survives");
    // When fronts were thinned, also try every static schedule (one rescale at the first
    // decision time): on overloaded jobs, where thinning loses most, one of them is often best.
    if !exact && interval < n {
        let statics = (lo..=hi)
            .filter(|q| *q != prof.initial_parallelism)
            .map(|q| {
                let mut e = Entry {
                    state: model.initial_state(),
                    cost: 0.0,
                    node: ROOT,
                };
                advance(model, cfg, &mut e, 0, interval);
                let d = model.downtime_s(prof.initial_parallelism, q, 0.0);
                model.start_rescale(&mut e.state, vec![q; ops], d);
                advance(model, cfg, &mut e, interval, n);
                (q, terminal(&e))
            });
        if let Some((q, cost)) = statics.min_by(|a, b| a.1.total_cmp(&b.1))
            && cost < best.cost
        {
            return Schedule {
                rescales: vec![(interval as u64, q)],
                cost,
                exact,
            };
        }
    }
    let mut rescales = Vec::new();
    let mut node = best.node;
    while node != ROOT {
        let (parent, at, p) = nodes[node as usize];
        rescales.push((at, p));
        node = parent;
    }
    rescales.reverse();
    Schedule {
        rescales,
        cost: best.cost,
        exact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Decision};
    use crate::sim::profile::{Engine, JobProfile};
    use crate::sim::run::{RunConfig, run};
    use crate::sim::trace::Trace;

    fn tiny_profile(max: u32) -> JobProfile {
        let mut p = JobProfile::default_for(Engine::Flink);
        p.max_parallelism = max;
        p.operators.truncate(1);
        p.operators[0].capacity_per_instance = 100.0;
        p.scale_up_downtime_s = Some(3.0);
        p.scale_down_downtime_s = Some(2.0);
        p.checkpoint_interval_s = 4;
        p.slo_latency_ms = 2500.0;
        p
    }

    /// Runs a schedule through the simulator (nominal downtimes) and returns its objective.
    fn cost_of(model: &Model, interval: u32, schedule: &[u32]) -> f64 {
        let cfg = RunConfig {
            interval_s: interval,
            nominal_downtimes: true,
            ..RunConfig::default()
        };
        let mut k = 0;
        let mut decide = |_: &crate::model::DecisionInput| {
            let p = schedule[k];
            k += 1;
            (
                Ok(Decision {
                    action: Action::Job(p),
                    ..Decision::hold("")
                }),
                0.0,
            )
        };
        let r = run(model, &cfg, &mut decide, &mut |_| {});
        let slo = model.profile.slo_latency_ms;
        let ws: u64 = r.timeline.parallelism.iter().map(|p| u64::from(*p)).sum();
        let v = r.timeline.latency_ms.iter().filter(|l| **l > slo).count();
        let terminal = model.drain_worker_seconds(*r.timeline.lag.last().unwrap());
        ws as f64 + f64::from(model.profile.max_parallelism) * v as f64 + terminal
    }

    #[test]
    fn matches_brute_force_on_tiny_cases() {
        let mut rng = crate::sim::rng::Rng::new(42);
        for case in 0..12 {
            let max = 3;
            let interval = 5;
            let len = 30;
            let rates: Vec<u64> = (0..len).map(|_| (rng.uniform() * 330.0) as u64).collect();
            let model = Model::new(
                &tiny_profile(max),
                &Trace {
                    name: "t".into(),
                    rates,
                },
                1,
            );
            let oracle = solve(
                &model,
                &OracleConfig {
                    interval_s: interval,
                    violation_cost: 3.0,
                    max_front: 1000,
                },
            );
            assert!(oracle.exact);
            // Every schedule of targets at the 5 decision times (t = 5, 10, ..., 25).
            let decisions = (len as u32 - 1) / interval;
            let mut best = f64::INFINITY;
            for code in 0..max.pow(decisions) {
                let mut c = code;
                let schedule: Vec<u32> = (0..decisions)
                    .map(|_| {
                        let p = c % max + 1;
                        c /= max;
                        p
                    })
                    .collect();
                best = best.min(cost_of(&model, interval, &schedule));
            }
            assert_eq!(oracle.cost, best, "case {case}");
            // Replaying the oracle's own schedule reproduces its cost.
            let mut p = model.profile.initial_parallelism;
            let schedule: Vec<u32> = (1..=decisions)
                .map(|k| {
                    if let Some(q) = oracle.target_at(u64::from(k * interval)) {
                        p = q;
                    }
                    p
                })
                .collect();
            assert_eq!(
                cost_of(&model, interval, &schedule),
                oracle.cost,
                "case {case} replay"
            );
        }
    }
}
