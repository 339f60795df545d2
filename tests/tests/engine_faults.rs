//! Engine faults the loop must survive: Flink's REST API unreachable, slow, answering 500 or
//! malformed JSON; the broker unreachable. The REST faults use the HTTP test double
//! (`daedalus_tests::fake_http`) because a real Flink cannot be made to answer 500 or garbage
//! on demand; an unreachable engine is a real closed port. In every case the collector returns
//! a typed error, the actuator sends nothing, and the loop holds the job and keeps running.

use daedalus_host::engine::flink::rest::FlinkRest;
use daedalus_host::engine::flink::{
    FlinkRescaleActuator, FlinkRestCollector, JobSelector, WorkerSource,
};
use daedalus_host::engine::kafka::InputTopic;
use daedalus_host::engine::{
    Actuator, ApplyOutcome, Collected, Collector, EngineError, Progress, Target,
};
use daedalus_host::live::{Cycle, JobLoop, JobSettings};
use daedalus_host::model::Bounds;
use daedalus_host::policy::{PolicyLimits, PolicySlot, WasmPolicy};
use daedalus_tests::fake_http::{Reply, closed_port, serve};
use daedalus_tests::{engine, policy_path};
use std::sync::Arc;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_millis(800);

fn collector(url: &str) -> FlinkRestCollector {
    FlinkRestCollector::new(
        FlinkRest::new(url, TIMEOUT).unwrap(),
        JobSelector::Name("wc".into()),
        Duration::from_secs(1),
        WorkerSource::Subtasks,
    )
}

fn job_loop(url: &str) -> JobLoop {
    job_loop_collecting(url, Box::new(collector(url)))
}

fn job_loop_collecting(url: &str, collector: Box<dyn Collector>) -> JobLoop {
    let rest = FlinkRest::new(url, TIMEOUT).unwrap();
    let actuator = FlinkRescaleActuator::new(rest, JobSelector::Name("wc".into()), None);
    job_loop_with(collector, Box::new(actuator))
}

fn job_loop_with(collector: Box<dyn Collector>, actuator: Box<dyn Actuator>) -> JobLoop {
    let limits = PolicyLimits::default();
    let loaded = engine()
        .load_file(&policy_path("ds2"), &limits, None)
        .unwrap();
    let policy = Arc::new(WasmPolicy::new(Arc::new(PolicySlot::new(
        engine(),
        loaded,
        limits,
    ))));
    JobLoop::new(
        JobSettings {
            name: "wc".into(),
            bounds: Bounds {
                min_parallelism: 1,
                max_parallelism: 4,
            },
            history: Duration::from_secs(60),
            rescale_timeout: Duration::from_secs(30),
            latency_objective: None,
            dry_run: false,
            params: Vec::new(),
            guardrails: Default::default(),
        },
        collector,
        actuator,
        policy,
    )
}

#[tokio::test]
async fn unreachable_rest_api_is_a_typed_error_and_the_loop_holds() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let err = collector(&url).collect(0).await.unwrap_err();
    assert!(matches!(err, EngineError::Unreachable { .. }), "{err:?}");
    let mut l = job_loop(&url);
    for t in 0..3 {
        assert!(matches!(l.cycle(t * 1000).await, Cycle::EngineError(_)));
    }
    assert_eq!(l.rescales(), 0);
}

