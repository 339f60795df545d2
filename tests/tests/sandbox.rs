//! Sandbox limits in obeyed/violated pairs, with the hostile guests of `tests/guests/`.
//! Every failure is its specific typed error, and through the loop's Plan step the job holds.

use daedalus_host::mapek::{PlanOutcome, plan};
use daedalus_host::model::{Action, DecisionInput};
use daedalus_host::policy::{
    LoadError, LoadedPolicy, PolicyError, PolicyLimits, PolicySlot, TrapKind, WasmPolicy,
};
use daedalus_tests::{engine, guest_path, input, policy_path, read, with_params};
use std::sync::Arc;

fn hostile() -> LoadedPolicy {
    engine()
        .load_file(&guest_path("hostile"), &PolicyLimits::default(), None)
        .expect("the hostile guest loads: it misbehaves only when asked")
}

fn probe(params: &[(&str, &str)]) -> DecisionInput {
    let mut i = with_params(input(100, 4, &[(1000.0, 0.5)], (1, 10)), params);
    i.state = Some(b"cnt1\x05\0\0\0\0\0\0\0".to_vec());
    i
}

fn run(
    params: &[(&str, &str)],
    limits: &PolicyLimits,
) -> Result<daedalus_host::model::Decision, PolicyError> {
    hostile().decide_blocking(&probe(params), limits)
}

fn trap(params: &[(&str, &str)], limits: &PolicyLimits) -> TrapKind {
    match run(params, limits) {
        Err(e) => e
            .trap_kind()
            .unwrap_or_else(|| panic!("expected a trap, got {e}")),
        Ok(d) => panic!("expected a trap, got {d:?}"),
    }
}

#[test]
fn fuel_budget_obeyed() {
    let limits = PolicyLimits {
        fuel: 50_000_000,
        ..PolicyLimits::default()
    };
    let d = run(&[("mode", "spin"), ("iterations", "100000")], &limits).unwrap();
    assert_eq!(d.metric("count"), Some(6.0), "the state blob came through");
}

#[test]
fn fuel_budget_exhausted() {
    let limits = PolicyLimits {
        fuel: 50_000_000,
        ..PolicyLimits::default()
    };
    assert_eq!(
        trap(
            &[("mode", "spin"), ("iterations", "1000000000000")],
            &limits
        ),
        TrapKind::OutOfFuel
    );
    assert_eq!(trap(&[("mode", "loop")], &limits), TrapKind::OutOfFuel);
}

#[test]
fn deadline_obeyed() {
    let limits = PolicyLimits {
        fuel: u64::MAX / 2,
        deadline_ms: 5_000,
        ..PolicyLimits::default()
    };
    assert!(run(&[("mode", "spin"), ("iterations", "1000")], &limits).is_ok());
}

#[test]
fn deadline_exceeded() {
    // Fuel effectively unlimited: only the wall-clock backstop can stop the loop.
    let limits = PolicyLimits {
        fuel: u64::MAX / 2,
        deadline_ms: 100,
        ..PolicyLimits::default()
    };
    assert_eq!(trap(&[("mode", "loop")], &limits), TrapKind::Deadline);
}

#[test]
fn memory_cap_obeyed() {
    let limits = PolicyLimits {
        memory_mib: 64,
        ..PolicyLimits::default()
    };
    let d = run(&[("mode", "alloc"), ("bytes", "16777216")], &limits).unwrap();
    assert_eq!(d.metric("sum"), Some(16_777_216.0));
}

#[test]
fn memory_cap_exceeded() {
    let limits = PolicyLimits {
        memory_mib: 64,
        ..PolicyLimits::default()
    };
    assert_eq!(
        trap(&[("mode", "alloc"), ("bytes", "1073741824")], &limits),
        TrapKind::MemoryLimit
    );
}

