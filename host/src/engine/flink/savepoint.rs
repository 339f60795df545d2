//! `SavepointRescaleActuator`: rescaling by stop-with-savepoint and resubmission, for clusters
//! that do not run the adaptive scheduler (no resource-requirements endpoint).
//!
//! `apply` stops the job with a savepoint (`POST /jobs/{id}/stop`, polling the trigger until
//! it completes), then runs the job's jar again from that savepoint at the new parallelism
//! (`POST /jars/{jar}/run` with `savepointPath`), uploading the jar first when the cluster does
//! not have it. The resubmitted job has a new id, so follow it by name. This path rescales the
//! whole job (one parallelism for every vertex); per-vertex targets use their maximum.
//!
//! A resubmit that fails after the savepoint completed leaves the job stopped. The actuator
//! keeps the savepoint's path and reports the rescale as applied, so the loop polls
//! `progress`, which resubmits from that savepoint on every poll until a run is accepted;
//! past the loop's rescale timeout, `recover` goes on doing so on every tick the job is not
//! ready (the error log names the savepoint for a manual resubmit). Before each retry it
//! checks that no newer job of that name exists, so a run whose answer was lost is not
//! submitted twice. A host restarted between the savepoint and
//! the resubmit has lost that path: while the rescale is pending, `progress` finds the stopped
//! job's stop-with-savepoint (`SYNC_SAVEPOINT`) in Flink's checkpoint statistics and resumes
//! from it.

use super::rest::FlinkRest;
use super::{JobSelector, resolve};
use crate::clock::Stopwatch;
use crate::engine::{Actuator, ApplyOutcome, EngineError, Progress, Target};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Mutex;
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
    /// A job stopped with a savepoint whose resubmit has not been accepted yet.
    stranded: Mutex<Option<Stranded>>,
    /// The last job this actuator stopped and resubmitted (its successor may not be listed
    /// yet right after the run, and must not be mistaken for a stranded job).
    resubmitted_from: Mutex<Option<String>>,
}

/// A job this actuator stopped and could not start again yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stranded {
    /// The stopped job's id.
    from_jid: String,
    /// Where its savepoint is.
    location: String,
    /// The parallelism to resubmit at.
    parallelism: u32,
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
struct CheckpointStats {
    #[serde(default)]
    latest: Option<LatestCheckpoints>,
}

#[derive(Debug, Deserialize)]
struct LatestCheckpoints {
    #[serde(default)]
    savepoint: Option<CheckpointEntry>,
}

