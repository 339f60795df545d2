//! TLS for every HTTP client of the engines (Flink REST, Prometheus, the Kubernetes API).
//!
//! rustls with the ring provider. Each client is built from a [`TlsSettings`] and handed its own
//! rustls config, so nothing depends on a process-wide provider: the system's trust store by
//! default, or exactly the CA a cluster names (a Kubernetes cluster's own CA, from the
//! kubeconfig or the pod's service account), with an optional client certificate.
//! Verification is never switched off.

use crate::engine::EngineError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;

/// Which certificates a client trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Roots {
    /// The system's trust store (`/etc/ssl/certs` and the like, `SSL_CERT_FILE`/`SSL_CERT_DIR`).
    #[default]
    System,
    /// Only these PEM certificates (e.g. a cluster's CA bundle).
    Pem(Vec<u8>),
}

/// A client certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// Certificate chain, leaf first.
    pub cert_pem: Vec<u8>,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Identity")
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// How a client speaks TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// What it trusts.
    pub roots: Roots,
    /// The certificate it presents, if the server asks for one.
    pub identity: Option<Identity>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn err(what: impl std::fmt::Display) -> EngineError {
    EngineError::Other(what.to_string())
}

/// The certificates in a PEM bundle; an error if it holds none or one is malformed.
pub fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, EngineError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("{what}: not a PEM certificate bundle: {e}")))?;
    if certs.is_empty() {
        return Err(err(format!("{what}: no PEM certificate in it")));
    }
    Ok(certs)
}

fn root_store(roots: &Roots) -> Result<rustls::RootCertStore, EngineError> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::Pem(pem) => {
            for c in certificates(pem, "certificate authority")? {
                store
                    .add(c)
                    .map_err(|e| err(format!("certificate authority: unusable: {e}")))?;
            }
        }
        Roots::System => return Ok(system_roots().clone()),
    }
    Ok(store)
}

/// The system's trust store, read once per process.
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: std::sync::OnceLock<rustls::RootCertStore> = std::sync::OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = store.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                errors = ?found.errors,
                "no system CA certificates found: https endpoints will not verify"
            );
        }
        store
    })
}

/// The rustls client config for `settings` (HTTP/1.1 only, as the clients speak).
pub fn client_config(settings: &TlsSettings) -> Result<rustls::ClientConfig, EngineError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("TLS setup: {e}")))?
        .with_root_certificates(root_store(&settings.roots)?);
    let mut config = match &settings.identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let chain = certificates(&id.cert_pem, "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(&id.key_pem)
                .map_err(|e| err(format!("client key: not a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| err(format!("client certificate and key do not fit: {e}")))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// An HTTP client with `settings` and a per-request `timeout` (also the connect timeout).
pub fn http_client(
    settings: &TlsSettings,
    timeout: Duration,
) -> Result<reqwest::Client, EngineError> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(client_config(settings)?)
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .map_err(|e| err(format!("cannot build the HTTP client: {e}")))
}

/// The whole error chain of a transport error: reqwest's own message stops at "error sending
/// request", and the reason (a certificate the CA did not sign, a refused client certificate)
/// is further down.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s = s.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        source = std::error::Error::source(source.expect("loop condition"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_roots_build_a_client() {
        http_client(&TlsSettings::default(), Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_refused_by_name() {
        let e = client_config(&TlsSettings {
            roots: Roots::Pem(b"hello".to_vec()),
            identity: None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("certificate authority"), "{e}");
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused_by_name() {
        let e = client_config(&TlsSettings {
            roots: Roots::System,
            identity: Some(Identity {
                cert_pem: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
                    .to_vec(),
                key_pem: b"nope".to_vec(),
            }),
        })
        .unwrap_err();
        assert!(e.to_string().contains("client"), "{e}");
    }

    #[test]
    fn identity_debug_never_shows_the_key() {
        let id = Identity {
            cert_pem: b"c".to_vec(),
            key_pem: b"SECRET".to_vec(),
        };
        assert!(!format!("{id:?}").contains("SECRET"));
    }
}
