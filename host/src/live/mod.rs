//! The live MAPE-K loop (`daedalus run`): one task per configured job, each collecting from
//! its engine, asking its policy, applying the host's guardrails and actuating, once per tick.
//! One job's failure never touches another: each runs in its own task and every error holds
//! only that job.

pub mod calibrate;
pub mod config;
mod job;

pub use config::RunConfig;
pub use job::{Cycle, JobLoop, JobSettings};

use crate::clock::unix_now_ms;
use crate::engine::flink::rest::FlinkRest;
use crate::engine::flink::{
    CommandPool, FlinkRescaleActuator, FlinkRestCollector, JobSelector, Resubmit,
    SavepointRescaleActuator, TaskManagerPool,
};
use crate::engine::kafka::InputTopic;
use crate::engine::kubernetes::{KubeScale, KubernetesPool, WorkloadKind};
use crate::engine::{Actuator, Collector};
use crate::model::Bounds;
use crate::policy::{PolicyEngine, PolicyLimits, PolicySlot, WasmPolicy};
use anyhow::Context;
use config::{JobConfig, RescaleMethod};
use std::sync::Arc;
use std::time::Duration;

/// The collector and actuator of one configured job.
pub fn connectors(
    cfg: &RunConfig,
    job: &JobConfig,
) -> anyhow::Result<(Box<dyn Collector>, Box<dyn Actuator>)> {
    let rest = FlinkRest::new(
        &job.flink.rest_url,
        Duration::from_millis(job.flink.timeout_ms),
    )
    .with_context(|| format!("job {:?}", job.name))?;
    let selector = match (&job.flink.job_id, &job.flink.job_name) {
        (Some(id), _) => JobSelector::Id(id.clone()),
        (None, Some(n)) => JobSelector::Name(n.clone()),
        (None, None) => unreachable!("validated"),
    };
    let mut flink = FlinkRestCollector::new(
        rest.clone(),
        selector.clone(),
        Duration::from_secs(job.flink.warm_up_secs),
        job.flink.workers,
    );
    if let Some(v) = &job.flink.worker_vertex {
        flink = flink.with_worker_vertex(v);
    }
    let collector: Box<dyn Collector> = Box::new(match &job.kafka {
        Some(k) => flink.with_input(InputTopic::new(
            &k.bootstrap,
            &k.topic,
            Duration::from_millis(k.timeout_ms),
        )),
        None => flink,
    });
    let pool: Option<Box<dyn TaskManagerPool>> = match (
        &job.flink.taskmanager_start,
        &job.flink.taskmanager_stop,
        &job.flink.taskmanager_deployment,
    ) {
        (Some(start), Some(stop), _) => Some(Box::new(CommandPool {
            start: start.clone(),
            stop: stop.clone(),
            dir: Some(cfg.base_dir.clone()),
        })),
        (_, _, Some(k)) => {
            let token = match &k.token_file {
                Some(f) => Some(KubeScale::token_from_file(&cfg.base_dir.join(f))?),
                None => None,
            };
            Some(Box::new(KubernetesPool::new(KubeScale::new(
                &k.api_url,
                &k.namespace,
                WorkloadKind::Deployment,
                &k.name,
                token,
                Duration::from_millis(job.flink.timeout_ms),
            )?)))
        }
        _ => None,
    };
    let actuator: Box<dyn Actuator> = match job.flink.rescale {
        RescaleMethod::InPlace => Box::new(FlinkRescaleActuator::new(rest, selector, pool)),
        RescaleMethod::Savepoint => Box::new(SavepointRescaleActuator::new(
            rest,
            selector,
            Resubmit {
                jar: cfg
                    .base_dir
                    .join(job.flink.jar.as_ref().expect("validated")),
                args: job.flink.program_args.clone(),
                entry_class: job.flink.entry_class.clone(),
                savepoint_timeout: Duration::from_secs(job.rescale_timeout_secs),
            },
        )),
    };
    Ok((collector, actuator))
}

/// Builds the loop of one configured job: loads (and pins) its policy, connects its engine.
pub fn build_job(
    cfg: &RunConfig,
    job: &JobConfig,
    engine: &Arc<PolicyEngine>,
    dry_run_override: bool,
) -> anyhow::Result<JobLoop> {
    let limits = PolicyLimits::default();
    let loaded = engine
        .load_file(&job.policy, &limits, job.policy_sha256.as_deref())
        .with_context(|| {
            format!(
                "job {:?}: cannot load policy {}",
                job.name,
                job.policy.display()
            )
        })?;
    let policy = Arc::new(WasmPolicy::new(Arc::new(PolicySlot::new(
        engine.clone(),
        loaded,
        limits,
    ))));
    let (collector, actuator) = connectors(cfg, job)?;
    let settings = JobSettings {
        name: job.name.clone(),
        bounds: Bounds {
            min_parallelism: job.min_parallelism,
            max_parallelism: job.max_parallelism,
        },
        history: Duration::from_secs(cfg.history_secs),
        rescale_timeout: Duration::from_secs(job.rescale_timeout_secs),
        dry_run: dry_run_override || job.dry_run.unwrap_or(cfg.dry_run),
        params: job
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    Ok(JobLoop::new(settings, collector, actuator, policy))
}

/// Runs a job's loop every `tick` until `stop` resolves. A slow cycle delays the next one;
/// cycles never overlap.
pub async fn run_job(mut job: JobLoop, tick: Duration, stop: tokio::sync::watch::Receiver<bool>) {
    let mut stop = stop;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                job.cycle(unix_now_ms()).await;
            }
            _ = stop.changed() => break,
        }
    }
    tracing::info!(job = %job.settings().name, rescales = job.rescales(), "Job loop stopped.");
}

/// Runs every configured job until Ctrl-C (or for `duration`, when given).
pub async fn run(
    cfg: RunConfig,
    engine: Arc<PolicyEngine>,
    dry_run: bool,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for job in &cfg.jobs {
        let l = build_job(&cfg, job, &engine, dry_run)?;
        tracing::info!(job = %job.name, policy = %job.policy.display(), dry_run = l.settings().dry_run, "Watching job.");
        tasks.push(tokio::spawn(run_job(
            l,
            Duration::from_secs(cfg.tick_secs),
            rx.clone(),
        )));
    }
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => {
            tokio::signal::ctrl_c()
                .await
                .context("cannot wait for Ctrl-C")?;
        }
    }
    let _ = tx.send(true);
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "A job task panicked.");
        }
    }
    Ok(())
}
