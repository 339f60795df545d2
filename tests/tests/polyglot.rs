//! Policies in JavaScript (componentize-js) and Python (componentize-py): built from
//! `policies-js/` and `policies-python/` with their own tools (npm and pip, from the public
//! registries), natively tested, then run through the real host: the conformance kit, the
//! same decisions in both languages, and the precompiled cache making the second load fast.
//!
//! Load and decide times are printed as ratios to the Rust `hpa` policy measured in the same
//! run (`cargo test -p daedalus-tests --test main -- polyglot --nocapture`); nothing here
//! judges a wall-clock time.

use daedalus_host::clock::Stopwatch;
use daedalus_host::conformance::run_with_limits;
use daedalus_host::model::{Action, DecisionInput};
use daedalus_host::policy::{EngineOptions, LoadedPolicy, PolicyEngine, PolicyLimits};
use daedalus_tests::{input, policy_path, with_params, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Runs a build or test command of a policy project, failing loudly with its output.
fn sh(dir: &Path, program: &str, args: &[&str]) {
    let clock = Stopwatch::start();
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", dir.display()));
    assert!(
        out.status.success(),
        "{program} {args:?} in {} failed:\n{}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{program} {args:?} in {}: {:.1} s",
        dir.display(),
        clock.elapsed().as_secs_f64()
    );
}

fn out_dir() -> PathBuf {
    let d = workspace_root().join("target/policies/polyglot");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `policies-js/lag-threshold`: its native tests, then the component (once per test binary).
fn js() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = workspace_root().join("policies-js/lag-threshold");
        let wasm = out_dir().join("lag-threshold-js.wasm");
        sh(&dir, "npm", &["ci", "--no-audit", "--no-fund"]);
        sh(&dir, "npm", &["test"]);
        sh(&dir, "node", &["build.mjs", wasm.to_str().unwrap()]);
        wasm
    })
}

/// `policies-python/lag-threshold`: its native tests, then the component.
fn python() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = workspace_root().join("policies-python/lag-threshold");
        let wasm = out_dir().join("lag-threshold-py.wasm");
        sh(&dir, "python3", &["-m", "unittest", "-q"]);
        sh(&dir, "bash", &["build.sh", wasm.to_str().unwrap()]);
        wasm
    })
}

/// The limits these policies are checked under. Fuel: the JavaScript runtime lifts the kit's
/// 1-hour, 18-worker history into JS objects at ~90k fuel per worker sample (5.9e9 in all), so
/// a job running a JS policy on such histories is configured with `limits.fuel = 8e9`. The
/// deadline is a wall-clock backstop; this is a debug build of the host on a shared machine.
fn limits() -> PolicyLimits {
    PolicyLimits {
        fuel: 8_000_000_000,
        deadline_ms: 120_000,
        ..PolicyLimits::default()
    }
}

fn engine_in(dir: &Path) -> Arc<PolicyEngine> {
    PolicyEngine::new(EngineOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..EngineOptions::default()
    })
    .unwrap()
}

/// A component loaded cold (compiling) and warm (a restarted engine on the same cache).
struct Loaded {
    policy: LoadedPolicy,
    cold: Duration,
    warm: Duration,
    /// Keeps the cache alive as long as the policy.
    _cache: tempfile::TempDir,
}

fn load_twice(wasm: &Path) -> Loaded {
    let cache = tempfile::tempdir().unwrap();
    let clock = Stopwatch::start();
    let cold = engine_in(cache.path())
        .load_file(wasm, &limits(), None)
        .unwrap();
    let cold_t = clock.elapsed();
    assert!(!cold.load_report().cache_hit);
    let clock = Stopwatch::start();
    let warm = engine_in(cache.path())
        .load_file(wasm, &limits(), None)
        .unwrap();
    let warm_t = clock.elapsed();
    assert!(
        warm.load_report().cache_hit,
        "the second load comes from the precompiled cache"
    );
    assert_eq!(warm.info(), cold.info());
    Loaded {
        policy: warm,
        cold: cold_t,
        warm: warm_t,
        _cache: cache,
    }
}

/// Each component is compiled once per test binary: a JS or Python compile takes tens of seconds.
fn js_loaded() -> &'static Loaded {
    static L: OnceLock<Loaded> = OnceLock::new();
    L.get_or_init(|| load_twice(js()))
}

fn python_loaded() -> &'static Loaded {
    static L: OnceLock<Loaded> = OnceLock::new();
    L.get_or_init(|| load_twice(python()))
}

