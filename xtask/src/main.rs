//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `build-policies`: make sure the `wasm32-wasip2` target is installed, build every policy
//!   component and the sandbox-test guests, and copy them to `target/policies/` under the
//!   workspace root (a fixed place the example configs and tests name, wherever cargo's target
//!   directory is: `CARGO_TARGET_DIR` and `build.target-dir` are honoured for the build itself);
//! - `simulate [ARGS]`: build-policies, then `daedalus simulate` (release build) with ARGS,
//!   by default on the bundled advertising trace: the README's quick start;
//! - `bench-policies [ARGS]`: build-policies, then `daedalus bench-policies` (release);
//! - `test`: the README's test command: build-policies, then the whole test suite;
//! - `ci`: what `.ci/run` runs: fmt check, clippy, rustdoc (warnings as errors), `test`, then
//!   `cargo deny check licenses bans sources`.
#![allow(
    clippy::print_stdout,
    reason = "a task runner reports progress on stdout"
)]

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Policy components: (cargo package, artifact name under `target/policies/`).
const POLICIES: &[(&str, &str)] = &[
    ("policy-static", "static"),
    ("policy-hpa", "hpa"),
    ("policy-ds2", "ds2"),
    ("policy-daedalus", "daedalus"),
];

/// Guests for the sandbox tests, under `target/policies/testing/`.
const TEST_GUESTS: &[(&str, &str)] = &[
    ("guest-hostile", "hostile"),
    ("guest-ambient", "ambient"),
    ("guest-wrong-world", "wrong-world"),
    ("guest-wit-0-1", "wit-0-1"),
];

fn main() -> Result<()> {
    let task = std::env::args().nth(1).unwrap_or_default();
    let root = workspace_root();
    match task.as_str() {
        "build-policies" => build_policies(&root),
        "test" => run_tests(&root),
        "simulate" | "bench-policies" => {
            build_policies(&root)?;
            let mut rest: Vec<String> = std::env::args().skip(2).collect();
            if task == "simulate"
                && !rest
                    .iter()
                    .any(|a| a == "--trace" || a.starts_with("--trace="))
            {
                rest.extend([
                    "--trace".into(),
                    "traces/advertising_6h_550K_max.csv".into(),
                ]);
            }
            run(cargo()
                .current_dir(&root)
                .args(["run", "--release", "-q", "-p", "daedalus-host", "--", &task])
                .args(rest))
        }
        "ci" => ci(&root),
        _ => {
            eprintln!("usage: cargo xtask <build-policies|simulate|bench-policies|test|ci>");
            std::process::exit(2);
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command) -> Result<()> {
    println!("$ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Installs `wasm32-wasip2` if missing: rustup first, then the bundled copy in
/// `../shared/toolchain` for machines that cannot reach the Rust distribution server.
fn ensure_wasm_target(root: &Path) -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()?;
    let sysroot = PathBuf::from(String::from_utf8(sysroot.stdout)?.trim());
    if sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
    {
        return Ok(());
    }
    println!("installing the {TARGET} target");
    if Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .is_ok_and(|s| s.success())
    {
        return Ok(());
    }
    let bundled = root.join("../shared/toolchain/ensure-wasm-target");
    if bundled.exists() && Command::new(&bundled).status().is_ok_and(|s| s.success()) {
        return Ok(());
    }
    bail!(
        "the {TARGET} target is missing and could not be installed; run `rustup target add {TARGET}` \
         (or ../shared/toolchain/ensure-wasm-target where rustup cannot reach the network)"
    )
}

fn build_policies(root: &Path) -> Result<()> {
    ensure_wasm_target(root)?;
    let mut cmd = cargo();
    cmd.current_dir(root)
        .args(["build", "--release", "--target", TARGET]);
    for (pkg, _) in POLICIES.iter().chain(TEST_GUESTS) {
        cmd.args(["-p", pkg]);
    }
    run(&mut cmd)?;
    let built = cargo_target_dir(root)?.join(TARGET).join("release");
    let out = root.join("target/policies");
    std::fs::create_dir_all(out.join("testing"))?;
    for (dir, list) in [(out.clone(), POLICIES), (out.join("testing"), TEST_GUESTS)] {
        for (pkg, name) in list {
            let from = built.join(format!("{}.wasm", pkg.replace('-', "_")));
            let to = dir.join(format!("{name}.wasm"));
            std::fs::copy(&from, &to)
                .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
            println!("built {}", to.display());
        }
    }
    Ok(())
}

/// Cargo's target directory as cargo resolves it (`CARGO_TARGET_DIR`, `build.target-dir`, or
/// `target/` under the workspace root), from `cargo metadata`.
fn cargo_target_dir(root: &Path) -> Result<PathBuf> {
    let out = cargo()
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("cannot run cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("cargo metadata printed invalid JSON")?;
    let dir = meta
        .get("target_directory")
        .and_then(serde_json::Value::as_str)
        .context("cargo metadata names no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// Builds the components and runs every test. The engine tests start the real services they
/// need (`tests/services/`); they are stopped afterwards whether the tests passed or not.
fn run_tests(root: &Path) -> Result<()> {
    build_policies(root)?;
    let result = run(cargo().current_dir(root).args(["test", "--workspace"]));
    let down = Command::new("bash")
        .current_dir(root)
        .args(["tests/services/services", "down"])
        .status();
    if !down.is_ok_and(|s| s.success()) {
        eprintln!("warning: tests/services/services down failed; stop the services by hand");
    }
    result
}

fn ci(root: &Path) -> Result<()> {
    run(cargo().current_dir(root).args(["fmt", "--all", "--check"]))?;
    run(cargo().current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // Every public item is documented (`missing_docs` in the workspace lints, checked by
    // clippy above); rustdoc's own lints (broken intra-doc links) fail the run too.
    run(cargo()
        .current_dir(root)
        .env("RUSTDOCFLAGS", "-D warnings")
        .args(["doc", "--workspace", "--no-deps"]))?;
    run_tests(root)?;
    // Licences, duplicate versions and sources (advisories need network access to GitHub).
    run(cargo()
        .current_dir(root)
        .args(["deny", "check", "licenses", "bans", "sources"]))
}
