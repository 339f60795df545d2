//! The real services the engine tests run against (Kafka, Flink, Prometheus), started by the
//! scripts in `tests/services/`. A test that needs a service calls [`up`]; when a service
//! cannot start the test fails with the script's reason, never skips. Tests that share the
//! Flink cluster take [`exclusive`] so they do not fight over its slots and the 2 cores.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// Endpoints of the local services.
pub const KAFKA: &str = "127.0.0.1:9092";
/// Flink's REST API.
pub const FLINK: &str = "http://127.0.0.1:8081";

fn script(name: &str) -> PathBuf {
    crate::workspace_root().join("tests/services").join(name)
}

/// Runs a service script; panics with its output when it fails.
pub fn sh(name: &str, args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/services/{name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tests/services/{name} {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Starts the named services (once per test process) and checks each printed `READY`.
pub fn up(names: &[&str]) {
    static STARTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut started = STARTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for n in names {
        if started.contains(*n) {
            continue;
        }
        let out = sh(&format!("{n}.sh"), &["up"]);
        assert!(
            out.lines().any(|l| l.starts_with(&format!("READY {n} "))),
            "{n} did not print READY:\n{out}"
        );
        started.insert((*n).to_string());
    }
}

/// Serializes the tests that use the Flink cluster (an async lock: it is held across awaits,
/// and each test has its own runtime).
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// Creates a topic (idempotent).
pub fn topic(name: &str, partitions: u32) {
    sh("kafka.sh", &["topic", name, &partitions.to_string()]);
}

/// Grows a topic to `partitions` partitions.
pub fn grow_topic(name: &str, partitions: u32) {
    sh("kafka.sh", &["partitions", name, &partitions.to_string()]);
}

/// Committed records in a topic (read_committed).
pub fn count(topic: &str) -> u64 {
    let out = sh("kafka.sh", &["count", topic]);
    out.trim()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("kafka.sh count {topic} printed {out:?}"))
}

/// A running word-count job; cancelled when dropped.
#[derive(Debug)]
pub struct WordCountJob {
    /// Flink job id.
    pub id: String,
    /// Flink job name.
    pub name: String,
    /// Input topic.
    pub input: String,
    /// Output topic.
    pub output: String,
}

impl WordCountJob {
    /// Creates `<name>-in` (4 partitions) and `<name>-out`, and submits the job at
    /// `parallelism`, burning `cost_us` of CPU per record. `<name>` is `prefix` plus a unique
    /// suffix, so a rerun never reads an earlier run's topics (the broker keeps them).
    pub fn submit(prefix: &str, parallelism: u32, cost_us: u32) -> Self {
        let prefix = &format!(
            "{prefix}-{}",
            daedalus_host::clock::unix_now_ms() % 1_000_000_000
        );
        let input = format!("{prefix}-in");
        let output = format!("{prefix}-out");
        topic(&input, 4);
        topic(&output, 4);
        let mut args = vec!["submit".to_string(), parallelism.to_string()];
        args.extend(Self::program_args(prefix, cost_us));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sh("flink-job.sh", &args);
        let id = out
            .lines()
            .last()
            .map(|l| l.trim().to_string())
            .filter(|l| l.len() == 32)
            .unwrap_or_else(|| panic!("flink-job.sh submit printed {out:?}"));
        WordCountJob {
            id,
            name: prefix.to_string(),
            input,
            output,
        }
    }
}

impl WordCountJob {
    /// The job's program arguments for `name` (as `submit` passes them).
    pub fn program_args(name: &str, cost_us: u32) -> Vec<String> {
        let pairs = [
            ("--input", format!("{name}-in")),
            ("--output", format!("{name}-out")),
            ("--group", name.to_string()),
            ("--tx-prefix", name.to_string()),
            ("--name", name.to_string()),
            ("--cost-us", cost_us.to_string()),
        ];
        pairs
            .into_iter()
            .flat_map(|(k, v)| [k.to_string(), v])
            .collect()
    }

    /// The job's jar (built by `flink-job.sh submit`).
    pub fn jar() -> PathBuf {
        crate::workspace_root().join("jobs/flink-wordcount/target/flink-wordcount.jar")
    }
}

impl Drop for WordCountJob {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("flink-job.sh"))
            .args(["cancel", &self.id])
            .output();
    }
}

/// Collects every 500 ms until the workers' summed throughput reaches `at_least` records/s:
/// the time that took (the metric delay from a load step to the policy) and that observation,
/// or the last answer when `within` passes first.
pub async fn until_workers_reach(
    c: &dyn daedalus_host::engine::Collector,
    at_least: f64,
    within: std::time::Duration,
) -> Result<(std::time::Duration, daedalus_host::model::Observation), String> {
    use daedalus_host::engine::Collected;
    let clock = daedalus_host::clock::Stopwatch::start();
    let mut last = String::new();
    while clock.elapsed() < within {
        match c.collect(daedalus_host::clock::unix_now_ms()).await {
            Ok(Collected::Ready(o)) => {
                let thr: f64 = o
                    .workers
                    .iter()
                    .filter_map(|w| w.throughput_records_per_sec)
                    .sum();
                if thr >= at_least {
                    return Ok((clock.elapsed(), o));
                }
                last = format!("{:?}", o.workers);
            }
            other => last = format!("{other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    Err(last)
}
