//! `SavepointRescaleActuator`: rescaling by stop-with-savepoint and resubmission, for clusters
//! that do not run the adaptive scheduler (no resource-requirements endpoint).
//!
//! `apply` stops the job with a savepoint (`POST /jobs/{id}/stop`, polling the trigger until
//! it completes), then runs the job's jar again from that savepoint at the new parallelism
//! (`POST /jars/{jar}/run` with `savepointPath`), uploading the jar first when the cluster does
//! not have it. The resubmitted job has a new id, so follow it by name. This path rescales the
//! whole job (one parallelism for every vertex the program did not give its own); per-vertex
//! targets use their maximum, capped at the vertices' key groups. It refuses before stopping
//! the job when the cluster would not have the slots: it starts no TaskManagers.
//!
//! A resubmit that fails after the savepoint completed leaves the job stopped. The actuator
//! keeps the savepoint's path and reports the rescale as applied, so the loop polls
//! `progress`, which resubmits from that savepoint on every poll until a run is accepted;
//! past the loop's rescale timeout, `recover` goes on doing so on every tick the job is not
//! ready (the error log names the savepoint for a manual resubmit). Before each retry it
//! checks that no newer job of that name exists, and every run of one resubmit carries the
//! same job id (derived from the stopped job, the savepoint and the parallelism), so a run
//! whose answer was lost or is still in flight is not run twice: Flink refuses the duplicate.
//!
//! A stop whose outcome is not seen (its answer times out or fails with a server error, or
//! the savepoint is not complete within the rescale timeout) may still stop the job. The
//! actuator reports the rescale as applied and remembers the stop; once the job has stopped
//! with a kept stop-with-savepoint, `progress`, or past the timeout `recover`, resubmits it
//! from there. A job still running a minute later with no stop-with-savepoint in progress
//! did not stop, and the stop is forgotten. A host restarted between the savepoint and
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
    /// A stop this actuator asked for whose outcome it did not see (the answer, or the
    /// savepoint's completion, timed out or failed): the job may stop with a savepoint later.
    unconfirmed_stop: Mutex<Option<UnconfirmedStop>>,
}

/// A stop-with-savepoint that may have been triggered: the job, the parallelism to resubmit
/// it at, and when it was asked for.
#[derive(Debug, Clone)]
struct UnconfirmedStop {
    jid: String,
    parallelism: u32,
    asked: Stopwatch,
}

/// How long after an unconfirmed stop a running job without a stop-with-savepoint in progress
/// is taken as not stopping (Flink's checkpoint statistics are cached for a few seconds).
const UNCONFIRMED_STOP_GRACE: Duration = Duration::from_secs(60);

