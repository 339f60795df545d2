//! Apache Flink through its REST API: the collector, the in-place rescaling actuator (adaptive
//! scheduler), the stop-with-savepoint-and-resubmit actuator (any scheduler), and the
//! TaskManager pool that grows the cluster when slots run short.

mod actuator;
mod collector;
mod pool;
pub mod rest;
mod savepoint;

pub use actuator::FlinkRescaleActuator;
pub use collector::{FlinkRestCollector, WorkerSource};
pub use pool::{CommandPool, TaskManagerPool};
pub use savepoint::{Resubmit, SavepointRescaleActuator};

use crate::engine::EngineError;
use rest::{FlinkRest, JobDetails};

/// Which job on the cluster a connector follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSelector {
    /// A fixed job id.
    Id(String),
    /// The newest running (else newest) job with this name: survives a resubmission, which
    /// gives the job a new id.
    Name(String),
}

/// Resolves the selector to the job's current details.
pub(crate) async fn resolve(
    rest: &FlinkRest,
    sel: &JobSelector,
) -> Result<JobDetails, EngineError> {
    let jid = match sel {
        JobSelector::Id(id) => id.clone(),
        JobSelector::Name(name) => {
            let mut jobs: Vec<_> = rest
                .jobs()
                .await?
                .into_iter()
                .filter(|j| &j.name == name)
                .collect();
            // Running first, then the newest.
            jobs.sort_by_key(|j| (j.state == "RUNNING", j.start_time));
            jobs.pop()
                .ok_or_else(|| EngineError::JobNotFound(format!("no job named {name:?}")))?
                .jid
        }
    };
    rest.job(&jid).await
}
