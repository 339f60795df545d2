//! Command-line interface (clap derive).

/// `println!` that returns the write error instead of panicking, so a closed pipe (`daedalus
/// ... | head`) ends the command quietly (see `main`) rather than with a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

/// `print!` that returns the write error instead of panicking (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)?
    }};
}

mod api_cmd;
mod bench_cmd;
mod bench_host_cmd;
mod calibrate_cmd;
mod loadgen_cmd;
mod policy_cmd;
mod policy_new;
mod policy_push;
mod replay_cmd;
mod run_cmd;
mod simulate_cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Autoscaler for stream-processing jobs, with sandboxed WebAssembly scaling policies.
#[derive(Debug, Parser)]
#[command(name = "daedalus", version, about)]
pub(crate) struct Cli {
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing directive);
    /// the `DAEDALUS_LOG` environment variable overrides it. Default: `info` for `run` (jobs
    /// watched, rescales, swaps; each decision at `debug`), `warn` for the other commands.
    #[arg(long, global = true)]
    pub(crate) log_level: Option<String>,

    /// Directory for precompiled policies (default: `$XDG_CACHE_HOME/daedalus` or
    /// `~/.cache/daedalus`).
    #[arg(long, global = true, env = "DAEDALUS_CACHE_DIR")]
    pub(crate) cache_dir: Option<PathBuf>,

    /// Do not read or write the precompiled cache.
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Work with policy components.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Run policies against a simulated job on a workload trace; print the scorecard, write
    /// report.json and plots.
    Simulate(simulate_cmd::SimulateArgs),
    /// Run every bundled baseline on every trace and synthetic workload for both engines; write
    /// one table of worker-seconds ratios to the oracle and to static provisioning.
    BenchPolicies(bench_cmd::BenchArgs),
    /// Measure how many simulated jobs one host sustains at a tick (CPU, memory, database).
    BenchHost(bench_host_cmd::BenchHostArgs),
    /// Run the live autoscaling loop for the jobs in a config file (collect, decide, apply).
    Run(run_cmd::RunArgs),
    /// Replay a job's recorded live history through the simulator for several policies and the
    /// oracle (counterfactual), side by side.
    Replay(replay_cmd::ReplayArgs),
    /// Scorecards of the arms of a split test, from the jobs' recorded live data.
    Arms(replay_cmd::ArmsArgs),
    /// Replay a workload trace into a Kafka topic at the trace's rate.
    Loadgen(loadgen_cmd::LoadgenArgs),
    /// Measure a live job (capacity per parallelism, rescale downtimes) and write a simulator
    /// profile for it.
    Calibrate(calibrate_cmd::CalibrateArgs),
    /// A running host's jobs, through its API: parallelism, policy, pause, input, lag.
    Jobs(api_cmd::JobsArgs),
    /// Stop a running host's jobs from acting (they still decide and record), through its API:
    /// the named jobs, or every job.
    Pause(api_cmd::PauseArgs),
    /// Let paused jobs act again, through the host's API: the named jobs, or every job.
    Resume(api_cmd::PauseArgs),
}

impl Cli {
    /// The log filter: the one given, else the command's default.
    pub(crate) fn log_filter(&self) -> &str {
        match (&self.log_level, &self.command) {
            (Some(level), _) => level,
            (None, Command::Run(_)) => "info",
            (None, _) => "warn",
        }
    }
}

/// Runs the parsed command.
pub(crate) fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let cache_dir = if cli.no_cache {
        None
    } else {
        Some(cli.cache_dir.clone().unwrap_or_else(default_cache_dir))
    };
    match cli.command {
        Command::Policy(cmd) => policy_cmd::run(cmd, cache_dir),
        Command::Simulate(args) => simulate_cmd::run_simulate(args, cache_dir),
        Command::BenchPolicies(args) => bench_cmd::run(args, cache_dir),
        Command::BenchHost(args) => bench_host_cmd::run(args, cache_dir),
        Command::Run(args) => run_cmd::run(args, cache_dir),
        Command::Replay(args) => replay_cmd::replay(args, cache_dir),
        Command::Arms(args) => replay_cmd::arms(args),
        Command::Loadgen(args) => loadgen_cmd::run(args),
        Command::Calibrate(args) => calibrate_cmd::run(args),
        Command::Jobs(args) => api_cmd::jobs(args),
        Command::Pause(args) => api_cmd::set_paused(args, true),
        Command::Resume(args) => api_cmd::set_paused(args, false),
    }
}

fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("daedalus")
}
