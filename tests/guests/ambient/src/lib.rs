//! A policy that reaches for ambient authority: it reads a file and opens a socket.
//! The host must refuse to load it (its imports include `wasi:filesystem` and `wasi:sockets`).

use daedalus_policy_sdk::{Decision, DecisionInput, Policy, PolicyError, PolicyInfo};

/// The ambient-authority test policy.
pub struct Ambient;

impl Policy for Ambient {
    fn describe() -> PolicyInfo {
        PolicyInfo {
            name: "ambient".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Reads /etc/passwd and dials out, for sandbox tests.".into(),
            params: Vec::new(),
        }
    }

    fn decide(_input: DecisionInput) -> Result<Decision, PolicyError> {
        let secret = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let dialed = std::net::TcpStream::connect("127.0.0.1:9").is_ok();
        Ok(Decision::hold(format!(
            "read {} bytes, dialed {dialed}",
            secret.len()
        )))
    }
}

#[cfg(target_arch = "wasm32")]
daedalus_policy_sdk::export_policy!(Ambient);
