//! Kubernetes: a workload's replica count through the `scale` subresource
//! (`/apis/apps/v1/namespaces/{ns}/{deployments|statefulsets}/{name}/scale`), the way
//! reactive-mode Flink (TaskManager Deployment) and Kafka Streams (instance Deployment or
//! StatefulSet) are scaled on Kubernetes.
//!
//! Reaching the API: [`KubeScale::connect`] takes a [`KubeConnection`] from
//! [`super::kubeconfig`] (in-cluster service account or a kubeconfig context: the cluster's
//! CA, a client certificate, a token, a token file or an exec credential plugin) and speaks
//! verified HTTPS; [`KubeScale::new`] takes a plain URL and an optional token (e.g.
//! `kubectl proxy` at `http://127.0.0.1:8001`, which adds the credentials itself).

use crate::engine::EngineError;
use crate::engine::flink::TaskManagerPool;
use crate::engine::kubeconfig::{Credentials, ExecPlugin, ExecToken, KubeConnection};
use crate::engine::tls::{TlsSettings, http_client};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

/// The `autoscaling/v1` Scale object (the fields used).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Scale {
    /// Desired replicas.
    pub spec: ScaleSpec,
    /// Observed replicas.
    #[serde(default)]
    pub status: ScaleStatus,
}

/// `spec` of a Scale.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ScaleSpec {
    /// Desired replicas (absent means 0).
    #[serde(default)]
    pub replicas: u32,
}

/// `status` of a Scale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ScaleStatus {
    /// Replicas the controller sees.
    #[serde(default)]
    pub replicas: u32,
}

/// A client for one workload's scale subresource.
#[derive(Debug, Clone)]
pub struct KubeScale {
    http: reqwest::Client,
    url: String,
    credentials: Credentials,
    /// The exec plugin's last token, reused until it expires or the API refuses it.
    exec_token: Arc<tokio::sync::Mutex<Option<ExecToken>>>,
    timeout: Duration,
}

/// How long before its expiry an exec plugin's token is renewed.
const EXEC_RENEW_EARLY_SECS: i64 = 30;
/// How long an exec plugin may take (cloud CLIs start slowly).
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);

