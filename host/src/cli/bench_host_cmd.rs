//! `daedalus bench-host`: how many jobs one host sustains. Runs N simulated jobs (the bundled
//! advertising trace, real time, one policy) for a while at a given tick, with the SQLite
//! store, and reports per N: the share of scheduled cycles that ran, the host's CPU share,
//! its memory, the policy call time and the database growth per job per day (samples,
//! decisions and events; the full observations are bounded to twice the history window; the
//! compacted size before the run, schema and job rows, is subtracted).
//! Then the hot-swap latency: from rewriting a watched policy file to the first decision of
//! the new policy.

use anyhow::Context;
use clap::Args;
use daedalus_host::live::{BuiltJob, HostParts, RunConfig, build_job, run_job};
use daedalus_host::policy::{EngineOptions, PolicyEngine};
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of `bench-host`.
#[derive(Debug, Args)]
pub(crate) struct BenchHostArgs {
    /// Job counts to try, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000,2000")]
    jobs: Vec<usize>,
    /// Seconds to run each count.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Tick, seconds.
    #[arg(long, default_value_t = 10)]
    tick_secs: u64,
    /// The policy every job runs.
    #[arg(long, default_value = "target/policies/daedalus.wasm")]
    policy: PathBuf,
    /// The policy the swap benchmark alternates with `--policy`.
    #[arg(long, default_value = "target/policies/hpa.wasm")]
    swap_with: PathBuf,
    /// Trace of the simulated jobs.
    #[arg(long, default_value = "traces/advertising_6h_550K_max.csv")]
    trace: String,
}

/// CPU time of this process so far (user + system), from `/proc/self/stat`.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// Resident memory, MiB, from `/proc/self/status`.
fn rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn config(n: usize, args: &BenchHostArgs, db: &std::path::Path) -> anyhow::Result<RunConfig> {
    let policy = std::fs::canonicalize(&args.policy).with_context(|| {
        format!(
            "{} (run `cargo xtask build-policies`)",
            args.policy.display()
        )
    })?;
    let trace = std::fs::canonicalize(&args.trace)
        .map_or_else(|_| args.trace.clone(), |p| p.display().to_string());
    let mut text = format!(
        "tick_secs = {}\n[store]\npath = \"{}\"\n",
        args.tick_secs,
        db.display()
    );
    for i in 0..n {
        text.push_str(&format!(
            "[[jobs]]\nname = \"job-{i}\"\npolicy = \"{}\"\nmax_parallelism = 18\nwatch_policy = false\n\
             [jobs.simulated]\ntrace = \"{trace}\"\n",
            policy.display()
        ));
    }
    RunConfig::parse(&text)
}

