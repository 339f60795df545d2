//! `daedalus policy push`: swap a component into a running host's jobs through its API
//! (`POST /policy`, the component uploaded and pinned to its sha256), printing each job's
//! outcome.

use anyhow::{Context, anyhow, bail};
use clap::Args;
use daedalus_host::engine::tls::{TlsSettings, error_chain, http_client};
use daedalus_host::policy::sha256_hex;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The exit code when some jobs had not reached their next tick within the host's request
/// timeout (they will take or refuse the swap then; see `/jobs/{job}/policy-events`).
const QUEUED: u8 = 3;

/// Arguments of `policy push`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    /// The host's API: its `[api] listen` address, or a URL.
    #[arg(long, env = "DAEDALUS_API", default_value = "127.0.0.1:9464")]
    api: String,
    /// A file holding the API token (default: the `DAEDALUS_TOKEN` environment variable; not
    /// an argument, which other users could read in the process list).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// A job to swap (repeatable, or comma-separated). Default: every job of the host.
    #[arg(long = "job", value_delimiter = ',')]
    jobs: Vec<String>,
    /// Parameter `KEY=VALUE` for the component (repeatable). Without any, each job keeps its
    /// params.
    #[arg(long = "param", value_parser = super::policy_cmd::parse_param)]
    params: Vec<(String, String)>,
    /// Give the component its default params rather than the jobs' own.
    #[arg(long, conflicts_with = "params")]
    default_params: bool,
    /// Seconds to wait for the host's answer (it answers once every job has answered, or at
    /// its own request timeout).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_secs: u64,
}

impl PushArgs {
    /// The API's base URL.
    fn base(&self) -> String {
        let api = self.api.trim_end_matches('/');
        if api.contains("://") {
            api.to_string()
        } else {
            format!("http://{api}")
        }
    }

    /// The query string: the pin, the file's name, the jobs and the params.
    fn query(&self, sha256: String) -> Vec<(String, String)> {
        let mut q = vec![("sha256".to_string(), sha256)];
        if let Some(name) = self.file.file_name() {
            q.push(("name".into(), name.to_string_lossy().into_owned()));
        }
        if !self.jobs.is_empty() {
            q.push(("jobs".into(), self.jobs.join(",")));
        }
        if self.default_params {
            q.push(("params".into(), "none".into()));
        }
        q.extend(
            self.params
                .iter()
                .map(|(k, v)| (format!("param.{k}"), v.clone())),
        );
        q
    }

    fn token(&self) -> anyhow::Result<String> {
        let token = match &self.token_file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?,
            None => std::env::var("DAEDALUS_TOKEN")
                .context("no API token: set DAEDALUS_TOKEN or give --token-file")?,
        };
        let token = token.trim().to_string();
        if token.is_empty() {
            bail!("the API token is empty");
        }
        Ok(token)
    }
}

/// One job's outcome as a line: `JOB: swapped ...`, `JOB: swap refused ...`, `JOB: queued ...`.
fn outcome_line(job: &str, outcome: &serde_json::Value) -> String {
    let said = |key: &str| outcome.get(key).and_then(|v| v.as_str());
    match (said("ok"), said("error"), said("queued")) {
        (Some(ok), _, _) => format!("{job}: {ok}"),
        (_, Some(error), _) => format!("{job}: {error}"),
        (_, _, Some(queued)) => format!("{job}: queued: {queued}"),
        _ => format!("{job}: {outcome}"),
    }
}

/// Runs `policy push`: 0 when every job swapped or already ran the component, 1 when any
/// refused it (or the host refused the request), [`QUEUED`] when some have not answered yet.
pub(crate) fn run(args: PushArgs) -> anyhow::Result<ExitCode> {
    let token = args.token()?;
    let wasm = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let url = format!("{}/policy", args.base());
    let query = args.query(sha256_hex(&wasm));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, text) = rt.block_on(async {
        let client = http_client(
            &TlsSettings::default(),
            Duration::from_secs(args.timeout_secs),
        )?;
        let r = client
            .post(&url)
            .query(&query)
            .bearer_auth(&token)
            .header(reqwest::header::CONTENT_TYPE, "application/wasm")
            .body(wasm)
            .send()
            .await
            .map_err(|e| anyhow!("{url}: {}", error_chain(&e.without_url())))?;
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|e| anyhow!("{url}: {}", error_chain(&e.without_url())))?;
        anyhow::Ok((status, text))
    })?;
    let Ok(reply) = serde_json::from_str::<serde_json::Value>(&text) else {
        bail!("{url} answered {status}, not with JSON: {}", text.trim());
    };
    if let Some(jobs) = reply.get("jobs").and_then(|j| j.as_object()) {
        for (job, outcome) in jobs {
            outln!("{}", outcome_line(job, outcome));
        }
    }
    let said = |key: &str| reply.get(key).and_then(|v| v.as_str()).unwrap_or("");
    match status.as_u16() {
        200 => {
            outln!("{}", said("ok"));
            Ok(ExitCode::SUCCESS)
        }
        202 => {
            outln!("{}", said("ok"));
            Ok(ExitCode::from(QUEUED))
        }
        _ => bail!("{url} answered {status}: {}", said("error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        push: PushArgs,
    }

    fn args(argv: &[&str]) -> PushArgs {
        Cli::try_parse_from([&["push", "p.wasm"], argv].concat())
            .unwrap()
            .push
    }

    #[test]
    fn the_request_names_the_pin_jobs_and_params() {
        let a = args(&["--job", "a,b", "--job", "c", "--param", "k=v=1"]);
        assert_eq!(a.base(), "http://127.0.0.1:9464");
        let q = a.query("ab".into());
        let q: Vec<(&str, &str)> = q.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let want = [
            ("sha256", "ab"),
            ("name", "p.wasm"),
            ("jobs", "a,b,c"),
            ("param.k", "v=1"),
        ];
        assert_eq!(q, want);
        let a = args(&["--api", "https://h:1/", "--default-params"]);
        assert_eq!(a.base(), "https://h:1");
        assert_eq!(a.query("ab".into())[2], ("params".into(), "none".into()));
        assert!(
            Cli::try_parse_from(["push", "p.wasm", "--default-params", "--param", "k=v"]).is_err()
        );
    }

    #[test]
    fn each_outcome_is_one_line() {
        let o = |v: serde_json::Value| outcome_line("a", &v);
        assert_eq!(o(serde_json::json!({"ok": "swapped"})), "a: swapped");
        assert_eq!(o(serde_json::json!({"error": "no"})), "a: no");
        assert_eq!(
            o(serde_json::json!({"queued": "later"})),
            "a: queued: later"
        );
    }
}