impl KubeScale {
    /// A client for `kind` `name` in `namespace` on the API at `api_url` (plain HTTP, or HTTPS
    /// against the system's roots), with an optional bearer `token`.
    pub fn new(
        api_url: &str,
        namespace: &str,
        kind: WorkloadKind,
        name: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, EngineError> {
        let conn = KubeConnection {
            server: api_url.trim_end_matches('/').to_string(),
            tls: TlsSettings::default(),
            credentials: token.map_or(Credentials::None, Credentials::Token),
            namespace: None,
            source: api_url.to_string(),
        };
        Self::connect(&conn, namespace, kind, name, timeout)
    }

    /// A client for `kind` `name` in `namespace` through `conn`.
    pub fn connect(
        conn: &KubeConnection,
        namespace: &str,
        kind: WorkloadKind,
        name: &str,
        timeout: Duration,
    ) -> Result<Self, EngineError> {
        let plural = match kind {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
        };
        let http = http_client(&conn.tls, timeout)
            .map_err(|e| EngineError::Other(format!("{}: {e}", conn.source)))?;
        Ok(KubeScale {
            http,
            url: format!(
                "{}/apis/apps/v1/namespaces/{namespace}/{plural}/{name}/scale",
                conn.server.trim_end_matches('/')
            ),
            credentials: conn.credentials.clone(),
            exec_token: Arc::default(),
            timeout,
        })
    }

    /// The scale subresource's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Reads the token from a file (e.g. the service-account token) for [`KubeScale::new`].
    pub fn token_from_file(path: &std::path::Path) -> Result<String, EngineError> {
        std::fs::read_to_string(path)
            .map(|t| t.trim().to_string())
            .map_err(|e| EngineError::Other(format!("cannot read token {}: {e}", path.display())))
    }

    async fn run_exec(plugin: &ExecPlugin) -> Result<ExecToken, EngineError> {
        let cmd = plugin.command.display().to_string();
        let mut c = tokio::process::Command::new(&plugin.command);
        c.args(&plugin.args)
            .envs(plugin.env.iter().map(|(k, v)| (k, v)))
            .env("KUBERNETES_EXEC_INFO", plugin.exec_info())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(EXEC_TIMEOUT, c.output())
            .await
            .map_err(|_| {
                EngineError::Other(format!(
                    "credential plugin {cmd} did not finish in {} s",
                    EXEC_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| EngineError::Other(format!("credential plugin {cmd}: {e}")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(EngineError::Other(format!(
                "credential plugin {cmd} failed ({}): {}",
                out.status,
                stderr.trim().chars().take(300).collect::<String>()
            )));
        }
        plugin.parse_output(&String::from_utf8_lossy(&out.stdout))
    }

    async fn bearer(&self) -> Result<Option<String>, EngineError> {
        match &self.credentials {
            Credentials::None => Ok(None),
            Credentials::Token(t) => Ok(Some(t.clone())),
            Credentials::TokenFile(f) => Self::token_from_file(f).map(Some),
            Credentials::Exec(plugin) => {
                let mut cached = self.exec_token.lock().await;
                let now = (crate::clock::unix_now_ms() / 1000) as i64;
                let fresh = cached.as_ref().is_some_and(|t| {
                    t.expires_unix
                        .is_none_or(|exp| exp - EXEC_RENEW_EARLY_SECS > now)
                });
                if !fresh {
                    *cached = Some(Self::run_exec(plugin).await?);
                }
                Ok(cached.as_ref().map(|t| t.token.clone()))
            }
        }
    }

    async fn send(&self, make: impl Fn() -> reqwest::RequestBuilder) -> Result<Scale, EngineError> {
        match self.send_once(&make).await {
            // An exec plugin's token can be revoked before it says it expires: renew once.
            Err(EngineError::Status { status: 401, .. })
                if matches!(self.credentials, Credentials::Exec(_)) =>
            {
                *self.exec_token.lock().await = None;
                self.send_once(&make).await
            }
            other => other,
        }
    }

    async fn send_once(
        &self,
        make: &impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Scale, EngineError> {
        let mut r = make();
        if let Some(t) = self.bearer().await? {
            r = r.bearer_auth(t);
        }
        let resp = r
            .send()
            .await
            .map_err(|e| EngineError::transport(&self.url, self.timeout, &e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            // The API's Status object carries a readable message.
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
                .unwrap_or_else(|| text.chars().take(300).collect());
            return Err(EngineError::Status {
                endpoint: self.url.clone(),
                status,
                body: message,
            });
        }
        serde_json::from_str(&text).map_err(|e| EngineError::Malformed {
            endpoint: self.url.clone(),
            detail: e.to_string(),
        })
    }

    /// The current Scale.
    pub async fn get(&self) -> Result<Scale, EngineError> {
        self.send(|| self.http.get(&self.url)).await
    }

    /// Sets the desired replicas (a merge patch of `spec.replicas`).
    pub async fn set(&self, replicas: u32) -> Result<Scale, EngineError> {
        let body = serde_json::json!({ "spec": { "replicas": replicas } });
        let body = body.to_string();
        self.send(|| {
            self.http
                .patch(&self.url)
                .header("Content-Type", "application/merge-patch+json")
                .body(body.clone())
        })
        .await
    }
}

/// TaskManagers as the replicas of a Deployment (Flink's reactive mode / the paper's setup):
/// adding one raises `spec.replicas` by one; removing one lowers it, never below 1.
#[derive(Debug, Clone)]
pub struct KubernetesPool {
    scale: KubeScale,
}

impl KubernetesPool {
    /// A pool over the TaskManager workload behind `scale`.
    pub fn new(scale: KubeScale) -> Self {
        KubernetesPool { scale }
    }
}

#[async_trait::async_trait]
impl TaskManagerPool for KubernetesPool {
    async fn add(&self) -> Result<(), EngineError> {
        let now = self.scale.get().await?;
        self.scale
            .set(now.spec.replicas.saturating_add(1))
            .await
            .map(|_| ())
    }

    async fn remove(&self) -> Result<(), EngineError> {
        let now = self.scale.get().await?;
        if now.spec.replicas <= 1 {
            return Err(EngineError::Other(
                "the TaskManager Deployment is at 1 replica; not scaling it to 0".into(),
            ));
        }
        self.scale.set(now.spec.replicas - 1).await.map(|_| ())
    }
}

/// Instances as the replicas of a Deployment or StatefulSet (a Kafka Streams application on
/// Kubernetes): `apply` sets `spec.replicas`; a rescale is done once the controller reports the
/// replicas and, with a readiness collector, once the consumer group has settled on them.
pub struct KubernetesInstances {
    scale: KubeScale,
    max_instances: u32,
    desired: std::sync::Arc<std::sync::atomic::AtomicU32>,
    readiness: Option<super::prometheus::PrometheusCollector>,
}

impl KubernetesInstances {
    /// Instances behind `scale`, at most `max_instances` (the partitions).
    pub fn new(scale: KubeScale, max_instances: u32) -> Self {
        KubernetesInstances {
            scale,
            max_instances,
            desired: std::sync::Arc::default(),
            readiness: None,
        }
    }

    /// Reports a rescale done only when `collector` sees the group settled at the target.
    pub fn with_readiness(mut self, collector: super::prometheus::PrometheusCollector) -> Self {
        self.readiness = Some(collector);
        self
    }

    /// The replica count last requested or read (share it with the collector).
    pub fn desired(&self) -> std::sync::Arc<std::sync::atomic::AtomicU32> {
        self.desired.clone()
    }

    /// Reads the current desired replicas into [`KubernetesInstances::desired`].
    pub async fn refresh(&self) -> Result<u32, EngineError> {
        let s = self.scale.get().await?;
        self.desired
            .store(s.spec.replicas, std::sync::atomic::Ordering::SeqCst);
        Ok(s.spec.replicas)
    }
}

/// The collector of instances on Kubernetes, made to know the workload's replica count before
/// the host has rescaled it: until then the shared desired count is unknown (0) and the
/// collector would report "no instance runs" on every tick, so the job would never be decided
/// on. While it is 0, each collection first reads the replicas from the workload's scale. A
/// collection that finds the job not ready reads them again for the next one: the workload may
/// have been scaled from outside (`kubectl scale`, a GitOps sync of `replicas`) or a rescale's
/// answer lost, and a count that stayed stale would hold the job not ready for good.
pub struct ReadsReplicas {
    instances: KubernetesInstances,
    inner: Box<dyn super::Collector>,
}

impl ReadsReplicas {
    /// `inner`, reading the replicas of `instances`' workload while none is known.
    pub fn new(instances: &KubernetesInstances, inner: Box<dyn super::Collector>) -> Self {
        ReadsReplicas {
            instances: KubernetesInstances {
                scale: instances.scale.clone(),
                max_instances: instances.max_instances,
                desired: instances.desired.clone(),
                readiness: None,
            },
            inner,
        }
    }
}

#[async_trait::async_trait]
impl super::Collector for ReadsReplicas {
    async fn collect(&self, now_ms: u64) -> Result<super::Collected, EngineError> {
        if self
            .instances
            .desired
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
        {
            self.instances.refresh().await?;
        }
        let collected = self.inner.collect(now_ms).await?;
        if matches!(collected, super::Collected::NotReady { .. })
            && let Err(e) = self.instances.refresh().await
        {
            tracing::debug!(error = %e, "Cannot read the workload's replicas again.");
        }
        Ok(collected)
    }
}

#[async_trait::async_trait]
impl super::Actuator for KubernetesInstances {
    async fn apply(&self, target: &super::Target) -> Result<super::ApplyOutcome, EngineError> {
        let n = target.job;
        if n == 0 || n > self.max_instances {
            return Ok(super::ApplyOutcome::Rejected(format!(
                "{n} replicas: must be within 1..={} (the input partitions)",
                self.max_instances
            )));
        }
        let from = self.refresh().await?;
        if from == n {
            return Ok(super::ApplyOutcome::AlreadyAtTarget);
        }
        let s = self.scale.set(n).await?;
        self.desired
            .store(s.spec.replicas, std::sync::atomic::Ordering::SeqCst);
        Ok(super::ApplyOutcome::Applied(format!(
            "{from} -> {n} replicas"
        )))
    }

    async fn progress(&self, target: &super::Target) -> Result<super::Progress, EngineError> {
        let s = self.scale.get().await?;
        if s.status.replicas != target.job || s.spec.replicas != target.job {
            return Ok(super::Progress::Pending(format!(
                "{} of {} replicas",
                s.status.replicas, target.job
            )));
        }
        match &self.readiness {
            None => Ok(super::Progress::Done),
            Some(c) => {
                let v = c.view().await?;
                Ok(match c.unsettled(&v, target.job) {
                    None => super::Progress::Done,
                    Some(why) => super::Progress::Pending(why),
                })
            }
        }
    }
}
