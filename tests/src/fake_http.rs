//! An HTTP test double for what cannot run or be provoked here: a Kubernetes API server (none
//! can be installed on these machines), and Flink REST faults a real cluster cannot be made to
//! show on demand (500, malformed JSON, an endpoint that never answers). Everything else is
//! tested against the real services. It records every request so tests can check what was
//! sent. [`Reply::Proxy`] forwards to a real service and injects a fault only into the
//! requests named (a resubmit that fails once after a real savepoint). [`serve_tls`] speaks HTTPS with a certificate from [`Pki`] and can demand a client
//! certificate, as a Kubernetes API server does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;

/// How the double answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status and body (`Content-Type: application/json`) for every request.
    Respond(u16, String),
    /// Read the request, then never answer (until the client gives up).
    Hang,
    /// The first route whose method and path match answers; anything else gets 404.
    Routes(Vec<Route>),
    /// The n-th request gets the n-th answer; the last one repeats.
    Sequence(Vec<(u16, String)>),
    /// Forward every request to a real service, except those a fault claims.
    Proxy(Proxy),
}

/// Forwarding to a real service at `upstream` (`http://host:port`), with faults.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// The real service.
    pub upstream: String,
    /// Checked in order; the first that matches and has answers left answers instead.
    pub faults: Vec<Fault>,
}

/// A canned answer for the next `times` requests with this method whose path (without the
/// query) ends with `path_suffix`; sent instead of forwarding, or, with
/// [`Fault::after_forwarding`], in place of the real answer (the request lands, its answer is
/// lost).
#[derive(Debug, Clone)]
pub struct Fault {
    method: String,
    path_suffix: String,
    status: u16,
    body: String,
    left: Arc<AtomicUsize>,
    forward_first: bool,
}

impl Fault {
    /// A fault answering `status` and `body` to the next `times` matching requests.
    pub fn new(method: &str, path_suffix: &str, status: u16, body: &str, times: usize) -> Self {
        Fault {
            method: method.into(),
            path_suffix: path_suffix.into(),
            status,
            body: body.into(),
            left: Arc::new(AtomicUsize::new(times)),
            forward_first: false,
        }
    }

    /// Forwards the request first and drops the real answer.
    pub fn after_forwarding(mut self) -> Self {
        self.forward_first = true;
        self
    }

    /// Whether this fault claims `req` (using up one of its answers).
    fn claims(&self, req: &Recorded) -> bool {
        let path = req.path.split('?').next().unwrap_or("");
        req.method == self.method
            && path.ends_with(&self.path_suffix)
            && self
                .left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
    }
}

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Route {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path (without the query).
    pub path: String,
    /// Status to answer.
    pub status: u16,
    /// Body to answer.
    pub body: String,
    /// Answers left (`None`: every matching request).
    left: Option<Arc<AtomicUsize>>,
}

impl Route {
    /// A route.
    pub fn new(method: &str, path: &str, status: u16, body: &str) -> Self {
        Route {
            method: method.into(),
            path: path.into(),
            status,
            body: body.into(),
            left: None,
        }
    }

    /// Answers only the next `n` matching requests; later ones go to the next matching route
    /// (an engine whose answer changes, e.g. a job that reaches its new parallelism).
    pub fn times(mut self, n: usize) -> Self {
        self.left = Some(Arc::new(AtomicUsize::new(n)));
        self
    }

    /// Whether this route answers `method` `path` (using up one of its answers).
    fn claims(&self, method: &str, path: &str) -> bool {
        self.method == method
            && self.path == path
            && self.left.as_ref().is_none_or(|left| {
                left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            })
    }
}

/// A request the double received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path with the query.
    pub path: String,
    /// Lower-cased header lines, `name: value`.
    pub headers: Vec<String>,
    /// Body.
    pub body: String,
}

