//! Engines: how the loop observes a running job (Monitor) and changes its parallelism
//! (Execute). Each engine connector sits behind the two small traits here, so the loop never
//! names Flink or Kafka.
//!
//! - [`flink`]: [`flink::FlinkRestCollector`] and [`flink::FlinkRescaleActuator`] over Flink's
//!   REST API (adaptive scheduler, in-place rescaling);
//! - [`kafka`]: the input topic through the Kafka protocol (end offsets) and a producer for
//!   `loadgen`;
//! - [`consumer_group`]: a consumer group's state, members and committed offsets through the
//!   Kafka protocol (the lag of a Kafka Streams application, and its rebalances);
//! - [`kubernetes`]: a workload's replicas through the `scale` subresource (the TaskManager
//!   pool on Kubernetes); [`kubeconfig`] finds the cluster (in-cluster or a kubeconfig);
//! - [`prometheus`]: PromQL queries, and a collector for instance-scaled engines (Kafka
//!   Streams through the JMX exporter);
//! - [`process_group`]: local instances of a command as an actuator;
//! - [`simulated`]: the simulator's job model as a live engine (`daedalus run` without one);
//! - [`tls`]: the rustls configuration every HTTP client is built with.

pub mod consumer_group;
mod error;
pub mod flink;
pub mod kafka;
pub mod kubeconfig;
pub mod kubernetes;
pub mod process_group;
pub mod prometheus;
pub mod simulated;
pub mod tls;

pub use error::EngineError;

use crate::model::Observation;
use std::collections::BTreeMap;

/// What a collector saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Collected {
    /// The job runs and its metrics are complete enough to decide on.
    Ready(Observation),
    /// The job is restarting, rescaling, or its metrics are incomplete: do not decide on it.
    /// Zeros from a restarting job must never drive a scale-down, so there is no observation.
    NotReady {
        /// Why, for the log.
        reason: String,
        /// The parallelism the job is at or heading to, when known.
        parallelism: Option<u32>,
    },
}

/// Monitor: one sample of a job.
#[async_trait::async_trait]
pub trait Collector: Send + Sync {
    /// Samples the job now (`now_ms`: the loop's clock, stamped on the observation).
    async fn collect(&self, now_ms: u64) -> Result<Collected, EngineError>;
}

/// A parallelism to apply: job-wide, optionally with per-operator overrides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// Parallelism of every operator not listed in `operators`.
    pub job: u32,
    /// Per-operator parallelism by operator id.
    pub operators: BTreeMap<String, u32>,
}

impl Target {
    /// The whole job at `p`.
    pub fn job(p: u32) -> Self {
        Target {
            job: p,
            operators: BTreeMap::new(),
        }
    }

    /// The parallelism this target gives operator `id`.
    pub fn for_operator(&self, id: &str) -> u32 {
        self.operators.get(id).copied().unwrap_or(self.job)
    }
}

/// What an actuator did with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The engine accepted the new requirements; the rescale is under way.
    Applied(String),
    /// The job already runs at the target; nothing was sent.
    AlreadyAtTarget,
    /// The engine cannot take a request now (restarting, scheduler cooldown); try again later.
    InProgress(String),
    /// The engine refused the request or cannot satisfy it.
    Rejected(String),
}

/// Where an applied rescale stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The job runs at the target parallelism.
    Done,
    /// Still restarting or waiting for resources.
    Pending(String),
}

/// Execute: changes a job's parallelism.
#[async_trait::async_trait]
pub trait Actuator: Send + Sync {
    /// Requests `target`. Idempotent: asking again for the current target sends nothing.
    async fn apply(&self, target: &Target) -> Result<ApplyOutcome, EngineError>;
    /// Checks whether the job has reached `target`.
    async fn progress(&self, target: &Target) -> Result<Progress, EngineError>;
    /// Brings back a job this actuator left down, e.g. stopped with a savepoint whose
    /// resubmit kept failing past the loop's rescale timeout. The loop calls it while the job
    /// is not ready and no rescale is pending. `Some` says what it did or why the job is still
    /// down; `None` (the default) that it left nothing down.
    async fn recover(&self) -> Result<Option<String>, EngineError> {
        Ok(None)
    }
    /// Called once when the host stops: an actuator that runs the job's instances itself
    /// stops them gracefully (the default does nothing; the job keeps running).
    async fn shutdown(&self) {}
}
