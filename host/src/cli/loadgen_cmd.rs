//! `daedalus loadgen`: replay a trace into a Kafka topic.

use clap::Args;
use daedalus_host::engine::kafka::KafkaTopic;
use daedalus_host::loadgen::{self, LoadgenOptions};
use daedalus_host::sim::trace::Trace;
use std::time::Duration;

/// Arguments of `loadgen`.
#[derive(Debug, Args)]
pub(crate) struct LoadgenArgs {
    /// Workload: a trace file or a synthetic spec (as for `simulate`).
    #[arg(long)]
    trace: String,
    /// Topic to write to (created with `--partitions` if missing).
    #[arg(long)]
    topic: String,
    /// Kafka bootstrap broker, `host:port`.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Trace seconds per wall second.
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// Factor on the trace's rates (the bundled traces peak at hundreds of thousands of
    /// records per second).
    #[arg(long, default_value_t = 1.0)]
    rate_scale: f64,
    /// Only the first this many trace seconds.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    duration_secs: Option<u64>,
    /// Partitions of the topic when it has to be created.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Write the report as JSON to this file.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
}

pub(crate) fn run(args: LoadgenArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(
        args.speedup.is_finite() && args.speedup > 0.0,
        "--speedup must be > 0"
    );
    anyhow::ensure!(
        args.rate_scale.is_finite() && args.rate_scale > 0.0,
        "--rate-scale must be > 0"
    );
    let mut trace = Trace::load(&args.trace)?;
    if let Some(d) = args.duration_secs {
        trace = trace.truncated(d);
    }
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(async {
        let timeout = Duration::from_secs(10);
        KafkaTopic::ensure_topic(&args.bootstrap, &args.topic, args.partitions, timeout).await?;
        let topic = KafkaTopic::connect(&args.bootstrap, &args.topic, timeout).await?;
        let opts = LoadgenOptions {
            speedup: args.speedup,
            rate_scale: args.rate_scale,
            ..LoadgenOptions::default()
        };
        let bar = indicatif::ProgressBar::new(trace.duration_s());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} trace s  {msg}")
                .expect("valid template"),
        );
        let r = loadgen::run(&topic, &trace, &opts, &mut |s, sent| {
            bar.set_position(s);
            bar.set_message(format!("{sent} records sent"));
        })
        .await;
        bar.finish_and_clear();
        Ok::<_, anyhow::Error>(r?)
    })?;
    eprintln!(
        "sent {} of {} records in {:.1} s (largest 10-s window rate error {:.1}%)",
        report.sent,
        report.expected,
        report.wall_secs,
        100.0 * report.max_window_error()
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
    }
    Ok(std::process::ExitCode::SUCCESS)
}
