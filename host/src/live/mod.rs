//! The live MAPE-K loop and control plane (`daedalus run`): one task per configured job, each
//! collecting from its engine, asking its policy (and its shadow candidates), applying the
//! host's guardrails and actuating, once per tick. One job's failure never touches another:
//! each runs in its own task and every error holds only that job. Around the loops: the
//! durable store ([`crate::store`]), the policy-file watcher, the HTTP API and `/metrics`.

pub mod api;
pub mod calibrate;
pub mod client;
pub mod config;
pub mod guardrails;
mod job;
pub mod metrics;
pub mod replay;
pub mod shared;
pub mod watch;

pub use config::RunConfig;
pub use job::{Cycle, JobLoop, JobSettings, PolicyControl, Shadow};

use crate::clock::JobClock;
use crate::conformance::check_params;
use crate::engine::flink::rest::FlinkRest;
use crate::engine::flink::{
    CommandPool, FlinkRescaleActuator, FlinkRestCollector, JobSelector, Resubmit,
    SavepointRescaleActuator, TaskManagerPool,
};
use crate::engine::kafka::InputTopic;
use crate::engine::kubernetes::{KubeScale, KubernetesPool};
use crate::engine::simulated::SimulatedJob;
use crate::engine::{Actuator, Collector};
use crate::model::Bounds;
use crate::policy::{Digested, PolicyEngine, PolicyLimits, PolicySlot, WasmPolicy};
use crate::sim::dynamics::Model;
use crate::sim::profile::{Engine, JobProfile};
use crate::sim::trace::Trace;
use crate::store::Store;
use anyhow::Context;
use config::KubeWorkload;
use config::{FlinkConfig, JobConfig, KafkaStreamsConfig, RescaleMethod, SimulatedConfig};
use metrics::Metrics;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Simulated jobs with the same profile, trace and seed share one model (the trace's rates are
/// the bulk of a job's memory).
type ModelCache = Mutex<BTreeMap<(String, String, String, u64), Arc<Model>>>;

fn simulated_model(sim: &SimulatedConfig, cache: &ModelCache) -> anyhow::Result<Arc<Model>> {
    let key = (
        sim.profile.clone(),
        sim.trace.clone(),
        format!("{}", sim.rate_scale),
        sim.seed,
    );
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = cache.get(&key) {
        return Ok(m.clone());
    }
    let profile = match sim.profile.as_str() {
        "flink" => JobProfile::default_for(Engine::Flink),
        "kafka-streams" => JobProfile::default_for(Engine::KafkaStreams),
        file => JobProfile::from_file(std::path::Path::new(file))
            .with_context(|| format!("simulated.profile {file:?}"))?,
    };
    let trace = Trace::load(&sim.trace)
        .with_context(|| format!("simulated.trace {:?}", sim.trace))?
        .scaled(sim.rate_scale);
    let model = Arc::new(Model::new(&profile, &trace, sim.seed));
    cache.insert(key, model.clone());
    Ok(model)
}

/// The connectors of one configured job, and its clock.
pub struct Connectors {
    /// Monitor.
    pub collector: Box<dyn Collector>,
    /// Execute.
    pub actuator: Box<dyn Actuator>,
    /// The job's clock (accelerated for simulated jobs with a speedup).
    pub clock: JobClock,
}

fn simulated_connectors(sim: &SimulatedConfig, cache: &ModelCache) -> anyhow::Result<Connectors> {
    let model = simulated_model(sim, cache)?;
    let job = SimulatedJob::new(model, sim.seed, sim.state_file.clone())?;
    let clock = match job.epoch_ms() {
        Some(origin) => JobClock::accelerated(origin, sim.speedup),
        None => JobClock::accelerated(crate::clock::unix_now_ms(), sim.speedup),
    };
    Ok(Connectors {
        collector: Box::new(job.clone()),
        actuator: Box::new(job),
        clock,
    })
}

/// The collector and actuator of one configured job.
pub fn connectors(
    cfg: &RunConfig,
    job: &JobConfig,
) -> anyhow::Result<(Box<dyn Collector>, Box<dyn Actuator>)> {
    let c = job_connectors(cfg, job, &ModelCache::default(), None)?;
    Ok((c.collector, c.actuator))
}

/// The connectors of `job`; `last_parallelism` is what the job last ran at, from the store
/// (a process group the host starts itself resumes at it).
fn job_connectors(
    cfg: &RunConfig,
    job: &JobConfig,
    cache: &ModelCache,
    last_parallelism: Option<u32>,
) -> anyhow::Result<Connectors> {
    match (&job.flink, &job.simulated) {
        (Some(f), _) => {
            let (collector, actuator) = flink_connectors(cfg, job, f)?;
            Ok(Connectors {
                collector,
                actuator,
                clock: JobClock::real(),
            })
        }
        (None, Some(sim)) => {
            simulated_connectors(sim, cache).with_context(|| format!("job {:?}", job.name))
        }
        (None, None) => match &job.kafka_streams {
            Some(ks) => kafka_streams_connectors(cfg, job, ks, last_parallelism)
                .with_context(|| format!("job {:?}", job.name)),
            None => unreachable!("validated"),
        },
    }
}

/// The scale client for a configured Kubernetes workload (in-cluster, kubeconfig or a URL).
fn kube_scale(w: &KubeWorkload, timeout: Duration) -> anyhow::Result<KubeScale> {
    let conn = w
        .connection(|k| std::env::var(k).ok())
        .with_context(|| format!("Kubernetes workload {:?}", w.name))?;
    let namespace = w.namespace_for(&conn);
    tracing::info!(
        workload = %w.name, %namespace, server = %conn.server, via = %conn.source,
        "Kubernetes API"
    );
    Ok(KubeScale::connect(
        &conn, &namespace, w.kind, &w.name, timeout,
    )?)
}

fn kafka_streams_connectors(
    cfg: &RunConfig,
    job: &JobConfig,
    ks: &KafkaStreamsConfig,
    last_parallelism: Option<u32>,
) -> anyhow::Result<Connectors> {
    use crate::engine::consumer_group::ConsumerGroup;
    use crate::engine::process_group::{GroupSpec, ProcessGroup};
    use crate::engine::prometheus::{Prometheus, PrometheusCollector};
    let timeout = Duration::from_millis(ks.timeout_ms);
    if ks.application_id.is_none() {
        tracing::warn!(job = %job.name,
            "kafka_streams.application_id is not set: the lag comes from the consumers' `records-lag`, which goes stale (too low) under a backlog. Set it to the app's `application.id` to read the lag from its consumer group.");
    }
    let prom = Prometheus::new(&ks.prometheus_url, timeout)?;
    let collector = || {
        let c = PrometheusCollector::new(
            prom.clone(),
            &ks.scrape_job,
            ks.queries
                .resolve(crate::engine::prometheus::Preset::KafkaStreams),
            ks.partitions,
        )
        .with_cores_per_instance(ks.cores_per_instance)
        .with_topic(&ks.topic);
        match &ks.application_id {
            Some(app) => c.with_group(ConsumerGroup::new(&ks.bootstrap, app, timeout)),
            None => c,
        }
    };
    let input = InputTopic::new(&ks.bootstrap, &ks.topic, timeout);
    let (actuator, desired): (Box<dyn Actuator>, _) = match (&ks.instance_command, &ks.workload) {
        (Some(command), _) => {
            let group = ProcessGroup::new(GroupSpec {
                command: command.clone(),
                dir: cfg.base_dir.clone(),
                base_port: ks.base_port,
                log_dir: cfg
                    .base_dir
                    .join(format!(".daedalus-instances/{}", job.name)),
                stop_timeout: Duration::from_secs(ks.stop_timeout_secs),
                max_instances: ks.partitions,
            })
            .with_readiness(collector());
            // After a host restart the instances (children of the old host) are gone: start
            // as many as ran before, not the first start's size.
            let initial = last_parallelism
                .or(ks.initial_instances)
                .unwrap_or(job.min_parallelism)
                .clamp(job.min_parallelism, job.max_parallelism)
                .clamp(1, ks.partitions);
            group.start(initial)?;
            let desired = group.desired();
            (Box::new(group), desired)
        }
        (None, Some(w)) => {
            let k = crate::engine::kubernetes::KubernetesInstances::new(
                kube_scale(w, timeout)?,
                ks.partitions,
            )
            .with_readiness(collector());
            let desired = k.desired();
            let reads = crate::engine::kubernetes::ReadsReplicas::new(
                &k,
                Box::new(collector().with_expected(desired).with_input(input)),
            );
            return Ok(Connectors {
                collector: Box::new(reads),
                actuator: Box::new(k),
                clock: JobClock::real(),
            });
        }
        (None, None) => unreachable!("validated"),
    };
    Ok(Connectors {
        collector: Box::new(collector().with_expected(desired).with_input(input)),
        actuator,
        clock: JobClock::real(),
    })
}

fn flink_connectors(
    cfg: &RunConfig,
    job: &JobConfig,
    flink_cfg: &FlinkConfig,
) -> anyhow::Result<(Box<dyn Collector>, Box<dyn Actuator>)> {
    let rest = FlinkRest::new(
        &flink_cfg.rest_url,
        Duration::from_millis(flink_cfg.timeout_ms),
    )
    .with_context(|| format!("job {:?}", job.name))?;
    let selector = match (&flink_cfg.job_id, &flink_cfg.job_name) {
        (Some(id), _) => JobSelector::Id(id.clone()),
        (None, Some(n)) => JobSelector::Name(n.clone()),
        (None, None) => unreachable!("validated"),
    };
    let mut flink = FlinkRestCollector::new(
        rest.clone(),
        selector.clone(),
        Duration::from_secs(flink_cfg.warm_up_secs),
        flink_cfg.workers,
    );
    if let Some(v) = &flink_cfg.worker_vertex {
        flink = flink.with_worker_vertex(v);
    }
    let flink = match &job.kafka {
        Some(k) => flink.with_input(InputTopic::new(
            &k.bootstrap,
            &k.topic,
            Duration::from_millis(k.timeout_ms),
        )),
        None => flink,
    };
    let collector: Box<dyn Collector> = match &flink_cfg.prometheus {
        Some(p) => {
            use crate::engine::prometheus::{Preset, Prometheus, PrometheusCollector};
            let prom = Prometheus::new(&p.url, Duration::from_millis(flink_cfg.timeout_ms))?;
            let mut workers =
                PrometheusCollector::new(prom, &p.scrape_job, p.queries.resolve(Preset::Flink), 0)
                    .with_cores_per_instance(p.cores_per_taskmanager);
            if let Some(k) = &job.kafka {
                workers = workers.with_topic(&k.topic);
            }
            if let Some(n) = &flink_cfg.job_name {
                workers = workers.with_job_name(n);
            }
            Box::new(crate::engine::prometheus::PrometheusWorkers::new(
                flink, workers,
            ))
        }
        None => Box::new(flink),
    };
    let pool: Option<Box<dyn TaskManagerPool>> = match (
        &flink_cfg.taskmanager_start,
        &flink_cfg.taskmanager_stop,
        &flink_cfg.taskmanager_deployment,
    ) {
        (Some(start), Some(stop), _) => Some(Box::new(CommandPool {
            start: start.clone(),
            stop: stop.clone(),
            dir: Some(cfg.base_dir.clone()),
        })),
        (_, _, Some(k)) => Some(Box::new(KubernetesPool::new(kube_scale(
            k,
            Duration::from_millis(flink_cfg.timeout_ms),
        )?))),
        _ => None,
    };
    let actuator: Box<dyn Actuator> = match flink_cfg.rescale {
        RescaleMethod::InPlace => Box::new(FlinkRescaleActuator::new(rest, selector, pool)),
        RescaleMethod::Savepoint => Box::new(SavepointRescaleActuator::new(
            rest,
            selector,
            Resubmit {
                jar: cfg
                    .base_dir
                    .join(flink_cfg.jar.as_ref().expect("validated")),
                args: flink_cfg.program_args.clone(),
                entry_class: flink_cfg.entry_class.clone(),
                savepoint_timeout: Duration::from_secs(job.rescale_timeout_secs),
            },
        )),
    };
    Ok((collector, actuator))
}

/// What the jobs of one host share.
pub struct HostParts {
    /// The policy engine (one wasmtime engine, one precompiled cache).
    pub engine: Arc<PolicyEngine>,
    /// The database, if configured.
    pub store: Option<Arc<Store>>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    models: ModelCache,
    /// Policies loaded while the jobs are built, by digest: jobs starting on the same component
    /// share one load, `describe` included (a `LoadedPolicy` clone is a handle), so a thousand
    /// jobs do not load it a thousand times. Emptied by [`HostParts::started`], so a component
    /// every job has swapped away from is not kept for the life of the host.
    loaded: Mutex<BTreeMap<String, crate::policy::LoadedPolicy>>,
}

impl HostParts {
    /// Parts around `engine`, opening the configured store.
    pub fn new(cfg: &RunConfig, engine: Arc<PolicyEngine>) -> anyhow::Result<Self> {
        let store = match &cfg.store {
            Some(s) => Some(Arc::new(Store::open(&s.path).with_context(|| {
                format!("store.path: cannot open {}", s.path.display())
            })?)),
            None => None,
        };
        Ok(HostParts {
            metrics: Arc::new(Metrics::with_engine(&engine)),
            engine,
            store,
            models: ModelCache::default(),
            loaded: Mutex::default(),
        })
    }
}

impl HostParts {
    /// Called once every job is built: forgets the start-up loads. The jobs hold what they
    /// run; later loads of the same bytes still share it through the engine while it is held.
    pub fn started(&self) {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// A slot holding the policy at `path` (checked against `sha256`), sharing the compiled
    /// code with every other job running the same bytes.
    fn load_slot(
        &self,
        path: &std::path::Path,
        sha256: Option<&str>,
        limits: &PolicyLimits,
        what: &str,
    ) -> anyhow::Result<Arc<PolicySlot>> {
        let limits = limits.clone();
        let context = || format!("{what}: cannot load policy {}", path.display());
        let bytes = std::fs::read(path).with_context(context)?;
        let wasm = Digested::new(&bytes);
        if let Some(want) = sha256
            && !want.eq_ignore_ascii_case(wasm.digest())
        {
            anyhow::bail!(
                "{}: sha256 mismatch: the config pins {want}, the file is {}",
                context(),
                wasm.digest()
            );
        }
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let policy = match loaded.get(wasm.digest()) {
            Some(p) => p.clone(),
            None => {
                let digest = wasm.digest().to_string();
                let p = self
                    .engine
                    .load_digested(wasm, &limits)
                    .with_context(context)?;
                loaded.insert(digest, p.clone());
                p
            }
        };
        Ok(Arc::new(PolicySlot::new(
            self.engine.clone(),
            policy,
            limits,
        )))
    }
}

fn params(m: &BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// [`check_params`] of the slot's policy, on a blocking thread (a probe decision is a guest
/// call, which must not block the async runtime).
async fn checked_params(
    slot: &PolicySlot,
    configured: &BTreeMap<String, String>,
    limits: &PolicyLimits,
    objective_ms: Option<u64>,
) -> anyhow::Result<()> {
    let (policy, configured, limits) = (slot.active(), params(configured), limits.clone());
    tokio::task::spawn_blocking(move || check_params(&policy, &configured, &limits, objective_ms))
        .await
        .context("the parameter check did not complete")?
        .map_err(anyhow::Error::new)
}

/// A built job: its loop and clock.
pub struct BuiltJob {
    /// The loop.
    pub job: JobLoop,
    /// Its clock.
    pub clock: JobClock,
}

/// Builds the loop of one configured job: loads (and pins) its policy and shadows, connects
/// its engine, restores it from the store.
pub async fn build_job(
    cfg: &RunConfig,
    job: &JobConfig,
    parts: &HostParts,
    dry_run_override: bool,
) -> anyhow::Result<BuiltJob> {
    let what = format!("job {:?}", job.name);
    let objective_ms = job
        .latency_objective_secs
        .map(|s| Duration::from_secs_f64(s).as_millis() as u64);
    let slot = parts.load_slot(
        &job.policy,
        job.policy_sha256.as_deref(),
        &job.limits,
        &what,
    )?;
    checked_params(&slot, &job.params, &job.limits, objective_ms)
        .await
        .with_context(|| format!("{what}: policy {} rejects `params`", job.policy.display()))?;
    let policy = Arc::new(WasmPolicy::new(slot.clone()));
    let mut shadows = Vec::new();
    for c in &job.shadow {
        let s = parts.load_slot(
            &c.policy,
            c.policy_sha256.as_deref(),
            &job.limits,
            &format!("{what} shadow {:?}", c.name),
        )?;
        checked_params(&s, &c.params, &job.limits, objective_ms)
            .await
            .with_context(|| {
                format!(
                    "{what} shadow {:?}: policy {} rejects its `params`",
                    c.name,
                    c.policy.display()
                )
            })?;
        shadows.push(Shadow::new(
            &c.name,
            Arc::new(WasmPolicy::new(s.clone())),
            Some(s),
            params(&c.params),
        ));
    }
    let last_parallelism = parts
        .store
        .as_ref()
        .and_then(|s| s.recent_observations(&job.name, 0).ok())
        .and_then(|o| o.last().map(|o| o.parallelism));
    let conn = job_connectors(cfg, job, &parts.models, last_parallelism)?;
    let settings = JobSettings {
        name: job.name.clone(),
        bounds: Bounds {
            min_parallelism: job.min_parallelism,
            max_parallelism: job.max_parallelism,
        },
        history: Duration::from_secs(cfg.history_secs),
        rescale_timeout: Duration::from_secs(job.rescale_timeout_secs),
        latency_objective: job.latency_objective_secs.map(Duration::from_secs_f64),
        dry_run: dry_run_override || job.dry_run.unwrap_or(cfg.dry_run),
        params: params(&job.params),
        guardrails: crate::live::guardrails::Guardrails {
            partition_cap: job.kafka_streams.as_ref().map(|k| k.partitions),
            ..job.guardrails.clone()
        },
    };
    let mut l = JobLoop::new(settings, conn.collector, conn.actuator, policy)
        .with_metrics(parts.metrics.clone())
        .with_shadows(shadows)
        .with_control(PolicyControl::new(
            slot,
            job.policy.clone(),
            job.policy_sha256.clone(),
            job.rollback_after,
        ));
    if let Some(store) = &parts.store {
        l = l.with_store(store.clone());
        l.restore()
            .await
            .with_context(|| format!("{what}: cannot restore from the store"))?;
    }
    Ok(BuiltJob {
        job: l,
        clock: conn.clock,
    })
}

/// Runs a job's loop every `tick` of its clock until `stop` resolves. A slow cycle delays the
/// next one; cycles never overlap. Every `prune_every` cycles, the store drops what is older
/// than `retention`.
pub async fn run_job(
    built: BuiltJob,
    tick: Duration,
    retention: Option<Duration>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> JobLoop {
    let BuiltJob { mut job, clock } = built;
    let mut stop = stop;
    let wall_tick = tick.div_f64(clock.speedup());
    // Jobs start at a phase of their tick derived from their name, so a host with many jobs
    // spreads its cycles instead of running them all at once.
    let phase = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        job.settings().name.hash(&mut h);
        wall_tick.mul_f64((h.finish() % 1000) as f64 / 1000.0)
    };
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + phase, wall_tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let prune_every = (3_600_000 / tick.as_millis().max(1)).max(1) as u64;
    let mut cycles = 0u64;
    let shared = job.shared();
    loop {
        tokio::select! {
            _ = shared.pause_set() => job.record_pause(),
            _ = interval.tick() => {
                let now = clock.now_ms();
                // A panic in one job's cycle must not end its loop silently (the task would
                // only be looked at on shutdown): it is logged, counted, and the loop goes on.
                let cycle = std::panic::AssertUnwindSafe(job.cycle(now));
                if let Err(panic) = futures_util::FutureExt::catch_unwind(cycle).await {
                    job.cycle_panicked(panic.as_ref());
                }
                cycles += 1;
                if let Some(r) = retention
                    && cycles.is_multiple_of(prune_every)
                {
                    job.prune(now, now.saturating_sub(r.as_millis() as u64));
                }
            }
            _ = stop.changed() => break,
        }
    }
    job.record_pause();
    tracing::info!(job = %job.settings().name, rescales = job.rescales(), "Job loop stopped.");
    job
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what a container runtime or systemd sends).
async fn stop_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot wait for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        _ = term.recv() => {}
    }
    tracing::info!("Stopping.");
    Ok(())
}

/// Runs every configured job until Ctrl-C or SIGTERM (or for `duration`, when given).
pub async fn run(
    cfg: RunConfig,
    engine: Arc<PolicyEngine>,
    dry_run: bool,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let parts = HostParts::new(&cfg, engine)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut built = Vec::new();
    let mut shared = BTreeMap::new();
    let mut watched = Vec::new();
    for job in &cfg.jobs {
        let b = build_job(&cfg, job, &parts, dry_run).await?;
        tracing::info!(job = %job.name, policy = %job.policy.display(), shadows = job.shadow.len(),
            dry_run = b.job.settings().dry_run, speedup = b.clock.speedup(), "Watching job.");
        shared.insert(job.name.clone(), b.job.shared());
        if job.watch_policy {
            watched.push((job.policy.clone(), b.job.shared()));
        }
        built.push(b);
    }
    parts.started();
    let _watcher = if watched.is_empty() {
        None
    } else {
        Some(watch::watch(watched).context("cannot watch the policy files")?)
    };
    let mut api_task = None;
    if let Some(a) = &cfg.api {
        let token = match (&a.token, &a.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(f)) => {
                let t = std::fs::read_to_string(f)
                    .with_context(|| format!("api.token_file: cannot read {}", f.display()))?
                    .trim()
                    .to_string();
                if t.chars().count() < config::MIN_TOKEN_CHARS {
                    anyhow::bail!(
                        "api.token_file: the token in {} must be at least {} characters",
                        f.display(),
                        config::MIN_TOKEN_CHARS
                    );
                }
                Some(t)
            }
            (None, None) => None,
        };
        let listener = tokio::net::TcpListener::bind(&a.listen)
            .await
            .with_context(|| format!("api.listen: cannot listen on {}", a.listen))?;
        tracing::info!(address = %listener.local_addr()?, mutating = token.is_some(), "API listening.");
        let state = api::ApiState {
            arms: cfg.arms(),
            jobs: Arc::new(shared),
            store: parts.store.clone(),
            metrics: parts.metrics.clone(),
            token,
            public_read: a.public_read,
            request_timeout: Duration::from_secs(cfg.tick_secs.max(1) * 3 + 30),
        };
        api_task = Some(tokio::spawn(api::serve(listener, state, rx.clone())));
    }
    let retention = cfg
        .store
        .as_ref()
        .map(|s| Duration::from_secs(s.retention_hours * 3600));
    let tasks: Vec<_> = built
        .into_iter()
        .map(|b| {
            tokio::spawn(run_job(
                b,
                Duration::from_secs(cfg.tick_secs),
                retention,
                rx.clone(),
            ))
        })
        .collect();
    match duration {
        Some(d) => tokio::time::sleep(d).await,
        None => stop_signal().await?,
    }
    let _ = tx.send(true);
    let mut stopped = Vec::new();
    for t in tasks {
        match t.await {
            Ok(job) => stopped.push(job),
            Err(e) => tracing::error!(error = %e, "A job task panicked."),
        }
    }
    // Every job's instances stop together: at most one stop timeout in all.
    futures_util::future::join_all(stopped.iter().map(|j| j.shutdown())).await;
    if let Some(t) = api_task {
        match t.await {
            Ok(Err(e)) => tracing::error!(error = %e, "The API server failed."),
            Err(e) => tracing::error!(error = %e, "The API task panicked."),
            Ok(Ok(())) => {}
        }
    }
    Ok(())
}
