//! Watches policy files (notify) and flags the jobs using them; each job reloads its policy
//! at its next tick boundary ([`super::shared::JobShared::mark_policy_changed`]). Editors and
//! build tools write files in several steps, so a flag rather than an immediate reload: the
//! loop reads the file once, at the boundary, and ignores it when its bytes are unchanged.

use super::shared::JobShared;
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Keeps the watch alive; dropping it stops watching.
pub struct PolicyWatcher {
    _watcher: notify::RecommendedWatcher,
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// Watches each `(file, job)` pair's folder and flags the job when its file changes.
pub fn watch(files: Vec<(PathBuf, Arc<JobShared>)>) -> notify::Result<PolicyWatcher> {
    let targets: Vec<(PathBuf, Arc<JobShared>)> =
        files.into_iter().map(|(p, j)| (canonical(&p), j)).collect();
    let dirs: std::collections::BTreeSet<PathBuf> = targets
        .iter()
        .filter_map(|(p, _)| p.parent().map(Path::to_path_buf))
        .collect();
    let handler_targets = targets.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if ev.kind.is_access() {
            return;
        }
        for path in &ev.paths {
            let path = canonical(path);
            for (file, job) in &handler_targets {
                if &path == file {
                    tracing::info!(job = %job.name, file = %file.display(), "Policy file changed; reloading at the next tick.");
                    job.mark_policy_changed();
                }
            }
        }
    })?;
    for d in dirs {
        watcher.watch(&d, RecursiveMode::NonRecursive)?;
    }
    Ok(PolicyWatcher { _watcher: watcher })
}
