//! Hot swap: a good swap hands over state; a bad one keeps the old digest active.

use daedalus_host::model::DecisionInput;
use daedalus_host::policy::{LoadError, PolicyLimits, PolicySlot};
use daedalus_tests::{
    engine, guest_path, input, policy_path, read, with_custom_section, with_params,
};

fn slot_with_hostile() -> PolicySlot {
    let p = engine()
        .load_file(&guest_path("hostile"), &PolicyLimits::default(), None)
        .unwrap();
    PolicySlot::new(engine(), p, PolicyLimits::default())
}

/// Runs `n` decisions through the slot, threading the state like the loop does.
fn run(slot: &PolicySlot, n: usize) -> DecisionInput {
    let mut inp = input(100, 4, &[(1000.0, 0.5)], (1, 10));
    for _ in 0..n {
        let d = slot.active().decide_blocking(&inp, slot.limits()).unwrap();
        inp.state = d.state;
    }
    inp
}

#[test]
fn a_good_swap_hands_over_state() {
    let slot = slot_with_hostile();
    let last = run(&slot, 3);
    let old = slot.active().digest().to_string();
    let v2 = with_custom_section(&read(&guest_path("hostile")), "build", b"v2");
    let report = slot.reload_bytes(&v2, Some(&last)).unwrap();
    assert_eq!(report.old_digest, old);
    assert_ne!(report.new_digest, old);
    assert_eq!(slot.active().digest(), report.new_digest);
    assert!(report.state_handed_over);
    // The probe saw the counter at 3 and counted on.
    assert_eq!(report.probe.unwrap().metric("count"), Some(4.0));
}

#[test]
fn a_swap_to_a_policy_that_rejects_the_state_starts_it_fresh() {
    let slot = slot_with_hostile();
    let last = run(&slot, 2);
    let report = slot
        .reload_file(&policy_path("hpa"), None, Some(&last))
        .unwrap();
    assert!(!report.state_handed_over);
    assert_eq!(slot.active().info().name, "hpa");
}

/// The new policy rejects the state, and its fresh decision needs more history (no worker
/// reports CPU): the swap goes ahead, and the rejected state is not handed over (it was, and
/// the new policy then failed on it every tick until it was rolled back).
#[test]
fn a_rejected_state_is_dropped_even_when_the_fresh_probe_needs_more_history() {
    let slot = slot_with_hostile();
    let mut last = run(&slot, 2);
    for w in &mut last.current.workers {
        w.cpu_utilization = None;
    }
    let report = slot
        .reload_file(&policy_path("hpa"), None, Some(&last))
        .unwrap();
    assert!(report.probe.is_none(), "{:?}", report.probe);
    assert!(!report.state_handed_over);
    assert_eq!(slot.active().info().name, "hpa");
}

#[test]
fn a_bad_swap_keeps_the_old_digest_active() {
    let slot = slot_with_hostile();
    let last = run(&slot, 2);
    let old = slot.active().digest().to_string();
    let good = read(&guest_path("hostile"));
    // Not a component.
    assert!(matches!(
        slot.reload_bytes(&good[..100], Some(&last)),
        Err(LoadError::NotAComponent(_))
    ));
    // Forbidden imports.
    assert!(matches!(
        slot.reload_file(&guest_path("ambient"), None, Some(&last)),
        Err(LoadError::ForbiddenImport(_))
    ));
    // Wrong pinned digest.
    assert!(matches!(
        slot.reload_file(&policy_path("hpa"), Some("00"), Some(&last)),
        Err(LoadError::DigestMismatch { .. })
    ));
    // Loads fine but traps on the probe decision.
    let panicking = with_params(last.clone(), &[("mode", "panic")]);
    let v2 = with_custom_section(&good, "build", b"v2");
    match slot.reload_bytes(&v2, Some(&panicking)) {
        Err(LoadError::Validation(e)) => assert!(e.to_string().contains("panic"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A parameter the new policy does not document: refused by the host, naming what it
    // accepts, before the policy is asked.
    let undocumented = with_params(last.clone(), &[("mode", "echo"), ("nope", "1")]);
    match slot.reload_bytes(&v2, Some(&undocumented)) {
        Err(LoadError::Validation(e)) => assert!(
            e.to_string()
                .contains("unknown parameter `nope`; hostile accepts mode,"),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(slot.active().digest(), old);
    // The old policy still decides, state intact.
    let d = slot.active().decide_blocking(&last, slot.limits()).unwrap();
    assert_eq!(d.metric("count"), Some(3.0));
}

#[test]
fn a_cycle_in_flight_finishes_on_the_policy_it_started_with() {
    let slot = slot_with_hostile();
    let in_flight = slot.active();
    slot.reload_file(&policy_path("static"), None, None)
        .unwrap();
    assert_eq!(in_flight.info().name, "hostile");
    assert!(
        in_flight
            .decide_blocking(&run(&slot_with_hostile(), 1), slot.limits())
            .is_ok()
    );
    assert_eq!(slot.active().info().name, "static");
}

/// The loop's file-watch swap: a file holding the active component is not loaded again; any
/// other file is read once, checked against the pin and swapped in as `reload_file` would.
#[test]
fn a_file_holding_the_active_component_is_not_loaded_again() {
    let slot = slot_with_hostile();
    let last = run(&slot, 2);
    let hostile = guest_path("hostile");
    let old = slot.active().digest().to_string();
    assert!(
        slot.reload_file_if_changed(&hostile, None, Some(&last))
            .unwrap()
            .is_none()
    );
    assert!(
        matches!(
            slot.reload_file_if_changed(&hostile, Some("00"), Some(&last)),
            Err(LoadError::DigestMismatch { .. })
        ),
        "a pin the file does not match is refused even when the file holds the active component"
    );
    assert!(matches!(
        slot.reload_file_if_changed(&policy_path("hpa"), Some("00"), Some(&last)),
        Err(LoadError::DigestMismatch { .. })
    ));
    assert!(matches!(
        slot.reload_file_if_changed(&hostile.with_extension("missing"), None, Some(&last)),
        Err(LoadError::Io { .. })
    ));
    assert_eq!(slot.active().digest(), old);
    let hpa = read(&policy_path("hpa"));
    let report = slot
        .reload_file_if_changed(
            &policy_path("hpa"),
            Some(&daedalus_host::policy::sha256_hex(&hpa).to_uppercase()),
            Some(&last),
        )
        .unwrap()
        .expect("another component is swapped in");
    assert_eq!(report.old_digest, old);
    assert_eq!(slot.active().digest(), report.new_digest);
    assert_eq!(slot.active().info().name, "hpa");
}
