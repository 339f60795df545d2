//! Hot swaps through the API: `POST /jobs/{job}/policy` for one job, `POST /policy` for several
//! (or every) job. Either takes JSON naming a component file on the host, or the component
//! itself (`content-type: application/wasm`, at most [`MAX_UPLOAD`] bytes, with `sha256`, a
//! `name`, its params as `param.KEY=VALUE` and, for `POST /policy`, `jobs` in the query
//! string), for a host whose files the operator cannot reach (a pod). The body is read only
//! once the token and the query string have been checked.

use super::{ApiError, ApiResult, ApiState, query, wait};
use crate::live::shared::{Component, Request};
use crate::policy::Digested;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The largest component a swap takes as an upload (the Python policies are about 18 MB).
const MAX_UPLOAD: usize = 64 << 20;

/// The longest `name` an upload takes.
const MAX_NAME: usize = 200;

/// The largest JSON body a swap takes.
const MAX_JSON: usize = 1 << 20;

/// `POST /jobs/{job}/policy` as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapBody {
    path: PathBuf,
    sha256: Option<String>,
    params: Option<BTreeMap<String, String>>,
}

/// `POST /policy` as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapJobsBody {
    path: PathBuf,
    sha256: Option<String>,
    params: Option<BTreeMap<String, String>>,
    /// Default: every job.
    jobs: Option<Vec<String>>,
}

/// The query string of an upload (and nothing else).
#[derive(Debug, Default, PartialEq)]
struct UploadQuery {
    /// Whether it had anything at all (a JSON request must not).
    given: bool,
    sha256: Option<String>,
    /// Comma-separated job names, `POST /policy` only (default: every job).
    jobs: Option<String>,
    /// What the upload is called in answers and policy events (its file name, say).
    name: Option<String>,
    /// The new component's params: `param.KEY=VALUE` pairs, or none with `params=none`;
    /// without either, the job keeps its params.
    params: Option<BTreeMap<String, String>>,
}

impl UploadQuery {
    /// Reads the query string's pairs; an unknown, repeated or empty key is refused.
    fn parse(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let bad = |msg: String| ApiError(StatusCode::BAD_REQUEST, msg);
        let mut q = Self::default();
        let mut none = false;
        q.given = !pairs.is_empty();
        for (key, value) in pairs {
            let once = |slot: &mut Option<String>| match slot.replace(value.clone()) {
                Some(_) => Err(bad(format!("`{key}` is given twice"))),
                None => Ok(()),
            };
            match key.as_str() {
                "sha256" => once(&mut q.sha256)?,
                "jobs" => once(&mut q.jobs)?,
                "name" if value.len() > MAX_NAME || value.chars().any(char::is_control) => {
                    return Err(bad(format!(
                        "`name`: at most {MAX_NAME} bytes, no control characters"
                    )));
                }
                "name" => once(&mut q.name)?,
                "params" if value == "none" && !none => none = true,
                "params" => {
                    return Err(bad(format!(
                        "`params={value}`: give the params as `param.KEY=VALUE`, \
                         or `params=none` (once) for none"
                    )));
                }
                _ => {
                    let Some(name) = key.strip_prefix("param.").filter(|n| !n.is_empty()) else {
                        return Err(bad(format!(
                            "unknown query key `{key}`: an upload takes `sha256`, `name`, \
                             `jobs` (POST /policy), `param.KEY=VALUE` and `params=none`"
                        )));
                    };
                    let params = q.params.get_or_insert_default();
                    if params.insert(name.to_string(), value).is_some() {
                        return Err(bad(format!("`{key}` is given twice")));
                    }
                }
            }
        }
        match (none, &q.params) {
            (true, Some(_)) => Err(bad(
                "`params=none` and `param.KEY=VALUE` contradict each other".into(),
            )),
            (true, None) => Ok(Self {
                params: Some(BTreeMap::new()),
                ..q
            }),
            (false, _) => Ok(q),
        }
    }
}

/// What a swap request carries, by its content type.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// JSON naming a file on the host.
    Json,
    /// The component itself.
    Upload,
}

/// The request's kind by its content type (another type is a 415).
fn kind(h: &HeaderMap) -> Result<Kind, ApiError> {
    let mime = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(Kind::Json),
        "application/wasm" => Ok(Kind::Upload),
        _ => Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send JSON naming a component file on the host (content-type: application/json), \
             or the component itself (content-type: application/wasm)"
                .into(),
        )),
    }
}

