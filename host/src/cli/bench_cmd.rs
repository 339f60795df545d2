//! `daedalus bench-policies`: the evaluation of the bundled policies on every trace and
//! synthetic workload, for both engines, against the oracle and static provisioning.
//!
//! Policies, as in the Daedalus paper's harness: `daedalus` (which follows the job's latency
//! objective, the profile's SLO, that the simulator hands every policy); `hpa80` and `hpa85` (CPU targets
//! 80% and 85%, 300 s stabilization both ways); `ds2`; `static-paper` (12 workers for Flink, 18
//! for Kafka Streams); `static-peak` (the smallest scale-out whose true capacity covers the
//! trace's peak); and the oracle. Per trace and engine: worker-seconds as ratios to the oracle
//! and to each static, the share of the oracle's saving a policy captures against
//! `static-peak` (`(static_peak - policy) / (static_peak - oracle)`), p95 latency,
//! SLO-violation seconds and rescales per hour.
//!
//! `--walks N` adds N random walks drawn from the seed (none of them a workload the policies
//! were developed on) and summarises each policy over them: the distribution of its
//! worker-seconds against the oracle's, and its SLO violation beyond the oracle's. One walk
//! shows one path; the summary shows how a policy does on walks in general.

use anyhow::Context;
use clap::Args;
use daedalus_host::policy::{EngineOptions, PolicyEngine, PolicyLimits};
use daedalus_host::sim::compare::{PolicySpec, paper_baselines, simulate_all};
use daedalus_host::sim::dynamics::Model;
use daedalus_host::sim::profile::{Engine, JobProfile};
use daedalus_host::sim::run::RunConfig;
use daedalus_host::sim::score::quantile;
use daedalus_host::sim::trace::Trace;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Synthetic workloads added to the trace files: a fast sine, a step, a spike and a walk.
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
    /// Where the built policies are.
    #[arg(long, default_value = "target/policies")]
    policies_dir: PathBuf,
    /// Output directory for bench.json and bench.md.
    #[arg(long, default_value = "target/bench-policies")]
    out: PathBuf,
    /// Only the first N seconds of each workload.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    duration_secs: Option<u64>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run only these policies (comma-separated names); the two statics and the oracle always
    /// run, because the ratios need them.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// An extra parameter for one policy, `NAME:KEY=VALUE` (repeatable), e.g.
    /// `daedalus:keep_window_secs=300` for a sensitivity run.
    #[arg(long = "param", value_parser = parse_param)]
    params: Vec<(String, String, String)>,
    /// Also run N random walks drawn from the seed (2 h each unless `--duration-secs`), summarised
    /// per policy in bench.md (every run is in bench.json).
    #[arg(long, default_value_t = 0)]
    walks: u32,
}

/// The `k`-th unseen random walk for `seed`: its own walk seed, and start, step and ceiling
/// cycling through a grid around the bundled walk's (start 100k, step 3000, ceiling 400k).
fn walk_spec(seed: u64, k: u32) -> String {
    const START: [u32; 3] = [100_000, 60_000, 150_000];
    const STEP: [u32; 4] = [3_000, 2_000, 4_000, 5_000];
    const MAX: [u32; 3] = [400_000, 300_000, 500_000];
    let k = k as usize;
    format!(
        "random-walk:start={},step={},min=10000,max={},seed={},duration=7200",
        START[k % 3],
        STEP[k % 4],
        MAX[(k / 3) % 3],
        seed * 1000 + 100 + k as u64
    )
}

/// Parses `NAME:KEY=VALUE`.
fn parse_param(s: &str) -> Result<(String, String, String), String> {
    let (name, kv) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected NAME:KEY=VALUE"))?;
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected NAME:KEY=VALUE"))?;
    Ok((name.into(), k.into(), v.into()))
}

/// Which workloads a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Set {
    /// The trace files and the synthetic workloads: the table.
    Bundled,
    /// The `--walks`: the summary.
    Walks,
}

