//! Metrics through Prometheus: a small PromQL client (instant and range queries over the HTTP
//! API) and [`PrometheusCollector`], which builds a job's observation from per-instance series
//! (Kafka Streams through the JMX exporter by default; any engine by configuring the queries).
//!
//! Series that are absent (a vanished instance, a gap in scraping) are missing data, never
//! zeros: an instance without a CPU or throughput sample reports `None` for it, and the job is
//! not ready while the instances Prometheus sees differ from the ones that should run.

mod queries;
mod workers;

pub use queries::{Preset, Queries, QueryConfig, escape_label};
pub use workers::PrometheusWorkers;

use super::consumer_group::{self, ConsumerGroup, GroupView};
use super::kafka::InputTopic;
use super::{Collected, Collector, EngineError};
use crate::model::{Observation, OperatorSample, WorkerSample};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A PromQL client.
#[derive(Debug, Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

/// One series of an instant vector: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value (NaN and infinities are dropped as missing).
    pub value: f64,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct MatrixItem {
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

impl Prometheus {
    /// A client for the Prometheus at `url` (e.g. `http://127.0.0.1:9090`).
    pub fn new(url: &str, timeout: Duration) -> Result<Self, EngineError> {
        let http = crate::engine::tls::http_client(&Default::default(), timeout)?;
        Ok(Prometheus {
            http,
            url: url.trim_end_matches('/').to_string(),
            timeout,
        })
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Data, EngineError> {
        let endpoint = format!("{}{path}", self.url);
        let resp = self
            .http
            .get(&endpoint)
            .query(query)
            .send()
            .await
            .map_err(|e| EngineError::transport(&endpoint, self.timeout, &e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| EngineError::Unreachable {
            endpoint: endpoint.clone(),
            detail: e.to_string(),
        })?;
        let malformed = |detail: String| EngineError::Malformed {
            endpoint: endpoint.clone(),
            detail,
        };
        let env: Envelope = serde_json::from_str(&body).map_err(|e| {
            if status >= 400 {
                EngineError::Status {
                    endpoint: endpoint.clone(),
                    status,
                    body: body.chars().take(200).collect(),
                }
            } else {
                malformed(format!("not a Prometheus API answer: {e}"))
            }
        })?;
        if env.status != "success" {
            return Err(EngineError::Status {
                endpoint: endpoint.clone(),
                status,
                body: format!(
                    "{}: {}",
                    env.error_type.unwrap_or_default(),
                    env.error.unwrap_or_default()
                ),
            });
        }
        env.data.ok_or_else(|| malformed("no data".into()))
    }

    /// An instant query; expects a vector.
    pub async fn query(&self, promql: &str) -> Result<Vec<Series>, EngineError> {
        let data = self
            .get("/api/v1/query", &[("query", promql.to_string())])
            .await?;
        let endpoint = format!("{}/api/v1/query", self.url);
        if data.result_type != "vector" {
            return Err(EngineError::Malformed {
                endpoint,
                detail: format!("{promql:?} gave a {}, not a vector", data.result_type),
            });
        }
        let items: Vec<VectorItem> =
            serde_json::from_value(data.result).map_err(|e| EngineError::Malformed {
                endpoint,
                detail: format!("vector: {e}"),
            })?;
        Ok(items
            .into_iter()
            .filter_map(|i| {
                let v: f64 = i.value.1.parse().ok()?;
                v.is_finite().then_some(Series {
                    labels: i.metric,
                    value: v,
                })
            })
            .collect())
    }

    /// A range query from `start_s` to `end_s` (Unix seconds) every `step_s`; per series, its
    /// labels and `(time, value)` points (non-finite points dropped).
    pub async fn query_range(
        &self,
        promql: &str,
        start_s: f64,
        end_s: f64,
        step_s: f64,
    ) -> Result<Vec<(BTreeMap<String, String>, Vec<(f64, f64)>)>, EngineError> {
        let data = self
            .get(
                "/api/v1/query_range",
                &[
                    ("query", promql.to_string()),
                    ("start", format!("{start_s:.3}")),
                    ("end", format!("{end_s:.3}")),
                    ("step", format!("{step_s}")),
                ],
            )
            .await?;
        let endpoint = format!("{}/api/v1/query_range", self.url);
        if data.result_type != "matrix" {
            return Err(EngineError::Malformed {
                endpoint,
                detail: format!("{promql:?} gave a {}, not a matrix", data.result_type),
            });
        }
        let items: Vec<MatrixItem> =
            serde_json::from_value(data.result).map_err(|e| EngineError::Malformed {
                endpoint,
                detail: format!("matrix: {e}"),
            })?;
        Ok(items
            .into_iter()
            .map(|i| {
                let pts = i
                    .values
                    .into_iter()
                    .filter_map(|(t, v)| {
                        v.parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite())
                            .map(|v| (t, v))
                    })
                    .collect();
                (i.metric, pts)
            })
            .collect())
    }
}

/// Collects a Kafka Streams application (or any instance-scaled engine) through Prometheus.
///
/// The observation: one worker per instance (CPU utilization and records/s), one operator
/// `app` at the instance count, the lag, and the arrival rate from the input topic's end
/// offsets. Not ready while the instances reporting differ from the expected count, while an
/// instance has no alive stream thread, or while the partitions are not all assigned (a
/// rebalance).
pub struct PrometheusCollector {
    prom: Prometheus,
    job: String,
    queries: Queries,
    cores_per_instance: f64,
    partitions: u32,
    expected: Option<Arc<AtomicU32>>,
    input: Option<InputTopic>,
    topic: Option<String>,
    job_name: Option<String>,
    group: Option<ConsumerGroup>,
    last: Mutex<Option<(u64, BTreeMap<i32, i64>)>>,
    last_committed: Mutex<Option<(u64, BTreeMap<i32, i64>)>>,
}

/// What the instances report, by `instance` label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceView {
    /// CPU, cores.
    pub cpu: BTreeMap<String, f64>,
    /// Records/s.
    pub throughput: BTreeMap<String, f64>,
    /// Alive threads.
    pub threads: BTreeMap<String, f64>,
    /// Assigned partitions.
    pub assigned: BTreeMap<String, f64>,
    /// Total lag.
    pub lag: Option<f64>,
    /// The consumer group's state and members, when the collector follows the group.
    pub group: Option<GroupView>,
}

impl InstanceView {
    /// The instances that process (at least one alive thread), by label.
    pub fn processing(&self) -> Vec<&String> {
        self.threads
            .iter()
            .filter(|(_, t)| **t >= 1.0)
            .map(|(i, _)| i)
            .collect()
    }
}

fn by_instance(series: Vec<Series>) -> BTreeMap<String, f64> {
    series
        .into_iter()
        .map(|s| {
            (
                s.labels.get("instance").cloned().unwrap_or_default(),
                s.value,
            )
        })
        .collect()
}

impl PrometheusCollector {
    /// A collector for scrape job `job` whose input topic has `partitions` partitions.
    pub fn new(prom: Prometheus, job: &str, queries: Queries, partitions: u32) -> Self {
        PrometheusCollector {
            prom,
            job: job.into(),
            queries,
            cores_per_instance: 1.0,
            partitions,
            expected: None,
            input: None,
            topic: None,
            job_name: None,
            group: None,
            last: Mutex::new(None),
            last_committed: Mutex::new(None),
        }
    }

    /// CPU cores each instance may use (default 1).
    pub fn with_cores_per_instance(mut self, cores: f64) -> Self {
        self.cores_per_instance = cores.max(1e-3);
        self
    }

    /// The instance count that should run (shared with the actuator).
    pub fn with_expected(mut self, expected: Arc<AtomicU32>) -> Self {
        self.expected = Some(expected);
        self
    }

    /// Follows the input topic for the arrival rate.
    pub fn with_input(mut self, input: InputTopic) -> Self {
        self.topic = Some(input.topic().to_string());
        self.input = Some(input);
        self
    }

    /// Follows the application's consumer group (a Kafka Streams `application.id`): the lag
    /// becomes the input topic's end offsets minus the group's committed offsets, which stay
    /// current under a backlog where the consumers' `records-lag` goes stale, and a rebalance
    /// is read from the group's state and its members' assignments.
    pub fn with_group(mut self, group: ConsumerGroup) -> Self {
        self.group = Some(group);
        self
    }

    /// Names the engine's job for the `{job_name}` placeholder (Flink's `job_name` label,
    /// escaped as the reporter escapes it); without one it matches any job (`.*`).
    pub fn with_job_name(mut self, name: &str) -> Self {
        self.job_name = Some(queries::escape_label(name));
        self
    }

    fn q(&self, template: &str) -> String {
        let topic = self.topic.as_deref().unwrap_or("").replace('.', "_");
        template
            .replace("{job}", &self.job)
            .replace("{topic}", &topic)
            .replace(
                "{flink_topic}",
                &queries::escape_label(self.topic.as_deref().unwrap_or("")),
            )
            .replace("{job_name}", self.job_name.as_deref().unwrap_or(".*"))
    }

    /// Names the input topic for the `{topic}` placeholder without following its offsets (a
    /// readiness-only collector).
    pub fn with_topic(mut self, topic: &str) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// What the instances report now.
    pub async fn view(&self) -> Result<InstanceView, EngineError> {
        let q = [
            self.q(&self.queries.cpu),
            self.q(&self.queries.throughput),
            self.q(&self.queries.threads),
            self.q(&self.queries.assigned),
            self.q(&self.queries.lag),
        ];
        let group = async {
            match &self.group {
                Some(g) => g.describe().await.map(Some),
                None => Ok(None),
            }
        };
        let (cpu, thr, threads, assigned, lag, group) = tokio::join!(
            self.prom.query(&q[0]),
            self.prom.query(&q[1]),
            self.prom.query(&q[2]),
            self.prom.query(&q[3]),
            self.prom.query(&q[4]),
            group,
        );
        Ok(InstanceView {
            cpu: by_instance(cpu?),
            throughput: by_instance(thr?),
            threads: by_instance(threads?),
            assigned: by_instance(assigned?),
            lag: lag?.first().map(|s| s.value),
            group: group?,
        })
    }

    /// One worker sample per processing instance: CPU utilization (cores over
    /// `cores_per_instance`) and records/s, each `None` where its series is absent.
    pub fn workers(&self, v: &InstanceView) -> Vec<WorkerSample> {
        v.processing()
            .into_iter()
            .map(|i| WorkerSample {
                worker_id: i.clone(),
                cpu_utilization: v
                    .cpu
                    .get(i)
                    .map(|c| (c / self.cores_per_instance).clamp(0.0, 1.0)),
                throughput_records_per_sec: v.throughput.get(i).copied(),
            })
            .collect()
    }

    /// Why the group is not settled at `n` instances, or `None` when every one of them is
    /// processing and the partitions are all assigned: by the consumer group's own state and
    /// assignments when the collector follows the group, else by the per-partition series.
    pub fn unsettled(&self, v: &InstanceView, n: u32) -> Option<String> {
        let alive: Vec<&String> = v
            .threads
            .iter()
            .filter(|(_, t)| **t >= 1.0)
            .map(|(i, _)| i)
            .collect();
        if alive.len() as u32 != n {
            return Some(format!(
                "{} of {n} instances have a live stream thread",
                alive.len()
            ));
        }
        if let (Some(g), Some(topic)) = (&v.group, &self.topic) {
            if !g.is_stable() {
                return Some(format!("rebalancing: the consumer group is {}", g.state));
            }
            // A dynamic Kafka Streams member does not leave the group when its instance
            // stops: it stays, with its partitions, until the session times out (a static
            // member closed with `leaveGroup` leaves at once). One member per live stream
            // thread, then.
            let threads: f64 = alive.iter().filter_map(|i| v.threads.get(*i)).sum();
            if g.members.len() as f64 != threads.round() {
                return Some(format!(
                    "rebalancing: the consumer group has {} members for {threads:.0} live stream threads",
                    g.members.len()
                ));
            }
            let owned = g.assigned(topic).len() as u32;
            let busy = g.busy_members(topic) as u32;
            if owned < self.partitions || busy < n.min(self.partitions) {
                return Some(format!(
                    "rebalancing: {owned} of {} partitions assigned over {busy} group members",
                    self.partitions
                ));
            }
            return None;
        }
        let assigned: f64 = alive.iter().filter_map(|i| v.assigned.get(*i)).sum();
        let busy = alive
            .iter()
            .filter(|i| v.assigned.get(**i).is_some_and(|a| *a >= 1.0))
            .count() as u32;
        // Every partition has an owner, and each instance gets one when there are enough. (A
        // count above the partitions is tolerated: an old owner's series can linger after a
        // cooperative rebalance, and waiting for it to vanish could wait forever.)
        if (assigned.round() as u32) < self.partitions || busy < n.min(self.partitions) {
            return Some(format!(
                "rebalancing: {assigned:.0} of {} partitions assigned over {busy} instances",
                self.partitions
            ));
        }
        None
    }
}

/// The rate at which per-partition offsets grew since the previous call (`last` holds its
/// time and offsets, replaced by these), over the partitions both calls saw
/// ([`crate::engine::kafka::advanced`]): `None` on the first call, with no time elapsed, or
/// after an offset went back (a topic recreated).
fn rate_since(
    last: &Mutex<Option<(u64, BTreeMap<i32, i64>)>>,
    now_ms: u64,
    offsets: &BTreeMap<i32, i64>,
) -> Option<f64> {
    let prev = last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replace((now_ms, offsets.clone()));
    prev.and_then(|(t0, before)| {
        let dt = now_ms.saturating_sub(t0) as f64 / 1000.0;
        let n = crate::engine::kafka::advanced(&before, offsets)?;
        (dt > 0.0).then(|| n as f64 / dt)
    })
}

/// Splits a total rate over the workers in proportion to their own rates (`shares`, in any
/// unit): unknown for all when the total or any share is unknown, evenly when every share is
/// zero.
fn apportion(total: Option<f64>, shares: &[Option<f64>]) -> Vec<Option<f64>> {
    let known: Option<Vec<f64>> = shares.iter().copied().collect();
    match (total, known) {
        (Some(t), Some(k)) if !k.is_empty() => {
            let sum: f64 = k.iter().sum();
            if sum > 0.0 {
                k.iter().map(|s| Some(t * s / sum)).collect()
            } else {
                vec![Some(t / k.len() as f64); k.len()]
            }
        }
        _ => vec![None; shares.len()],
    }
}

#[async_trait::async_trait]
impl Collector for PrometheusCollector {
    async fn collect(&self, now_ms: u64) -> Result<Collected, EngineError> {
        let mut ends_now = None;
        let arrival = match &self.input {
            Some(t) => match t.end_offsets().await {
                Ok(ends) => {
                    ends_now = Some(ends.clone());
                    rate_since(&self.last, now_ms, &ends)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Input topic unavailable; arrival rate missing.");
                    None
                }
            },
            None => None,
        };
        let v = self.view().await?;
        // With the group: the lag and the consumption from its committed offsets, in input
        // records (updated at every call, so a rate never spans more than one interval).
        let mut consumed = None;
        let lag = match (&self.group, &ends_now, &self.topic) {
            (Some(g), Some(ends), Some(topic)) => {
                let parts: Vec<i32> = ends.keys().copied().collect();
                match g.committed(topic, &parts).await {
                    Ok(committed) => {
                        consumed = rate_since(&self.last_committed, now_ms, &committed);
                        // Partitions nothing was committed for (an app just started) count
                        // from their log start, not from records retention deleted.
                        let starts = match &self.input {
                            Some(t) if parts.iter().any(|p| !committed.contains_key(p)) => {
                                t.start_offsets().await.unwrap_or_else(|e| {
                                    tracing::warn!(error = %e, "Log start offsets unavailable; uncommitted partitions count whole.");
                                    BTreeMap::new()
                                })
                            }
                            _ => BTreeMap::new(),
                        };
                        Some(consumer_group::lag(ends, &committed, &starts))
                    }
                    Err(e) => {
                        *self
                            .last_committed
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = None;
                        tracing::warn!(error = %e, "Committed offsets unavailable; the lag is the consumers' own metric.");
                        v.lag
                    }
                }
            }
            _ => v.lag,
        };
        let expected = self
            .expected
            .as_ref()
            .map(|e| e.load(Ordering::SeqCst))
            .unwrap_or_else(|| v.threads.values().filter(|t| **t >= 1.0).count() as u32);
        if expected == 0 {
            return Ok(Collected::NotReady {
                reason: "no instance runs".into(),
                parallelism: Some(0),
            });
        }
        if let Some(reason) = self.unsettled(&v, expected) {
            return Ok(Collected::NotReady {
                reason,
                parallelism: Some(expected),
            });
        }
        let instances = InstanceView::processing(&v);
        let mut workers = self.workers(&v);
        let thr: Option<f64> = if self.group.is_some() {
            // The committed offsets are the exact total, in input records; the instances'
            // own rates (the preset: input records their consumers took, over 10 s) only
            // apportion it.
            let shares: Vec<Option<f64>> = workers
                .iter()
                .map(|w| w.throughput_records_per_sec)
                .collect();
            let split = apportion(consumed, &shares);
            for (w, t) in workers.iter_mut().zip(split) {
                w.throughput_records_per_sec = t;
            }
            consumed
        } else if instances.iter().all(|i| v.throughput.contains_key(*i)) {
            Some(instances.iter().map(|i| v.throughput[*i]).sum())
        } else {
            None
        };
        let n = instances.len() as u32;
        Ok(Collected::Ready(Observation {
            at_ms: now_ms,
            parallelism: n,
            input_records_per_sec: arrival,
            throughput_records_per_sec: thr,
            lag_records: lag,
            workers,
            operators: vec![OperatorSample {
                operator_id: "app".into(),
                upstream: Vec::new(),
                parallelism: n,
                max_parallelism: self.partitions,
                busy_ratio: None,
                backpressure_ratio: None,
                records_in_per_sec: thr,
                records_out_per_sec: None,
            }],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::consumer_group::GroupMember;

    fn view(threads: &[(&str, f64)], assigned: &[(&str, f64)]) -> InstanceView {
        let m = |xs: &[(&str, f64)]| xs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        InstanceView {
            threads: m(threads),
            assigned: m(assigned),
            ..InstanceView::default()
        }
    }

    #[test]
    fn settled_only_when_every_instance_runs_and_all_partitions_are_assigned() {
        let c = PrometheusCollector::new(
            Prometheus::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap(),
            "ks",
            Queries::default(),
            4,
        );
        let ok = view(&[("a", 1.0), ("b", 1.0)], &[("a", 2.0), ("b", 2.0)]);
        assert_eq!(c.unsettled(&ok, 2), None);
        assert!(c.unsettled(&ok, 3).unwrap().contains("2 of 3"));
        let moving = view(&[("a", 1.0), ("b", 1.0)], &[("a", 4.0), ("b", 0.0)]);
        assert!(c.unsettled(&moving, 2).unwrap().contains("rebalancing"));
        let partial = view(&[("a", 1.0), ("b", 1.0)], &[("a", 1.0), ("b", 2.0)]);
        assert!(c.unsettled(&partial, 2).is_some());
        let dead = view(&[("a", 1.0), ("b", 0.0)], &[("a", 4.0)]);
        assert!(c.unsettled(&dead, 2).is_some());
        // An old owner's lingering series do not block the settle.
        let overlap = view(&[("a", 1.0), ("b", 1.0)], &[("a", 4.0), ("b", 2.0)]);
        assert!(c.unsettled(&overlap, 2).is_none());
        // More instances than partitions: the extra ones idle, and that is settled.
        let six = view(
            &[("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0), ("e", 1.0)],
            &[("a", 1.0), ("b", 1.0), ("c", 1.0), ("d", 1.0), ("e", 0.0)],
        );
        assert_eq!(c.unsettled(&six, 5), None);
    }

    #[test]
    fn offsets_become_a_rate_between_calls() {
        let last = Mutex::new(None);
        let at = |pairs: &[(i32, i64)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
        assert_eq!(rate_since(&last, 1000, &at(&[(0, 100)])), None);
        assert_eq!(rate_since(&last, 3000, &at(&[(0, 300)])), Some(100.0));
        assert_eq!(
            rate_since(&last, 3000, &at(&[(0, 400)])),
            None,
            "no time elapsed"
        );
        assert_eq!(
            rate_since(&last, 4000, &at(&[(0, 10)])),
            None,
            "an offset went back"
        );
        // A partition seen for the first time (added, or first committed) is not counted whole.
        assert_eq!(
            rate_since(&last, 5000, &at(&[(0, 110), (1, 1_000_000)])),
            Some(100.0)
        );
        assert_eq!(
            rate_since(&last, 6000, &at(&[(0, 160), (1, 1_000_050)])),
            Some(100.0)
        );
    }

    #[test]
    fn the_committed_rate_is_apportioned_by_the_instances_own_rates() {
        assert_eq!(
            apportion(Some(300.0), &[Some(400.0), Some(200.0)]),
            vec![Some(200.0), Some(100.0)]
        );
        assert_eq!(
            apportion(Some(10.0), &[Some(0.0), Some(0.0)]),
            vec![Some(5.0), Some(5.0)]
        );
        assert_eq!(apportion(Some(10.0), &[Some(1.0), None]), vec![None, None]);
        assert_eq!(apportion(None, &[Some(1.0)]), vec![None]);
        assert!(apportion(Some(1.0), &[]).is_empty());
    }

    #[test]
    fn with_the_consumer_group_its_state_and_assignments_decide() {
        let c = PrometheusCollector::new(
            Prometheus::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap(),
            "ks",
            Queries::default(),
            4,
        )
        .with_topic("words");
        let member = |p: &[i32]| GroupMember {
            partitions: BTreeMap::from([("words".to_string(), p.to_vec())]),
            ..GroupMember::default()
        };
        // The per-partition series say nothing here (a stale or missing metric): the group does.
        let mut v = view(&[("a", 1.0), ("b", 1.0)], &[]);
        v.group = Some(GroupView {
            state: "Stable".into(),
            members: vec![member(&[0, 1]), member(&[2, 3])],
        });
        assert_eq!(c.unsettled(&v, 2), None);
        assert!(c.unsettled(&v, 3).unwrap().contains("2 of 3"));
        let mut moving = v.clone();
        moving.group.as_mut().unwrap().state = "PreparingRebalance".into();
        assert!(
            c.unsettled(&moving, 2)
                .unwrap()
                .contains("PreparingRebalance")
        );
        let mut partial = v.clone();
        partial.group.as_mut().unwrap().members = vec![member(&[0, 1, 2, 3]), member(&[])];
        assert!(
            c.unsettled(&partial, 2)
                .unwrap()
                .contains("over 1 group members")
        );
        // A stopped instance's member lingers until its session times out.
        let mut lingering = v.clone();
        lingering.threads.remove("b");
        assert!(
            c.unsettled(&lingering, 1)
                .unwrap()
                .contains("2 members for 1 live")
        );
        let mut orphan = v.clone();
        orphan.group.as_mut().unwrap().members = vec![member(&[0, 1]), member(&[2])];
        assert!(c.unsettled(&orphan, 2).unwrap().contains("3 of 4"));
    }

    #[test]
    fn default_queries_name_the_job() {
        let c = PrometheusCollector::new(
            Prometheus::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap(),
            "kstreams",
            Queries::default(),
            4,
        );
        assert!(c.q(&c.queries.threads).contains("job=\"kstreams\""));
        let f = PrometheusCollector::new(
            Prometheus::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap(),
            "flink",
            Queries::flink(),
            4,
        );
        assert!(f.q(&f.queries.lag).contains("job_name=~\".*\""));
        let f = f.with_job_name("live-prom-42");
        assert!(f.q(&f.queries.lag).contains("job_name=~\"live_prom_42\""));
    }
}