#[test]
fn panic_is_a_trap_with_the_message() {
    match run(&[("mode", "panic")], &PolicyLimits::default()) {
        Err(PolicyError::Trap {
            kind: TrapKind::Panic,
            detail,
        }) => {
            assert!(detail.contains("panics on purpose"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn log_flood_is_stopped() {
    let limits = PolicyLimits {
        max_log_lines: 10,
        ..PolicyLimits::default()
    };
    assert_eq!(trap(&[("mode", "log-flood")], &limits), TrapKind::LogFlood);
}

#[test]
fn a_trapped_policy_works_on_the_next_call() {
    let p = hostile();
    assert!(
        p.decide_blocking(&probe(&[("mode", "panic")]), &PolicyLimits::default())
            .is_err()
    );
    assert!(
        p.decide_blocking(&probe(&[]), &PolicyLimits::default())
            .is_ok()
    );
}

#[test]
fn out_of_range_targets_are_invalid_output() {
    for (mode, value) in [
        ("target", "0"),
        ("target", "11"),
        ("operator", ""),
        ("big-state", "2000000"),
    ] {
        let params: Vec<(&str, &str)> = match mode {
            "target" => vec![("mode", mode), ("parallelism", value)],
            "big-state" => vec![("mode", mode), ("bytes", value)],
            _ => vec![("mode", mode)],
        };
        match run(&params, &PolicyLimits::default()) {
            Err(PolicyError::InvalidOutput(_)) => {}
            other => panic!("{mode}={value}: {other:?}"),
        }
    }
    // In range is fine.
    let d = run(
        &[("mode", "target"), ("parallelism", "10")],
        &PolicyLimits::default(),
    )
    .unwrap();
    assert_eq!(d.action, Action::Job(10));
}

fn load_err(bytes: &[u8]) -> LoadError {
    engine()
        .load_bytes(bytes, &PolicyLimits::default())
        .expect_err("the host must refuse it")
}

#[test]
fn wrong_world_is_refused() {
    assert!(
        matches!(load_err(&read(&guest_path("wrong-world"))), LoadError::WrongWorld(m) if m.contains("add"))
    );
}

#[test]
fn ambient_authority_is_refused() {
    match load_err(&read(&guest_path("ambient"))) {
        LoadError::ForbiddenImport(names) => {
            assert!(
                names.iter().any(|n| n.starts_with("wasi:filesystem/")),
                "{names:?}"
            );
            assert!(
                names.iter().any(|n| n.starts_with("wasi:sockets/")),
                "{names:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_non_wasm_and_core_modules_are_not_components() {
    let good = read(&policy_path("static"));
    for bytes in [
        good[..good.len() / 2].to_vec(),
        b"# not wasm at all\n".to_vec(),
        vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
        Vec::new(),
    ] {
        assert!(
            matches!(load_err(&bytes), LoadError::NotAComponent(_)),
            "{} bytes",
            bytes.len()
        );
    }
}

#[tokio::test]
async fn every_failure_holds_the_job_and_keeps_its_state() {
    let slot = Arc::new(PolicySlot::new(
        engine(),
        hostile(),
        PolicyLimits {
            fuel: 50_000_000,
            deadline_ms: 500,
            memory_mib: 64,
            ..PolicyLimits::default()
        },
    ));
    let policy = WasmPolicy::new(slot);
    for params in [
        vec![("mode", "loop")],
        vec![("mode", "panic")],
        vec![("mode", "alloc"), ("bytes", "1073741824")],
        vec![("mode", "target"), ("parallelism", "0")],
        vec![("mode", "nonsense")],
    ] {
        let inp = probe(&params);
        let state = inp.state.clone();
        match plan(&policy, inp).await {
            PlanOutcome::Held { decision, .. } => {
                assert_eq!(decision.action, Action::Hold);
                assert_eq!(decision.state, state, "{params:?} kept the state");
            }
            PlanOutcome::Decided(d) => panic!("{params:?} decided {d:?}"),
        }
    }
    assert!(matches!(
        plan(&policy, probe(&[])).await,
        PlanOutcome::Decided(_)
    ));
}
