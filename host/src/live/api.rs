//! The HTTP API (axum; loopback by default).
//!
//! | method and path | what | auth |
//! | --- | --- | --- |
//! | `GET /health` | `{"status": "ok", "jobs": N}` | read |
//! | `GET /jobs` | every job's status: current and desired parallelism, active and shadow policies with their divergence (`policy_set_by` while the active policy is not the configured one), the last decision | read |
//! | `GET /jobs/{job}` | one job's status with its recent decisions | read |
//! | `GET /jobs/{job}/decisions?limit=100&role=active` | decision history, newest first (needs `[store]` beyond the last 50) | read |
//! | `GET /jobs/{job}/rescales` | rescale events with their measured duration (needs `[store]`) | read |
//! | `GET /jobs/{job}/policy-events` | swaps, rollbacks, promotions (needs `[store]`) | read |
//! | `POST /jobs/{job}/policy` `{"path": "...", "sha256": "...", "params": {...}}` | hot swap (sha256 and params optional; params replace the job's): validated, applied at the next tick, answered then; or the component itself as `application/wasm` (`?sha256=...`, `name`, `param.KEY=VALUE` or `params=none`, all optional; without params the job's are kept) | token |
//! | `POST /policy` `{"path": "...", "sha256": "...", "params": {...}, "jobs": ["a", "b"]}` | the same swap into several jobs (`jobs` optional: every job), or the component itself as `application/wasm` (`?jobs=a,b&sha256=...&param.KEY=VALUE`); read and hashed once, each job validates it on its own input; `{"ok"}` or `{"error"}` with each job's outcome under `"jobs"`, 422 if any job refused it | token |
//! | `POST /jobs/{job}/policy/reset` | back to the configured policy file and params (validated like a swap) | token |
//! | `POST /jobs/{job}/promote` `{"shadow": "NAME"}` | make a shadow the active policy (with `[store]`, a swapped or promoted policy survives a restart until the configured one changes) | token |
//! | `POST /jobs/{job}/pause`, `POST /jobs/{job}/resume` | stop or restart acting (the job still decides and records) | token |
//! | `POST /pause`, `POST /resume` (body empty, or `{"jobs": ["a", "b"]}`) | the same for several jobs, or every job (an incident's "stop scaling now") | token |
//! | `GET /arms?since_hours=24&lag_threshold=10000` | split test: each arm's scorecard from live data (jobs' `arm`; needs `[store]`) | read |
//! | `GET /metrics` | Prometheus metrics (OpenMetrics text) | read |
//!
//! "token" endpoints need `Authorization: Bearer <api.token>` and are disabled when no token
//! is configured; "read" endpoints need it too unless `api.public_read` (the default). Every
//! error is JSON `{"error": "..."}` with a 4xx status; nothing a client sends can stop the host.

mod swap;

use super::metrics::Metrics;
use super::shared::{JobShared, Request};
use crate::store::Store;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What the API serves.
#[derive(Clone)]
pub struct ApiState {
    /// Jobs by name.
    pub jobs: Arc<BTreeMap<String, Arc<JobShared>>>,
    /// Split-test arm of each job that has one.
    pub arms: BTreeMap<String, String>,
    /// The database, if configured.
    pub store: Option<Arc<Store>>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// Bearer token for mutating endpoints (none: they are disabled).
    pub token: Option<String>,
    /// Read endpoints need no token.
    pub public_read: bool,
    /// How long a swap or promote waits for the job's next tick.
    pub request_timeout: Duration,
}

