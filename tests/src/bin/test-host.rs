//! The host exactly as `daedalus run` runs it (`daedalus_host::live::run`), built as a binary
//! of this package so the crash-recovery tests can start and kill it as a process
//! (`CARGO_BIN_EXE_test-host`; the `daedalus` binary of another package is not built for
//! `cargo test`).
//!
//! Usage: `test-host CONFIG DURATION_SECS`.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, config, secs] = args.as_slice() else {
        eprintln!("usage: test-host CONFIG DURATION_SECS");
        return std::process::ExitCode::from(2);
    };
    let run = || -> anyhow::Result<()> {
        let cfg = daedalus_host::live::RunConfig::load(std::path::Path::new(config))?;
        let secs: u64 = secs.parse()?;
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(daedalus_host::live::run(
            cfg,
            daedalus_tests::engine(),
            false,
            Some(std::time::Duration::from_secs(secs)),
        ))
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("test-host: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
