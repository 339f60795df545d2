//! What a policy answers, and how the host checks it.

use super::DecisionInput;
use serde::{Deserialize, Serialize};

/// A target for one operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleTarget {
    /// Operator identifier.
    pub operator_id: String,
    /// Desired parallelism, >= 1.
    pub parallelism: u32,
}

/// What the policy wants done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Keep the current parallelism.
    Hold,
    /// Run the whole job at this parallelism.
    Job(u32),
    /// Run each listed operator at its parallelism.
    Operators(Vec<ScaleTarget>),
}

/// A named number behind a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Name, kebab-case.
    pub name: String,
    /// Value in `unit`.
    pub value: f64,
    /// Unit.
    pub unit: String,
}

/// Why a policy decided what it did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// One human-readable sentence.
    pub reason: String,
    /// The numbers behind the decision.
    pub metrics: Vec<Metric>,
}

/// The largest explanation the host accepts, bytes of the reason plus every metric's name and
/// unit (and 8 per value): the host copies, stores and serves every explanation, so a policy
/// must not be able to grow the host's memory or database through it. A structured
/// explanation of a thousand candidates fits.
pub const MAX_EXPLANATION_BYTES: usize = 256 * 1024;

impl Explanation {
    /// Its size as counted against [`MAX_EXPLANATION_BYTES`].
    pub fn size_bytes(&self) -> usize {
        self.reason.len()
            + self
                .metrics
                .iter()
                .map(|m| m.name.len() + m.unit.len() + 8)
                .sum::<usize>()
    }
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Why.
    pub explanation: Explanation,
    /// State to hand back next time.
    pub state: Option<Vec<u8>>,
}

impl Decision {
    /// A hold decision with a reason, keeping no state.
    pub fn hold(reason: impl Into<String>) -> Self {
        Decision {
            action: Action::Hold,
            explanation: Explanation {
                reason: reason.into(),
                metrics: Vec::new(),
            },
            state: None,
        }
    }

    /// The metric named `name`, if the explanation has it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.explanation
            .metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
    }

    /// The job-level parallelism this decision leads to from `current` (per-operator targets
    /// count as their maximum, the number of slots the job needs).
    pub fn job_parallelism(&self, current: u32) -> u32 {
        match &self.action {
            Action::Hold => current,
            Action::Job(p) => *p,
            Action::Operators(t) => t.iter().map(|t| t.parallelism).max().unwrap_or(current),
        }
    }

    /// Checks the decision against what the host can apply for `input`; the error says why not.
    ///
    /// A target must be within the bounds (and for an operator, within its max parallelism
    /// when known), name an operator that exists, name each operator once, and the state blob
    /// must not exceed `max_state_bytes`.
    pub fn validate(&self, input: &DecisionInput, max_state_bytes: usize) -> Result<(), String> {
        let b = input.bounds;
        let in_bounds = |p: u32, what: &str| {
            if b.contains(p) {
                Ok(())
            } else {
                Err(format!(
                    "{what} parallelism {p} outside bounds [{}, {}]",
                    b.min_parallelism, b.max_parallelism
                ))
            }
        };
        match &self.action {
            Action::Hold => {}
            Action::Job(p) => in_bounds(*p, "job")?,
            Action::Operators(targets) => {
                if targets.is_empty() {
                    return Err("empty list of operator targets (use hold)".into());
                }
                for (i, t) in targets.iter().enumerate() {
                    let Some(op) = input
                        .current
                        .operators
                        .iter()
                        .find(|o| o.operator_id == t.operator_id)
                    else {
                        return Err(format!("unknown operator `{}`", t.operator_id));
                    };
                    if targets[..i].iter().any(|u| u.operator_id == t.operator_id) {
                        return Err(format!("operator `{}` targeted twice", t.operator_id));
                    }
                    in_bounds(t.parallelism, &format!("operator `{}`", t.operator_id))?;
                    if op.max_parallelism > 0 && t.parallelism > op.max_parallelism {
                        return Err(format!(
                            "operator `{}` parallelism {} above its max parallelism {}",
                            t.operator_id, t.parallelism, op.max_parallelism
                        ));
                    }
                }
            }
        }
        let explained = self.explanation.size_bytes();
        if explained > MAX_EXPLANATION_BYTES {
            return Err(format!(
                "explanation of {explained} bytes exceeds the limit of {MAX_EXPLANATION_BYTES}"
            ));
        }
        if let Some(s) = &self.state
            && s.len() > max_state_bytes
        {
            return Err(format!(
                "state blob of {} bytes exceeds the limit of {max_state_bytes}",
                s.len()
            ));
        }
        Ok(())
    }
}

