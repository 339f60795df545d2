//! The one wasmtime `Engine` of the process, its linker, epoch ticker and precompiled cache.

use super::bindings::{self, ScalingPolicy as Bindings, ScalingPolicyPre};
use super::cache::PrecompiledCache;
use super::error::LoadError;
use super::imports;
use super::limits::PolicyLimits;
use super::loaded::{Compiled, GuestPre, LoadReport, LoadedPolicy};
use super::sandbox::HostState;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};

/// The magic and layer bytes of a binary component (`\0asm`, version 0x0d, layer 1).
const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
/// The header of a core module (`\0asm`, version 1).
const CORE_MODULE_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/// One digest's entry in the engine's memo: the compiled component, while anyone holds it.
type Slot = Mutex<Weak<Compiled>>;

/// Whether `slot`'s component is held somewhere, or a load is compiling it (its lock is taken).
fn in_use(slot: &Slot) -> bool {
    match slot.try_lock() {
        Ok(compiled) => compiled.strong_count() > 0,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().strong_count() > 0,
        Err(std::sync::TryLockError::WouldBlock) => true,
    }
}

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Root of the precompiled cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Period of the epoch ticker; deadlines are rounded up to whole ticks. Default 10 ms.
    pub epoch_tick: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            cache_dir: None,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Compiles, checks and pre-instantiates policy components. One per process; cheap to share
/// behind an `Arc`. Compilation is CPU-heavy: call the `load_*` methods off the async workers.
pub struct PolicyEngine {
    engine: wasmtime::Engine,
    /// The linker for the current WIT version.
    linker: Linker<HostState>,
    /// The linker for 0.1.0 (its `log` import has the 0.1.0 types).
    linker_v0_1: Linker<HostState>,
    cache: Option<PrecompiledCache>,
    epoch_tick: Duration,
    ticker_stop: Arc<AtomicBool>,
    /// The components loaded and still in use, by digest: loading the same bytes again (the
    /// same policy swapped into many jobs) shares the compiled code and the bytes. Each digest
    /// has its own slot, locked while that component compiles, so concurrent loads of the same
    /// new bytes compile once and loads of different bytes do not wait on each other.
    loaded: Mutex<HashMap<String, Arc<Slot>>>,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("cache", &self.cache)
            .field("epoch_tick", &self.epoch_tick)
            .finish_non_exhaustive()
    }
}

impl Drop for PolicyEngine {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl PolicyEngine {
    /// Builds the engine (fuel and epoch interruption on, component-model concurrency off),
    /// links WASI with the empty context and the `log` import, and starts the epoch ticker.
    pub fn new(options: EngineOptions) -> Result<Arc<Self>, LoadError> {
        let mut config = wasmtime::Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .concurrency_support(false)
            // Policies recurse little; a small stack turns runaway recursion into a quick trap.
            .max_wasm_stack(1 << 20);
        let engine = wasmtime::Engine::new(&config)
            .map_err(|e| LoadError::Host(format!("cannot create the wasm engine: {e:#}")))?;
        let wasi_linker = || {
            let mut linker = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
                .map_err(|e| LoadError::Host(format!("cannot link WASI: {e:#}")))?;
            Ok::<_, LoadError>(linker)
        };
        let world_error =
            |e: wasmtime::Error| LoadError::Host(format!("cannot link the policy world: {e:#}"));
        let mut linker = wasi_linker()?;
        Bindings::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(world_error)?;
        let mut linker_v0_1 = wasi_linker()?;
        bindings::v0_1::ScalingPolicy::add_to_linker::<_, HasSelf<_>>(&mut linker_v0_1, |s| s)
            .map_err(world_error)?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            let tick = options.epoch_tick;
            std::thread::Builder::new()
                .name("policy-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| LoadError::Host(format!("cannot start the epoch ticker: {e}")))?;
        }
        let cache = options
            .cache_dir
            .as_deref()
            .map(|root| PrecompiledCache::new(root, &engine));
        Ok(Arc::new(PolicyEngine {
            engine,
            linker,
            linker_v0_1,
            cache,
            epoch_tick: options.epoch_tick,
            ticker_stop,
            loaded: Mutex::default(),
        }))
    }

