//! The commands that drive a running host through its API: `daedalus jobs` (every job's
//! status as a table; `GET /jobs` has the rest), `daedalus pause` and `daedalus resume` (stop or restart acting, for
//! some jobs or all: an incident's "stop scaling now"), and the connection arguments they share
//! with `policy push`.

use anyhow::Context;
use clap::Args;
use daedalus_host::engine::tls::{Roots, TlsSettings};
use daedalus_host::live::client::{ApiClient, JobSummary};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// How to reach a running host's API.
#[derive(Debug, Args)]
pub(crate) struct ApiArgs {
    /// The host's API: its `[api] listen` address, or a URL.
    #[arg(long, env = "DAEDALUS_API", default_value = "127.0.0.1:9464")]
    pub(crate) api: String,
    /// A file holding the API token (default: the `DAEDALUS_TOKEN` environment variable; not
    /// an argument, which other users could read in the process list).
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// A PEM bundle of the certificate authorities to trust when `--api` is an `https://` URL
    /// (a TLS proxy in front of the API with a private CA). Default: the system's trust store.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Seconds to wait for the host's answer.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_secs: u64,
}

impl ApiArgs {
    /// The token from `--token-file` or `DAEDALUS_TOKEN`; `None` when neither is given.
    fn token(&self) -> anyhow::Result<Option<String>> {
        let token = match &self.token_file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read the token file {}", f.display()))?,
            None => match std::env::var("DAEDALUS_TOKEN") {
                Ok(t) => t,
                Err(_) => return Ok(None),
            },
        };
        let token = token.trim().to_string();
        anyhow::ensure!(!token.is_empty(), "the API token is empty");
        Ok(Some(token))
    }

    /// How the client speaks TLS: the `--ca-file` roots, or the system's.
    fn tls(&self) -> anyhow::Result<TlsSettings> {
        let roots = match &self.ca_file {
            Some(f) => Roots::Pem(
                std::fs::read(f)
                    .with_context(|| format!("cannot read the CA file {}", f.display()))?,
            ),
            None => Roots::System,
        };
        Ok(TlsSettings {
            roots,
            identity: None,
        })
    }

    /// A client; with `need_token`, an error naming where the token comes from if none does.
    pub(crate) fn client(&self, need_token: bool) -> anyhow::Result<ApiClient> {
        let token = self.token()?;
        if need_token && token.is_none() {
            anyhow::bail!("no API token: set DAEDALUS_TOKEN or give --token-file");
        }
        Ok(ApiClient::new(
            &self.api,
            token.as_deref(),
            &self.tls()?,
            Duration::from_secs(self.timeout_secs),
        )?)
    }
}

/// Runs `fut` on a single-threaded runtime (the commands make one or two requests).
pub(crate) fn block_on<T>(fut: impl Future<Output = T>) -> anyhow::Result<T> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(fut))
}

/// Arguments of `jobs`.
#[derive(Debug, Args)]
pub(crate) struct JobsArgs {
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `pause` and `resume`.
#[derive(Debug, Args)]
pub(crate) struct PauseArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// A job (repeatable, or comma-separated). Default: every job of the host.
    #[arg(long = "job", value_delimiter = ',')]
    jobs: Vec<String>,
}

/// A number of records or records/s, short: `950`, `12.3k`, `4.1M`; `-` when unknown.
fn short_count(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if !v.is_finite() => "?".into(),
        Some(v) if v.abs() >= 1e6 => format!("{:.1}M", v / 1e6),
        Some(v) if v.abs() >= 1e4 => format!("{:.1}k", v / 1e3),
        Some(v) => format!("{v:.0}"),
    }
}

/// The jobs as an aligned table, a header and one line per job.
fn table(jobs: &[JobSummary]) -> String {
    let rows: Vec<[String; 7]> = jobs
        .iter()
        .map(|j| {
            let opt = |p: Option<u32>| p.map_or("-".to_string(), |p| p.to_string());
            let mut scale = format!("{} -> {}", opt(j.current), opt(j.desired));
            if j.rescaling {
                scale.push_str(" (rescaling)");
            }
            let mut policy = format!(
                "{} {}",
                j.policy.name,
                j.policy.digest.get(..12).unwrap_or(&j.policy.digest)
            );
            if let Some(by) = &j.policy_set_by {
                policy.push_str(&format!(" (set by {by})"));
            }
            let acting = match (j.paused, j.dry_run) {
                (true, _) => "paused",
                (false, true) => "dry run",
                (false, false) => "yes",
            };
            [
                j.name.clone(),
                scale,
                acting.into(),
                policy,
                short_count(j.input_rate),
                short_count(j.lag),
                j.last_cycle.clone(),
            ]
        })
        .collect();
    let header = [
        "JOB",
        "PARALLELISM",
        "ACTING",
        "POLICY",
        "INPUT/S",
        "LAG",
        "LAST CYCLE",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == r.len() - 1 {
                    c.clone()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Runs `jobs`.
pub(crate) fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let client = args.api.client(false)?;
    let jobs = block_on(client.jobs())??;
    out!("{}", table(&jobs));
    Ok(ExitCode::SUCCESS)
}

/// Runs `pause` (`paused`) or `resume`.
pub(crate) fn set_paused(args: PauseArgs, paused: bool) -> anyhow::Result<ExitCode> {
    let client = args.api.client(true)?;
    let set = block_on(client.set_paused(paused, &args.jobs))??;
    let what = if paused {
        "paused (they decide and record, and change nothing)"
    } else {
        "resumed"
    };
    outln!("{what}: {}", set.join(", "));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use daedalus_host::live::client::PolicySummary;

    #[test]
    fn the_table_shows_what_an_operator_looks_for() {
        let jobs = [
            JobSummary {
                name: "advertising".into(),
                current: Some(3),
                desired: Some(5),
                input_rate: Some(133_246.0),
                lag: Some(0.0),
                policy: PolicySummary {
                    name: "daedalus".into(),
                    digest: "5cad73e15408c26d397e".into(),
                },
                last_cycle: "rescaled 3 -> 5".into(),
                rescaling: true,
                ..Default::default()
            },
            JobSummary {
                name: "b".into(),
                paused: true,
                policy_set_by: Some("api".into()),
                policy: PolicySummary {
                    name: "hpa".into(),
                    digest: "ab".into(),
                },
                lag: Some(2.5e6),
                ..Default::default()
            },
        ];
        let t = table(&jobs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("JOB          PARALLELISM"), "{t}");
        assert!(lines[1].contains("3 -> 5 (rescaling)"), "{t}");
        assert!(lines[1].contains("daedalus 5cad73e15408 "), "{t}");
        assert!(lines[1].contains("133.2k"), "{t}");
        assert!(lines[2].contains("- -> -"), "{t}");
        assert!(lines[2].contains("paused"), "{t}");
        assert!(lines[2].contains("hpa ab (set by api)"), "{t}");
        assert!(lines[2].contains("2.5M"), "{t}");
        // Columns line up: the policy column starts at the same place on every line.
        let at = |l: &str, s: &str| l.find(s).unwrap();
        assert_eq!(at(lines[0], "POLICY"), at(lines[1], "daedalus"));
        assert_eq!(at(lines[0], "POLICY"), at(lines[2], "hpa"));
    }

    #[test]
    fn counts_are_short() {
        assert_eq!(short_count(None), "-");
        assert_eq!(short_count(Some(950.4)), "950");
        assert_eq!(short_count(Some(12_345.0)), "12.3k");
        assert_eq!(short_count(Some(4_100_000.0)), "4.1M");
        assert_eq!(short_count(Some(f64::NAN)), "?");
    }
}