/// Reads the body within the limit for its kind (beyond it, a 413).
async fn read(kind: Kind, body: Body) -> Result<Bytes, ApiError> {
    let (limit, what) = match kind {
        Kind::Json => (MAX_JSON, "JSON"),
        Kind::Upload => (MAX_UPLOAD, "an upload"),
    };
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body could not be read within {} KiB ({what}): {e}",
                limit >> 10
            ),
        )
    })
}

/// Parses a JSON body (unknown fields refused).
fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    axum::Json::<T>::from_bytes(bytes)
        .map(|axum::Json(t)| t)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

/// A JSON request names everything in its body: a query string would be ignored, so it is
/// refused.
fn no_query(q: &UploadQuery) -> Result<(), ApiError> {
    if q.given {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the query string is for uploads (content-type: application/wasm); \
             with JSON, name everything in the body"
                .into(),
        ));
    }
    Ok(())
}

/// Hashes an upload off the async workers.
async fn digest_upload(bytes: Bytes) -> Result<Digested<'static>, ApiError> {
    tokio::task::spawn_blocking(move || Digested::owned(Vec::from(bytes)))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// What an upload is called in messages and policy events.
fn upload_name(wasm: &Digested<'_>, name: Option<&str>) -> String {
    match name {
        Some(name) => format!("{name} (an upload of {} bytes)", wasm.len()),
        None => format!("an upload of {} bytes", wasm.len()),
    }
}

fn params(m: Option<BTreeMap<String, String>>) -> Option<Vec<(String, String)>> {
    m.map(|m| m.into_iter().collect())
}

/// `POST /jobs/{job}/policy`: one job's hot swap, answered at its next tick.
pub(super) async fn swap(
    State(s): State<ApiState>,
    h: HeaderMap,
    Path(name): Path<String>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Body,
) -> ApiResult {
    s.check(&h, true)?;
    let job = s.job(&name)?;
    let q = UploadQuery::parse(query(q)?)?;
    if q.jobs.is_some() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "`jobs` is for POST /policy; this request names its job in the path".into(),
        ));
    }
    let kind = kind(&h)?;
    if kind == Kind::Json {
        no_query(&q)?;
    }
    let bytes = read(kind, body).await?;
    let (component, sha256, params) = match kind {
        Kind::Json => {
            let body: SwapBody = parse(&bytes)?;
            if !body.path.is_file() {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    format!("{} is not a file on the host", body.path.display()),
                ));
            }
            (Component::File(body.path), body.sha256, params(body.params))
        }
        Kind::Upload => {
            let wasm = digest_upload(bytes).await?;
            // A wrong pin is answered now, not at the job's next tick.
            wasm.check(q.sha256.as_deref()).map_err(|e| {
                ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("swap refused, the active policy is unchanged: {e}"),
                )
            })?;
            let name = upload_name(&wasm, q.name.as_deref());
            let wasm = Arc::new(wasm);
            // The pin is checked: the job need not check it again.
            (Component::Bytes { name, wasm }, None, params(q.params))
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    job.request(Request::Swap {
        component,
        sha256,
        params,
        source: "api".into(),
        reply: Some(tx),
    });
    wait(&s, rx).await
}

