//! `daedalus simulate`: run policies against the simulated job on a trace, print the scorecard,
//! write `report.json` and plots.

use anyhow::{Context, bail};
use clap::Args;
use daedalus_host::policy::{EngineOptions, PolicyEngine, PolicyLimits};
use daedalus_host::sim::compare::{default_specs, parse_spec, simulate_all, table};
use daedalus_host::sim::plot;
use daedalus_host::sim::profile::{Engine, JobProfile};
use daedalus_host::sim::run::RunConfig;
use daedalus_host::sim::score::Scorecard;
use daedalus_host::sim::trace::Trace;
use std::path::{Path, PathBuf};

/// Arguments of `simulate`.
#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Workload: a trace file (`second|count` or `seconds,rate` CSV) or a synthetic spec such as
    /// `sine:min=5000,max=40000,period=3600,duration=7200` (kinds: constant, step, sine, spike,
    /// random-walk).
    #[arg(long)]
    pub(crate) trace: String,
    /// A policy to run: `[NAME=]PATH[?KEY=VALUE&...]`, e.g.
    /// `hpa80=target/policies/hpa.wasm?target_cpu_utilization=0.8`. Repeatable; the same
    /// component may appear twice with different parameters under different NAMEs (a name
    /// defaults to the file's stem; names must be unique). Default: daedalus, hpa, ds2 and
    /// static12 (static at 12) from `--policies-dir`.
    #[arg(long = "policy")]
    pub(crate) policies: Vec<String>,
    /// Where the default policies are.
    #[arg(long, default_value = "target/policies")]
    pub(crate) policies_dir: PathBuf,
    /// Engine profile to simulate (its bundled default unless `--profile` is given).
    #[arg(long, value_enum, default_value_t = EngineArg::Flink)]
    pub(crate) engine: EngineArg,
    /// Job profile TOML (see `host/profiles/`); overrides `--engine`.
    #[arg(long)]
    pub(crate) profile: Option<PathBuf>,
    /// Seed of the run (worker skew, metric noise, downtime jitter).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Output directory for report.json and the plots.
    #[arg(long, default_value = "target/simulate")]
    pub(crate) out: PathBuf,
    /// Seconds between policy decisions.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) interval_secs: u32,
    /// Seconds of history handed to the policy each decision.
    #[arg(long, default_value_t = 300)]
    pub(crate) history_secs: u32,
    /// Multiply every rate of the trace by this factor.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) rate_scale: f64,
    /// Only simulate the first N seconds of the trace.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) duration_secs: Option<u64>,
    /// Skip the oracle.
    #[arg(long)]
    pub(crate) no_oracle: bool,
    /// Fuel per policy call.
    #[arg(long, default_value_t = PolicyLimits::default().fuel)]
    pub(crate) fuel: u64,
    /// Deadline per policy call, milliseconds.
    #[arg(long, default_value_t = PolicyLimits::default().deadline_ms)]
    pub(crate) deadline_ms: u64,
    /// Memory cap per policy instance, MiB.
    #[arg(long, default_value_t = PolicyLimits::default().memory_mib)]
    pub(crate) memory_mib: u64,
}

/// Engine names on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum EngineArg {
    /// Apache Flink.
    Flink,
    /// Kafka Streams.
    KafkaStreams,
}

fn load_trace(args: &SimulateArgs) -> anyhow::Result<Trace> {
    let trace = Trace::load(&args.trace)?;
    let trace = match args.duration_secs {
        Some(s) => trace.truncated(s),
        None => trace,
    };
    if !(args.rate_scale.is_finite() && args.rate_scale > 0.0) {
        bail!("--rate-scale must be > 0");
    }
    Ok(trace.scaled(args.rate_scale))
}

pub(crate) fn profile_for(engine: EngineArg, profile: Option<&Path>) -> anyhow::Result<JobProfile> {
    Ok(match profile {
        Some(p) => JobProfile::from_file(p)?,
        None => JobProfile::default_for(match engine {
            EngineArg::Flink => Engine::Flink,
            EngineArg::KafkaStreams => Engine::KafkaStreams,
        }),
    })
}

pub(crate) fn run_simulate(
    args: SimulateArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<std::process::ExitCode> {
    let trace = load_trace(&args)?;
    let profile = profile_for(args.engine, args.profile.as_deref())?;
    let specs = if args.policies.is_empty() {
        default_specs(&args.policies_dir)
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
    let limits = PolicyLimits {
        fuel: args.fuel,
        deadline_ms: args.deadline_ms,
        memory_mib: args.memory_mib,
        ..PolicyLimits::default()
    };
    let cfg = RunConfig {
        interval_s: args.interval_secs,
        history_s: args.history_secs,
        seed: args.seed,
        params: Vec::new(),
        nominal_downtimes: false,
    };
    eprintln!(
        "Simulating {} ({} s, peak {} records/s) on {} ({}), seed {}.",
        trace.name,
        trace.duration_s(),
        trace.rates.iter().max().copied().unwrap_or(0),
        profile.name,
        profile.engine,
        args.seed
    );
    let scored = simulate_all(
        &engine,
        &specs,
        &profile,
        &trace,
        &cfg,
        &limits,
        !args.no_oracle,
        true,
    )?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let cards: Vec<Scorecard> = scored.iter().map(|s| s.card.clone()).collect();
    let report = args.out.join("report.json");
    std::fs::write(&report, serde_json::to_string_pretty(&cards)? + "\n")
        .with_context(|| format!("cannot write {}", report.display()))?;
    let runs_svg = args.out.join("runs.svg");
    let timelines: Vec<(&str, &daedalus_host::sim::run::Timeline)> = scored
        .iter()
        .map(|s| (s.card.policy.as_str(), &s.result.timeline))
        .collect();
    plot::timelines(&runs_svg, &timelines, profile.slo_latency_ms)
        .with_context(|| format!("cannot write {}", runs_svg.display()))?;
    let card_svg = args.out.join("scorecard.svg");
    plot::scorecard(&card_svg, &cards)
        .with_context(|| format!("cannot write {}", card_svg.display()))?;
    for s in &scored {
        daedalus_host::sim::export::write_run(&args.out, &s.card.policy, &s.result)
            .with_context(|| format!("cannot write the run files of {}", s.card.policy))?;
    }
    out!("{}", table(&cards));
    outln!();
    outln!("report: {}", report.display());
    outln!("plots:  {}  {}", runs_svg.display(), card_svg.display());
    outln!(
        "data:   {}/<policy>.timeline.csv, <policy>.decisions.jsonl",
        args.out.display()
    );
    Ok(std::process::ExitCode::SUCCESS)
}
