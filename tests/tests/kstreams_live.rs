//! Kafka Streams for real: the word-count app (`jobs/kstreams-wordcount`) against the real
//! broker, its metrics through the JMX exporter and a real Prometheus, instances started and
//! stopped by the process-group actuator, and the live loop scaling it. Faults a real
//! Prometheus cannot be made to show (malformed answers) use the HTTP test double.

use daedalus_host::clock::Stopwatch;
use daedalus_host::engine::consumer_group::ConsumerGroup;
use daedalus_host::engine::kafka::{InputTopic, KafkaTopic};
use daedalus_host::engine::process_group::{GroupSpec, ProcessGroup};
use daedalus_host::engine::prometheus::{Prometheus, PrometheusCollector, Queries};
use daedalus_host::engine::{
    Actuator, ApplyOutcome, Collected, Collector, EngineError, Progress, Target,
};
use daedalus_host::live::guardrails::Guardrails;
use daedalus_host::live::{Cycle, JobLoop, JobSettings};
use daedalus_host::loadgen::{self, LoadgenOptions, LoadgenReport};
use daedalus_host::model::{Bounds, Observation};
use daedalus_host::policy::{PolicyLimits, PolicySlot, WasmPolicy};
use daedalus_host::sim::trace::Trace;
use daedalus_tests::fake_http::{Reply, closed_port, serve};
use daedalus_tests::services::{self, KAFKA};
use daedalus_tests::{engine, policy_path, workspace_root};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const PROM: &str = "http://127.0.0.1:9090";
const PARTITIONS: u32 = 4;
const TIMEOUT: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    daedalus_host::clock::unix_now_ms()
}

struct App {
    input: String,
    output: String,
    app_id: String,
    logs: tempfile::TempDir,
}

impl App {
    /// Fresh topics and application id, services up, the app built.
    fn new(prefix: &str) -> App {
        services::up(&["kafka", "prometheus"]);
        services::sh("kstreams.sh", &["build"]);
        let id = now_ms();
        let app = App {
            input: format!("{prefix}-in-{id}"),
            output: format!("{prefix}-out-{id}"),
            app_id: format!("{prefix}-{id}"),
            logs: tempfile::tempdir().unwrap(),
        };
        services::topic(&app.input, PARTITIONS);
        services::topic(&app.output, PARTITIONS);
        app
    }

    fn collector(&self) -> PrometheusCollector {
        PrometheusCollector::new(
            Prometheus::new(PROM, TIMEOUT).unwrap(),
            "kstreams",
            Queries::default(),
            PARTITIONS,
        )
        .with_topic(&self.input)
        .with_group(self.consumer_group())
    }

    /// The app's consumer group (its `application.id`).
    fn consumer_group(&self) -> ConsumerGroup {
        ConsumerGroup::new(KAFKA, &self.app_id, TIMEOUT)
    }

    /// The collector of a live loop over `g`: the instances it should run, and the arrival
    /// rate from the input topic.
    fn watching(&self, g: &ProcessGroup) -> PrometheusCollector {
        self.collector()
            .with_expected(g.desired())
            .with_input(InputTopic::new(KAFKA, &self.input, TIMEOUT))
    }

    fn group(&self, cost_us: u32) -> ProcessGroup {
        let script = workspace_root().join("tests/services/kstreams.sh");
        let command = [
            "bash",
            script.to_str().unwrap(),
            "instance",
            "{index}",
            "{port}",
            "--bootstrap",
            KAFKA,
            "--input",
            &self.input,
            "--output",
            &self.output,
            "--app-id",
            &self.app_id,
            "--cost-us",
            &cost_us.to_string(),
        ];
        ProcessGroup::new(GroupSpec {
            command: command.iter().map(|s| s.to_string()).collect(),
            dir: workspace_root(),
            base_port: 9400,
            log_dir: self.logs.path().to_path_buf(),
            stop_timeout: Duration::from_secs(30),
            max_instances: PARTITIONS,
        })
        .with_readiness(self.collector())
    }

    fn load(&self, rates: Vec<u64>) -> tokio::task::JoinHandle<LoadgenReport> {
        let input = self.input.clone();
        tokio::spawn(async move {
            let topic = KafkaTopic::connect(KAFKA, &input, TIMEOUT).await.unwrap();
            let trace = Trace {
                name: "kstreams-test".into(),
                rates,
            };
            loadgen::run(&topic, &trace, &LoadgenOptions::default(), &mut |_, _| {})
                .await
                .unwrap()
        })
    }
}

