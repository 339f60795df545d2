//! The Daedalus autoscaler host: watches stream-processing jobs, asks a sandboxed
//! WebAssembly policy what parallelism each should run at, and applies the answer.
//!
//! Module map (arrows point inward: `main -> {policy, ...} -> mapek -> model`):
//! - [`model`]: plain data, mirroring `wit/types.wit` (what a policy sees and answers);
//! - [`mapek`]: the loop's roles; [`mapek::ScalingPolicy`] is Plan;
//! - [`policy`]: the wasm runtime, the only module that names wasmtime;
//! - [`engine`]: collectors and actuators for real engines (Flink REST, Kafka);
//! - [`live`]: the live loop and control plane (`daedalus run`): many jobs, guardrails, shadows,
//!   hot swap, the HTTP API and metrics; [`loadgen`] replays a trace into Kafka;
//! - [`store`]: durable knowledge in SQLite (history, decisions, rescales, policy state);
//! - [`sim`]: the offline simulator, scorecard and oracle;
//! - [`conformance`]: the invariants every policy component must keep (`policy test`);
//! - [`clock`]: the only reader of the real clock.

pub mod clock;
pub mod conformance;
pub mod engine;
pub mod live;
pub mod loadgen;
pub mod mapek;
pub mod model;
pub mod policy;
pub mod sim;
pub mod store;
