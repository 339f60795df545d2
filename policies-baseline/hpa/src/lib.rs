//! `hpa`: the Kubernetes Horizontal Pod Autoscaler rule on worker CPU utilization.
//!
//! Follows the upstream controller (`pkg/controller/podautoscaler`): the utilization ratio to the
//! target with a tolerance, missing-metric handling, stabilization windows and rate-limiting
//! policies, then the host bounds. It is stateless apart from the sync period: stabilization and
//! rate limits are recomputed from the host-owned history, so a hot-swapped HPA is warm at once.
//!
//! | parameter | default | meaning |
//! | --- | --- | --- |
//! | `target_cpu_utilization` | 0.8 | target mean CPU utilization, fraction of the worker's CPU |
//! | `tolerance` | 0.1 | no change while `|1 - ratio|` is within it |
//! | `sync_period_secs` | 15 | evaluate at most this often (the controller's sync period) |
//! | `scale_up_stabilization_secs` | 0 | scale up to the *minimum* recommendation of this window |
//! | `scale_down_stabilization_secs` | 300 | scale down to the *maximum* recommendation of this window |
//! | `scale_up_percent` / `scale_up_pods` | 100 / 4 | scale-up rate-limit policies per period |
//! | `scale_up_period_secs` | 15 | period of the scale-up policies |
//! | `scale_up_select` | `max` | `max`, `min` or `disabled` |
//! | `scale_down_percent` / `scale_down_pods` | 100 / none | scale-down rate-limit policies per period |
//! | `scale_down_period_secs` | 15 | period of the scale-down policies |
//! | `scale_down_select` | `max` | `max`, `min` or `disabled` |

mod rate_limit;
mod recommend;
mod state;

use daedalus_policy_sdk::params::Params;
use daedalus_policy_sdk::{Decision, DecisionInput, ParamSpec, Policy, PolicyError, PolicyInfo};

pub use rate_limit::{RateRules, Select};
pub use recommend::raw_recommendation;

const KNOWN: &[&str] = &[
    "target_cpu_utilization",
    "tolerance",
    "sync_period_secs",
    "scale_up_stabilization_secs",
    "scale_down_stabilization_secs",
    "scale_up_percent",
    "scale_up_pods",
    "scale_up_period_secs",
    "scale_up_select",
    "scale_down_percent",
    "scale_down_pods",
    "scale_down_period_secs",
    "scale_down_select",
];

/// Validated HPA parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct HpaParams {
    /// Target utilization, fraction.
    pub target: f64,
    /// Tolerance around ratio 1.
    pub tolerance: f64,
    /// Minimum time between evaluations, ms.
    pub sync_period_ms: u64,
    /// Scale-up stabilization window, ms.
    pub up_window_ms: u64,
    /// Scale-down stabilization window, ms.
    pub down_window_ms: u64,
    /// Scale-up rate limits.
    pub up: RateRules,
    /// Scale-down rate limits.
    pub down: RateRules,
}

impl HpaParams {
    /// Parses and validates the parameters.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, PolicyError> {
        let p = Params::new(pairs, KNOWN)?;
        let secs = |key, default| p.u64_in(key, default, 0, 86_400).map(|s| s * 1000);
        let select = |key| -> Result<Select, PolicyError> {
            Ok(match p.choice(key, "max", &["max", "min", "disabled"])? {
                "min" => Select::Min,
                "disabled" => Select::Disabled,
                _ => Select::Max,
            })
        };
        Ok(HpaParams {
            target: p.f64_in("target_cpu_utilization", 0.8, 0.01, 1.0)?,
            tolerance: p.f64_in("tolerance", 0.1, 0.0, 0.99)?,
            sync_period_ms: secs("sync_period_secs", 15)?,
            up_window_ms: secs("scale_up_stabilization_secs", 0)?,
            down_window_ms: secs("scale_down_stabilization_secs", 300)?,
            up: RateRules {
                percent: p.opt_u64_in("scale_up_percent", 1, 10_000)?.or(Some(100)),
                pods: p.opt_u64_in("scale_up_pods", 1, 10_000)?.or(Some(4)),
                period_ms: secs("scale_up_period_secs", 15)?,
                select: select("scale_up_select")?,
            },
            down: RateRules {
                percent: p.opt_u64_in("scale_down_percent", 1, 100)?.or(Some(100)),
                pods: p.opt_u64_in("scale_down_pods", 1, 10_000)?,
                period_ms: secs("scale_down_period_secs", 15)?,
                select: select("scale_down_select")?,
            },
        })
    }
}

