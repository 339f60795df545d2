//! What a collector would see of the simulated job each second: per-worker CPU and throughput
//! with skew and noise, per-operator rates and busy/backpressure ratios, optional gaps.

use super::dynamics::{JobState, Model, StepOut};
use super::rng::Rng;
use crate::model::{Observation, OperatorSample, WorkerSample};

/// Samples the observation at the end of second `t`.
pub fn observe(model: &Model, t: usize, s: &JobState, out: &StepOut, rng: &mut Rng) -> Observation {
    let prof = &model.profile;
    let noise = prof.metric_noise;
    let q = prof.missing_sample_probability;
    let maybe = |v: f64, rng: &mut Rng| -> Option<f64> {
        if q > 0.0 && rng.uniform() < q {
            None
        } else {
            Some(v)
        }
    };
    let p = s.parallelism();
    let down = s.rescaling() || out.capacity == 0;
    let x = out.processed as f64;
    // Per-worker capacity without skew: the job's capacity spread evenly.
    let per_worker_cap = model.job_capacity(p) as f64 * {
        // job_capacity includes the skew penalty; undo it so one worker's ceiling is fair.
        let hottest = (0..p as usize)
            .map(|i| model.worker_share(i, p))
            .fold(0.0, f64::max);
        f64::from(p) * hottest
    } / f64::from(p.max(1));
    let workers = (0..p as usize)
        .map(|i| {
            let share = model.worker_share(i, p);
            let (cpu, thr) = if down {
                (prof.idle_cpu, 0.0)
            } else {
                let load = x * share;
                let util = if per_worker_cap > 0.0 {
                    load / per_worker_cap
                } else {
                    0.0
                };
                (prof.idle_cpu + (1.0 - prof.idle_cpu) * util, load)
            };
            let cpu = (cpu * (1.0 + noise * rng.normal())).clamp(0.0, 1.0);
            let thr = (thr * (1.0 + noise * rng.normal())).max(0.0);
            WorkerSample {
                worker_id: format!("worker-{i}"),
                cpu_utilization: maybe(cpu, rng),
                throughput_records_per_sec: maybe(thr, rng),
            }
        })
        .collect();
    let saturated = !down && s.lag > 0;
    let bottleneck = model.bottleneck(&s.ops);
    let operators = prof
        .operators
        .iter()
        .enumerate()
        .map(|(i, op)| {
            let rin = x * model.input_ratio(i);
            let cap = model.operator_capacity(i, s.ops[i]);
            let busy = if down || cap <= 0.0 {
                0.0
            } else {
                (rin / cap).min(1.0)
            };
            let busy = (busy * (1.0 + noise * rng.normal())).clamp(0.0, 1.0);
            let backpressure = if saturated && i < bottleneck {
                1.0 - busy
            } else {
                0.0
            };
            OperatorSample {
                operator_id: op.id.clone(),
                upstream: if i == 0 {
                    Vec::new()
                } else {
                    vec![prof.operators[i - 1].id.clone()]
                },
                parallelism: s.ops[i],
                max_parallelism: prof.operator_max_parallelism(i),
                busy_ratio: if down { None } else { maybe(busy, rng) },
                backpressure_ratio: if down { None } else { maybe(backpressure, rng) },
                records_in_per_sec: if down { None } else { maybe(rin, rng) },
                records_out_per_sec: if down {
                    None
                } else {
                    maybe(rin * op.selectivity, rng)
                },
            }
        })
        .collect();
    Observation {
        at_ms: (t as u64 + 1) * 1000,
        parallelism: p,
        input_records_per_sec: maybe(out.arrived as f64, rng),
        throughput_records_per_sec: Some(x),
        lag_records: maybe(s.lag as f64, rng),
        workers,
        operators,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::profile::{Engine, JobProfile};
    use crate::sim::trace::Trace;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// Whatever the load, parallelism and state, a sample is what a collector could report:
        /// ratios in [0, 1], rates finite and non-negative, one worker per slot, and nothing
        /// but `None` while the job is restarting.
        #[test]
        fn samples_are_well_formed(rate in 0u64..2_000_000, p in 1u32..18, lag in 0u64..10_000_000, down in 0u32..3, seed in 0u64..50, missing in 0.0f64..0.5) {
            let mut profile = JobProfile::default_for(if seed % 2 == 0 { Engine::Flink } else { Engine::KafkaStreams });
            profile.missing_sample_probability = missing;
            let model = Model::new(&profile, &Trace { name: "t".into(), rates: vec![rate; 3] }, seed);
            let mut s = model.initial_state();
            s.ops = vec![p; profile.operators.len()];
            s.lag = lag;
            s.downtime_left = down;
            let out = model.step(0, &mut s);
            let mut rng = crate::sim::rng::Rng::new(seed);
            let o = observe(&model, 0, &s, &out, &mut rng);
            prop_assert_eq!(o.workers.len() as u32, p);
            for w in &o.workers {
                if let Some(c) = w.cpu_utilization { prop_assert!((0.0..=1.0).contains(&c)); }
                if let Some(t) = w.throughput_records_per_sec { prop_assert!(t.is_finite() && t >= 0.0); }
            }
            for op in &o.operators {
                for r in [op.busy_ratio, op.backpressure_ratio].into_iter().flatten() {
                    prop_assert!((0.0..=1.0).contains(&r));
                }
                for r in [op.records_in_per_sec, op.records_out_per_sec].into_iter().flatten() {
                    prop_assert!(r.is_finite() && r >= 0.0);
                }
                if s.rescaling() {
                    prop_assert!(op.busy_ratio.is_none() && op.records_in_per_sec.is_none());
                }
            }
        }
    }
}
