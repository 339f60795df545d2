//! `FlinkRestCollector`: one observation of a Flink job from the REST API.
//!
//! - Job-level: state, `uptime`, `numRescales`; the job is "not ready" while it or any vertex
//!   is not `RUNNING`, and for `warm_up` after every (re)start, because Flink's `*PerSecond`
//!   meters average over 60 s and restart from zero when a vertex is redeployed: zeros from a
//!   restarting job must never reach a policy as a quiet load.
//! - Per operator (vertex): parallelism, max parallelism, records in/out per second (sums over
//!   subtasks), busy and back-pressured time as ratios (means over subtasks). A vertex or
//!   subtask whose meters have not been sampled since it was deployed reads fully busy on no
//!   records; its numbers are reported unknown, never as a saturated task.
//! - Input (with an [`InputTopic`]): the arrival rate from the topic's end offsets between
//!   samples; the lag as the sum over partitions of end offset minus the source reader's
//!   position (one past `KafkaSourceReader.topic.T.partition.N.currentOffset`, the offset of
//!   the last record it read); the consumption rate from
//!   the positions between samples of the same job run. These are fresh numbers, where the
//!   `*PerSecond` meters average over 60 s, up to the REST API's metric cache: positions that
//!   all stand still while records wait are that cache (or a stall), so the consumption is
//!   unknown for that collection and the next fresh positions are measured from the earlier
//!   ones (a stall reads 0 once the positions stood still for a minute). Without every
//!   partition's position, the throughput is the sources' `numRecordsOutPerSecond`. The
//!   connector's `pendingRecords` gauge is the fallback for the lag: it is measured from the
//!   fetch position, so it under-reports and jumps under load.
//! - Workers: [`WorkerSource::Subtasks`] (default) makes every subtask of one vertex a worker
//!   (the configured `worker_vertex`, else the busiest non-source vertex that processes records), with its busy ratio as CPU and its input rate as throughput: what Flink's
//!   own autoscaler models, and the only per-worker CPU there is when several slots share one
//!   TaskManager process. [`WorkerSource::TaskManagers`] makes every TaskManager a worker
//!   (the input rate of the busiest vertex's subtasks on it, and its CPU): the paper's setup,
//!   one slot per TaskManager. The CPU is the rate of `Status.JVM.CPU.Time` between two
//!   samples over the cores the TaskManager's slots can use, `min(slots, cores)`, so a
//!   one-slot TaskManager whose task saturates a core reads 1.0 however many cores the machine
//!   has (`Status.JVM.CPU.Load`, the share of all the machine's cores, read 0.25 for it on
//!   four); unknown at the first sample and after a TaskManager restarts.

use super::rest::{FlinkRest, JobDetails, MetricValue, metric};
use super::{JobSelector, resolve};
use crate::engine::kafka::InputTopic;
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
    /// TaskManagers: the JVM's CPU time over the interval, as a share of the cores its slots
    /// can use (`min(slots, cores)`).
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
    input: Option<InputTopic>,
    worker_vertex: Option<String>,
    last: Mutex<Option<Sample>>,
    /// Each TaskManager's `(sampled at ms, JVM CPU time ns)` at the previous collection.
    tm_cpu: Mutex<BTreeMap<String, (u64, f64)>>,
}

/// Offsets at the previous collection, for rates.
#[derive(Debug, Clone)]
struct Sample {
    at_ms: u64,
    ends: Option<BTreeMap<i32, i64>>,
    /// The reader positions consumption is measured from, when every partition had one.
    positions: Option<Positions>,
}

/// The source readers' positions of one job run, and when they were read.
#[derive(Debug, Clone, PartialEq)]
struct Positions {
    at_ms: u64,
    jid: String,
    by_partition: BTreeMap<i32, i64>,
}

