//! The `daedalus run` configuration: one TOML file, strictly validated (unknown keys are
//! rejected; every error names the key).
//!
//! ```toml
//! tick_secs = 10          # one MAPE-K cycle per job every this many seconds (default 10; 1-86400)
//! history_secs = 600      # observation window handed to policies (default 600; at most 30 days)
//! dry_run = false         # recommend only, for every job (default false)
//!
//! [[jobs]]
//! name = "wordcount"                      # how logs name the job
//! policy = "target/policies/ds2.wasm"     # the policy component
//! policy_sha256 = "..."                   # optional pin; a mismatch refuses to start
//! params = { scaling_factor = "0.1" }     # policy parameters (strings; checked at start)
//! min_parallelism = 1                     # default 1
//! max_parallelism = 4                     # required
//! rescale_timeout_secs = 180              # give up waiting for a rescale (default 180; <= 30 days)
//! latency_objective_secs = 30             # optional: the longest a record should wait in the
//!                                         # input; handed to policies (WIT 0.2.0)
//! limits = { fuel = 2000000000, deadline_ms = 2000, memory_mib = 128 }  # per call (defaults;
//!          # also max_state_bytes = 1048576, max_log_lines = 100); shadows get the same
//! dry_run = false                         # per job (default: the global one)
//!
//! [jobs.flink]
//! rest_url = "http://127.0.0.1:8081"
//! job_name = "flink-wordcount"   # or job_id = "..."
//! timeout_ms = 5000              # per REST call (default 5000)
//! warm_up_secs = 15              # not ready this long after a (re)start (default 15)
//! workers = "subtasks"           # or "task-managers" (default subtasks)
//! worker_vertex = "count"        # vertex whose subtasks are the workers (default: the busiest)
//! rescale = "in-place"           # adaptive scheduler; or "savepoint": stop with a savepoint and
//!                                # resubmit `jar` with `program_args` (any scheduler; follow the
//!                                # job by job_name, its id changes)
//! # jar = "jobs/flink-wordcount/target/flink-wordcount.jar"
//! # program_args = ["--input", "words"]
//! taskmanager_start = ["bash", "tests/services/flink.sh", "tm-start"]  # optional pool
//! taskmanager_stop = ["bash", "tests/services/flink.sh", "tm-stop"]
//! # or, on Kubernetes (reactive mode): the TaskManager Deployment's replicas, reached
//! # in-cluster (the pod's service account), through a kubeconfig context, or at a URL
//! # (see `KubeWorkload`)
//! # taskmanager_deployment = { auth = "in-cluster", namespace = "streaming", name = "flink-taskmanager" }
//! # taskmanager_deployment = { auth = "kubeconfig", context = "prod", name = "flink-taskmanager" }
//!
//! [jobs.kafka]                   # optional: the input topic, for the arrival rate
//! bootstrap = "127.0.0.1:9092"
//! topic = "words"
//! timeout_ms = 5000
//! ```

use super::guardrails::Guardrails;
use crate::engine::flink::WorkerSource;
use crate::policy::PolicyLimits;
use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The shortest API token accepted (`api.token`, or the content of `api.token_file`).
pub const MIN_TOKEN_CHARS: usize = 16;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Seconds between cycles (default 10).
    #[serde(default = "default_tick")]
    pub tick_secs: u64,
    /// Seconds of observations handed to policies (default 600).
    #[serde(default = "default_history")]
    pub history_secs: u64,
    /// Recommend only (default false).
    #[serde(default)]
    pub dry_run: bool,
    /// Durable knowledge (optional: without it nothing is kept across restarts).
    #[serde(default)]
    pub store: Option<StoreConfig>,
    /// The HTTP API and `/metrics` (optional).
    #[serde(default)]
    pub api: Option<ApiConfig>,
    /// The jobs.
    pub jobs: Vec<JobConfig>,
    /// The folder relative paths in the file are resolved against (the file's own folder;
    /// the current directory for text parsed without a file).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn default_tick() -> u64 {
    10
}
fn default_history() -> u64 {
    600
}
fn default_min() -> u32 {
    1
}
fn default_rescale_timeout() -> u64 {
    180
}
fn default_timeout_ms() -> u64 {
    5000
}
fn default_warm_up() -> u64 {
    15
}

