//! An HTTP test double for what cannot run or be provoked here: a Kubernetes API server (none
//! can be installed on these machines), and Flink REST faults a real cluster cannot be made to
//! show on demand (500, malformed JSON, an endpoint that never answers). Everything else is
//! tested against the real services. It records every request so tests can check what was
//! sent.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the double answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status and body (`Content-Type: application/json`) for every request.
    Respond(u16, String),
    /// Read the request, then never answer (until the client gives up).
    Hang,
    /// The first route whose method and path match answers; anything else gets 404.
    Routes(Vec<Route>),
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
}

impl Route {
    /// A route.
    pub fn new(method: &str, path: &str, status: u16, body: &str) -> Self {
        Route {
            method: method.into(),
            path: path.into(),
            status,
            body: body.into(),
        }
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
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
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
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Recorded> {
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
    let body = String::from_utf8_lossy(&got[head_end..]).into_owned();
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}

/// Starts a double on a free loopback port.
pub async fn serve(reply: Reply) -> FakeHttp {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("bound"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut sock).await else {
                    return;
                };
                log.lock().expect("not poisoned").push(req.clone());
                let (status, body) = match reply {
                    Reply::Hang => {
                        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                        return;
                    }
                    Reply::Respond(status, body) => (status, body),
                    Reply::Routes(routes) => {
                        let path = req.path.split('?').next().unwrap_or("");
                        routes
                            .iter()
                            .find(|r| r.method == req.method && r.path == path)
                            .map_or((404, r#"{"message":"not found"}"#.to_string()), |r| {
                                (r.status, r.body.clone())
                            })
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    FakeHttp {
        url,
        requests,
        task,
    }
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("bound").port()
}