    /// The precompiled cache, if enabled.
    pub fn cache(&self) -> Option<&PrecompiledCache> {
        self.cache.as_ref()
    }

    /// Epoch ticks that cover `deadline` (at least two, so a call never starts already expired).
    pub(crate) fn deadline_ticks(&self, deadline: Duration) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        (deadline.as_nanos().div_ceil(tick) as u64).max(1) + 1
    }

    /// Reads and loads a policy file; with `expected_sha256`, refuses a file whose digest differs.
    pub fn load_file(
        self: &Arc<Self>,
        path: &Path,
        limits: &PolicyLimits,
        expected_sha256: Option<&str>,
    ) -> Result<LoadedPolicy, LoadError> {
        let wasm = Digested::read(path)?;
        wasm.check(expected_sha256)?;
        self.load_digested(wasm, limits)
    }

    /// Loads a policy from bytes: checks the header, compiles (or loads the precompiled cache
    /// entry), checks exports and imports, pre-instantiates and calls `describe`.
    ///
    /// A component already loaded in this engine and still held somewhere is not compiled
    /// again: the new [`LoadedPolicy`] shares its compiled code and bytes
    /// ([`LoadReport::shared`]); `describe` still runs, under `limits`.
    pub fn load_bytes(
        self: &Arc<Self>,
        bytes: &[u8],
        limits: &PolicyLimits,
    ) -> Result<LoadedPolicy, LoadError> {
        self.load_digested(Digested::new(bytes), limits)
    }

    /// [`PolicyEngine::load_bytes`] for bytes already hashed (to check a pinned digest), so a
    /// load hashes them once.
    pub(crate) fn load_digested(
        self: &Arc<Self>,
        wasm: Digested<'_>,
        limits: &PolicyLimits,
    ) -> Result<LoadedPolicy, LoadError> {
        let mut clock = crate::clock::Stopwatch::start();
        let Digested { bytes, digest } = wasm;
        let bytes = &*bytes;
        let slot = self.slot(&digest);
        let (compiled, report) = {
            // Held while compiling: a second load of these bytes waits here, then shares.
            let mut held = slot.lock().unwrap_or_else(PoisonError::into_inner);
            match held.upgrade() {
                Some(compiled) => (
                    compiled,
                    LoadReport {
                        shared: true,
                        ..LoadReport::default()
                    },
                ),
                None => {
                    let (compiled, report) = self.compile_checked(bytes, digest, &mut clock)?;
                    let compiled = Arc::new(compiled);
                    *held = Arc::downgrade(&compiled);
                    (compiled, report)
                }
            }
        };
        drop(slot);
        let mut policy = LoadedPolicy::new(self.clone(), compiled);
        let info = policy
            .describe_blocking(limits)
            .map_err(|e| LoadError::Validation(Box::new(e)))?;
        policy.set_info(info);
        policy.set_report(LoadReport {
            describe: clock.lap(),
            ..report
        });
        Ok(policy)
    }

    /// How many distinct components this engine has loaded that something still holds (or that
    /// a load is compiling right now).
    pub fn held_components(&self) -> usize {
        let loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.values().filter(|slot| in_use(slot)).count()
    }

