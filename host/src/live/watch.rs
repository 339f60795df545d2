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

/// `p` made absolute without resolving symlinks.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Whether an event on `path` may have changed `file` (as configured, not resolved): the file
/// itself, whatever it resolves to now, or, when `file` is a symlink, anything in its folder
/// (Kubernetes swaps a ConfigMap's files by re-pointing a `..data` symlink, and deletes the
/// folder the old one pointed to). A false alarm costs one read: the loop ignores a file whose
/// bytes are unchanged.
fn affects(path: &Path, file: &Path) -> bool {
    path == file
        || canonical(path) == canonical(file)
        || (path.parent() == file.parent() && file.is_symlink())
}

/// Watches each `(file, job)` pair's folder, as configured and as its target resolves at the
/// start, and flags the job when its file may have changed.
pub fn watch(files: Vec<(PathBuf, Arc<JobShared>)>) -> notify::Result<PolicyWatcher> {
    let targets: Vec<(PathBuf, Arc<JobShared>)> =
        files.into_iter().map(|(p, j)| (absolute(&p), j)).collect();
    let dirs: std::collections::BTreeSet<PathBuf> = targets
        .iter()
        .flat_map(|(p, _)| {
            [
                p.parent().map(Path::to_path_buf),
                canonical(p).parent().map(Path::to_path_buf),
            ]
        })
        .flatten()
        .collect();
    let handler_targets = targets.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if ev.kind.is_access() {
            return;
        }
        for (file, job) in &handler_targets {
            if ev.paths.iter().any(|p| affects(p, file)) {
                tracing::info!(job = %job.name, file = %file.display(), "Policy file changed; reloading at the next tick.");
                job.mark_policy_changed();
            }
        }
    })?;
    for d in dirs {
        watcher.watch(&d, RecursiveMode::NonRecursive)?;
    }
    Ok(PolicyWatcher { _watcher: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    fn flagged(job: &JobShared) -> bool {
        for _ in 0..100 {
            if job.take_policy_changed() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// A ConfigMap volume: `policy.wasm -> ..data/policy.wasm`, `..data -> ..v1`. An update
    /// writes `..vN`, re-points `..data` by renaming a new symlink over it, and deletes the old
    /// folder. Every update is seen, not only the first.
    #[test]
    fn every_configmap_style_update_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("..v1")).unwrap();
        std::fs::write(d.join("..v1/policy.wasm"), b"v1").unwrap();
        symlink("..v1", d.join("..data")).unwrap();
        symlink("..data/policy.wasm", d.join("policy.wasm")).unwrap();
        let job = Arc::new(JobShared::new("j"));
        let _w = watch(vec![(d.join("policy.wasm"), job.clone())]).unwrap();
        for v in 2..=4 {
            let new = format!("..v{v}");
            std::fs::create_dir(d.join(&new)).unwrap();
            std::fs::write(d.join(&new).join("policy.wasm"), format!("v{v}")).unwrap();
            symlink(&new, d.join("..data_tmp")).unwrap();
            std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
            std::fs::remove_dir_all(d.join(format!("..v{}", v - 1))).unwrap();
            assert!(flagged(&job), "update {v} was not seen");
            assert_eq!(
                std::fs::read_to_string(d.join("policy.wasm")).unwrap(),
                format!("v{v}")
            );
        }
    }

    /// A plain file rewritten in place, and an unrelated file beside it.
    #[test]
    fn a_rewritten_file_is_seen_and_its_neighbours_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, b"a").unwrap();
        let job = Arc::new(JobShared::new("j"));
        let _w = watch(vec![(file.clone(), job.clone())]).unwrap();
        std::fs::write(dir.path().join("other.wasm"), b"x").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(!job.take_policy_changed(), "a neighbour flagged the job");
        std::fs::write(&file, b"b").unwrap();
        assert!(flagged(&job));
    }
}
