use super::*;
use daedalus_policy_sdk::testing::{input, observation, with_params, workers};
use daedalus_policy_sdk::{Action, Observation};
use proptest::prelude::*;

fn obs(at_s: u64, n: u32, cpu: f64) -> Observation {
    let mut o = observation(at_s * 1000, n);
    o.workers = workers(n, cpu, 100.0);
    o
}

fn target(d: &Decision, current: u32) -> u32 {
    match d.action {
        Action::Job(p) => p,
        Action::Hold => current,
        Action::Operators(_) => panic!("hpa never proposes per-operator targets"),
    }
}

#[test]
fn within_tolerance_holds() {
    let d = Hpa::decide(input(obs(1000, 4, 0.85), 1, 20)).unwrap();
    assert_eq!(d.action, Action::Hold);
}

#[test]
fn scales_up_by_the_utilization_ratio_limited_by_pods_and_percent() {
    // ratio 1.0/0.5 = 2 -> 8 workers; limits: 100% -> 8, +4 -> 8; max of both allows 8.
    let inp = with_params(
        input(obs(1000, 4, 1.0), 1, 20),
        &[("target_cpu_utilization", "0.5")],
    );
    assert_eq!(Hpa::decide(inp).unwrap().action, Action::Job(8));
    // From 2 workers at ratio 5: raw 10, limited to max(2*2, 2+4) = 6.
    let inp = with_params(
        input(obs(1000, 2, 1.0), 1, 20),
        &[("target_cpu_utilization", "0.2")],
    );
    assert_eq!(Hpa::decide(inp).unwrap().action, Action::Job(6));
    // With select=min the smaller limit (4) wins.
    let inp = with_params(
        input(obs(1000, 2, 1.0), 1, 20),
        &[
            ("target_cpu_utilization", "0.2"),
            ("scale_up_select", "min"),
        ],
    );
    assert_eq!(Hpa::decide(inp).unwrap().action, Action::Job(4));
}

#[test]
fn scale_down_waits_for_the_stabilization_window() {
    // 8 workers now at 20% (raw 2), but 200 s ago they were at 80% (raw 8): hold.
    let mut inp = input(obs(1000, 8, 0.2), 1, 20);
    inp.history = vec![obs(800, 8, 0.8)];
    assert_eq!(Hpa::decide(inp.clone()).unwrap().action, Action::Hold);
    // Once that sample is older than 300 s the scale-down happens.
    inp.history = vec![obs(600, 8, 0.8)];
    assert_eq!(Hpa::decide(inp).unwrap().action, Action::Job(2));
}

#[test]
fn rate_limit_counts_changes_already_made_in_the_period() {
    // Went 2 -> 6 five seconds ago; period start is 2, so +4 / +100% caps at 6: hold.
    let mut inp = input(obs(1000, 6, 1.0), 1, 50);
    inp.history = vec![obs(990, 2, 1.0), obs(995, 6, 1.0)];
    let inp = with_params(inp, &[("target_cpu_utilization", "0.1")]);
    assert_eq!(Hpa::decide(inp).unwrap().action, Action::Hold);
}

#[test]
fn missing_workers_damp_a_scale_up() {
    // 2 of 4 workers report 100% against 50%: unlisted ones count as 0% -> ratio 1 -> hold.
    let mut o = obs(1000, 4, 1.0);
    o.workers.truncate(2);
    let inp = with_params(input(o, 1, 20), &[("target_cpu_utilization", "0.5")]);
    assert_eq!(Hpa::decide(inp).unwrap().action, Action::Hold);
}

#[test]
fn no_cpu_is_insufficient_history_and_nan_is_skipped() {
    let inp = input(observation(1000, 4), 1, 20);
    assert!(matches!(
        Hpa::decide(inp),
        Err(PolicyError::InsufficientHistory(_))
    ));
    let mut o = obs(1000, 4, f64::NAN);
    o.workers[0].cpu_utilization = Some(0.85);
    // Three NaN workers count as missing; one at 0.85 is within tolerance.
    assert_eq!(Hpa::decide(input(o, 1, 20)).unwrap().action, Action::Hold);
}

#[test]
fn sync_period_is_kept_through_the_state_blob() {
    let inp = with_params(
        input(obs(1000, 4, 1.0), 1, 20),
        &[("target_cpu_utilization", "0.5")],
    );
    let first = Hpa::decide(inp.clone()).unwrap();
    let mut again = inp.clone();
    again.now_ms += 5_000;
    again.current.at_ms += 5_000;
    again.state = first.state.clone();
    assert_eq!(Hpa::decide(again.clone()).unwrap().action, Action::Hold);
    again.now_ms += 10_000;
    again.current.at_ms += 10_000;
    assert_eq!(Hpa::decide(again).unwrap().action, Action::Job(8));
    let mut bad = inp;
    bad.state = Some(b"ds21xxxx".to_vec());
    assert!(matches!(
        Hpa::decide(bad),
        Err(PolicyError::InvalidState(_))
    ));
}

#[test]
fn malformed_params_are_rejected_with_the_key() {
    for (k, v) in [
        ("target_cpu_utilization", "0"),
        ("target_cpu_utilization", "eighty"),
        ("tolerance", "-1"),
        ("scale_up_select", "sometimes"),
        ("unknown", "1"),
    ] {
        let inp = with_params(input(obs(1000, 4, 1.0), 1, 20), &[(k, v)]);
        match Hpa::decide(inp) {
            Err(PolicyError::InvalidParams(m)) => assert!(m.contains(k), "{m}"),
            other => panic!("{k}={v}: {other:?}"),
        }
    }
}

proptest! {
    #[test]
    fn bounded_deterministic_and_monotone_in_load(
        n in 1u32..30, cpu in 0.0f64..1.5, extra in 0.0f64..0.5,
        min in 1u32..5, span in 0u32..40, past_cpu in proptest::collection::vec(0.0f64..1.5, 0..10),
    ) {
        let max = min + span;
        let mut inp = input(obs(1000, n, cpu), min, max);
        inp.history = past_cpu.iter().enumerate().map(|(i, c)| obs(700 + 30 * i as u64, n, *c)).collect();
        let d = Hpa::decide(inp.clone()).unwrap();
        prop_assert_eq!(&d, &Hpa::decide(inp.clone()).unwrap());
        let t = target(&d, n);
        if t != n { prop_assert!(t >= min && t <= max); }
        let mut more = inp.clone();
        more.current.workers = workers(n, cpu + extra, 100.0);
        prop_assert!(target(&Hpa::decide(more).unwrap(), n) >= t);
    }
}
