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

async fn run(cmd: &[String], dir: Option<&std::path::Path>) -> Result<(), EngineError> {
    let (prog, args) = cmd
        .split_first()
        .ok_or_else(|| EngineError::Other("empty TaskManager pool command".into()))?;
    let mut command = tokio::process::Command::new(prog);
    command.args(args);
    if let Some(d) = dir {
        command.current_dir(d);
    }
    let out = command
        .output()
        .await
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