/// One job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Name used in logs.
    pub name: String,
    /// The policy component.
    pub policy: PathBuf,
    /// Expected sha256 of the component (hex).
    #[serde(default)]
    pub policy_sha256: Option<String>,
    /// Policy parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Smallest parallelism applied (default 1).
    #[serde(default = "default_min")]
    pub min_parallelism: u32,
    /// Largest parallelism applied.
    pub max_parallelism: u32,
    /// Seconds to wait for a rescale to complete before giving up on it (default 180).
    #[serde(default = "default_rescale_timeout")]
    pub rescale_timeout_secs: u64,
    /// The job's latency objective: the longest a record should wait in the input, seconds
    /// (default none). Policies see it as `latency-objective-ms`.
    #[serde(default)]
    pub latency_objective_secs: Option<f64>,
    /// Limits of every call of this job's policies, the shadows' included (default: the
    /// host's, [`PolicyLimits::default`]). Interpreted runtimes (JavaScript) on long histories
    /// may need more fuel; `daedalus policy test --fuel N` checks a policy under them.
    #[serde(default)]
    pub limits: PolicyLimits,
    /// Recommend only for this job (default: the global `dry_run`).
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Arm of a split test this job belongs to (e.g. "A" or "B"; default none), for the
    /// arms report (`GET /arms`, `daedalus arms`).
    #[serde(default)]
    pub arm: Option<String>,
    /// Guardrails applied after every decision (default: bounds only).
    #[serde(default)]
    pub guardrails: Guardrails,
    /// Candidate policies deciding in shadow on the same input; only the active one acts.
    #[serde(default)]
    pub shadow: Vec<ShadowConfig>,
    /// Reload the policy when its file changes (default true).
    #[serde(default = "yes")]
    pub watch_policy: bool,
    /// Roll back to the last good policy after this many failed decisions in a row of a
    /// swapped-in one (default 3).
    #[serde(default = "default_rollback")]
    pub rollback_after: u32,
    /// A Flink job (give exactly one of `flink`, `kafka_streams` and `simulated`).
    #[serde(default)]
    pub flink: Option<FlinkConfig>,
    /// A simulated job.
    #[serde(default)]
    pub simulated: Option<SimulatedConfig>,
    /// A Kafka Streams application, scaled by instances.
    #[serde(default)]
    pub kafka_streams: Option<KafkaStreamsConfig>,
    /// The job's input topic.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
}

/// A candidate policy run in shadow.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// Name in reports (unique within the job; not `active`, the active policy's role).
    pub name: String,
    /// The component.
    pub policy: PathBuf,
    /// Expected sha256 (hex).
    #[serde(default)]
    pub policy_sha256: Option<String>,
    /// Its parameters (default: none).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// The simulator's job model run as a live job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedConfig {
    /// Engine profile: `flink` or `kafka-streams` (default flink), or a profile file.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// Trace file or synthetic spec (see `daedalus simulate --help`).
    pub trace: String,
    /// Multiplies every rate of the trace (default 1).
    #[serde(default = "one_f64")]
    pub rate_scale: f64,
    /// Seed of skew, noise and downtime jitter (default 1).
    #[serde(default = "one_u64")]
    pub seed: u64,
    /// Seconds of job time per second of wall time (default 1: real time).
    #[serde(default = "one_f64")]
    pub speedup: f64,
    /// Where the job keeps its state, so it outlives the host (default: in memory only).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

/// A Kafka Streams application: metrics through Prometheus (the JMX exporter), arrival rate
/// from the input topic, scaled by instances (a local process group or a Kubernetes workload).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaStreamsConfig {
    /// Prometheus base URL (default `http://127.0.0.1:9090`).
    #[serde(default = "default_prometheus")]
    pub prometheus_url: String,
    /// The scrape job of the instances (default `kstreams`).
    #[serde(default = "default_scrape_job")]
    pub scrape_job: String,
    /// PromQL: a `preset` (default `kafka-streams`) and per-query overrides (`cpu`,
    /// `throughput`, `threads`, `assigned`, `lag`; see `engine::prometheus::Queries`).
    #[serde(default)]
    pub queries: crate::engine::prometheus::QueryConfig,
    /// CPU cores per instance, for the utilization (default 1).
    #[serde(default = "one_f64")]
    pub cores_per_instance: f64,
    /// Broker, `host:port`.
    pub bootstrap: String,
    /// Input topic.
    pub topic: String,
    /// Partitions of the input topic: more instances than this would idle (required).
    pub partitions: u32,
    /// The application's `application.id`, which names its consumer group (recommended). With
    /// it the lag is the input's end offsets minus the group's committed offsets (current
    /// even under a backlog, where the consumers' `records-lag` goes stale) and a rebalance
    /// is read from the group's state and assignments; without it, from the `lag` and
    /// `assigned` queries.
    #[serde(default)]
    pub application_id: Option<String>,
    /// Per-call timeout, ms (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Local instances: the command of one instance (`{index}`, `{port}` substituted), run in
    /// the config file's folder.
    #[serde(default)]
    pub instance_command: Option<Vec<String>>,
    /// `{port}` of instance 0 (default 9400).
    #[serde(default = "default_base_port")]
    pub base_port: u16,
    /// Seconds an instance gets to stop after SIGTERM (default 30).
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_secs: u64,
    /// Instances started with the host the first time (default: the job's
    /// `min_parallelism`); a host restarted with a `[store]` starts as many as last ran.
    #[serde(default)]
    pub initial_instances: Option<u32>,
    /// Or: a Deployment or StatefulSet on Kubernetes.
    #[serde(default)]
    pub workload: Option<KubeWorkload>,
}

