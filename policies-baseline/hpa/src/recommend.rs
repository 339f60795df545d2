//! The controller's replica calculation for a resource metric (`GetResourceReplicas`).

use crate::HpaParams;
use daedalus_policy_sdk::Observation;

/// The HPA's raw recommendation for one observation, or `None` when no worker reports CPU.
///
/// Workers without a finite CPU sample, and workers the job runs but did not report, are
/// "missing": they count as 100% of the target when scaling down and 0% when scaling up, and a
/// recommendation that flips direction because of them is dropped, as upstream does.
pub fn raw_recommendation(params: &HpaParams, obs: &Observation) -> Option<u32> {
    let current = obs.parallelism;
    let ready: Vec<f64> = obs
        .workers
        .iter()
        .filter_map(|w| w.cpu_utilization)
        .filter(|c| c.is_finite() && *c >= 0.0)
        .collect();
    if ready.is_empty() {
        return None;
    }
    let listed_missing = obs.workers.len() - ready.len();
    let unlisted = (current as usize).saturating_sub(obs.workers.len());
    let missing = listed_missing + unlisted;
    let target_percent = params.target * 100.0;
    // Upstream works in integer percent of the request, truncated.
    let util = (100.0 * ready.iter().sum::<f64>() / ready.len() as f64).trunc();
    let ratio = util / target_percent;
    if missing == 0 {
        if (1.0 - ratio).abs() <= params.tolerance {
            return Some(current);
        }
        return Some(ceil_u32(ratio * ready.len() as f64));
    }
    let fill = if ratio < 1.0 {
        100.0
    } else if ratio > 1.0 {
        0.0
    } else {
        util
    };
    let n = (ready.len() + missing) as f64;
    let new_util = ((util * ready.len() as f64) + fill * missing as f64) / n;
    let new_ratio = new_util / target_percent;
    if (1.0 - new_ratio).abs() <= params.tolerance
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Some(current);
    }
    let replicas = ceil_u32(new_ratio * n);
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Some(current);
    }
    Some(replicas)
}

fn ceil_u32(x: f64) -> u32 {
    // Guard against 2.0000000001 from float noise turning into 3.
    let r = (x - 1e-9).ceil();
    if r <= 0.0 {
        0
    } else if r >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        r as u32
    }
}
