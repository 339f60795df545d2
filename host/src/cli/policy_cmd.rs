//! `daedalus policy ...`: inspect, create, test or run a component, or push it to a host.

use anyhow::Context;
use clap::{Args, Subcommand};
use daedalus_host::model::DecisionInput;
use daedalus_host::policy::{EngineOptions, PolicyEngine, PolicyLimits, imports, inspect};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Print a component's name, version, WIT version, digest and imports.
    Inspect {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a standalone policy project (its own workspace, the WIT vendored, a test).
    New {
        /// Project and policy name (lowercase, digits, - and _).
        name: String,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Language of the project.
        #[arg(long, value_enum, default_value_t = crate::cli::policy_new::Lang::Rust)]
        lang: crate::cli::policy_new::Lang,
    },
    /// Check a component against the conformance invariants, then score it against the bundled
    /// baselines and the oracle on a simulated workload. Exits non-zero if an invariant fails.
    Test {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Parameter `KEY=VALUE` handed to the policy (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Workload for the score (a trace file or a synthetic spec).
        #[arg(
            long,
            default_value = "sine:min=5000,max=300000,period=3600,duration=7200"
        )]
        trace: String,
        /// Where the baselines to score against are.
        #[arg(long, default_value = "target/policies")]
        policies_dir: PathBuf,
        /// Only the invariants, no score.
        #[arg(long)]
        no_score: bool,
        /// The limits the policy will run under (the `limits` of its job in the run config).
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run one decision of a component on an input given as JSON (the WIT shape).
    Decide {
        /// The component (`.wasm`).
        file: PathBuf,
        /// JSON file with a `decision-input` (snake_case fields).
        #[arg(long)]
        input: PathBuf,
        /// Parameter `KEY=VALUE`, added to the input's params (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Swap a component into a running host's jobs through its API (`POST /policy`, the
    /// component uploaded and pinned to its sha256); print each job's outcome. Exits 0 when
    /// every job runs it, 1 when any refused it, 3 when some have not reached their next tick.
    Push(crate::cli::policy_push::PushArgs),
}

/// Limits of each call.
#[derive(Debug, Args)]
pub(crate) struct LimitArgs {
    /// Fuel per call.
    #[arg(long, default_value_t = PolicyLimits::default().fuel)]
    fuel: u64,
    /// Wall-clock deadline per call, milliseconds.
    #[arg(long, default_value_t = PolicyLimits::default().deadline_ms)]
    deadline_ms: u64,
    /// Memory cap, MiB.
    #[arg(long, default_value_t = PolicyLimits::default().memory_mib)]
    memory_mib: u64,
}

impl From<LimitArgs> for PolicyLimits {
    fn from(l: LimitArgs) -> Self {
        PolicyLimits {
            fuel: l.fuel,
            deadline_ms: l.deadline_ms,
            memory_mib: l.memory_mib,
            ..PolicyLimits::default()
        }
    }
}

pub(crate) fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

pub(crate) fn run(cmd: PolicyCommand, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let engine = || {
        PolicyEngine::new(EngineOptions {
            cache_dir,
            ..EngineOptions::default()
        })
    };
    match cmd {
        PolicyCommand::Inspect { file, json } => {
            let i = inspect(&engine()?, &file)
                .with_context(|| format!("cannot inspect {}", file.display()))?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                outln!("file:        {} ({} bytes)", i.path, i.size_bytes);
                outln!("sha256:      {}", i.sha256);
                outln!(
                    "wit version: {}",
                    match i.wit_version.as_deref() {
                        None => "none (not a scaling policy)".to_string(),
                        Some(v) if v == imports::WIT_VERSION => format!("{v} (current)"),
                        Some(v) if imports::SUPPORTED_VERSIONS.contains(&v) => format!(
                            "{v} (served, adapted; the current version is {})",
                            imports::WIT_VERSION
                        ),
                        Some(v) => format!(
                            "{v} (not served; this host serves {})",
                            imports::SUPPORTED_VERSIONS.join(", ")
                        ),
                    }
                );
                if let Some(p) = &i.policy {
                    outln!("name:        {}", p.name);
                    outln!("version:     {}", p.version);
                    outln!("description: {}", p.description);
                    for param in &p.params {
                        outln!(
                            "param:       {} = {:?}  {}",
                            param.name,
                            param.default_value,
                            param.description
                        );
                    }
                }
                for e in &i.exports {
                    outln!("export:      {e}");
                }
                for imp in &i.imports {
                    outln!("import:      {imp}");
                }
            }
            if let Some(e) = &i.load_error {
                eprintln!("error: this host would refuse the component: {e}");
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::New { name, dir, lang } => {
            let root = crate::cli::policy_new::scaffold(&name, &dir, lang)?;
            outln!("created {}", root.display());
            let next = match lang {
                crate::cli::policy_new::Lang::Rust => {
                    "cargo test && cargo build --release --target wasm32-wasip2"
                }
                crate::cli::policy_new::Lang::Js => "npm test && npm run build",
                crate::cli::policy_new::Lang::Python => "python3 -m unittest && ./build.sh",
            };
            outln!("next: cd {} && {next}", root.display());
            Ok(ExitCode::SUCCESS)
        }
        // A client of a host's API: no engine here.
        PolicyCommand::Push(args) => crate::cli::policy_push::run(args),
        PolicyCommand::Test {
            file,
            params,
            trace,
            policies_dir,
            no_score,
            limits,
        } => test(
            &engine()?,
            &file,
            &params,
            &trace,
            &policies_dir,
            no_score,
            &limits.into(),
        ),
        PolicyCommand::Decide {
            file,
            input,
            params,
            limits,
        } => {
            let limits = PolicyLimits::from(limits);
            let policy = engine()?
                .load_file(&file, &limits, None)
                .with_context(|| format!("cannot load {}", file.display()))?;
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("cannot read {}", input.display()))?;
            let mut input: DecisionInput = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a decision input", input.display()))?;
            input.params.extend(params);
            let outcome = policy.call_blocking(&input, &limits);
            let decision = outcome
                .result
                .context("the policy failed; a job would hold its parallelism")?;
            outln!("{}", serde_json::to_string_pretty(&decision)?);
            eprintln!("fuel used: {}", outcome.fuel_used);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `policy test`: the conformance invariants, then a score against the baselines.
fn test(
    engine: &std::sync::Arc<PolicyEngine>,
    file: &std::path::Path,
    params: &[(String, String)],
    trace: &str,
    policies_dir: &std::path::Path,
    no_score: bool,
    limits: &PolicyLimits,
) -> anyhow::Result<ExitCode> {
    use daedalus_host::sim::{compare, profile, run::RunConfig, trace::Trace};
    let policy = engine
        .load_file(file, limits, None)
        .with_context(|| format!("cannot load {}", file.display()))?;
    let report = daedalus_host::conformance::run_with_limits(&policy, params, limits);
    outln!(
        "conformance of {} ({}):",
        policy.info().name,
        file.display()
    );
    for c in &report.checks {
        let mark = if c.passed { "pass" } else { "FAIL" };
        outln!("  {mark} {:<18} {}", c.name, c.detail);
    }
    outln!(
        "  max fuel per decision: {}; median decide: {:.0} µs (measured)",
        report.max_fuel,
        report.decide_us_p50
    );
    if !no_score {
        let workload = match Trace::synthetic(trace) {
            Ok(t) => t,
            Err(_) => Trace::from_file(std::path::Path::new(trace))?,
        };
        let pairs: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let name = policy.info().name.clone();
        let mut specs = vec![compare::PolicySpec::new(&name, file.to_path_buf(), &pairs)];
        let (found, missing): (Vec<_>, Vec<_>) = compare::default_specs(policies_dir)
            .into_iter()
            .filter(|s| s.name != name)
            .partition(|s| s.path.exists());
        if !missing.is_empty() {
            let files: Vec<_> = missing
                .iter()
                .map(|s| s.path.display().to_string())
                .collect();
            eprintln!(
                "note: scoring without {} (not found: {}); give --policies-dir the autoscaler \
                 checkout's target/policies (after `cargo xtask build-policies`)",
                missing
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                files.join(", ")
            );
        }
        specs.extend(found);
        let prof = profile::JobProfile::default_for(profile::Engine::Flink);
        let scored = compare::simulate_all(
            engine,
            &specs,
            &prof,
            &workload,
            &RunConfig::default(),
            limits,
            true,
            true,
        )?;
        let cards: Vec<_> = scored.into_iter().map(|s| s.card).collect();
        outln!("\nscore on {} (simulated {}):", workload.name, prof.name);
        out!("{}", compare::table(&cards));
    }
    if report.passed() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: {} failed at least one invariant", file.display());
        Ok(ExitCode::from(1))
    }
}
