//! A small typed client for the Flink REST API (the endpoints the collector and the actuator
//! use), with a timeout on every call and errors that name the endpoint.

use crate::engine::EngineError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `GET /jobs/overview` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct JobSummary {
    /// Job id.
    pub jid: String,
    /// Job name.
    pub name: String,
    /// Job state, e.g. `RUNNING`, `RESTARTING`, `CANCELED`.
    pub state: String,
    /// Start time, ms since the epoch.
    #[serde(rename = "start-time", default)]
    pub start_time: i64,
}

#[derive(Debug, Deserialize)]
struct JobsOverview {
    jobs: Vec<JobSummary>,
}

/// `GET /jobs/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobDetails {
    /// Job id.
    pub jid: String,
    /// Job name.
    pub name: String,
    /// Job state.
    pub state: String,
    /// Job vertices.
    #[serde(default)]
    pub vertices: Vec<Vertex>,
    /// The job graph (for the edges).
    #[serde(default)]
    pub plan: Option<Plan>,
}

/// One job vertex.
#[derive(Debug, Clone, Deserialize)]
pub struct Vertex {
    /// Vertex id.
    pub id: String,
    /// Vertex name (operator chain description).
    pub name: String,
    /// Current parallelism.
    pub parallelism: u32,
    /// Max parallelism (key groups); `-1` or absent when unknown.
    #[serde(rename = "maxParallelism", default)]
    pub max_parallelism: i64,
    /// Execution state of the vertex, e.g. `RUNNING`.
    pub status: String,
}

/// The job graph.
#[derive(Debug, Clone, Deserialize)]
pub struct Plan {
    /// Nodes (one per vertex).
    #[serde(default)]
    pub nodes: Vec<PlanNode>,
}

/// One node of the job graph.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanNode {
    /// Vertex id.
    pub id: String,
    /// Inputs; empty for a source.
    #[serde(default)]
    pub inputs: Vec<PlanInput>,
}

/// An edge into a node.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanInput {
    /// Upstream vertex id.
    pub id: String,
}

impl JobDetails {
    /// Upstream vertex ids of `vertex` (empty for a source or when the plan is missing).
    pub fn upstream(&self, vertex: &str) -> Vec<String> {
        self.plan
            .as_ref()
            .and_then(|p| p.nodes.iter().find(|n| n.id == vertex))
            .map(|n| n.inputs.iter().map(|i| i.id.clone()).collect())
            .unwrap_or_default()
    }
}

/// `GET /jobs/{id}/vertices/{vid}`: where each subtask runs.
#[derive(Debug, Clone, Deserialize)]
pub struct VertexDetails {
    /// Subtasks.
    #[serde(default)]
    pub subtasks: Vec<SubtaskInfo>,
}

/// One subtask of a vertex.
#[derive(Debug, Clone, Deserialize)]
pub struct SubtaskInfo {
    /// Subtask index.
    pub subtask: u32,
    /// Execution state.
    pub status: String,
    /// The TaskManager it runs on.
    #[serde(rename = "taskmanager-id", default)]
    pub taskmanager_id: Option<String>,
}

/// One metric from a metrics endpoint: a plain `value` or the requested aggregates.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricValue {
    /// Metric name.
    pub id: String,
    /// Plain value (job, TaskManager and per-subtask endpoints), as Flink sends it: a string.
    #[serde(default)]
    pub value: Option<String>,
    /// Sum over subtasks (aggregating endpoints).
    #[serde(default)]
    pub sum: Option<f64>,
    /// Mean over subtasks.
    #[serde(default)]
    pub avg: Option<f64>,
    /// Maximum over subtasks.
    #[serde(default)]
    pub max: Option<f64>,
}

impl MetricValue {
    /// The plain value as a finite number.
    pub fn number(&self) -> Option<f64> {
        self.value
            .as_deref()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
    }
}

/// Finds a metric by name in a metrics answer.
pub fn metric<'a>(list: &'a [MetricValue], name: &str) -> Option<&'a MetricValue> {
    list.iter().find(|m| m.id == name)
}

/// Per-vertex resource requirements (`/jobs/{id}/resource-requirements`).
pub type Requirements = BTreeMap<String, VertexRequirement>;

/// Requirements of one vertex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexRequirement {
    /// Parallelism bounds.
    pub parallelism: ParallelismBounds,
}

/// Lower and upper parallelism bound of a vertex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParallelismBounds {
    /// Lower bound.
    pub lower_bound: u32,
    /// Upper bound: the parallelism the adaptive scheduler aims for.
    pub upper_bound: u32,
}

/// `GET /overview`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterOverview {
    /// Registered TaskManagers.
    pub taskmanagers: u32,
    /// Slots in the cluster.
    #[serde(rename = "slots-total")]
    pub slots_total: u32,
    /// Free slots.
    #[serde(rename = "slots-available")]
    pub slots_available: u32,
}

