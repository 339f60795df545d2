//! Typed errors of the policy runtime. The loop branches on them; every one leaves the job at
//! its current parallelism.

use crate::model::GuestError;

/// Why a component could not be loaded. The previously active policy (if any) stays active.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {detail}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        detail: String,
    },
    /// The bytes are not a WebAssembly component (a core module, a truncated or non-wasm file).
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    /// The component does not export the `scaling-policy` world this host serves.
    #[error("wrong world: {0}")]
    WrongWorld(String),
    /// The component imports something the sandbox does not grant.
    #[error("forbidden imports: {}", .0.join(", "))]
    ForbiddenImport(Vec<String>),
    /// The sha256 of the file is not the one pinned in the config.
    #[error("digest mismatch: expected sha256 {expected}, file has {actual}")]
    DigestMismatch {
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        actual: String,
    },
    /// The component loaded but failed validation (`describe` or the probe decision). The
    /// message carries the policy error's (so it is not also its `source`, which would print
    /// it twice in an error chain).
    #[error("validation failed: {0}")]
    Validation(Box<PolicyError>),
    /// The host itself failed (linker, precompiled cache); not the policy's fault.
    #[error("host error: {0}")]
    Host(String),
}

/// How a guest call was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrapKind {
    /// The call used up its fuel (deterministic CPU budget).
    OutOfFuel,
    /// The call ran past its wall-clock deadline (epoch interruption).
    Deadline,
    /// The guest tried to grow its memory past the cap.
    MemoryLimit,
    /// The guest panicked or hit `unreachable`.
    Panic,
    /// The guest flooded the host log.
    LogFlood,
    /// Any other trap (out-of-bounds access, stack overflow, ...).
    Other,
}

impl std::fmt::Display for TrapKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrapKind::OutOfFuel => "out of fuel",
            TrapKind::Deadline => "deadline exceeded",
            TrapKind::MemoryLimit => "memory limit exceeded",
            TrapKind::Panic => "guest panicked",
            TrapKind::LogFlood => "log flood",
            TrapKind::Other => "trap",
        })
    }
}

/// Why one policy call failed. The loop holds the job and retries next cycle.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The guest was stopped.
    #[error("{kind}: {detail}")]
    Trap {
        /// How it was stopped.
        kind: TrapKind,
        /// What wasmtime (and the guest's stderr, for panics) said.
        detail: String,
    },
    /// The guest reported an expected failure (the message carries the guest's, so it is not
    /// also its `source`).
    #[error("policy error: {0}")]
    Guest(GuestError),
    /// The guest answered something the host cannot apply.
    #[error("invalid output: {0}")]
    InvalidOutput(String),
    /// The host failed to run the call (instantiation, a panicked worker thread).
    #[error("host error: {0}")]
    Host(String),
}

impl From<GuestError> for PolicyError {
    fn from(e: GuestError) -> Self {
        PolicyError::Guest(e)
    }
}

impl PolicyError {
    /// The trap kind, if the guest was stopped.
    pub fn trap_kind(&self) -> Option<TrapKind> {
        match self {
            PolicyError::Trap { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}