/// Bytes of the benchmark's database and its write-ahead log in `dir`.
fn db_size(dir: &std::path::Path) -> u64 {
    ["bench.db", "bench.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

pub(crate) fn run(
    args: BenchHostArgs,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<std::process::ExitCode> {
    let engine = PolicyEngine::new(EngineOptions {
        cache_dir,
        ..EngineOptions::default()
    })?;
    let rt = tokio::runtime::Runtime::new()?;
    outln!(
        "| jobs | cycles run / scheduled | host CPU (of 1 core) | RSS MiB | policy call mean ms | DB growth per job per day |"
    );
    outln!("| ---: | ---: | ---: | ---: | ---: | ---: |");
    for &n in &args.jobs {
        let dir = tempfile_dir()?;
        let db = dir.join("bench.db");
        let cfg = config(n, &args, &db)?;
        let parts = HostParts::new(&cfg, engine.clone())?;
        let measured = rt.block_on(async {
            let mut built: Vec<BuiltJob> = Vec::new();
            for j in &cfg.jobs {
                built.push(build_job(&cfg, j, &parts, false).await?);
            }
            parts.started();
            // The size before the run (schema, job rows), compacted as at the end, so the
            // growth counts only what the run wrote.
            if let Some(store) = &parts.store {
                store.vacuum()?;
            }
            let db_before = db_size(&dir);
            let cpu0 = cpu_time();
            let t0 = daedalus_host::clock::Stopwatch::start();
            let (tx, rx) = tokio::sync::watch::channel(false);
            let tasks: Vec<_> = built
                .into_iter()
                .map(|b| {
                    tokio::spawn(run_job(
                        b,
                        Duration::from_secs(args.tick_secs),
                        None,
                        rx.clone(),
                    ))
                })
                .collect();
            tokio::time::sleep(Duration::from_secs(args.secs)).await;
            let _ = tx.send(true);
            let mut loops = Vec::new();
            for t in tasks {
                loops.push(t.await?);
            }
            let wall = t0.elapsed();
            let cpu = match (cpu0, cpu_time()) {
                (Some(a), Some(b)) => Some((b - a).as_secs_f64() / wall.as_secs_f64()),
                _ => None,
            };
            let rss = rss_mib();
            // What grows with time: drop the full observations (bounded: twice the history
            // window per job) and compact, so the file holds samples, decisions and events.
            if let Some(store) = &parts.store {
                for l in &loops {
                    store.prune(&l.settings().name, 0, i64::MAX as u64)?;
                }
                store.vacuum()?;
            }
            anyhow::Ok((cpu, wall, rss, parts.metrics.encode(), db_before))
        })?;
        let (cpu, wall, rss, metrics, db_before) = measured;
        let sum = |name: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(name))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                // `Sum` of no f64 is -0.0, which printed as "-0.00 ms" when no call was recorded.
                .fold(0.0, |a, b| a + b)
        };
        let ran = sum("daedalus_cycles_total");
        let scheduled = n as f64 * (wall.as_secs_f64() / args.tick_secs as f64).floor();
        let calls = sum("daedalus_policy_call_seconds_count");
        // No recorded call (no cycle reached the policy) shows as "-", not as a 0 ms call.
        let call_ms = (calls > 0.0).then(|| 1e3 * sum("daedalus_policy_call_seconds_sum") / calls);
        drop(parts);
        let db_bytes = db_size(&dir).saturating_sub(db_before);
        let per_job_day =
            db_bytes as f64 / n as f64 * (86_400.0 / wall.as_secs_f64()) / (1024.0 * 1024.0);
        outln!(
            "| {n} | {ran:.0} / {scheduled:.0} ({:.1}%) | {} | {} | {} | {per_job_day:.1} MiB |",
            100.0 * ran / scheduled.max(1.0),
            cpu.map_or("?".into(), |c| format!("{:.0}%", 100.0 * c)),
            rss.map_or("?".into(), |m| format!("{m:.0}")),
            call_ms.map_or("-".into(), |c| format!("{c:.2}")),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    let swaps = swap_latency(&engine, &rt, &args)?;
    let ms: Vec<String> = swaps
        .iter()
        .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
        .collect();
    let mean = swaps.iter().map(Duration::as_secs_f64).sum::<f64>() / swaps.len() as f64;
    outln!(
        "\nhot swap, file rewritten -> first decision of the new policy, 1 s tick: mean {:.0} ms \
         (each, ms: {}); the wait for the next tick is half a tick on average",
        mean * 1e3,
        ms.join(", ")
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// Rewrites a watched job's policy file (alternating two policies) and times each swap from
/// the write to the first decision of the new policy, at a 1 s tick.
fn swap_latency(
    engine: &std::sync::Arc<PolicyEngine>,
    rt: &tokio::runtime::Runtime,
    args: &BenchHostArgs,
) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile_dir()?;
    let file = dir.join("policy.wasm");
    let a = std::fs::read(&args.policy)?;
    let b = std::fs::read(&args.swap_with)
        .with_context(|| format!("--swap-with {}", args.swap_with.display()))?;
    std::fs::write(&file, &a)?;
    let text = format!(
        "tick_secs = 1\n[[jobs]]\nname = \"swapped\"\npolicy = \"{}\"\nmax_parallelism = 18\n\
         [jobs.simulated]\ntrace = \"constant:rate=50000,duration=3600\"\n",
        file.display()
    );
    let cfg = RunConfig::parse(&text)?;
    let parts = HostParts::new(&cfg, engine.clone())?;
    let out = rt.block_on(async {
        let built = build_job(&cfg, &cfg.jobs[0], &parts, false).await?;
        parts.started();
        let shared = built.job.shared();
        let _watcher = daedalus_host::live::watch::watch(vec![(file.clone(), shared.clone())])?;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_job(built, Duration::from_secs(1), None, rx));
        let mut out = Vec::new();
        for i in 0..6 {
            let bytes = if i % 2 == 0 { &b } else { &a };
            let digest = daedalus_host::policy::sha256_hex(bytes);
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let t0 = daedalus_host::clock::Stopwatch::start();
            let tmp = dir.join("policy.tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &file)?;
            loop {
                let st = shared.status();
                if st
                    .recent_decisions
                    .front()
                    .is_some_and(|d| d.digest == digest)
                {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(30) {
                    anyhow::bail!("the swap did not happen within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            out.push(t0.elapsed());
        }
        let _ = tx.send(true);
        task.await?;
        anyhow::Ok(out)
    });
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "daedalus-bench-host-{}-{}",
        std::process::id(),
        daedalus_host::clock::unix_now_ms()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