/// Collects until ready at `n` instances, or panics with the last answer and the logs.
async fn ready_at(c: &PrometheusCollector, n: u32, within: Duration, app: &App) -> Observation {
    let clock = Stopwatch::start();
    let mut last = String::new();
    while clock.elapsed() < within {
        // Ready, and every instance has a CPU sample (its rate needs two scrapes).
        match c.collect(now_ms()).await {
            Ok(Collected::Ready(o))
                if o.parallelism == n && o.workers.iter().all(|w| w.cpu_utilization.is_some()) =>
            {
                return o;
            }
            other => last = format!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let logs: String = (0..PARTITIONS)
        .filter_map(|i| {
            std::fs::read_to_string(app.logs.path().join(format!("instance-{i}.log"))).ok()
        })
        .map(|l| l.lines().rev().take(15).collect::<Vec<_>>().join("\n"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    panic!("not ready at {n} instances within {within:?}; last: {last}\nlogs:\n{logs}");
}

/// Applies `n` and waits for the actuator to report the group settled; returns the seconds.
async fn rescale(g: &ProcessGroup, n: u32, within: Duration) -> f64 {
    let clock = Stopwatch::start();
    let t = Target::job(n);
    assert!(matches!(
        g.apply(&t).await.unwrap(),
        ApplyOutcome::Applied(_)
    ));
    let mut last = String::new();
    while clock.elapsed() < within {
        match g.progress(&t).await {
            Ok(Progress::Done) => return clock.elapsed().as_secs_f64(),
            other => last = format!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the group did not settle at {n} within {within:?}: {last}");
}

/// How long from a step in the load until the instances' records reach the policy: the
/// group's committed offsets (every commit interval), apportioned by the input records each
/// instance's consumers took (a 10 s rate through the JMX exporter and Prometheus), and the
/// collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_delay_from_the_app_through_prometheus_to_the_policy() {
    let _lock = services::exclusive().await;
    let app = App::new("ks-delay");
    let g = app.group(100);
    let c = app.watching(&g);
    g.scale_to(1).await.unwrap();
    let _ = ready_at(&c, 1, Duration::from_secs(120), &app).await;
    let load = app.load(vec![400; 60]);
    let seen = services::until_workers_reach(&c, 200.0, Duration::from_secs(55)).await;
    let _ = load.await.unwrap();
    g.shutdown().await;
    let (delay, _) = seen.unwrap_or_else(|last| {
        panic!("the instance's records never reached 200/s through Prometheus; last: {last}")
    });
    eprintln!(
        "metric delay, load start -> half the rate through Prometheus: {:.1} s",
        delay.as_secs_f64()
    );
}

/// The app against the real broker; its per-instance metrics reach the collector through the
/// JMX exporter and Prometheus; the group goes 1 -> 3 -> 2 instances, the consumer group's
/// assignment follows, a killed instance is restarted, and every word sent is counted exactly
/// once (exactly-once v2: one committed output per input).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_scale_1_3_2_and_recover_without_losing_a_record() {
    let _lock = services::exclusive().await;
    let app = App::new("ks");
    let g = app.group(100);
    let c = app.watching(&g);
    g.scale_to(1).await.unwrap();
    let load = app.load(vec![200; 180]);
    let o = ready_at(&c, 1, Duration::from_secs(120), &app).await;
    assert_eq!(o.workers.len(), 1);
    assert!(
        o.workers[0].cpu_utilization.is_some_and(|c| c > 0.0),
        "{o:?}"
    );
    let up = rescale(&g, 3, Duration::from_secs(120)).await;
    let o = ready_at(&c, 3, Duration::from_secs(60), &app).await;
    assert_eq!(o.workers.len(), 3);
    // The broker's view: three members, each owning a partition, all four owned. (The
    // consumers' per-partition series in Prometheus can trail it: a partition's series
    // appears only after its first fetch.)
    let group = app.consumer_group().describe().await.unwrap();
    assert!(group.is_stable(), "{group:?}");
    assert_eq!(group.members.len(), 3, "{group:?}");
    assert_eq!(
        group.assigned(&app.input).len() as u32,
        PARTITIONS,
        "{group:?}"
    );
    assert_eq!(group.busy_members(&app.input), 3, "{group:?}");
    // Each instance's share of the throughput is its share of the input's partitions (the
    // load spreads evenly over them, so one instance owns two of the four): the collector
    // splits the group's committed rate by the input records each instance's consumers took.
    // Who owns what is the broker's answer; a static member's `group.instance.id` names its
    // instance (`instance-INDEX-THREAD`: Kafka Streams appends the thread; metrics on port
    // 9400 + INDEX). The rate window first passes the rebalance and the catch-up after it.
    // (`process-rate`, which apportioned before, read 0.53 / 0.29 / 0.18 for 2 / 1 / 1.)
    tokio::time::sleep(Duration::from_secs(20)).await;
    let o = ready_at(&c, 3, Duration::from_secs(30), &app).await;
    let group = app.consumer_group().describe().await.unwrap();
    let owned: BTreeMap<String, usize> = group
        .members
        .iter()
        .map(|m| {
            let index: u16 = m
                .instance_id
                .as_deref()
                .and_then(|i| i.strip_prefix("instance-")?.split('-').next()?.parse().ok())
                .unwrap_or_else(|| panic!("not a static member of the app: {m:?}"));
            let parts = m.partitions.get(&app.input).map_or(0, Vec::len);
            (format!("127.0.0.1:{}", 9400 + index), parts)
        })
        .collect();
    let total: f64 = o
        .workers
        .iter()
        .map(|w| w.throughput_records_per_sec.unwrap_or(f64::NAN))
        .sum();
    assert!(total > 0.0, "{o:?}");
    let mut shares = Vec::new();
    for w in &o.workers {
        let share = w.throughput_records_per_sec.unwrap_or(f64::NAN) / total;
        shares.push(format!("{share:.2}"));
        let expected = owned.get(&w.worker_id).copied().unwrap_or(0) as f64 / f64::from(PARTITIONS);
        assert!(
            (share - expected).abs() < 0.05,
            "{} took {share:.2} of the throughput and owns {expected:.2} of the partitions\nworkers: {:?}\ngroup: {group:?}",
            w.worker_id,
            o.workers
        );
    }
    eprintln!(
        "kstreams: at 3 instances, throughput shares {} for partition shares {:?}",
        shares.join(" / "),
        o.workers
            .iter()
            .map(|w| owned.get(&w.worker_id).copied().unwrap_or(0))
            .collect::<Vec<_>>()
    );
    let down = rescale(&g, 2, Duration::from_secs(120)).await;
    let o = ready_at(&c, 2, Duration::from_secs(60), &app).await;
    assert!(
        o.throughput_records_per_sec.is_some_and(|t| t > 0.0),
        "{o:?}"
    );
    // A crashed instance is restarted by the group and the group settles again.
    let victim = g.pids().await[1].unwrap();
    std::process::Command::new("pkill")
        .args(["-KILL", "-P", &victim.to_string()])
        .status()
        .unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let clock = Stopwatch::start();
    loop {
        if let Ok(Progress::Done) = g.progress(&Target::job(2)).await
            && g.restarts() >= 1
        {
            break;
        }
        assert!(clock.elapsed() < Duration::from_secs(120), "no recovery");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let recovered = clock.elapsed().as_secs_f64();
    let report = load.await.unwrap();
    // The lag drains: the group's committed offsets reach the topic's end.
    let clock = Stopwatch::start();
    loop {
        if let Ok(Collected::Ready(o)) = c.collect(now_ms()).await
            && o.lag_records == Some(0.0)
        {
            break;
        }
        assert!(
            clock.elapsed() < Duration::from_secs(120),
            "the lag never drained"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // The input is drained; the words still in the repartition topic take a moment more.
    let clock = Stopwatch::start();
    let mut out = services::count(&app.output);
    while out < report.sent && clock.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        out = services::count(&app.output);
    }
    g.shutdown().await;
    assert_eq!(out, report.sent, "words sent vs counts committed");
    eprintln!(
        "kstreams: 1->3 settled in {up:.1} s, 3->2 in {down:.1} s, a killed instance recovered in {recovered:.1} s; {out} records"
    );
}

/// Prometheus down, answering an error, or answering something else: typed errors, and the
/// loop holds the job.
#[tokio::test]
async fn prometheus_faults_are_typed_errors() {
    let c = |url: &str| {
        PrometheusCollector::new(
            Prometheus::new(url, Duration::from_millis(800)).unwrap(),
            "kstreams",
            Queries::default(),
            PARTITIONS,
        )
    };
    let down = format!("http://127.0.0.1:{}", closed_port());
    assert!(matches!(
        c(&down).collect(0).await.unwrap_err(),
        EngineError::Unreachable { .. }
    ));
    let garbage = serve(Reply::Respond(200, "<html>not prometheus</html>".into())).await;
    assert!(matches!(
        c(&garbage.url).collect(0).await.unwrap_err(),
        EngineError::Malformed { .. }
    ));
    let error = serve(Reply::Respond(
        400,
        r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#.into(),
    ))
    .await;
    let e = c(&error.url).collect(0).await.unwrap_err();
    assert!(e.to_string().contains("bad_data"), "{e}");
    let matrix = serve(Reply::Respond(
        200,
        r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#.into(),
    ))
    .await;
    assert!(matches!(
        c(&matrix.url).collect(0).await.unwrap_err(),
        EngineError::Malformed { .. }
    ));
    // Series that vanish are missing data: an empty vector means no instance is up.
    let empty = serve(Reply::Respond(
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into(),
    ))
    .await;
    assert!(matches!(
        c(&empty.url).collect(0).await.unwrap(),
        Collected::NotReady { .. }
    ));
    // The loop holds on these errors.
    let group = ProcessGroup::new(GroupSpec {
        command: vec!["true".into()],
        dir: std::env::temp_dir(),
        base_port: 9400,
        log_dir: std::env::temp_dir().join("daedalus-ks-faults"),
        stop_timeout: Duration::from_secs(1),
        max_instances: PARTITIONS,
    });
    let mut l = job_loop(Box::new(c(&down)), Box::new(group), "hpa", &[]);
    for t in 0..3 {
        assert!(matches!(l.cycle(t * 1000).await, Cycle::EngineError(_)));
    }
    assert_eq!(l.rescales(), 0);
}

/// An instance that crashes at start is restarted over and over and the rescale never
/// reports done (the loop gives up on it after its timeout).
#[tokio::test]
async fn an_instance_crashing_at_start_is_restarted_and_never_settles() {
    let dir = tempfile::tempdir().unwrap();
    let g = ProcessGroup::new(GroupSpec {
        command: vec!["sh".into(), "-c".into(), "echo boom; exit 3".into()],
        dir: dir.path().to_path_buf(),
        base_port: 9400,
        log_dir: dir.path().join("logs"),
        stop_timeout: Duration::from_secs(1),
        max_instances: PARTITIONS,
    })
    .with_readiness(PrometheusCollector::new(
        Prometheus::new(&format!("http://127.0.0.1:{}", closed_port()), TIMEOUT).unwrap(),
        "kstreams",
        Queries::default(),
        PARTITIONS,
    ));
    g.apply(&Target::job(1)).await.unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!matches!(
            g.progress(&Target::job(1)).await,
            Ok(Progress::Done)
        ));
    }
    assert!(g.restarts() >= 2, "restarts: {}", g.restarts());
    let log = std::fs::read_to_string(dir.path().join("logs/instance-0.log")).unwrap();
    assert!(log.matches("boom").count() >= 3);
    g.shutdown().await;
}

fn job_loop(
    collector: Box<dyn Collector>,
    actuator: Box<dyn Actuator>,
    policy: &str,
    params: &[(&str, &str)],
) -> JobLoop {
    let limits = PolicyLimits::default();
    let loaded = engine()
        .load_file(&policy_path(policy), &limits, None)
        .unwrap();
    JobLoop::new(
        JobSettings {
            name: "kstreams".into(),
            bounds: Bounds {
                min_parallelism: 1,
                max_parallelism: PARTITIONS,
            },
            history: Duration::from_secs(300),
            rescale_timeout: Duration::from_secs(120),
            latency_objective: None,
            dry_run: false,
            params: params
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            guardrails: Guardrails {
                partition_cap: Some(PARTITIONS),
                ..Guardrails::default()
            },
        },
        collector,
        actuator,
        Arc::new(WasmPolicy::new(Arc::new(PolicySlot::new(
            engine(),
            loaded,
            limits,
        )))),
    )
}

/// The live loop scales the app by instances while `loadgen` replays a stepped load: the
/// instances follow the load up and back down, and the lag drains.
async fn live_loop(policy: &str, params: &[(&str, &str)]) {
    let _lock = services::exclusive().await;
    let app = App::new(&format!("ks-{policy}"));
    // 1500 us of CPU per word: one instance takes about 600 words/s.
    let g = app.group(1500);
    let c = app.watching(&g);
    g.scale_to(1).await.unwrap();
    ready_at(&c, 1, Duration::from_secs(120), &app).await;
    let g = Arc::new(g);
    let mut l = job_loop(
        Box::new(c),
        Box::new(ArcActuator(g.clone())),
        policy,
        params,
    );
    let mut rates = vec![150u64; 40];
    rates.extend(vec![1300; 120]);
    rates.extend(vec![150; 140]);
    let load = app.load(rates);
    let clock = Stopwatch::start();
    let mut peak = 1;
    let mut down_after_peak = false;
    let mut log = Vec::new();
    // At least 330 s (the load's 300 s, then the lag drains); on a loaded machine the backlog
    // built during the first rebalance drains later and the policy sees idle CPU only then, so
    // up to 90 s more for the scale-in, and up to 150 s more for the lag to drain (the
    // committed lag is the real one: a backlog left on one instance's partitions drains at
    // that instance's pace).
    let draining = |l: &JobLoop| {
        l.latest()
            .and_then(|o| o.lag_records)
            .is_none_or(|lag| lag >= 2000.0)
    };
    while clock.elapsed() < Duration::from_secs(330)
        || (!down_after_peak && clock.elapsed() < Duration::from_secs(420))
        || (draining(&l) && clock.elapsed() < Duration::from_secs(480))
    {
        let cycle = l.cycle(now_ms()).await;
        if let Cycle::Decided {
            current, target, ..
        } = &cycle
        {
            peak = peak.max(*target);
            if clock.elapsed() > Duration::from_secs(170) && *target < peak {
                down_after_peak = true;
            }
            log.push(format!(
                "{:.0}s {current}->{target}",
                clock.elapsed().as_secs_f64()
            ));
        } else {
            // Why the loop did not decide, once per change of reason.
            let why = format!("{cycle:?}");
            if log.last().is_none_or(|l: &String| !l.ends_with(&why)) {
                log.push(format!("{:.0}s {why}", clock.elapsed().as_secs_f64()));
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let report = load.await.unwrap();
    let last = l.latest().cloned();
    g.shutdown().await;
    assert!(peak >= 2, "{policy} never scaled out: {log:?}");
    assert!(down_after_peak, "{policy} never scaled back in: {log:?}");
    assert!(
        last.as_ref()
            .and_then(|o| o.lag_records)
            .is_some_and(|lag| lag < 2000.0),
        "{policy}: lag did not drain: {last:?}"
    );
    assert!(report.sent > 100_000);
    eprintln!("{policy}: {log:?}");
}

/// Lets the loop own a shared group (the test stops it afterwards).
struct ArcActuator(Arc<ProcessGroup>);

#[async_trait::async_trait]
impl Actuator for ArcActuator {
    async fn apply(&self, t: &Target) -> Result<ApplyOutcome, EngineError> {
        self.0.apply(t).await
    }
    async fn progress(&self, t: &Target) -> Result<Progress, EngineError> {
        self.0.progress(t).await
    }
    async fn recover(&self) -> Result<Option<String>, EngineError> {
        self.0.recover().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_loop_scales_kafka_streams_with_hpa() {
    live_loop(
        "hpa",
        &[
            ("target_cpu_utilization", "0.6"),
            ("scale_down_stabilization_secs", "30"),
            ("sync_period_secs", "5"),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_loop_scales_kafka_streams_with_daedalus() {
    live_loop(
        "daedalus",
        &[
            ("decision_interval_secs", "10"),
            ("cooldown_secs", "20"),
            ("warm_up_secs", "15"),
            ("keep_window_secs", "30"),
            ("target_recovery_secs", "60"),
        ],
    )
    .await;
}

/// `calibrate` on the real app, as on Flink: it saturates one instance, rescales to two and
/// back while the group rebalances, and fits a simulator profile from what it measured. The
/// lag it judges saturation by is the group's committed lag, which grows under the backlog
/// (the consumers' own `records-lag` goes stale there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calibrate_measures_the_app_and_fits_a_kafka_streams_profile() {
    use daedalus_host::live::calibrate::calibrate;
    use daedalus_host::sim::profile::{Engine, JobProfile};
    let _lock = services::exclusive().await;
    let app = App::new("ks-calibrate");
    // 1500 us of CPU per word: one instance takes about 600 words/s, so 3000/s saturates two.
    let g = app.group(1500);
    let c = app.watching(&g);
    g.scale_to(1).await.unwrap();
    ready_at(&c, 1, Duration::from_secs(120), &app).await;
    let topic = KafkaTopic::connect(KAFKA, &app.input, TIMEOUT)
        .await
        .unwrap();
    let opts = daedalus_tests::calibration_options(Duration::from_secs(240));
    let cal = calibrate(&c, &g, topic, &opts, &mut |l| eprintln!("calibrate: {l}")).await;
    g.shutdown().await;
    let cal = cal.unwrap();
    eprintln!("calibration: {cal:?}");
    daedalus_tests::check_calibration(&cal);
    assert!(cal.saturated[&2], "3000/s must saturate two instances too");
    // The stopped instance, a static member, leaves the group as it closes: the scale-down
    // does not wait out its session (10 s in the app; a dynamic member stays that long and
    // this took 11.4 s).
    assert!(cal.downtime_down_s[0] < 9.0, "{cal:?}");
    let prof = cal
        .profile(
            &JobProfile::default_for(Engine::KafkaStreams),
            "kstreams-wordcount-local",
            PARTITIONS,
        )
        .unwrap();
    assert_eq!(prof.partitions, PARTITIONS);
    assert_eq!(prof.scale_up_downtime_s, Some(cal.downtime_up_s[0]));
    let text = toml::to_string(&prof).unwrap();
    assert_eq!(JobProfile::parse(&text, "calibrated").unwrap(), prof);
    eprintln!("calibrated profile:\n{text}");
}

/// A group nobody has joined, on the real broker: `Dead` with no members and no committed
/// offsets, so its lag is the whole topic.
#[tokio::test]
async fn a_group_nobody_joined_is_dead_with_nothing_committed() {
    services::up(&["kafka"]);
    let topic = format!("ks-nogroup-{}", now_ms());
    services::topic(&topic, PARTITIONS);
    let group = ConsumerGroup::new(KAFKA, &format!("{topic}-app"), TIMEOUT);
    let view = group.describe().await.unwrap();
    assert_eq!(view.state, "Dead", "{view:?}");
    assert!(view.members.is_empty() && !view.is_stable());
    let committed = group.committed(&topic, &[0, 1, 2, 3]).await.unwrap();
    assert!(committed.is_empty(), "{committed:?}");
    let t = KafkaTopic::connect(KAFKA, &topic, TIMEOUT).await.unwrap();
    t.produce(vec![b"a b".to_vec(); 10], 0).await.unwrap();
    let ends = t.end_offsets().await.unwrap();
    assert_eq!(
        daedalus_host::engine::consumer_group::lag(&ends, &committed, &BTreeMap::new()),
        10.0
    );
    // Nothing committed: counted from each partition's first offset still in the log.
    let starts = t.start_offsets().await.unwrap();
    assert_eq!(starts.values().sum::<i64>(), 0, "{starts:?}");
    assert_eq!(
        daedalus_host::engine::consumer_group::lag(&ends, &committed, &starts),
        10.0
    );
}

/// Partitions added to a job's input topic on the real broker are followed once the
/// partition list is read again, and the interval in which one first shows counts only the
/// partitions both samples hold: its records are not an arrival burst.
#[tokio::test]
async fn partitions_added_to_the_input_topic_are_followed_without_a_burst() {
    use daedalus_host::engine::kafka::advanced;
    services::up(&["kafka"]);
    let topic = format!("ks-grow-{}", now_ms());
    services::topic(&topic, 1);
    let input = InputTopic::new(KAFKA, &topic, TIMEOUT).with_refresh(Duration::from_millis(1));
    let before = input.end_offsets().await.unwrap();
    assert_eq!(before.keys().copied().collect::<Vec<_>>(), [0]);
    services::grow_topic(&topic, 2);
    // A writer that sees both partitions (the broker's metadata may lag the alter a moment).
    let mut writer = KafkaTopic::connect(KAFKA, &topic, TIMEOUT).await.unwrap();
    for _ in 0..50 {
        if writer.end_offsets().await.unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        writer = KafkaTopic::connect(KAFKA, &topic, TIMEOUT).await.unwrap();
    }
    // 30 records spread over both: 15 on the new partition 1, 15 on partition 0.
    writer.produce(vec![b"x".to_vec(); 30], 1).await.unwrap();
    let mut now = input.end_offsets().await.unwrap();
    for _ in 0..50 {
        if now.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = input.end_offsets().await.unwrap();
    }
    assert_eq!(now.get(&1), Some(&15), "{now:?}");
    assert_eq!(now.get(&0), Some(&15), "{now:?}");
    // The new partition's first 15 records are not counted as arrivals in this interval.
    assert_eq!(advanced(&before, &now), Some(15));
    writer.produce(vec![b"x".to_vec(); 4], 0).await.unwrap();
    let later = input.end_offsets().await.unwrap();
    assert_eq!(advanced(&now, &later), Some(4), "{later:?}");
}
