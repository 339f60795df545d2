//! The `daedalus` binary end to end: `policy inspect` and `policy decide`, including the
//! README's examples. (Here rather than in `tests/` because only this package's tests can
//! locate its binary.)

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Writes `run.toml` in `dir`: a 1 s tick and one job running the built `policy` artifact;
/// `job` is the rest of the job's table (and its engine table).
fn one_job_config(dir: &std::path::Path, policy: &str, job: &str) -> PathBuf {
    let config = dir.join("run.toml");
    let body = format!(
        "tick_secs = 1\n[[jobs]]\npolicy = \"{}\"\n{job}",
        artifact(policy).display()
    );
    std::fs::write(&config, body).unwrap();
    config
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
        "wit version: 0.2.0 (current)",
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

#[test]
fn simulate_writes_the_scorecard_report_and_plots() {
    let out = tempfile::tempdir().unwrap();
    let policies = root().join("target/policies");
    artifact("hpa.wasm");
    let (code, stdout, err) = daedalus(&[
        "simulate",
        "--trace",
        "step:low=20000,high=300000,at=120,duration=400",
        "--policies-dir",
        policies.to_str().unwrap(),
        "--policy",
        &format!(
            "hpa60={}?target_cpu_utilization=0.6",
            policies.join("hpa.wasm").display()
        ),
        "--policy",
        &format!("{}", policies.join("ds2.wasm").display()),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for want in ["hpa60", "ds2", "oracle", "vs oracle", "report:", "runs.svg"] {
        assert!(stdout.contains(want), "missing {want:?} in\n{stdout}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let cards = report.as_array().unwrap();
    assert_eq!(cards.len(), 3);
    for key in [
        "policy",
        "digest",
        "trace",
        "engine",
        "seed",
        "duration_s",
        "worker_seconds",
        "avg_parallelism",
        "max_parallelism",
        "rescales",
        "downtime_s",
        "latency_ms_p50",
        "latency_ms_p95",
        "latency_ms_p99",
        "max_lag_records",
        "final_lag_records",
        "drain_worker_seconds",
        "slo_violation_s",
        "records_in",
        "records_processed",
        "policy_errors",
        "decide_us_p50",
        "decide_us_p99",
    ] {
        assert!(cards[0].get(key).is_some(), "report lacks {key}");
    }
    let decisions = std::fs::read_to_string(out.path().join("hpa60.decisions.jsonl")).unwrap();
    assert!(decisions.lines().count() >= 39, "one line per decision");
    assert!(out.path().join("oracle.timeline.csv").exists());
    for svg in ["runs.svg", "scorecard.svg"] {
        let text = std::fs::read_to_string(out.path().join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains("oracle"), "{svg}");
    }
}

/// A run in which no cycle reached the policy reports no call time and no database growth: the
/// database's size before the run is not extrapolated to a day.
#[test]
fn bench_host_counts_only_what_the_run_wrote() {
    let trace = root().join("traces/advertising_6h_550K_max.csv");
    let (code, out, err) = daedalus(&[
        "bench-host",
        "--jobs",
        "2",
        "--secs",
        "1",
        "--tick-secs",
        "30",
        "--policy",
        artifact("daedalus.wasm").to_str().unwrap(),
        "--swap-with",
        artifact("hpa.wasm").to_str().unwrap(),
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("| 2 |"))
        .unwrap_or_else(|| panic!("no row for 2 jobs in:\n{out}"));
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(cells[2], "0 / 0 (0.0%)", "{row}");
    assert_eq!(cells[5], "-", "no call recorded: {row}");
    assert_eq!(cells[6], "0.0 MiB", "nothing written: {row}");
    assert!(out.contains("hot swap, file rewritten"), "{out}");
}

/// `bench-policies` writes its table and, with `--walks`, the per-policy summary over unseen
/// walks, whose figures agree with the per-run rows in bench.json.
#[test]
fn bench_policies_summarises_unseen_walks() {
    let out = tempfile::tempdir().unwrap();
    let no_traces = tempfile::tempdir().unwrap();
    let policies = root().join("target/policies");
    artifact("daedalus.wasm");
    let (code, stdout, err) = daedalus(&[
        "bench-policies",
        "--walks",
        "2",
        "--duration-secs",
        "600",
        "--only",
        "daedalus",
        "--traces-dir",
        no_traces.path().to_str().unwrap(),
        "--policies-dir",
        policies.to_str().unwrap(),
        "--out",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("## Unseen random walks (2 walks"),
        "{stdout}"
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("bench.json")).unwrap())
            .unwrap();
    let walks: Vec<&serde_json::Value> = rows.iter().filter(|r| r["set"] == "walks").collect();
    // 2 walks x 2 engines x (daedalus, static-paper, static-peak, oracle).
    assert_eq!(walks.len(), 16);
    for engine in ["flink", "kafka-streams"] {
        let mut ratios: Vec<f64> = walks
            .iter()
            .filter(|r| r["engine"] == engine && r["policy"] == "daedalus")
            .map(|r| r["vs_oracle"].as_f64().unwrap())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {engine} | daedalus |")))
            .unwrap_or_else(|| panic!("no summary line for {engine}:\n{stdout}"));
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // Nearest-rank median of two is the lower; the maximum is the higher.
        assert_eq!(cells[3], format!("{:.2}", ratios[0]), "{line}");
        assert_eq!(cells[5], format!("{:.2}", ratios[1]), "{line}");
        assert!(cells[7].ends_with("/ 2"), "{line}");
    }
}

#[test]
fn simulate_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "second|count\n0|10\n1|ten\n").unwrap();
    let (code, _, err) = daedalus(&["simulate", "--trace", bad.to_str().unwrap(), "--no-oracle"]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.csv:3") && err.contains("`ten`"), "{err}");
    let trace = dir.path().join("ok.csv");
    std::fs::write(&trace, "seconds,rate\n0,10\n1,10\n").unwrap();
    let (code, _, err) = daedalus(&[
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--policy",
        "/no/such/policy.wasm",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot load policy `policy`") && err.contains("/no/such/policy.wasm"),
        "{err}"
    );
    let (code, _, err) = daedalus(&["simulate", "--trace", "/no/such/trace.csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn simulate_refuses_inconsistent_runs_before_simulating() {
    let hpa = artifact("hpa.wasm");
    let hpa = hpa.to_str().unwrap();
    let short = "constant:rate=1000,duration=30";
    let sim = |extra: &[&str]| {
        let mut args = vec!["simulate", "--no-oracle", "--out", "/dev/null/never"];
        args.extend_from_slice(extra);
        daedalus(&args)
    };
    let refused = |(code, out, err): (i32, String, String), want: &str| {
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(want), "wanted {want:?} in: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.is_empty(), "nothing simulated: {out}");
    };
    // A random walk whose floor is above its ceiling (it panicked in `clamp` before).
    refused(
        sim(&[
            "--trace",
            "random-walk:min=5,max=2,duration=10",
            "--policy",
            hpa,
        ]),
        "`min` (5) exceeds `max` (2)",
    );
    // The same component twice under one name would overwrite its rows and files.
    let low = format!("{hpa}?target_cpu_utilization=0.5");
    let high = format!("{hpa}?target_cpu_utilization=0.9");
    refused(
        sim(&["--trace", short, "--policy", &low, "--policy", &high]),
        "two policies are named `hpa`",
    );
    // An unknown parameter is refused up front, naming it and what the policy accepts.
    let typo = format!("hpa={hpa}?target_cpu=0.5");
    refused(
        sim(&["--trace", short, "--policy", &typo]),
        "unknown parameter `target_cpu`",
    );
    // A known parameter out of range, found by the probe decision.
    let range = format!("hpa={hpa}?target_cpu_utilization=7");
    refused(
        sim(&["--trace", short, "--policy", &range]),
        "rejects its parameters",
    );
    // A limit that stops every call: the cause is said once, not twice.
    let (code, out, err) = sim(&["--trace", short, "--policy", hpa, "--fuel", "0"]);
    refused((code, out, err.clone()), "validation failed");
    assert_eq!(err.matches("all fuel consumed").count(), 1, "{err}");
    // Zero-length runs and zero intervals are refused by the argument parser.
    for bad in [["--duration-secs", "0"], ["--interval-secs", "0"]] {
        let (code, _, err) = sim(&["--trace", short, "--policy", hpa, bad[0], bad[1]]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(bad[0]), "{err}");
    }
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_daedalus"))
        .args(["policy", "inspect"])
        .arg(artifact("daedalus.wasm"))
        .arg("--cache-dir")
        .arg(cache.path())
        .env_remove("DAEDALUS_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // The reader goes away at once (`daedalus ... | head -0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

/// `daedalus run` stops on SIGTERM (what a container runtime sends), exits 0, and stops the
/// instances it runs for a Kafka Streams job with SIGTERM too, instead of leaving them to be
/// killed with it. Real processes; the engine endpoints are closed ports (cycles only error).
/// `daedalus run --config config`, precompiling into `cache`, at the default log level.
fn run_command(config: &std::path::Path, cache: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_daedalus"));
    cmd.arg("run")
        .arg("--config")
        .arg(config)
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("DAEDALUS_LOG");
    cmd
}

#[test]
fn sigterm_stops_run_and_its_instances_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = one_job_config(
        dir.path(),
        "hpa.wasm",
        &format!(
            r#"name = "ks"
max_parallelism = 2
[jobs.kafka_streams]
prometheus_url = "http://127.0.0.1:{closed}"
bootstrap = "127.0.0.1:{closed}"
topic = "words"
partitions = 2
application_id = "ks"
stop_timeout_secs = 20
instance_command = ["sh", "-c", "trap 'echo term > stopped-{{index}}; exit 0' TERM; echo up > up-{{index}}; while :; do sleep 0.1; done"]
"#
        ),
    );
    let cache = tempfile::tempdir().unwrap();
    let mut child = run_command(&config, cache.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let wait_for = |what: &std::path::Path| {
        for _ in 0..600 {
            if what.exists() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        false
    };
    assert!(
        wait_for(&dir.path().join("up-0")),
        "the instance never started"
    );
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let mut status = None;
    for _ in 0..600 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("run did not stop within 60 s of SIGTERM");
    };
    let err = child.wait_with_output().unwrap().stderr;
    let err = String::from_utf8_lossy(&err);
    assert!(status.success(), "{status:?}: {err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stopped-0"))
            .ok()
            .as_deref(),
        Some("term\n"),
        "the instance was not stopped with SIGTERM: {err}"
    );
}

#[test]
fn policy_test_passes_ours_scores_it_and_fails_a_bad_one() {
    let policies = root().join("target/policies");
    let ds2 = artifact("ds2.wasm");
    let (code, out, err) = daedalus(&[
        "policy",
        "test",
        ds2.to_str().unwrap(),
        "--trace",
        "step:low=20000,high=200000,at=300,duration=600",
        "--policies-dir",
        policies.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("pass bounds") && out.contains("oracle"),
        "{out}"
    );
    assert!(!err.contains("scoring without"), "{err}");
    // Outside the checkout (a scaffolded project) the baselines are not found: the score says so.
    let elsewhere = tempfile::tempdir().unwrap();
    let (code, out, err) = daedalus(&[
        "policy",
        "test",
        ds2.to_str().unwrap(),
        "--trace",
        "step:low=20000,high=200000,at=300,duration=600",
        "--policies-dir",
        elsewhere.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("note: scoring without daedalus, hpa, static12"),
        "{err}"
    );
    assert!(out.contains("oracle") && !out.contains("hpa"), "{out}");
    let hostile = artifact("testing/hostile.wasm");
    let (code, out, _) = daedalus(&[
        "policy",
        "test",
        hostile.to_str().unwrap(),
        "--param",
        "mode=target",
        "--param",
        "parallelism=0",
        "--no-score",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("FAIL bounds"), "{out}");
}

/// Scaffold -> native tests -> component build -> conformance, as a stranger would do it.
#[test]
fn policy_new_scaffolds_a_project_that_builds_and_passes_the_kit() {
    let dir = scaffold_builds_and_passes_the_kit(
        "rust",
        &[
            &["cargo", "test", "-q"],
            &[
                "cargo",
                "build",
                "-q",
                "--release",
                "--target",
                "wasm32-wasip2",
            ],
        ],
        "target/wasm32-wasip2/release/my_rule.wasm",
        &[],
    );
    // A second project of the same name is refused, and so is a name that is no package name.
    let (code, _, err) = daedalus(&[
        "policy",
        "new",
        "my-rule",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = daedalus(&[
        "policy",
        "new",
        "Bad Name",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("must start with a lowercase letter"), "{err}");
}

/// Scaffolds `my-rule` with `--lang lang`, runs the project's own test and build commands
/// (`cargo` is the one running these tests), and checks the component with `policy test
/// --no-score` plus `kit_args` (the limits a job would give it). Returns the parent directory.
fn scaffold_builds_and_passes_the_kit(
    lang: &str,
    steps: &[&[&str]],
    wasm: &str,
    kit_args: &[&str],
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = daedalus(&[
        "policy",
        "new",
        "my-rule",
        "--lang",
        lang,
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("next: cd"), "{out}");
    let project = dir.path().join("my-rule");
    let world = std::fs::read_to_string(project.join("wit/world.wit")).unwrap();
    assert!(world.contains("package daedalus:autoscaler@0.2.0"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for step in steps {
        let program = if step[0] == "cargo" {
            cargo.as_str()
        } else {
            step[0]
        };
        let out = Command::new(program)
            .args(&step[1..])
            .current_dir(&project)
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {step:?}: {e}"));
        assert!(
            out.status.success(),
            "{step:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let wasm = project.join(wasm);
    let mut args = vec!["policy", "test", wasm.to_str().unwrap(), "--no-score"];
    args.extend(kit_args);
    let (code, out, err) = daedalus(&args);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("conformance of my-rule"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    dir
}

/// Fuel for the JS runtime on the kit's 1-hour history (see docs/policies.md); the deadline is
/// a wall-clock backstop, generous for a debug build of the host on a shared machine.
const INTERPRETED_KIT_LIMITS: &[&str] = &["--fuel", "8000000000", "--deadline-ms", "120000"];

#[test]
fn policy_new_js_scaffolds_a_project_that_builds_and_passes_the_kit() {
    scaffold_builds_and_passes_the_kit(
        "js",
        &[&["npm", "run", "build"], &["npm", "test"]],
        "dist/my-rule.wasm",
        INTERPRETED_KIT_LIMITS,
    );
}

#[test]
fn policy_new_python_scaffolds_a_project_that_builds_and_passes_the_kit() {
    scaffold_builds_and_passes_the_kit(
        "python",
        &[&["python3", "-m", "unittest", "-q"], &["./build.sh"]],
        "dist/my-rule.wasm",
        INTERPRETED_KIT_LIMITS,
    );
}

/// `daedalus run` logs at `info` by default (what it watches, so a first run shows it is
/// working), and `--log-level` overrides that; other commands stay quiet at `warn`.
#[test]
fn run_logs_at_info_by_default_and_other_commands_at_warn() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_job_config(
        dir.path(),
        "static.wasm",
        r#"name = "sim"
max_parallelism = 4
[jobs.simulated]
trace = "step:low=20000,high=150000,at=300,duration=7200"
"#,
    );
    let config = config.to_str().unwrap();
    let (code, _, err) = daedalus(&["run", "--config", config, "--duration-secs", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Watching job."), "{err}");
    assert!(!err.contains("DEBUG"), "{err}");
    let (code, _, err) = daedalus(&[
        "run",
        "--config",
        config,
        "--duration-secs",
        "1",
        "--log-level",
        "warn",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("Watching job."), "{err}");
    let path = artifact("hpa.wasm");
    let (code, _, err) = daedalus(&["policy", "inspect", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
}

/// A token read from `api.token_file` is held to the same 16 characters as `api.token` (a
/// short one was accepted, an empty one left every write refused as "wrong bearer token").
#[test]
fn run_refuses_a_short_token_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = one_job_config(
        dir.path(),
        "static.wasm",
        r#"name = "sim"
max_parallelism = 4
[jobs.simulated]
trace = "step:low=20000,high=150000,at=300,duration=7200"
[api]
listen = "127.0.0.1:0"
token_file = "token"
"#,
    );
    std::fs::write(dir.path().join("token"), "short\n").unwrap();
    let config = config.to_str().unwrap();
    let (code, _, err) = daedalus(&["run", "--config", config, "--duration-secs", "1"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("api.token_file") && err.contains("16"),
        "{err}"
    );
    std::fs::write(dir.path().join("token"), "a-long-random-secret\n").unwrap();
    let (code, _, err) = daedalus(&["run", "--config", config, "--duration-secs", "1"]);
    assert_eq!(code, 0, "{err}");
}

/// `GET path` on `addr` over plain HTTP/1.1: the status and the body.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).ok()?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).ok()?;
    let status = reply.get(9..12)?.parse().ok()?;
    let body = reply.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// `policy push` against a running `daedalus run` (two simulated jobs on DS2): swaps into
/// one job, answers "unchanged" the second time, reports every job's refusal of bad params
/// with exit code 1, and refuses without a token or with a wrong one; the jobs run what the
/// pushes left. Then `jobs` shows them, `pause` and `resume` set every job or the one named,
/// and an unknown job or a missing token is an error that sets nothing.
#[test]
fn policy_push_jobs_pause_and_resume_drive_a_running_host() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let token = "a-test-token-that-is-long";
    let job = |name: &str| {
        format!(
            "[[jobs]]\nname = \"{name}\"\npolicy = \"{}\"\nwatch_policy = false\n\
             max_parallelism = 8\n\
             [jobs.simulated]\ntrace = \"step:low=20000,high=150000,at=300,duration=7200\"\n\
             speedup = 10.0\n",
            artifact("ds2.wasm").display()
        )
    };
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        format!(
            "tick_secs = 1\n[api]\nlisten = \"{addr}\"\ntoken = \"{token}\"\n{}{}",
            job("a"),
            job("b")
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let host = run_command(&config, cache.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("host.log")).unwrap())
        .spawn()
        .expect("the binary runs");
    let _host = KillOnDrop(host);
    let log = || std::fs::read_to_string(dir.path().join("host.log")).unwrap_or_default();
    let policies = || -> Option<Vec<String>> {
        let (status, body) = http_get(&addr, "/jobs")?;
        let jobs: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200).then(|| {
            jobs.as_array()
                .unwrap()
                .iter()
                .map(|j| j["policy"]["name"].as_str().unwrap_or("").to_string())
                .collect()
        })
    };
    let mut up = false;
    for _ in 0..600 {
        if policies().is_some_and(|p| p == ["ds2", "ds2"]) {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(up, "the host's jobs never decided: {}", log());
    let hpa = artifact("hpa.wasm");
    let daedalus = |args: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_daedalus"));
        cmd.args(args)
            .env_remove("DAEDALUS_TOKEN")
            .env("DAEDALUS_API", &addr);
        if let Some(t) = token {
            cmd.env("DAEDALUS_TOKEN", t);
        }
        let out = cmd.output().expect("the binary runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let hpa = hpa.to_str().unwrap();
    let push = |args: &[&str], token: Option<&str>| {
        daedalus(&[&["policy", "push", hpa], args].concat(), token)
    };
    let (code, out, err) = push(&["--job", "a"], Some(token));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("a: swapped"), "{out}");
    assert!(out.contains("hpa.wasm (an upload of"), "{out}");
    assert!(out.contains("1 job runs"), "{out}");
    let (code, out, err) = push(&["--job", "a"], Some(token));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("a: unchanged"), "{out}");
    let (code, out, err) = push(&["--param", "no_such_param=1"], Some(token));
    assert_eq!(code, 1, "{out}{err}");
    for j in ["a", "b"] {
        assert!(out.contains(&format!("{j}: swap refused")), "{out}");
    }
    assert!(err.contains("422"), "{err}");
    let (code, out, err) = push(&[], Some("a-wrong-token-that-is-long"));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("401"), "{err}");
    let (code, _, err) = push(&[], None);
    assert_eq!(code, 1);
    assert!(err.contains("DAEDALUS_TOKEN"), "{err}");
    assert_eq!(policies().unwrap(), ["hpa", "ds2"]);

    let (code, out, err) = daedalus(&["jobs"], None);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("JOB"), "{out}");
    assert!(
        lines[1].starts_with("a ") && lines[1].contains("hpa"),
        "{out}"
    );
    assert!(lines[1].contains("(set by api)"), "{out}");
    assert!(
        lines[2].starts_with("b ") && lines[2].contains("ds2"),
        "{out}"
    );
    let paused = || -> Vec<bool> {
        let (_, body) = http_get(&addr, "/jobs").unwrap();
        let jobs: serde_json::Value = serde_json::from_str(&body).unwrap();
        let jobs = jobs.as_array().unwrap();
        jobs.iter()
            .map(|j| j["paused"].as_bool().unwrap())
            .collect()
    };
    let (code, out, err) = daedalus(&["pause"], Some(token));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("paused") && out.contains("a, b"), "{out}");
    assert_eq!(paused(), [true, true]);
    let (code, out, err) = daedalus(&["jobs"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(" paused ").count(), 2, "{out}");
    let (code, out, err) = daedalus(&["resume", "--job", "b"], Some(token));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "resumed: b");
    assert_eq!(paused(), [true, false]);
    let (code, out, err) = daedalus(&["resume", "--job", "a,nope"], Some(token));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("404") && err.contains("nope"), "{err}");
    let (code, _, err) = daedalus(&["resume"], None);
    assert_eq!(code, 1);
    assert!(err.contains("DAEDALUS_TOKEN"), "{err}");
    assert_eq!(paused(), [true, false]);
}

/// Kills a child process when dropped, so a failed test leaves no host running.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