#[derive(Debug, Serialize)]
struct Row {
    engine: String,
    trace: String,
    /// `bundled` or `walks` in bench.json.
    set: Set,
    policy: String,
    worker_seconds: u64,
    drain_worker_seconds: u64,
    vs_oracle: f64,
    vs_oracle_drained: f64,
    vs_static_paper: f64,
    vs_static_peak: f64,
    saving_captured: f64,
    saving_captured_drained: f64,
    latency_ms_p95: f64,
    slo_violation_s: u64,
    rescales_per_hour: f64,
    policy_errors: u32,
    oracle_exact: bool,
}

fn spec(name: &str, dir: &Path, file: &str, params: &[(&str, &str)]) -> PolicySpec {
    PolicySpec::new(name, dir.join(file), params)
}

/// The smallest scale-out whose true capacity covers the peak of `trace` (the maximum if none).
fn peak_sized(profile: &JobProfile, trace: &Trace, seed: u64) -> u32 {
    let model = Model::new(profile, trace, seed);
    let peak = trace.rates.iter().copied().max().unwrap_or(0);
    (profile.min_parallelism..=profile.max_parallelism)
        .find(|p| model.job_capacity(*p) >= peak)
        .unwrap_or(profile.max_parallelism)
}

/// The workloads, each with its set: the trace files and the synthetic workloads, then the
/// `--walks`.
fn load_traces(args: &BenchArgs) -> anyhow::Result<Vec<(Trace, Set)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.traces_dir)
        .with_context(|| format!("cannot list {}", args.traces_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    let mut traces = Vec::new();
    for f in files {
        traces.push(Trace::from_file(&f)?);
    }
    for s in SYNTHETIC {
        traces.push(Trace::synthetic(s)?);
    }
    let mut out: Vec<(Trace, Set)> = traces.into_iter().map(|t| (t, Set::Bundled)).collect();
    for k in 0..args.walks {
        out.push((Trace::synthetic(&walk_spec(args.seed, k))?, Set::Walks));
    }
    Ok(out
        .into_iter()
        .map(|(t, set)| match args.duration_secs {
            Some(d) => (t.truncated(d), set),
            None => (t, set),
        })
        .collect())
}

pub(crate) fn run(
    args: BenchArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<std::process::ExitCode> {
    let traces = load_traces(&args)?;
    let engine = PolicyEngine::new(EngineOptions {
        cache_dir,
        ..EngineOptions::default()
    })?;
    let limits = PolicyLimits::default();
    let cfg = RunConfig {
        seed: args.seed,
        ..RunConfig::default()
    };
    let dir = &args.policies_dir;
    let mut rows = Vec::new();
    for eng in [Engine::Flink, Engine::KafkaStreams] {
        let profile = JobProfile::default_for(eng);
        for (trace, set) in &traces {
            let peak = peak_sized(&profile, trace, args.seed).to_string();
            let specs: Vec<PolicySpec> =
                std::iter::once(spec("daedalus", dir, "daedalus.wasm", &[]))
                    .chain(paper_baselines(dir, eng))
                    .chain([spec(
                        "static-peak",
                        dir,
                        "static.wasm",
                        &[("parallelism", &peak)],
                    )])
                    .filter(|s| {
                        args.only.is_empty()
                            || s.name.starts_with("static-")
                            || args.only.contains(&s.name)
                    })
                    .map(|mut s| {
                        for (name, k, v) in &args.params {
                            if *name == s.name {
                                s.params.retain(|(key, _)| key != k);
                                s.params.push((k.clone(), v.clone()));
                            }
                        }
                        s
                    })
                    .collect();
            eprintln!("{eng} / {} (static-peak = {peak}) ...", trace.name);
            let scored = simulate_all(&engine, &specs, &profile, trace, &cfg, &limits, true, true)?;
            let oracle_exact = scored.iter().all(|s| s.exact);
            let card = |name: &str| {
                scored
                    .iter()
                    .find(|s| s.card.policy == name)
                    .map(|s| &s.card)
            };
            let ws = |name: &str| card(name).map_or(f64::NAN, |c| c.worker_seconds as f64);
            // Worker-seconds with the work left undone at the end charged alike (the oracle's
            // terminal cost).
            let drained = |c: &daedalus_host::sim::score::Scorecard| {
                (c.worker_seconds + c.drain_worker_seconds) as f64
            };
            let wd = |name: &str| card(name).map_or(f64::NAN, drained);
            let (oracle, paper, peak_ws) = (ws("oracle"), ws("static-paper"), ws("static-peak"));
            let (oracle_d, peak_d) = (wd("oracle"), wd("static-peak"));
            for s in &scored {
                let c = &s.card;
                let w = c.worker_seconds as f64;
                let w_d = drained(c);
                rows.push(Row {
                    engine: eng.to_string(),
                    trace: trace.name.clone(),
                    set: *set,
                    policy: c.policy.clone(),
                    worker_seconds: c.worker_seconds,
                    drain_worker_seconds: c.drain_worker_seconds,
                    vs_oracle: round2(w / oracle),
                    vs_oracle_drained: round2(w_d / oracle_d),
                    vs_static_paper: round2(w / paper),
                    vs_static_peak: round2(w / peak_ws),
                    saving_captured: round2((peak_ws - w) / (peak_ws - oracle)),
                    saving_captured_drained: round2((peak_d - w_d) / (peak_d - oracle_d)),
                    latency_ms_p95: c.latency_ms_p95,
                    slo_violation_s: c.slo_violation_s,
                    rescales_per_hour: round2(
                        f64::from(c.rescales) * 3600.0 / c.duration_s.max(1) as f64,
                    ),
                    policy_errors: c.policy_errors,
                    oracle_exact,
                });
            }
        }
    }
    std::fs::create_dir_all(&args.out)?;
    let json = args.out.join("bench.json");
    std::fs::write(&json, serde_json::to_string_pretty(&rows)? + "\n")?;
    let md = markdown(&rows);
    let md_path = args.out.join("bench.md");
    std::fs::write(&md_path, &md)?;
    out!("{md}");
    outln!("\nwritten: {} {}", json.display(), md_path.display());
    Ok(std::process::ExitCode::SUCCESS)
}

fn short(trace: &str) -> String {
    match trace {
        "advertising_6h_550K_max" => "advertising 6 h".into(),
        "sine_60000_6h" => "sine 60k 6 h".into(),
        t if t.starts_with("sine_") => "sine 5k-300k 2 h".into(),
        t if t.starts_with("step_") => "step 20k-250k 2 h".into(),
        t if t.starts_with("spike_") => "spike 30k-300k 2 h".into(),
        t if t.starts_with("random-walk_") => "random walk 2 h".into(),
        t => t.into(),
    }
}

fn markdown(rows: &[Row]) -> String {
    let mut md = String::from(
        "| engine | trace | policy | ws / oracle | ws+drain / oracle | ws / static-paper | ws / static-peak | saving captured | captured, drain charged | p95 latency s | SLO violation s | rescales / h |\n| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows.iter().filter(|r| r.set == Set::Bundled) {
        let policy = if r.policy == "oracle" && !r.oracle_exact {
            "oracle*".to_string()
        } else {
            r.policy.clone()
        };
        let captured = |v: f64| {
            if v.is_finite() {
                format!("{v:.2}")
            } else {
                "n/a".into()
            }
        };
        md += &format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {:.1} | {} | {:.1} |\n",
            r.engine,
            short(&r.trace),
            policy,
            r.vs_oracle,
            r.vs_oracle_drained,
            r.vs_static_paper,
            r.vs_static_peak,
            captured(r.saving_captured),
            captured(r.saving_captured_drained),
            r.latency_ms_p95 / 1000.0,
            r.slo_violation_s,
            r.rescales_per_hour
        );
    }
    if rows.iter().any(|r| !r.saving_captured.is_finite()) {
        md += "\n`n/a`: the peak-sized static is already optimal, there is no saving to capture.\n";
    }
    md += "\n`ws+drain`: worker-seconds plus those the largest job would need to work off what is left\nwaiting at the end (the oracle's terminal cost), for every policy alike; \"captured, drain\ncharged\" is the saving captured on those figures.\n";
    if rows.iter().any(|r| !r.oracle_exact) {
        md += "\n`oracle*`: the oracle's Pareto fronts were thinned on this workload, so its schedule is the\nbest found rather than proven optimal.\n";
    }
    md + &walks_summary(rows)
}

/// Each policy over the `--walks` runs, per engine: worker-seconds against the oracle's
/// (median, 90th percentile, maximum; median with the undone work charged), runs within 1.25x,
/// SLO violation beyond the oracle's on the same walk (runs with any, total seconds) and
/// rescales per hour (median). Empty without walks.
fn walks_summary(rows: &[Row]) -> String {
    let walks: Vec<&Row> = rows.iter().filter(|r| r.set == Set::Walks).collect();
    if walks.is_empty() {
        return String::new();
    }
    let n = walks
        .iter()
        .map(|r| &r.trace)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let mut md = format!(
        "\n## Unseen random walks ({n} walks of `--walks`, each engine)\n\n| engine | policy | ws / oracle median | p90 | max | ws+drain / oracle median | within 1.25x | runs violating beyond the oracle | violation s beyond the oracle | rescales / h median |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
    );
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in &walks {
        let k = (r.engine.as_str(), r.policy.as_str());
        if r.policy != "oracle" && !keys.contains(&k) {
            keys.push(k);
        }
    }
    for (engine, policy) in keys {
        let of: Vec<&&Row> = walks
            .iter()
            .filter(|r| r.engine == engine && r.policy == policy)
            .collect();
        let beyond: Vec<u64> = of
            .iter()
            .map(|r| {
                let oracle = walks
                    .iter()
                    .find(|o| o.engine == r.engine && o.trace == r.trace && o.policy == "oracle")
                    .map_or(0, |o| o.slo_violation_s);
                r.slo_violation_s.saturating_sub(oracle)
            })
            .collect();
        let finite = |f: fn(&Row) -> f64| -> Vec<f64> {
            of.iter().map(|r| f(r)).filter(|v| v.is_finite()).collect()
        };
        let ratios = finite(|r| r.vs_oracle);
        let drained = finite(|r| r.vs_oracle_drained);
        let rescales = finite(|r| r.rescales_per_hour);
        md += &format!(
            "| {engine} | {policy} | {:.2} | {:.2} | {:.2} | {:.2} | {} / {} | {} | {} | {:.1} |\n",
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.9),
            quantile(&ratios, 1.0),
            quantile(&drained, 0.5),
            ratios.iter().filter(|v| **v <= 1.25).count(),
            of.len(),
            beyond.iter().filter(|v| **v > 0).count(),
            beyond.iter().sum::<u64>(),
            quantile(&rescales, 0.5),
        );
    }
    md
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_are_distinct_valid_and_follow_the_seed() {
        let specs: Vec<String> = (0..12).map(|k| walk_spec(1, k)).collect();
        for s in &specs {
            assert_eq!(Trace::synthetic(s).unwrap().duration_s(), 7200, "{s}");
        }
        let distinct: std::collections::BTreeSet<&String> = specs.iter().collect();
        assert_eq!(distinct.len(), specs.len());
        assert_eq!(walk_spec(1, 3), walk_spec(1, 3));
        assert_ne!(walk_spec(1, 3), walk_spec(2, 3));
        // None is the bundled walk (walk seed 7).
        assert!(specs.iter().all(|s| !s.contains("seed=7,")));
    }
}
