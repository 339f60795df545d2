//! `daedalus calibrate`: measure a live job and write a simulator profile for it.

use clap::Args;
use daedalus_host::engine::kafka::KafkaTopic;
use daedalus_host::live::calibrate::{self, CalibrationOptions};
use daedalus_host::live::{self, RunConfig};
use daedalus_host::sim::profile::{Engine, JobProfile};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `calibrate`.
#[derive(Debug, Args)]
pub(crate) struct CalibrateArgs {
    /// The `daedalus run` configuration naming the job (a Flink job with its Kafka input, or a
    /// Kafka Streams job).
    #[arg(long)]
    config: PathBuf,
    /// Which job of the config (default: the only one).
    #[arg(long)]
    job: Option<String>,
    /// Parallelisms to measure, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    parallelisms: Vec<u32>,
    /// Records per second to offer while measuring: more than the job can take.
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    /// Seconds to let the job settle at each parallelism.
    #[arg(long, default_value_t = 20)]
    settle_secs: u64,
    /// Seconds to measure at each parallelism.
    #[arg(long, default_value_t = 30)]
    measure_secs: u64,
    /// Where to write the profile (TOML).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn run(args: CalibrateArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::ensure!(
        !args.parallelisms.is_empty(),
        "--parallelisms: give at least one"
    );
    anyhow::ensure!(
        args.parallelisms.iter().all(|p| *p >= 1),
        "--parallelisms: each must be at least 1"
    );
    let cfg = RunConfig::load(&args.config)?;
    let job = match &args.job {
        Some(n) => cfg
            .jobs
            .iter()
            .find(|j| &j.name == n)
            .ok_or_else(|| anyhow::anyhow!("--job: no job named {n:?} in the config"))?,
        None if cfg.jobs.len() == 1 => &cfg.jobs[0],
        None => anyhow::bail!("--job: the config has several jobs; name one"),
    };
    // The input topic to load: a Flink job's [jobs.kafka], a Kafka Streams job's own topic.
    let (bootstrap, topic_name, engine) = match (&job.kafka, &job.kafka_streams) {
        (Some(k), _) => (k.bootstrap.clone(), k.topic.clone(), Engine::Flink),
        (None, Some(k)) => (k.bootstrap.clone(), k.topic.clone(), Engine::KafkaStreams),
        (None, None) => anyhow::bail!(
            "job {:?} has no input topic to load ([jobs.kafka] or [jobs.kafka_streams])",
            job.name
        ),
    };
    let rt = tokio::runtime::Runtime::new()?;
    // Connectors may start processes (a Kafka Streams process group): inside the runtime.
    let (collector, actuator) = {
        let _guard = rt.enter();
        live::connectors(&cfg, job)?
    };
    let opts = CalibrationOptions {
        parallelisms: args.parallelisms.clone(),
        offered_rate: args.rate,
        settle: Duration::from_secs(args.settle_secs),
        measure: Duration::from_secs(args.measure_secs),
        rescale_timeout: Duration::from_secs(job.rescale_timeout_secs),
    };
    let (cal, partitions) = rt.block_on(async {
        let topic = KafkaTopic::connect(&bootstrap, &topic_name, Duration::from_secs(10)).await?;
        let partitions = topic.partition_count() as u32;
        let cal = calibrate::calibrate(
            collector.as_ref(),
            actuator.as_ref(),
            topic,
            &opts,
            &mut |line| eprintln!("{line}"),
        )
        .await?;
        Ok::<_, anyhow::Error>((cal, partitions))
    })?;
    let base = JobProfile::default_for(engine);
    let mut profile = cal
        .profile(&base, &job.name, partitions)
        .ok_or_else(|| anyhow::anyhow!("nothing was measured"))?;
    profile.max_parallelism = job.max_parallelism;
    profile.min_parallelism = job.min_parallelism;
    let header = format!(
        "# Calibrated from the live job {:?} by `daedalus calibrate`.\n# Measured: {}\n",
        job.name,
        serde_json::to_string(&cal)?
    );
    std::fs::write(&args.out, header + &toml::to_string(&profile)?)?;
    eprintln!("profile written to {}", args.out.display());
    Ok(std::process::ExitCode::SUCCESS)
}