/// `POST /policy`: one swap into many jobs. The component is read and hashed once (a pin
/// checked once, before any job is asked), then each job validates and swaps it at its next
/// tick, as `POST /jobs/{job}/policy` would. Answers once every job has answered or the
/// request timeout has passed: 200 when every job swapped or already ran it, 202 when some
/// have not reached their tick yet, 422 when any refused it (the others keep what they did).
pub(super) async fn swap_jobs(
    State(s): State<ApiState>,
    h: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Body,
) -> ApiResult {
    s.check(&h, true)?;
    let q = UploadQuery::parse(query(q)?)?;
    // An upload names its jobs in the query string: checked before its body is read.
    let kind = kind(&h)?;
    let upload_jobs = match kind {
        Kind::Json => {
            no_query(&q)?;
            None
        }
        Kind::Upload => Some(s.select(q.jobs.as_deref().map(|j| {
            j.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        }))?),
    };
    let bytes = read(kind, body).await?;
    let (names, wasm, name, sha256, params) = match upload_jobs {
        None => {
            let body: SwapJobsBody = parse(&bytes)?;
            let names = s.select(body.jobs)?;
            let path = body.path.clone();
            let wasm = tokio::task::spawn_blocking(move || Digested::read(&path))
                .await
                .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
            let name = body.path.display().to_string();
            (names, wasm, name, body.sha256, params(body.params))
        }
        Some(names) => {
            let wasm = digest_upload(bytes).await?;
            let name = upload_name(&wasm, q.name.as_deref());
            (names, wasm, name, q.sha256, params(q.params))
        }
    };
    wasm.check(sha256.as_deref()).map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("swap refused, no job was asked: {e}"),
        )
    })?;
    tracing::info!(
        jobs = names.len(),
        component = %name,
        digest = %wasm.digest(),
        "Swapping a policy into jobs through the API."
    );
    let short = super::super::job::short(wasm.digest()).to_string();
    let wasm = Arc::new(wasm);
    let replies = names.iter().map(|job| {
        let (tx, rx) = tokio::sync::oneshot::channel();
        s.jobs[job].request(Request::Swap {
            component: Component::Bytes {
                name: name.clone(),
                wasm: wasm.clone(),
            },
            sha256: None,
            params: params.clone(),
            source: "api".into(),
            reply: Some(tx),
        });
        tokio::time::timeout(s.request_timeout, rx)
    });
    let replies = futures_util::future::join_all(replies).await;
    let (mut refused, mut queued) = (0, 0);
    let mut outcomes = serde_json::Map::new();
    for (job, reply) in names.iter().zip(replies) {
        let outcome = match reply {
            Ok(Ok(Ok(msg))) => json!({ "ok": msg }),
            Ok(Ok(Err(msg))) => {
                refused += 1;
                json!({ "error": msg })
            }
            Ok(Err(_)) => {
                refused += 1;
                json!({ "error": "the job stopped before taking the request" })
            }
            Err(_) => {
                queued += 1;
                json!({ "queued": "the job has not reached its next tick yet (see /jobs/{job}/policy-events)" })
            }
        };
        outcomes.insert(job.clone(), outcome);
    }
    let n = names.len();
    let (status, key, summary) = if refused > 0 {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "error",
            format!("{refused} of {n} jobs refused the swap and keep their policy"),
        )
    } else if queued > 0 {
        (
            StatusCode::ACCEPTED,
            "ok",
            format!("{queued} of {n} jobs have not reached their next tick yet"),
        )
    } else {
        let run = if n == 1 { "job runs" } else { "jobs run" };
        (StatusCode::OK, "ok", format!("{n} {run} {short}"))
    };
    Ok((
        status,
        axum::Json(json!({ key: summary, "jobs": outcomes })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<UploadQuery, String> {
        let uri = format!("/policy?{q}").parse().unwrap();
        let Query(pairs) = Query::try_from_uri(&uri).unwrap();
        UploadQuery::parse(pairs).map_err(|e| e.1)
    }

    #[test]
    fn an_upload_query_names_pin_jobs_and_params() {
        assert_eq!(parse("").unwrap(), UploadQuery::default());
        let q = parse("sha256=ab&jobs=a,b&param.k=v%3D1&param.x=&name=p.wasm").unwrap();
        assert!(q.given);
        assert_eq!(q.name.as_deref(), Some("p.wasm"));
        assert_eq!(q.sha256.as_deref(), Some("ab"));
        assert_eq!(q.jobs.as_deref(), Some("a,b"));
        let want = BTreeMap::from([("k".into(), "v=1".into()), ("x".into(), String::new())]);
        assert_eq!(q.params, Some(want));
        // `params=none`: the component's defaults, not the job's params.
        assert_eq!(parse("params=none").unwrap().params, Some(BTreeMap::new()));
        for (q, why) in [
            ("sha=ab", "unknown query key `sha`"),
            ("param.=1", "unknown query key `param.`"),
            ("sha256=a&sha256=b", "`sha256` is given twice"),
            ("param.k=1&param.k=2", "`param.k` is given twice"),
            ("params=k%3D1", "`params=k=1`"),
            ("params=none&params=none", "`params=none`"),
            ("params=none&param.k=1", "contradict"),
            ("name=a%0Ab", "control"),
            ("name=a&name=b", "`name` is given twice"),
        ] {
            let e = parse(q).unwrap_err();
            assert!(e.contains(why), "{q}: {e}");
        }
    }
}