/// An API error: a status and a message, answered as JSON.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The parsed query string, or a JSON 400 naming what is wrong with it (axum's own rejection
/// is plain text).
fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl ApiState {
    fn check(&self, headers: &HeaderMap, mutating: bool) -> Result<(), ApiError> {
        if !mutating && self.public_read {
            return Ok(());
        }
        let Some(token) = &self.token else {
            return Err(ApiError(
                StatusCode::FORBIDDEN,
                "this endpoint is disabled: set api.token (or api.token_file) in the config".into(),
            ));
        };
        match bearer(headers) {
            Some(t) if same(t, token) => Ok(()),
            Some(_) => Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "wrong bearer token".into(),
            )),
            None => Err(ApiError(
                StatusCode::UNAUTHORIZED,
                "missing `Authorization: Bearer <token>`".into(),
            )),
        }
    }

    fn job(&self, name: &str) -> Result<&Arc<JobShared>, ApiError> {
        self.jobs
            .get(name)
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job named {name:?}")))
    }

    /// The jobs a request for several names (`None`: every job), sorted and each once; an
    /// empty list or an unknown name refuses the whole request.
    fn select(&self, names: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
        let Some(names) = names else {
            return Ok(self.jobs.keys().cloned().collect());
        };
        if names.is_empty() {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "\"jobs\" is empty: name at least one job, or leave it out for every job".into(),
            ));
        }
        for name in &names {
            self.job(name)?;
        }
        let unique: std::collections::BTreeSet<String> = names.into_iter().collect();
        Ok(unique.into_iter().collect())
    }

    fn store(&self) -> Result<&Arc<Store>, ApiError> {
        self.store.as_ref().ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                "history needs a database: add [store] to the config".into(),
            )
        })
    }
}

/// The router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/jobs", get(jobs))
        .route("/jobs/{job}", get(job))
        .route("/jobs/{job}/decisions", get(decisions))
        .route("/jobs/{job}/rescales", get(rescales))
        .route("/jobs/{job}/policy-events", get(policy_events))
        .route("/policy", post(swap::swap_jobs))
        .route("/pause", post(pause_jobs))
        .route("/resume", post(resume_jobs))
        .route("/jobs/{job}/policy", post(swap::swap))
        .route("/jobs/{job}/policy/reset", post(reset))
        .route("/jobs/{job}/promote", post(promote))
        .route("/jobs/{job}/pause", post(pause))
        .route("/jobs/{job}/resume", post(resume))
        .route("/arms", get(arms))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method (see the API table in the README)".into(),
            )
        })
        .with_state(state)
}

/// Serves `router` on `listener` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await
}

async fn health(State(s): State<ApiState>, h: HeaderMap) -> ApiResult {
    s.check(&h, false)?;
    Ok(axum::Json(json!({ "status": "ok", "jobs": s.jobs.len() })).into_response())
}

async fn metrics(State(s): State<ApiState>, h: HeaderMap) -> ApiResult {
    s.check(&h, false)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response())
}

async fn jobs(State(s): State<ApiState>, h: HeaderMap) -> ApiResult {
    s.check(&h, false)?;
    let list: Vec<_> = s
        .jobs
        .values()
        .map(|j| {
            let mut st = j.status();
            st.recent_decisions.truncate(1);
            st
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

async fn job(State(s): State<ApiState>, h: HeaderMap, Path(name): Path<String>) -> ApiResult {
    s.check(&h, false)?;
    Ok(axum::Json(s.job(&name)?.status()).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<usize>,
    role: Option<String>,
}

async fn decisions(
    State(s): State<ApiState>,
    h: HeaderMap,
    Path(name): Path<String>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult {
    s.check(&h, false)?;
    let q = query(q)?;
    let job = s.job(&name)?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let list = match &s.store {
        Some(store) => store
            .decisions(&name, q.role.as_deref(), limit)
            .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
        None => job
            .status()
            .recent_decisions
            .into_iter()
            .filter(|d| q.role.as_ref().is_none_or(|r| &d.role == r))
            .take(limit)
            .collect(),
    };
    Ok(axum::Json(list).into_response())
}

async fn rescales(State(s): State<ApiState>, h: HeaderMap, Path(name): Path<String>) -> ApiResult {
    s.check(&h, false)?;
    s.job(&name)?;
    let list = s
        .store()?
        .rescales(&name)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(axum::Json(list).into_response())
}

async fn policy_events(
    State(s): State<ApiState>,
    h: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult {
    s.check(&h, false)?;
    s.job(&name)?;
    let list = s
        .store()?
        .policy_events(&name)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(axum::Json(list).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    shadow: String,
}

async fn wait(
    s: &ApiState,
    rx: tokio::sync::oneshot::Receiver<Result<String, String>>,
) -> ApiResult {
    match tokio::time::timeout(s.request_timeout, rx).await {
        Ok(Ok(Ok(msg))) => Ok(axum::Json(json!({ "ok": msg })).into_response()),
        Ok(Ok(Err(msg))) => Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, msg)),
        Ok(Err(_)) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the job stopped before taking the request".into(),
        )),
        // Not an error: the job takes the request at its next tick.
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({
                "queued": "the job has not reached its next tick yet (see /jobs/{job}/policy-events)"
            })),
        )
            .into_response()),
    }
}

