//! Scaling policies (`behavior.scaleUp/scaleDown.policies`): how far one period may move.

use crate::HpaParams;
use daedalus_policy_sdk::DecisionInput;

/// Which policy wins when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change (upstream default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// Rate-limit policies for one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct RateRules {
    /// Percent of the period's starting replicas, if set.
    pub percent: Option<u64>,
    /// Absolute number of workers, if set.
    pub pods: Option<u64>,
    /// Period over which changes are summed, ms.
    pub period_ms: u64,
    /// How policies combine.
    pub select: Select,
}

/// Limits `desired` by the rate-limit policies, given the scale events visible in the history.
pub(crate) fn limit(params: &HpaParams, input: &DecisionInput, desired: u32) -> u32 {
    let current = input.current.parallelism;
    if desired > current {
        let cap = up_limit(&params.up, input).max(i64::from(current));
        (i64::from(desired).min(cap)) as u32
    } else if desired < current {
        let floor = down_limit(&params.down, input)
            .min(i64::from(current))
            .max(0);
        (i64::from(desired).max(floor)) as u32
    } else {
        desired
    }
}

/// Replicas added and removed within `period_ms` before now, from parallelism changes in history.
fn changes_in_period(input: &DecisionInput, period_ms: u64) -> (i64, i64) {
    let since = input.now_ms.saturating_sub(period_ms);
    let (mut added, mut removed) = (0i64, 0i64);
    let obs: Vec<_> = input.observations().collect();
    for pair in obs.windows(2) {
        if pair[1].at_ms <= since {
            continue;
        }
        let delta = i64::from(pair[1].parallelism) - i64::from(pair[0].parallelism);
        if delta > 0 {
            added += delta;
        } else {
            removed -= delta;
        }
    }
    (added, removed)
}

fn up_limit(rules: &RateRules, input: &DecisionInput) -> i64 {
    let current = i64::from(input.current.parallelism);
    if rules.select == Select::Disabled {
        return current;
    }
    let (added, removed) = changes_in_period(input, rules.period_ms);
    let start = current - added + removed;
    let proposals = rules.pods.map(|v| start + v as i64).into_iter().chain(
        rules
            .percent
            .map(|v| (start as f64 * (1.0 + v as f64 / 100.0)).ceil() as i64),
    );
    match rules.select {
        Select::Min => proposals.min(),
        _ => proposals.max(),
    }
    .unwrap_or(i64::MAX)
}

fn down_limit(rules: &RateRules, input: &DecisionInput) -> i64 {
    let current = i64::from(input.current.parallelism);
    if rules.select == Select::Disabled {
        return current;
    }
    let (added, removed) = changes_in_period(input, rules.period_ms);
    let start = current - added + removed;
    let proposals = rules.pods.map(|v| start - v as i64).into_iter().chain(
        rules
            .percent
            .map(|v| (start as f64 * (1.0 - v as f64 / 100.0)) as i64),
    );
    match rules.select {
        // The smallest change is the highest floor.
        Select::Min => proposals.max(),
        _ => proposals.min(),
    }
    .unwrap_or(i64::MIN)
}