/// A Kubernetes workload scaled through its `scale` subresource, and how to reach the API.
///
/// `auth` picks the connection (default: `url` when `api_url` is given, else `in-cluster`
/// inside a pod, else `kubeconfig`):
/// - `in-cluster`: the pod's service account (`service_account_dir`: its `ca.crt`, `token`,
///   `namespace`) and `KUBERNETES_SERVICE_HOST`/`_PORT`;
/// - `kubeconfig`: `kubeconfig` (default `$KUBECONFIG`, else `~/.kube/config`), `context`
///   (default its current context): server, CA, client certificate, token or exec plugin;
/// - `url`: `api_url` as given (e.g. `kubectl proxy` at `http://127.0.0.1:8001`), with an
///   optional `token_file` and `ca_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeWorkload {
    /// `in-cluster`, `kubeconfig` or `url` (default: see above).
    #[serde(default)]
    pub auth: Option<KubeAuth>,
    /// API base URL for `auth = "url"`.
    #[serde(default)]
    pub api_url: Option<String>,
    /// File holding a bearer token, for `auth = "url"` (read at every request).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// PEM CA bundle to verify an `https` `api_url` against (default: the system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// kubeconfig file for `auth = "kubeconfig"` (default `$KUBECONFIG`, else
    /// `~/.kube/config`).
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context (default: its `current-context`).
    #[serde(default)]
    pub context: Option<String>,
    /// The service account's folder for `auth = "in-cluster"` (default
    /// `/var/run/secrets/kubernetes.io/serviceaccount`).
    #[serde(default)]
    pub service_account_dir: Option<PathBuf>,
    /// Namespace (default: the context's or the pod's, else `default`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// `deployment` (default) or `stateful-set`.
    #[serde(default = "default_workload_kind")]
    pub kind: crate::engine::kubernetes::WorkloadKind,
    /// Name.
    pub name: String,
}

fn default_workload_kind() -> crate::engine::kubernetes::WorkloadKind {
    crate::engine::kubernetes::WorkloadKind::Deployment
}

/// How the host reaches the Kubernetes API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubeAuth {
    /// The pod's service account.
    InCluster,
    /// A kubeconfig context.
    Kubeconfig,
    /// A plain URL (e.g. `kubectl proxy`), optionally with a token file and a CA file.
    Url,
}

impl KubeWorkload {
    /// Resolves the connection; `env` reads environment variables.
    pub fn connection(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<crate::engine::kubeconfig::KubeConnection, crate::engine::EngineError> {
        use crate::engine::kubeconfig::{self, Credentials, KubeConnection};
        use crate::engine::tls::{Roots, TlsSettings};
        let auth = self.auth.unwrap_or(if self.api_url.is_some() {
            KubeAuth::Url
        } else if env("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty()) {
            KubeAuth::InCluster
        } else {
            KubeAuth::Kubeconfig
        });
        let misplaced = |key: &str, mode: &str| {
            crate::engine::EngineError::Other(format!(
                "Kubernetes workload {:?}: `{key}` applies to auth = \"{mode}\" only",
                self.name
            ))
        };
        match auth {
            KubeAuth::Url => {
                let url = self.api_url.as_ref().ok_or_else(|| {
                    crate::engine::EngineError::Other(format!(
                        "Kubernetes workload {:?}: auth = \"url\" needs api_url",
                        self.name
                    ))
                })?;
                let roots = match &self.ca_file {
                    None => Roots::System,
                    Some(f) => Roots::Pem(std::fs::read(f).map_err(|e| {
                        crate::engine::EngineError::Other(format!("ca_file {}: {e}", f.display()))
                    })?),
                };
                Ok(KubeConnection {
                    server: url.trim_end_matches('/').to_string(),
                    tls: TlsSettings {
                        roots,
                        identity: None,
                    },
                    credentials: self
                        .token_file
                        .clone()
                        .map_or(Credentials::None, Credentials::TokenFile),
                    namespace: None,
                    source: url.clone(),
                })
            }
            KubeAuth::InCluster | KubeAuth::Kubeconfig => {
                for (set, key) in [
                    (self.api_url.is_some(), "api_url"),
                    (self.token_file.is_some(), "token_file"),
                    (self.ca_file.is_some(), "ca_file"),
                ] {
                    if set {
                        return Err(misplaced(key, "url"));
                    }
                }
                if auth == KubeAuth::InCluster {
                    if self.kubeconfig.is_some() || self.context.is_some() {
                        return Err(misplaced("kubeconfig/context", "kubeconfig"));
                    }
                    let dir = self
                        .service_account_dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from(kubeconfig::SERVICE_ACCOUNT_DIR));
                    kubeconfig::in_cluster(env, &dir)
                } else {
                    if self.service_account_dir.is_some() {
                        return Err(misplaced("service_account_dir", "in-cluster"));
                    }
                    let files = match &self.kubeconfig {
                        Some(f) => vec![f.clone()],
                        None => kubeconfig::default_kubeconfig_paths(env),
                    };
                    kubeconfig::load_kubeconfig(&files, self.context.as_deref())
                }
            }
        }
    }

    /// The namespace: configured, else the connection's, else `default`.
    pub fn namespace_for(&self, conn: &crate::engine::kubeconfig::KubeConnection) -> String {
        self.namespace
            .clone()
            .or_else(|| conn.namespace.clone())
            .unwrap_or_else(|| "default".into())
    }
}

fn default_prometheus() -> String {
    "http://127.0.0.1:9090".into()
}
fn default_scrape_job() -> String {
    "kstreams".into()
}
fn default_base_port() -> u16 {
    9400
}
fn default_stop_timeout() -> u64 {
    30
}