/// What the source vertices say about their input.
#[derive(Debug, Default)]
struct SourceView {
    /// Reader position per partition.
    positions: BTreeMap<i32, i64>,
    /// Sum of `pendingRecords`, if every source reports it.
    pending: Option<f64>,
    /// Sum of the sources' `numRecordsOutPerSecond`, if every source reports it.
    out_rate: Option<f64>,
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
            input: None,
            worker_vertex: None,
            last: Mutex::new(None),
            tm_cpu: Mutex::new(BTreeMap::new()),
        }
    }

    /// Takes the per-worker samples from the vertex with this name (or containing it) instead
    /// of the busiest one.
    pub fn with_worker_vertex(mut self, name: &str) -> Self {
        self.worker_vertex = Some(name.to_string());
        self
    }

    /// Follows the job's input topic too (arrival rate, lag, consumption rate).
    pub fn with_input(mut self, input: InputTopic) -> Self {
        self.input = Some(input);
        self
    }

    /// Positions, pending records and output rate of the source vertices.
    async fn sources(&self, job: &JobDetails) -> Result<SourceView, EngineError> {
        let mut view = SourceView {
            pending: Some(0.0),
            out_rate: Some(0.0),
            ..SourceView::default()
        };
        let topic = self.input.as_ref().map(InputTopic::topic);
        for v in job
            .vertices
            .iter()
            .filter(|v| job.upstream(&v.id).is_empty())
        {
            let names = self.rest.vertex_metric_names(&job.jid, &v.id).await?;
            let pending = names
                .iter()
                .find(|n| *n == "pendingRecords" || n.ends_with(".pendingRecords"));
            let partitions: Vec<(&String, i32)> = match topic {
                Some(t) => names
                    .iter()
                    .filter_map(|n| partition_of(n, t).map(|p| (n, p)))
                    .collect(),
                None => Vec::new(),
            };
            let mut get: Vec<&str> = vec!["numRecordsOutPerSecond"];
            get.extend(pending.map(String::as_str));
            get.extend(partitions.iter().map(|(n, _)| n.as_str()));
            let m = self.rest.vertex_metrics(&job.jid, &v.id, &get).await?;
            let add = |acc: &mut Option<f64>, v: Option<f64>| {
                *acc = match (*acc, v.filter(|x| x.is_finite() && *x >= 0.0)) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
            };
            add(
                &mut view.out_rate,
                metric(&m, "numRecordsOutPerSecond").and_then(|x| x.sum),
            );
            add(
                &mut view.pending,
                pending.and_then(|n| metric(&m, n)).and_then(|x| x.sum),
            );
            for (name, p) in partitions {
                // Each partition is read by one subtask; the others do not report it.
                if let Some(next) = metric(&m, name).and_then(|x| x.max).and_then(next_offset) {
                    view.positions.insert(p, next);
                }
            }
        }
        Ok(view)
    }

    async fn workers(
        &self,
        job: &JobDetails,
        vid: &str,
        now_ms: u64,
    ) -> Result<Vec<WorkerSample>, EngineError> {
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
            let busy = ratio(metric(&m, "busyTimeMsPerSecond").and_then(MetricValue::number))
                .map(|ms| (ms / 1000.0).min(1.0));
            let rin = rate(metric(&m, "numRecordsInPerSecond").and_then(MetricValue::number));
            let known = |x: Option<f64>| x.filter(|_| !meters_unset(busy, rin, None));
            per_subtask.push((i, known(busy), known(rin)));
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
                let mut seen = BTreeMap::new();
                for tm in self.rest.taskmanagers().await? {
                    let m = self
                        .rest
                        .taskmanager_metrics(&tm.id, &["Status.JVM.CPU.Time"])
                        .await?;
                    let time = metric(&m, "Status.JVM.CPU.Time")
                        .and_then(MetricValue::number)
                        .filter(|t| t.is_finite() && *t >= 0.0);
                    let then = self
                        .tm_cpu
                        .lock()
                        .expect("no panics while held")
                        .get(&tm.id)
                        .copied();
                    let cores = tm.hardware.as_ref().map_or(0, |h| h.cpu_cores);
                    let usable = match (tm.slots, cores) {
                        (0, n) | (n, 0) => n,
                        (slots, cores) => slots.min(cores),
                    };
                    let (cpu, baseline) = match time {
                        Some(now_ns) => cpu_sample(then, (now_ms, now_ns), usable),
                        None => (None, None),
                    };
                    if let Some(b) = baseline {
                        seen.insert(tm.id.clone(), b);
                    }
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
                // TaskManagers gone since are forgotten.
                *self.tm_cpu.lock().expect("no panics while held") = seen;
                Ok(out)
            }
        }
    }
}

