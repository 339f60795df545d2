//! Per-policy limits, applied to every call.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Limits on one policy call. Every call gets a fresh store with all of them set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyLimits {
    /// Fuel per call (roughly wasm instructions). Deterministic: the same input burns the same
    /// fuel, so replays reproduce limit hits. Default 2e9: a Rust baseline uses ~1e5 per call.
    pub fuel: u64,
    /// Wall-clock backstop per call, milliseconds (epoch interruption). Default 2000.
    pub deadline_ms: u64,
    /// Linear memory cap per call, MiB, over all of the component's memories together (at most
    /// 64 memories). Default 128.
    pub memory_mib: u64,
    /// Largest state blob a policy may return, bytes. Default 1 MiB.
    pub max_state_bytes: usize,
    /// Log lines a policy may write per call before it is trapped. Default 100.
    pub max_log_lines: u32,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits {
            fuel: 2_000_000_000,
            deadline_ms: 2_000,
            memory_mib: 128,
            max_state_bytes: 1 << 20,
            max_log_lines: 100,
        }
    }
}

impl PolicyLimits {
    /// The deadline as a duration.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(self.memory_mib.saturating_mul(1 << 20)).unwrap_or(usize::MAX)
    }
}