#[tokio::test]
async fn a_rest_api_that_never_answers_times_out() {
    let fake = serve(Reply::Hang).await;
    let err = collector(&fake.url).collect(0).await.unwrap_err();
    assert!(matches!(err, EngineError::Timeout { .. }), "{err:?}");
    let err = FlinkRescaleActuator::new(
        FlinkRest::new(&fake.url, TIMEOUT).unwrap(),
        JobSelector::Id("j".into()),
        None,
    )
    .apply(&Target::job(2))
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn http_500_is_reported_with_status_and_body() {
    let fake = serve(Reply::Respond(500, r#"{"errors":["boom"]}"#.into())).await;
    let err = collector(&fake.url).collect(0).await.unwrap_err();
    match err {
        EngineError::Status { status, body, .. } => {
            assert_eq!(status, 500);
            assert!(body.contains("boom"));
        }
        other => panic!("{other:?}"),
    }
    let mut l = job_loop(&fake.url);
    assert!(matches!(l.cycle(0).await, Cycle::EngineError(_)));
    assert!(fake.request_count() >= 2);
}

#[tokio::test]
async fn malformed_and_nonsense_json_are_malformed_not_zeros() {
    for body in [
        "<html>not json",
        r#"{"jobs": 42}"#,
        r#"{"jobs":[{"jid":1}]}"#,
    ] {
        let fake = serve(Reply::Respond(200, body.into())).await;
        let err = collector(&fake.url).collect(0).await.unwrap_err();
        assert!(
            matches!(err, EngineError::Malformed { .. }),
            "{body}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_job_missing_from_the_cluster_is_not_ready() {
    let fake = serve(Reply::Respond(200, r#"{"jobs":[]}"#.into())).await;
    let got = collector(&fake.url).collect(0).await.unwrap();
    assert!(
        matches!(&got, daedalus_host::engine::Collected::NotReady { reason, .. } if reason.contains("wc")),
        "{got:?}"
    );
    let mut l = job_loop(&fake.url);
    assert!(matches!(l.cycle(0).await, Cycle::NotReady(_)));
}

#[tokio::test]
async fn unreachable_broker_is_a_typed_error() {
    let topic = InputTopic::new(
        &format!("127.0.0.1:{}", closed_port()),
        "words",
        Duration::from_millis(500),
    );
    let err = topic.end_offsets().await.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Unreachable { .. } | EngineError::Timeout { .. }
        ),
        "{err:?}"
    );
}

/// A collector that panics on every other call: a host bug the real connectors cannot be made
/// to show on demand (a test double, for that reason).
struct PanicsEveryOtherCall(Arc<std::sync::atomic::AtomicU32>);

#[async_trait::async_trait]
impl Collector for PanicsEveryOtherCall {
    async fn collect(&self, _now_ms: u64) -> Result<daedalus_host::engine::Collected, EngineError> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n.is_multiple_of(2) {
            panic!("collector bug on call {n}");
        }
        Err(EngineError::Unreachable {
            endpoint: "double".into(),
            detail: "no engine".into(),
        })
    }
}

/// A panic inside one cycle does not end the job's loop: it is counted as a `cycle` error and
/// the next tick runs.
#[tokio::test(start_paused = true)]
async fn a_panicking_cycle_is_counted_and_the_loop_goes_on() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let metrics = Arc::new(daedalus_host::live::metrics::Metrics::new());
    let job = job_loop_collecting(&url, Box::new(PanicsEveryOtherCall(calls.clone())))
        .with_metrics(metrics.clone());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(daedalus_host::live::run_job(
        daedalus_host::live::BuiltJob {
            job,
            clock: daedalus_host::clock::JobClock::accelerated(0, 1.0),
        },
        Duration::from_secs(10),
        None,
        rx,
    ));
    tokio::time::sleep(Duration::from_secs(65)).await;
    tx.send(true).unwrap();
    task.await.expect("the loop survived its panicking cycles");
    let n = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n >= 5, "only {n} cycles ran");
    let text = metrics.encode();
    let line = text
        .lines()
        .find(|l| l.starts_with("daedalus_errors_total{") && l.contains("kind=\"cycle\""))
        .unwrap_or_else(|| panic!("no cycle error counted: {text}"));
    let counted: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(counted, f64::from(n.div_ceil(2)), "{line}");
}

/// A job that is never ready (a stopped job, as the collector sees it).
struct NeverReady;

#[async_trait::async_trait]
impl Collector for NeverReady {
    async fn collect(&self, _now_ms: u64) -> Result<Collected, EngineError> {
        Ok(Collected::NotReady {
            reason: "job is FINISHED".into(),
            parallelism: None,
        })
    }
}

/// An actuator that left the job down and counts the loop's calls to bring it back. A test
/// double for the loop's side only: the savepoint actuator's own recovery runs against the
/// real Flink in `flink_live`.
struct LeftDown(Arc<std::sync::atomic::AtomicU32>);

#[async_trait::async_trait]
impl Actuator for LeftDown {
    async fn apply(&self, _t: &Target) -> Result<ApplyOutcome, EngineError> {
        panic!("nothing is decided on a job that is not ready")
    }
    async fn progress(&self, _t: &Target) -> Result<Progress, EngineError> {
        panic!("no rescale is pending")
    }
    async fn recover(&self) -> Result<Option<String>, EngineError> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(Some(format!("resubmit {n} failed")))
    }
}

/// A job the actuator left down is brought back on every tick it is not ready, with no
/// rescale pending (past the rescale timeout), and the cycle says so.
#[tokio::test]
async fn a_job_left_down_is_recovered_on_every_tick_it_is_not_ready() {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut job = job_loop_with(Box::new(NeverReady), Box::new(LeftDown(calls.clone())));
    for tick in 0..3u32 {
        match job.cycle(u64::from(tick) * 10_000).await {
            Cycle::NotReady(why) => {
                assert!(why.contains("job is FINISHED"), "{why}");
                assert!(why.contains(&format!("resubmit {tick} failed")), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// A running job whose vertex reports a parallelism Flink cannot have (0, or beyond its 32768)
/// or that has no vertices is a malformed answer: the loop holds instead of acting on it (or
/// asking for the metrics of four billion subtasks).
#[tokio::test]
async fn nonsense_parallelism_from_flink_is_malformed() {
    use daedalus_tests::fake_http::Route;
    let job = |vertices: &str| {
        format!(r#"{{"jid":"j1","name":"wc","state":"RUNNING","vertices":[{vertices}]}}"#)
    };
    let vertex = |p: &str| {
        format!(
            r#"{{"id":"v1","name":"map","parallelism":{p},"maxParallelism":128,"status":"RUNNING"}}"#
        )
    };
    for (body, want) in [
        (job(&vertex("4000000000")), "parallelism 4000000000"),
        (job(&vertex("0")), "parallelism 0"),
        (job(""), "no vertices"),
    ] {
        let fake = serve(Reply::Routes(vec![Route::new(
            "GET", "/jobs/j1", 200, &body,
        )]))
        .await;
        let c = FlinkRestCollector::new(
            FlinkRest::new(&fake.url, TIMEOUT).unwrap(),
            JobSelector::Id("j1".into()),
            Duration::from_secs(1),
            WorkerSource::Subtasks,
        );
        let err = c.collect(0).await.unwrap_err();
        assert!(
            matches!(&err, EngineError::Malformed { detail, .. } if detail.contains(want)),
            "{body}: {err:?}"
        );
        assert_eq!(
            fake.requests().len(),
            1,
            "nothing asked beyond the job: {body}"
        );
    }
}

/// A running job `j1` named `wc`, its vertices given as (id, parallelism, max parallelism).
fn flink_job(vertices: &[(&str, u32, i64)]) -> String {
    let vs: Vec<String> = vertices
        .iter()
        .map(|(id, p, max)| {
            format!(
                r#"{{"id":"{id}","name":"{id}","parallelism":{p},"maxParallelism":{max},"status":"RUNNING"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"jid":"j1","name":"wc","state":"RUNNING","vertices":[{}]}}"#,
        vs.join(",")
    )
}

fn overview(taskmanagers: u32, slots: u32, available: u32) -> String {
    format!(
        r#"{{"taskmanagers":{taskmanagers},"slots-total":{slots},"slots-available":{available}}}"#
    )
}

/// A cluster on the default scheduler: Flink without the endpoint answers 404, Flink with it
/// 500 with an `UnsupportedOperationException`. Either is a clear refusal that names the fix
/// (the 404 was reported as "job not found", the 500 as a bare server error).
#[tokio::test]
async fn a_cluster_without_the_adaptive_scheduler_is_refused_clearly() {
    use daedalus_tests::fake_http::Route;
    let unsupported = r#"{"errors":["Internal server error.","<Exception on server side:\njava.util.concurrent.CompletionException: java.lang.UnsupportedOperationException: The DefaultScheduler does not support changing the parallelism without a job restart."]}"#;
    for (status, body) in [(404, r#"{"errors":["Not found"]}"#), (500, unsupported)] {
        let fake = serve(Reply::Routes(vec![
            Route::new("GET", "/jobs/j1", 200, &flink_job(&[("v1", 2, 128)])),
            Route::new("GET", "/jobs/j1/resource-requirements", status, body),
        ]))
        .await;
        let a = FlinkRescaleActuator::new(
            FlinkRest::new(&fake.url, TIMEOUT).unwrap(),
            JobSelector::Id("j1".into()),
            None,
        );
        match a.apply(&Target::job(4)).await {
            Ok(ApplyOutcome::Rejected(why)) => {
                assert!(why.contains("adaptive scheduler"), "{why}");
                assert!(why.contains("savepoint"), "{why}");
            }
            other => panic!("{status}: {other:?}"),
        }
    }
}

/// The job reached its target, but the TaskManager the actuator started is no longer needed
/// and cannot be stopped (the pool's stop command fails): the rescale is done and the failure
/// is logged (it was an error, so the rescale stayed pending until its timeout, and every
/// later one too). Flink is a double whose job and cluster change between calls.
#[tokio::test]
async fn a_taskmanager_that_cannot_be_stopped_does_not_keep_a_rescale_pending() {
    use daedalus_host::engine::flink::CommandPool;
    use daedalus_tests::fake_http::Route;
    let requirements =
        |p: u32| format!(r#"{{"v1":{{"parallelism":{{"lowerBound":1,"upperBound":{p}}}}}}}"#);
    let fake = serve(Reply::Routes(vec![
        Route::new("GET", "/jobs/j1", 200, &flink_job(&[("v1", 2, 128)])).times(1),
        Route::new("GET", "/jobs/j1", 200, &flink_job(&[("v1", 4, 128)])),
        Route::new(
            "GET",
            "/jobs/j1/resource-requirements",
            200,
            &requirements(2),
        )
        .times(1),
        Route::new(
            "GET",
            "/jobs/j1/resource-requirements",
            200,
            &requirements(4),
        ),
        Route::new("PUT", "/jobs/j1/resource-requirements", 200, "{}"),
        // Two slots per TaskManager: 2 before the rescale, 6 after (one to spare).
        Route::new("GET", "/overview", 200, &overview(1, 2, 0)).times(1),
        Route::new("GET", "/overview", 200, &overview(3, 6, 2)),
    ]))
    .await;
    let a = FlinkRescaleActuator::new(
        FlinkRest::new(&fake.url, TIMEOUT).unwrap(),
        JobSelector::Id("j1".into()),
        Some(Box::new(CommandPool {
            start: vec!["true".into()],
            stop: vec!["false".into()],
            dir: None,
        })),
    );
    let four = Target::job(4);
    let applied = a.apply(&four).await.unwrap();
    assert!(matches!(applied, ApplyOutcome::Applied(_)), "{applied:?}");
    assert_eq!(a.progress(&four).await.unwrap(), Progress::Done);
}

/// The savepoint path refuses, before stopping anything, a parallelism the cluster has no
/// slots for (the resubmitted job would wait with the job stopped); a vertex the program gave
/// its own parallelism (a sink at 1) does not make a job at its target look off it (it was
/// stopped and resubmitted again on every decision).
#[tokio::test]
async fn the_savepoint_path_checks_the_slots_and_ignores_pinned_vertices() {
    use daedalus_host::engine::flink::{Resubmit, SavepointRescaleActuator};
    use daedalus_tests::fake_http::Route;
    let fake = serve(Reply::Routes(vec![
        Route::new(
            "GET",
            "/jobs/j1",
            200,
            &flink_job(&[("src", 2, 128), ("sink", 1, 128)]),
        ),
        Route::new("GET", "/overview", 200, &overview(1, 4, 1)),
    ]))
    .await;
    let a = SavepointRescaleActuator::new(
        FlinkRest::new(&fake.url, TIMEOUT).unwrap(),
        JobSelector::Id("j1".into()),
        Resubmit {
            jar: "wc.jar".into(),
            args: Vec::new(),
            entry_class: None,
            savepoint_timeout: Duration::from_secs(5),
        },
    );
    match a.apply(&Target::job(4)).await.unwrap() {
        ApplyOutcome::Rejected(why) => assert!(why.contains("needs 4 slots"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        a.apply(&Target::job(2)).await.unwrap(),
        ApplyOutcome::AlreadyAtTarget
    );
    assert_eq!(a.progress(&Target::job(2)).await.unwrap(), Progress::Done);
    let posts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(posts.is_empty(), "nothing stopped: {posts:?}");
}
