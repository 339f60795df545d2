//! `ds2`: DS2 (Kalavri et al., OSDI 2018), per-operator parallelism from true processing rates.
//!
//! Each operator's true processing rate is its input rate divided by its busy ratio (records it
//! could process per second of useful time). Visiting operators in topological order, the target
//! input of a source is the job's input rate and the target input of any other operator is the
//! projected output of its upstreams; the optimal parallelism is
//! `ceil(target_in / (true_rate / parallelism) * (1 + scaling_factor))`.
//! A reconfiguration happens only when it is *significant* (an operator grows, or shrinks by at
//! least 2), after `activation_count` consecutive such evaluations, and never during the warm-up
//! after a rescale.
//!
//! | parameter | default | meaning |
//! | --- | --- | --- |
//! | `policy_interval_secs` | 10 | rates are averaged over this window (a DS2 epoch) |
//! | `warm_up_secs` | 20 | no decision this long after a rescale (2 epochs) |
//! | `activation_count` | 1 | consecutive significant evaluations before acting |
//! | `scaling_factor` | 0.0 | over-provisioning fraction |
//! | `scale_sources` | true | rescale source operators too (original DS2 keeps them fixed; Flink's autoscaler scales them) |

mod model;
mod state;

use daedalus_policy_sdk::params::Params;
use daedalus_policy_sdk::{
    Action, Decision, DecisionInput, ParamSpec, Policy, PolicyError, PolicyInfo, ScaleTarget,
};

pub use model::{OperatorPlan, plan};

/// Validated DS2 parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Ds2Params {
    /// Averaging window, ms.
    pub interval_ms: u64,
    /// Warm-up after a rescale, ms.
    pub warm_up_ms: u64,
    /// Consecutive significant evaluations needed.
    pub activation_count: u32,
    /// Over-provisioning fraction.
    pub scaling_factor: f64,
    /// Whether sources are rescaled.
    pub scale_sources: bool,
}

impl Ds2Params {
    /// Parses and validates the parameters.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, PolicyError> {
        let p = Params::new(
            pairs,
            &[
                "policy_interval_secs",
                "warm_up_secs",
                "activation_count",
                "scaling_factor",
                "scale_sources",
            ],
        )?;
        Ok(Ds2Params {
            interval_ms: p.u64_in("policy_interval_secs", 10, 1, 3600)? * 1000,
            warm_up_ms: p.u64_in("warm_up_secs", 20, 0, 86_400)? * 1000,
            activation_count: p.u64_in("activation_count", 1, 1, 1000)? as u32,
            scaling_factor: p.f64_in("scaling_factor", 0.0, 0.0, 10.0)?,
            scale_sources: p.bool("scale_sources", true)?,
        })
    }
}

/// The DS2 policy.
pub struct Ds2;

impl Policy for Ds2 {
    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "ds2".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "DS2: per-operator parallelism from true processing rates.".into(),
            params: vec![
                ParamSpec::new("policy_interval_secs", "10", "rate averaging window, s"),
                ParamSpec::new(
                    "warm_up_secs",
                    "20",
                    "no decision this long after a rescale, s",
                ),
                ParamSpec::new(
                    "activation_count",
                    "1",
                    "consecutive significant evaluations before acting",
                ),
                ParamSpec::new("scaling_factor", "0.0", "over-provisioning fraction"),
                ParamSpec::new("scale_sources", "true", "rescale source operators too"),
            ],
        }
    }

    fn decide(input: DecisionInput) -> Result<Decision, PolicyError> {
        let params = Ds2Params::parse(&input.params)?;
        decide(&params, &input)
    }
}

/// The DS2 decision for validated parameters.
pub fn decide(params: &Ds2Params, input: &DecisionInput) -> Result<Decision, PolicyError> {
    let evaluations = state::decode(input.state.as_deref())?;
    if input.rescale.in_progress {
        return Ok(Decision::hold("rescale in progress").with_state(state::encode(0)));
    }
    if let Some(since) = input.ms_since_last_rescale()
        && since < params.warm_up_ms
    {
        return Ok(
            Decision::hold(format!("warming up: {since} ms since the last rescale"))
                .with_state(state::encode(0)),
        );
    }
    if input.current.operators.is_empty() {
        return Err(PolicyError::InsufficientHistory(
            "no operator metrics".into(),
        ));
    }
    let plans = plan(params, input)?;
    let significant = plans
        .iter()
        .any(|p| p.target > p.current || p.current > p.target + 1);
    let mut metrics = Vec::new();
    for p in &plans {
        metrics.push(daedalus_policy_sdk::Metric::new(
            &format!("target-input:{}", p.operator_id),
            p.target_input,
            "records/s",
        ));
        if let Some(r) = p.true_rate_per_instance {
            metrics.push(daedalus_policy_sdk::Metric::new(
                &format!("true-rate-per-instance:{}", p.operator_id),
                r,
                "records/s",
            ));
        }
    }
    let summary = plans
        .iter()
        .map(|p| format!("{} {}->{}", p.operator_id, p.current, p.target))
        .collect::<Vec<_>>()
        .join(", ");
    let mut decision = if !significant {
        Decision::hold(format!("no significant change ({summary})")).with_state(state::encode(0))
    } else if evaluations + 1 < params.activation_count {
        Decision::hold(format!(
            "significant change seen {} of {} times ({summary})",
            evaluations + 1,
            params.activation_count
        ))
        .with_state(state::encode(evaluations + 1))
    } else {
        let targets = plans
            .iter()
            .map(|p| ScaleTarget {
                operator_id: p.operator_id.clone(),
                parallelism: p.target,
            })
            .collect();
        let mut d = Decision::hold(format!("rescale: {summary}")).with_state(state::encode(0));
        d.action = Action::Operators(targets);
        d
    };
    decision.explanation.metrics = metrics;
    Ok(decision)
}

#[cfg(target_arch = "wasm32")]
daedalus_policy_sdk::export_policy!(Ds2);

#[cfg(test)]
mod tests;