/// Why `savepoint` gave up.
#[derive(Debug)]
enum StopError {
    /// Flink refused the stop: the job runs on.
    Refused(EngineError),
    /// The stop may have been triggered (its answer or the savepoint's completion is not
    /// known): the job may still stop with a savepoint.
    Unconfirmed(EngineError),
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
    #[serde(default)]
    history: Vec<CheckpointEntry>,
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
            unconfirmed_stop: Mutex::new(None),
        }
    }

    fn unconfirmed_stop(&self) -> Option<UnconfirmedStop> {
        self.unconfirmed_stop.lock().expect("not poisoned").clone()
    }

    fn set_unconfirmed_stop(&self, s: Option<UnconfirmedStop>) {
        *self.unconfirmed_stop.lock().expect("not poisoned") = s;
    }

    /// After a stop whose outcome was not seen: once the job turns out stopped with a kept
    /// stop-with-savepoint, it is stranded (resubmitted from that savepoint). The stop is
    /// forgotten once another job of that name runs, or once the job still runs a minute
    /// later with no stop-with-savepoint in progress (the stop failed or never arrived), so
    /// a later stop by someone else is not taken for this one.
    async fn settle_unconfirmed_stop(&self) -> Result<(), EngineError> {
        let Some(stop) = self.unconfirmed_stop() else {
            return Ok(());
        };
        let job = match resolve(&self.rest, &self.job).await {
            Ok(job) => job,
            Err(EngineError::JobNotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if job.jid != stop.jid {
            self.set_unconfirmed_stop(None);
            return Ok(());
        }
        if job.state == "FINISHED"
            && let Some(location) = self.stop_savepoint(&job.jid).await?
        {
            tracing::warn!(job = %job.jid, savepoint = %location,
                "The stop whose outcome was not seen took a savepoint; resubmitting from it.");
            self.set_unconfirmed_stop(None);
            self.set_stranded(Some(Stranded {
                from_jid: stop.jid,
                location,
                parallelism: stop.parallelism,
            }));
        } else if job.state == "RUNNING"
            && stop.asked.elapsed() > UNCONFIRMED_STOP_GRACE
            && !self.stop_in_progress(&job.jid).await?
        {
            tracing::info!(job = %job.jid, "The unconfirmed stop did not happen; the job runs on.");
            self.set_unconfirmed_stop(None);
        }
        Ok(())
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
    /// job's id. The id is fixed by the stopped job, the savepoint and `p`, so a second run
    /// of the same resubmit (the first one's answer lost or late) is refused by Flink as a
    /// duplicate instead of running the job twice.
    async fn run_from(
        &self,
        from_jid: &str,
        location: &str,
        p: u32,
    ) -> Result<String, EngineError> {
        let jar = self.jar_id().await?;
        let mut body = serde_json::json!({
            "jobId": resubmit_job_id(from_jid, location, p),
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

    /// Whether job `jid` is taking a stop-with-savepoint now.
    async fn stop_in_progress(&self, jid: &str) -> Result<bool, EngineError> {
        let stats: CheckpointStats = self.rest.get(&format!("/jobs/{jid}/checkpoints")).await?;
        Ok(stats
            .history
            .iter()
            // Any savepoint in progress: a slow stop must not be forgotten on a type name.
            .any(|c| c.status == "IN_PROGRESS" && c.checkpoint_type.contains("SAVEPOINT")))
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
        match self.run_from(&s.from_jid, &s.location, s.parallelism).await {
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

    /// Stops job `jid` with a savepoint; where the savepoint is.
    async fn savepoint(&self, jid: &str) -> Result<String, StopError> {
        let t: Trigger = self
            .rest
            .post(
                &format!("/jobs/{jid}/stop"),
                &serde_json::json!({"drain": false}),
            )
            .await
            .map_err(|e| match e {
                // Flink refused the request itself; anything else (a timeout, a lost
                // connection, a server error) may have triggered the stop.
                EngineError::Status { status, .. } if (400..500).contains(&status) => {
                    StopError::Refused(e)
                }
                EngineError::JobNotFound(_) => StopError::Refused(e),
                e => StopError::Unconfirmed(e),
            })?;
        let clock = Stopwatch::start();
        loop {
            let s: AsyncStatus = self
                .rest
                .get(&format!("/jobs/{jid}/savepoints/{}", t.request_id))
                .await
                .map_err(StopError::Unconfirmed)?;
            if s.status.id == "COMPLETED" {
                let op = s.operation.unwrap_or_default();
                if let Some(loc) = op.get("location").and_then(|l| l.as_str()) {
                    return Ok(loc.to_string());
                }
                // The savepoint failed, and with it the stop: the job runs on.
                return Err(StopError::Refused(EngineError::Other(format!(
                    "savepoint failed: {op}"
                ))));
            }
            if clock.elapsed() > self.resubmit.savepoint_timeout {
                return Err(StopError::Unconfirmed(EngineError::Other(format!(
                    "savepoint of {jid} not complete after {:?}",
                    self.resubmit.savepoint_timeout
                ))));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The Flink job id (32 hex digits) of the resubmit of `from_jid` from `location` at `p`.
fn resubmit_job_id(from_jid: &str, location: &str, p: u32) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{from_jid}\n{location}\n{p}"));
    hex::encode(&digest[..16])
}

/// The one parallelism this path gives the whole job: the largest of the per-vertex targets,
/// within the key groups (`maxParallelism`) of every vertex that can rescale, since the
/// savepoint cannot be restored above them. A vertex at 1 of 1 is non-parallel (`windowAll`,
/// a global sink) and keeps 1 whatever the job's parallelism.
fn whole_job(job: &super::rest::JobDetails, target: &Target) -> u32 {
    let want = job
        .vertices
        .iter()
        .map(|v| target.for_operator(&v.id))
        .max()
        .unwrap_or(target.job)
        .max(1);
    let key_groups = job
        .vertices
        .iter()
        .filter(|v| !(v.parallelism == 1 && v.max_parallelism == 1))
        .filter_map(|v| u32::try_from(v.max_parallelism).ok().filter(|m| *m > 0))
        .min();
    key_groups.map_or(want, |k| want.min(k))
}

/// Whether the job runs at `p`: its widest vertex does. A vertex given its own parallelism
/// in the program (a sink at 1) keeps it, so not every vertex is at `p`.
fn runs_at(job: &super::rest::JobDetails, p: u32) -> bool {
    job.vertices.iter().map(|v| v.parallelism).max() == Some(p)
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
        if runs_at(&job, p) {
            return Ok(ApplyOutcome::AlreadyAtTarget);
        }
        // The resubmitted job needs `p` slots (one slot-sharing group), from the free ones and
        // those the stopped job gives back: without them it would wait with the job stopped.
        let ov = self.rest.overview().await?;
        let freed = job
            .vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0);
        let free = ov.slots_available.saturating_add(freed);
        if free < p {
            return Ok(ApplyOutcome::Rejected(format!(
                "needs {p} slots, the cluster would have {free} free ({} available, {freed} \
                 from the job); the savepoint path starts no TaskManagers",
                ov.slots_available
            )));
        }
        // Fail before stopping the job when the jar cannot be found or uploaded.
        self.jar_id().await?;
        self.set_unconfirmed_stop(None);
        let location = match self.savepoint(&job.jid).await {
            Ok(location) => location,
            Err(StopError::Refused(e)) => return Err(e),
            Err(StopError::Unconfirmed(e)) => {
                // The job may be stopping: the rescale has begun. `progress` (and past the
                // rescale timeout, `recover`) resubmits it once it has stopped with a savepoint.
                tracing::warn!(job = %job.jid, error = %e,
                    "Asked to stop the job with a savepoint and did not see the outcome; \
                     will resubmit it if it stops.");
                self.set_unconfirmed_stop(Some(UnconfirmedStop {
                    jid: job.jid.clone(),
                    parallelism: p,
                    asked: Stopwatch::start(),
                }));
                return Ok(ApplyOutcome::Applied(format!(
                    "asked to stop {} with a savepoint ({e}); resubmitting at {p} once it has \
                     stopped",
                    job.jid
                )));
            }
        };
        match self.run_from(&job.jid, &location, p).await {
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
        self.settle_unconfirmed_stop().await?;
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
            && job.vertices.iter().all(|v| v.status == "RUNNING")
            && runs_at(&job, p)
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
        self.settle_unconfirmed_stop().await?;
        self.resume_stranded().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::flink::rest::{JobDetails, Vertex};

    fn job(vertices: &[(&str, u32, i64)]) -> JobDetails {
        JobDetails {
            jid: "j".into(),
            name: "wc".into(),
            state: "RUNNING".into(),
            vertices: vertices
                .iter()
                .map(|(id, p, max)| Vertex {
                    id: (*id).into(),
                    name: (*id).into(),
                    parallelism: *p,
                    max_parallelism: *max,
                    status: "RUNNING".into(),
                })
                .collect(),
            plan: None,
        }
    }

    #[test]
    fn a_vertex_with_its_own_parallelism_does_not_keep_the_job_off_target() {
        // A source and a map at 4, a global sink at 1 of 1, a sink the program set to 1.
        let j = job(&[
            ("src", 4, 128),
            ("map", 4, 128),
            ("all", 1, 1),
            ("sink", 1, 128),
        ]);
        assert_eq!(whole_job(&j, &Target::job(4)), 4);
        assert!(runs_at(&j, 4));
        assert!(!runs_at(&j, 2));
    }

    #[test]
    fn the_job_parallelism_stays_within_the_key_groups() {
        let j = job(&[("src", 2, 8), ("map", 2, 128), ("all", 1, 1)]);
        assert_eq!(whole_job(&j, &Target::job(12)), 8);
        assert_eq!(whole_job(&j, &Target::job(6)), 6);
        // Unknown key groups (-1) bound nothing.
        let j = job(&[("src", 2, -1)]);
        assert_eq!(whole_job(&j, &Target::job(12)), 12);
    }

    #[test]
    fn a_resubmit_has_one_job_id() {
        let id = resubmit_job_id("a1", "file:/sp/1", 4);
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id, resubmit_job_id("a1", "file:/sp/1", 4));
        assert_ne!(id, resubmit_job_id("a1", "file:/sp/1", 2));
        assert_ne!(id, resubmit_job_id("a1", "file:/sp/2", 4));
    }
}
