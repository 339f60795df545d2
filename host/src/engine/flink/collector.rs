//! `FlinkRestCollector`: one observation of a Flink job from the REST API.
//!
//! - Job-level: state, `uptime`, `numRescales`; the job is "not ready" while it or any vertex
//!   is not `RUNNING`, and for `warm_up` after every (re)start, because Flink's `*PerSecond`
//!   meters average over 60 s and restart from zero when a vertex is redeployed: zeros from a
//!   restarting job must never reach a policy as a quiet load.
//! - Per operator (vertex): parallelism, max parallelism, records in/out per second (sums over
//!   subtasks), busy and back-pressured time as ratios (means over subtasks).
//! - Lag: the sum of the sources' `pendingRecords` (the Kafka connector's records between the
//!   reader's position and the end of the partitions).
//! - Workers: [`WorkerSource::Subtasks`] (default) makes every subtask of the busiest non-source
//!   vertex a worker, with its busy ratio as CPU and its input rate as throughput: what Flink's
//!   own autoscaler models, and the only per-worker CPU there is when several slots share one
//!   TaskManager process. [`WorkerSource::TaskManagers`] makes every TaskManager a worker
//!   (`Status.JVM.CPU.Load` and the input rate of the busiest vertex's subtasks on it): the
//!   paper's setup, one slot per TaskManager.

use super::rest::{FlinkRest, JobDetails, MetricValue, metric};
use super::{JobSelector, resolve};
use crate::engine::{Collected, Collector, EngineError};
use crate::model::{Observation, OperatorSample, WorkerSample};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Where per-worker samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WorkerSource {
    /// Subtasks of the busiest non-source vertex (busy ratio as CPU).
    #[default]
    Subtasks,
    /// TaskManagers (JVM CPU load).
    TaskManagers,
}

const VERTEX_METRICS: &[&str] = &[
    "numRecordsInPerSecond",
    "numRecordsOutPerSecond",
    "busyTimeMsPerSecond",
    "backPressuredTimeMsPerSecond",
];

/// The collector.
#[derive(Debug)]
pub struct FlinkRestCollector {
    rest: FlinkRest,
    job: JobSelector,
    warm_up: Duration,
    workers: WorkerSource,
    /// Cached name of each source vertex's `pendingRecords` metric (operator-scoped, so its
    /// prefix depends on the operator's name).
    pending_names: Mutex<BTreeMap<String, Option<String>>>,
}

impl FlinkRestCollector {
    /// A collector for `job` through `rest`; `warm_up` is how long after a (re)start the job is
    /// reported not ready.
    pub fn new(
        rest: FlinkRest,
        job: JobSelector,
        warm_up: Duration,
        workers: WorkerSource,
    ) -> Self {
        FlinkRestCollector {
            rest,
            job,
            warm_up,
            workers,
            pending_names: Mutex::new(BTreeMap::new()),
        }
    }

    async fn pending_records(&self, jid: &str, vid: &str) -> Result<Option<f64>, EngineError> {
        let cached = self
            .pending_names
            .lock()
            .expect("no panics while held")
            .get(vid)
            .cloned();
        let name = match cached {
            Some(n) => n,
            None => {
                let names = self.rest.vertex_metric_names(jid, vid).await?;
                let found = names
                    .into_iter()
                    .find(|n| n == "pendingRecords" || n.ends_with(".pendingRecords"));
                // Cache only a hit: right after a deploy the list can still be empty.
                if found.is_some() {
                    self.pending_names
                        .lock()
                        .expect("no panics while held")
                        .insert(vid.to_string(), found.clone());
                }
                found
            }
        };
        let Some(name) = name else { return Ok(None) };
        let m = self.rest.vertex_metrics(jid, vid, &[&name]).await?;
        Ok(metric(&m, &name)
            .and_then(|v| v.sum)
            .filter(|v| v.is_finite() && *v >= 0.0))
    }

    async fn workers(&self, job: &JobDetails, vid: &str) -> Result<Vec<WorkerSample>, EngineError> {
        let vertex = job
            .vertices
            .iter()
            .find(|v| v.id == vid)
            .expect("caller picked it");
        let mut per_subtask = Vec::new();
        for i in 0..vertex.parallelism {
            let m = self
                .rest
                .subtask_metrics(
                    &job.jid,
                    vid,
                    i,
                    &["busyTimeMsPerSecond", "numRecordsInPerSecond"],
                )
                .await?;
            per_subtask.push((
                i,
                ratio(metric(&m, "busyTimeMsPerSecond").and_then(MetricValue::number))
                    .map(|ms| (ms / 1000.0).min(1.0)),
                rate(metric(&m, "numRecordsInPerSecond").and_then(MetricValue::number)),
            ));
        }
        match self.workers {
            WorkerSource::Subtasks => Ok(per_subtask
                .into_iter()
                .map(|(i, busy, thr)| WorkerSample {
                    worker_id: format!("{}#{i}", vertex.name),
                    cpu_utilization: busy,
                    throughput_records_per_sec: thr,
                })
                .collect()),
            WorkerSource::TaskManagers => {
                let placement = self.rest.vertex(&job.jid, vid).await?;
                let mut out = Vec::new();
                for tm in self.rest.taskmanagers().await? {
                    let m = self
                        .rest
                        .taskmanager_metrics(&tm.id, &["Status.JVM.CPU.Load"])
                        .await?;
                    let cpu =
                        ratio(metric(&m, "Status.JVM.CPU.Load").and_then(MetricValue::number));
                    let mine: Vec<u32> = placement
                        .subtasks
                        .iter()
                        .filter(|s| s.taskmanager_id.as_deref() == Some(tm.id.as_str()))
                        .map(|s| s.subtask)
                        .collect();
                    let thr: Option<f64> = mine
                        .iter()
                        .map(|i| per_subtask.iter().find(|s| s.0 == *i).and_then(|s| s.2))
                        .sum();
                    out.push(WorkerSample {
                        worker_id: tm.id.clone(),
                        cpu_utilization: cpu,
                        throughput_records_per_sec: if mine.is_empty() { Some(0.0) } else { thr },
                    });
                }
                Ok(out)
            }
        }
    }
}

