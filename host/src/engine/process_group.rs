//! Scaling by instances on one machine: [`ProcessGroup`] starts and stops N instances of a
//! command (a Kafka Streams application), stops them gracefully (SIGTERM, wait, then kill),
//! restarts the ones that crash, and, as an [`Actuator`], reports a rescale done only once the
//! group has rebalanced and every instance processes (read through a [`PrometheusCollector`]).
//!
//! The command's arguments may contain `{index}` (0-based instance number) and `{port}`
//! (`base_port + index`, e.g. the metrics port of the instance's JMX exporter).

use super::prometheus::PrometheusCollector;
use super::{Actuator, ApplyOutcome, EngineError, Progress, Target};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// How to run the instances.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// The command and its arguments (`{index}`, `{port}` substituted).
    pub command: Vec<String>,
    /// Working directory.
    pub dir: PathBuf,
    /// Port of instance 0 (`{port}`).
    pub base_port: u16,
    /// Where each instance's output goes (`instance-N.log`).
    pub log_dir: PathBuf,
    /// Time an instance gets to stop after SIGTERM before it is killed.
    pub stop_timeout: Duration,
    /// Most instances (e.g. the input topic's partitions).
    pub max_instances: u32,
}

struct Slot {
    child: Child,
    restarts: u32,
    started: crate::clock::Stopwatch,
}

/// An instance younger than this is not counted as settled: right after a (re)start,
/// Prometheus may still hold the series of the process it replaces.
const MIN_SETTLE: Duration = Duration::from_secs(6);

/// How often the supervisor looks for instances that exited.
const SUPERVISE_EVERY: Duration = Duration::from_secs(2);

/// A group of local instances. A supervisor task (started with the group, when a tokio
/// runtime is running) restarts instances that exit; it ends, stopping the instances, when
/// the group is dropped.
pub struct ProcessGroup {
    spec: GroupSpec,
    slots: Arc<Mutex<Vec<Slot>>>,
    desired: Arc<AtomicU32>,
    restarts: Arc<AtomicU32>,
    readiness: Option<PrometheusCollector>,
}

impl ProcessGroup {
    /// A group with no instance running yet.
    pub fn new(spec: GroupSpec) -> Self {
        let g = ProcessGroup {
            spec,
            slots: Arc::new(Mutex::new(Vec::new())),
            desired: Arc::new(AtomicU32::new(0)),
            restarts: Arc::new(AtomicU32::new(0)),
            readiness: None,
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let supervisor = ProcessGroup {
                spec: g.spec.clone(),
                slots: g.slots.clone(),
                desired: g.desired.clone(),
                restarts: g.restarts.clone(),
                readiness: None,
            };
            rt.spawn(async move {
                loop {
                    tokio::time::sleep(SUPERVISE_EVERY).await;
                    // Only the supervisor holds the slots: the group is gone.
                    if Arc::strong_count(&supervisor.slots) == 1 {
                        break;
                    }
                    if let Err(e) = supervisor.supervise().await {
                        tracing::warn!(error = %e, "Cannot restart an instance.");
                    }
                }
            });
        }
        g
    }

    /// Reports a rescale done only when `collector` sees the group settled at the target.
    pub fn with_readiness(mut self, collector: PrometheusCollector) -> Self {
        self.readiness = Some(collector);
        self
    }

    /// The instance count the group keeps running (share it with the collector).
    pub fn desired(&self) -> Arc<AtomicU32> {
        self.desired.clone()
    }

    /// Instances restarted after they exited on their own.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Process ids of the running instances, by index.
    pub async fn pids(&self) -> Vec<Option<u32>> {
        self.slots
            .lock()
            .await
            .iter()
            .map(|s| s.child.id())
            .collect()
    }

    fn spawn(&self, index: usize) -> Result<Child, EngineError> {
        let port = u32::from(self.spec.base_port) + index as u32;
        let args: Vec<String> = self
            .spec
            .command
            .iter()
            .map(|a| {
                a.replace("{index}", &index.to_string())
                    .replace("{port}", &port.to_string())
            })
            .collect();
        let (prog, rest) = args
            .split_first()
            .ok_or_else(|| EngineError::Other("the instance command is empty".into()))?;
        std::fs::create_dir_all(&self.spec.log_dir)
            .map_err(|e| EngineError::Other(format!("{}: {e}", self.spec.log_dir.display())))?;
        let log = self.spec.log_dir.join(format!("instance-{index}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| EngineError::Other(format!("{}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| EngineError::Other(format!("{}: {e}", log.display())))?;
        let child = Command::new(prog)
            .args(rest)
            .current_dir(&self.spec.dir)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| EngineError::Other(format!("cannot start {prog:?}: {e}")))?;
        tracing::info!(index, pid = child.id(), "Instance started.");
        Ok(child)
    }