/// A TaskManager's CPU since its previous `(ms, JVM CPU time ns)` sample, and the sample the
/// next collection measures from. The REST API answers metrics from a cache that Flink's
/// metric fetcher refreshes (`metrics.fetcher.update-interval`, 10 s by default), so two
/// collections can read the same snapshot: a running JVM's CPU time never stands still, so an
/// unchanged one is that cache, unknown rather than an idle TaskManager, and the earlier sample
/// stays the baseline (the next fresh value then spans the whole interval instead of counting
/// it twice).
fn cpu_sample(
    then: Option<(u64, f64)>,
    now: (u64, f64),
    cores: u32,
) -> (Option<f64>, Option<(u64, f64)>) {
    match then {
        Some(then) if then.1 == now.1 => (None, Some(then)),
        Some(then) => (cpu_share(then, now, cores), Some(now)),
        None => (None, Some(now)),
    }
}

/// A TaskManager's CPU between two `(ms, JVM CPU time ns)` samples as a share of `cores`
/// (the cores its slots can use), within [0, 1]. `None` without a usable interval or core
/// count, or when the CPU time went back (the TaskManager restarted under the same id).
fn cpu_share(then: (u64, f64), now: (u64, f64), cores: u32) -> Option<f64> {
    let (dt_ms, used_ns) = (now.0.checked_sub(then.0)?, now.1 - then.1);
    if dt_ms == 0 || cores == 0 || used_ns < 0.0 {
        return None;
    }
    let cores_used = used_ns / (dt_ms as f64 * 1e6);
    Some((cores_used / f64::from(cores)).clamp(0.0, 1.0))
}

/// Whether a vertex's (or subtask's) meters have not been sampled since it was deployed: Flink
/// derives the busy time as 1000 ms/s minus the idle and back-pressured time, so before their
/// first sample a freshly deployed task reads fully busy while its record meters read zero. A
/// task fully busy for a whole meter window on no records at all is that, not a saturated task.
fn meters_unset(busy: Option<f64>, records_in: Option<f64>, records_out: Option<f64>) -> bool {
    busy.is_some_and(|b| b >= 0.999)
        && records_in == Some(0.0)
        && records_out.is_none_or(|r| r == 0.0)
}

fn ratio(ms_per_s_or_fraction: Option<f64>) -> Option<f64> {
    ms_per_s_or_fraction.filter(|v| v.is_finite() && *v >= 0.0)
}

fn rate(v: Option<f64>) -> Option<f64> {
    v.filter(|v| v.is_finite() && *v >= 0.0)
}

/// Flink's largest parallelism (its maximum max parallelism, 2^15).
const MAX_FLINK_PARALLELISM: u32 = 32_768;

fn not_ready(reason: String, parallelism: Option<u32>) -> Collected {
    Collected::NotReady {
        reason,
        parallelism,
    }
}

