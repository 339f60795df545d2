use super::*;
use daedalus_policy_sdk::testing::{input, observation, operator, with_params};
use daedalus_policy_sdk::{Observation, OperatorSample};
use proptest::prelude::*;

/// source -> map (selectivity 2) -> sink, each instance of map handling `map_rate` records/s at full busy.
fn pipeline(at_s: u64, rate: f64, p: [u32; 3], busy: [f64; 3]) -> Observation {
    let mut o = observation(at_s * 1000, p[1]);
    o.input_records_per_sec = Some(rate);
    let mk = |id: &str, up: &[&str], par: u32, b: f64, rin: f64, rout: f64| OperatorSample {
        busy_ratio: Some(b),
        records_in_per_sec: Some(rin),
        records_out_per_sec: Some(rout),
        ..operator(id, up, par)
    };
    o.operators = vec![
        mk("source", &[], p[0], busy[0], rate, rate),
        mk("map", &["source"], p[1], busy[1], rate, 2.0 * rate),
        mk("sink", &["map"], p[2], busy[2], 2.0 * rate, 0.0),
    ];
    o
}

/// Rates measured at 1000 records/s while the input has grown to 4000 records/s.
fn overloaded(at_s: u64) -> Observation {
    let mut o = pipeline(at_s, 1000.0, [1, 1, 1], [0.25, 1.0, 0.5]);
    o.input_records_per_sec = Some(4000.0);
    o
}

fn targets(d: &Decision) -> Vec<u32> {
    match &d.action {
        Action::Operators(t) => t.iter().map(|t| t.parallelism).collect(),
        other => panic!("expected operator targets, got {other:?}"),
    }
}

#[test]
fn computes_optimal_parallelism_per_operator() {
    // Measured at 1000 records/s: map is fully busy on 1 instance, so one instance handles
    // 1000 records/s; the 4000 records/s input needs 4.
    let d = Ds2::decide(input(overloaded(100), 1, 64)).unwrap();
    // source: 1000/0.25 = 4000 per instance -> 1; map: 1000 per instance -> 4;
    // sink: needs 8000 (selectivity 2), true rate 2000/0.5 = 4000 per instance -> 2.
    assert_eq!(targets(&d), vec![1, 4, 2]);
    assert!(d.metric("true-rate-per-instance:map").unwrap() > 999.0);
}

/// Two sources feeding a join share the job's input (each emitted half of it): the join's
/// target input is the job's input, not twice it (each source was given the whole rate).
#[test]
fn several_sources_share_the_job_input() {
    let mut o = observation(100_000, 1);
    o.input_records_per_sec = Some(1000.0);
    let mk = |id: &str, up: &[&str], b: f64, rin: f64, rout: f64| OperatorSample {
        busy_ratio: Some(b),
        records_in_per_sec: Some(rin),
        records_out_per_sec: Some(rout),
        ..operator(id, up, 1)
    };
    o.operators = vec![
        mk("a", &[], 0.5, 500.0, 500.0),
        mk("b", &[], 0.5, 500.0, 500.0),
        mk("join", &["a", "b"], 1.0, 1000.0, 1000.0),
    ];
    let plans = model::plan(&Ds2Params::parse(&[]).unwrap(), &input(o, 1, 64)).unwrap();
    let join = plans.iter().find(|p| p.operator_id == "join").unwrap();
    assert_eq!(join.target_input, 1000.0);
    assert_eq!(join.target, 1);
}

#[test]
fn small_decreases_are_not_significant() {
    // map over-provisioned by one instance only: hold.
    let inp = input(pipeline(100, 1000.0, [1, 3, 1], [0.25, 0.6, 0.5]), 1, 64);
    assert_eq!(Ds2::decide(inp).unwrap().action, Action::Hold);
    // By three instances: scale down.
    let inp = input(pipeline(100, 1000.0, [1, 5, 1], [0.25, 0.4, 0.5]), 1, 64);
    assert_eq!(targets(&Ds2::decide(inp).unwrap()), vec![1, 2, 1]);
}

