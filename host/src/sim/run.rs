//! One simulation run: the job model driven by a trace, a policy deciding every interval with a
//! host-owned history window, the host's rules (hold on failure, state threading, no rescale
//! while one is in progress), and the per-second timeline the scorecard is computed from.

use super::dynamics::Model;
use super::metrics::observe;
use super::rng::Rng;
use crate::model::{
    Action, Bounds, Decision, DecisionInput, Observation, PreviousOutcome, RescaleStatus,
};
use crate::policy::PolicyError;
use std::collections::VecDeque;

/// How the host drives the policy in a run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Seconds between decisions. Default 10.
    pub interval_s: u32,
    /// Seconds of history handed to the policy. Default 300.
    pub history_s: u32,
    /// Seed of the run (skew, noise, jitter).
    pub seed: u64,
    /// Policy parameters.
    pub params: Vec<(String, String)>,
    /// Whether rescale downtimes are nominal (no jitter), as the oracle assumes.
    pub nominal_downtimes: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            interval_s: 10,
            history_s: 300,
            seed: 1,
            params: Vec::new(),
            nominal_downtimes: false,
        }
    }
}

/// The per-second record of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Arrivals per second.
    pub input: Vec<u64>,
    /// Records processed per second.
    pub processed: Vec<u64>,
    /// Capacity per second (0 while down).
    pub capacity: Vec<u64>,
    /// Job parallelism (slots) per second.
    pub parallelism: Vec<u32>,
    /// Lag at the end of each second.
    pub lag: Vec<u64>,
    /// Latency at the end of each second, ms.
    pub latency_ms: Vec<f64>,
    /// Whether each second was rescale downtime.
    pub down: Vec<bool>,
}

/// One decision of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    /// Second of the decision.
    pub t: u64,
    /// The decision (a hold when the policy failed).
    pub decision: Decision,
    /// The failure, if the policy failed.
    pub error: Option<String>,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Per-second record.
    pub timeline: Timeline,
    /// Every decision.
    pub decisions: Vec<DecisionRecord>,
    /// Rescales applied.
    pub rescales: u32,
    /// Seconds of rescale downtime.
    pub downtime_s: u64,
    /// Decisions that failed.
    pub policy_errors: u32,
    /// Wall time of each decide call, microseconds (not part of the deterministic results).
    pub decide_us: Vec<f64>,
    /// Records processed, net of replays, as the model counted them.
    pub records_processed: u64,
}

/// A policy as the simulator calls it: returns the decision (already validated) and how long
/// the call took in microseconds.
pub type Decider<'a> = dyn FnMut(&DecisionInput) -> (Result<Decision, PolicyError>, f64) + 'a;

/// Runs `model` with `decide` and returns the timeline; `progress` is called with the seconds
/// simulated so far every 1000 simulated seconds.
pub fn run(
    model: &Model,
    cfg: &RunConfig,
    decide: &mut Decider<'_>,
    progress: &mut dyn FnMut(u64),
) -> RunResult {
    let prof = &model.profile;
    let bounds = Bounds {
        min_parallelism: prof.min_parallelism,
        max_parallelism: prof.max_parallelism,
    };
    let mut s = model.initial_state();
    let mut metrics_rng = Rng::derive(cfg.seed, 2);
    let mut jitter_rng = Rng::derive(cfg.seed, 3);
    let mut history: VecDeque<Observation> = VecDeque::new();
    let mut last_obs: Option<Observation> = None;
    let mut state: Option<Vec<u8>> = None;
    let mut previous: Option<PreviousOutcome> = None;
    let mut rescale = RescaleStatus::default();
    let mut out = RunResult {
        timeline: Timeline::default(),
        decisions: Vec::new(),
        rescales: 0,
        downtime_s: 0,
        policy_errors: 0,
        decide_us: Vec::new(),
        records_processed: 0,
    };
    let n = model.duration_s();
    let interval = cfg.interval_s.max(1) as usize;
    for t in 0..n {
        if t > 0
            && t % interval == 0
            && let Some(current) = last_obs.clone()
        {
            let input = DecisionInput {
                job_id: prof.name.clone(),
                now_ms: t as u64 * 1000,
                current,
                history: history.iter().cloned().collect(),
                bounds,
                // The profile's SLO is the simulated operator's objective.
                latency_objective_ms: Some(prof.latency_objective_ms()),
                rescale: RescaleStatus {
                    in_progress: s.rescaling(),
                    ..rescale.clone()
                },
                previous: previous.clone(),
                params: cfg.params.clone(),
                state: state.clone(),
            };
            let (result, us) = decide(&input);
            out.decide_us.push(us);
            let (decision, error) = match result {
                Ok(d) => (d, None),
                Err(e) => {
                    out.policy_errors += 1;
                    (
                        Decision {
                            state: state.clone(),
                            ..Decision::hold(format!("policy failed, holding: {e}"))
                        },
                        Some(e.to_string()),
                    )
                }
            };
            state = decision.state.clone();
            let current_p = s.parallelism();
            let target_ops: Vec<u32> = match &decision.action {
                Action::Hold => s.ops.clone(),
                Action::Job(p) => vec![*p; s.ops.len()],
                Action::Operators(targets) => prof
                    .operators
                    .iter()
                    .zip(&s.ops)
                    .map(|(op, cur)| {
                        targets
                            .iter()
                            .find(|t| t.operator_id == op.id)
                            .map_or(*cur, |t| t.parallelism)
                    })
                    .collect(),
            };
            let proposed = target_ops.iter().copied().max().unwrap_or(current_p);
            let mut clamped_by = Vec::new();
            if target_ops != s.ops {
                if s.rescaling() {
                    clamped_by.push("rescale-in-progress".to_string());
                } else {
                    let u = if cfg.nominal_downtimes {
                        0.0
                    } else {
                        2.0 * jitter_rng.uniform() - 1.0
                    };
                    let new_p = proposed;
                    let d = model.downtime_s(current_p, new_p, u);
                    model.start_rescale(&mut s, target_ops, d);
                    out.rescales += 1;
                    rescale.count += 1;
                    rescale.started_ms = Some(t as u64 * 1000);
                }
            }
            previous = Some(PreviousOutcome {
                proposed_parallelism: proposed,
                applied_parallelism: s.parallelism(),
                clamped_by,
            });
            out.decisions.push(DecisionRecord {
                t: t as u64,
                decision,
                error,
            });
        }
        let was_down = s.rescaling();
        let step = model.step(t, &mut s);
        if was_down {
            out.downtime_s += 1;
            if !s.rescaling() {
                rescale.last_finished_ms = Some((t as u64 + 1) * 1000);
                rescale.started_ms = None;
            }
        }
        let tl = &mut out.timeline;
        tl.input.push(step.arrived);
        tl.processed.push(step.processed);
        tl.capacity.push(step.capacity);
        tl.parallelism.push(s.parallelism());
        tl.lag.push(s.lag);
        tl.latency_ms.push(step.latency_ms);
        tl.down.push(was_down);
        let obs = observe(model, t, &s, &step, &mut metrics_rng);
        if let Some(prev) = last_obs.replace(obs) {
            history.push_back(prev);
        }
        let since = (t as u64 + 1).saturating_sub(u64::from(cfg.history_s)) * 1000;
        while history.front().is_some_and(|o| o.at_ms < since) {
            history.pop_front();
        }
        if (t + 1) % 1000 == 0 {
            progress(t as u64 + 1);
        }
    }
    progress(n as u64);
    out.records_processed = s.processed;
    out
}
