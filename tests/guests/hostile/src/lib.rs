//! A misbehaving policy for the sandbox tests. The `mode` parameter picks the misbehaviour:
//!
//! - `echo` (default): holds, and reports `count` = state counter + 1 (a well-behaved policy);
//! - `spin` with `iterations`: burns CPU for that many loop iterations, then behaves like `echo`;
//! - `loop`: never returns;
//! - `alloc` with `bytes`: allocates and touches that many bytes;
//! - `panic`: panics;
//! - `target` with `parallelism`: proposes that job parallelism, whatever the bounds;
//! - `operator`: proposes a target for an operator that does not exist;
//! - `big-state` with `bytes`: returns a state blob of that size;
//! - `log-flood`: writes many log lines;
//! - `strict-state`: rejects any state blob it did not write itself;
//! - `fail-after` with `calls`: behaves like `echo` while its state counter is below `calls`,
//!   then panics on every call (passes a swap's probe, fails on live input);
//! - `needs-history`: answers `insufficient-history` on every call.

use daedalus_policy_sdk::params::Params;
use daedalus_policy_sdk::{
    Action, Decision, DecisionInput, LogLevel, ParamSpec, Policy, PolicyError, PolicyInfo,
    ScaleTarget,
};

/// The hostile test policy.
pub struct Hostile;

const MAGIC: &[u8; 4] = b"cnt1";

fn counter(state: Option<&[u8]>) -> Result<u64, PolicyError> {
    match state {
        None => Ok(0),
        Some(s) if s.len() == 12 && &s[..4] == MAGIC => Ok(u64::from_le_bytes(
            s[4..].try_into().expect("length checked"),
        )),
        Some(_) => Err(PolicyError::InvalidState("not a counter blob".into())),
    }
}

fn echo(state: Option<&[u8]>) -> Result<Decision, PolicyError> {
    let n = counter(state)? + 1;
    let mut blob = MAGIC.to_vec();
    blob.extend_from_slice(&n.to_le_bytes());
    Ok(Decision::hold("echo")
        .with_metric("count", n as f64, "calls")
        .with_state(blob))
}

impl Policy for Hostile {
    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Misbehaves on request, for sandbox tests.".into(),
            params: [
                ("mode", "echo", "the misbehaviour (see the crate docs)"),
                ("iterations", "1000", "`spin`: loop iterations"),
                (
                    "bytes",
                    "1073741824",
                    "`alloc`: bytes (`big-state`: 1048576)",
                ),
                ("parallelism", "0", "`target`: the job parallelism proposed"),
                (
                    "calls",
                    "1",
                    "`fail-after`: calls that behave before panicking",
                ),
            ]
            .into_iter()
            .map(|(name, default, what)| ParamSpec {
                name: name.into(),
                default_value: default.into(),
                description: what.into(),
            })
            .collect(),
        }
    }

    fn decide(input: DecisionInput) -> Result<Decision, PolicyError> {
        let p = Params::new(
            &input.params,
            &["mode", "iterations", "bytes", "parallelism", "calls"],
        )?;
        let state = input.state.as_deref();
        match p.raw("mode").unwrap_or("echo") {
            "echo" | "strict-state" => echo(state),
            "spin" => {
                let n = p.u64_in("iterations", 1000, 0, u64::MAX)?;
                let mut x = 0u64;
                for i in 0..n {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                echo(state).map(|d| d.with_metric("spin", x as f64, "hash"))
            }
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let n = p.u64_in("bytes", 1 << 30, 0, u64::MAX)? as usize;
                let v = vec![1u8; n];
                Ok(Decision::hold("allocated").with_metric(
                    "sum",
                    v.iter().map(|b| *b as f64).sum(),
                    "bytes",
                ))
            }
            "panic" => panic!("hostile guest panics on purpose"),
            "fail-after" => {
                let calls = p.u64_in("calls", 1, 0, u64::MAX)?;
                if counter(state)? >= calls {
                    panic!("hostile guest fails after {calls} calls");
                }
                echo(state)
            }
            "target" => {
                let t = p.u64_in("parallelism", 0, 0, u64::from(u32::MAX))? as u32;
                Ok(Decision::job(t, "whatever the bounds say"))
            }
            "operator" => {
                let mut d = Decision::hold("unknown operator");
                d.action = Action::Operators(vec![ScaleTarget {
                    operator_id: "no-such-operator".into(),
                    parallelism: 2,
                }]);
                Ok(d)
            }
            "big-state" => {
                let n = p.u64_in("bytes", 1 << 20, 0, u64::MAX)? as usize;
                Ok(Decision::hold("big state").with_state(vec![7u8; n]))
            }
            "log-flood" => {
                for i in 0..10_000 {
                    daedalus_policy_sdk::log(LogLevel::Info, &format!("flood {i}"));
                }
                echo(state)
            }
            "needs-history" => Err(PolicyError::InsufficientHistory(
                "hostile guest always wants more".into(),
            )),
            other => Err(PolicyError::InvalidParams(format!("unknown mode {other}"))),
        }
    }
}

#[cfg(target_arch = "wasm32")]
daedalus_policy_sdk::export_policy!(Hostile);