#[test]
fn warm_up_and_rescale_in_progress_hold() {
    let mut inp = input(overloaded(100), 1, 64);
    inp.rescale.last_finished_ms = Some(95_000);
    assert_eq!(Ds2::decide(inp.clone()).unwrap().action, Action::Hold);
    inp.rescale.last_finished_ms = None;
    inp.rescale.in_progress = true;
    assert_eq!(Ds2::decide(inp).unwrap().action, Action::Hold);
}

#[test]
fn activation_count_needs_consecutive_evaluations() {
    let inp = with_params(input(overloaded(100), 1, 64), &[("activation_count", "2")]);
    let first = Ds2::decide(inp.clone()).unwrap();
    assert_eq!(first.action, Action::Hold);
    let mut second = inp;
    second.state = first.state;
    assert!(matches!(
        Ds2::decide(second).unwrap().action,
        Action::Operators(_)
    ));
}

#[test]
fn bad_graphs_params_and_state_are_errors() {
    let mut o = pipeline(100, 1000.0, [1, 1, 1], [0.5, 0.5, 0.5]);
    o.operators[1].upstream = vec!["nowhere".into()];
    assert!(matches!(
        Ds2::decide(input(o, 1, 64)),
        Err(PolicyError::Internal(_))
    ));
    let mut o = pipeline(100, 1000.0, [1, 1, 1], [0.5, 0.5, 0.5]);
    o.operators[0].upstream = vec!["sink".into()];
    assert!(
        matches!(Ds2::decide(input(o, 1, 64)), Err(PolicyError::Internal(m)) if m.contains("cycle"))
    );
    let inp = with_params(
        input(pipeline(1, 1.0, [1, 1, 1], [0.5; 3]), 1, 64),
        &[("scaling_factor", "-1")],
    );
    assert!(matches!(
        Ds2::decide(inp),
        Err(PolicyError::InvalidParams(_))
    ));
    let mut inp = input(pipeline(1, 1.0, [1, 1, 1], [0.5; 3]), 1, 64);
    inp.state = Some(vec![1, 2, 3]);
    assert!(matches!(
        Ds2::decide(inp),
        Err(PolicyError::InvalidState(_))
    ));
}

#[test]
fn averages_over_the_policy_interval_and_skips_nan() {
    let mut inp = input(overloaded(100), 1, 64);
    let mut old = overloaded(95);
    old.operators[1].busy_ratio = Some(f64::NAN);
    old.input_records_per_sec = Some(f64::NAN);
    inp.history = vec![old];
    assert_eq!(targets(&Ds2::decide(inp).unwrap()), vec![1, 4, 2]);
}

proptest! {
    #[test]
    fn bounded_deterministic_and_monotone_in_load(
        rate in 1.0f64..1e6, extra in 0.0f64..1e6, p in 1u32..20, busy in 0.01f64..1.0,
        min in 1u32..4, span in 0u32..40, maxp in 0u32..30,
    ) {
        let max = min + span;
        let mut o = pipeline(100, rate, [p, p, p], [busy, busy, busy]);
        for op in &mut o.operators { op.max_parallelism = maxp; }
        let inp = input(o, min, max);
        let d = Ds2::decide(inp.clone()).unwrap();
        prop_assert_eq!(&d, &Ds2::decide(inp.clone()).unwrap());
        let plans = plan(&Ds2Params::parse(&[]).unwrap(), &inp).unwrap();
        for pl in &plans {
            prop_assert!(pl.target >= min && pl.target <= max);
            if maxp > 0 { prop_assert!(pl.target <= maxp.max(min)); }
        }
        let mut more = inp.clone();
        more.current.input_records_per_sec = Some(rate + extra);
        let more_plans = plan(&Ds2Params::parse(&[]).unwrap(), &more).unwrap();
        for (a, b) in plans.iter().zip(&more_plans) { prop_assert!(b.target >= a.target); }
    }
}
