//! What a running job shares with the API and the policy-file watcher: its status snapshot,
//! pause flag, and a queue of requests (swap, promote) the loop takes at its next tick
//! boundary, so a cycle in flight always finishes on the policy it started with.

use crate::store::DecisionRecord;
use serde::Serialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::oneshot;

/// Where a swap's component comes from.
#[derive(Debug, Clone)]
pub enum Component {
    /// A file the job reads and hashes itself.
    File(PathBuf),
    /// Bytes already read and hashed: a file read once for several jobs, or an upload.
    Bytes {
        /// What to call them in messages and events (the file's path, or "upload").
        name: String,
        /// The bytes with their sha256.
        wasm: std::sync::Arc<crate::policy::Digested<'static>>,
    },
}

impl Component {
    /// The file's path, or the bytes' name, for messages.
    pub fn name(&self) -> String {
        match self {
            Component::File(path) => path.display().to_string(),
            Component::Bytes { name, .. } => name.clone(),
        }
    }
}

/// A change the loop applies at its next tick boundary.
#[derive(Debug)]
pub enum Request {
    /// Load a new active policy (validated first).
    Swap {
        /// The component.
        component: Component,
        /// Expected sha256.
        sha256: Option<String>,
        /// New policy parameters (default: keep the job's).
        params: Option<Vec<(String, String)>>,
        /// Who asked (`api`, `file-watch`, `reset`).
        source: String,
        /// The outcome, for the caller.
        reply: Option<oneshot::Sender<Result<String, String>>>,
    },
    /// Go back to the configured policy file with the configured params (validated like a
    /// swap).
    Reset {
        /// The outcome, for the caller.
        reply: Option<oneshot::Sender<Result<String, String>>>,
    },
    /// Make a shadow candidate the active policy.
    Promote {
        /// The candidate's name.
        shadow: String,
        /// The outcome, for the caller.
        reply: Option<oneshot::Sender<Result<String, String>>>,
    },
}

/// A policy as reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    /// Name from `describe`.
    pub name: String,
    /// sha256 of the component.
    pub digest: String,
}

/// How often and how much a shadow disagreed with the active policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Divergence {
    /// Ticks both decided.
    pub decisions: u64,
    /// Ticks on which the shadow's guarded target differed from the active one's.
    pub disagreements: u64,
    /// Sum of |shadow target - active target|.
    pub total_abs_difference: u64,
    /// Largest |shadow target - active target|.
    pub max_abs_difference: u32,
    /// Ticks on which the shadow would have rescaled (its target differed from the current).
    pub would_rescale: u64,
    /// Ticks on which the active policy rescaled.
    pub active_rescales: u64,
    /// Calls that failed.
    pub errors: u64,
}

impl Divergence {
    /// Share of ticks with a different target.
    pub fn disagreement_rate(&self) -> f64 {
        if self.decisions == 0 {
            0.0
        } else {
            self.disagreements as f64 / self.decisions as f64
        }
    }

    /// Counts one tick.
    pub fn record(&mut self, current: u32, active: u32, shadow: Option<u32>) {
        if active != current {
            self.active_rescales += 1;
        }
        let Some(shadow) = shadow else {
            self.errors += 1;
            return;
        };
        self.decisions += 1;
        let d = active.abs_diff(shadow);
        if d > 0 {
            self.disagreements += 1;
        }
        self.total_abs_difference += u64::from(d);
        self.max_abs_difference = self.max_abs_difference.max(d);
        if shadow != current {
            self.would_rescale += 1;
        }
    }
}

/// A shadow as reported.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShadowStatus {
    /// Candidate name.
    pub name: String,
    /// Its policy.
    pub policy: PolicyRef,
    /// Its divergence from the active policy so far.
    pub divergence: Divergence,
    /// Share of ticks it disagreed.
    pub disagreement_rate: f64,
}