    /// The slot of `digest`, made if missing; slots no load is using and whose component
    /// nobody holds any more are forgotten on the way.
    fn slot(&self, digest: &str) -> Arc<Slot> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        loaded.retain(|_, slot| Arc::strong_count(slot) > 1 || in_use(slot));
        loaded.entry(digest.to_string()).or_default().clone()
    }

    /// Compiles `bytes` (or loads the precompiled entry), checks exports and imports and
    /// pre-instantiates; the report has the compile and instantiate times.
    fn compile_checked(
        &self,
        bytes: &[u8],
        digest: String,
        clock: &mut crate::clock::Stopwatch,
    ) -> Result<(Compiled, LoadReport), LoadError> {
        let (component, cache_hit) = self.component(bytes, &digest)?;
        let compile = clock.lap();
        let ty = component.component_type();
        let export_names: Vec<&str> = ty.exports(&self.engine).map(|(n, _)| n).collect();
        let version = imports::check_exports(export_names.iter().copied())?;
        let import_names: Vec<String> = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        imports::check_imports(import_names.iter().map(String::as_str))?;
        let pre_error =
            |e: wasmtime::Error| LoadError::Host(format!("cannot pre-instantiate: {e:#}"));
        let world_error = |e: wasmtime::Error| LoadError::WrongWorld(format!("{e:#}"));
        let pre = if version == imports::WIT_VERSION {
            let pre = self.linker.instantiate_pre(&component).map_err(pre_error)?;
            GuestPre::Current(ScalingPolicyPre::new(pre).map_err(world_error)?)
        } else {
            let pre = self
                .linker_v0_1
                .instantiate_pre(&component)
                .map_err(pre_error)?;
            GuestPre::V0_1(bindings::v0_1::ScalingPolicyPre::new(pre).map_err(world_error)?)
        };
        let compiled = Compiled {
            pre,
            wit_version: version,
            digest,
            source: Arc::from(bytes),
            imports: import_names,
        };
        let report = LoadReport {
            compile,
            cache_hit,
            instantiate: clock.lap(),
            ..LoadReport::default()
        };
        Ok((compiled, report))
    }

    fn component(&self, bytes: &[u8], digest: &str) -> Result<(Component, bool), LoadError> {
        if bytes.len() < 8 || bytes[..4] != COMPONENT_HEADER[..4] {
            return Err(LoadError::NotAComponent(
                "the file does not start with the wasm magic bytes".into(),
            ));
        }
        if bytes[..8] == CORE_MODULE_HEADER {
            return Err(LoadError::NotAComponent(
                "this is a core wasm module; build for wasm32-wasip2 (or run `wasm-tools component new`) to get a component".into(),
            ));
        }
        if bytes[..8] != COMPONENT_HEADER {
            return Err(LoadError::NotAComponent(format!(
                "unsupported wasm header {:02x?}",
                &bytes[4..8]
            )));
        }
        if let Some(cache) = &self.cache {
            let entry = cache.entry(digest);
            if entry.exists() {
                // SAFETY: the entry was written by `PrecompiledCache::store` from our own
                // compilation, keyed by the engine's compatibility hash; wasmtime still checks
                // the header and refuses a mismatched engine.
                match unsafe { Component::deserialize_file(&self.engine, &entry) } {
                    Ok(c) => return Ok((c, true)),
                    Err(e) => {
                        tracing::warn!(entry = %entry.display(), error = %e, "Ignoring an unusable precompiled entry.")
                    }
                }
            }
            let native = self
                .engine
                .precompile_component(bytes)
                .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
            if let Err(e) = cache.store(digest, &native) {
                tracing::warn!(dir = %cache.dir().display(), error = %e, "Cannot write the precompiled cache.");
            }
            // SAFETY: `native` was produced just now by this engine.
            let c = unsafe { Component::deserialize(&self.engine, &native) }.map_err(|e| {
                LoadError::Host(format!("cannot load freshly compiled code: {e:#}"))
            })?;
            return Ok((c, false));
        }
        let c = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
        Ok((c, false))
    }

    /// The exports and imports of a component, for `policy inspect`, without checking them.
    pub fn interface_of(&self, bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), LoadError> {
        let (component, _) = self.component(bytes, &sha256_hex(bytes))?;
        let ty = component.component_type();
        let exports = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let imports = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        Ok((exports, imports))
    }

    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.engine
    }
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The largest component file a policy is read from, bytes (the JavaScript and Python
/// runtimes' components are 12-18 MiB).
pub(crate) const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Policy bytes with their sha256, computed once on construction, so a load that checks the
/// digest first (a pinned digest, or "is this the active component?") does not hash the bytes
/// again. The digest cannot disagree with the bytes: it is only ever computed here.
///
/// Read once and shared (`Arc<Digested<'static>>`), one file swapped into many jobs
/// (`POST /policy`) is read and hashed once for all of them.
#[derive(Debug)]
pub struct Digested<'a> {
    bytes: Cow<'a, [u8]>,
    digest: String,
}

