//! [`WasmPolicy`]: a policy slot seen by the loop as a [`ScalingPolicy`].

use super::error::PolicyError;
use super::registry::PolicySlot;
use crate::mapek::ScalingPolicy;
use crate::model::{Decision, DecisionInput, PolicyInfo};
use std::sync::Arc;

/// A sandboxed component behind the loop's [`ScalingPolicy`] trait. Each call picks up the
/// slot's active policy, so hot swaps apply at the next call.
#[derive(Debug, Clone)]
pub struct WasmPolicy {
    slot: Arc<PolicySlot>,
}

impl WasmPolicy {
    /// Wraps a slot.
    pub fn new(slot: Arc<PolicySlot>) -> Self {
        WasmPolicy { slot }
    }

    /// The slot, to reload it.
    pub fn slot(&self) -> &Arc<PolicySlot> {
        &self.slot
    }
}

#[async_trait::async_trait]
impl ScalingPolicy for WasmPolicy {
    fn info(&self) -> PolicyInfo {
        self.slot.active().info().clone()
    }

    async fn decide(&self, input: DecisionInput) -> Result<Decision, PolicyError> {
        let policy = self.slot.active();
        let limits = self.slot.limits().clone();
        // Guest calls are CPU work and use sync WASI: keep them off the async workers.
        tokio::task::spawn_blocking(move || policy.decide_blocking(&input, &limits))
            .await
            .map_err(|e| PolicyError::Host(format!("policy call did not complete: {e}")))?
    }
}
