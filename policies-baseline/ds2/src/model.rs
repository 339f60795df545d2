//! The DS2 parallelism model over the operator graph.

use crate::Ds2Params;
use daedalus_policy_sdk::history::mean_finite;
use daedalus_policy_sdk::{DecisionInput, OperatorSample, PolicyError};

/// DS2's plan for one operator.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorPlan {
    /// Operator id.
    pub operator_id: String,
    /// Parallelism now.
    pub current: u32,
    /// Planned parallelism, within the host bounds and the operator's max parallelism.
    pub target: u32,
    /// Rate the operator must sustain, records/s.
    pub target_input: f64,
    /// True processing rate of one instance, records/s; `None` when it cannot be measured (idle).
    pub true_rate_per_instance: Option<f64>,
}

/// Window averages of one operator's metrics.
struct Rates {
    busy: Option<f64>,
    rate_in: Option<f64>,
    rate_out: Option<f64>,
}

fn window_rates(input: &DecisionInput, id: &str, window_ms: u64) -> Rates {
    let samples: Vec<&OperatorSample> = input
        .window(window_ms)
        .filter_map(|o| o.operators.iter().find(|op| op.operator_id == id))
        .collect();
    Rates {
        busy: mean_finite(samples.iter().map(|s| s.busy_ratio)),
        rate_in: mean_finite(samples.iter().map(|s| s.records_in_per_sec)),
        rate_out: mean_finite(samples.iter().map(|s| s.records_out_per_sec)),
    }
}

/// Operators of `input.current` in topological order (Kahn), or an error on unknown ids or cycles.
fn topological(ops: &[OperatorSample]) -> Result<Vec<usize>, PolicyError> {
    let index = |id: &str| ops.iter().position(|o| o.operator_id == id);
    let mut indegree = vec![0usize; ops.len()];
    for (i, op) in ops.iter().enumerate() {
        for up in &op.upstream {
            index(up).ok_or_else(|| {
                PolicyError::Internal(format!(
                    "operator {} lists unknown upstream {up}",
                    op.operator_id
                ))
            })?;
            indegree[i] += 1;
        }
    }
    let mut order = Vec::with_capacity(ops.len());
    let mut ready: Vec<usize> = (0..ops.len()).filter(|i| indegree[*i] == 0).collect();
    while let Some(i) = ready.pop() {
        order.push(i);
        for (j, op) in ops.iter().enumerate() {
            for up in &op.upstream {
                if *up == ops[i].operator_id {
                    indegree[j] -= 1;
                    if indegree[j] == 0 {
                        ready.push(j);
                    }
                }
            }
        }
    }
    if order.len() != ops.len() {
        return Err(PolicyError::Internal("operator graph has a cycle".into()));
    }
    Ok(order)
}

/// Computes DS2's target parallelism for every operator of the current observation.
pub fn plan(params: &Ds2Params, input: &DecisionInput) -> Result<Vec<OperatorPlan>, PolicyError> {
    let ops = &input.current.operators;
    let order = topological(ops)?;
    let source_rate = mean_finite(
        input
            .window(params.interval_ms)
            .map(|o| o.input_records_per_sec),
    )
    .ok_or_else(|| PolicyError::InsufficientHistory("no job input rate".into()))?;
    // Several sources (a join, a union) share the job's input: each in proportion to what
    // it emitted over the window, evenly when that is not known.
    let sources: Vec<usize> = (0..ops.len())
        .filter(|i| ops[*i].upstream.is_empty())
        .collect();
    let emitted: Vec<Option<f64>> = sources
        .iter()
        .map(|i| window_rates(input, &ops[*i].operator_id, params.interval_ms).rate_out)
        .collect();
    let total: f64 = emitted.iter().flatten().sum();
    let source_share = |i: usize| -> f64 {
        let k = sources.iter().position(|s| *s == i);
        match k.and_then(|k| emitted[k]) {
            Some(out) if total > 0.0 && emitted.iter().all(Option::is_some) => out / total,
            _ => 1.0 / sources.len().max(1) as f64,
        }
    };
    let mut projected_out = vec![0.0f64; ops.len()];
    let mut plans: Vec<Option<OperatorPlan>> = vec![None; ops.len()];
    for i in order {
        let op = &ops[i];
        let is_source = op.upstream.is_empty();
        let target_input = if is_source {
            source_rate * source_share(i)
        } else {
            op.upstream
                .iter()
                .filter_map(|u| ops.iter().position(|o| o.operator_id == *u))
                .map(|u| projected_out[u])
                .sum()
        };
        let r = window_rates(input, &op.operator_id, params.interval_ms);
        let p = op.parallelism.max(1);
        let selectivity = match (r.rate_in, r.rate_out) {
            (Some(i), Some(o)) if i > 0.0 => o / i,
            _ => 1.0,
        };
        projected_out[i] = target_input * selectivity;
        let true_rate_per_instance = match (r.busy, r.rate_in) {
            (Some(b), Some(rin)) if b > 0.0 && rin > 0.0 => Some(rin / b.min(1.0) / f64::from(p)),
            _ => None,
        };
        let mut target = match true_rate_per_instance {
            Some(per) if !is_source || params.scale_sources => {
                let optimal = target_input / per * (1.0 + params.scaling_factor);
                let c = (optimal - 1e-9).ceil();
                if c >= f64::from(u32::MAX) {
                    u32::MAX
                } else {
                    (c as u32).max(1)
                }
            }
            _ => op.parallelism,
        };
        if op.max_parallelism > 0 {
            target = target.min(op.max_parallelism);
        }
        target = input.bounds.clamp(target);
        plans[i] = Some(OperatorPlan {
            operator_id: op.operator_id.clone(),
            current: op.parallelism,
            target,
            target_input,
            true_rate_per_instance,
        });
    }
    Ok(plans
        .into_iter()
        .map(|p| p.expect("every operator is visited once"))
        .collect())
}
