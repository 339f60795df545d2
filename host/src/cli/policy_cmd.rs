//! `daedalus policy ...`: inspect a component, or run one decision.
#![allow(clippy::print_stdout, reason = "CLI output")]

use anyhow::Context;
use clap::{Args, Subcommand};
use daedalus_host::model::DecisionInput;
use daedalus_host::policy::{EngineOptions, PolicyEngine, PolicyLimits, inspect};
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

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got `{s}`"))
}

pub(crate) fn run(cmd: PolicyCommand, cache_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let engine = PolicyEngine::new(EngineOptions {
        cache_dir,
        ..EngineOptions::default()
    })?;
    match cmd {
        PolicyCommand::Inspect { file, json } => {
            let i = inspect(&engine, &file)
                .with_context(|| format!("cannot inspect {}", file.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&i)?);
            } else {
                println!("file:        {} ({} bytes)", i.path, i.size_bytes);
                println!("sha256:      {}", i.sha256);
                println!(
                    "wit version: {}",
                    i.wit_version
                        .as_deref()
                        .unwrap_or("none (not a scaling policy)")
                );
                if let Some(p) = &i.policy {
                    println!("name:        {}", p.name);
                    println!("version:     {}", p.version);
                    println!("description: {}", p.description);
                    for param in &p.params {
                        println!(
                            "param:       {} = {:?}  {}",
                            param.name, param.default_value, param.description
                        );
                    }
                }
                for e in &i.exports {
                    println!("export:      {e}");
                }
                for imp in &i.imports {
                    println!("import:      {imp}");
                }
            }
            if let Some(e) = &i.load_error {
                eprintln!("error: this host would refuse the component: {e}");
                return Ok(ExitCode::from(2));
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Decide {
            file,
            input,
            params,
            limits,
        } => {
            let limits = PolicyLimits {
                fuel: limits.fuel,
                deadline_ms: limits.deadline_ms,
                memory_mib: limits.memory_mib,
                ..PolicyLimits::default()
            };
            let policy = engine
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
            println!("{}", serde_json::to_string_pretty(&decision)?);
            eprintln!("fuel used: {}", outcome.fuel_used);
            Ok(ExitCode::SUCCESS)
        }
    }
}
