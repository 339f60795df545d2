//! The input of one decision.

use super::Observation;
use serde::{Deserialize, Serialize};

/// Parallelism bounds the host enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bounds {
    /// Smallest job-level parallelism, >= 1.
    pub min_parallelism: u32,
    /// Largest job-level parallelism, >= `min_parallelism`.
    pub max_parallelism: u32,
}

impl Bounds {
    /// Whether `p` lies within the bounds.
    pub fn contains(&self, p: u32) -> bool {
        (self.min_parallelism..=self.max_parallelism).contains(&p)
    }
}

/// Rescale state of a job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescaleStatus {
    /// True while a rescale is being applied.
    pub in_progress: bool,
    /// Start of the current rescale, ms since the epoch.
    pub started_ms: Option<u64>,
    /// End of the last completed rescale, ms since the epoch.
    pub last_finished_ms: Option<u64>,
    /// Rescales applied so far.
    pub count: u32,
}

/// What the host did with the policy's previous proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousOutcome {
    /// Job-level parallelism proposed.
    pub proposed_parallelism: u32,
    /// Job-level parallelism applied or kept.
    pub applied_parallelism: u32,
    /// Guardrails that changed the proposal.
    pub clamped_by: Vec<String>,
}

/// The input of one decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionInput {
    /// Job identifier.
    pub job_id: String,
    /// Current time, ms since the epoch.
    pub now_ms: u64,
    /// Latest observation.
    pub current: Observation,
    /// Earlier observations, oldest first.
    pub history: Vec<Observation>,
    /// Bounds the host enforces.
    pub bounds: Bounds,
    /// The operator's latency objective for the job, ms (WIT 0.2.0; not shown to 0.1.0 policies).
    #[serde(default)]
    pub latency_objective_ms: Option<u64>,
    /// Rescale status.
    pub rescale: RescaleStatus,
    /// Outcome of the previous proposal.
    pub previous: Option<PreviousOutcome>,
    /// Policy parameters, key/value strings.
    pub params: Vec<(String, String)>,
    /// Opaque state from this policy's previous decision.
    pub state: Option<Vec<u8>>,
}

impl DecisionInput {
    /// A minimal input around one observation, for probes and tests.
    pub fn probe(job_id: &str, current: Observation, bounds: Bounds) -> Self {
        DecisionInput {
            job_id: job_id.to_string(),
            now_ms: current.at_ms,
            current,
            history: Vec::new(),
            bounds,
            latency_objective_ms: None,
            rescale: RescaleStatus::default(),
            previous: None,
            params: Vec::new(),
            state: None,
        }
    }
}
