//! TaskManager pools: how the actuator gets more slots when a job needs them.

use crate::engine::EngineError;

/// Adds or removes TaskManagers.
#[async_trait::async_trait]
pub trait TaskManagerPool: Send + Sync {
    /// Starts one more TaskManager.
    async fn add(&self) -> Result<(), EngineError>;
    /// Stops one TaskManager this pool started (never the cluster's own).
    async fn remove(&self) -> Result<(), EngineError>;
}

/// A pool driven by two commands, e.g. the distribution's
/// `FLINK_CONF_DIR=... bin/taskmanager.sh start|stop` for a local cluster.
#[derive(Debug, Clone)]
pub struct CommandPool {
    /// Program and arguments that start one TaskManager.
    pub start: Vec<String>,
    /// Program and arguments that stop one TaskManager.
    pub stop: Vec<String>,
    /// Working directory of the commands (default: the current one).
    pub dir: Option<std::path::PathBuf>,
}

/// The longest a pool command may run before it is killed and the call fails: starting a
/// TaskManager takes seconds; a command that hangs must not wedge the job's loop.
pub(crate) const POOL_COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

async fn run(cmd: &[String], dir: Option<&std::path::Path>) -> Result<(), EngineError> {
    run_within(cmd, dir, POOL_COMMAND_TIMEOUT).await
}

async fn run_within(
    cmd: &[String],
    dir: Option<&std::path::Path>,
    timeout: std::time::Duration,
) -> Result<(), EngineError> {
    let (prog, args) = cmd
        .split_first()
        .ok_or_else(|| EngineError::Other("empty TaskManager pool command".into()))?;
    let mut command = tokio::process::Command::new(prog);
    command.args(args);
    if let Some(d) = dir {
        command.current_dir(d);
    }
    command.kill_on_drop(true);
    let out = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| EngineError::Timeout {
            endpoint: cmd.join(" "),
            timeout_ms: timeout.as_millis() as u64,
        })?
        .map_err(|e| EngineError::Other(format!("cannot run {prog}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EngineError::Other(format!(
            "{prog} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[async_trait::async_trait]
impl TaskManagerPool for CommandPool {
    async fn add(&self) -> Result<(), EngineError> {
        run(&self.start, self.dir.as_deref()).await
    }

    async fn remove(&self) -> Result<(), EngineError> {
        run(&self.stop, self.dir.as_deref()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_hanging_command_is_killed_at_its_timeout() {
        let hang = ["sleep".to_string(), "30".to_string()];
        let err = run_within(&hang, None, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, EngineError::Timeout { .. }), "{err:?}");
        let fails = ["false".to_string()];
        assert!(matches!(
            run_within(&fails, None, Duration::from_secs(5)).await,
            Err(EngineError::Other(_))
        ));
        run_within(&["true".to_string()], None, Duration::from_secs(5))
            .await
            .unwrap();
    }
}
