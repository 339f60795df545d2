//! The per-call store data: an empty WASI context, the memory limiter and the log sink.

use super::limits::PolicyLimits;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{Deterministic, WasiCtx, WasiCtxView, WasiView};

/// Bytes of guest stderr kept, to report panic messages.
const STDERR_CAPTURE_BYTES: usize = 16 * 1024;
/// The bytes the guest's random sources cycle through.
const DETERMINISTIC_BYTES: [u8; 8] = [0x9e, 0x37, 0x79, 0xb9, 0x7f, 0x4a, 0x7c, 0x15];
/// Longest log line kept; longer ones are cut.
const MAX_LOG_LINE_BYTES: usize = 2 * 1024;

/// Store data of one policy call.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    pub(crate) limiter: MemoryLimiter,
    policy: String,
    log_lines: u32,
    max_log_lines: u32,
    pub(crate) log_flooded: bool,
}

impl HostState {
    /// Store data that grants nothing: no files, network, environment, clocks or inherited stdio.
    /// Guest stderr goes to a small in-memory buffer so a panic message can be reported.
    pub(crate) fn sandboxed(policy: &str, limits: &PolicyLimits) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        // Randomness is a fixed byte cycle, so `std`'s hash seeds (and any guest use of
        // `wasi:random`) are deterministic and a decision stays a pure function of its input.
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .secure_random(Deterministic::new(DETERMINISTIC_BYTES.to_vec()))
            .insecure_random(Deterministic::new(DETERMINISTIC_BYTES.to_vec()))
            .insecure_random_seed(0)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            limiter: MemoryLimiter::new(limits.memory_bytes()),
            policy: policy.to_string(),
            log_lines: 0,
            max_log_lines: limits.max_log_lines,
            log_flooded: false,
        }
    }

    /// What the guest wrote to stderr (a panic message, usually), lossily decoded.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_string()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Most linear memories one call may create. A Rust or JS policy has one or two; each one
/// reserves address space, so thousands of empty ones are refused too.
const MAX_MEMORIES: usize = 64;

/// Caps the linear memory of one call, all of its memories together (a component can hold
/// several core instances, and a core module several memories), and remembers whether the cap
/// was hit, so the trap that follows (usually the guest's allocation-failure abort) is reported
/// as a memory-limit trap.
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    /// Bytes granted so far, over every memory of the call.
    granted_bytes: usize,
    pub(crate) hit: bool,
}

impl MemoryLimiter {
    /// A limiter granting at most `max_bytes` in all.
    pub(crate) fn new(max_bytes: usize) -> Self {
        MemoryLimiter {
            max_bytes,
            granted_bytes: 0,
            hit: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A new memory arrives with `current` 0; a growth adds its difference.
        let total = self
            .granted_bytes
            .saturating_add(desired.saturating_sub(current));
        if total > self.max_bytes {
            self.hit = true;
            return Ok(false);
        }
        self.granted_bytes = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; 100k entries is far beyond any policy.
        Ok(desired <= 100_000)
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_MEMORIES
    }
}

impl HostState {
    /// The `log` import of every WIT version: counts, cuts and forwards one line.
    fn log_line(&mut self, level: tracing::Level, message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        if self.log_lines > self.max_log_lines {
            self.log_flooded = true;
            return Err(wasmtime::Error::msg(format!(
                "policy wrote more than {} log lines in one call",
                self.max_log_lines
            )));
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let policy = self.policy.as_str();
        match level {
            tracing::Level::TRACE => tracing::trace!(policy, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(policy, "{message}"),
            tracing::Level::INFO => tracing::info!(policy, "{message}"),
            tracing::Level::WARN => tracing::warn!(policy, "{message}"),
            tracing::Level::ERROR => tracing::error!(policy, "{message}"),
        }
        Ok(())
    }
}

/// Implements one WIT version's imports on [`HostState`].
macro_rules! policy_imports {
    ($($bindings:ident)::+) => {
        impl $($bindings)::+::daedalus::autoscaler::types::Host for HostState {}

        impl $($bindings)::+::ScalingPolicyImports for HostState {
            fn log(
                &mut self,
                level: $($bindings)::+::daedalus::autoscaler::types::LogLevel,
                message: String,
            ) -> wasmtime::Result<()> {
                use $($bindings)::+::daedalus::autoscaler::types::LogLevel;
                let level = match level {
                    LogLevel::Trace => tracing::Level::TRACE,
                    LogLevel::Debug => tracing::Level::DEBUG,
                    LogLevel::Info => tracing::Level::INFO,
                    LogLevel::Warn => tracing::Level::WARN,
                    LogLevel::Error => tracing::Level::ERROR,
                };
                self.log_line(level, message)
            }
        }
    };
}

policy_imports!(super::bindings);
policy_imports!(super::bindings::v0_1);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Engine, Store};

    const MIB: usize = 1 << 20;

    #[test]
    fn the_cap_counts_every_memory_of_the_call() {
        let mut limiter = MemoryLimiter::new(4 * MIB);
        assert!(limiter.memory_growing(0, 3 * MIB, None).unwrap());
        assert!(limiter.memory_growing(3 * MIB, 4 * MIB, None).unwrap());
        // A second memory within the cap on its own, but not beside the first.
        assert!(!limiter.memory_growing(0, MIB, None).unwrap());
        assert!(limiter.hit);
    }

    /// Instantiates `wat` (a component in text form) in a sandboxed store capped at `cap` bytes.
    fn instantiate(wat: &str, cap: usize) -> (wasmtime::Result<()>, bool) {
        let engine = Engine::default();
        let component = Component::new(&engine, wat::parse_str(wat).unwrap()).unwrap();
        let limits = PolicyLimits {
            memory_mib: (cap / MIB) as u64,
            ..PolicyLimits::default()
        };
        let mut store = Store::new(&engine, HostState::sandboxed("t", &limits));
        store.limiter(|s| &mut s.limiter);
        let result = Linker::new(&engine)
            .instantiate(&mut store, &component)
            .map(|_| ());
        (result, store.data().limiter.hit)
    }

    /// 40 pages of 64 KiB: 2.5 MiB per memory.
    const TWO_MEMORIES: &str = r#"(component
        (core module $m (memory 40) (memory 40))
        (core instance (instantiate $m)))"#;
    const TWO_INSTANCES: &str = r#"(component
        (core module $m (memory 40))
        (core instance (instantiate $m))
        (core instance (instantiate $m)))"#;

    #[test]
    fn several_memories_or_instances_share_one_cap() {
        for wat in [TWO_MEMORIES, TWO_INSTANCES] {
            let (result, hit) = instantiate(wat, 4 * MIB);
            assert!(
                result.is_err() && hit,
                "5 MiB in all passed a 4 MiB cap: {wat}"
            );
            let (result, hit) = instantiate(wat, 8 * MIB);
            assert!(result.is_ok() && !hit, "{result:?}: {wat}");
        }
    }

    #[test]
    fn more_memories_than_the_limit_are_refused() {
        let memories = "(memory 0) ".repeat(MAX_MEMORIES + 1);
        let wat =
            format!("(component (core module $m {memories}) (core instance (instantiate $m)))");
        let (result, _) = instantiate(&wat, 128 * MIB);
        assert!(result.is_err());
        let memories = "(memory 0) ".repeat(MAX_MEMORIES);
        let wat =
            format!("(component (core module $m {memories}) (core instance (instantiate $m)))");
        assert!(instantiate(&wat, 128 * MIB).0.is_ok());
    }
}
