//! Engine errors.

use thiserror::Error;

/// Why an engine call failed. The loop holds the job on any of them and tries again next tick.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    /// Nothing answered at the endpoint.
    #[error("{endpoint} unreachable: {detail}")]
    Unreachable {
        /// The endpoint called.
        endpoint: String,
        /// What the transport said.
        detail: String,
    },
    /// The call took longer than the configured timeout.
    #[error("{endpoint} timed out after {timeout_ms} ms")]
    Timeout {
        /// The endpoint called.
        endpoint: String,
        /// The timeout, ms.
        timeout_ms: u64,
    },
    /// The engine answered with an error status.
    #[error("{endpoint} answered HTTP {status}: {body}")]
    Status {
        /// The endpoint called.
        endpoint: String,
        /// HTTP status code.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The engine answered something that is not what its API documents.
    #[error("{endpoint} answered malformed data: {detail}")]
    Malformed {
        /// The endpoint called.
        endpoint: String,
        /// What was wrong.
        detail: String,
    },
    /// The configured job does not exist (any more).
    #[error("job not found: {0}")]
    JobNotFound(String),
    /// Anything else the connector could not do.
    #[error("{0}")]
    Other(String),
}

impl EngineError {
    /// A failed HTTP call to `endpoint`: a timeout (after `timeout`) or unreachable, with the
    /// whole cause chain (e.g. which certificate was refused).
    pub fn transport(endpoint: &str, timeout: std::time::Duration, e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            EngineError::Timeout {
                endpoint: endpoint.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            }
        } else {
            EngineError::Unreachable {
                endpoint: endpoint.to_string(),
                detail: crate::engine::tls::error_chain(e),
            }
        }
    }
}
