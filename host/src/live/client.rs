//! A client for a running host's API: what `daedalus policy push` speaks, for tools that
//! drive a host from elsewhere (a workstation, a deploy pipeline).
//!
//! [`ApiClient::push`] uploads a component to `POST /policy` (`content-type:
//! application/wasm`), pinned to its sha256 so a corrupted upload is refused before any job
//! is asked, and returns each job's outcome. [`ApiClient::jobs`] reads every job's status
//! (`GET /jobs`), [`ApiClient::set_paused`] pauses or resumes jobs (`POST /pause`,
//! `POST /resume`). The token travels as a bearer header; TLS (an `https://` base, a proxy in
//! front of the API) uses [`TlsSettings`], so a private CA can be trusted.

use crate::engine::tls::{TlsSettings, error_chain, http_client};
use crate::policy::sha256_hex;
use std::time::Duration;

/// Why a request got no answer the client could read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The client could not be built (a CA bundle that is not PEM, say).
    #[error("client setup: {0}")]
    Setup(String),
    /// No answer: connection refused, TLS handshake failed, timed out.
    #[error("{url}: {why}")]
    Transport {
        /// The URL asked.
        url: String,
        /// What went wrong, with its causes.
        why: String,
    },
    /// The host refused the request (a wrong token, an unknown job): its status and words.
    #[error("{url} answered {status}: {message}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The host's `error`.
        message: String,
    },
    /// An answer that is not the API's JSON (something else listens there).
    #[error("{url} answered {status}, not with JSON: {body}")]
    NotJson {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
}

/// A running host's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A job's status as `GET /jobs` reports it: the fields an operator reads at a glance (the
/// host reports more; fields a host of another version lacks read as their defaults).
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct JobSummary {
    /// The job's name.
    pub name: String,
    /// Parallelism last observed.
    pub current: Option<u32>,
    /// Parallelism the host wants.
    pub desired: Option<u32>,
    /// Input rate last observed, records/s.
    pub input_rate: Option<f64>,
    /// Lag last observed, records.
    pub lag: Option<f64>,
    /// Acting is paused.
    pub paused: bool,
    /// Recommend only.
    pub dry_run: bool,
    /// The active policy.
    pub policy: PolicySummary,
    /// Who set the active policy when it is not the configured one.
    pub policy_set_by: Option<String>,
    /// What the last cycle did.
    pub last_cycle: String,
    /// Rescales applied.
    pub rescales: u32,
    /// A rescale is in flight.
    pub rescaling: bool,
}

/// A policy as `GET /jobs` names it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct PolicySummary {
    /// Its name (from `describe`).
    pub name: String,
    /// Its sha256.
    pub digest: String,
}

/// Which params the pushed component gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PushParams {
    /// Each job keeps its own params.
    #[default]
    Keep,
    /// The component's defaults (`params=none`).
    Defaults,
    /// These `KEY=VALUE` pairs (`param.KEY=VALUE`).
    Set(Vec<(String, String)>),
}

/// What to push, and where.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    /// The label the host shows in its answers and policy events (a file name).
    pub name: Option<String>,
    /// The jobs to swap; empty: every job of the host.
    pub jobs: Vec<String>,
    /// The params for the component.
    pub params: PushParams,
}

/// One job's outcome of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Swapped, or already running it (`unchanged`): the host's words.
    Runs(String),
    /// Refused: the job keeps its policy. Why.
    Refused(String),
    /// The job had not reached its next tick within the host's request timeout; it will take
    /// or refuse the swap then (see `/jobs/{job}/policy-events`).
    Queued(String),
}

/// How a push ended, over every job asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every job runs the component.
    AllRun,
    /// None refused it, some have not answered yet.
    SomeQueued,
    /// The host refused the request, or some job refused the component.
    Refused,
}

/// The host's answer to a push.
#[derive(Debug, Clone)]
pub struct PushReply {
    /// The HTTP status.
    pub status: u16,
    /// The summary line (`"2 jobs run 5cad73e15408"`) or the error.
    pub message: String,
    /// Each job's outcome, by name (empty when the request itself was refused).
    pub jobs: Vec<(String, JobOutcome)>,
}

