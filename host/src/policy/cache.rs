//! On-disk cache of precompiled components.
//!
//! Entries live at `<dir>/<engine key>/<sha256 of the wasm>.cwasm`. The engine key hashes the
//! wasmtime version and the engine's compatibility hash (its `Config`), so changing either
//! starts a fresh directory and stale native code is never loaded. Entries are written to a
//! temporary file and renamed, so a crash never leaves a half-written entry.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// A directory of precompiled components for one engine configuration.
#[derive(Debug, Clone)]
pub struct PrecompiledCache {
    dir: PathBuf,
}

/// Feeds `Hash` output into sha256, so the key is stable across processes (unlike
/// `DefaultHasher`, whose seed may change between Rust versions).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the full digest is used")
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

impl PrecompiledCache {
    /// The cache under `root` for `engine`.
    pub(crate) fn new(root: &Path, engine: &wasmtime::Engine) -> Self {
        let mut h = Sha256Hasher(Sha256::new());
        "wasmtime-48.0.8".hash(&mut h);
        engine.precompile_compatibility_hash().hash(&mut h);
        let key = hex::encode(&h.0.finalize()[..12]);
        PrecompiledCache {
            dir: root.join(key),
        }
    }

    /// This configuration's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for `digest` lives.
    pub(crate) fn entry(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.cwasm"))
    }

    /// Stores precompiled bytes for `digest` atomically.
    pub(crate) fn store(&self, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // Unique per process and call, so concurrent loads never share a temporary file.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{digest}.{}.{n}.tmp", std::process::id()));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, self.entry(digest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(fuel: bool) -> wasmtime::Engine {
        let mut c = wasmtime::Config::new();
        c.consume_fuel(fuel);
        wasmtime::Engine::new(&c).unwrap()
    }

    #[test]
    fn a_changed_engine_config_gets_a_fresh_directory() {
        let root = Path::new("/cache");
        let a = PrecompiledCache::new(root, &engine(true));
        let a2 = PrecompiledCache::new(root, &engine(true));
        let b = PrecompiledCache::new(root, &engine(false));
        assert_eq!(a.dir(), a2.dir());
        assert_ne!(a.dir(), b.dir());
    }
}