fn median_decide(p: &LoadedPolicy, inp: &DecisionInput) -> Duration {
    let mut times: Vec<Duration> = (0..15)
        .map(|_| {
            let clock = Stopwatch::start();
            p.decide_blocking(inp, &limits()).unwrap();
            clock.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn passes_the_kit_and_loads_fast_the_second_time(wasm: &Path, loaded: &Loaded, name: &str) {
    let size = std::fs::metadata(wasm).unwrap().len();
    let (p, cold, warm) = (&loaded.policy, loaded.cold, loaded.warm);
    assert_eq!(p.info().name, name);
    assert_eq!(p.info().params.len(), 3, "{:?}", p.info().params);
    let report = run_with_limits(p, &[], &limits());
    let failed: Vec<_> = report.checks.iter().filter(|c| !c.passed).collect();
    assert!(failed.is_empty(), "{name}: {failed:?}");
    // Against the Rust hpa policy in the same run.
    let hpa = load_twice(&policy_path("hpa"));
    let (hpa_cold, hpa_warm) = (hpa.cold, hpa.warm);
    let inp = lagging(4, 900_000.0);
    let (d, d_hpa) = (median_decide(p, &inp), median_decide(&hpa.policy, &inp));
    eprintln!(
        "{name}: {:.1} MB; load cold {:.2} s ({:.0}x hpa), warm {:.1} ms ({:.1}x hpa); \
         decide {:.0} µs ({:.0}x hpa); kit max fuel {:.2e}",
        size as f64 / 1e6,
        cold.as_secs_f64(),
        cold.as_secs_f64() / hpa_cold.as_secs_f64(),
        warm.as_secs_f64() * 1e3,
        warm.as_secs_f64() / hpa_warm.as_secs_f64(),
        d.as_secs_f64() * 1e6,
        d.as_secs_f64() / d_hpa.as_secs_f64(),
        report.max_fuel as f64
    );
}

/// Four workers, `lag` records behind.
fn lagging(p: u32, lag: f64) -> DecisionInput {
    let mut i = input(1000, p, &[(20_000.0, 0.6); 31], (1, 12));
    i.current.lag_records = Some(lag);
    for o in &mut i.history {
        o.lag_records = Some(lag);
    }
    i
}

#[test]
fn the_javascript_policy_passes_the_kit_and_loads_fast_the_second_time() {
    passes_the_kit_and_loads_fast_the_second_time(js(), js_loaded(), "lag-threshold-js");
}

#[test]
fn the_python_policy_passes_the_kit_and_loads_fast_the_second_time() {
    passes_the_kit_and_loads_fast_the_second_time(python(), python_loaded(), "lag-threshold-py");
}

#[test]
fn both_languages_decide_alike_and_as_the_rule_says() {
    let (js, py) = (&js_loaded().policy, &python_loaded().policy);
    let cases = [
        // 900k records of lag at 100k per worker: 9 workers.
        (lagging(4, 900_000.0), vec![], Some(Action::Job(9))),
        // Capped by the bounds.
        (lagging(4, 5e7), vec![], Some(Action::Job(12))),
        // 350k: 4 workers, as now.
        (lagging(4, 350_000.0), vec![], Some(Action::Hold)),
        // Below the activation lag: the minimum.
        (
            lagging(4, 500.0),
            vec![("activation_lag", "1000")],
            Some(Action::Job(1)),
        ),
        // A parameter out of range is an error in both.
        (lagging(4, 1.0), vec![("lag_per_worker", "0")], None),
    ];
    for (inp, params, want) in cases {
        let inp = with_params(inp, &params);
        let a = js.decide_blocking(&inp, &limits());
        let b = py.decide_blocking(&inp, &limits());
        match want {
            Some(action) => {
                let (a, b) = (a.unwrap(), b.unwrap());
                assert_eq!(a.action, action, "js: {a:?}");
                assert_eq!(b.action, action, "python: {b:?}");
            }
            None => assert!(a.is_err() && b.is_err(), "{a:?} / {b:?}"),
        }
    }
    // A scale-down waits out the stabilization window: lag fell just now, after 5 minutes
    // at 900k, so both hold at 9 instead of dropping to 1.
    let mut inp = lagging(9, 900_000.0);
    inp.current.lag_records = Some(10.0);
    for d in [
        js.decide_blocking(&inp, &limits()),
        py.decide_blocking(&inp, &limits()),
    ] {
        assert_eq!(d.unwrap().action, Action::Hold);
    }
}