impl PushReply {
    /// How the push ended: 200 every job runs it, 202 some queued, anything else refused.
    pub fn verdict(&self) -> Verdict {
        match self.status {
            200 => Verdict::AllRun,
            202 => Verdict::SomeQueued,
            _ => Verdict::Refused,
        }
    }

    fn parse(status: u16, answer: &serde_json::Value) -> PushReply {
        let said = |v: &serde_json::Value, key: &str| v.get(key)?.as_str().map(str::to_string);
        let message = said(answer, "ok")
            .or_else(|| said(answer, "error"))
            .unwrap_or_default();
        let jobs = answer
            .get("jobs")
            .and_then(|j| j.as_object())
            .map(|jobs| {
                jobs.iter()
                    .map(|(job, o)| {
                        let outcome = match (said(o, "ok"), said(o, "error"), said(o, "queued")) {
                            (Some(ok), _, _) => JobOutcome::Runs(ok),
                            (_, Some(error), _) => JobOutcome::Refused(error),
                            (_, _, Some(queued)) => JobOutcome::Queued(queued),
                            _ => JobOutcome::Refused(format!("an answer not understood: {o}")),
                        };
                        (job.clone(), outcome)
                    })
                    .collect()
            })
            .unwrap_or_default();
        PushReply {
            status,
            message,
            jobs,
        }
    }
}

impl ApiClient {
    /// A client for the API at `api` (its `[api] listen` address, or a URL), sending `token`
    /// (reads need none unless the host sets `public_read = false`), speaking TLS by `tls` to
    /// an `https://` URL, giving up on a request after `timeout`.
    pub fn new(
        api: &str,
        token: Option<&str>,
        tls: &TlsSettings,
        timeout: Duration,
    ) -> Result<ApiClient, ClientError> {
        let api = api.trim_end_matches('/');
        let base = if api.contains("://") {
            api.to_string()
        } else {
            format!("http://{api}")
        };
        let http = http_client(tls, timeout).map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(ApiClient {
            base,
            token: token.map(str::to_string),
            http,
        })
    }

