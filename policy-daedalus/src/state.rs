//! The state blob: everything Daedalus learned, as versioned JSON.

use crate::anomaly::{DiffStats, Watch};
use crate::capacity::CapacityModel;
use crate::forecast::Forecaster;
use daedalus_policy_sdk::PolicyError;
use serde::{Deserialize, Serialize};

/// Format version of the blob.
pub const VERSION: u32 = 1;

/// Daedalus' knowledge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Format version.
    pub version: u32,
    /// Last full evaluation, ms.
    pub last_eval_ms: Option<u64>,
    /// Last rescale this policy decided, ms.
    pub last_rescale_ms: Option<u64>,
    /// Newest observation learned from, ms.
    pub last_seen_ms: u64,
    /// Capacity model.
    pub capacity: CapacityModel,
    /// Forecaster.
    pub forecaster: Forecaster,
    /// Statistics of input minus throughput.
    pub diff: DiffStats,
    /// The recovery being watched.
    pub watch: Option<Watch>,
    /// Adapted downtime estimates, s (`None` = the configured initial value).
    pub downtime_up_s: Option<f64>,
    /// See `downtime_up_s`.
    pub downtime_down_s: Option<f64>,
    /// The rescale proposed at the last decision, until the host says what it did with it.
    #[serde(default)]
    pub proposal: Option<Proposal>,
}

/// A proposed rescale, to undo its bookkeeping when the host did not apply it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The parallelism the job ran at.
    pub from: u32,
    /// The parallelism proposed.
    pub target: u32,
    /// `last_rescale_ms` before the proposal.
    pub last_rescale_before: Option<u64>,
}

impl State {
    /// Decodes a blob; no blob is a fresh start.
    pub fn decode(blob: Option<&[u8]>) -> Result<State, PolicyError> {
        let Some(b) = blob else {
            return Ok(State {
                version: VERSION,
                ..State::default()
            });
        };
        let s: State = serde_json::from_slice(b)
            .map_err(|e| PolicyError::InvalidState(format!("not a daedalus state blob: {e}")))?;
        if s.version != VERSION {
            return Err(PolicyError::InvalidState(format!(
                "state version {} (expected {VERSION})",
                s.version
            )));
        }
        Ok(s)
    }

    /// Encodes the blob.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain data serializes")
    }
}