/// A parameter a policy accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamSpec {
    /// Key.
    pub name: String,
    /// Default, as written in config.
    pub default_value: String,
    /// Meaning and unit.
    pub description: String,
}

/// Static description of a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInfo {
    /// Short name.
    pub name: String,
    /// Version.
    pub version: String,
    /// One-line description.
    pub description: String,
    /// Parameters.
    pub params: Vec<ParamSpec>,
}

/// An expected failure reported by the policy itself (the WIT `policy-error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum GuestError {
    /// Not enough observations yet.
    #[error("insufficient history: {0}")]
    InsufficientHistory(String),
    /// Bad parameters.
    #[error("invalid params: {0}")]
    InvalidParams(String),
    /// The state blob is not understood.
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// Anything else.
    #[error("internal: {0}")]
    Internal(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Bounds, Observation, OperatorSample};

    fn input() -> DecisionInput {
        let mut obs = Observation::empty(0, 2);
        obs.operators.push(OperatorSample {
            operator_id: "map".into(),
            upstream: vec![],
            parallelism: 2,
            max_parallelism: 8,
            busy_ratio: None,
            backpressure_ratio: None,
            records_in_per_sec: None,
            records_out_per_sec: None,
        });
        DecisionInput::probe(
            "j",
            obs,
            Bounds {
                min_parallelism: 1,
                max_parallelism: 10,
            },
        )
    }

    fn with(action: Action) -> Decision {
        Decision {
            action,
            ..Decision::hold("")
        }
    }

    #[test]
    fn validate_accepts_in_range_and_rejects_the_rest() {
        let inp = input();
        let mut chatty = with(Action::Hold);
        chatty.explanation.reason = "x".repeat(MAX_EXPLANATION_BYTES);
        assert!(
            chatty.validate(&inp, 10).is_ok(),
            "the limit itself is accepted"
        );
        chatty.explanation.metrics.push(Metric {
            name: "m".into(),
            value: 1.0,
            unit: String::new(),
        });
        assert!(
            chatty
                .validate(&inp, 10)
                .unwrap_err()
                .contains("explanation of")
        );
        assert!(with(Action::Job(10)).validate(&inp, 10).is_ok());
        assert!(
            with(Action::Job(0))
                .validate(&inp, 10)
                .unwrap_err()
                .contains("outside bounds")
        );
        assert!(with(Action::Job(11)).validate(&inp, 10).is_err());
        let op = |id: &str, p| ScaleTarget {
            operator_id: id.into(),
            parallelism: p,
        };
        assert!(
            with(Action::Operators(vec![op("map", 8)]))
                .validate(&inp, 10)
                .is_ok()
        );
        assert!(
            with(Action::Operators(vec![op("map", 9)]))
                .validate(&inp, 10)
                .unwrap_err()
                .contains("max parallelism")
        );
        assert!(
            with(Action::Operators(vec![op("nope", 1)]))
                .validate(&inp, 10)
                .unwrap_err()
                .contains("unknown")
        );
        assert!(
            with(Action::Operators(vec![op("map", 1), op("map", 2)]))
                .validate(&inp, 10)
                .is_err()
        );
        assert!(with(Action::Operators(vec![])).validate(&inp, 10).is_err());
        let mut big = Decision::hold("");
        big.state = Some(vec![0; 11]);
        assert!(big.validate(&inp, 10).unwrap_err().contains("state blob"));
    }
}
