//! `daedalus policy push`: swap a component into a running host's jobs through its API
//! (`POST /policy`, the component uploaded and pinned to its sha256), printing each job's
//! outcome.

use anyhow::Context;
use clap::Args;
use daedalus_host::live::client::{JobOutcome, PushParams, PushRequest, Verdict};
use std::path::PathBuf;
use std::process::ExitCode;

/// The exit code when some jobs had not reached their next tick within the host's request
/// timeout (they will take or refuse the swap then; see `/jobs/{job}/policy-events`).
const QUEUED: u8 = 3;

/// Arguments of `policy push`.
#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// The component (`.wasm`).
    file: PathBuf,
    #[command(flatten)]
    api: super::api_cmd::ApiArgs,
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
}

impl PushArgs {
    /// What to push: the file's name as its label, the jobs and the params.
    fn request(&self) -> PushRequest {
        let params = if self.default_params {
            PushParams::Defaults
        } else if self.params.is_empty() {
            PushParams::Keep
        } else {
            PushParams::Set(self.params.clone())
        };
        PushRequest {
            name: self
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            jobs: self.jobs.clone(),
            params,
        }
    }
}

/// One job's outcome as a line: `JOB: swapped ...`, `JOB: swap refused ...`, `JOB: queued ...`.
fn outcome_line(job: &str, outcome: &JobOutcome) -> String {
    match outcome {
        JobOutcome::Runs(said) | JobOutcome::Refused(said) => format!("{job}: {said}"),
        JobOutcome::Queued(said) => format!("{job}: queued: {said}"),
    }
}

/// Runs `policy push`: 0 when every job swapped or already ran the component, 1 when any
/// refused it (or the host refused the request), [`QUEUED`] when some have not answered yet.
pub(crate) fn run(args: PushArgs) -> anyhow::Result<ExitCode> {
    let client = args.api.client(true)?;
    let wasm = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let reply = super::api_cmd::block_on(client.push(wasm, &args.request()))??;
    for (job, outcome) in &reply.jobs {
        outln!("{}", outcome_line(job, outcome));
    }
    match reply.verdict() {
        Verdict::AllRun => {
            outln!("{}", reply.message);
            Ok(ExitCode::SUCCESS)
        }
        Verdict::SomeQueued => {
            outln!("{}", reply.message);
            Ok(ExitCode::from(QUEUED))
        }
        Verdict::Refused => anyhow::bail!(
            "{}/policy answered {}: {}",
            client.base(),
            reply.status,
            reply.message
        ),
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
    fn the_request_names_the_jobs_and_params() {
        let a = args(&["--job", "a,b", "--job", "c", "--param", "k=v=1"]);
        let r = a.request();
        assert_eq!(r.name.as_deref(), Some("p.wasm"));
        assert_eq!(r.jobs, ["a", "b", "c"]);
        assert_eq!(r.params, PushParams::Set(vec![("k".into(), "v=1".into())]));
        assert_eq!(args(&[]).request().params, PushParams::Keep);
        assert_eq!(
            args(&["--default-params"]).request().params,
            PushParams::Defaults
        );
        assert!(
            Cli::try_parse_from(["push", "p.wasm", "--default-params", "--param", "k=v"]).is_err()
        );
    }

    #[test]
    fn each_outcome_is_one_line() {
        let o = |v| outcome_line("a", &v);
        assert_eq!(o(JobOutcome::Runs("swapped".into())), "a: swapped");
        assert_eq!(o(JobOutcome::Refused("no".into())), "a: no");
        assert_eq!(o(JobOutcome::Queued("later".into())), "a: queued: later");
    }
}
