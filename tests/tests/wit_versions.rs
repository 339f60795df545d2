//! WIT versioning: a released version is frozen under `wit/versions/`, and the host still loads,
//! adapts and swaps components built against it.

use daedalus_host::conformance::run;
use daedalus_host::model::{Action, GuestError};
use daedalus_host::policy::{PolicyError, PolicyLimits, PolicySlot, imports, inspect, sha256_hex};
use daedalus_tests::{engine, guest_path, input, policy_path, with_params, workspace_root};

/// The frozen files of every released version and their sha256. Never update these: a
/// released WIT is never edited. A change goes into `wit/` under a new version.
const FROZEN: &[(&str, &str, &str)] = &[
    (
        "0.1.0",
        "types.wit",
        "b80c375aad4f7bed8d05942d6f8c38915aebe428135052d87491903e34e5f20c",
    ),
    (
        "0.1.0",
        "world.wit",
        "f981fa349ca7b165b931ba8a55e7b4ab80b7b7d419871c1e42390e584b47e105",
    ),
    (
        "0.2.0",
        "types.wit",
        "69e308070667b079830831ba886ede0159b8aa75109dbbb2b7053a647f4cdf38",
    ),
    (
        "0.2.0",
        "world.wit",
        "113c7eaa6fd3d86754b6c3b3641f2e471f1d8b729fe464f4740045206a80beb9",
    ),
];

#[test]
fn released_versions_are_frozen() {
    let root = workspace_root().join("wit");
    for (version, file, want) in FROZEN {
        let bytes = std::fs::read(root.join("versions").join(version).join(file)).unwrap();
        assert_eq!(
            sha256_hex(&bytes),
            *want,
            "wit/versions/{version}/{file} was edited"
        );
    }
    // Every served version is frozen, the current one included ...
    for v in imports::SUPPORTED_VERSIONS {
        assert!(
            FROZEN.iter().any(|(version, _, _)| version == v),
            "{v} is served but not frozen"
        );
    }
    // ... and `wit/` is exactly the current one: changing it needs a new version.
    for file in ["types.wit", "world.wit"] {
        let current = std::fs::read(root.join(file)).unwrap();
        let frozen = std::fs::read(root.join("versions").join(imports::WIT_VERSION).join(file));
        assert_eq!(
            Some(current),
            frozen.ok(),
            "wit/{file} differs from wit/versions/{}/{file}: bump the version in world.wit and \
             freeze the new one",
            imports::WIT_VERSION
        );
    }
}

#[test]
fn a_component_built_against_0_1_0_loads_and_decides() {
    let p = engine()
        .load_file(&guest_path("wit-0-1"), &PolicyLimits::default(), None)
        .unwrap();
    assert_eq!(p.wit_version(), "0.1.0");
    assert_eq!(p.info().name, "cpu-rule-wit-0-1");
    // Four workers at 90% CPU against a 70% target: ceil(4 * 0.9 / 0.7) = 6. The 0.2.0 field
    // is dropped by the adapter; the decision is the same with and without it.
    let mut inp = input(100, 4, &[(1000.0, 0.9)], (1, 10));
    let limits = PolicyLimits::default();
    let d = p.decide_blocking(&inp, &limits).unwrap();
    assert_eq!(d.action, Action::Job(6), "{d:?}");
    inp.latency_objective_ms = Some(30_000);
    assert_eq!(p.decide_blocking(&inp, &limits).unwrap(), d);
    // Its errors come through the adapter typed.
    match p.decide_blocking(&with_params(inp.clone(), &[("target_cpu", "2")]), &limits) {
        Err(PolicyError::Guest(GuestError::InvalidParams(m))) => assert!(m.contains("target_cpu")),
        other => panic!("{other:?}"),
    }
    // And the conformance kit passes it.
    let report = run(&p, &[]);
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.passed).collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn inspect_names_the_version_each_component_targets() {
    let old = inspect(&engine(), &guest_path("wit-0-1")).unwrap();
    assert_eq!(old.wit_version.as_deref(), Some("0.1.0"));
    assert_eq!(old.load_error, None);
    let current = inspect(&engine(), &policy_path("hpa")).unwrap();
    assert_eq!(current.wit_version.as_deref(), Some(imports::WIT_VERSION));
}

#[test]
fn hot_swap_crosses_versions_both_ways() {
    let limits = PolicyLimits::default();
    let old = engine()
        .load_file(&guest_path("wit-0-1"), &limits, None)
        .unwrap();
    let slot = PolicySlot::new(engine(), old, limits.clone());
    let inp = input(100, 4, &[(1000.0, 0.9)], (1, 10));
    let report = slot
        .reload_file(&policy_path("hpa"), None, Some(&inp))
        .unwrap();
    assert!(report.probe.is_some(), "{report:?}");
    assert_eq!(slot.active().wit_version(), imports::WIT_VERSION);
    slot.reload_file(&guest_path("wit-0-1"), None, Some(&inp))
        .unwrap();
    assert_eq!(slot.active().wit_version(), "0.1.0");
    assert!(slot.active().decide_blocking(&inp, &limits).is_ok());
}
