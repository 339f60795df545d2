//! `daedalus run`: the live MAPE-K loop over the configured jobs.

use clap::Args;
use daedalus_host::live::{self, RunConfig};
use daedalus_host::policy::{EngineOptions, PolicyEngine};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The configuration file (TOML; see `examples/`). Default: the embedded
    /// `examples/simulated.toml`, a simulated job that needs no engine.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Recommend only: log what would be done, change nothing (overrides the config).
    #[arg(long)]
    dry_run: bool,
    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    duration_secs: Option<u64>,
}

pub(crate) fn run(
    args: RunArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<std::process::ExitCode> {
    let cfg = match &args.config {
        Some(path) => RunConfig::load(path)?,
        None => {
            // Paths in the embedded example are relative to the repository's `examples/`:
            // the current directory when run from a checkout, else the one it was built in.
            let here = std::env::current_dir()?;
            let root = if here.join("examples/simulated.toml").exists() {
                here
            } else {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            };
            tracing::info!(root = %root.display(), "No --config: running the embedded simulated example.");
            RunConfig::embedded_default(&root)?
        }
    };
    let engine = PolicyEngine::new(EngineOptions {
        cache_dir,
        ..EngineOptions::default()
    })?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(live::run(
        cfg,
        engine,
        args.dry_run,
        args.duration_secs.map(Duration::from_secs),
    ))?;
    Ok(std::process::ExitCode::SUCCESS)
}