#[async_trait::async_trait]
impl Collector for FlinkRestCollector {
    async fn collect(&self, now_ms: u64) -> Result<Collected, EngineError> {
        // The topic is sampled every tick, ready or not, so the arrival rate is warm when the
        // job is; a broker failure only loses the input-side numbers.
        let ends = match &self.input {
            Some(t) => match t.end_offsets().await {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "Input topic unavailable; arrival rate and lag missing.");
                    None
                }
            },
            None => None,
        };
        let previous = self.last.lock().expect("no panics while held").take();
        *self.last.lock().expect("no panics while held") = Some(Sample {
            at_ms: now_ms,
            ends: ends.clone(),
            positions: None,
        });
        let job = match resolve(&self.rest, &self.job).await {
            Ok(j) => j,
            Err(EngineError::JobNotFound(why)) => return Ok(not_ready(why, None)),
            Err(e) => return Err(e),
        };
        let parallelism = job.vertices.iter().map(|v| v.parallelism).max();
        if job.state != "RUNNING" {
            return Ok(not_ready(format!("job is {}", job.state), parallelism));
        }
        // Flink's parallelism is at most 32768 (its largest max parallelism); anything else, or
        // a running job without vertices, is not an answer to act on (and one REST call per
        // subtask of a nonsense parallelism would stall the cycle).
        if let Some(v) = job
            .vertices
            .iter()
            .find(|v| !(1..=MAX_FLINK_PARALLELISM).contains(&v.parallelism))
        {
            return Err(EngineError::Malformed {
                endpoint: format!("/jobs/{}", job.jid),
                detail: format!("vertex {:?} reports parallelism {}", v.name, v.parallelism),
            });
        }
        if job.vertices.is_empty() {
            return Err(EngineError::Malformed {
                endpoint: format!("/jobs/{}", job.jid),
                detail: "a running job with no vertices".into(),
            });
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
        for v in &job.vertices {
            let m = self
                .rest
                .vertex_metrics(&job.jid, &v.id, VERTEX_METRICS)
                .await?;
            let sum = |n: &str| rate(metric(&m, n).and_then(|x| x.sum));
            let avg_ratio =
                |n: &str| ratio(metric(&m, n).and_then(|x| x.avg)).map(|ms| (ms / 1000.0).min(1.0));
            let (busy, rin, rout) = (
                avg_ratio("busyTimeMsPerSecond"),
                sum("numRecordsInPerSecond"),
                sum("numRecordsOutPerSecond"),
            );
            // Fresh meters read "fully busy on nothing": unknown, not a saturated operator.
            let unset = meters_unset(busy, rin, rout);
            if unset {
                tracing::debug!(vertex = %v.name, "Meters not sampled yet; vertex metrics unknown.");
            }
            let known = |x: Option<f64>| x.filter(|_| !unset);
            operators.push(OperatorSample {
                operator_id: v.id.clone(),
                upstream: job.upstream(&v.id),
                parallelism: v.parallelism,
                max_parallelism: u32::try_from(v.max_parallelism).unwrap_or(0),
                busy_ratio: known(busy),
                backpressure_ratio: known(avg_ratio("backPressuredTimeMsPerSecond")),
                records_in_per_sec: known(rin),
                records_out_per_sec: known(rout),
            });
        }
        let sources = self.sources(&job).await?;
        let dt_s =
            |prev: &Sample| (now_ms > prev.at_ms).then(|| (now_ms - prev.at_ms) as f64 / 1000.0);
        let input_rate = match (&previous, &ends) {
            (Some(prev), Some(now)) => match (&prev.ends, dt_s(prev)) {
                (Some(then), Some(dt)) => {
                    crate::engine::kafka::advanced(then, now).map(|n| n as f64 / dt)
                }
                _ => None,
            },
            _ => None,
        };
        // Lag and consumption from the reader positions, when every partition has one.
        let covered = ends
            .as_ref()
            .filter(|e| !e.is_empty() && e.keys().all(|p| sources.positions.contains_key(p)));
        let (lag, read) = match covered {
            Some(e) => (
                Some(
                    e.iter()
                        .map(|(p, end)| end.saturating_sub(sources.positions[p]).max(0) as f64)
                        .sum::<f64>(),
                ),
                Some(
                    e.keys()
                        .map(|p| (*p, sources.positions[p]))
                        .collect::<BTreeMap<_, _>>(),
                ),
            ),
            None => (sources.pending, None),
        };
        let (consumed, baseline) = match read {
            Some(by_partition) => {
                let now = Positions {
                    at_ms: now_ms,
                    jid: job.jid.clone(),
                    by_partition,
                };
                let then = previous.as_ref().and_then(|p| p.positions.as_ref());
                let behind = lag.is_some_and(|l| l > 0.0);
                let (consumed, baseline) = consumption_sample(then, now, behind);
                (consumed, Some(baseline))
            }
            // Without every partition's position, the sources' output meter (a 60 s average).
            None => (sources.out_rate, None),
        };
        if let Some(s) = self.last.lock().expect("no panics while held").as_mut() {
            s.positions = baseline;
        }
        // The configured vertex, else the busiest non-source vertex that processes records,
        // carries the per-worker model (a transactional sink can read busy while idle).
        let named = self.worker_vertex.as_deref().and_then(|n| {
            job.vertices
                .iter()
                .find(|v| v.name == n || v.name.contains(n))
                .map(|v| v.id.clone())
        });
        let worker_vertex = named.or_else(|| {
            operators
                .iter()
                .filter(|o| !o.upstream.is_empty())
                .max_by(|a, b| {
                    let key = |o: &OperatorSample| {
                        let active = o.records_in_per_sec.is_some_and(|r| r > 0.0);
                        (active, o.busy_ratio.unwrap_or(0.0))
                    };
                    let (ka, kb) = (key(a), key(b));
                    ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
                })
                .map(|o| o.operator_id.clone())
        });
        let workers = match worker_vertex {
            Some(vid) => self.workers(&job, &vid, now_ms).await?,
            None => Vec::new(),
        };
        Ok(Collected::Ready(Observation {
            at_ms: now_ms,
            parallelism: parallelism.unwrap_or(1),
            input_records_per_sec: input_rate,
            throughput_records_per_sec: consumed,
            lag_records: lag,
            workers,
            operators,
        }))
    }
}

