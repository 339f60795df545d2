//! `SavepointRescaleActuator`: rescaling by stop-with-savepoint and resubmission, for clusters
//! that do not run the adaptive scheduler (no resource-requirements endpoint).
//!
//! `apply` stops the job with a savepoint (`POST /jobs/{id}/stop`, polling the trigger until
//! it completes), then runs the job's jar again from that savepoint at the new parallelism
//! (`POST /jars/{jar}/run` with `savepointPath`), uploading the jar first when the cluster does
//! not have it. The resubmitted job has a new id, so follow it by name. This path rescales the
//! whole job (one parallelism for every vertex); per-vertex targets use their maximum.

use super::rest::FlinkRest;
use super::{JobSelector, resolve};
use crate::clock::Stopwatch;
use crate::engine::{Actuator, ApplyOutcome, EngineError, Progress, Target};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How to resubmit the job.
#[derive(Debug, Clone)]
pub struct Resubmit {
    /// The job's jar on this machine (uploaded when the cluster lacks a jar of that file name).
    pub jar: PathBuf,
    /// Program arguments.
    pub args: Vec<String>,
    /// Entry class, when the jar's manifest has none.
    pub entry_class: Option<String>,
    /// Give up waiting for the savepoint after this long.
    pub savepoint_timeout: Duration,
}

/// The actuator.
#[derive(Debug)]
pub struct SavepointRescaleActuator {
    rest: FlinkRest,
    job: JobSelector,
    resubmit: Resubmit,
}

#[derive(Debug, Deserialize)]
struct Trigger {
    #[serde(rename = "request-id")]
    request_id: String,
}

#[derive(Debug, Deserialize)]
struct AsyncStatus {
    status: StatusId,
    #[serde(default)]
    operation: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct StatusId {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Jars {
    #[serde(default)]
    files: Vec<JarFile>,
}

#[derive(Debug, Deserialize)]
struct JarFile {
    id: String,
    name: String,
    #[serde(default)]
    uploaded: i64,
}

#[derive(Debug, Deserialize)]
struct Uploaded {
    filename: String,
}

#[derive(Debug, Deserialize)]
struct Run {
    jobid: String,
}

impl SavepointRescaleActuator {
    /// An actuator for `job` that resubmits it as `resubmit` says.
    pub fn new(rest: FlinkRest, job: JobSelector, resubmit: Resubmit) -> Self {
        SavepointRescaleActuator {
            rest,
            job,
            resubmit,
        }
    }

    /// The cluster's id of the job's jar, uploading it when missing.
    async fn jar_id(&self) -> Result<String, EngineError> {
        let name = self
            .resubmit
            .jar
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let jars: Jars = self.rest.get("/jars").await?;
        if let Some(j) = jars
            .files
            .iter()
            .filter(|f| f.name == name)
            .max_by_key(|f| f.uploaded)
        {
            return Ok(j.id.clone());
        }
        let bytes = std::fs::read(&self.resubmit.jar).map_err(|e| {
            EngineError::Other(format!("cannot read {}: {e}", self.resubmit.jar.display()))
        })?;
        let up: Uploaded = self.rest.upload_jar(&name, bytes).await?;
        Ok(up
            .filename
            .rsplit('/')
            .next()
            .unwrap_or(&up.filename)
            .to_string())
    }

    async fn savepoint(&self, jid: &str) -> Result<String, EngineError> {
        let t: Trigger = self
            .rest
            .post(
                &format!("/jobs/{jid}/stop"),
                &serde_json::json!({"drain": false}),
            )
            .await?;
        let clock = Stopwatch::start();
        loop {
            let s: AsyncStatus = self
                .rest
                .get(&format!("/jobs/{jid}/savepoints/{}", t.request_id))
                .await?;
            if s.status.id == "COMPLETED" {
                let op = s.operation.unwrap_or_default();
                if let Some(loc) = op.get("location").and_then(|l| l.as_str()) {
                    return Ok(loc.to_string());
                }
                return Err(EngineError::Other(format!("savepoint failed: {op}")));
            }
            if clock.elapsed() > self.resubmit.savepoint_timeout {
                return Err(EngineError::Other(format!(
                    "savepoint of {jid} not complete after {:?}",
                    self.resubmit.savepoint_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The one parallelism this path gives the whole job: the largest of the per-vertex targets.
fn whole_job(job: &super::rest::JobDetails, target: &Target) -> u32 {
    job.vertices
        .iter()
        .map(|v| target.for_operator(&v.id))
        .max()
        .unwrap_or(target.job)
        .max(1)
}

#[async_trait::async_trait]
impl Actuator for SavepointRescaleActuator {
    async fn apply(&self, target: &Target) -> Result<ApplyOutcome, EngineError> {
        let job = resolve(&self.rest, &self.job).await?;
        if job.state != "RUNNING" {
            return Ok(ApplyOutcome::InProgress(format!("job is {}", job.state)));
        }
        let p = whole_job(&job, target);
        if job.vertices.iter().all(|v| v.parallelism == p) {
            return Ok(ApplyOutcome::AlreadyAtTarget);
        }
        let jar = self.jar_id().await?;
        let location = self.savepoint(&job.jid).await?;
        let mut body = serde_json::json!({
            "parallelism": p,
            "programArgsList": self.resubmit.args,
            "savepointPath": location,
            "allowNonRestoredState": false,
        });
        if let Some(c) = &self.resubmit.entry_class {
            body["entryClass"] = serde_json::json!(c);
        }
        let run: Run = self.rest.post(&format!("/jars/{jar}/run"), &body).await?;
        Ok(ApplyOutcome::Applied(format!(
            "stopped {} with savepoint {location}; resubmitted at {p} as job {}",
            job.jid, run.jobid
        )))
    }

    async fn progress(&self, target: &Target) -> Result<Progress, EngineError> {
        let job = match resolve(&self.rest, &self.job).await {
            Ok(j) => j,
            Err(EngineError::JobNotFound(why)) => return Ok(Progress::Pending(why)),
            Err(e) => return Err(e),
        };
        let p = whole_job(&job, target);
        if job.state == "RUNNING"
            && job
                .vertices
                .iter()
                .all(|v| v.status == "RUNNING" && v.parallelism == p)
        {
            Ok(Progress::Done)
        } else {
            Ok(Progress::Pending(format!(
                "job {} is {}",
                job.jid, job.state
            )))
        }
    }
}
