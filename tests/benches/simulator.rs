//! Simulator throughput on a 6-hour trace (21 600 simulated seconds):
//!
//! - `simulate_6h/no_policy`: the job model alone (the policy always holds, natively);
//! - `simulate_6h/hpa_component`: the same with the HPA component deciding every 10 s, so
//!   the share of time inside policy calls is `1 - no_policy / hpa_component`;
//! - `oracle_6h`: the oracle's dynamic programme on the same trace.
//!
//! Run with `cargo bench -p daedalus-tests --bench simulator` after `cargo xtask build-policies`.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented `pub fn benches`"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use daedalus_host::model::Decision;
use daedalus_host::policy::{EngineOptions, PolicyEngine, PolicyLimits};
use daedalus_host::sim::dynamics::Model;
use daedalus_host::sim::oracle::{OracleConfig, solve};
use daedalus_host::sim::profile::{Engine, JobProfile};
use daedalus_host::sim::run::{RunConfig, run};
use daedalus_host::sim::trace::Trace;
use daedalus_tests::{policy_path, workspace_root};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let trace =
        Trace::from_file(&workspace_root().join("traces/advertising_6h_550K_max.csv")).unwrap();
    let model = Model::new(&JobProfile::default_for(Engine::Flink), &trace, 1);
    let cfg = RunConfig::default();
    let engine = PolicyEngine::new(EngineOptions::default()).unwrap();
    let limits = PolicyLimits::default();
    let hpa = engine
        .load_file(&policy_path("hpa"), &limits, None)
        .unwrap();
    let mut g = c.benchmark_group("simulate_6h");
    g.sample_size(10);
    g.bench_function("no_policy", |b| {
        b.iter(|| {
            let mut hold = |_: &daedalus_host::model::DecisionInput| (Ok(Decision::hold("")), 0.0);
            black_box(run(&model, &cfg, &mut hold, &mut |_| {}))
        })
    });
    g.bench_function("hpa_component", |b| {
        b.iter(|| {
            let mut decide =
                |i: &daedalus_host::model::DecisionInput| (hpa.decide_blocking(i, &limits), 0.0);
            black_box(run(&model, &cfg, &mut decide, &mut |_| {}))
        })
    });
    g.finish();
    let mut g = c.benchmark_group("oracle_6h");
    g.sample_size(10);
    g.bench_function("solve", |b| {
        b.iter(|| black_box(solve(&model, &OracleConfig::new(&model, 10))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
