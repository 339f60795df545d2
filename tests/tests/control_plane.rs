//! The control plane on simulated jobs (the simulator's job model behind the live connector
//! traits: no engine needed), with the real policy components, the real SQLite store and the
//! real HTTP API: many jobs in one host, guardrails in the loop, hot swap by file and API
//! with rollback, shadows and promotion, pause, authentication, and crash recovery of the
//! host process.

use daedalus_host::clock::JobClock;
use daedalus_host::live::config::RunConfig;
use daedalus_host::live::shared::JobShared;
use daedalus_host::live::{BuiltJob, HostParts, api, build_job, run_job};
use daedalus_host::store::Store;
use daedalus_tests::{engine, guest_path, policy_path, workspace_root};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A simulated job's TOML.
fn sim_job(name: &str, policy: &Path, extra: &str, sim_extra: &str) -> String {
    format!(
        r#"
[[jobs]]
name = "{name}"
policy = "{}"
max_parallelism = 12
{extra}
[jobs.simulated]
trace = "step:low=20000,high=150000,at=300,duration=7200"
{sim_extra}
"#,
        policy.display()
    )
}

fn config(dir: &Path, head: &str, jobs: &[String]) -> RunConfig {
    let text = format!("{head}\n{}", jobs.join("\n"));
    let path = dir.join("daedalus.toml");
    std::fs::write(&path, text).unwrap();
    RunConfig::load(&path).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The config head for a store in `dir`.
fn store_in(dir: &Path) -> String {
    format!("[store]\npath = \"{}\"", dir.join("d.db").display())
}

/// Simulated jobs on DS2 at 100x time, unwatched, one per name.
fn fast_ds2_jobs(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            sim_job(
                n,
                &policy_path("ds2"),
                "watch_policy = false",
                "speedup = 100.0",
            )
        })
        .collect()
}

/// What each built job shares with the API, by name.
fn shared_of(built: &[BuiltJob]) -> BTreeMap<String, Arc<JobShared>> {
    built
        .iter()
        .map(|b| (b.job.shared().status().name.clone(), b.job.shared()))
        .collect()
}

async fn build_all(cfg: &RunConfig, parts: &HostParts) -> Vec<BuiltJob> {
    let mut out = Vec::new();
    for j in &cfg.jobs {
        out.push(
            build_job(cfg, j, parts, false)
                .await
                .unwrap_or_else(|e| panic!("{e:#}")),
        );
    }
    out
}

/// Twelve simulated jobs in one host under tokio's paused clock (90 simulated minutes in
/// moments): one job's policy panics on every call, the others scale; every job keeps its
/// own cadence and the broken one holds without touching the rest.
#[tokio::test(start_paused = true)]
async fn many_simulated_jobs_share_a_host_in_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let mut jobs: Vec<String> = (0..11)
        .map(|i| {
            sim_job(
                &format!("job-{i}"),
                &policy_path(if i % 2 == 0 { "ds2" } else { "hpa" }),
                if i % 2 == 0 {
                    "arm = \"A\""
                } else {
                    "arm = \"B\""
                },
                &format!("seed = {i}"),
            )
        })
        .collect();
    jobs.push(sim_job(
        "broken",
        &guest_path("hostile"),
        "params = { mode = \"panic\" }",
        "",
    ));
    let store_path = dir.path().join("d.db");
    let cfg = config(
        dir.path(),
        &format!("[store]\npath = \"{}\"", store_path.display()),
        &jobs,
    );
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let built = build_all(&cfg, &parts).await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = built
        .into_iter()
        .map(|b| tokio::spawn(run_job(b, Duration::from_secs(10), None, rx.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(90 * 60)).await;
    tx.send(true).unwrap();
    let mut loops = Vec::new();
    for t in tasks {
        loops.push(t.await.expect("no job task panics"));
    }
    let store = parts.store.clone().unwrap();
    for l in &loops {
        let name = &l.settings().name;
        let decisions = store.decisions(name, Some("active"), 100_000).unwrap();
        // Paused time advances while policies run on blocking threads, so the count of cycles
        // is not exact; each job must still have kept its own cadence.
        assert!(
            decisions.len() >= 100,
            "{name}: only {} decisions",
            decisions.len()
        );
        let mut at: Vec<u64> = decisions.iter().map(|d| d.at_ms).collect();
        at.reverse();
        assert!(
            at.windows(2).all(|w| w[1] >= w[0] + 10_000),
            "{name}: cycles overlap or run faster than the tick"
        );
        if name == "broken" {
            assert!(decisions.iter().all(|d| d.error.is_some() && d.target == 1));
            assert_eq!(l.rescales(), 0);
        } else {
            assert!(decisions.iter().all(|d| d.error.is_none()), "{name}");
            assert!(
                l.rescales() >= 1,
                "{name} never scaled out under a 7.5x step"
            );
            let last = l.latest().expect("observed").parallelism;
            assert!(last > 1, "{name} ends at parallelism {last}");
        }
    }
    let metrics = parts.metrics.encode();
    assert!(metrics.contains("daedalus_errors_total{job=\"broken\",kind=\"policy\"}"));
    // Split test: DS2 jobs in arm A, HPA jobs in arm B, scored from the live data.
    let arms =
        daedalus_host::live::replay::arm_report(&store, &cfg.arms(), |_| 0, 10_000.0).unwrap();
    assert_eq!(arms.len(), 2);
    assert_eq!((arms[0].arm.as_str(), arms[0].jobs.len()), ("A", 6));
    assert_eq!((arms[1].arm.as_str(), arms[1].jobs.len()), ("B", 5));
    for a in &arms {
        assert!(
            a.observed_s > 5.0 * 3600.0 * a.jobs.len() as f64 / 6.0,
            "{a:?}"
        );
        assert!(
            a.mean_parallelism > 1.0 && a.rescales >= a.jobs.len() as u32,
            "{a:?}"
        );
        assert_eq!(a.policy_errors, 0);
    }
}

/// Jobs starting on the same component load it once; once the host has started, what keeps a
/// component loaded is the jobs running it, not the start-up: a component every job has left
/// is freed.
#[tokio::test]
async fn jobs_share_their_start_up_load_and_the_host_keeps_no_component_alive() {
    let dir = tempfile::tempdir().unwrap();
    let jobs: Vec<String> = (0..3)
        .map(|i| sim_job(&format!("job-{i}"), &policy_path("ds2"), "", ""))
        .collect();
    let cfg = config(dir.path(), "", &jobs);
    // Its own engine: the suite's shared one counts every other test's components too.
    let engine =
        daedalus_host::policy::PolicyEngine::new(daedalus_host::policy::EngineOptions::default())
            .unwrap();
    let parts = HostParts::new(&cfg, engine.clone()).unwrap();
    let built = build_all(&cfg, &parts).await;
    assert_eq!(engine.held_components(), 1);
    let digest = built[0].job.policy_digest();
    assert!(built.iter().all(|b| b.job.policy_digest() == digest));
    let held = |n: usize| format!("\ndaedalus_policy_components_held {n}\n");
    assert!(parts.metrics.encode().contains(&held(1)));
    parts.started();
    assert_eq!(engine.held_components(), 1, "the jobs still run it");
    drop(built);
    assert_eq!(
        engine.held_components(),
        0,
        "nothing holds it once its jobs are gone"
    );
    let text = parts.metrics.encode();
    assert!(text.contains(&held(0)), "read at each scrape: {text}");
}

/// Guardrails act in the loop: a policy asking for 12 at once gets +2 per rescale, aligned to
/// divisors of 12, and every clamp is recorded with the decision.
#[tokio::test(start_paused = true)]
async fn guardrails_clamp_a_live_job_and_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let job = sim_job(
        "clamped",
        &guest_path("hostile"),
        "params = { mode = \"target\", parallelism = \"12\" }\n\
         [jobs.guardrails]\nmax_step_up = 2\nalign_to_divisors_of = 12\nmax_rescales_per_day = 3",
        "",
    );
    let cfg = config(dir.path(), &store_in(dir.path()), &[job]);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let built = build_all(&cfg, &parts).await.pop().unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_job(built, Duration::from_secs(10), None, rx));
    tokio::time::sleep(Duration::from_secs(3600)).await;
    tx.send(true).unwrap();
    let l = task.await.unwrap();
    let store = parts.store.clone().unwrap();
    let rescales = store.rescales("clamped").unwrap();
    let steps: Vec<(u32, u32)> = rescales.iter().map(|r| (r.from, r.to)).collect();
    // 1 -> 3 (+2, a divisor of 12), 3 -> 4 (5 is not a divisor; 4 is the aligned value
    // within +2), 4 -> 6; then the daily budget of 3 stops it.
    assert_eq!(steps, vec![(1, 3), (3, 4), (4, 6)]);
    assert_eq!(l.rescales(), 3);
    let decisions = store.decisions("clamped", Some("active"), 10_000).unwrap();
    let clamps: std::collections::BTreeSet<String> = decisions
        .iter()
        .flat_map(|d| d.clamped_by.clone())
        .collect();
    for c in ["max-step-up", "alignment", "rescale-budget"] {
        assert!(clamps.contains(c), "{c} missing from {clamps:?}");
    }
}

