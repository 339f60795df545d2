//! Each baseline, loaded as a component, decides exactly as its native twin on the same input.

use daedalus_host::model::{Decision, DecisionInput};
use daedalus_host::policy::PolicyLimits;
use daedalus_policy_sdk::Policy;
use daedalus_tests::{engine, input, policy_path, to_sdk, with_params};
use proptest::prelude::*;

type Outcome = Result<serde_json::Value, serde_json::Value>;

fn json(v: impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(v).expect("serializable")
}

/// Decisions and expected errors, as JSON of the WIT shape (host and SDK types agree on it).
fn native<P: Policy>(input: &DecisionInput) -> Outcome {
    P::decide(to_sdk(input)).map(json).map_err(json)
}

fn wasm(name: &str, input: &DecisionInput) -> Outcome {
    let policy = engine()
        .load_file(&policy_path(name), &PolicyLimits::default(), None)
        .expect("the baseline loads");
    outcome(
        name,
        &policy.decide_blocking(input, &PolicyLimits::default()),
    )
}

/// A component's answer as JSON: its decision or its own error; a failure of the host panics.
fn outcome(name: &str, r: &Result<Decision, daedalus_host::policy::PolicyError>) -> Outcome {
    match r {
        Ok(d) => Ok(json(d)),
        Err(daedalus_host::policy::PolicyError::Guest(g)) => Err(json(g)),
        Err(other) => panic!("{name} failed in the host: {other}"),
    }
}

fn same(name: &str, input: &DecisionInput) -> Result<(), TestCaseError> {
    let native = match name {
        "static" => native::<policy_static::Static>(input),
        "hpa" => native::<policy_hpa::Hpa>(input),
        "ds2" => native::<policy_ds2::Ds2>(input),
        "daedalus" => native::<policy_daedalus::Daedalus>(input),
        other => panic!("unknown baseline {other}"),
    };
    prop_assert_eq!(native, wasm(name, input), "{} diverged", name);
    Ok(())
}