/// How long unchanged reader positions may be the REST API's cached snapshot: far longer than
/// any `metrics.fetcher.update-interval` a job would run with (Flink's default is 10 s).
const MAX_SNAPSHOT_AGE_MS: u64 = 60_000;

/// The consumption rate since the `then` positions, and the positions the next collection
/// measures from. The REST API answers metrics from a cache its metric fetcher refreshes
/// (`metrics.fetcher.update-interval`), so two collections can read the same positions. With
/// records left to read (`behind`), positions that all stand still are that cache or a
/// stalled job: the rate is unknown (a policy skips it; the lag, from fresh end offsets, still
/// grows), and the earlier positions stay the baseline, so the next fresh positions are
/// counted over the whole interval instead of twice over the last one. A baseline older than
/// [`MAX_SNAPSHOT_AGE_MS`] is a stall, measured as such, and replaced. A caught-up job whose
/// positions stand still consumed nothing.
fn consumption_sample(
    then: Option<&Positions>,
    now: Positions,
    behind: bool,
) -> (Option<f64>, Positions) {
    let Some(then) = then.filter(|t| t.jid == now.jid && t.at_ms < now.at_ms) else {
        return (None, now);
    };
    let age_ms = now.at_ms - then.at_ms;
    if behind && age_ms <= MAX_SNAPSHOT_AGE_MS && then.by_partition == now.by_partition {
        return (None, then.clone());
    }
    let dt = age_ms as f64 / 1000.0;
    (consumption(&then.by_partition, &now.by_partition, dt), now)
}

/// Records per second the job's readers moved over `dt` seconds, over the partitions both
/// snapshots hold (a partition added to the topic in between is left out of this interval,
/// not counted from offset 0); `None` when a position went back (offsets reset).
fn consumption(then: &BTreeMap<i32, i64>, now: &BTreeMap<i32, i64>, dt: f64) -> Option<f64> {
    crate::engine::kafka::advanced(then, now).map(|n| n as f64 / dt)
}

/// The reader's position from its `currentOffset` gauge: the offset of the last record it
/// read, so the next one to read is one past it (a caught-up reader's position is the end
/// offset, and its lag 0). `None` before the first record (the gauge's initial -1) and for
/// nonsense.
fn next_offset(current: f64) -> Option<i64> {
    (current.is_finite() && current >= 0.0 && current < i64::MAX as f64).then(|| current as i64 + 1)
}