/// The embedded database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite file (relative to the config file).
    pub path: PathBuf,
    /// Observations and decisions older than this many hours are deleted (default 168; at
    /// least 1, at most 10 years).
    #[serde(default = "default_retention")]
    pub retention_hours: u64,
}

/// The HTTP API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address (default `127.0.0.1:9464`, loopback).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token required by the mutating endpoints (swap, promote, pause, resume). Without
    /// it (and without `token_file`) those endpoints are disabled.
    #[serde(default)]
    pub token: Option<String>,
    /// Or a file holding the token (relative to the config file).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Whether the read-only endpoints (health, jobs, decisions, metrics) need no token
    /// (default true).
    #[serde(default = "yes")]
    pub public_read: bool,
}

fn yes() -> bool {
    true
}
fn default_rollback() -> u32 {
    3
}
fn default_profile() -> String {
    "flink".into()
}
fn one_f64() -> f64 {
    1.0
}
fn one_u64() -> u64 {
    1
}
fn default_retention() -> u64 {
    168
}
fn default_listen() -> String {
    "127.0.0.1:9464".into()
}

/// How to reach the Flink job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlinkConfig {
    /// REST base URL.
    pub rest_url: String,
    /// A fixed job id.
    #[serde(default)]
    pub job_id: Option<String>,
    /// Or the job's name (follows resubmissions).
    #[serde(default)]
    pub job_name: Option<String>,
    /// Per-call timeout, ms (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Seconds after a (re)start during which the job is not ready (default 15).
    #[serde(default = "default_warm_up")]
    pub warm_up_secs: u64,
    /// Where per-worker samples come from (default `subtasks`).
    #[serde(default)]
    pub workers: WorkerSource,
    /// How to rescale (default `in-place`).
    #[serde(default)]
    pub rescale: RescaleMethod,
    /// The job's jar, for `rescale = "savepoint"` (relative to the config file).
    #[serde(default)]
    pub jar: Option<PathBuf>,
    /// Program arguments of the resubmitted job.
    #[serde(default)]
    pub program_args: Vec<String>,
    /// Entry class, when the jar's manifest has none.
    #[serde(default)]
    pub entry_class: Option<String>,
    /// Name (or part of it) of the vertex whose subtasks are the workers (default: the busiest
    /// non-source vertex).
    #[serde(default)]
    pub worker_vertex: Option<String>,
    /// Command that starts one TaskManager (optional pool); it runs in the config file's folder.
    #[serde(default)]
    pub taskmanager_start: Option<Vec<String>>,
    /// Command that stops one TaskManager.
    #[serde(default)]
    pub taskmanager_stop: Option<Vec<String>>,
    /// Or: the TaskManager Deployment (or StatefulSet) on Kubernetes.
    #[serde(default)]
    pub taskmanager_deployment: Option<KubeWorkload>,
    /// Per-worker samples from Flink's Prometheus reporter (one worker per TaskManager)
    /// instead of REST (`workers`); the job state, operators and rates still come from REST.
    #[serde(default)]
    pub prometheus: Option<FlinkPrometheus>,
}

/// Where a Flink job's Prometheus reporter is scraped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlinkPrometheus {
    /// Prometheus base URL (default `http://127.0.0.1:9090`).
    #[serde(default = "default_prometheus")]
    pub url: String,
    /// The scrape job of the reporters (default `flink`).
    #[serde(default = "default_flink_scrape_job")]
    pub scrape_job: String,
    /// CPU cores per TaskManager, for the utilization (default 1).
    #[serde(default = "one_f64")]
    pub cores_per_taskmanager: f64,
    /// PromQL: a `preset` (default `flink`) and per-query overrides.
    #[serde(default)]
    pub queries: crate::engine::prometheus::QueryConfig,
}

fn default_flink_scrape_job() -> String {
    "flink".into()
}

/// How a Flink job is rescaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RescaleMethod {
    /// `PUT /jobs/{id}/resource-requirements` (adaptive scheduler).
    #[default]
    InPlace,
    /// Stop with a savepoint and resubmit at the new parallelism.
    Savepoint,
}

