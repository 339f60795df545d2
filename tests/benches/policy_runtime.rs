//! Policy runtime costs, each against a baseline measured in the same run:
//!
//! - `decide/<policy>/{native,component}`: one decision natively vs through the sandbox
//!   (fresh store, limits, instantiation, conversion, validation);
//! - `instantiate/<policy>`: a fresh store and instance only (describe call);
//! - `load/<policy>/{cold_compile,precompiled}`: Cranelift compile vs the on-disk cache;
//! - `load/<policy>/{shared,sha256}`: a load while a copy is held (no compile: the digest, the
//!   memo and `describe`) vs hashing the bytes alone, the part of a load that grows with size.
//!
//! Run with `cargo bench -p daedalus-tests` after `cargo xtask build-policies`.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented `pub fn benches`"
)]

use criterion::{Criterion, criterion_group, criterion_main};
use daedalus_host::model::DecisionInput;
use daedalus_host::policy::{EngineOptions, PolicyEngine, PolicyLimits, sha256_hex};
use daedalus_policy_sdk::Policy;
use daedalus_tests::{input, policy_path, read, to_sdk, with_params};
use std::hint::black_box;

fn sample() -> DecisionInput {
    let samples: Vec<(f64, f64)> = (0..30)
        .map(|i| (5000.0 + 100.0 * f64::from(i), 0.6 + 0.01 * f64::from(i)))
        .collect();
    with_params(input(10_000, 6, &samples, (1, 32)), &[])
}

fn decide(c: &mut Criterion) {
    let engine = PolicyEngine::new(EngineOptions::default()).unwrap();
    let limits = PolicyLimits::default();
    let inp = sample();
    let sdk_input: daedalus_policy_sdk::DecisionInput = to_sdk(&inp);
    for name in ["static", "hpa", "ds2", "daedalus"] {
        let p = engine.load_file(&policy_path(name), &limits, None).unwrap();
        let mut g = c.benchmark_group(format!("decide/{name}"));
        g.bench_function("native", |b| {
            b.iter(|| {
                let i = sdk_input.clone();
                black_box(match name {
                    "static" => policy_static::Static::decide(i),
                    "hpa" => policy_hpa::Hpa::decide(i),
                    "ds2" => policy_ds2::Ds2::decide(i),
                    _ => policy_daedalus::Daedalus::decide(i),
                })
            })
        });
        g.bench_function("component", |b| {
            b.iter(|| black_box(p.decide_blocking(&inp, &limits)))
        });
        g.finish();
        c.bench_function(&format!("instantiate/{name}"), |b| {
            b.iter(|| black_box(p.describe_blocking(&limits)))
        });
    }
}

fn load(c: &mut Criterion) {
    let limits = PolicyLimits::default();
    let cold = PolicyEngine::new(EngineOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cached = PolicyEngine::new(EngineOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        ..EngineOptions::default()
    })
    .unwrap();
    for name in ["static", "daedalus"] {
        let bytes = read(&policy_path(name));
        cached.load_bytes(&bytes, &limits).unwrap();
        let mut g = c.benchmark_group(format!("load/{name}"));
        g.sample_size(10);
        g.bench_function("cold_compile", |b| {
            b.iter(|| black_box(cold.load_bytes(&bytes, &limits).unwrap()))
        });
        g.bench_function("precompiled", |b| {
            b.iter(|| black_box(cached.load_bytes(&bytes, &limits).unwrap()))
        });
        let held = cached.load_bytes(&bytes, &limits).unwrap();
        g.bench_function("shared", |b| {
            b.iter(|| black_box(cached.load_bytes(&bytes, &limits).unwrap()))
        });
        drop(held);
        g.bench_function("sha256", |b| b.iter(|| black_box(sha256_hex(&bytes))));
        g.finish();
    }
}

criterion_group!(benches, decide, load);
criterion_main!(benches);
