//! The `daedalus` binary end to end: `policy inspect` and `policy decide`, including the
//! README's examples. (Here rather than in `tests/` because only this package's tests can
//! locate its binary.)

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn artifact(rel: &str) -> PathBuf {
    let p = root().join("target/policies").join(rel);
    assert!(
        p.exists(),
        "{} missing: run `cargo xtask build-policies`",
        p.display()
    );
    p
}

fn daedalus(args: &[&str]) -> (i32, String, String) {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_daedalus"))
        .args(args)
        .arg("--cache-dir")
        .arg(cache.path())
        .env_remove("DAEDALUS_LOG")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_prints_name_version_wit_digest_and_imports() {
    let path = artifact("hpa.wasm");
    let (code, out, _) = daedalus(&["policy", "inspect", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    for want in [
        "name:        hpa",
        "wit version: 0.1.0",
        "sha256:",
        "import:      wasi:io/",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let (code, out, _) = daedalus(&["policy", "inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn inspect_explains_refusals() {
    let ambient = artifact("testing/ambient.wasm");
    let (code, _, err) = daedalus(&["policy", "inspect", ambient.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        err.contains("forbidden imports") && err.contains("wasi:filesystem"),
        "{err}"
    );
    let not_wasm = root().join("Cargo.toml");
    let (code, _, err) = daedalus(&["policy", "inspect", not_wasm.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not a WebAssembly component"), "{err}");
    let (code, _, err) = daedalus(&["policy", "inspect", "/no/such/file.wasm"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn readme_decide_example_scales_up() {
    let input = root().join("tests/fixtures/inputs/hpa-high-cpu.json");
    let hpa = artifact("hpa.wasm");
    let (code, out, err) = daedalus(&[
        "policy",
        "decide",
        hpa.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--param",
        "target_cpu_utilization=0.6",
    ]);
    assert_eq!(code, 0, "{err}");
    let d: serde_json::Value = serde_json::from_str(&out).unwrap();
    // 95% against 60% on 4 workers: ceil(1.58 * 4) = 7.
    assert_eq!(d["action"]["Job"], 7, "{out}");
}
