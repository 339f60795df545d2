//! The on-disk precompiled cache survives restarts and recovers from damage.

use daedalus_host::policy::{EngineOptions, PolicyEngine, PolicyLimits};
use daedalus_tests::policy_path;

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
