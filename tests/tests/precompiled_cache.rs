//! The on-disk precompiled cache survives restarts and recovers from damage; in one engine, a
//! component loaded again while a copy is held (or being compiled) shares that copy's compiled
//! code and bytes.

use daedalus_host::policy::{EngineOptions, PolicyEngine, PolicyLimits};
use daedalus_tests::{input, policy_path};
use std::time::Duration;

fn engine_in(dir: &std::path::Path) -> std::sync::Arc<PolicyEngine> {
    PolicyEngine::new(EngineOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..EngineOptions::default()
    })
    .unwrap()
}

#[test]
fn a_restarted_engine_loads_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let first = engine_in(dir.path())
        .load_file(&policy_path("hpa"), &PolicyLimits::default(), None)
        .unwrap();
    assert!(!first.load_report().cache_hit);
    let entry = engine_in(dir.path())
        .cache()
        .unwrap()
        .dir()
        .join(format!("{}.cwasm", first.digest()));
    assert!(entry.exists(), "{} written", entry.display());
    // A new engine (a restarted host) finds it.
    let second = engine_in(dir.path())
        .load_file(&policy_path("hpa"), &PolicyLimits::default(), None)
        .unwrap();
    assert!(second.load_report().cache_hit);
    assert_eq!(second.info(), first.info());
}

#[test]
fn a_damaged_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_in(dir.path());
    let p = engine
        .load_file(&policy_path("static"), &PolicyLimits::default(), None)
        .unwrap();
    let entry = engine
        .cache()
        .unwrap()
        .dir()
        .join(format!("{}.cwasm", p.digest()));
    std::fs::write(&entry, b"garbage").unwrap();
    let again = engine_in(dir.path())
        .load_file(&policy_path("static"), &PolicyLimits::default(), None)
        .unwrap();
    assert!(!again.load_report().cache_hit);
    assert_eq!(again.info().name, "static");
}

#[test]
fn the_cache_is_keyed_by_engine_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let a = engine_in(dir.path());
    let b = engine_in(dir.path());
    // Same configuration, same directory; the key is a digest of the config, not a constant.
    assert_eq!(a.cache().unwrap().dir(), b.cache().unwrap().dir());
    let key = a
        .cache()
        .unwrap()
        .dir()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert_eq!(key.len(), 24);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn loading_held_bytes_again_shares_the_compiled_code_until_the_last_copy_goes() {
    // No disk cache: sharing is in memory, whatever the cache does.
    let engine = PolicyEngine::new(EngineOptions::default()).unwrap();
    let limits = PolicyLimits::default();
    let load = |name: &str| engine.load_file(&policy_path(name), &limits, None).unwrap();
    let first = load("ds2");
    assert!(!first.load_report().shared);
    assert!(first.load_report().compile > Duration::ZERO);
    // The same policy swapped into a second job: no compile, one copy of the bytes.
    let second = load("ds2");
    let report = second.load_report();
    assert!(report.shared, "{report:?}");
    assert_eq!(report.compile, Duration::ZERO);
    assert_eq!(second.source().as_ptr(), first.source().as_ptr());
    assert_eq!(second.digest(), first.digest());
    assert_eq!(second.info(), first.info());
    // Other bytes are not confused with them.
    let hpa = load("hpa");
    assert!(!hpa.load_report().shared);
    assert_eq!(hpa.info().name, "hpa");
    assert_eq!(engine.held_components(), 2);
    // The shared copy decides as the first one does, and outlives it.
    let i = input(10_000, 4, &[(9_000.0, 0.9); 12], (1, 24));
    let want = first.decide_blocking(&i, &limits).unwrap();
    drop(first);
    assert_eq!(second.decide_blocking(&i, &limits).unwrap(), want);
    // Once no copy is held, the next load compiles afresh (nothing kept it alive).
    drop(second);
    assert_eq!(engine.held_components(), 1, "only hpa is still held");
    let again = load("ds2");
    assert!(!again.load_report().shared);
    assert_eq!(again.decide_blocking(&i, &limits).unwrap(), want);
}

#[test]
fn concurrent_loads_of_the_same_new_bytes_compile_once() {
    // A fleet-wide swap loads one new policy into many jobs at once: the loads of the same
    // bytes wait for the one compiling them and share its result, whatever the interleaving.
    let engine = PolicyEngine::new(EngineOptions::default()).unwrap();
    let limits = PolicyLimits::default();
    let bytes = std::fs::read(policy_path("daedalus")).unwrap();
    let loads = 4;
    let start = std::sync::Barrier::new(loads);
    let held: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..loads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    engine.load_bytes(&bytes, &limits).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let compiled = held.iter().filter(|p| !p.load_report().shared).count();
    assert_eq!(
        compiled,
        1,
        "{:?}",
        held.iter().map(|p| p.load_report()).collect::<Vec<_>>()
    );
    assert!(
        held.iter()
            .all(|p| p.source().as_ptr() == held[0].source().as_ptr())
    );
    assert!(held.iter().all(|p| p.info() == held[0].info()));
}
