//! The host's `bindgen!`s: Rust bindings for the WIT versions it serves.
//!
//! - the crate root: `wit/`, the current version;
//! - [`v0_1`]: `wit/versions/0.1.0/`, frozen. `convert.rs` adapts it to the host model.
//!
//! Sync bindings: policy calls are short pure computations run on `spawn_blocking`.
//! Imports are trappable so the host's `log` can stop a guest that floods it.

wasmtime::component::bindgen!({
    world: "scaling-policy",
    path: "../wit",
    imports: { default: trappable },
});

/// Bindings for `daedalus:autoscaler@0.1.0`, the first released version.
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        world: "scaling-policy",
        path: "../wit/versions/0.1.0",
        imports: { default: trappable },
    });
}