impl<'a> Digested<'a> {
    /// Hashes `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Digested {
            digest: sha256_hex(bytes),
            bytes: Cow::Borrowed(bytes),
        }
    }

    /// The same bytes and digest, borrowed: nothing is copied or hashed again.
    pub fn borrowed(&self) -> Digested<'_> {
        Digested {
            bytes: Cow::Borrowed(&self.bytes),
            digest: self.digest.clone(),
        }
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The lower-case hex sha256 of the bytes.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Refuses bytes whose digest is not `expected` (case-insensitive hex); `None` accepts any.
    pub fn check(&self, expected: Option<&str>) -> Result<(), LoadError> {
        match expected {
            Some(expected) if !expected.eq_ignore_ascii_case(&self.digest) => {
                Err(LoadError::DigestMismatch {
                    expected: expected.to_string(),
                    actual: self.digest.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl Digested<'static> {
    /// Hashes `bytes`, keeping them.
    pub fn owned(bytes: Vec<u8>) -> Self {
        Digested {
            digest: sha256_hex(&bytes),
            bytes: Cow::Owned(bytes),
        }
    }

    /// Reads and hashes the file at `path`.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        use std::io::Read;
        let io = |detail: String| LoadError::Io {
            path: path.display().to_string(),
            detail,
        };
        // Only a regular file, and only so much of it: a device (`/dev/zero`) or a FIFO named
        // as a policy must not fill the host's memory or block it.
        let file = std::fs::File::open(path).map_err(|e| io(e.to_string()))?;
        let meta = file.metadata().map_err(|e| io(e.to_string()))?;
        if !meta.is_file() {
            return Err(io("not a regular file".into()));
        }
        let mut bytes = Vec::new();
        file.take(MAX_COMPONENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io(e.to_string()))?;
        if bytes.len() as u64 > MAX_COMPONENT_BYTES {
            return Err(io(format!(
                "larger than {} MiB, more than any policy component",
                MAX_COMPONENT_BYTES >> 20
            )));
        }
        Ok(Digested::owned(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_regular_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let err = Digested::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = Digested::read(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let file = dir.path().join("p.wasm");
        std::fs::write(&file, b"abc").unwrap();
        let read = Digested::read(&file).unwrap();
        assert_eq!(
            (read.len(), read.digest()),
            (3, Digested::new(b"abc").digest())
        );
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_bytes_and_a_pin_is_checked_against_it() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let wasm = Digested::new(b"abc");
        assert_eq!(wasm.digest(), abc);
        assert!(wasm.check(None).is_ok());
        assert!(wasm.check(Some(&abc.to_uppercase())).is_ok());
        match wasm.check(Some("00")) {
            Err(LoadError::DigestMismatch { expected, actual }) => {
                assert_eq!((expected.as_str(), actual.as_str()), ("00", abc));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_borrowed_copy_has_the_same_bytes_and_digest() {
        let owned = Digested::owned(b"abc".to_vec());
        let borrowed = owned.borrowed();
        assert_eq!(borrowed.digest(), owned.digest());
        assert!(matches!(borrowed.bytes, Cow::Borrowed(b) if std::ptr::eq(b, &*owned.bytes)));
    }

    #[test]
    fn a_file_is_read_once_and_hashed_as_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wasm");
        std::fs::write(&path, b"abc").unwrap();
        let wasm = Digested::read(&path).unwrap();
        assert_eq!(wasm.digest(), Digested::new(b"abc").digest());
        assert_eq!(&*wasm.bytes, b"abc");
        assert!(matches!(
            Digested::read(&dir.path().join("missing.wasm")),
            Err(LoadError::Io { .. })
        ));
    }
}
