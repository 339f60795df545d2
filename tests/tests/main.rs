//! The integration test binary: one `mod` per topic.

mod conformance;
mod control_plane;
mod engine_faults;
mod flink_live;
mod hot_swap;
mod kstreams_live;
mod kubernetes;
mod polyglot;
mod precompiled_cache;
mod sandbox;
mod sim_replay;
mod wasm_policy;
mod wit_versions;