/// A job's status snapshot, updated every cycle.
#[derive(Debug, Clone, Default, Serialize)]
pub struct JobStatus {
    /// Job name.
    pub name: String,
    /// Parallelism last observed.
    pub current: Option<u32>,
    /// Parallelism the host wants (after the guardrails).
    pub desired: Option<u32>,
    /// Input rate last observed, records/s.
    pub input_rate: Option<f64>,
    /// Lag last observed, records.
    pub lag: Option<f64>,
    /// Whether acting is paused.
    pub paused: bool,
    /// Recommend only.
    pub dry_run: bool,
    /// The active policy.
    pub policy: PolicyRef,
    /// Who set the active policy when it is not the configured one (with its params): `api`,
    /// `file-watch`, `promote:NAME` or `rollback`; kept across a host restart with a store.
    pub policy_set_by: Option<String>,
    /// Shadow candidates.
    pub shadows: Vec<ShadowStatus>,
    /// What the last cycle did.
    pub last_cycle: String,
    /// Loop clock of the last cycle, ms.
    pub last_cycle_ms: u64,
    /// Rescales applied.
    pub rescales: u32,
    /// Whether a rescale is in flight.
    pub rescaling: bool,
    /// Recent decisions of every role, newest first (at most [`JobShared::RECENT`]).
    pub recent_decisions: VecDeque<DecisionRecord>,
}

/// Shared between a job's loop, the API and the watcher.
#[derive(Debug, Default)]
pub struct JobShared {
    /// Job name.
    pub name: String,
    paused: AtomicBool,
    /// Woken when `paused` is set, so the job records it at once (a pause must survive a
    /// restart, also one before the job's next tick).
    pause_set: tokio::sync::Notify,
    policy_changed: AtomicBool,
    requests: Mutex<Vec<Request>>,
    status: Mutex<JobStatus>,
}

impl JobShared {
    /// Decisions kept in the status snapshot.
    pub const RECENT: usize = 50;

    /// State for job `name`.
    pub fn new(name: &str) -> Self {
        JobShared {
            name: name.into(),
            status: Mutex::new(JobStatus {
                name: name.into(),
                ..JobStatus::default()
            }),
            ..Default::default()
        }
    }

    /// Pauses or resumes acting (a paused job still collects and decides, and records what it
    /// would have done).
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        self.pause_set.notify_one();
    }

    /// Resolves once a pause or resume was set since the last call.
    pub async fn pause_set(&self) {
        self.pause_set.notified().await;
    }

    /// Whether acting is paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Notes that the policy file changed (the watcher calls this).
    pub fn mark_policy_changed(&self) {
        self.policy_changed.store(true, Ordering::SeqCst);
    }

    /// Takes the "policy file changed" flag.
    pub fn take_policy_changed(&self) -> bool {
        self.policy_changed.swap(false, Ordering::SeqCst)
    }

    /// Queues a request for the next tick boundary.
    pub fn request(&self, r: Request) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
    }

    /// Takes the queued requests.
    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A copy of the status.
    pub fn status(&self) -> JobStatus {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        s.paused = self.paused();
        s
    }

    /// Updates the status.
    pub fn update(&self, f: impl FnOnce(&mut JobStatus)) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        s.paused = self.paused();
        while s.recent_decisions.len() > Self::RECENT {
            s.recent_decisions.pop_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divergence_counts_disagreements_and_would_be_rescales() {
        let mut d = Divergence::default();
        d.record(4, 4, Some(4));
        d.record(4, 6, Some(5));
        d.record(4, 4, Some(8));
        d.record(4, 4, None);
        assert_eq!(
            d,
            Divergence {
                decisions: 3,
                disagreements: 2,
                total_abs_difference: 5,
                max_abs_difference: 4,
                would_rescale: 2,
                active_rescales: 1,
                errors: 1,
            }
        );
        assert!((d.disagreement_rate() - 2.0 / 3.0).abs() < 1e-12);
    }
}
