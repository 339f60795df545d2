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
        self.decide_metered(input).await.0
    }

    async fn decide_metered(&self, input: DecisionInput) -> (Result<Decision, PolicyError>, u64) {
        let policy = self.slot.active();
        let limits = self.slot.limits().clone();
        // Guest calls are CPU work and use sync WASI: keep them off the async workers.
        match tokio::task::spawn_blocking(move || policy.call_blocking(&input, &limits)).await {
            Ok(out) => (out.result, out.fuel_used),
            Err(e) => (
                Err(PolicyError::Host(format!(
                    "policy call did not complete: {e}"
                ))),
                0,
            ),
        }
    }

    fn digest(&self) -> String {
        self.slot.active().digest().to_string()
    }
}