fn ratio(ms_per_s_or_fraction: Option<f64>) -> Option<f64> {
    ms_per_s_or_fraction.filter(|v| v.is_finite() && *v >= 0.0)
}

fn rate(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v >= 0.0)
}

fn not_ready(reason: String, parallelism: Option<u32>) -> Collected {
    Collected::NotReady {
        reason,
        parallelism,
    }
}

#[async_trait::async_trait]
impl Collector for FlinkRestCollector {
    async fn collect(&self, now_ms: u64) -> Result<Collected, EngineError> {
        let job = match resolve(&self.rest, &self.job).await {
            Ok(j) => j,
            Err(EngineError::JobNotFound(why)) => return Ok(not_ready(why, None)),
            Err(e) => return Err(e),
        };
        let parallelism = job.vertices.iter().map(|v| v.parallelism).max();
        if job.state != "RUNNING" {
            return Ok(not_ready(format!("job is {}", job.state), parallelism));
        }
        if let Some(v) = job.vertices.iter().find(|v| v.status != "RUNNING") {
            return Ok(not_ready(
                format!("vertex {:?} is {}", v.name, v.status),
                parallelism,
            ));
        }
        let jm = self.rest.job_metrics(&job.jid, &["uptime"]).await?;
        let uptime = metric(&jm, "uptime").and_then(MetricValue::number);
        match uptime {
            None => return Ok(not_ready("job uptime not reported yet".into(), parallelism)),
            Some(u) if u < self.warm_up.as_millis() as f64 => {
                return Ok(not_ready(
                    format!(
                        "running for {:.0} s only; meters still warming up",
                        u / 1000.0
                    ),
                    parallelism,
                ));
            }
            Some(_) => {}
        }
        let mut operators = Vec::new();
        let mut lag: Option<f64> = None;
        let mut lag_missing = false;
        let mut source_out = 0.0;
        let mut source_out_known = true;
        for v in &job.vertices {
            let m = self
                .rest
                .vertex_metrics(&job.jid, &v.id, VERTEX_METRICS)
                .await?;
            let sum = |n: &str| rate(metric(&m, n).and_then(|x| x.sum));
            let avg_ratio =
                |n: &str| ratio(metric(&m, n).and_then(|x| x.avg)).map(|ms| (ms / 1000.0).min(1.0));
            let upstream = job.upstream(&v.id);
            if upstream.is_empty() {
                match self.pending_records(&job.jid, &v.id).await? {
                    Some(p) => lag = Some(lag.unwrap_or(0.0) + p),
                    None => lag_missing = true,
                }
                match sum("numRecordsOutPerSecond") {
                    Some(r) => source_out += r,
                    None => source_out_known = false,
                }
            }
            operators.push(OperatorSample {
                operator_id: v.id.clone(),
                upstream,
                parallelism: v.parallelism,
                max_parallelism: u32::try_from(v.max_parallelism).unwrap_or(0),
                busy_ratio: avg_ratio("busyTimeMsPerSecond"),
                backpressure_ratio: avg_ratio("backPressuredTimeMsPerSecond"),
                records_in_per_sec: sum("numRecordsInPerSecond"),
                records_out_per_sec: sum("numRecordsOutPerSecond"),
            });
        }
        // The busiest non-source vertex carries the per-worker model.
        let worker_vertex = operators
            .iter()
            .filter(|o| !o.upstream.is_empty())
            .max_by(|a, b| {
                a.busy_ratio
                    .unwrap_or(0.0)
                    .total_cmp(&b.busy_ratio.unwrap_or(0.0))
            })
            .map(|o| o.operator_id.clone());
        let workers = match worker_vertex {
            Some(vid) => self.workers(&job, &vid).await?,
            None => Vec::new(),
        };
        Ok(Collected::Ready(Observation {
            at_ms: now_ms,
            parallelism: parallelism.unwrap_or(1),
            input_records_per_sec: None,
            throughput_records_per_sec: source_out_known.then_some(source_out),
            lag_records: if lag_missing { None } else { lag },
            workers,
            operators,
        }))
    }
}
