//! Comparing policies on one trace: policy specs, running every policy and the oracle, and the
//! text table of their scorecards. Shared by `daedalus simulate` and `bench-policies`.

use super::dynamics::Model;
use super::profile::{Engine, JobProfile};
use super::run::{RunConfig, RunResult, run};
use super::score::{Labels, Scorecard, score};
use super::trace::Trace;
use crate::clock::Stopwatch;
use crate::conformance::check_params;
use crate::model::GuestError;
use crate::policy::{LoadError, LoadedPolicy, PolicyEngine, PolicyLimits};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a comparison could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompareError {
    /// A policy spec is malformed.
    #[error("policy spec `{spec}`: {detail}")]
    BadSpec {
        /// The spec.
        spec: String,
        /// What is wrong.
        detail: String,
    },
    /// A policy could not be loaded.
    #[error("cannot load policy `{name}` from {path}")]
    Load {
        /// Display name.
        name: String,
        /// File.
        path: String,
        /// Cause.
        #[source]
        source: LoadError,
    },
    /// A policy rejects the parameters it was given (an unknown key, a value out of range).
    #[error("policy `{name}` rejects its parameters")]
    Params {
        /// Display name.
        name: String,
        /// The policy's answer.
        #[source]
        source: GuestError,
    },
    /// Two policies share a display name (or the oracle's, or one that makes the same file
    /// name), so their rows and files would collide.
    #[error(
        "two policies are named `{0}` (or the same as file names, or as the oracle); give each \
         its own name (`NAME=PATH?KEY=VALUE`)"
    )]
    DuplicateName(String),
}

/// A parsed `--policy` spec.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Display name (a row of the scorecard).
    pub name: String,
    /// The component.
    pub path: PathBuf,
    /// Parameters handed to it.
    pub params: Vec<(String, String)>,
}

impl PolicySpec {
    /// A spec for the component at `path`, shown as `name`, with `params`.
    pub fn new(name: &str, path: PathBuf, params: &[(&str, &str)]) -> Self {
        PolicySpec {
            name: name.into(),
            path,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// Parses `[NAME=]PATH[?KEY=VALUE&...]`.
pub fn parse_spec(spec: &str) -> Result<PolicySpec, CompareError> {
    let bad = |detail: String| CompareError::BadSpec {
        spec: spec.to_string(),
        detail,
    };
    let (head, query) = spec.split_once('?').unwrap_or((spec, ""));
    let (name, path) = match head.split_once('=') {
        Some((n, p)) if !n.contains('/') && !n.is_empty() => (Some(n.to_string()), p),
        _ => (None, head),
    };
    if path.is_empty() {
        return Err(bad("no path".into()));
    }
    let path = PathBuf::from(path);
    let name = name.unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "policy".into())
    });
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| bad(format!("`{pair}` is not KEY=VALUE")))?;
        params.push((k.to_string(), v.to_string()));
    }
    Ok(PolicySpec { name, path, params })
}

/// One scored run.
pub struct Scored {
    /// The scorecard.
    pub card: Scorecard,
    /// The run behind it.
    pub result: RunResult,
    /// For the oracle: whether its schedule is provably optimal (fronts never thinned).
    pub exact: bool,
}

