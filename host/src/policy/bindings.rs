//! The one `bindgen!` of the host: Rust bindings for `wit/` (world `scaling-policy`).
//!
//! Sync bindings: policy calls are short pure computations run on `spawn_blocking`.
//! Imports are trappable so the host's `log` can stop a guest that floods it.

wasmtime::component::bindgen!({
    world: "scaling-policy",
    path: "../wit",
    imports: { default: trappable },
});