    /// Stops `child` gracefully: SIGTERM, then SIGKILL after the stop timeout.
    async fn stop(&self, index: usize, mut child: Child) {
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
            match tokio::time::timeout(self.spec.stop_timeout, child.wait()).await {
                Ok(status) => tracing::info!(index, ?status, "Instance stopped."),
                Err(_) => {
                    tracing::warn!(index, "Instance ignored SIGTERM; killing it.");
                    let _ = child.kill().await;
                }
            }
        }
    }

    /// Starts the first `n` instances of a group that runs none yet (outside any async lock:
    /// for building the group; needs a tokio runtime, as every process spawn here does).
    pub fn start(&self, n: u32) -> Result<(), EngineError> {
        let mut slots = self
            .slots
            .try_lock()
            .map_err(|_| EngineError::Other("the group is busy".into()))?;
        self.desired.store(n, Ordering::SeqCst);
        self.grow(&mut slots, n)
    }

    /// Starts instances until `slots` holds `n`. When one cannot start, the group's size is
    /// what runs: `desired` says so, so the collector does not wait for instances that never
    /// started.
    fn grow(&self, slots: &mut Vec<Slot>, n: u32) -> Result<(), EngineError> {
        while slots.len() < n as usize {
            let child = match self.spawn(slots.len()) {
                Ok(c) => c,
                Err(e) => {
                    self.desired.store(slots.len() as u32, Ordering::SeqCst);
                    return Err(e);
                }
            };
            slots.push(Slot {
                child,
                restarts: 0,
                started: crate::clock::Stopwatch::start(),
            });
        }
        Ok(())
    }

    /// Makes the group run `n` instances now (starting the missing ones, stopping the highest
    /// ones beyond `n`), and restarts any that exited.
    pub async fn scale_to(&self, n: u32) -> Result<(), EngineError> {
        self.desired.store(n, Ordering::SeqCst);
        let mut slots = self.slots.lock().await;
        // Stopped together: one rebalance, and at most one stop timeout however many go.
        let start = (n as usize).min(slots.len());
        let surplus = slots.split_off(start);
        futures_util::future::join_all(
            surplus
                .into_iter()
                .enumerate()
                .map(|(i, s)| self.stop(start + i, s.child)),
        )
        .await;
        self.grow(&mut slots, n)
    }

    /// Restarts the instances that exited on their own; returns how many.
    pub async fn supervise(&self) -> Result<u32, EngineError> {
        let mut slots = self.slots.lock().await;
        let mut restarted = 0;
        for (index, s) in slots.iter_mut().enumerate() {
            if let Ok(Some(status)) = s.child.try_wait() {
                s.restarts += 1;
                tracing::warn!(index, %status, restarts = s.restarts, "Instance exited; restarting it.");
                s.child = self.spawn(index)?;
                s.started = crate::clock::Stopwatch::start();
                restarted += 1;
                self.restarts.fetch_add(1, Ordering::SeqCst);
            }
        }
        Ok(restarted)
    }

    /// Stops every instance.
    pub async fn shutdown(&self) {
        let _ = self.scale_to(0).await;
    }
}

#[async_trait::async_trait]
impl Actuator for ProcessGroup {
    async fn apply(&self, target: &Target) -> Result<ApplyOutcome, EngineError> {
        let n = target.job;
        if n == 0 || n > self.spec.max_instances {
            return Ok(ApplyOutcome::Rejected(format!(
                "{n} instances: must be within 1..={} (the input partitions)",
                self.spec.max_instances
            )));
        }
        let from = self.slots.lock().await.len() as u32;
        if from == n {
            self.desired.store(n, Ordering::SeqCst);
            return Ok(ApplyOutcome::AlreadyAtTarget);
        }
        self.scale_to(n).await?;
        Ok(ApplyOutcome::Applied(format!("{from} -> {n} instances")))
    }

    async fn shutdown(&self) {
        ProcessGroup::shutdown(self).await;
    }