/// A running double; stops when dropped.
#[derive(Debug)]
pub struct FakeHttp {
    /// `http://127.0.0.1:PORT` (or `https://`).
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    handshake_failures: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeHttp {
    /// Requests received so far.
    pub fn request_count(&self) -> usize {
        self.requests.lock().expect("not poisoned").len()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("not poisoned").clone()
    }

    /// Why TLS handshakes failed, as the server saw it.
    pub fn handshake_failures(&self) -> Vec<String> {
        self.handshake_failures
            .lock()
            .expect("not poisoned")
            .clone()
    }
}

/// A request as read: what is recorded, plus what forwarding needs unaltered.
struct Request {
    recorded: Recorded,
    /// The `Content-Type` value as sent (a multipart boundary is case-sensitive).
    content_type: Option<String>,
    /// The `Authorization` value as sent (a token is case-sensitive).
    authorization: Option<String>,
    body: Vec<u8>,
}

async fn read_request<S: AsyncRead + Unpin>(sock: &mut S) -> Option<Request> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let header = |wanted: &str| {
        head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case(wanted)
                .then(|| value.trim().to_string())
        })
    };
    let (content_type, authorization) = (header("content-type"), header("authorization"));
    let headers: Vec<String> = lines
        .filter(|l| !l.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let len: usize = headers
        .iter()
        .find_map(|h| h.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while got.len() < head_end + len {
        match sock.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let raw = got.split_off(head_end);
    Some(Request {
        recorded: Recorded {
            method,
            path,
            headers,
            body: String::from_utf8_lossy(&raw).into_owned(),
        },
        content_type,
        authorization,
        body: raw,
    })
}

/// Sends `req` to `upstream`; its status and body, or 502 when it cannot be reached.
async fn forward(upstream: &str, req: Request) -> (u16, Vec<u8>) {
    let settings = daedalus_host::engine::tls::TlsSettings::default();
    let client = match daedalus_host::engine::tls::http_client(
        &settings,
        std::time::Duration::from_secs(60),
    ) {
        Ok(c) => c,
        Err(e) => return (502, format!("{{\"errors\":[\"proxy: {e}\"]}}").into_bytes()),
    };
    let method =
        reqwest::Method::from_bytes(req.recorded.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut call = client
        .request(method, format!("{upstream}{}", req.recorded.path))
        .body(req.body);
    if let Some(ct) = req.content_type {
        call = call.header(reqwest::header::CONTENT_TYPE, ct);
    }
    if let Some(auth) = req.authorization {
        call = call.header(reqwest::header::AUTHORIZATION, auth);
    }
    match call.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (
                status,
                resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
            )
        }
        Err(e) => (502, format!("{{\"errors\":[\"proxy: {e}\"]}}").into_bytes()),
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut sock: S,
    reply: Reply,
    log: Arc<Mutex<Vec<Recorded>>>,
) {
    let Some(request) = read_request(&mut sock).await else {
        return;
    };
    let req = request.recorded.clone();
    let n = {
        let mut log = log.lock().expect("not poisoned");
        log.push(req.clone());
        log.len()
    };
    let (status, body) = match reply {
        Reply::Sequence(answers) => answers
            .get(n - 1)
            .or(answers.last())
            .cloned()
            .map_or((500, Vec::new()), |(s, b)| (s, b.into_bytes())),
        Reply::Hang => {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            return;
        }
        Reply::Respond(status, body) => (status, body.into_bytes()),
        Reply::Routes(routes) => {
            let path = req.path.split('?').next().unwrap_or("");
            routes
                .iter()
                .find(|r| r.claims(&req.method, path))
                .map_or((404, br#"{"message":"not found"}"#.to_vec()), |r| {
                    (r.status, r.body.clone().into_bytes())
                })
        }
        Reply::Proxy(proxy) => match proxy.faults.iter().find(|f| f.claims(&req)) {
            Some(f) => {
                if f.forward_first {
                    forward(&proxy.upstream, request).await;
                }
                (f.status, f.body.clone().into_bytes())
            }
            None => forward(&proxy.upstream, request).await,
        },
    };
    write_answer(&mut sock, status, &body).await;
}

async fn write_answer<S: AsyncWrite + Unpin>(sock: &mut S, status: u16, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body).await;
    let _ = sock.shutdown().await;
}

async fn start(reply: Reply, tls: Option<tokio_rustls::TlsAcceptor>) -> FakeHttp {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}", listener.local_addr().expect("bound"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let handshakes = Arc::new(Mutex::new(Vec::new()));
    let failed = handshakes.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            let log = log.clone();
            let tls = tls.clone();
            let failed = failed.clone();
            tokio::spawn(async move {
                match tls {
                    None => answer(sock, reply, log).await,
                    Some(acceptor) => match acceptor.accept(sock).await {
                        Ok(stream) => answer(stream, reply, log).await,
                        Err(e) => failed.lock().expect("not poisoned").push(e.to_string()),
                    },
                }
            });
        }
    });
    FakeHttp {
        url,
        requests,
        handshake_failures: handshakes,
        task,
    }
}

/// Starts a double on a free loopback port.
pub async fn serve(reply: Reply) -> FakeHttp {
    start(reply, None).await
}

/// Starts an HTTPS double on a free loopback port with `pki`'s server certificate (for
/// `127.0.0.1`); with `require_client_cert`, only clients presenting a certificate signed by
/// `pki`'s CA complete the handshake.
pub async fn serve_tls(reply: Reply, pki: &Pki, require_client_cert: bool) -> FakeHttp {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).expect("CA PEM"))
            .expect("CA");
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(pki.server_cert_pem.as_bytes()).expect("PEM")],
            PrivateKeyDer::from_pem_slice(pki.server_key_pem.as_bytes()).expect("key PEM"),
        )
        .expect("server certificate");
    start(
        reply,
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
    )
    .await
}

/// A throwaway PKI made at test time: a CA, a server certificate for `127.0.0.1` and
/// `localhost`, a client certificate (CN `daedalus`), all signed by the CA; and a second,
/// unrelated CA that signed nothing here.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server's certificate, PEM.
    pub server_cert_pem: String,
    /// The server's key, PEM.
    pub server_key_pem: String,
    /// The client's certificate, PEM.
    pub client_cert_pem: String,
    /// The client's key, PEM.
    pub client_key_pem: String,
    /// Another CA's certificate, PEM.
    pub other_ca_pem: String,
}

impl Pki {
    /// A new PKI.
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca = |cn: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().expect("key");
            let cert = p.self_signed(&key).expect("self-signed");
            (cert.pem(), Issuer::new(p, key))
        };
        let (ca_pem, issuer) = ca("test-cluster-ca");
        let (other_ca_pem, _) = ca("some-other-ca");
        let leaf = |names: Vec<String>, cn: &str| {
            let mut p = CertificateParams::new(names).expect("params");
            p.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().expect("key");
            let cert = p.signed_by(&key, &issuer).expect("signed");
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert_pem, server_key_pem) = leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            "kube-apiserver",
        );
        let (client_cert_pem, client_key_pem) = leaf(Vec::new(), "daedalus");
        Pki {
            ca_pem,
            server_cert_pem,
            server_key_pem,
            client_cert_pem,
            client_key_pem,
            other_ca_pem,
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("bound").port()
}