fn load_shape() -> impl Strategy<Value = DecisionInput> {
    (
        1u32..24,
        proptest::collection::vec((0.0f64..50_000.0, 0.0f64..1.2), 1..40),
        1u32..4,
        0u32..30,
        any::<bool>(),
    )
        .prop_map(|(p, samples, min, span, in_progress)| {
            let mut i = input(10_000, p, &samples, (min, min + span));
            i.rescale.in_progress = in_progress;
            i
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn hpa_component_matches_native(inp in load_shape(), target in 0.3f64..0.95) {
        same("hpa", &with_params(inp, &[("target_cpu_utilization", &format!("{target:.2}"))]))?;
    }

    #[test]
    fn ds2_component_matches_native(inp in load_shape(), factor in 0.0f64..0.5) {
        same("ds2", &with_params(inp, &[("scaling_factor", &format!("{factor:.2}"))]))?;
    }

    #[test]
    fn daedalus_component_matches_native(inp in load_shape(), interval in 1u32..120) {
        same("daedalus", &with_params(inp, &[("decision_interval_secs", &interval.to_string())]))?;
    }

    #[test]
    fn static_component_matches_native(inp in load_shape(), fixed in 1u32..40) {
        same("static", &with_params(inp, &[("parallelism", &fixed.to_string())]))?;
    }
}

#[test]
fn errors_match_too() {
    let bad = with_params(
        input(100, 4, &[(1000.0, 0.5)], (1, 10)),
        &[("nonsense", "1")],
    );
    for name in ["static", "hpa", "ds2", "daedalus"] {
        same(name, &bad).unwrap();
        assert!(wasm(name, &bad).unwrap_err().get("InvalidParams").is_some());
    }
}

#[test]
fn describe_lists_documented_params() {
    for (name, key) in [
        ("static", "parallelism"),
        ("hpa", "target_cpu_utilization"),
        ("ds2", "scaling_factor"),
    ] {
        let p = engine()
            .load_file(&policy_path(name), &PolicyLimits::default(), None)
            .unwrap();
        assert_eq!(p.info().name, name);
        assert!(
            p.info().params.iter().any(|s| s.name == key),
            "{name} documents {key}"
        );
    }
}

#[test]
fn a_baseline_decision_is_deterministic_down_to_the_fuel() {
    let p = engine()
        .load_file(&policy_path("ds2"), &PolicyLimits::default(), None)
        .unwrap();
    let inp = input(
        100,
        4,
        &[(4000.0, 0.9), (5000.0, 0.95), (6000.0, 1.0)],
        (1, 32),
    );
    let a = p.call_blocking(&inp, &PolicyLimits::default());
    let b = p.call_blocking(&inp, &PolicyLimits::default());
    assert_eq!(a.result.unwrap(), b.result.unwrap());
    assert_eq!(a.fuel_used, b.fuel_used);
    assert!(a.fuel_used > 0);
}

/// A run of Daedalus decisions, each fed the previous state blob, as the host does: the
/// component and the native library stay identical through the whole learned state.
#[test]
fn daedalus_twin_through_a_stateful_run() {
    let p = engine()
        .load_file(&policy_path("daedalus"), &PolicyLimits::default(), None)
        .unwrap();
    let mut state: Option<Vec<u8>> = None;
    let mut max_fuel = 0;
    for step in 0..40u64 {
        let rate = 20_000.0 + 15_000.0 * ((step as f64) / 6.0).sin();
        let samples: Vec<(f64, f64)> = (0..30)
            .map(|k| (rate + 50.0 * k as f64, (rate / 40_000.0).min(1.0)))
            .collect();
        let mut inp = input(10_000 + 60 * step, 18, &samples, (1, 24));
        inp.state = state.clone();
        same("daedalus", &inp).unwrap();
        let out = p.call_blocking(&inp, &PolicyLimits::default());
        max_fuel = max_fuel.max(out.fuel_used);
        state = out.result.unwrap().state;
    }
    assert!(state.is_some());
    // A decision over a 30-sample history with 18 workers, ARIMA selection included, fits the
    // default budget many times over.
    assert!(
        max_fuel < PolicyLimits::default().fuel / 20,
        "fuel {max_fuel}"
    );
}

/// What a full Daedalus decision costs: 300 s of 1-s history with 18 workers, fresh state (so
/// the ARIMA order is selected in this call).
#[test]
fn daedalus_decision_fits_its_fuel_budget_on_a_full_window() {
    let p = engine()
        .load_file(&policy_path("daedalus"), &PolicyLimits::default(), None)
        .unwrap();
    let samples: Vec<(f64, f64)> = (0..300)
        .map(|k| (30_000.0 + 40.0 * k as f64, 0.7))
        .collect();
    let mut inp = input(10_000, 18, &samples, (1, 24));
    for (i, o) in inp.history.iter_mut().enumerate() {
        o.at_ms = 10_000_000 - (300 - i as u64) * 1000; // 1-s spacing
    }
    let out = p.call_blocking(&inp, &PolicyLimits::default());
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert!(
        out.fuel_used < PolicyLimits::default().fuel / 10,
        "fuel {}",
        out.fuel_used
    );
}

/// Daedalus on the inputs a host records in real runs: the simulator drives the component
/// through whole runs (a bundled trace, a sine and a random walk; both engine profiles), and
/// every input the host hands it (the sliding history window, the state blob the component
/// returned last, the rescale status and the previous outcome) is decided again by the native
/// library. The decisions (action, reason, explanation and state) must be identical call after
/// call. This reaches what one-shot inputs cannot: ARIMA fits and their scoring, capacities
/// learned across scale-outs, adapted downtimes, staged plans. The runs must have rescaled and
/// used ARIMA, or they would prove little.
#[test]
fn daedalus_component_matches_native_on_every_input_of_whole_runs() {
    use daedalus_host::sim::dynamics::Model;
    use daedalus_host::sim::profile::{Engine, JobProfile};
    use daedalus_host::sim::run::{RunConfig, run};
    use daedalus_host::sim::trace::Trace;
    use daedalus_tests::workspace_root;

    let policy = engine()
        .load_file(&policy_path("daedalus"), &PolicyLimits::default(), None)
        .unwrap();
    let advertising =
        Trace::from_file(&workspace_root().join("traces/advertising_6h_550K_max.csv"))
            .unwrap()
            .truncated(7200);
    let synthetic = |spec: &str| Trace::synthetic(spec).unwrap();
    let runs = [
        (Engine::Flink, advertising, 1),
        (
            Engine::KafkaStreams,
            synthetic("sine:min=5000,max=300000,period=1800,duration=5400"),
            2,
        ),
        (
            Engine::Flink,
            synthetic(
                "random-walk:start=100000,step=3000,min=10000,max=400000,seed=5,duration=5400",
            ),
            3,
        ),
    ];
    for (eng, trace, seed) in runs {
        let profile = JobProfile::default_for(eng);
        let model = Model::new(&profile, &trace, seed);
        let (mut calls, mut arima) = (0u32, 0u32);
        let mut diverged: Option<String> = None;
        let mut decide = |inp: &DecisionInput| {
            let component = policy.decide_blocking(inp, &PolicyLimits::default());
            let got = outcome("daedalus", &component);
            let want = native::<policy_daedalus::Daedalus>(inp);
            calls += 1;
            if let Ok(d) = &got
                && d["explanation"]["metrics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|m| m["name"] == "forecast-model" && m["value"] == 2.0)
            {
                arima += 1;
            }
            if diverged.is_none() && got != want {
                diverged = Some(format!(
                    "at {} ms: component {got:?}, native {want:?}",
                    inp.now_ms
                ));
            }
            (component, 0.0)
        };
        let out = run(
            &model,
            &RunConfig {
                seed,
                ..RunConfig::default()
            },
            &mut decide,
            &mut |_| {},
        );
        let name = format!("{} on {}", eng, trace.name);
        assert_eq!(
            diverged, None,
            "{name}: the component and the library diverged"
        );
        assert_eq!(out.policy_errors, 0, "{name}");
        assert!(calls > 400, "{name}: {calls} decisions");
        assert!(out.rescales >= 3, "{name}: {} rescales", out.rescales);
        assert!(arima > 0, "{name}: no decision used ARIMA");
        eprintln!(
            "{name}: {calls} decisions identical, {} rescales, {arima} with ARIMA",
            out.rescales
        );
    }
}
