//! The one place that maps between the host model and the wasm bindings of every WIT version
//! the host serves, and turns wasmtime errors into [`PolicyError`]s.
//!
//! The mapping is written once and stamped out per version by `conversions!`; a version's
//! differences are the fields it lacks (listed where the macro is used).

use super::error::{PolicyError, TrapKind};
use super::sandbox::HostState;

/// Conversions between the host model and one version's bindings, as a module.
macro_rules! conversions {
    (
        $(#[$doc:meta])*
        mod $module:ident = $($bindings:ident)::+;
        input($i:ident) { $($field:ident: $value:expr),* $(,)? }
    ) => {
        $(#[$doc])*
        pub(crate) mod $module {
            use $($bindings)::+::daedalus::autoscaler::types as wit;
            use crate::model;

            fn worker(w: &model::WorkerSample) -> wit::WorkerSample {
                wit::WorkerSample {
                    worker_id: w.worker_id.clone(),
                    cpu_utilization: w.cpu_utilization,
                    throughput_records_per_sec: w.throughput_records_per_sec,
                }
            }

            fn operator(o: &model::OperatorSample) -> wit::OperatorSample {
                wit::OperatorSample {
                    operator_id: o.operator_id.clone(),
                    upstream: o.upstream.clone(),
                    parallelism: o.parallelism,
                    max_parallelism: o.max_parallelism,
                    busy_ratio: o.busy_ratio,
                    backpressure_ratio: o.backpressure_ratio,
                    records_in_per_sec: o.records_in_per_sec,
                    records_out_per_sec: o.records_out_per_sec,
                }
            }

            fn observation(o: &model::Observation) -> wit::Observation {
                wit::Observation {
                    at_ms: o.at_ms,
                    parallelism: o.parallelism,
                    input_records_per_sec: o.input_records_per_sec,
                    throughput_records_per_sec: o.throughput_records_per_sec,
                    lag_records: o.lag_records,
                    workers: o.workers.iter().map(worker).collect(),
                    operators: o.operators.iter().map(operator).collect(),
                }
            }

            /// The host input as the guest sees it.
            pub(crate) fn input($i: &model::DecisionInput) -> wit::DecisionInput {
                wit::DecisionInput {
                    job_id: $i.job_id.clone(),
                    now_ms: $i.now_ms,
                    current: observation(&$i.current),
                    history: $i.history.iter().map(observation).collect(),
                    bounds: wit::Bounds {
                        min_parallelism: $i.bounds.min_parallelism,
                        max_parallelism: $i.bounds.max_parallelism,
                    },
                    rescale: wit::RescaleStatus {
                        in_progress: $i.rescale.in_progress,
                        started_ms: $i.rescale.started_ms,
                        last_finished_ms: $i.rescale.last_finished_ms,
                        count: $i.rescale.count,
                    },
                    previous: $i.previous.as_ref().map(|p| wit::PreviousOutcome {
                        proposed_parallelism: p.proposed_parallelism,
                        applied_parallelism: p.applied_parallelism,
                        clamped_by: p.clamped_by.clone(),
                    }),
                    params: $i.params.clone(),
                    state: $i.state.clone(),
                    $($field: $value,)*
                }
            }

            /// The guest's decision in host terms.
            pub(crate) fn decision(d: wit::Decision) -> model::Decision {
                model::Decision {
                    action: match d.action {
                        wit::Action::Hold => model::Action::Hold,
                        wit::Action::Job(p) => model::Action::Job(p),
                        wit::Action::Operators(t) => model::Action::Operators(
                            t.into_iter()
                                .map(|t| model::ScaleTarget {
                                    operator_id: t.operator_id,
                                    parallelism: t.parallelism,
                                })
                                .collect(),
                        ),
                    },
                    explanation: model::Explanation {
                        reason: d.explanation.reason,
                        metrics: d
                            .explanation
                            .metrics
                            .into_iter()
                            .map(|m| model::Metric {
                                name: m.name,
                                value: m.value,
                                unit: m.unit,
                            })
                            .collect(),
                    },
                    state: d.state,
                }
            }

            /// The guest's expected error in host terms.
            /// Messages are cut to `MAX_ERROR_MESSAGE_BYTES`: the host logs, stores and
            /// serves them.
            pub(crate) fn guest_error(e: wit::PolicyError) -> model::GuestError {
                let cut = crate::policy::convert::truncate_message;
                match e {
                    wit::PolicyError::InsufficientHistory(m) => model::GuestError::InsufficientHistory(cut(m)),
                    wit::PolicyError::InvalidParams(m) => model::GuestError::InvalidParams(cut(m)),
                    wit::PolicyError::InvalidState(m) => model::GuestError::InvalidState(cut(m)),
                    wit::PolicyError::Internal(m) => model::GuestError::Internal(cut(m)),
                }
            }

            /// The guest's self-description in host terms.
            pub(crate) fn info(i: wit::PolicyInfo) -> model::PolicyInfo {
                model::PolicyInfo {
                    name: i.name,
                    version: i.version,
                    description: i.description,
                    params: i
                        .params
                        .into_iter()
                        .map(|p| model::ParamSpec {
                            name: p.name,
                            default_value: p.default_value,
                            description: p.description,
                        })
                        .collect(),
                }
            }

        }
    };
}

conversions! {
    /// The current version, `wit/`.
    mod current = crate::policy::bindings;
    input(i) { latency_objective_ms: i.latency_objective_ms }
}

conversions! {
    /// 0.1.0 (`wit/versions/0.1.0/`): no `latency-objective-ms` in the input.
    mod v0_1 = crate::policy::bindings::v0_1;
    input(i) {}
}

/// The longest guest error message kept, bytes; the rest is cut (the host logs, stores and
/// serves every message, so a policy must not grow them without bound).
pub(crate) const MAX_ERROR_MESSAGE_BYTES: usize = 4096;

/// `m` cut to [`MAX_ERROR_MESSAGE_BYTES`] at a character boundary, saying how much was cut.
pub(crate) fn truncate_message(mut m: String) -> String {
    if m.len() <= MAX_ERROR_MESSAGE_BYTES {
        return m;
    }
    let total = m.len();
    let mut end = MAX_ERROR_MESSAGE_BYTES;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    m.truncate(end);
    m.push_str(&format!("... ({} more bytes cut)", total - end));
    m
}

/// Classifies an error from a guest call, using what the store saw (memory cap hit, log flood,
/// stderr) to name the cause.
pub(crate) fn call_error(err: wasmtime::Error, state: &HostState) -> PolicyError {
    let trap = err.downcast_ref::<wasmtime::Trap>().copied();
    let kind = if state.log_flooded {
        TrapKind::LogFlood
    } else if state.limiter.hit {
        TrapKind::MemoryLimit
    } else {
        match trap {
            Some(wasmtime::Trap::OutOfFuel) => TrapKind::OutOfFuel,
            Some(wasmtime::Trap::Interrupt) => TrapKind::Deadline,
            Some(wasmtime::Trap::UnreachableCodeReached) => TrapKind::Panic,
            _ => TrapKind::Other,
        }
    };
    let stderr = state.stderr_text();
    let detail = if stderr.is_empty() {
        format!("{err}")
    } else {
        format!("{err}; guest stderr: {stderr}")
    };
    PolicyError::Trap { kind, detail }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(truncate_message("short".into()), "short");
        let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES);
        let cut = truncate_message(long.clone());
        assert!(cut.len() < MAX_ERROR_MESSAGE_BYTES + 40, "{}", cut.len());
        assert!(cut.ends_with(&format!(
            "... ({} more bytes cut)",
            long.len() - MAX_ERROR_MESSAGE_BYTES
        )));
    }
}
