//! The offline simulator: a discrete-time model of a stream-processing job (1 s steps, virtual
//! clock, deterministic given a seed) driven by a workload trace, the policies under test run
//! through the real wasm runtime, a scorecard per policy and a clairvoyant oracle.
//!
//! - [`trace`]: trace files and synthetic generators;
//! - [`profile`]: job profiles (TOML; bundled defaults for `flink` and `kafka-streams`);
//! - [`dynamics`]: the job model (capacity, lag queue, downtime, replay, latency);
//! - [`metrics`]: what a collector would observe each second;
//! - [`run`]: one policy on one trace, with the host's rules;
//! - [`score`]: the scorecard;
//! - [`oracle`]: the optimal schedule by dynamic programming;
//! - [`plot`]: SVG plots of runs and scorecards;
//! - [`compare`]: several policies and the oracle on one trace;
//! - [`export`]: per-run timeline CSV and decision log.
//!
//! The simulator never touches the network and depends only on `model` and `policy`.

pub mod compare;
pub mod dynamics;
pub mod export;
pub mod metrics;
pub mod oracle;
pub mod plot;
pub mod profile;
pub mod rng;
pub mod run;
pub mod score;
pub mod trace;

use crate::model::{Action, Decision};
use dynamics::Model;
use run::{RunConfig, RunResult};
use score::{Labels, Scorecard};

/// Runs the oracle for `model` and scores its schedule (replayed through the simulator with
/// nominal downtimes). Returns the run, its scorecard, and whether the schedule is exact.
pub fn run_oracle(model: &Model, cfg: &RunConfig, trace: &str) -> (RunResult, Scorecard, bool) {
    let schedule = oracle::solve(model, &oracle::OracleConfig::new(model, cfg.interval_s));
    let oracle_cfg = RunConfig {
        nominal_downtimes: true,
        ..cfg.clone()
    };
    let mut decide = |input: &crate::model::DecisionInput| {
        let d = match schedule.target_at(input.now_ms / 1000) {
            Some(p) => Decision {
                action: Action::Job(p),
                ..Decision::hold("oracle schedule")
            },
            None => Decision::hold("oracle schedule"),
        };
        (Ok(d), 0.0)
    };
    let result = run::run(model, &oracle_cfg, &mut decide, &mut |_| {});
    let card = score::score(
        &result,
        &Labels {
            policy: "oracle",
            digest: "",
            trace,
            engine: &model.profile.engine.to_string(),
            seed: cfg.seed,
            slo_ms: model.profile.slo_latency_ms,
            drain_ws_per_record: model.drain_worker_seconds(1),
        },
    );
    (result, card, schedule.exact)
}