/// The input topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port` of a broker.
    pub bootstrap: String,
    /// Topic name.
    pub topic: String,
    /// Per-call timeout, ms (default 5000).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl RunConfig {
    /// Reads and validates `path`. Relative paths in it (policies, the TaskManager pool
    /// commands' working directory) are relative to the file's folder.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let mut cfg =
            Self::parse(&text).with_context(|| format!("invalid config {}", path.display()))?;
        cfg.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        cfg.resolve_paths();
        Ok(cfg)
    }

    /// Makes the paths in the file relative to `base_dir`.
    fn resolve_paths(&mut self) {
        let base = self.base_dir.clone();
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(st) = &mut self.store {
            fix(&mut st.path);
        }
        if let Some(f) = self.api.as_mut().and_then(|a| a.token_file.as_mut()) {
            fix(f);
        }
        for j in &mut self.jobs {
            fix(&mut j.policy);
            j.shadow.iter_mut().for_each(|c| fix(&mut c.policy));
            let workloads = [
                j.kafka_streams.as_mut().and_then(|k| k.workload.as_mut()),
                j.flink
                    .as_mut()
                    .and_then(|f| f.taskmanager_deployment.as_mut()),
            ];
            for w in workloads.into_iter().flatten() {
                for f in [
                    &mut w.token_file,
                    &mut w.ca_file,
                    &mut w.kubeconfig,
                    &mut w.service_account_dir,
                ]
                .into_iter()
                .flatten()
                {
                    fix(f);
                }
            }
            if let Some(sim) = &mut j.simulated {
                if let Some(f) = &mut sim.state_file {
                    fix(f);
                }
                // A trace is a file when one exists there; otherwise a synthetic spec.
                let candidate = base.join(&sim.trace);
                if Path::new(&sim.trace).is_relative() && candidate.exists() {
                    sim.trace = candidate.display().to_string();
                }
                let profile = base.join(&sim.profile);
                if !matches!(sim.profile.as_str(), "flink" | "kafka-streams") && profile.exists() {
                    sim.profile = profile.display().to_string();
                }
            }
        }
    }

    /// Each job with an arm, and its arm.
    pub fn arms(&self) -> std::collections::BTreeMap<String, String> {
        self.jobs
            .iter()
            .filter_map(|j| j.arm.clone().map(|a| (j.name.clone(), a)))
            .collect()
    }

    /// The configuration `daedalus run` uses without `--config`: one simulated Flink job on
    /// the bundled advertising trace at 60x, scaled by Daedalus (`examples/simulated.toml`).
    pub fn embedded_default(repo_root: &Path) -> anyhow::Result<Self> {
        let mut cfg = Self::parse(include_str!("../../../examples/simulated.toml"))
            .context("the embedded example config")?;
        cfg.base_dir = repo_root.join("examples");
        cfg.resolve_paths();
        Ok(cfg)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let cfg: RunConfig = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(a) = &self.api {
            a.listen
                .parse::<std::net::SocketAddr>()
                .with_context(|| format!("api.listen: {:?} is not an address:port", a.listen))?;
            if a.token.is_some() && a.token_file.is_some() {
                bail!("api: give token or token_file, not both");
            }
            if a.token
                .as_deref()
                .is_some_and(|t| t.chars().count() < MIN_TOKEN_CHARS)
            {
                bail!("api.token: must be at least {MIN_TOKEN_CHARS} characters");
            }
        }
        if !(1..=86_400).contains(&self.tick_secs) {
            bail!("tick_secs: {} must be in [1, 86400]", self.tick_secs);
        }
        if self.history_secs > 30 * 86_400 {
            bail!("history_secs: {} is more than 30 days", self.history_secs);
        }
        if let Some(st) = &self.store
            && !(1..=10 * 365 * 24).contains(&st.retention_hours)
        {
            bail!(
                "store.retention_hours: {} must be in [1, 87600] (1 hour to 10 years; 0 would delete every observation as it is written)",
                st.retention_hours
            );
        }
        if self.jobs.is_empty() {
            bail!("jobs: at least one [[jobs]] entry is needed");
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, j) in self.jobs.iter().enumerate() {
            let at = format!("jobs[{i}] ({:?})", j.name);
            if !names.insert(&j.name) {
                bail!("{at}.name: duplicate job name");
            }
            if j.min_parallelism == 0 {
                bail!("{at}.min_parallelism: must be at least 1");
            }
            if j.max_parallelism < j.min_parallelism {
                bail!(
                    "{at}.max_parallelism: {} is below min_parallelism {}",
                    j.max_parallelism,
                    j.min_parallelism
                );
            }
            j.guardrails
                .validate()
                .with_context(|| format!("{at}.guardrails"))?;
            let mut shadow_names = std::collections::BTreeSet::new();
            for (k, c) in j.shadow.iter().enumerate() {
                if c.name.is_empty() || !shadow_names.insert(&c.name) {
                    bail!("{at}.shadow[{k}].name: must be non-empty and unique");
                }
                if c.name == "active" {
                    // Decisions are recorded by role; the active policy's role is `active`.
                    bail!("{at}.shadow[{k}].name: `active` names the active policy's decisions");
                }
            }
            if j.rescale_timeout_secs > 30 * 86_400 {
                bail!(
                    "{at}.rescale_timeout_secs: {} is more than 30 days",
                    j.rescale_timeout_secs
                );
            }
            if j.rollback_after == 0 {
                bail!("{at}.rollback_after: must be at least 1");
            }
            if j.limits.fuel == 0 || j.limits.deadline_ms == 0 || j.limits.memory_mib == 0 {
                bail!("{at}.limits: fuel, deadline_ms and memory_mib must be at least 1");
            }
            if let Some(o) = j.latency_objective_secs
                && !(o.is_finite() && o > 0.0 && o <= 86_400.0)
            {
                bail!("{at}.latency_objective_secs: {o} must be a number of seconds in (0, 86400]");
            }
            let flink = match (&j.flink, &j.simulated, &j.kafka_streams) {
                (Some(f), None, None) => f,
                (None, None, Some(ks)) => {
                    if ks.partitions == 0 {
                        bail!("{at}.kafka_streams.partitions: must be at least 1");
                    }
                    if ks.instance_command.is_some() == ks.workload.is_some() {
                        bail!(
                            "{at}.kafka_streams: give exactly one of instance_command and workload"
                        );
                    }
                    if ks
                        .application_id
                        .as_ref()
                        .is_some_and(|a| a.trim().is_empty())
                    {
                        bail!("{at}.kafka_streams.application_id: must not be empty");
                    }
                    if ks.instance_command.as_ref().is_some_and(Vec::is_empty) {
                        bail!("{at}.kafka_streams.instance_command: must not be empty");
                    }
                    if !(ks.cores_per_instance.is_finite() && ks.cores_per_instance > 0.0) {
                        bail!("{at}.kafka_streams.cores_per_instance: must be > 0");
                    }
                    continue;
                }
                (None, Some(sim), None) => {
                    if !(sim.speedup.is_finite() && sim.speedup > 0.0 && sim.speedup <= 10_000.0) {
                        bail!("{at}.simulated.speedup: must be in (0, 10000]");
                    }
                    if !(sim.rate_scale.is_finite() && sim.rate_scale >= 0.0) {
                        bail!("{at}.simulated.rate_scale: must be a finite number >= 0");
                    }
                    continue;
                }
                _ => bail!(
                    "{at}: give exactly one of [jobs.flink], [jobs.kafka_streams] and [jobs.simulated]"
                ),
            };
            match (&flink.job_id, &flink.job_name) {
                (Some(_), Some(_)) => bail!("{at}.flink: give job_id or job_name, not both"),
                (None, None) => bail!("{at}.flink: job_id or job_name is required"),
                _ => {}
            }
            if !flink.rest_url.starts_with("http://") && !flink.rest_url.starts_with("https://") {
                bail!("{at}.flink.rest_url: must start with http:// or https://");
            }
            if flink.taskmanager_start.is_some() != flink.taskmanager_stop.is_some() {
                bail!("{at}.flink: taskmanager_start and taskmanager_stop go together");
            }
            if flink.rescale == RescaleMethod::Savepoint {
                if flink.jar.is_none() {
                    bail!("{at}.flink.jar: required with rescale = \"savepoint\"");
                }
                if flink.job_name.is_none() {
                    bail!(
                        "{at}.flink.job_name: required with rescale = \"savepoint\" (the resubmitted job gets a new id)"
                    );
                }
                if flink.taskmanager_start.is_some() || flink.taskmanager_deployment.is_some() {
                    bail!(
                        "{at}.flink: a TaskManager pool (taskmanager_start/stop, \
                         taskmanager_deployment) works with rescale = \"in-place\" only; the \
                         savepoint path starts no TaskManagers"
                    );
                }
            }
            if flink.taskmanager_start.is_some() && flink.taskmanager_deployment.is_some() {
                bail!(
                    "{at}.flink: give taskmanager_start/stop or taskmanager_deployment, not both"
                );
            }
            if let Some(k) = &j.kafka
                && (k.bootstrap.is_empty() || k.topic.is_empty())
            {
                bail!("{at}.kafka: bootstrap and topic must not be empty");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
[[jobs]]
name = "wc"
policy = "p.wasm"
max_parallelism = 4
[jobs.flink]
rest_url = "http://127.0.0.1:8081"
job_name = "flink-wordcount"
"#;

    #[test]
    fn defaults_are_filled_in() {
        let c = RunConfig::parse(OK).unwrap();
        assert_eq!((c.tick_secs, c.history_secs, c.dry_run), (10, 600, false));
        let j = &c.jobs[0];
        assert_eq!((j.min_parallelism, j.rescale_timeout_secs), (1, 180));
        assert_eq!(j.flink.as_ref().unwrap().workers, WorkerSource::Subtasks);
        assert!(j.kafka.is_none());
    }

    #[test]
    fn limits_and_the_latency_objective_are_per_job() {
        let with = |lines: &str| {
            OK.replace(
                "max_parallelism = 4\n",
                &format!("max_parallelism = 4\n{lines}\n"),
            )
        };
        let c = RunConfig::parse(&with(
            "latency_objective_secs = 30\nlimits = { fuel = 8000000000 }",
        ))
        .unwrap();
        let j = &c.jobs[0];
        assert_eq!(j.latency_objective_secs, Some(30.0));
        assert_eq!(j.limits.fuel, 8_000_000_000);
        assert_eq!(j.limits.deadline_ms, PolicyLimits::default().deadline_ms);
        assert!(
            RunConfig::parse(OK).unwrap().jobs[0]
                .latency_objective_secs
                .is_none()
        );
        for (bad, key) in [
            ("latency_objective_secs = -1", "latency_objective_secs"),
            ("limits = { fuel = 0 }", "limits"),
            ("limits = { fuell = 1 }", "fuell"),
        ] {
            let e = format!("{:#}", RunConfig::parse(&with(bad)).unwrap_err());
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn kubernetes_workloads_pick_their_connection_and_resolve_paths() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("kc"),
            "current-context: x\nclusters: [{name: c, cluster: {server: 'https://k:6443'}}]\ncontexts: [{name: x, context: {cluster: c, namespace: ns1}}]\n",
        )
        .unwrap();
        let path = d.path().join("run.toml");
        std::fs::write(
            &path,
            format!(
                "{OK}taskmanager_deployment = {{ auth = \"kubeconfig\", kubeconfig = \"kc\", name = \"tm\" }}\n"
            ),
        )
        .unwrap();
        let c = RunConfig::load(&path).unwrap();
        let w = c.jobs[0]
            .flink
            .as_ref()
            .unwrap()
            .taskmanager_deployment
            .clone()
            .unwrap();
        assert_eq!(w.kubeconfig.as_deref(), Some(d.path().join("kc").as_path()));
        assert_eq!(w.kind, crate::engine::kubernetes::WorkloadKind::Deployment);
        let no_env = |_: &str| None;
        let conn = w.connection(no_env).unwrap();
        assert_eq!(
            (conn.server.as_str(), w.namespace_for(&conn)),
            ("https://k:6443", "ns1".to_string())
        );

        // The default follows client-go: a URL if given, in a pod the service account, else
        // the kubeconfig.
        let parse = |t: &str| toml::from_str::<KubeWorkload>(t).unwrap();
        let url = parse("api_url = \"http://127.0.0.1:8001\"\nname = \"tm\"");
        assert_eq!(
            url.connection(no_env).unwrap().server,
            "http://127.0.0.1:8001"
        );
        let in_pod = |k: &str| (k == "KUBERNETES_SERVICE_HOST").then(|| "10.0.0.1".to_string());
        let e = parse("name = \"tm\"").connection(in_pod).unwrap_err();
        assert!(e.to_string().starts_with("in-cluster"), "{e}");
        // A key that belongs to another mode is an error, not silently ignored.
        let e = parse("auth = \"in-cluster\"\napi_url = \"http://x\"\nname = \"tm\"")
            .connection(no_env)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("`api_url` applies to auth = \"url\""),
            "{e}"
        );
        let e = parse("auth = \"url\"\nname = \"tm\"")
            .connection(no_env)
            .unwrap_err();
        assert!(e.to_string().contains("needs api_url"), "{e}");
        assert!(toml::from_str::<KubeWorkload>("auth = \"magic\"\nname = \"tm\"").is_err());
    }

    #[test]
    fn flink_workers_can_come_from_prometheus_with_the_flink_preset() {
        use crate::engine::prometheus::{Preset, Queries};
        let text = format!(
            "{OK}[jobs.flink.prometheus]\ncores_per_taskmanager = 2\n[jobs.flink.prometheus.queries]\nlag = \"sum(x)\"\n"
        );
        let c = RunConfig::parse(&text).unwrap();
        let p = c.jobs[0]
            .flink
            .as_ref()
            .unwrap()
            .prometheus
            .clone()
            .unwrap();
        assert_eq!(
            (
                p.url.as_str(),
                p.scrape_job.as_str(),
                p.cores_per_taskmanager
            ),
            ("http://127.0.0.1:9090", "flink", 2.0)
        );
        let q = p.queries.resolve(Preset::Flink);
        assert_eq!((q.lag.as_str(), q.cpu), ("sum(x)", Queries::flink().cpu));
        let typo = format!("{OK}[jobs.flink.prometheus]\nscrape = \"f\"\n");
        assert!(format!("{:#}", RunConfig::parse(&typo).unwrap_err()).contains("scrape"));
    }

    #[test]
    fn the_shipped_example_is_valid_and_its_paths_resolve() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/flink-kafka-local.toml");
        let c = RunConfig::load(&path).unwrap();
        let j = &c.jobs[0];
        assert!(j.policy.ends_with("target/policies/daedalus.wasm"));
        assert!(
            j.policy.starts_with(path.parent().unwrap()),
            "{}",
            j.policy.display()
        );
        let script = c.base_dir.join(
            &j.flink
                .as_ref()
                .unwrap()
                .taskmanager_start
                .as_ref()
                .unwrap()[1],
        );
        assert!(script.exists(), "{}", script.display());
        assert_eq!(
            j.flink.as_ref().unwrap().worker_vertex.as_deref(),
            Some("count")
        );
    }

    #[test]
    fn control_plane_sections_are_validated_and_errors_name_the_key() {
        let sim = r#"
[[jobs]]
name = "s"
policy = "p.wasm"
max_parallelism = 4
[jobs.simulated]
trace = "constant:rate=1000,duration=60"
"#;
        let c = RunConfig::parse(sim).unwrap();
        let s = c.jobs[0].simulated.as_ref().unwrap();
        assert_eq!((s.profile.as_str(), s.speedup, s.seed), ("flink", 1.0, 1));
        assert!(c.jobs[0].watch_policy && c.jobs[0].rollback_after == 3);
        let err = |text: String| format!("{:#}", RunConfig::parse(&text).unwrap_err());
        let both = format!("{sim}[jobs.flink]\nrest_url = \"http://x\"\njob_name = \"j\"\n");
        assert!(err(both).contains("exactly one of"));
        let fast = sim.replace("trace =", "speedup = 0.0\ntrace =");
        assert!(err(fast).contains("simulated.speedup"));
        let frozen =
            format!("{sim}[jobs.guardrails]\nfreeze = [{{ start = \"9\", end = \"10:00\" }}]\n");
        assert!(err(frozen).contains("guardrails"));
        let typo = format!("{sim}[jobs.guardrails]\nmax_step = 2\n");
        assert!(err(typo).contains("max_step"));
        let api = format!("[api]\nlisten = \"localhost\"\n{sim}");
        assert!(err(api).contains("api.listen"));
        let short = format!("[api]\ntoken = \"abc\"\n{sim}");
        assert!(err(short).contains("api.token"));
        let twins = sim.replace(
            "max_parallelism = 4",
            "max_parallelism = 4\nshadow = [{ name = \"a\", policy = \"x.wasm\" }, { name = \"a\", policy = \"y.wasm\" }]",
        );
        assert!(err(twins).contains("shadow[1].name"));
        let impostor = sim.replace(
            "max_parallelism = 4",
            "max_parallelism = 4\nshadow = [{ name = \"active\", policy = \"x.wasm\" }]",
        );
        assert!(err(impostor).contains("shadow[0].name: `active`"));
        let ks = r#"
[[jobs]]
name = "k"
policy = "p.wasm"
max_parallelism = 4
[jobs.kafka_streams]
bootstrap = "127.0.0.1:9092"
topic = "words"
partitions = 4
"#;
        assert!(err(ks.to_string()).contains("instance_command and workload"));
        let ks_ok = format!("{ks}instance_command = [\"run\"]\n");
        let c = RunConfig::parse(&ks_ok).unwrap();
        let k = c.jobs[0].kafka_streams.as_ref().unwrap();
        assert_eq!((k.scrape_job.as_str(), k.base_port), ("kstreams", 9400));
        assert!(err(ks_ok.replace("partitions = 4", "partitions = 0")).contains("partitions"));
        assert_eq!(k.application_id, None);
        let with_app = format!("{ks_ok}application_id = \"wc\"\n");
        let c = RunConfig::parse(&with_app).unwrap();
        assert_eq!(
            c.jobs[0]
                .kafka_streams
                .as_ref()
                .unwrap()
                .application_id
                .as_deref(),
            Some("wc")
        );
        assert!(err(with_app.replace("\"wc\"", "\"\"")).contains("application_id"));
    }

    #[test]
    fn errors_name_the_key() {
        let unknown = OK.replace(
            "max_parallelism = 4",
            "max_parallelism = 4\nmax_paralelism = 5",
        );
        let e = format!("{:#}", RunConfig::parse(&unknown).unwrap_err());
        assert!(e.contains("max_paralelism"), "{e}");
        let inverted = OK.replace("max_parallelism = 4", "max_parallelism = 0");
        let e = format!("{:#}", RunConfig::parse(&inverted).unwrap_err());
        assert!(e.contains("max_parallelism"), "{e}");
        let both = OK.replace("job_name =", "job_id = \"x\"\njob_name =");
        let e = format!("{:#}", RunConfig::parse(&both).unwrap_err());
        assert!(e.contains("job_id or job_name"), "{e}");
        let savepoint = OK.replace(
            "job_name = \"flink-wordcount\"",
            "job_name = \"wc\"\nrescale = \"savepoint\"",
        );
        let e = format!("{:#}", RunConfig::parse(&savepoint).unwrap_err());
        assert!(e.contains("flink.jar"), "{e}");
        let with_jar = savepoint.replace("rescale =", "jar = \"wc.jar\"\nrescale =");
        assert!(RunConfig::parse(&with_jar).is_ok());
        let pooled = with_jar.replace(
            "rescale =",
            "taskmanager_start = [\"true\"]\ntaskmanager_stop = [\"true\"]\nrescale =",
        );
        let e = format!("{:#}", RunConfig::parse(&pooled).unwrap_err());
        assert!(e.contains("starts no TaskManagers"), "{e}");
        let e = format!("{:#}", RunConfig::parse("tick_secs = \"ten\"").unwrap_err());
        assert!(e.contains("tick_secs"), "{e}");
        // Durations so large they would overflow the host's arithmetic are refused by key.
        for (change, key) in [
            ("tick_secs = 99999999999\n", "tick_secs"),
            ("history_secs = 99999999999\n", "history_secs"),
            (
                "[store]\npath = \"d.db\"\nretention_hours = 99999999999\n",
                "retention_hours",
            ),
            (
                "[store]\npath = \"d.db\"\nretention_hours = 0\n",
                "retention_hours",
            ),
        ] {
            let e = format!(
                "{:#}",
                RunConfig::parse(&format!("{change}{OK}")).unwrap_err()
            );
            assert!(e.contains(key), "{change}: {e}");
        }
        for (change, key) in [
            ("rescale_timeout_secs = 99999999999", "rescale_timeout_secs"),
            (
                "guardrails = { cooldown_secs = 99999999999 }",
                "cooldown_secs",
            ),
            (
                "guardrails = { scale_down_delay_secs = 99999999999 }",
                "scale_down_delay_secs",
            ),
        ] {
            let text = OK.replace(
                "max_parallelism = 4",
                &format!("max_parallelism = 4\n{change}"),
            );
            let e = format!("{:#}", RunConfig::parse(&text).unwrap_err());
            assert!(e.contains(key), "{change}: {e}");
        }
    }
}
