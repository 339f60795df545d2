//! The component glue: types only, no decision logic.

use daedalus_policy_sdk::{Decision, DecisionInput, Policy, PolicyError, PolicyInfo};

struct Daedalus;

impl Policy for Daedalus {
    fn describe() -> PolicyInfo {
        crate::plan::describe()
    }

    fn decide(input: DecisionInput) -> Result<Decision, PolicyError> {
        let params = crate::Params::parse(&input.params)?;
        crate::decide(&params, &input)
    }
}

daedalus_policy_sdk::export_policy!(Daedalus);