    /// `request` with the token, if there is one.
    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    /// Sends `request` to `url`; the status and the JSON answer.
    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, serde_json::Value), ClientError> {
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: url.to_string(),
            why: error_chain(&e.without_url()),
        };
        let r = self.authorized(request).send().await.map_err(transport)?;
        let status = r.status().as_u16();
        let text = r.text().await.map_err(transport)?;
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(answer) if answer.is_object() || answer.is_array() => Ok((status, answer)),
            _ => Err(ClientError::NotJson {
                url: url.to_string(),
                status,
                body: text.trim().chars().take(200).collect(),
            }),
        }
    }

    /// `answer` when `status` is a success, else the host's refusal.
    fn accepted(
        url: &str,
        status: u16,
        answer: serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        if (200..300).contains(&status) {
            return Ok(answer);
        }
        Err(ClientError::Refused {
            url: url.to_string(),
            status,
            message: answer
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or("")
                .to_string(),
        })
    }

    /// Every job's status (`GET /jobs`).
    pub async fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        let url = format!("{}/jobs", self.base);
        let (status, answer) = self.send(&url, self.http.get(&url)).await?;
        let answer = Self::accepted(&url, status, answer)?;
        serde_json::from_value(answer).map_err(|e| ClientError::NotJson {
            url,
            status,
            body: format!("not a list of jobs: {e}"),
        })
    }

    /// Pauses (`paused`) or resumes `jobs`, or every job when `jobs` is empty (`POST /pause`,
    /// `POST /resume`); the names of the jobs set.
    pub async fn set_paused(
        &self,
        paused: bool,
        jobs: &[String],
    ) -> Result<Vec<String>, ClientError> {
        let url = format!("{}/{}", self.base, if paused { "pause" } else { "resume" });
        let mut request = self.http.post(&url);
        if !jobs.is_empty() {
            request = request.json(&serde_json::json!({ "jobs": jobs }));
        }
        let (status, answer) = self.send(&url, request).await?;
        let answer = Self::accepted(&url, status, answer)?;
        Ok(answer
            .get("jobs")
            .and_then(|j| j.as_array())
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Uploads `wasm` to `POST /policy`, pinned to its sha256: a hot swap into `req.jobs` (or
    /// every job). Any JSON answer, a refusal included, is a [`PushReply`].
    pub async fn push(&self, wasm: Vec<u8>, req: &PushRequest) -> Result<PushReply, ClientError> {
        let url = format!("{}/policy", self.base);
        let query = push_query(sha256_hex(&wasm), req);
        let request = self
            .http
            .post(&url)
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(wasm);
        let (status, answer) = self.send(&url, request).await?;
        Ok(PushReply::parse(status, &answer))
    }
}

/// The query string of a push: the pin, the name, the jobs and the params.
fn push_query(sha256: String, req: &PushRequest) -> Vec<(String, String)> {
    let mut q = vec![("sha256".to_string(), sha256)];
    if let Some(name) = &req.name {
        q.push(("name".into(), name.clone()));
    }
    if !req.jobs.is_empty() {
        q.push(("jobs".into(), req.jobs.join(",")));
    }
    match &req.params {
        PushParams::Keep => {}
        PushParams::Defaults => q.push(("params".into(), "none".into())),
        PushParams::Set(params) => q.extend(
            params
                .iter()
                .map(|(k, v)| (format!("param.{k}"), v.clone())),
        ),
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_query_names_the_pin_jobs_and_params() {
        let req = PushRequest {
            name: Some("p.wasm".into()),
            jobs: vec!["a".into(), "b".into()],
            params: PushParams::Set(vec![("k".into(), "v=1".into())]),
        };
        let q = push_query("ab".into(), &req);
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            q,
            [
                ("sha256", "ab"),
                ("name", "p.wasm"),
                ("jobs", "a,b"),
                ("param.k", "v=1")
            ]
        );
        let defaults = PushRequest {
            params: PushParams::Defaults,
            ..Default::default()
        };
        assert_eq!(
            push_query("ab".into(), &defaults),
            [
                ("sha256".to_string(), "ab".to_string()),
                ("params".into(), "none".into())
            ]
        );
    }

    #[test]
    fn a_base_without_a_scheme_is_plain_http() {
        let c = |api| ApiClient::new(api, None, &TlsSettings::default(), Duration::from_secs(1));
        assert_eq!(c("127.0.0.1:9464").unwrap().base(), "http://127.0.0.1:9464");
        assert_eq!(c("https://h:1/").unwrap().base(), "https://h:1");
    }

    #[test]
    fn an_answer_gives_each_jobs_outcome_and_the_verdict() {
        let answer = json!({
            "ok": "1 of 3 jobs have not reached their next tick yet",
            "jobs": {
                "a": {"ok": "swapped"},
                "b": {"queued": "later"},
                "c": {"error": "no"},
                "d": {"what": 1}
            }
        });
        let r = PushReply::parse(202, &answer);
        assert_eq!(r.verdict(), Verdict::SomeQueued);
        assert_eq!(
            r.message,
            "1 of 3 jobs have not reached their next tick yet"
        );
        assert_eq!(r.jobs[0], ("a".into(), JobOutcome::Runs("swapped".into())));
        assert_eq!(r.jobs[1], ("b".into(), JobOutcome::Queued("later".into())));
        assert_eq!(r.jobs[2], ("c".into(), JobOutcome::Refused("no".into())));
        assert!(matches!(&r.jobs[3].1, JobOutcome::Refused(w) if w.contains("not understood")));
        let refused = PushReply::parse(401, &json!({"error": "a token"}));
        assert_eq!(refused.verdict(), Verdict::Refused);
        assert_eq!(refused.message, "a token");
        assert!(refused.jobs.is_empty());
        assert_eq!(PushReply::parse(200, &json!({})).verdict(), Verdict::AllRun);
    }
}
