use super::*;
use daedalus_policy_sdk::Action;
use daedalus_policy_sdk::testing::{input, observation, with_params};
use proptest::prelude::*;

#[test]
fn moves_to_the_fixed_parallelism_then_holds() {
    let inp = with_params(input(observation(0, 3), 1, 20), &[("parallelism", "12")]);
    assert_eq!(Static::decide(inp).unwrap().action, Action::Job(12));
    let inp = with_params(input(observation(0, 12), 1, 20), &[("parallelism", "12")]);
    assert_eq!(Static::decide(inp).unwrap().action, Action::Hold);
}

#[test]
fn holds_without_params_and_rejects_bad_ones() {
    assert_eq!(
        Static::decide(input(observation(0, 3), 1, 20))
            .unwrap()
            .action,
        Action::Hold
    );
    for bad in ["0", "-1", "x", "1.5"] {
        let inp = with_params(input(observation(0, 3), 1, 20), &[("parallelism", bad)]);
        assert!(
            matches!(Static::decide(inp), Err(PolicyError::InvalidParams(_))),
            "{bad}"
        );
    }
}

proptest! {
    #[test]
    fn target_always_within_bounds(fixed in 1u32..100, cur in 1u32..100, min in 1u32..10, span in 0u32..50) {
        let inp = with_params(input(observation(0, cur), min, min + span), &[("parallelism", &fixed.to_string())]);
        match Static::decide(inp).unwrap().action {
            Action::Job(p) => prop_assert!(p >= min && p <= min + span),
            Action::Hold => {}
            Action::Operators(_) => prop_assert!(false),
        }
    }
}
