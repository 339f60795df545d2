//! `static`: fixed provisioning. The copy-me template for policy authors (see README.md).
//!
//! Parameters: `parallelism` (workers, default: none = keep whatever the job runs at).

use daedalus_policy_sdk::params::Params;
use daedalus_policy_sdk::{Decision, DecisionInput, ParamSpec, Policy, PolicyError, PolicyInfo};

/// The static provisioning policy.
pub struct Static;

impl Policy for Static {
    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "static".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Runs the job at a fixed parallelism.".into(),
            params: vec![ParamSpec::new(
                "parallelism",
                "",
                "fixed parallelism, workers; empty keeps the current one",
            )],
        }
    }

    fn decide(input: DecisionInput) -> Result<Decision, PolicyError> {
        let params = Params::new(&input.params, &["parallelism"])?;
        let Some(fixed) = params.opt_u64_in("parallelism", 1, u64::from(u32::MAX))? else {
            return Ok(Decision::hold(
                "no fixed parallelism configured; keeping the current one",
            ));
        };
        let target = input.bounds.clamp(fixed as u32);
        if target == input.current.parallelism {
            return Ok(Decision::hold(format!(
                "already at the fixed parallelism {target}"
            )));
        }
        Ok(Decision::job(
            target,
            format!("fixed parallelism {fixed}, within bounds {target}"),
        )
        .with_metric("fixed-parallelism", fixed as f64, "workers"))
    }
}

#[cfg(target_arch = "wasm32")]
daedalus_policy_sdk::export_policy!(Static);

#[cfg(test)]
mod tests;