async fn reset(State(s): State<ApiState>, h: HeaderMap, Path(name): Path<String>) -> ApiResult {
    s.check(&h, true)?;
    let job = s.job(&name)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    job.request(Request::Reset { reply: Some(tx) });
    wait(&s, rx).await
}

async fn promote(
    State(s): State<ApiState>,
    h: HeaderMap,
    Path(name): Path<String>,
    body: Result<axum::Json<PromoteBody>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    s.check(&h, true)?;
    let job = s.job(&name)?;
    let axum::Json(body) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    job.request(Request::Promote {
        shadow: body.shadow,
        reply: Some(tx),
    });
    wait(&s, rx).await
}

async fn pause(State(s): State<ApiState>, h: HeaderMap, Path(name): Path<String>) -> ApiResult {
    s.check(&h, true)?;
    s.job(&name)?.set_paused(true);
    Ok(
        axum::Json(json!({ "ok": "paused: the job decides and records, and changes nothing" }))
            .into_response(),
    )
}

async fn resume(State(s): State<ApiState>, h: HeaderMap, Path(name): Path<String>) -> ApiResult {
    s.check(&h, true)?;
    s.job(&name)?.set_paused(false);
    Ok(axum::Json(json!({ "ok": "resumed" })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct JobsBody {
    /// Default: every job.
    jobs: Option<Vec<String>>,
}

/// Pauses or resumes several jobs (an empty body: every job) at once, as
/// `POST /jobs/{job}/pause` and `/resume` do for one.
fn set_paused(s: &ApiState, h: &HeaderMap, body: &[u8], paused: bool) -> ApiResult {
    s.check(h, true)?;
    let body: JobsBody = if body.iter().all(u8::is_ascii_whitespace) {
        JobsBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("the body must be empty or {{\"jobs\": [...]}}: {e}"),
            )
        })?
    };
    let names = s.select(body.jobs)?;
    for name in &names {
        s.jobs[name].set_paused(paused);
    }
    tracing::info!(jobs = names.len(), paused, "Pause set through the API.");
    let what = if paused {
        "paused: the jobs decide and record, and change nothing"
    } else {
        "resumed"
    };
    Ok(axum::Json(json!({ "ok": what, "jobs": names })).into_response())
}

async fn pause_jobs(State(s): State<ApiState>, h: HeaderMap, body: axum::body::Bytes) -> ApiResult {
    set_paused(&s, &h, &body, true)
}

async fn resume_jobs(
    State(s): State<ApiState>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    set_paused(&s, &h, &body, false)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArmsQuery {
    since_hours: Option<f64>,
    lag_threshold: Option<f64>,
}

async fn arms(
    State(s): State<ApiState>,
    h: HeaderMap,
    q: Result<Query<ArmsQuery>, QueryRejection>,
) -> ApiResult {
    s.check(&h, false)?;
    let q = query(q)?;
    let store = s.store()?;
    if s.arms.is_empty() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "no job has an `arm` in the config".into(),
        ));
    }
    let hours = q.since_hours.unwrap_or(24.0);
    if !(hours.is_finite() && hours > 0.0) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "since_hours must be a positive number".into(),
        ));
    }
    // Jobs may run on accelerated clocks: measure the window back from each job's latest cycle.
    let window_ms = (hours * 3.6e6) as u64;
    let since: BTreeMap<String, u64> = s
        .jobs
        .iter()
        .map(|(name, j)| {
            let latest = j.status().last_cycle_ms;
            (name.clone(), latest.saturating_sub(window_ms))
        })
        .collect();
    let lag_threshold = q.lag_threshold.unwrap_or(10_000.0);
    if !(lag_threshold.is_finite() && lag_threshold >= 0.0) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "lag_threshold must be a number of records >= 0".into(),
        ));
    }
    // Reads of the whole window: off the async workers.
    let (store, arms) = (store.clone(), s.arms.clone());
    let report = tokio::task::spawn_blocking(move || {
        super::replay::arm_report(
            &store,
            &arms,
            |job| since.get(job).copied().unwrap_or(0),
            lag_threshold,
        )
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    Ok(axum::Json(report).into_response())
}