/// The HPA policy.
pub struct Hpa;

impl Policy for Hpa {
    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hpa".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Kubernetes HPA rule on mean worker CPU utilization.".into(),
            params: vec![
                ParamSpec::new(
                    "target_cpu_utilization",
                    "0.8",
                    "target mean CPU utilization, fraction",
                ),
                ParamSpec::new(
                    "tolerance",
                    "0.1",
                    "no change while |1 - ratio| <= tolerance",
                ),
                ParamSpec::new(
                    "sync_period_secs",
                    "15",
                    "minimum seconds between evaluations",
                ),
                ParamSpec::new(
                    "scale_up_stabilization_secs",
                    "0",
                    "scale-up stabilization window, s",
                ),
                ParamSpec::new(
                    "scale_down_stabilization_secs",
                    "300",
                    "scale-down stabilization window, s",
                ),
                ParamSpec::new(
                    "scale_up_percent",
                    "100",
                    "scale-up policy: percent per period",
                ),
                ParamSpec::new("scale_up_pods", "4", "scale-up policy: workers per period"),
                ParamSpec::new("scale_up_period_secs", "15", "scale-up policy period, s"),
                ParamSpec::new("scale_up_select", "max", "max | min | disabled"),
                ParamSpec::new(
                    "scale_down_percent",
                    "100",
                    "scale-down policy: percent per period",
                ),
                ParamSpec::new(
                    "scale_down_pods",
                    "",
                    "scale-down policy: workers per period (off)",
                ),
                ParamSpec::new(
                    "scale_down_period_secs",
                    "15",
                    "scale-down policy period, s",
                ),
                ParamSpec::new("scale_down_select", "max", "max | min | disabled"),
            ],
        }
    }

    fn decide(input: DecisionInput) -> Result<Decision, PolicyError> {
        let params = HpaParams::parse(&input.params)?;
        decide(&params, &input)
    }
}

/// The HPA decision for validated parameters.
pub fn decide(params: &HpaParams, input: &DecisionInput) -> Result<Decision, PolicyError> {
    let last_eval = state::decode(input.state.as_deref())?;
    if let Some(t) = last_eval
        && input.now_ms < t.saturating_add(params.sync_period_ms)
        && input.now_ms >= t
    {
        return Ok(Decision::hold("waiting for the next sync period").with_state(state::encode(t)));
    }
    let new_state = state::encode(input.now_ms);
    if input.rescale.in_progress {
        return Ok(Decision::hold("rescale in progress").with_state(new_state));
    }
    let current = input.current.parallelism;
    let Some(raw) = raw_recommendation(params, &input.current) else {
        return Err(PolicyError::InsufficientHistory(
            "no worker reports a CPU utilization".into(),
        ));
    };
    // Stabilization: recommendations of every observation in each window (the current included).
    let recs = |window_ms: u64| {
        input
            .window(window_ms)
            .filter_map(|o| raw_recommendation(params, o))
            .chain(std::iter::once(raw))
    };
    let up = recs(params.up_window_ms).min().unwrap_or(raw);
    let down = recs(params.down_window_ms).max().unwrap_or(raw);
    let mut stabilized = current;
    if stabilized < up {
        stabilized = up;
    }
    if stabilized > down {
        stabilized = down;
    }
    let limited = rate_limit::limit(params, input, stabilized);
    let target = input.bounds.clamp(limited);
    let cpu = daedalus_policy_sdk::history::mean_finite(
        input.current.workers.iter().map(|w| w.cpu_utilization),
    )
    .unwrap_or(f64::NAN);
    let decision = if target == current {
        Decision::hold(format!(
            "utilization {cpu:.2} against target {:.2}: keep {current}",
            params.target
        ))
    } else {
        Decision::job(
            target,
            format!(
                "utilization {cpu:.2} against target {:.2}: {current} -> {target}",
                params.target
            ),
        )
    };
    Ok(decision
        .with_metric("cpu-utilization", cpu, "ratio")
        .with_metric("raw-recommendation", f64::from(raw), "workers")
        .with_metric(
            "stabilized-recommendation",
            f64::from(stabilized),
            "workers",
        )
        .with_state(new_state))
}

#[cfg(target_arch = "wasm32")]
daedalus_policy_sdk::export_policy!(Hpa);

#[cfg(test)]
mod tests;