struct Api {
    url: String,
    client: reqwest::Client,
    token: &'static str,
}

impl Api {
    /// Sends `req`; the status and the JSON answer (null if it is not JSON).
    async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        Self::send(self.client.get(format!("{}{path}", self.url))).await
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.client.post(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        Self::send(req).await
    }

    /// POSTs `body` as `content_type`, with the token.
    async fn upload(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let req = self.client.post(format!("{}{path}", self.url));
        Self::send(
            req.bearer_auth(self.token)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }
}

/// Serves the API over `jobs` (arms as given, the store and metrics of `parts`, a token) on a
/// free loopback port until `stop`; the client, and the server's task.
async fn serve_api(
    jobs: BTreeMap<String, Arc<JobShared>>,
    arms: BTreeMap<String, String>,
    parts: &HostParts,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (Api, tokio::task::JoinHandle<std::io::Result<()>>) {
    serve_api_within(jobs, arms, parts, stop, Duration::from_secs(20)).await
}

/// [`serve_api`] with this request timeout (how long a swap waits for a job's next tick).
async fn serve_api_within(
    jobs: BTreeMap<String, Arc<JobShared>>,
    arms: BTreeMap<String, String>,
    parts: &HostParts,
    stop: tokio::sync::watch::Receiver<bool>,
    request_timeout: Duration,
) -> (Api, tokio::task::JoinHandle<std::io::Result<()>>) {
    let token = "a-test-token-that-is-long";
    let state = api::ApiState {
        arms,
        jobs: Arc::new(jobs),
        store: parts.store.clone(),
        metrics: parts.metrics.clone(),
        token: Some(token.into()),
        public_read: true,
        request_timeout,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(api::serve(listener, state, stop));
    let client =
        daedalus_host::engine::tls::http_client(&Default::default(), Duration::from_secs(30))
            .unwrap();
    (Api { url, client, token }, server)
}

async fn wait_for(mut check: impl AsyncFnMut() -> bool, what: &str) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The API on a live simulated job (100x time): reads without a token, refuses mutations
/// without the right one, refuses a bad swap and keeps the policy, swaps with new params,
/// rolls back a policy that fails on live input, promotes a shadow, pauses and resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_swaps_rolls_back_promotes_and_pauses_a_live_job() {
    let dir = tempfile::tempdir().unwrap();
    let job = sim_job(
        "live",
        &policy_path("ds2"),
        &format!(
            "rollback_after = 3\nwatch_policy = false\n[[jobs.shadow]]\nname = \"hpa\"\npolicy = \"{}\"",
            policy_path("hpa").display()
        ),
        "speedup = 100.0",
    );
    let cfg = config(dir.path(), &store_in(dir.path()), &[job]);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let built = build_all(&cfg, &parts).await.pop().unwrap();
    let shared: Arc<JobShared> = built.job.shared();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (api, server) = serve_api(
        BTreeMap::from([("live".to_string(), shared.clone())]),
        BTreeMap::from([("live".to_string(), "a".to_string())]),
        &parts,
        rx.clone(),
    )
    .await;
    let task = tokio::spawn(run_job(built, Duration::from_secs(10), None, rx));
    wait_for(
        async || shared.status().policy.name == "ds2",
        "the first decision",
    )
    .await;

    let (s, body) = api.get("/health").await;
    assert_eq!((s, body["status"].as_str()), (200, Some("ok")));
    let (s, body) = api.get("/jobs").await;
    assert_eq!(s, 200);
    assert_eq!(body[0]["shadows"][0]["name"], "hpa");
    assert_eq!(api.get("/jobs/nope").await.0, 404);
    assert_eq!(api.get("/no/such/endpoint").await.0, 404);

    // The split test scores the one arm from the store; a bad query is a 400 that names it.
    let (s, body) = api.get("/arms?since_hours=1&lag_threshold=500").await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body[0]["arm"], "a", "{body}");
    assert_eq!(body[0]["jobs"][0], "live", "{body}");
    assert!(body[0]["observed_s"].as_f64().unwrap() >= 0.0, "{body}");
    for (query, names) in [
        ("since_hours=0", "since_hours"),
        ("since_hours=-2", "since_hours"),
        ("lag_threshold=NaN", "lag_threshold"),
        ("lag_threshold=-1", "lag_threshold"),
        ("lag_threshold=lots", "lag_threshold"),
        ("since=3", "since"),
    ] {
        let (s, body) = api.get(&format!("/arms?{query}")).await;
        assert_eq!(s, 400, "{query}: {body}");
        assert!(body.to_string().contains(names), "{query}: {body}");
    }
    let (s, body) = api.get("/jobs/live/decisions?limit=-1").await;
    assert_eq!(s, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    let (s, _) = api.post("/jobs/live/pause", None, None).await;
    assert_eq!(s, 401);
    let (s, _) = api.post("/jobs/live/pause", Some("wrong"), None).await;
    assert_eq!(s, 401);

    // Pause: decisions go on, nothing is applied.
    let (s, _) = api.post("/jobs/live/pause", Some(api.token), None).await;
    assert_eq!(s, 200);
    assert!(shared.status().paused);
    let (s, _) = api.post("/jobs/live/resume", Some(api.token), None).await;
    assert_eq!(s, 200);

    // Malformed requests get a 4xx and change nothing.
    let (s, body) = api
        .post("/jobs/live/policy", Some(api.token), Some("{not json"))
        .await;
    assert_eq!(s, 400, "{body}");
    let (s, _) = api
        .post(
            "/jobs/live/policy",
            Some(api.token),
            Some(r#"{"path": "/no/such/file.wasm"}"#),
        )
        .await;
    assert_eq!(s, 400);
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a component").unwrap();
    let (s, body) = api
        .post(
            "/jobs/live/policy",
            Some(api.token),
            Some(&format!(r#"{{"path": "{}"}}"#, junk.display())),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unchanged"),
        "{body}"
    );
    assert_eq!(shared.status().policy.name, "ds2");

    // A swap with new params that passes validation but fails on live input: rolled back
    // after 3 failures in a row, with its params and the old state.
    let (s, body) = api
        .post(
            "/jobs/live/policy",
            Some(api.token),
            Some(&format!(
                r#"{{"path": "{}", "params": {{"mode": "fail-after", "calls": "1"}}}}"#,
                guest_path("hostile").display()
            )),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let store: Arc<Store> = parts.store.clone().unwrap();
    wait_for(
        async || {
            store
                .policy_events("live")
                .unwrap()
                .iter()
                .any(|e| e.kind == "rollback")
        },
        "the rollback",
    )
    .await;
    wait_for(
        async || {
            let st = shared.status();
            st.policy.name == "ds2"
                && st
                    .recent_decisions
                    .front()
                    .is_some_and(|d| d.error.is_none())
        },
        "ds2 deciding again after the rollback",
    )
    .await;

    // Promote the shadow.
    let (s, body) = api
        .post(
            "/jobs/live/promote",
            Some(api.token),
            Some(r#"{"shadow": "nobody"}"#),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, body) = api
        .post(
            "/jobs/live/promote",
            Some(api.token),
            Some(r#"{"shadow": "hpa"}"#),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    wait_for(
        async || shared.status().policy.name == "hpa",
        "hpa to decide as the active policy",
    )
    .await;
    assert!(shared.status().shadows.is_empty());
    assert_eq!(
        shared.status().policy_set_by.as_deref(),
        Some("promote:hpa")
    );

    // Back to the configured policy and params.
    let (s, _) = api.post("/jobs/live/policy/reset", None, None).await;
    assert_eq!(s, 401);
    let (s, body) = api
        .post("/jobs/live/policy/reset", Some(api.token), None)
        .await;
    assert_eq!(s, 200, "{body}");
    wait_for(
        async || {
            let st = shared.status();
            st.policy.name == "ds2" && st.policy_set_by.is_none()
        },
        "ds2 to decide again after the reset",
    )
    .await;
    assert!(store.policy_override("live").unwrap().is_none());
    let kinds: Vec<String> = store
        .policy_events("live")
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec!["swap-refused", "swap", "rollback", "promote", "swap"]
    );

    let (s, body) = api.get("/jobs/live/decisions?limit=5&role=hpa").await;
    assert_eq!(s, 200);
    assert!(body.as_array().unwrap().iter().all(|d| d["role"] == "hpa"));
    let metrics = api
        .client
        .get(format!("{}/metrics", api.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("daedalus_policy_events_total{job=\"live\",kind=\"rollback\"} 1"));
    assert!(metrics.contains("daedalus_decisions_total{job=\"live\",kind=\"hpa\"}"));

    tx.send(true).unwrap();
    task.await.unwrap();
    server.await.unwrap().unwrap();
}

/// `POST /policy` swaps one file into several jobs: malformed requests and a pin the file
/// does not match are refused before any job is asked; a named subset swaps and the others
/// keep their policy; without `jobs` every job is asked (the ones already running it answer
/// "unchanged"); a file every job refuses is a 422 naming each, and nothing changes. The
/// component can be uploaded instead (`application/wasm`), to several jobs or to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_api_request_swaps_a_policy_into_several_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c"];
    let jobs = fast_ds2_jobs(&names);
    let cfg = config(dir.path(), &store_in(dir.path()), &jobs);
    // Its own engine, to count the components the jobs hold.
    let engine =
        daedalus_host::policy::PolicyEngine::new(daedalus_host::policy::EngineOptions::default())
            .unwrap();
    let parts = HostParts::new(&cfg, engine.clone()).unwrap();
    let built = build_all(&cfg, &parts).await;
    parts.started();
    let shared = shared_of(&built);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (api, server) = serve_api(shared.clone(), BTreeMap::new(), &parts, rx.clone()).await;
    let tasks: Vec<_> = built
        .into_iter()
        .map(|b| tokio::spawn(run_job(b, Duration::from_secs(10), None, rx.clone())))
        .collect();
    let policies = || -> Vec<String> {
        names
            .iter()
            .map(|n| shared[*n].status().policy.name)
            .collect()
    };
    wait_for(
        async || policies().iter().all(|p| p == "ds2"),
        "every job's first decision",
    )
    .await;
    let hpa = policy_path("hpa");
    let swap = |extra: &str| format!(r#"{{"path": "{}"{extra}}}"#, hpa.display());

    // Refused before any job is asked.
    assert_eq!(api.post("/policy", None, Some(&swap(""))).await.0, 401);
    for (body, status, says) in [
        ("{not json".to_string(), 400, ""),
        (swap(r#", "jobs": []"#), 400, "jobs"),
        (swap(r#", "jobs": ["a", "nope"]"#), 404, "nope"),
        (swap(r#", "job": ["a"]"#), 400, "job"),
        (
            r#"{"path": "/no/such/file.wasm"}"#.to_string(),
            400,
            "/no/such/file.wasm",
        ),
        (swap(r#", "sha256": "00""#), 422, "no job was asked"),
    ] {
        let (s, reply) = api.post("/policy", Some(api.token), Some(&body)).await;
        assert_eq!(s, status, "{body}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains(says),
            "{body}: {reply}"
        );
    }
    assert_eq!(policies(), ["ds2", "ds2", "ds2"]);

    // Two named jobs (one named twice), pinned with an upper-case digest.
    let pin = daedalus_host::policy::sha256_hex(&std::fs::read(&hpa).unwrap()).to_uppercase();
    let (s, reply) = api
        .post(
            "/policy",
            Some(api.token),
            Some(&swap(&format!(
                r#", "sha256": "{pin}", "jobs": ["b", "a", "b"]"#
            ))),
        )
        .await;
    assert_eq!(s, 200, "{reply}");
    let outcomes = reply["jobs"].as_object().unwrap();
    assert_eq!(outcomes.keys().collect::<Vec<_>>(), ["a", "b"], "{reply}");
    for n in ["a", "b"] {
        let ok = reply["jobs"][n]["ok"].as_str().unwrap();
        assert!(ok.starts_with("swapped"), "{reply}");
    }
    // The job reports its new policy once that has decided (after the reply).
    wait_for(
        async || policies() == ["hpa", "hpa", "ds2"],
        "a and b deciding with hpa",
    )
    .await;
    // hpa, and ds2 (c's, and a's and b's rollback target), each held once.
    assert_eq!(engine.held_components(), 2);

    // Every job: a and b run it already.
    let (s, reply) = api.post("/policy", Some(api.token), Some(&swap(""))).await;
    assert_eq!(s, 200, "{reply}");
    assert!(
        reply["ok"].as_str().unwrap().starts_with("3 jobs run"),
        "{reply}"
    );
    for n in ["a", "b"] {
        let ok = reply["jobs"][n]["ok"].as_str().unwrap();
        assert!(ok.starts_with("unchanged"), "{reply}");
    }
    let ok = reply["jobs"]["c"]["ok"].as_str().unwrap();
    assert!(ok.starts_with("swapped"), "{reply}");
    wait_for(
        async || policies() == ["hpa", "hpa", "hpa"],
        "c deciding with hpa",
    )
    .await;
    assert_eq!(
        shared["c"].status().policy_set_by.as_deref(),
        Some("api"),
        "recorded as an API swap"
    );

    // A file no job can load: every job refuses and names why; nothing changes.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a component").unwrap();
    let (s, reply) = api
        .post(
            "/policy",
            Some(api.token),
            Some(&format!(r#"{{"path": "{}"}}"#, junk.display())),
        )
        .await;
    assert_eq!(s, 422, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("3 of 3 jobs refused"),
        "{reply}"
    );
    for n in names {
        let err = reply["jobs"][n]["error"].as_str().unwrap();
        assert!(err.contains("the active policy is unchanged"), "{reply}");
    }
    assert_eq!(policies(), ["hpa", "hpa", "hpa"]);
    let store = parts.store.clone().unwrap();
    let events = |n: &str| -> Vec<String> {
        store
            .policy_events(n)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    };
    for n in names {
        assert_eq!(events(n), ["swap", "swap-refused"], "{n}");
    }

    // Nothing of a body is read before the token, the content type and an upload's query
    // string are checked: headers promising 100 MB, and no body, get their answer at once.
    for (path, token, content_type, status) in [
        ("/policy", None, "application/wasm", "401"),
        ("/policy", Some(api.token), "text/plain", "415"),
        ("/policy?nope=1", Some(api.token), "application/wasm", "400"),
        (
            "/policy?jobs=nope",
            Some(api.token),
            "application/wasm",
            "404",
        ),
        (
            "/jobs/a/policy?jobs=a",
            Some(api.token),
            "application/wasm",
            "400",
        ),
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = api.url.strip_prefix("http://").unwrap();
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\n\
             {auth}content-length: 100000000\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut answer = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{path}: no answer without the body"))
            .unwrap();
        assert_eq!(answer, *format!("HTTP/1.1 {status}").as_bytes(), "{path}");
    }
    // The component itself, uploaded: refused on a wrong pin, a stray query or content type,
    // or a size beyond the limit, before any job is asked; bytes that are not a component, by
    // the jobs.
    let ds2 = std::fs::read(policy_path("ds2")).unwrap();
    let ds2_sha = daedalus_host::policy::sha256_hex(&ds2);
    let wasm = "application/wasm";
    for (path, content_type, body, status, says) in [
        (
            "/policy?sha256=00",
            wasm,
            ds2.clone(),
            422,
            "no job was asked",
        ),
        ("/policy?jobs=a,nope", wasm, ds2.clone(), 404, "nope"),
        ("/policy?jobs=,", wasm, ds2.clone(), 400, "jobs"),
        ("/policy?job=a", wasm, ds2.clone(), 400, "job"),
        (
            "/policy",
            "application/octet-stream",
            ds2.clone(),
            415,
            "application/wasm",
        ),
        ("/policy", wasm, vec![0; (64 << 20) + 1], 413, "upload"),
        // Past axum's default 2 MB body limit, within the upload limit: read, and refused by
        // the job as not a component.
        (
            "/policy?jobs=a",
            wasm,
            vec![0; 3 << 20],
            422,
            "1 of 1 jobs refused",
        ),
        ("/jobs/a/policy?jobs=a", wasm, ds2.clone(), 400, "jobs"),
        ("/jobs/a/policy?sha256=00", wasm, ds2.clone(), 422, "digest"),
    ] {
        let (s, reply) = api.upload(path, content_type, body).await;
        assert_eq!(s, status, "{path}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains(says),
            "{path}: {reply}"
        );
    }
    let (s, reply) = api
        .post(
            "/policy?jobs=a",
            Some(api.token),
            Some(&format!(r#"{{"path": "{}"}}"#, hpa.display())),
        )
        .await;
    assert_eq!(s, 400, "a query string with JSON: {reply}");
    assert_eq!(policies(), ["hpa", "hpa", "hpa"]);
    // Of the uploads, only the junk reached a job (the wrong pins were refused up front).
    assert_eq!(events("a"), ["swap", "swap-refused", "swap-refused"]);
    assert_eq!(events("b"), ["swap", "swap-refused"]);

    // Into two jobs (pinned), then into one job by its own endpoint.
    let (s, reply) = api
        .upload(
            &format!("/policy?jobs=a,b&sha256={ds2_sha}"),
            wasm,
            ds2.clone(),
        )
        .await;
    assert_eq!(s, 200, "{reply}");
    let ok = reply["jobs"]["a"]["ok"].as_str().unwrap();
    assert!(ok.starts_with("swapped"), "{reply}");
    assert!(
        ok.contains(&format!("an upload of {} bytes", ds2.len())),
        "{reply}"
    );
    let (s, reply) = api.upload("/jobs/c/policy", wasm, ds2.clone()).await;
    assert_eq!(s, 200, "{reply}");
    assert!(
        reply["ok"].as_str().unwrap().starts_with("swapped"),
        "{reply}"
    );
    wait_for(
        async || policies() == ["ds2", "ds2", "ds2"],
        "every job deciding with the uploaded ds2",
    )
    .await;

    // An upload with params: checked by each job on its input; the same bytes with other
    // params change only the params; `params=none` is the component's defaults.
    for (path, status, says) in [
        (
            "/jobs/a/policy?param.scaling_factor=-3",
            422,
            "scaling_factor",
        ),
        ("/jobs/a/policy?params=none", 200, "unchanged"),
        ("/jobs/a/policy?param.scaling_factor=0.5", 200, "swapped"),
        ("/jobs/a/policy?param.scaling_factor=0.5", 200, "unchanged"),
        ("/policy?jobs=a,b&params=none", 200, "2 jobs run"),
        (
            "/policy?param.scaling_factor=0.5&params=none",
            400,
            "contradict",
        ),
    ] {
        let (s, reply) = api.upload(path, wasm, ds2.clone()).await;
        assert_eq!(s, status, "{path}: {reply}");
        let said = reply
            .get("ok")
            .or(reply.get("error"))
            .unwrap()
            .as_str()
            .unwrap();
        assert!(said.contains(says), "{path}: {reply}");
    }
    let (s, reply) = api.upload("/policy?params=none", wasm, ds2.clone()).await;
    assert_eq!(s, 200, "{reply}");
    for n in names {
        let ok = reply["jobs"][n]["ok"].as_str().unwrap();
        assert!(ok.starts_with("unchanged"), "{reply}");
    }

    tx.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    server.await.unwrap().unwrap();
}

/// The API client `daedalus policy push` uses, through a TLS proxy with a private CA in front
/// of the real API (the double only terminates TLS and forwards): it swaps a running job;
/// a job that has not reached its next tick within the request timeout is reported queued
/// (202) and takes the swap at its tick; a wrong token is a refusal with the host's words;
/// only the proxy's own CA is trusted, and nothing else reaches the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_push_through_a_tls_proxy_reports_each_job_and_queued_ones() {
    use daedalus_host::engine::tls::{Roots, TlsSettings};
    use daedalus_host::live::client::{
        ApiClient, ClientError, JobOutcome, PushParams, PushRequest, Verdict,
    };
    use daedalus_tests::fake_http::{Pki, Proxy, Reply, serve_tls};
    let dir = tempfile::tempdir().unwrap();
    let jobs = fast_ds2_jobs(&["running", "stalled"]);
    let cfg = config(dir.path(), "", &jobs);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let mut built = build_all(&cfg, &parts).await;
    parts.started();
    let shared = shared_of(&built);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let (api, server) = serve_api_within(
        shared.clone(),
        BTreeMap::new(),
        &parts,
        rx.clone(),
        Duration::from_secs(2),
    )
    .await;
    // Only "running" runs its loop: "stalled" never reaches a tick until the test runs one.
    let mut stalled = built.pop().unwrap();
    let running = tokio::spawn(run_job(
        built.pop().unwrap(),
        Duration::from_secs(10),
        None,
        rx.clone(),
    ));
    let pki = Pki::new();
    let proxy = serve_tls(
        Reply::Proxy(Proxy {
            upstream: api.url.clone(),
            faults: Vec::new(),
        }),
        &pki,
        false,
    )
    .await;
    let client = |roots, token| {
        let tls = TlsSettings {
            roots,
            identity: None,
        };
        ApiClient::new(&proxy.url, Some(token), &tls, Duration::from_secs(30)).unwrap()
    };
    let ours = || Roots::Pem(pki.ca_pem.clone().into_bytes());
    let push = |jobs: &[&str]| PushRequest {
        name: Some("hpa.wasm".into()),
        jobs: jobs.iter().map(|j| j.to_string()).collect(),
        params: PushParams::Keep,
    };
    let hpa = std::fs::read(policy_path("hpa")).unwrap();
    let policy = |job: &str| shared[job].status().policy.name;
    wait_for(
        async || policy("running") == "ds2",
        "the running job's first decision",
    )
    .await;
    let ds2_digest = stalled.job.policy_digest();

    let r = client(ours(), api.token)
        .push(hpa.clone(), &push(&["running"]))
        .await
        .unwrap();
    assert_eq!(r.verdict(), Verdict::AllRun, "{r:?}");
    assert_eq!(r.jobs.len(), 1, "{r:?}");
    assert!(
        matches!(&r.jobs[0], (j, JobOutcome::Runs(said)) if j == "running" && said.starts_with("swapped")),
        "{r:?}"
    );
    assert!(r.message.contains("1 job runs"), "{r:?}");
    wait_for(async || policy("running") == "hpa", "a decision by hpa").await;
    assert_eq!(stalled.job.policy_digest(), ds2_digest);

    // Every job: the running one already runs it, the stalled one has not answered.
    let r = client(ours(), api.token)
        .push(hpa.clone(), &push(&[]))
        .await
        .unwrap();
    assert_eq!((r.status, r.verdict()), (202, Verdict::SomeQueued), "{r:?}");
    assert!(
        matches!(&r.jobs[..], [(a, JobOutcome::Runs(ok)), (b, JobOutcome::Queued(_))]
            if a == "running" && ok.starts_with("unchanged") && b == "stalled"),
        "{r:?}"
    );
    assert!(r.message.contains("1 of 2 jobs"), "{r:?}");
    assert_eq!(stalled.job.policy_digest(), ds2_digest);
    // At its tick, the stalled job takes the queued swap.
    stalled.job.cycle(1_000).await;
    assert_eq!(
        stalled.job.policy_digest(),
        daedalus_host::policy::sha256_hex(&hpa)
    );

    // The host's refusal comes back as a reply with its words, not as a transport error.
    let r = client(ours(), "not-the-token-at-all-sorry")
        .push(hpa.clone(), &push(&["running"]))
        .await
        .unwrap();
    assert_eq!((r.status, r.verdict()), (401, Verdict::Refused), "{r:?}");
    assert!(r.message.contains("token"), "{r:?}");
    let forwarded = proxy.request_count();
    assert_eq!(forwarded, 3);

    // The system's roots and an unrelated CA do not trust the proxy: no request is sent.
    for roots in [
        Roots::System,
        Roots::Pem(pki.other_ca_pem.clone().into_bytes()),
    ] {
        let e = client(roots, api.token)
            .push(hpa.clone(), &push(&["running"]))
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Transport { .. }), "{e}");
        assert!(e.to_string().contains("certificate"), "{e}");
    }
    // The proxy records a failed handshake in its own task, maybe after the client gave up.
    wait_for(
        async || proxy.handshake_failures().len() == 2,
        "the proxy's two failed handshakes",
    )
    .await;
    assert_eq!(proxy.request_count(), forwarded);

    tx.send(true).unwrap();
    running.await.unwrap();
    server.await.unwrap().unwrap();
}

/// `POST /pause` and `POST /resume` act on the named jobs, or every job with an empty body;
/// a malformed body, an empty list or an unknown name changes nothing. (The flag is what a
/// job's cycle reads and records; `a_pause_survives_a_host_restart` covers the rest.)
#[tokio::test]
async fn one_api_request_pauses_or_resumes_several_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c"];
    let jobs: Vec<String> = names
        .iter()
        .map(|n| sim_job(n, &policy_path("ds2"), "", ""))
        .collect();
    let cfg = config(dir.path(), "", &jobs);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let built = build_all(&cfg, &parts).await;
    let shared: BTreeMap<String, Arc<JobShared>> = names
        .iter()
        .zip(&built)
        .map(|(n, b)| (n.to_string(), b.job.shared()))
        .collect();
    let (tx, rx) = tokio::sync::watch::channel(false);
    // A short request timeout: these jobs never tick.
    let (api, server) = serve_api_within(
        shared.clone(),
        BTreeMap::new(),
        &parts,
        rx,
        Duration::from_millis(200),
    )
    .await;
    let paused = || -> Vec<bool> { names.iter().map(|n| shared[*n].paused()).collect() };

    // A request the job takes at its next tick is queued, not an error; a wrong method is a
    // JSON error too.
    let (s, reply) = api
        .post("/jobs/a/policy/reset", Some(api.token), None)
        .await;
    assert_eq!(s, 202, "{reply}");
    assert!(
        reply["queued"].is_string() && reply.get("error").is_none(),
        "{reply}"
    );
    let (s, reply) = api.get("/pause").await;
    assert_eq!(s, 405, "{reply}");
    assert!(reply["error"].is_string(), "{reply}");

    assert_eq!(api.post("/pause", None, None).await.0, 401);
    for (body, status, says) in [
        ("{not json", 400, "empty or"),
        (r#"{"jobs": "a"}"#, 400, "empty or"),
        (r#"{"job": ["a"]}"#, 400, "unknown field"),
        (r#"{"jobs": []}"#, 400, "jobs"),
        (r#"{"jobs": ["a", "nope"]}"#, 404, "nope"),
    ] {
        let (s, reply) = api.post("/pause", Some(api.token), Some(body)).await;
        assert_eq!(s, status, "{body}: {reply}");
        assert!(
            reply["error"].as_str().unwrap().contains(says),
            "{body}: {reply}"
        );
    }
    assert_eq!(paused(), [false, false, false]);

    let (s, reply) = api
        .post("/pause", Some(api.token), Some(r#"{"jobs": ["c", "a"]}"#))
        .await;
    assert_eq!(s, 200, "{reply}");
    assert_eq!(reply["jobs"], serde_json::json!(["a", "c"]), "{reply}");
    assert_eq!(paused(), [true, false, true]);
    let (s, reply) = api.post("/pause", Some(api.token), None).await;
    assert_eq!(
        (s, reply["jobs"].as_array().unwrap().len()),
        (200, 3),
        "{reply}"
    );
    assert_eq!(paused(), [true, true, true]);
    let (s, _) = api
        .post("/resume", Some(api.token), Some(r#"{"jobs": ["b"]}"#))
        .await;
    assert_eq!(s, 200);
    assert_eq!(paused(), [true, false, true]);
    let (s, reply) = api.post("/resume", Some(api.token), Some(" \n")).await;
    assert_eq!((s, reply["ok"].as_str()), (200, Some("resumed")), "{reply}");
    assert_eq!(paused(), [false, false, false]);

    tx.send(true).unwrap();
    server.await.unwrap().unwrap();
}

/// Editing the policy file swaps the policy at the next tick (notify); a broken file is
/// refused and recorded, and the running policy is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_policy_file_swaps_it_and_a_broken_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.wasm");
    std::fs::copy(policy_path("ds2"), &policy).unwrap();
    let job = sim_job("watched", &policy, "", "speedup = 100.0");
    let cfg = config(dir.path(), &store_in(dir.path()), &[job]);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let built = build_all(&cfg, &parts).await.pop().unwrap();
    let shared = built.job.shared();
    let _watcher =
        daedalus_host::live::watch::watch(vec![(policy.clone(), shared.clone())]).unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_job(built, Duration::from_secs(10), None, rx));
    wait_for(async || shared.status().policy.name == "ds2", "ds2").await;
    // Write a new file and rename it over the old one, as build tools do.
    let tmp = dir.path().join("policy.wasm.tmp");
    std::fs::copy(policy_path("hpa"), &tmp).unwrap();
    std::fs::rename(&tmp, &policy).unwrap();
    wait_for(
        async || shared.status().policy.name == "hpa",
        "the swap to hpa",
    )
    .await;
    std::fs::write(&policy, b"\0asm garbage").unwrap();
    let store = parts.store.clone().unwrap();
    wait_for(
        async || {
            store
                .policy_events("watched")
                .unwrap()
                .iter()
                .any(|e| e.kind == "swap-refused")
        },
        "the refusal",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(shared.status().policy.name, "hpa");
    assert!(
        shared
            .status()
            .recent_decisions
            .front()
            .is_some_and(|d| d.error.is_none())
    );
    let events = store.policy_events("watched").unwrap();
    assert!(events[0].detail.starts_with("file-watch"), "{events:?}");
    tx.send(true).unwrap();
    task.await.unwrap();
}

/// A change the watcher reports (its flag, raised here by hand) swaps only when the configured
/// file's bytes changed. The file rewritten with the same bytes (touched, or its ConfigMap
/// updated for another key) keeps a policy set through the API, with its params; new bytes
/// replace it, with the configured params, and the job runs its configuration again. An API
/// swap on the same tick as a file edit wins.
#[tokio::test]
async fn a_rewritten_policy_file_keeps_an_api_swap_and_new_bytes_replace_it() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.wasm");
    let ds2 = std::fs::read(policy_path("ds2")).unwrap();
    std::fs::write(&policy, &ds2).unwrap();
    let job = sim_job(
        "j",
        &policy,
        "watch_policy = false
params = { scaling_factor = \"0.5\" }",
        "",
    );
    let cfg = config(dir.path(), "", &[job]);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let mut built = build_job(&cfg, &cfg.jobs[0], &parts, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let shared = built.job.shared();
    let configured = vec![("scaling_factor".to_string(), "0.5".to_string())];
    let answer = request_swap(
        &mut built,
        policy_path("hpa"),
        Some(&[("target_cpu_utilization", "0.7")]),
        1_000,
    )
    .await;
    assert!(answer.unwrap().starts_with("swapped"));
    let hpa = daedalus_host::policy::sha256_hex(&std::fs::read(policy_path("hpa")).unwrap());
    assert_eq!(built.job.policy_digest(), hpa);
    assert_eq!(shared.status().policy_set_by.as_deref(), Some("api"));

    // The same bytes written again: nothing to swap.
    std::fs::write(&policy, &ds2).unwrap();
    shared.mark_policy_changed();
    built.job.cycle(2_000).await;
    assert_eq!(built.job.policy_digest(), hpa);
    assert_eq!(shared.status().policy_set_by.as_deref(), Some("api"));
    assert_eq!(
        built.job.settings().params,
        [("target_cpu_utilization".to_string(), "0.7".to_string())]
    );

    // New bytes (ds2 with a custom section appended): the configuration now.
    let mut edited = ds2.clone();
    edited.extend_from_slice(&[0, 6, 4, b't', b'e', b's', b't', 1]);
    std::fs::write(&policy, &edited).unwrap();
    shared.mark_policy_changed();
    built.job.cycle(3_000).await;
    assert_eq!(
        built.job.policy_digest(),
        daedalus_host::policy::sha256_hex(&edited)
    );
    assert_eq!(shared.status().policy_set_by, None);
    assert_eq!(built.job.settings().params, configured);

    // A file edit and an API swap handled on the same tick: the API's, the deliberate one,
    // is applied last and stays (it was replaced by the file at once, after being answered
    // "swapped").
    edited.extend_from_slice(&[0, 6, 4, b't', b'e', b's', b't', 2]);
    std::fs::write(&policy, &edited).unwrap();
    shared.mark_policy_changed();
    let answer = request_swap(
        &mut built,
        policy_path("hpa"),
        Some(&[("target_cpu_utilization", "0.7")]),
        4_000,
    )
    .await;
    assert!(answer.unwrap().starts_with("swapped"));
    assert_eq!(built.job.policy_digest(), hpa);
    assert_eq!(shared.status().policy_set_by.as_deref(), Some("api"));
}

/// Reads the simulated job's state file: (parallelism, rescales the engine started).
fn engine_truth(state_file: &Path) -> (u32, u32) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state_file).unwrap()).unwrap();
    let p = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .max()
        .unwrap();
    (p, v["rescales"].as_u64().unwrap() as u32)
}

struct CrashRun {
    dir: PathBuf,
    config: PathBuf,
    state_file: PathBuf,
    db: PathBuf,
}

impl CrashRun {
    fn new(dir: &Path) -> CrashRun {
        let profile = dir.join("quiet.toml");
        // The bundled Flink profile without metric noise, so a policy's decisions depend on
        // the load only and runs with and without crashes end in the same state.
        let text = std::fs::read_to_string(workspace_root().join("host/profiles/flink.toml"))
            .unwrap()
            .replace("metric_noise = 0.02", "metric_noise = 0.0")
            .replace("downtime_jitter = 0.2", "downtime_jitter = 0.0");
        std::fs::write(&profile, text).unwrap();
        let state_file = dir.join("job.json");
        let db = dir.join("d.db");
        let cfg = format!(
            r#"
tick_secs = 10
[store]
path = "{}"
[[jobs]]
name = "crashy"
policy = "{}"
max_parallelism = 12
[jobs.simulated]
profile = "{}"
trace = "step:low=20000,high=150000,at=200,duration=1500"
speedup = 50.0
state_file = "{}"
"#,
            db.display(),
            policy_path("ds2").display(),
            profile.display(),
            state_file.display()
        );
        let config = dir.join("daedalus.toml");
        std::fs::write(&config, cfg).unwrap();
        CrashRun {
            dir: dir.to_path_buf(),
            config,
            state_file,
            db,
        }
    }

    fn host(&self, secs: u64, failpoint: Option<&str>) -> std::process::Child {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_test-host"));
        cmd.arg(&self.config)
            .arg(secs.to_string())
            .current_dir(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(f) = failpoint {
            cmd.env("DAEDALUS_FAILPOINT", f);
        }
        cmd.spawn().expect("test-host starts")
    }

    /// Runs until the trace has ended (1500 s at 50x = 30 s, plus margin).
    fn finish(&self) {
        let status = self.host(36, None).wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

/// The host process is killed at random points, including between the engine call and its
/// record (a failpoint aborts there), and restarted each time: no rescale is lost or made
/// twice (the host's records match the engine's own count), the decision history has no
/// duplicate, and the job ends where an uninterrupted run ends.
#[test]
fn a_host_killed_at_any_point_resumes_without_losing_or_repeating_a_rescale() {
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = CrashRun::new(reference_dir.path());
    reference.finish();
    let (ref_p, ref_rescales) = engine_truth(&reference.state_file);
    assert!(
        ref_rescales >= 1 && ref_p > 1,
        "the step must make the job scale"
    );

    let dir = tempfile::tempdir().unwrap();
    let run = CrashRun::new(dir.path());
    // 1. Aborted right after the engine accepted the first rescale, before the host recorded
    //    the answer.
    let status = run.host(60, Some("after-actuator-call")).wait().unwrap();
    assert!(!status.success(), "the failpoint must abort the host");
    let (_, engine_rescales) = engine_truth(&run.state_file);
    assert_eq!(engine_rescales, 1, "the engine got the first rescale");
    {
        let store = Store::open(&run.db).unwrap();
        let open = store
            .open_rescale("crashy")
            .unwrap()
            .expect("an open request");
        assert!(!open.applied, "the answer was never recorded");
    }
    // 2. Killed (SIGKILL) at pseudo-random moments.
    for wait_ms in [2300u64, 4100, 1700, 5300] {
        let mut child = run.host(60, None);
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    // 3. To the end of the trace.
    run.finish();

    let (p, engine_rescales) = engine_truth(&run.state_file);
    let store = Store::open(&run.db).unwrap();
    let recorded = store.rescales("crashy").unwrap();
    let accepted = recorded
        .iter()
        .filter(|r| matches!(r.outcome.as_str(), "applied" | "done" | "timeout"))
        .count() as u32;
    assert_eq!(
        accepted, engine_rescales,
        "host records {recorded:?} vs {engine_rescales} rescales made by the engine"
    );
    assert!(store.open_rescale("crashy").unwrap().is_none());
    assert!(matches!(recorded[0].outcome.as_str(), "done" | "timeout"));
    assert_eq!(p, ref_p, "final parallelism with crashes vs without");
    let decisions = store.decisions("crashy", Some("active"), 100_000).unwrap();
    let mut at: Vec<u64> = decisions.iter().map(|d| d.at_ms).collect();
    at.sort_unstable();
    let n = at.len();
    at.dedup();
    assert_eq!(at.len(), n, "a decision was recorded twice");
    assert!(n >= 60, "only {n} decisions over 1500 s at a 10 s tick");
}

/// Every shipped example config parses, and the simulated one runs with no engine.
#[tokio::test(start_paused = true)]
async fn the_shipped_examples_are_valid_and_the_simulated_one_runs() {
    let root = workspace_root();
    for f in [
        "flink-kafka-local.toml",
        "kstreams-local.toml",
        "simulated.toml",
    ] {
        RunConfig::load(&root.join("examples").join(f))
            .unwrap_or_else(|e| panic!("examples/{f}: {e:#}"));
    }
    // The calibrated profile of the local Kafka Streams app is a valid simulator profile.
    let prof = daedalus_host::sim::profile::JobProfile::from_file(
        &root.join("examples/kstreams-local-profile.toml"),
    )
    .unwrap();
    assert_eq!((prof.partitions, prof.max_parallelism), (4, 4));
    assert_eq!(prof.operators[1].capacity_per_instance, 632.0);
    let mut cfg = RunConfig::embedded_default(&root).unwrap();
    cfg.store = None;
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let mut built = build_all(&cfg, &parts).await;
    let BuiltJob { mut job, .. } = built.pop().unwrap();
    let clock = JobClock::accelerated(0, 1.0);
    for _ in 0..40 {
        tokio::time::advance(Duration::from_secs(10)).await;
        job.cycle(clock.now_ms()).await;
    }
    assert!(job.latest().is_some(), "the simulated job reports");
    assert!(job.shared().status().shadows[0].divergence.decisions > 0);
}

/// A job whose policy (or a shadow's) is given an unknown parameter or a value it refuses
/// does not start: the error names the job, the key and what the policy accepts, instead of
/// the job holding on every tick with `invalid params`.
#[tokio::test]
async fn a_job_with_params_its_policy_refuses_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let ds2 = policy_path("ds2");
    let hpa = policy_path("hpa");
    let shadow = |params: &str| {
        format!(
            "[[jobs.shadow]]\nname = \"hpa\"\npolicy = \"{}\"\nparams = {params}\n",
            hpa.display()
        )
    };
    for (extra, want) in [
        (
            "params = { target_utilization = \"0.7\" }".to_string(),
            vec![
                "job \"j\"",
                "unknown parameter `target_utilization`",
                "scaling_factor",
            ],
        ),
        (
            "params = { scaling_factor = \"-3\" }".to_string(),
            vec!["job \"j\"", "scaling_factor"],
        ),
        (
            shadow("{ target_cpu = \"0.5\" }"),
            vec!["shadow \"hpa\"", "unknown parameter `target_cpu`"],
        ),
    ] {
        let cfg = config(dir.path(), "", &[sim_job("j", &ds2, &extra, "")]);
        let parts = HostParts::new(&cfg, engine()).unwrap();
        let err = match build_job(&cfg, &cfg.jobs[0], &parts, false).await {
            Ok(_) => panic!("{extra}: the job started"),
            Err(e) => format!("{e:#}"),
        };
        for w in want {
            assert!(err.contains(w), "{extra}: wanted {w:?} in {err}");
        }
    }
    // The same job with parameters the policies accept starts.
    let good = format!(
        "params = {{ scaling_factor = \"0.1\" }}\n{}",
        shadow("{ target_cpu_utilization = \"0.5\" }")
    );
    let cfg = config(dir.path(), "", &[sim_job("j", &ds2, &good, "")]);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    build_job(&cfg, &cfg.jobs[0], &parts, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
}

/// One simulated job `j` on `ds2` that does not watch its policy file, with no store.
async fn unwatched_ds2_job(dir: &Path) -> BuiltJob {
    let job = sim_job("j", &policy_path("ds2"), "watch_policy = false", "");
    let cfg = config(dir, "", &[job]);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    build_job(&cfg, &cfg.jobs[0], &parts, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Asks `built` for an API swap to `path` (with `params`, or keeping the job's), runs one
/// cycle at `now_ms` to handle it, and returns the answer.
async fn request_swap(
    built: &mut BuiltJob,
    path: PathBuf,
    params: Option<&[(&str, &str)]>,
    now_ms: u64,
) -> Result<String, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    built
        .job
        .shared()
        .request(daedalus_host::live::shared::Request::Swap {
            component: daedalus_host::live::shared::Component::File(path),
            sha256: None,
            params: params.map(|p| {
                p.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            source: "api".into(),
            reply: Some(tx),
        });
    built.job.cycle(now_ms).await;
    rx.await.unwrap()
}

/// A swap asked for before the job's first observation is checked as one after it: an
/// undocumented key or a value the new policy refuses keeps the old policy active (before,
/// with no last input to probe, such a swap went through unchecked); good params swap.
#[tokio::test]
async fn a_swap_before_the_first_observation_is_still_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut built = unwatched_ds2_job(dir.path()).await;
    // The first cycle handles the request before it collects anything.
    let mut swap = async |params: &[(&str, &str)]| {
        request_swap(&mut built, policy_path("hpa"), Some(params), 1_000).await
    };
    let err = swap(&[("target_utilization", "0.7")]).await.unwrap_err();
    assert!(
        err.contains("unknown parameter `target_utilization`"),
        "{err}"
    );
    assert!(err.contains("the active policy is unchanged"), "{err}");
    let err = swap(&[("target_cpu_utilization", "-1")]).await.unwrap_err();
    assert!(err.contains("target_cpu_utilization"), "{err}");
    let ok = swap(&[("target_cpu_utilization", "0.5")]).await.unwrap();
    assert!(ok.starts_with("swapped"), "{ok}");
}

/// A swapped-in policy that fails is rolled back, and the state saved on that very tick is
/// the restored policy's, under its digest (it was saved under the failed one's, so a host
/// restarted right then lost it). A swapped-in policy that answers `insufficient-history`
/// holds without failing: it is not rolled back however long it waits (it was, after
/// `rollback_after` ticks).
#[tokio::test]
async fn a_rollback_saves_the_restored_state_and_waiting_for_history_is_no_failure() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &store_in(dir.path()),
        &[sim_job(
            "j",
            &policy_path("ds2"),
            "watch_policy = false\nrollback_after = 2",
            "",
        )],
    );
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let store = parts.store.clone().unwrap();
    let mut built = build_job(&cfg, &cfg.jobs[0], &parts, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    for t in 1..=3 {
        built.job.cycle(t * 1_000).await;
    }
    let ds2 = built.job.shared().status().policy.digest.clone();
    let events = |kind: &str| {
        store
            .policy_events("j")
            .unwrap()
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    };
    let hostile = guest_path("hostile");
    let fail_after = [("mode", "fail-after"), ("calls", "1")];
    let ok = request_swap(&mut built, hostile.clone(), Some(&fail_after), 4_000).await;
    assert!(ok.unwrap().starts_with("swapped"));
    let mut t = 5_000;
    while events("rollback") == 0 {
        assert!(t < 10_000, "no rollback");
        built.job.cycle(t).await;
        t += 1_000;
    }
    let status = built.job.shared().status();
    assert_eq!(status.policy.digest, ds2);
    let (saved_under, _) = store.policy_state("j", "active").unwrap().unwrap();
    assert_eq!(
        saved_under, ds2,
        "the state is saved under the policy rolled back to"
    );

    let ok = request_swap(&mut built, hostile, Some(&[("mode", "needs-history")]), t).await;
    assert!(ok.unwrap().starts_with("swapped"));
    for _ in 0..4 {
        t += 1_000;
        built.job.cycle(t).await;
    }
    let status = built.job.shared().status();
    assert_eq!(status.policy.name, "hostile", "rolled back while waiting");
    assert_eq!(events("rollback"), 1);
    let last = status.recent_decisions.front().unwrap();
    assert!(
        last.error
            .as_deref()
            .unwrap_or("")
            .contains("always wants more"),
        "{last:?}"
    );
}

/// A Kafka Streams job whose instances the host runs itself: the instances die with the host,
/// so a restarted host starts as many as last ran (from the store), not the first start's
/// size. Real processes; nothing here talks to Kafka or Prometheus before the first cycle.
#[tokio::test]
async fn a_restarted_host_starts_the_process_group_at_its_last_size() {
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        r#"
[[jobs]]
name = "ks"
policy = "{}"
max_parallelism = 4
[jobs.kafka_streams]
bootstrap = "127.0.0.1:{}"
topic = "words"
partitions = 4
application_id = "ks"
instance_command = ["sh", "-c", "exec sleep 60"]
"#,
        policy_path("ds2").display(),
        daedalus_tests::fake_http::closed_port(),
    );
    let cfg = config(dir.path(), &store_in(dir.path()), &[job]);
    let logs = dir.path().join(".daedalus-instances/ks");
    let started = |n: usize| {
        (0..4)
            .filter(|i| logs.join(format!("instance-{i}.log")).exists())
            .count()
            == n
    };
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let first = build_job(&cfg, &cfg.jobs[0], &parts, false).await.unwrap();
    assert!(started(1), "the first start runs min_parallelism");
    drop(first);
    let mut o = daedalus_tests::observation(100, 3, 1000.0, 0.5);
    o.at_ms = 100_000;
    parts
        .store
        .as_ref()
        .unwrap()
        .put_observation("ks", &o)
        .unwrap();
    std::fs::remove_dir_all(&logs).unwrap();
    let again = build_job(&cfg, &cfg.jobs[0], &parts, false).await.unwrap();
    assert!(started(3), "the restart runs the 3 instances that last ran");
    drop(again);
}

/// A job paused through the API stays paused across a host restart, and a resume is kept
/// too (before, a restart resumed acting without anyone asking).
#[tokio::test]
async fn a_pause_survives_a_host_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &store_in(dir.path()),
        &[sim_job("j", &policy_path("ds2"), "", "")],
    );
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let start = async || {
        build_job(&cfg, &cfg.jobs[0], &parts, false)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let mut built = start().await;
    assert!(!built.job.shared().status().paused);
    built.job.shared().set_paused(true);
    built.job.cycle(1_000).await;
    drop(built);
    let mut built = start().await;
    assert!(built.job.shared().status().paused, "the restart resumed it");
    built.job.shared().set_paused(false);
    built.job.cycle(2_000).await;
    drop(built);
    assert!(!start().await.job.shared().status().paused);
}

/// A pause set through the API is recorded at once, not at the job's next tick: a host
/// restarted before then resumes the job paused (it came back acting). The tick here is a day
/// long, so only the pause itself can have recorded it.
#[tokio::test]
async fn a_pause_is_recorded_before_the_next_tick() {
    use daedalus_host::live::run_job;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &store_in(dir.path()),
        &[sim_job("j", &policy_path("ds2"), "", "")],
    );
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let store = parts.store.clone().unwrap();
    let start = async || {
        build_job(&cfg, &cfg.jobs[0], &parts, false)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let built = start().await;
    let shared = built.job.shared();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_job(built, Duration::from_secs(86_400), None, rx));
    shared.set_paused(true);
    let recorded = || {
        store
            .loop_state::<serde_json::Value>("j")
            .unwrap()
            .is_some_and(|v| v["paused"] == true)
    };
    wait_for(async || recorded(), "the pause recorded").await;
    tx.send(true).unwrap();
    let job = task.await.unwrap();
    assert_eq!(job.rescales(), 0);
    drop(job);
    assert!(start().await.job.shared().status().paused);
}

/// A rescale request the host wrote but never saw answered (it was killed in between) is
/// re-sent on restart only under a config that would send it now: in dry run it is recorded
/// as abandoned and nothing is sent; otherwise it is re-sent and followed.
#[tokio::test]
async fn an_interrupted_rescale_is_not_re_sent_in_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &store_in(dir.path()),
        &[sim_job("j", &policy_path("ds2"), "", "")],
    );
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let store = parts.store.clone().unwrap();
    let open = |at: u64| {
        store
            .begin_rescale("j", at, 1, 3, r#"{"job":3,"operators":{}}"#)
            .unwrap()
    };
    open(1_000);
    let built = build_job(&cfg, &cfg.jobs[0], &parts, true).await.unwrap();
    assert_eq!(built.job.rescales(), 0);
    drop(built);
    let outcomes = |s: &daedalus_host::store::Store| -> Vec<String> {
        s.rescales("j")
            .unwrap()
            .into_iter()
            .map(|r| r.outcome)
            .collect()
    };
    assert_eq!(outcomes(&store), ["abandoned"]);
    assert!(store.open_rescale("j").unwrap().is_none());
    open(2_000);
    let _built = build_job(&cfg, &cfg.jobs[0], &parts, false).await.unwrap();
    // Re-sent: the simulated engine, not started yet, answers "in progress", so the rescale
    // stays open and the loop follows it.
    assert_eq!(outcomes(&store), ["abandoned", "requested"]);
    assert!(store.open_rescale("j").unwrap().is_some());
}

/// A simulated job runs live (static at 4) over a stepped load; replaying its recorded history
/// for DS2 gives exactly the scorecard the simulator gives DS2 on the original trace: the
/// recorded load is the load, and the replay is the simulator.
#[tokio::test]
async fn counterfactual_replay_reproduces_the_simulator_on_the_recorded_load() {
    use daedalus_host::live::replay::counterfactual;
    use daedalus_host::policy::PolicyLimits;
    use daedalus_host::sim::compare::{PolicySpec, simulate_all};
    use daedalus_host::sim::profile::{Engine, JobProfile};
    use daedalus_host::sim::run::RunConfig as SimConfig;
    use daedalus_host::sim::trace::Trace;

    let dir = tempfile::tempdir().unwrap();
    let spec = "step:low=20000,high=150000,at=600,duration=1800";
    let job = format!(
        r#"
[[jobs]]
name = "recorded"
policy = "{}"
params = {{ parallelism = "4" }}
max_parallelism = 12
[jobs.simulated]
trace = "{spec}"
seed = 3
"#,
        policy_path("static").display()
    );
    let cfg = config(dir.path(), &store_in(dir.path()), &[job]);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let mut l = build_all(&cfg, &parts).await.pop().unwrap().job;
    let t0 = 1_000_000_000_000u64;
    // Cycles every 10 s of job time, driven directly (no clock needed).
    for k in 0..=180 {
        l.cycle(t0 + k * 10_000).await;
    }
    let store = parts.store.clone().unwrap();
    let samples = store.samples("recorded", 0).unwrap();
    assert!(samples.len() > 150, "{} samples", samples.len());
    let profile = JobProfile::default_for(Engine::Flink);
    let ds2 = vec![PolicySpec::new("ds2", policy_path("ds2"), &[])];
    let (recorded, replayed) = {
        let cfg = SimConfig {
            interval_s: 10,
            seed: 7,
            ..SimConfig::default()
        };
        counterfactual(
            &engine(),
            "recorded",
            &samples,
            &profile,
            &ds2,
            &cfg,
            &PolicyLimits::default(),
        )
        .unwrap()
    };
    let original = Trace::load(spec)
        .unwrap()
        .truncated(recorded.rates.len() as u64);
    assert_eq!(recorded.rates.len(), 1800);
    assert_eq!(
        recorded.rates, original.rates,
        "the recorded load is the load"
    );
    let direct = simulate_all(
        &engine(),
        &ds2,
        &profile,
        &original,
        &SimConfig {
            interval_s: 10,
            seed: 7,
            ..SimConfig::default()
        },
        &PolicyLimits::default(),
        true,
        false,
    )
    .unwrap();
    for (r, d) in replayed.iter().zip(&direct) {
        let (mut r, mut d) = (r.card.clone(), d.card.clone());
        (r.trace, d.trace) = (String::new(), String::new());
        (r.decide_us_p50, d.decide_us_p50) = (0.0, 0.0);
        (r.decide_us_p99, d.decide_us_p99) = (0.0, 0.0);
        assert_eq!(r, d);
    }
    assert_eq!(replayed.len(), 2, "ds2 and the oracle");
    // Under the job's own bounds, one below what the replay reached, neither DS2 nor the
    // oracle goes beyond them (the replay used the profile's bounds, 1..18).
    let reached = replayed
        .iter()
        .map(|s| s.card.max_parallelism)
        .max()
        .unwrap();
    assert!(reached > 1, "{reached}");
    let within = profile.clone().for_job(1, reached - 1, Some(30.0)).unwrap();
    let cfg = SimConfig {
        interval_s: 10,
        seed: 7,
        ..SimConfig::default()
    };
    let limits = PolicyLimits::default();
    let (_, bounded) = counterfactual(
        &engine(),
        "recorded",
        &samples,
        &within,
        &ds2,
        &cfg,
        &limits,
    )
    .unwrap();
    for s in &bounded {
        assert!(
            s.card.max_parallelism < reached,
            "{}: {}",
            s.card.policy,
            s.card.max_parallelism
        );
    }
}

/// A policy set through the API (a swap with new params, or a promoted shadow) is still the
/// active one after a host restart, even when the file it came from is gone; once the
/// configuration it overrode changes, the configuration wins and the override is forgotten.
/// Before, a restart silently went back to the configured policy.
#[tokio::test]
async fn a_policy_set_through_the_api_survives_a_host_restart_until_the_config_changes() {
    use daedalus_host::live::shared::Request;
    let dir = tempfile::tempdir().unwrap();
    let shadow = format!(
        "[[jobs.shadow]]\nname = \"cand\"\npolicy = \"{}\"",
        policy_path("static").display()
    );
    let job = |params: &str| {
        sim_job(
            "j",
            &policy_path("ds2"),
            &format!("watch_policy = false\n{params}\n{shadow}"),
            "speedup = 100.0",
        )
    };
    let cfg = config(dir.path(), &store_in(dir.path()), &[job("")]);
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let start = async |cfg: &RunConfig, parts: &HostParts| {
        build_job(cfg, &cfg.jobs[0], parts, false)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    };
    let digest_of =
        |name: &str| daedalus_host::policy::sha256_hex(&std::fs::read(policy_path(name)).unwrap());
    let hpa_params = vec![("target_cpu_utilization".to_string(), "0.5".to_string())];

    // Swap to a copy of hpa with new params, then delete the copy.
    let copy = dir.path().join("hpa-copy.wasm");
    std::fs::copy(policy_path("hpa"), &copy).unwrap();
    let mut built = start(&cfg, &parts).await;
    let ok = request_swap(
        &mut built,
        copy.clone(),
        Some(&[("target_cpu_utilization", "0.5")]),
        1_000,
    )
    .await
    .unwrap();
    assert!(ok.starts_with("swapped"), "{ok}");
    drop(built);
    std::fs::remove_file(&copy).unwrap();

    let mut built = start(&cfg, &parts).await;
    assert_eq!(
        built.job.policy_digest(),
        digest_of("hpa"),
        "the restart went back to ds2"
    );
    assert_eq!(built.job.settings().params, hpa_params);
    assert_eq!(
        built.job.shared().status().policy_set_by.as_deref(),
        Some("api")
    );

    // Promote the shadow: the restart resumes it as the active policy, not as a shadow too.
    let (tx, rx) = tokio::sync::oneshot::channel();
    built.job.shared().request(Request::Promote {
        shadow: "cand".into(),
        reply: Some(tx),
    });
    built.job.cycle(2_000).await;
    rx.await.unwrap().unwrap();
    drop(built);
    let mut built = start(&cfg, &parts).await;
    assert_eq!(built.job.policy_digest(), digest_of("static"));
    // Until the first decision after the restart (the simulated job needs two samples).
    for i in 0..200 {
        built.job.cycle(3_000 + i * 1_000).await;
        if !built.job.shared().status().policy.digest.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = built.job.shared().status();
    assert_eq!(status.policy.digest, digest_of("static"), "{status:?}");
    assert_eq!(status.policy_set_by.as_deref(), Some("promote:cand"));
    assert!(status.shadows.is_empty(), "{:?}", status.shadows);
    drop(built);

    // The configuration changes (new params for the configured policy): it wins, and the
    // override is forgotten for good.
    let cfg = config(
        dir.path(),
        &store_in(dir.path()),
        &[job("[jobs.params]\nscaling_factor = \"0.1\"")],
    );
    let parts = HostParts::new(&cfg, engine()).unwrap();
    let built = start(&cfg, &parts).await;
    assert_eq!(built.job.policy_digest(), digest_of("ds2"));
    assert_eq!(built.job.shared().status().policy_set_by, None);
    assert!(
        parts
            .store
            .as_ref()
            .unwrap()
            .policy_override("j")
            .unwrap()
            .is_none()
    );
}

/// A swap to the component already active with new params applies the params (checked like
/// any swap's); before, it answered "unchanged" and kept the old ones.
#[tokio::test]
async fn a_swap_to_the_active_component_with_new_params_applies_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut built = unwatched_ds2_job(dir.path()).await;
    let mut swap = async |params: Option<&[(&str, &str)]>| {
        let answer = request_swap(&mut built, policy_path("ds2"), params, 1_000).await;
        (answer, built.job.settings().params.clone())
    };
    let (answer, params) = swap(None).await;
    assert!(answer.unwrap().starts_with("unchanged"));
    assert!(params.is_empty(), "{params:?}");
    let (answer, params) = swap(Some(&[("scaling_factor", "-3")])).await;
    assert!(answer.unwrap_err().contains("scaling_factor"));
    assert!(params.is_empty(), "{params:?}");
    let (answer, params) = swap(Some(&[("scaling_factor", "0.2")])).await;
    assert!(answer.unwrap().starts_with("swapped"));
    assert_eq!(params, [("scaling_factor".to_string(), "0.2".to_string())]);
    let (answer, _) = swap(Some(&[("scaling_factor", "0.2")])).await;
    assert!(answer.unwrap().starts_with("unchanged"));
}