/// The partition of a reader-position metric of `topic`:
/// `...KafkaSourceReader.topic.<topic>.partition.<n>.currentOffset`.
fn partition_of(name: &str, topic: &str) -> Option<i32> {
    let rest = name.strip_suffix(".currentOffset")?;
    let (head, p) = rest.rsplit_once(".partition.")?;
    head.ends_with(&format!(".topic.{topic}")).then_some(())?;
    p.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_position_is_one_past_its_last_record() {
        // Caught up on a partition whose end offset is 100: the last record read is 99.
        assert_eq!(next_offset(99.0), Some(100));
        assert_eq!(next_offset(0.0), Some(1));
        for nonsense in [-1.0, f64::NAN, f64::INFINITY, 1e300] {
            assert_eq!(next_offset(nonsense), None, "{nonsense}");
        }
    }

    #[test]
    fn fully_busy_on_no_records_is_unset_meters() {
        assert!(meters_unset(Some(1.0), Some(0.0), Some(0.0)));
        assert!(meters_unset(Some(1.0), Some(0.0), None));
        // A saturated task processes records; an idle one is not busy.
        assert!(!meters_unset(Some(1.0), Some(12.5), Some(12.5)));
        assert!(!meters_unset(Some(0.0), Some(0.0), Some(0.0)));
        assert!(!meters_unset(Some(0.97), Some(0.0), Some(0.0)));
        // Emitting without input (a source) is working.
        assert!(!meters_unset(Some(1.0), Some(0.0), Some(300.0)));
        assert!(!meters_unset(None, Some(0.0), Some(0.0)));
    }

    #[test]
    fn a_taskmanagers_cpu_is_its_cpu_time_over_the_cores_its_slots_use() {
        // 1.5 cores for 2 s on a one-slot TaskManager: saturated (clamped), whatever the
        // machine's cores.
        assert_eq!(cpu_share((1000, 0.0), (3000, 3e9), 1), Some(1.0));
        // The same on four slots and cores: 0.375.
        assert_eq!(cpu_share((1000, 0.0), (3000, 3e9), 4), Some(0.375));
        assert_eq!(cpu_share((1000, 5e9), (3000, 1e9), 4), None, "restarted");
        assert_eq!(cpu_share((1000, 0.0), (1000, 1e9), 4), None, "no interval");
        assert_eq!(
            cpu_share((3000, 0.0), (1000, 1e9), 4),
            None,
            "clock went back"
        );
        assert_eq!(
            cpu_share((1000, 0.0), (3000, 1e9), 0),
            None,
            "no cores known"
        );
    }

    #[test]
    fn a_cached_cpu_time_is_unknown_and_keeps_the_earlier_baseline() {
        // First sample: nothing to measure from yet.
        assert_eq!(cpu_sample(None, (1000, 1e9), 1), (None, Some((1000, 1e9))));
        // The same CPU time 2 s later: the REST API's cached snapshot, not an idle JVM.
        assert_eq!(
            cpu_sample(Some((1000, 1e9)), (3000, 1e9), 1),
            (None, Some((1000, 1e9)))
        );
        // The fresh value spans both intervals: 2 s of CPU over 4 s is 0.5, not 1.0.
        assert_eq!(
            cpu_sample(Some((1000, 1e9)), (5000, 3e9), 1),
            (Some(0.5), Some((5000, 3e9)))
        );
        // A restart (the time went back) is unknown and measures from the new value.
        assert_eq!(
            cpu_sample(Some((1000, 9e9)), (3000, 1e9), 1),
            (None, Some((3000, 1e9)))
        );
    }

    #[test]
    fn consumption_counts_only_partitions_both_samples_hold() {
        let m = |v: &[(i32, i64)]| v.iter().copied().collect::<BTreeMap<_, _>>();
        let then = m(&[(0, 1000), (1, 2000)]);
        // A partition added in between, its reader already at 5 M: not 5 M records in 2 s.
        let now = m(&[(0, 1400), (1, 2600), (2, 5_000_000)]);
        assert_eq!(consumption(&then, &now, 2.0), Some(500.0));
        let reset = m(&[(0, 10), (1, 2600)]);
        assert_eq!(consumption(&then, &reset, 2.0), None);
    }

    #[test]
    fn unchanged_positions_behind_are_a_cached_snapshot_and_keep_the_earlier_baseline() {
        let at = |at_ms: u64, jid: &str, v: &[(i32, i64)]| Positions {
            at_ms,
            jid: jid.into(),
            by_partition: v.iter().copied().collect(),
        };
        let first = at(1000, "j", &[(0, 1000), (1, 2000)]);
        assert_eq!(
            consumption_sample(None, first.clone(), true),
            (None, first.clone())
        );
        // 2 s later, the same positions with records waiting: the cache (or a stall).
        let cached = at(3000, "j", &[(0, 1000), (1, 2000)]);
        assert_eq!(
            consumption_sample(Some(&first), cached, true),
            (None, first.clone())
        );
        // The fresh positions span both intervals: 2000 records over 4 s, not over 2 s.
        let fresh = at(5000, "j", &[(0, 2000), (1, 3000)]);
        assert_eq!(
            consumption_sample(Some(&first), fresh.clone(), true),
            (Some(500.0), fresh)
        );
        // Caught up and standing still: nothing consumed.
        let idle = at(3000, "j", &[(0, 1000), (1, 2000)]);
        assert_eq!(
            consumption_sample(Some(&first), idle.clone(), false),
            (Some(0.0), idle)
        );
        // Still for longer than any snapshot lives: a stall, measured from now on.
        let stalled = at(62_000, "j", &[(0, 1000), (1, 2000)]);
        assert_eq!(
            consumption_sample(Some(&first), stalled.clone(), true),
            (Some(0.0), stalled)
        );
        // Another job run (its readers ahead, so only the job id tells): nothing to measure
        // from.
        let restarted = at(3000, "k", &[(0, 1500), (1, 2500)]);
        assert_eq!(
            consumption_sample(Some(&first), restarted.clone(), true),
            (None, restarted)
        );
    }

    #[test]
    fn partition_positions_are_recognised_by_topic() {
        let n = "Source__source.KafkaSourceReader.topic.words.partition.3.currentOffset";
        assert_eq!(partition_of(n, "words"), Some(3));
        assert_eq!(partition_of(n, "other"), None);
        assert_eq!(
            partition_of(
                "Source__source.KafkaSourceReader.topic.words.partition.3.committedOffset",
                "words"
            ),
            None
        );
    }
}
