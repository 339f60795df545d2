//! A policy built against the frozen WIT 0.1.0 (`wit/versions/0.1.0/`), as a third party
//! would have built it before 0.2.0: the host must still load it, adapt the input, and act on
//! its decisions.
//!
//! The rule: scale the job so that the mean worker CPU comes to `target_cpu` (default 0.7),
//! `ceil(parallelism * mean_cpu / target_cpu)`, clamped to the bounds. It logs one line per
//! decision, so the 0.1.0 `log` import is exercised too.
#![allow(
    missing_docs,
    reason = "a test guest: its only public items are the bindings wit-bindgen generates at the crate root"
)]

wit_bindgen::generate!({ world: "scaling-policy", path: "../../../wit/versions/0.1.0" });

use daedalus::autoscaler::types::{
    Action, Decision, DecisionInput, Explanation, Metric, ParamSpec, PolicyError, PolicyInfo,
};
use exports::daedalus::autoscaler::policy::Guest;

struct Policy;

impl Guest for Policy {
    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "cpu-rule-wit-0-1".into(),
            version: "0.1.0".into(),
            description: "Mean worker CPU to target_cpu; built against WIT 0.1.0.".into(),
            params: vec![ParamSpec {
                name: "target_cpu".into(),
                default_value: "0.7".into(),
                description: "mean worker CPU to aim for, a fraction in (0, 1]".into(),
            }],
        }
    }

    fn decide(input: DecisionInput) -> Result<Decision, PolicyError> {
        let mut target_cpu = 0.7;
        for (k, v) in &input.params {
            match k.as_str() {
                "target_cpu" => {
                    target_cpu = v
                        .parse::<f64>()
                        .ok()
                        .filter(|t| *t > 0.0 && *t <= 1.0)
                        .ok_or_else(|| {
                            PolicyError::InvalidParams(format!(
                                "target_cpu = `{v}`: expected (0, 1]"
                            ))
                        })?;
                }
                other => {
                    return Err(PolicyError::InvalidParams(format!(
                        "unknown parameter `{other}`"
                    )));
                }
            }
        }
        let cpus: Vec<f64> = input
            .current
            .workers
            .iter()
            .filter_map(|w| w.cpu_utilization)
            .filter(|c| c.is_finite())
            .collect();
        if cpus.is_empty() {
            return Err(PolicyError::InsufficientHistory("no worker CPU".into()));
        }
        let mean = cpus.iter().sum::<f64>() / cpus.len() as f64;
        let p = input.current.parallelism.max(1);
        let wanted = (f64::from(p) * mean / target_cpu).ceil().max(1.0) as u32;
        let b = input.bounds;
        let target = wanted.clamp(b.min_parallelism, b.max_parallelism.max(b.min_parallelism));
        log(
            LogLevel::Info,
            &format!("mean cpu {mean:.3}, target {target}"),
        );
        Ok(Decision {
            action: if target == input.current.parallelism {
                Action::Hold
            } else {
                Action::Job(target)
            },
            explanation: Explanation {
                reason: format!("mean CPU {mean:.2} against a target of {target_cpu:.2}"),
                metrics: vec![Metric {
                    name: "mean-cpu".into(),
                    value: mean,
                    unit: "ratio".into(),
                }],
            },
            state: input.state,
        })
    }
}

export!(Policy);