#[derive(Debug, Deserialize)]
struct CheckpointEntry {
    #[serde(default)]
    status: String,
    #[serde(default)]
    checkpoint_type: String,
    #[serde(default)]
    external_path: Option<String>,
    #[serde(default)]
    discarded: bool,
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
            stranded: Mutex::new(None),
            resubmitted_from: Mutex::new(None),
        }
    }

    fn resubmitted(&self, from_jid: &str) {
        *self.resubmitted_from.lock().expect("not poisoned") = Some(from_jid.to_string());
    }

    fn was_resubmitted(&self, jid: &str) -> bool {
        self.resubmitted_from
            .lock()
            .expect("not poisoned")
            .as_deref()
            == Some(jid)
    }

    fn stranded(&self) -> Option<Stranded> {
        self.stranded.lock().expect("not poisoned").clone()
    }

    fn set_stranded(&self, s: Option<Stranded>) {
        *self.stranded.lock().expect("not poisoned") = s;
    }

    /// Runs the job's jar from the savepoint at `location` with parallelism `p`; the new
    /// job's id.
    async fn run_from(&self, location: &str, p: u32) -> Result<String, EngineError> {
        let jar = self.jar_id().await?;
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
        Ok(run.jobid)
    }

    /// Where the savepoint that stopped job `jid` is, if it was stopped with one that is kept.
    async fn stop_savepoint(&self, jid: &str) -> Result<Option<String>, EngineError> {
        let stats: CheckpointStats = self.rest.get(&format!("/jobs/{jid}/checkpoints")).await?;
        Ok(stats
            .latest
            .and_then(|l| l.savepoint)
            .filter(|s| {
                s.status == "COMPLETED" && s.checkpoint_type == "SYNC_SAVEPOINT" && !s.discarded
            })
            .and_then(|s| s.external_path))
    }

    /// With a stranded job: resubmits it unless a newer job of that name exists. `None` when
    /// nothing is stranded (any more), else why the rescale is still pending.
    async fn resume_stranded(&self) -> Result<Option<String>, EngineError> {
        let Some(s) = self.stranded() else {
            return Ok(None);
        };
        match resolve(&self.rest, &self.job).await {
            Ok(job) if job.jid != s.from_jid => {
                // A run was accepted after all (its answer lost), or someone else resubmitted.
                self.set_stranded(None);
                return Ok(None);
            }
            Ok(job) if !matches!(job.state.as_str(), "FINISHED" | "CANCELED" | "FAILED") => {
                return Ok(Some(format!(
                    "job {} is {} after its savepoint",
                    job.jid, job.state
                )));
            }
            Ok(_) | Err(EngineError::JobNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        match self.run_from(&s.location, s.parallelism).await {
            Ok(jid) => {
                tracing::info!(from = %s.from_jid, job = %jid, savepoint = %s.location,
                    "Resubmitted the stopped job from its savepoint.");
                self.set_stranded(None);
                self.resubmitted(&s.from_jid);
                Ok(Some(format!(
                    "resubmitted from {} at {} as job {jid}",
                    s.location, s.parallelism
                )))
            }
            Err(e) => {
                tracing::error!(from = %s.from_jid, savepoint = %s.location, error = %e,
                    "The job is stopped and its resubmit failed again; will retry.");
                Ok(Some(format!(
                    "job {} stopped with savepoint {}; resubmit failed: {e}",
                    s.from_jid, s.location
                )))
            }
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
        if let Some(why) = self.resume_stranded().await? {
            return Ok(ApplyOutcome::InProgress(why));
        }
        let job = resolve(&self.rest, &self.job).await?;
        if job.state != "RUNNING" {
            return Ok(ApplyOutcome::InProgress(format!("job is {}", job.state)));
        }
        let p = whole_job(&job, target);
        if job.vertices.iter().all(|v| v.parallelism == p) {
            return Ok(ApplyOutcome::AlreadyAtTarget);
        }
        // Fail before stopping the job when the jar cannot be found or uploaded.
        self.jar_id().await?;
        let location = self.savepoint(&job.jid).await?;
        match self.run_from(&location, p).await {
            Ok(jid) => {
                self.resubmitted(&job.jid);
                Ok(ApplyOutcome::Applied(format!(
                    "stopped {} with savepoint {location}; resubmitted at {p} as job {jid}",
                    job.jid
                )))
            }
            Err(e) => {
                // The job is stopped: the rescale has begun, and `progress` finishes it.
                tracing::error!(job = %job.jid, savepoint = %location, error = %e,
                    "Stopped the job with a savepoint but could not resubmit it; will retry.");
                self.set_stranded(Some(Stranded {
                    from_jid: job.jid.clone(),
                    location: location.clone(),
                    parallelism: p,
                }));
                Ok(ApplyOutcome::Applied(format!(
                    "stopped {} with savepoint {location}; resubmit at {p} failed ({e}), will retry",
                    job.jid
                )))
            }
        }
    }

    async fn progress(&self, target: &Target) -> Result<Progress, EngineError> {
        if let Some(why) = self.resume_stranded().await? {
            return Ok(Progress::Pending(why));
        }
        let mut job = match resolve(&self.rest, &self.job).await {
            Ok(j) => j,
            Err(EngineError::JobNotFound(why)) => return Ok(Progress::Pending(why)),
            Err(e) => return Err(e),
        };
        // No job of this name runs, and the newest was stopped with a savepoint while this
        // rescale is pending: this actuator's own stop, its resubmit lost to a host restart.
        if job.state == "FINISHED"
            && !self.was_resubmitted(&job.jid)
            && let Some(location) = self.stop_savepoint(&job.jid).await?
        {
            tracing::warn!(job = %job.jid, savepoint = %location,
                "The job was stopped with a savepoint and not resubmitted; resuming from it.");
            self.set_stranded(Some(Stranded {
                from_jid: job.jid.clone(),
                location,
                parallelism: whole_job(&job, target),
            }));
            if let Some(why) = self.resume_stranded().await? {
                return Ok(Progress::Pending(why));
            }
            job = resolve(&self.rest, &self.job).await?;
        }
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

    async fn recover(&self) -> Result<Option<String>, EngineError> {
        self.resume_stranded().await
    }
}
