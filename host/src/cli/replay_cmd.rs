//! `daedalus replay` (counterfactual replay of a job's recorded history) and `daedalus arms`
//! (split-test scorecards from live data), both from the store of a `daedalus run` config.

use anyhow::{Context, bail};
use clap::Args;
use daedalus_host::live::RunConfig;
use daedalus_host::live::replay::{arm_report, counterfactual};
use daedalus_host::policy::{EngineOptions, PolicyEngine};
use daedalus_host::sim::compare::{PolicySpec, parse_spec, table};
use daedalus_host::sim::profile::{Engine, JobProfile};
use daedalus_host::sim::run::RunConfig as SimConfig;
use daedalus_host::store::Store;
use std::path::PathBuf;

/// Arguments of `replay`.
#[derive(Debug, Args)]
pub(crate) struct ReplayArgs {
    /// The `daedalus run` configuration (its `[store]` holds the history).
    #[arg(long)]
    config: PathBuf,
    /// The job to replay.
    #[arg(long)]
    job: String,
    /// Policies to replay, `NAME=PATH[?key=value&...]` (default: the job's active policy and
    /// its shadows, as configured).
    #[arg(long = "policy")]
    policies: Vec<String>,
    /// Simulator profile of the job (default: a simulated job's own profile; for a real job,
    /// write one with `daedalus calibrate`).
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Seed of the replay's noise and jitter.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Arguments of `arms`.
#[derive(Debug, Args)]
pub(crate) struct ArmsArgs {
    /// The `daedalus run` configuration (jobs' `arm`, and the `[store]`).
    #[arg(long)]
    config: PathBuf,
    /// Lag (records) above which a second counts as behind.
    #[arg(long, default_value_t = 10_000.0, value_parser = records)]
    lag_threshold: f64,
}

/// A record count: finite and not negative.
fn records(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a number of records (finite, at least 0)"
        )),
    }
}

fn open_store(cfg: &RunConfig) -> anyhow::Result<Store> {
    let Some(s) = &cfg.store else {
        bail!("the config has no [store]: nothing was recorded");
    };
    if !s.path.exists() {
        bail!(
            "store.path {} does not exist yet: run the job first",
            s.path.display()
        );
    }
    Ok(Store::open(&s.path)?)
}

pub(crate) fn replay(
    args: ReplayArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<std::process::ExitCode> {
    let cfg = RunConfig::load(&args.config)?;
    let job = cfg
        .jobs
        .iter()
        .find(|j| j.name == args.job)
        .with_context(|| format!("no job named {:?} in {}", args.job, args.config.display()))?;
    let store = open_store(&cfg)?;
    let samples = store.samples(&job.name, 0)?;
    let profile = match (&args.profile, &job.simulated) {
        (Some(p), _) => JobProfile::from_file(p)?,
        (None, Some(sim)) => match sim.profile.as_str() {
            "flink" => JobProfile::default_for(Engine::Flink),
            "kafka-streams" => JobProfile::default_for(Engine::KafkaStreams),
            f => JobProfile::from_file(std::path::Path::new(f))?,
        },
        (None, None) => {
            tracing::warn!(
                "No --profile for a real job: using the default Flink profile; `daedalus calibrate` writes a calibrated one."
            );
            JobProfile::default_for(Engine::Flink)
        }
    };
    let specs: Vec<PolicySpec> = if args.policies.is_empty() {
        let params = |m: &std::collections::BTreeMap<String, String>| {
            m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        std::iter::once(PolicySpec {
            name: "active".into(),
            path: job.policy.clone(),
            params: params(&job.params),
        })
        .chain(job.shadow.iter().map(|s| PolicySpec {
            name: s.name.clone(),
            path: s.policy.clone(),
            params: params(&s.params),
        }))
        .collect()
    } else {
        args.policies
            .iter()
            .map(|s| parse_spec(s))
            .collect::<Result<_, _>>()?
    };
    let engine = PolicyEngine::new(EngineOptions {
        cache_dir,
        ..EngineOptions::default()
    })?;
    // The job's own bounds, objective, tick, history window and limits.
    let profile = profile.for_job(
        job.min_parallelism,
        job.max_parallelism,
        job.latency_objective_secs,
    )?;
    let sim = SimConfig {
        interval_s: u32::try_from(cfg.tick_secs).unwrap_or(u32::MAX),
        history_s: u32::try_from(cfg.history_secs).unwrap_or(u32::MAX),
        seed: args.seed,
        ..SimConfig::default()
    };
    let (trace, scored) = counterfactual(
        &engine,
        &job.name,
        &samples,
        &profile,
        &specs,
        &sim,
        &job.limits,
    )?;
    outln!(
        "Counterfactual replay of {:?}: {} recorded samples, {} s of load (peak {} rec/s), profile {}",
        job.name,
        samples.len(),
        trace.rates.len(),
        trace.rates.iter().max().unwrap_or(&0),
        profile.name
    );
    let cards: Vec<_> = scored.into_iter().map(|s| s.card).collect();
    out!("{}", table(&cards));
    Ok(std::process::ExitCode::SUCCESS)
}

pub(crate) fn arms(args: ArmsArgs) -> anyhow::Result<std::process::ExitCode> {
    let cfg = RunConfig::load(&args.config)?;
    let arms = cfg.arms();
    if arms.is_empty() {
        bail!("no job in {} has an `arm`", args.config.display());
    }
    let store = open_store(&cfg)?;
    let report = arm_report(&store, &arms, |_| 0, args.lag_threshold)?;
    outln!(
        "{:<6} {:>5} {:>12} {:>16} {:>12} {:>14} {:>10} {:>12} {:>8}",
        "arm",
        "jobs",
        "observed s",
        "worker-seconds",
        "mean p/job",
        "behind s",
        "max lag",
        "rescales/h",
        "errors"
    );
    for r in &report {
        outln!(
            "{:<6} {:>5} {:>12.0} {:>16.0} {:>12.2} {:>14.0} {:>10.0} {:>12.2} {:>8}",
            r.arm,
            r.jobs.len(),
            r.observed_s,
            r.worker_seconds,
            r.mean_parallelism,
            r.lag_over_threshold_s,
            r.max_lag,
            r.rescales_per_hour,
            r.policy_errors
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lag_threshold_is_a_record_count() {
        assert_eq!(super::records("2500"), Ok(2500.0));
        for bad in ["NaN", "-1", "inf", "many"] {
            assert!(super::records(bad).is_err(), "{bad}");
        }
    }
}
