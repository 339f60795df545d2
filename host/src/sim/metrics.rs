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