    async fn progress(&self, target: &Target) -> Result<Progress, EngineError> {
        self.supervise().await?;
        let (running, youngest) = {
            let slots = self.slots.lock().await;
            let youngest = slots.iter().map(|s| s.started.elapsed()).min();
            (slots.len() as u32, youngest)
        };
        if running != target.job {
            return Ok(Progress::Pending(format!(
                "{running} of {} instances running",
                target.job
            )));
        }
        if self.readiness.is_some()
            && let Some(age) = youngest.filter(|a| *a < MIN_SETTLE)
        {
            return Ok(Progress::Pending(format!(
                "an instance started {:.1} s ago",
                age.as_secs_f64()
            )));
        }
        match &self.readiness {
            None => Ok(Progress::Done),
            Some(c) => {
                let v = c.view().await?;
                Ok(match c.unsettled(&v, target.job) {
                    None => Progress::Done,
                    Some(why) => Progress::Pending(why),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(dir: &std::path::Path, command: &[&str]) -> ProcessGroup {
        ProcessGroup::new(GroupSpec {
            command: command.iter().map(|s| s.to_string()).collect(),
            dir: dir.to_path_buf(),
            base_port: 9400,
            log_dir: dir.join("logs"),
            stop_timeout: Duration::from_secs(2),
            max_instances: 4,
        })
    }

    /// An instance that cannot start (its log file's path is a directory) ends the scale-up
    /// there, and the group's desired size is what runs, not the target.
    #[tokio::test]
    async fn a_partly_failed_scale_up_leaves_the_desired_size_at_what_runs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs/instance-1.log")).unwrap();
        let g = group(dir.path(), &["sh", "-c", "exec sleep 30"]);
        let e = g.apply(&Target::job(3)).await.unwrap_err();
        assert!(e.to_string().contains("instance-1.log"), "{e}");
        assert_eq!(g.pids().await.len(), 1);
        assert_eq!(g.desired().load(Ordering::SeqCst), 1);
        g.shutdown().await;
    }

    #[tokio::test]
    async fn scales_stops_gracefully_and_restarts_crashed_instances() {
        let dir = tempfile::tempdir().unwrap();
        // Each instance writes its index and port, then sleeps; SIGTERM ends it.
        let g = group(
            dir.path(),
            &["sh", "-c", "echo {index} {port}; exec sleep 30"],
        );
        assert!(matches!(
            g.apply(&Target::job(3)).await.unwrap(),
            ApplyOutcome::Applied(_)
        ));
        assert_eq!(
            g.apply(&Target::job(3)).await.unwrap(),
            ApplyOutcome::AlreadyAtTarget
        );
        assert!(matches!(
            g.apply(&Target::job(5)).await.unwrap(),
            ApplyOutcome::Rejected(_)
        ));
        assert_eq!(g.progress(&Target::job(3)).await.unwrap(), Progress::Done);
        let pids = g.pids().await;
        assert_eq!(pids.len(), 3);
        g.apply(&Target::job(2)).await.unwrap();
        assert_eq!(g.pids().await, pids[..2].to_vec());
        // Kill one: the next progress check restarts it under the same index.
        let victim = pids[1].unwrap();
        std::process::Command::new("kill")
            .arg("-KILL")
            .arg(victim.to_string())
            .status()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        g.progress(&Target::job(2)).await.unwrap();
        assert_eq!(g.restarts(), 1);
        let now = g.pids().await;
        assert_eq!(now[0], pids[0]);
        assert_ne!(now[1], pids[1]);
        // The restarted shell writes its line (a loaded machine may take a moment to start it).
        let log = dir.path().join("logs/instance-1.log");
        let lines = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|l| *l == "1 9401")
                .count()
        };
        for _ in 0..100 {
            if lines() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        g.shutdown().await;
        assert_eq!(lines(), 2);
    }

    #[tokio::test]
    async fn an_instance_that_ignores_sigterm_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let g = group(
            dir.path(),
            &[
                "sh",
                "-c",
                "trap '' TERM; touch trapped; sleep 30 & wait; sleep 30",
            ],
        );
        g.scale_to(1).await.unwrap();
        // Only once the trap is set (a loaded machine may take a while to start the shell).
        while !dir.path().join("trapped").exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let clock = crate::clock::Stopwatch::start();
        g.scale_to(0).await.unwrap();
        assert!(clock.elapsed() >= Duration::from_secs(2));
    }

    /// Instances scaled away get SIGTERM together: each one, on its SIGTERM, waits (up to
    /// 10 s, beyond the 2 s stop timeout) for the other's, and leaves a mark only if it saw it.
    /// Stopped one by one, the first is killed before the second hears anything.
    #[tokio::test]
    async fn instances_scaled_away_are_stopped_together() {
        let dir = tempfile::tempdir().unwrap();
        let g = group(
            dir.path(),
            &[
                "sh",
                "-c",
                "trap 'kill $!; touch term-{index}; for i in $(seq 100); do \
                 if [ -e term-0 ] && [ -e term-1 ]; then touch saw-{index}; exit 0; fi; \
                 sleep 0.1; done; exit 1' TERM; touch ready-{index}; sleep 30 & wait",
            ],
        );
        g.scale_to(2).await.unwrap();
        for i in 0..2 {
            while !dir.path().join(format!("ready-{i}")).exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        g.scale_to(0).await.unwrap();
        for i in 0..2 {
            assert!(
                dir.path().join(format!("saw-{i}")).exists(),
                "instance {i} never saw the other's SIGTERM"
            );
        }
    }
}