#[derive(Debug, Deserialize)]
struct TaskManagers {
    taskmanagers: Vec<TaskManagerInfo>,
}

/// `GET /taskmanagers` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskManagerInfo {
    /// TaskManager id.
    pub id: String,
    /// Slots it offers.
    #[serde(rename = "slotsNumber", default)]
    pub slots: u32,
    /// The machine as the TaskManager's JVM sees it.
    #[serde(default)]
    pub hardware: Option<TaskManagerHardware>,
}

/// `GET /taskmanagers` entry's `hardware`.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskManagerHardware {
    /// Cores the JVM may use (a container's CPU limit, rounded up, in a container).
    #[serde(rename = "cpuCores", default)]
    pub cpu_cores: u32,
}

#[derive(Debug, Deserialize)]
struct ConfigEntry {
    key: String,
    value: String,
}

/// The REST client.
#[derive(Debug, Clone)]
pub struct FlinkRest {
    base: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl FlinkRest {
    /// A client for `base` (e.g. `http://127.0.0.1:8081`) with a per-call `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, EngineError> {
        let http = crate::engine::tls::http_client(&Default::default(), timeout)?;
        Ok(FlinkRest {
            base: base.trim_end_matches('/').to_string(),
            http,
            timeout,
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn transport(&self, endpoint: &str, e: &reqwest::Error) -> EngineError {
        EngineError::transport(endpoint, self.timeout, e)
    }

    async fn body(
        &self,
        endpoint: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<(u16, String), EngineError> {
        let resp = resp.map_err(|e| self.transport(endpoint, &e))?;
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .map_err(|e| self.transport(endpoint, &e))?;
        Ok((status, text))
    }

    fn decode<T: DeserializeOwned>(
        endpoint: &str,
        status: u16,
        text: &str,
    ) -> Result<T, EngineError> {
        if !(200..300).contains(&status) {
            return Err(EngineError::Status {
                endpoint: endpoint.to_string(),
                status,
                body: text.chars().take(300).collect(),
            });
        }
        serde_json::from_str(text).map_err(|e| EngineError::Malformed {
            endpoint: endpoint.to_string(),
            detail: e.to_string(),
        })
    }

    /// `GET path` decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, EngineError> {
        let endpoint = format!("{}{path}", self.base);
        let (status, text) = self
            .body(&endpoint, self.http.get(&endpoint).send().await)
            .await?;
        if status == 404 && path.starts_with("/jobs/") {
            return Err(EngineError::JobNotFound(path.to_string()));
        }
        Self::decode(&endpoint, status, &text)
    }

    /// `PUT path` with a JSON body; the answer is discarded after its status is checked.
    pub async fn put<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), EngineError> {
        let endpoint = format!("{}{path}", self.base);
        let (status, text) = self
            .body(&endpoint, self.http.put(&endpoint).json(body).send().await)
            .await?;
        Self::decode::<serde_json::Value>(
            &endpoint,
            status,
            if text.is_empty() { "{}" } else { &text },
        )
        .map(|_| ())
    }

    /// `POST path` with a JSON body, the answer decoded as `T`.
    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, EngineError> {
        let endpoint = format!("{}{path}", self.base);
        let (status, text) = self
            .body(&endpoint, self.http.post(&endpoint).json(body).send().await)
            .await?;
        Self::decode(&endpoint, status, &text)
    }

    /// Uploads a jar (`POST /jars/upload`, multipart field `jarfile`).
    pub async fn upload_jar<T: DeserializeOwned>(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> Result<T, EngineError> {
        let endpoint = format!("{}/jars/upload", self.base);
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str("application/x-java-archive")
            .map_err(|e| EngineError::Other(e.to_string()))?;
        let form = reqwest::multipart::Form::new().part("jarfile", part);
        let (status, text) = self
            .body(
                &endpoint,
                self.http.post(&endpoint).multipart(form).send().await,
            )
            .await?;
        Self::decode(&endpoint, status, &text)
    }

    /// Every job the cluster knows.
    pub async fn jobs(&self) -> Result<Vec<JobSummary>, EngineError> {
        Ok(self.get::<JobsOverview>("/jobs/overview").await?.jobs)
    }

    /// Details of one job.
    pub async fn job(&self, jid: &str) -> Result<JobDetails, EngineError> {
        self.get(&format!("/jobs/{jid}")).await
    }

    /// Where the subtasks of a vertex run.
    pub async fn vertex(&self, jid: &str, vid: &str) -> Result<VertexDetails, EngineError> {
        self.get(&format!("/jobs/{jid}/vertices/{vid}")).await
    }

    /// Job-scoped metrics.
    pub async fn job_metrics(
        &self,
        jid: &str,
        names: &[&str],
    ) -> Result<Vec<MetricValue>, EngineError> {
        self.get(&format!("/jobs/{jid}/metrics?get={}", names.join(",")))
            .await
    }

    /// Names of the metrics a vertex's subtasks expose.
    pub async fn vertex_metric_names(
        &self,
        jid: &str,
        vid: &str,
    ) -> Result<Vec<String>, EngineError> {
        let list: Vec<MetricValue> = self
            .get(&format!("/jobs/{jid}/vertices/{vid}/subtasks/metrics"))
            .await?;
        Ok(list.into_iter().map(|m| m.id).collect())
    }

    /// Metrics of a vertex aggregated over its subtasks (`sum`, `avg`, `max`).
    pub async fn vertex_metrics(
        &self,
        jid: &str,
        vid: &str,
        names: &[&str],
    ) -> Result<Vec<MetricValue>, EngineError> {
        self.get(&format!(
            "/jobs/{jid}/vertices/{vid}/subtasks/metrics?get={}&agg=sum,avg,max",
            names.join(",")
        ))
        .await
    }

    /// Metrics of one subtask.
    pub async fn subtask_metrics(
        &self,
        jid: &str,
        vid: &str,
        subtask: u32,
        names: &[&str],
    ) -> Result<Vec<MetricValue>, EngineError> {
        self.get(&format!(
            "/jobs/{jid}/vertices/{vid}/subtasks/{subtask}/metrics?get={}",
            names.join(",")
        ))
        .await
    }

    /// The cluster's TaskManagers.
    pub async fn taskmanagers(&self) -> Result<Vec<TaskManagerInfo>, EngineError> {
        Ok(self
            .get::<TaskManagers>("/taskmanagers")
            .await?
            .taskmanagers)
    }

    /// Metrics of one TaskManager.
    pub async fn taskmanager_metrics(
        &self,
        tm: &str,
        names: &[&str],
    ) -> Result<Vec<MetricValue>, EngineError> {
        self.get(&format!(
            "/taskmanagers/{tm}/metrics?get={}",
            names.join(",")
        ))
        .await
    }

    /// Slots and TaskManagers.
    pub async fn overview(&self) -> Result<ClusterOverview, EngineError> {
        self.get("/overview").await
    }

    /// The JobManager's effective configuration.
    pub async fn jobmanager_config(&self) -> Result<BTreeMap<String, String>, EngineError> {
        let list: Vec<ConfigEntry> = self.get("/jobmanager/config").await?;
        Ok(list.into_iter().map(|e| (e.key, e.value)).collect())
    }

    /// The job's resource requirements (adaptive scheduler only).
    pub async fn requirements(&self, jid: &str) -> Result<Requirements, EngineError> {
        self.get(&format!("/jobs/{jid}/resource-requirements"))
            .await
    }

    /// Sets the job's resource requirements (adaptive scheduler only).
    pub async fn set_requirements(&self, jid: &str, req: &Requirements) -> Result<(), EngineError> {
        self.put(&format!("/jobs/{jid}/resource-requirements"), req)
            .await
    }
}

/// Parses a Flink duration (`30 s`, `1s`, `500 ms`, `1 min`, `2m`, a bare number = ms).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1e3,
        "m" | "min" | "mins" | "minute" | "minutes" => n * 60e3,
        "h" | "hour" | "hours" => n * 3600e3,
        _ => return None,
    };
    Some(Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_flink_notation() {
        assert_eq!(parse_duration("30 s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("500"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2 min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn job_details_and_requirements_decode() {
        let j: JobDetails = serde_json::from_str(
            r#"{"jid":"a","name":"wc","state":"RUNNING","vertices":[
              {"id":"v1","name":"Source: source","parallelism":1,"maxParallelism":128,"status":"RUNNING"},
              {"id":"v2","name":"count","parallelism":2,"maxParallelism":128,"status":"RUNNING"}],
              "plan":{"nodes":[{"id":"v2","inputs":[{"num":0,"id":"v1"}]},{"id":"v1"}]}}"#,
        )
        .unwrap();
        assert_eq!(j.upstream("v2"), vec!["v1".to_string()]);
        assert!(j.upstream("v1").is_empty());
        let r: Requirements =
            serde_json::from_str(r#"{"v1":{"parallelism":{"lowerBound":1,"upperBound":2}}}"#)
                .unwrap();
        assert_eq!(r["v1"].parallelism.upper_bound, 2);
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"v1":{"parallelism":{"lowerBound":1,"upperBound":2}}}"#
        );
    }

    #[test]
    fn metric_values_parse_or_are_none() {
        let m: Vec<MetricValue> = serde_json::from_str(
            r#"[{"id":"a","value":"12.5"},{"id":"b","value":"NaN"},{"id":"c","sum":3.0}]"#,
        )
        .unwrap();
        assert_eq!(metric(&m, "a").unwrap().number(), Some(12.5));
        assert_eq!(metric(&m, "b").unwrap().number(), None);
        assert_eq!(metric(&m, "c").unwrap().sum, Some(3.0));
    }
}