/// Runs every policy and then the oracle on one trace, with a progress bar when `progress`.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site per command; a struct adds nothing"
)]
pub fn simulate_all(
    engine: &Arc<PolicyEngine>,
    specs: &[PolicySpec],
    profile: &JobProfile,
    trace: &Trace,
    cfg: &RunConfig,
    limits: &PolicyLimits,
    with_oracle: bool,
    progress: bool,
) -> Result<Vec<Scored>, CompareError> {
    let model = Model::new(profile, trace, cfg.seed);
    // Names must differ as file names too (`a.b` and `a_b` write the same files), and from
    // the oracle's row.
    let mut names = std::collections::BTreeSet::new();
    if with_oracle {
        names.insert(super::export::slug("oracle"));
    }
    if let Some(s) = specs
        .iter()
        .find(|s| !names.insert(super::export::slug(&s.name)))
    {
        return Err(CompareError::DuplicateName(s.name.clone()));
    }
    let loaded: Vec<(PolicySpec, LoadedPolicy)> = specs
        .iter()
        .map(|s| {
            let policy =
                engine
                    .load_file(&s.path, limits, None)
                    .map_err(|source| CompareError::Load {
                        name: s.name.clone(),
                        path: s.path.display().to_string(),
                        source,
                    })?;
            check_params(
                &policy,
                &s.params,
                limits,
                Some(profile.latency_objective_ms()),
            )
            .map_err(|source| CompareError::Params {
                name: s.name.clone(),
                source,
            })?;
            Ok((s.clone(), policy))
        })
        .collect::<Result<_, CompareError>>()?;
    let mut out = Vec::new();
    for (spec, policy) in &loaded {
        let bar = if progress {
            let bar = indicatif::ProgressBar::new(trace.duration_s());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} s simulated ({eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(spec.name.clone());
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let run_cfg = RunConfig {
            params: spec.params.clone(),
            ..cfg.clone()
        };
        let mut decide = |input: &crate::model::DecisionInput| {
            let mut sw = Stopwatch::start();
            let r = policy.decide_blocking(input, limits);
            (r, sw.lap().as_secs_f64() * 1e6)
        };
        let result = run(&model, &run_cfg, &mut decide, &mut |t| bar.set_position(t));
        bar.finish_and_clear();
        let card = score(
            &result,
            &Labels {
                policy: &spec.name,
                digest: policy.digest(),
                trace: &trace.name,
                engine: &profile.engine.to_string(),
                seed: cfg.seed,
                slo_ms: profile.slo_latency_ms,
                drain_ws_per_record: model.drain_worker_seconds(1),
            },
        );
        if let Some(first) = result.decisions.iter().find(|d| d.error.is_some()) {
            tracing::warn!(policy = %spec.name, errors = result.policy_errors, first = ?first.error, "Policy failed during the run; the job held.");
        }
        out.push(Scored {
            card,
            result,
            exact: true,
        });
    }
    if with_oracle {
        let (result, card, exact) = super::run_oracle(&model, cfg, &trace.name);
        if !exact {
            tracing::info!(
                "Oracle fronts were capped; its schedule may be slightly above optimal."
            );
        }
        out.push(Scored {
            card,
            result,
            exact,
        });
    }
    Ok(out)
}

/// The bundled policies in `dir`: daedalus, hpa and ds2 with defaults, static at 12 (the paper's
/// static Flink deployment).
pub fn default_specs(dir: &Path) -> Vec<PolicySpec> {
    let spec = |name: &str, file: &str, params: &[(&str, &str)]| {
        PolicySpec::new(name, dir.join(file), params)
    };
    vec![
        spec("daedalus", "daedalus.wasm", &[]),
        spec("hpa", "hpa.wasm", &[]),
        spec("ds2", "ds2.wasm", &[]),
        spec("static12", "static.wasm", &[("parallelism", "12")]),
    ]
}

/// The baselines of the Daedalus paper's harness, from the built policies in `dir`: `hpa80` and
/// `hpa85` (the HPA rule at CPU targets 80% and 85%, 300 s stabilization both ways), `ds2`, and
/// `static-paper` (12 workers for Flink, 18 for Kafka Streams).
pub fn paper_baselines(dir: &Path, engine: Engine) -> Vec<PolicySpec> {
    let hpa = |name: &str, target: &str| {
        PolicySpec::new(
            name,
            dir.join("hpa.wasm"),
            &[
                ("target_cpu_utilization", target),
                ("scale_up_stabilization_secs", "300"),
                ("scale_down_stabilization_secs", "300"),
            ],
        )
    };
    let paper_static = match engine {
        Engine::Flink => "12",
        Engine::KafkaStreams => "18",
    };
    vec![
        hpa("hpa80", "0.8"),
        hpa("hpa85", "0.85"),
        PolicySpec::new("ds2", dir.join("ds2.wasm"), &[]),
        PolicySpec::new(
            "static-paper",
            dir.join("static.wasm"),
            &[("parallelism", paper_static)],
        ),
    ]
}

/// The scorecard as a text table, with worker-seconds as a ratio to the oracle when present.
pub fn table(cards: &[Scorecard]) -> String {
    let oracle = cards
        .iter()
        .find(|c| c.policy == "oracle")
        .map(|c| c.worker_seconds as f64);
    let mut s = format!(
        "{:<14} {:>13} {:>9} {:>8} {:>8} {:>9} {:>10} {:>10} {:>11} {:>7} {:>10}\n",
        "policy",
        "worker-s",
        "vs oracle",
        "avg par",
        "rescales",
        "down s",
        "p95 ms",
        "SLO viol s",
        "max lag",
        "errors",
        "decide µs"
    );
    for c in cards {
        let ratio = oracle.filter(|o| *o > 0.0).map_or("-".to_string(), |o| {
            format!("{:.2}", c.worker_seconds as f64 / o)
        });
        s += &format!(
            "{:<14} {:>13} {:>9} {:>8.2} {:>8} {:>9} {:>10.0} {:>10} {:>11} {:>7} {:>10.1}\n",
            c.policy,
            c.worker_seconds,
            ratio,
            c.avg_parallelism,
            c.rescales,
            c.downtime_s,
            c.latency_ms_p95,
            c.slo_violation_s,
            c.max_lag_records,
            c.policy_errors,
            c.decide_us_p50
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_specs_parse() {
        let s =
            parse_spec("hpa80=target/policies/hpa.wasm?target_cpu_utilization=0.8&tolerance=0.05")
                .unwrap();
        assert_eq!(s.name, "hpa80");
        assert_eq!(s.path, PathBuf::from("target/policies/hpa.wasm"));
        assert_eq!(s.params.len(), 2);
        let s = parse_spec("target/policies/ds2.wasm").unwrap();
        assert_eq!(s.name, "ds2");
        assert!(s.params.is_empty());
        assert!(parse_spec("x.wasm?novalue").is_err());
        assert!(parse_spec("name=").is_err());
    }

    /// A policy named like the oracle, or two whose files would collide, are refused before
    /// anything is loaded (the "vs oracle" ratios were taken against the user's row).
    #[test]
    fn names_may_not_collide_with_the_oracle_or_as_files() {
        let engine = PolicyEngine::new(crate::policy::EngineOptions::default()).unwrap();
        let profile = JobProfile::default_for(Engine::Flink);
        let trace = Trace::synthetic("constant:rate=1000,duration=10").unwrap();
        let run = |names: &[&str], with_oracle: bool| {
            let specs: Vec<_> = names
                .iter()
                .map(|n| PolicySpec::new(n, PathBuf::from("missing.wasm"), &[]))
                .collect();
            simulate_all(
                &engine,
                &specs,
                &profile,
                &trace,
                &RunConfig::default(),
                &PolicyLimits::default(),
                with_oracle,
                false,
            )
            .map(|_| ())
        };
        let dup = |r: Result<(), CompareError>| matches!(r, Err(CompareError::DuplicateName(_)));
        assert!(dup(run(&["oracle"], true)));
        assert!(dup(run(&["a.b", "a_b"], false)));
        // Distinct names get as far as loading (the file is missing).
        assert!(matches!(
            run(&["oracle"], false),
            Err(CompareError::Load { .. })
        ));
    }
}
