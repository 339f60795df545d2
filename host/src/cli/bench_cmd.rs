//! `daedalus bench-policies`: every bundled policy on every trace and synthetic workload, for
//! both engines; one table of ratios to the oracle and to static provisioning.
#![allow(clippy::print_stdout, reason = "CLI output")]

use anyhow::Context;
use clap::Args;
use daedalus_host::policy::{EngineOptions, PolicyEngine, PolicyLimits};
use daedalus_host::sim::compare::{default_specs, simulate_all};
use daedalus_host::sim::profile::{Engine, JobProfile};
use daedalus_host::sim::run::RunConfig;
use daedalus_host::sim::score::Scorecard;
use daedalus_host::sim::trace::Trace;
use serde::Serialize;
use std::path::PathBuf;

/// Synthetic workloads added to the trace files: a daily-like sine, a step, a spike and a walk.
const SYNTHETIC: &[&str] = &[
    "sine:min=5000,max=300000,period=3600,duration=7200",
    "step:low=20000,high=250000,at=3600,duration=7200",
    "spike:base=30000,peak=300000,at=3000,width=600,duration=7200",
    "random-walk:start=100000,step=3000,min=10000,max=400000,seed=7,duration=7200",
];

/// Arguments of `bench-policies`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Directory of trace files (every `*.csv` in it).
    #[arg(long, default_value = "traces")]
    traces_dir: PathBuf,
    /// Where the built policies are (hpa, ds2, static run at 12).
    #[arg(long, default_value = "target/policies")]
    policies_dir: PathBuf,
    /// Output directory for bench.json and bench.md.
    #[arg(long, default_value = "target/bench-policies")]
    out: PathBuf,
    /// Only the first N seconds of each workload.
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Serialize)]
struct Row {
    engine: String,
    trace: String,
    policy: String,
    worker_seconds: u64,
    worker_seconds_vs_oracle: f64,
    worker_seconds_vs_static: f64,
    slo_violation_s: u64,
    latency_ms_p95: f64,
    rescales: u32,
    policy_errors: u32,
}

pub(crate) fn run(
    args: BenchArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<std::process::ExitCode> {
    let mut traces = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.traces_dir)
        .with_context(|| format!("cannot list {}", args.traces_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    for f in files {
        traces.push(Trace::from_file(&f)?);
    }
    for s in SYNTHETIC {
        traces.push(Trace::synthetic(s)?);
    }
    let traces: Vec<Trace> = traces
        .into_iter()
        .map(|t| match args.duration_secs {
            Some(d) => t.truncated(d),
            None => t,
        })
        .collect();
    let engine = PolicyEngine::new(EngineOptions {
        cache_dir,
        ..EngineOptions::default()
    })?;
    let specs = default_specs(&args.policies_dir);
    let limits = PolicyLimits::default();
    let cfg = RunConfig {
        seed: args.seed,
        ..RunConfig::default()
    };
    let mut rows = Vec::new();
    for eng in [Engine::Flink, Engine::KafkaStreams] {
        let profile = JobProfile::default_for(eng);
        for trace in &traces {
            eprintln!("{eng} / {} ...", trace.name);
            let scored = simulate_all(&engine, &specs, &profile, trace, &cfg, &limits, true, true)?;
            let cards: Vec<&Scorecard> = scored.iter().map(|s| &s.card).collect();
            let oracle_exact = scored.iter().all(|s| s.exact);
            let ws = |name: &str| {
                cards
                    .iter()
                    .find(|c| c.policy == name)
                    .map_or(f64::NAN, |c| c.worker_seconds as f64)
            };
            let (oracle, stat) = (ws("oracle"), ws("static12"));
            for c in &cards {
                rows.push(Row {
                    engine: eng.to_string(),
                    trace: trace.name.clone(),
                    policy: if c.policy == "oracle" && !oracle_exact {
                        "oracle*".into()
                    } else {
                        c.policy.clone()
                    },
                    worker_seconds: c.worker_seconds,
                    worker_seconds_vs_oracle: round2(c.worker_seconds as f64 / oracle),
                    worker_seconds_vs_static: round2(c.worker_seconds as f64 / stat),
                    slo_violation_s: c.slo_violation_s,
                    latency_ms_p95: c.latency_ms_p95,
                    rescales: c.rescales,
                    policy_errors: c.policy_errors,
                });
            }
        }
    }
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join("bench.json");
    std::fs::write(&json, serde_json::to_string_pretty(&rows)? + "\n")?;
    let mut md = String::from(
        "| engine | trace | policy | worker-s / oracle | worker-s / static12 | SLO violation s | p95 latency ms | rescales |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in &rows {
        md += &format!(
            "| {} | {} | {} | {:.2} | {:.2} | {} | {:.0} | {} |\n",
            r.engine,
            r.trace,
            r.policy,
            r.worker_seconds_vs_oracle,
            r.worker_seconds_vs_static,
            r.slo_violation_s,
            r.latency_ms_p95,
            r.rescales
        );
    }
    if rows.iter().any(|r| r.policy == "oracle*") {
        md += "\n`oracle*`: the oracle's Pareto fronts were thinned on this workload (an overloaded job with\nhuge, diverse lags), so its schedule is the best found rather than proven optimal.\n";
    }
    let md_path = args.out.join("bench.md");
    std::fs::write(&md_path, &md)?;
    print!("{md}");
    println!("\nwritten: {} {}", json.display(), md_path.display());
    Ok(std::process::ExitCode::SUCCESS)
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
