//! The conformance kit: our own policies pass it; misbehaving components fail the right check.

use daedalus_host::conformance::run;
use daedalus_host::policy::PolicyLimits;
use daedalus_tests::{engine, guest_path, policy_path};

fn params(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn our_policies_pass() {
    for name in ["static", "hpa", "ds2", "daedalus"] {
        let policy = engine()
            .load_file(&policy_path(name), &PolicyLimits::default(), None)
            .unwrap();
        let report = run(&policy, &[]);
        let failed: Vec<_> = report.checks.iter().filter(|c| !c.passed).collect();
        assert!(failed.is_empty(), "{name}: {failed:?}");
        assert!(
            report.max_fuel > 0 && report.max_fuel < PolicyLimits::default().fuel / 5,
            "{name}: {}",
            report.max_fuel
        );
    }
}

#[test]
fn misbehaviour_fails_the_matching_check() {
    let hostile = engine()
        .load_file(&guest_path("hostile"), &PolicyLimits::default(), None)
        .unwrap();
    let failed = |p: &[(&str, &str)]| -> Vec<&'static str> {
        run(&hostile, &params(p))
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(
        failed(&[("mode", "target"), ("parallelism", "0")]),
        vec!["bounds"]
    );
    assert!(failed(&[("mode", "panic")]).contains(&"no-failures"));
    assert!(
        failed(&[("mode", "echo")]).is_empty(),
        "a well-behaved hostile guest passes"
    );
}
