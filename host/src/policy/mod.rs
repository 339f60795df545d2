//! The policy runtime: the only module that names wasmtime.
//!
//! - [`PolicyEngine`] (`engine.rs`): one wasmtime engine, the linker with an empty WASI
//!   context, the epoch ticker and the precompiled cache (`cache.rs`);
//! - [`LoadedPolicy`] (`loaded.rs`): a checked component, called in a fresh store per call
//!   under [`PolicyLimits`] (`limits.rs`) with the store data of `sandbox.rs`;
//! - `imports.rs`: the load-time allow-list and world check;
//! - [`PolicySlot`] (`registry.rs`): hot swap after a probe decision;
//! - [`WasmPolicy`] (`wasm_policy.rs`): a slot as a [`crate::mapek::ScalingPolicy`];
//! - [`inspect()`] (`inspect.rs`): what `daedalus policy inspect` prints;
//! - `convert.rs`: model <-> bindings and wasmtime errors -> [`PolicyError`], nowhere else.
#![allow(clippy::disallowed_types, reason = "this is the wasm boundary")]

mod bindings;
mod cache;
mod convert;
mod engine;
mod error;
pub mod imports;
mod inspect;
mod limits;
mod loaded;
mod registry;
mod sandbox;
mod wasm_policy;

pub use cache::PrecompiledCache;
pub use engine::Digested;
pub use engine::{EngineOptions, PolicyEngine, sha256_hex};
pub use error::{LoadError, PolicyError, TrapKind};
pub use inspect::{Inspection, inspect};
pub use limits::PolicyLimits;
pub use loaded::{CallOutcome, LoadReport, LoadedPolicy};
pub use registry::{PolicySlot, SwapReport};
pub use wasm_policy::WasmPolicy;
