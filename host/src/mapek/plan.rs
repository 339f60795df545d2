//! Plan: ask the policy, and hold the job when the policy fails.

use crate::model::{Action, Decision, DecisionInput, PolicyInfo};
use crate::policy::PolicyError;

/// A scaling policy as the loop sees it.
///
/// Called by the loop once per cycle per job, with the job's current input. Implementations
/// are [`crate::policy::WasmPolicy`] (a sandboxed component) and test fakes; the loop cannot
/// tell them apart. Any `Err` makes the loop hold the job at its current parallelism
/// ([`plan`]) and count a policy error; the next cycle tries again.
#[async_trait::async_trait]
pub trait ScalingPolicy: Send + Sync {
    /// The policy's self-description.
    fn info(&self) -> PolicyInfo;
    /// Decides for one input. The returned decision has been validated against the input.
    async fn decide(&self, input: DecisionInput) -> Result<Decision, PolicyError>;
    /// Like [`ScalingPolicy::decide`], also reporting the fuel the call burned (0 when the
    /// policy is not metered).
    async fn decide_metered(&self, input: DecisionInput) -> (Result<Decision, PolicyError>, u64) {
        (self.decide(input).await, 0)
    }
    /// sha256 of the code deciding (empty when there is none, e.g. a test fake).
    fn digest(&self) -> String {
        String::new()
    }
}

/// The result of one Plan step.
#[derive(Debug)]
pub enum PlanOutcome {
    /// The policy decided; the decision is valid for the input.
    Decided(Decision),
    /// The policy failed; the job holds and keeps its previous state blob.
    Held {
        /// Why the policy failed.
        error: PolicyError,
        /// A hold decision carrying the previous state, so nothing is lost.
        decision: Decision,
    },
}

impl PlanOutcome {
    /// The decision to act on (a hold when the policy failed).
    pub fn decision(&self) -> &Decision {
        match self {
            PlanOutcome::Decided(d) | PlanOutcome::Held { decision: d, .. } => d,
        }
    }
}

/// Runs the policy on `input`; on any failure returns a hold that keeps the previous state.
pub async fn plan(policy: &dyn ScalingPolicy, input: DecisionInput) -> PlanOutcome {
    plan_metered(policy, input).await.0
}

/// Like [`plan`], also reporting the fuel the call burned.
pub async fn plan_metered(policy: &dyn ScalingPolicy, input: DecisionInput) -> (PlanOutcome, u64) {
    let previous_state = input.state.clone();
    let (result, fuel) = policy.decide_metered(input).await;
    let outcome = match result {
        Ok(d) => PlanOutcome::Decided(d),
        Err(error) => {
            tracing::warn!(error = %error, "Policy failed; holding the current parallelism.");
            let decision = Decision {
                action: Action::Hold,
                state: previous_state,
                ..Decision::hold(format!("policy failed, holding: {error}"))
            };
            PlanOutcome::Held { error, decision }
        }
    };
    (outcome, fuel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Bounds, GuestError, Observation};

    struct FakePolicy(Result<Decision, PolicyError>);

    #[async_trait::async_trait]
    impl ScalingPolicy for FakePolicy {
        fn info(&self) -> PolicyInfo {
            PolicyInfo {
                name: "fake".into(),
                version: "0".into(),
                description: String::new(),
                params: Vec::new(),
            }
        }
        async fn decide(&self, _input: DecisionInput) -> Result<Decision, PolicyError> {
            self.0.clone()
        }
    }

    fn input() -> DecisionInput {
        let mut i = DecisionInput::probe(
            "j",
            Observation::empty(0, 3),
            Bounds {
                min_parallelism: 1,
                max_parallelism: 5,
            },
        );
        i.state = Some(vec![1, 2, 3]);
        i
    }

    #[tokio::test]
    async fn a_failing_policy_holds_and_keeps_state() {
        let fake = FakePolicy(Err(PolicyError::Guest(GuestError::Internal("boom".into()))));
        let out = plan(&fake, input()).await;
        assert!(matches!(out, PlanOutcome::Held { .. }));
        assert_eq!(out.decision().action, Action::Hold);
        assert_eq!(out.decision().state, Some(vec![1, 2, 3]));
        assert_eq!(out.decision().job_parallelism(3), 3);
    }

    #[tokio::test]
    async fn a_working_policy_is_passed_through() {
        let d = Decision {
            action: Action::Job(4),
            ..Decision::hold("up")
        };
        let out = plan(&FakePolicy(Ok(d.clone())), input()).await;
        assert_eq!(out.decision(), &d);
    }
}
