//! The Kubernetes scale client and TaskManager pool against recorded-shape API responses
//! (`tests/fixtures/kubernetes/`, served by the HTTP test double: no API server runs here).

use daedalus_host::engine::EngineError;
use daedalus_host::engine::flink::TaskManagerPool;
use daedalus_host::engine::kubernetes::{KubeScale, KubernetesPool, WorkloadKind};
use daedalus_tests::fake_http::{Reply, Route, serve};
use daedalus_tests::workspace_root;
use std::time::Duration;

const PATH: &str = "/apis/apps/v1/namespaces/streaming/deployments/flink-taskmanager/scale";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        workspace_root()
            .join("tests/fixtures/kubernetes")
            .join(name),
    )
    .unwrap()
}

fn client(url: &str, kind: WorkloadKind) -> KubeScale {
    KubeScale::new(
        url,
        "streaming",
        kind,
        "flink-taskmanager",
        Some("tok".into()),
        Duration::from_secs(2),
    )
    .unwrap()
}

#[tokio::test]
async fn reads_the_scale_with_the_bearer_token() {
    let fake = serve(Reply::Routes(vec![Route::new(
        "GET",
        PATH,
        200,
        &fixture("scale-2.json"),
    )]))
    .await;
    let s = client(&fake.url, WorkloadKind::Deployment)
        .get()
        .await
        .unwrap();
    assert_eq!((s.spec.replicas, s.status.replicas), (2, 2));
    let req = &fake.requests()[0];
    assert!(
        req.headers.iter().any(|h| h == "authorization: bearer tok"),
        "{req:?}"
    );
}

#[tokio::test]
async fn the_pool_adds_a_taskmanager_with_a_merge_patch() {
    let fake = serve(Reply::Routes(vec![
        Route::new("GET", PATH, 200, &fixture("scale-2.json")),
        Route::new("PATCH", PATH, 200, &fixture("scale-3.json")),
    ]))
    .await;
    KubernetesPool::new(client(&fake.url, WorkloadKind::Deployment))
        .add()
        .await
        .unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let patch = &reqs[1];
    assert_eq!(patch.method, "PATCH");
    assert!(
        patch
            .headers
            .iter()
            .any(|h| h == "content-type: application/merge-patch+json")
    );
    let body: serde_json::Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(body, serde_json::json!({"spec": {"replicas": 3}}));
}

#[tokio::test]
async fn the_pool_never_scales_taskmanagers_to_zero() {
    let one = fixture("scale-2.json").replace("\"replicas\": 2", "\"replicas\": 1");
    let fake = serve(Reply::Routes(vec![Route::new("GET", PATH, 200, &one)])).await;
    let err = KubernetesPool::new(client(&fake.url, WorkloadKind::Deployment))
        .remove()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not scaling it to 0"), "{err}");
    assert!(fake.requests().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn a_forbidden_patch_reports_the_api_message() {
    let fake = serve(Reply::Routes(vec![
        Route::new("GET", PATH, 200, &fixture("scale-2.json")),
        Route::new("PATCH", PATH, 403, &fixture("forbidden.json")),
    ]))
    .await;
    let err = KubernetesPool::new(client(&fake.url, WorkloadKind::Deployment))
        .add()
        .await
        .unwrap_err();
    match err {
        EngineError::Status { status, body, .. } => {
            assert_eq!(status, 403);
            assert!(body.contains("cannot patch resource"), "{body}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn statefulsets_use_their_own_path() {
    let path = PATH.replace("deployments", "statefulsets");
    let fake = serve(Reply::Routes(vec![Route::new(
        "GET",
        &path,
        200,
        &fixture("scale-2.json"),
    )]))
    .await;
    client(&fake.url, WorkloadKind::StatefulSet)
        .get()
        .await
        .unwrap();
    assert_eq!(fake.requests()[0].path, path);
}

const STS: &str = "/apis/apps/v1/namespaces/streaming/statefulsets/flink-taskmanager/scale";

/// Kafka Streams instances as a StatefulSet's replicas: a rescale patches `spec.replicas`, is
/// pending until the controller reports them, and a request beyond the partitions is refused
/// without calling the API. (The readiness collector is left out here: no Prometheus.)
#[tokio::test]
async fn instances_scale_a_statefulset_and_wait_for_the_controller() {
    use daedalus_host::engine::kubernetes::KubernetesInstances;
    use daedalus_host::engine::{Actuator, ApplyOutcome, Progress, Target};
    let fake = serve(Reply::Routes(vec![
        Route::new("GET", STS, 200, &fixture("scale-2.json")),
        Route::new("PATCH", STS, 200, &fixture("scale-3.json")),
    ]))
    .await;
    let k = KubernetesInstances::new(client(&fake.url, WorkloadKind::StatefulSet), 4);
    assert!(matches!(
        k.apply(&Target::job(6)).await.unwrap(),
        ApplyOutcome::Rejected(_)
    ));
    assert!(
        fake.requests().is_empty(),
        "nothing sent beyond the partitions"
    );
    assert_eq!(
        k.apply(&Target::job(2)).await.unwrap(),
        ApplyOutcome::AlreadyAtTarget
    );
    assert!(matches!(
        k.apply(&Target::job(3)).await.unwrap(),
        ApplyOutcome::Applied(_)
    ));
    let patch = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.body, r#"{"spec":{"replicas":3}}"#);
    assert_eq!(k.desired().load(std::sync::atomic::Ordering::SeqCst), 3);
    // The double still reports 2 replicas: the rescale is pending.
    assert!(matches!(
        k.progress(&Target::job(3)).await.unwrap(),
        Progress::Pending(_)
    ));
    assert_eq!(k.progress(&Target::job(2)).await.unwrap(), Progress::Done);
}

/// Before the host has rescaled a Kafka Streams workload, its collector learns the replica
/// count from the workload (it used to report "no instance runs" until a rescale that could
/// never be decided). While the job is not ready it reads the count again, so a workload
/// scaled from outside (here from 3 to the 2 the API server reports) is followed (the count
/// stayed stale and the job not ready for good). The inner collector is a double: the
/// Prometheus side is not under test.
#[tokio::test]
async fn the_instances_collector_reads_the_replicas_before_any_rescale() {
    use daedalus_host::engine::kubernetes::{KubernetesInstances, ReadsReplicas};
    use daedalus_host::engine::{Collected, Collector};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    struct SeesExpected(Arc<AtomicU32>);
    #[async_trait::async_trait]
    impl Collector for SeesExpected {
        async fn collect(&self, _now_ms: u64) -> Result<Collected, EngineError> {
            Ok(Collected::NotReady {
                reason: "double".into(),
                parallelism: Some(self.0.load(Ordering::SeqCst)),
            })
        }
    }
    let fake = serve(Reply::Routes(vec![Route::new(
        "GET",
        STS,
        200,
        &fixture("scale-2.json"),
    )]))
    .await;
    let k = KubernetesInstances::new(client(&fake.url, WorkloadKind::StatefulSet), 4);
    let reads = ReadsReplicas::new(&k, Box::new(SeesExpected(k.desired())));
    for _ in 0..3 {
        match reads.collect(0).await.unwrap() {
            Collected::NotReady { parallelism, .. } => assert_eq!(parallelism, Some(2)),
            other => panic!("{other:?}"),
        }
    }
    // Read before the first collection, then after each one that found the job not ready.
    assert_eq!(fake.requests().len(), 4);
    k.desired().store(3, Ordering::SeqCst);
    let mut seen = Vec::new();
    for _ in 0..2 {
        match reads.collect(0).await.unwrap() {
            Collected::NotReady { parallelism, .. } => seen.push(parallelism),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, [Some(3), Some(2)]);
}

// --- Reaching a real-shaped API server: TLS, kubeconfig, in-cluster, exec plugins ---------
//
// The double speaks HTTPS with certificates made at test time (`Pki`) and, like a kube-apiserver
// set up for x509 client auth, can refuse clients without a certificate its CA signed.

use base64::Engine as _;
use daedalus_host::engine::kubeconfig::{KubeConnection, load_kubeconfig};
use daedalus_host::live::config::KubeWorkload;
use daedalus_tests::fake_http::{Pki, serve_tls};
use std::path::Path;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn connect(conn: &KubeConnection) -> KubeScale {
    KubeScale::connect(
        conn,
        "streaming",
        WorkloadKind::Deployment,
        "flink-taskmanager",
        Duration::from_secs(5),
    )
    .unwrap()
}

/// A kubeconfig for `server` with the CA in a file beside it and the user's `user` block.
fn kubeconfig(dir: &Path, server: &str, ca_pem: &str, user: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("ca.pem"), ca_pem).unwrap();
    let path = dir.join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority: ca.pem\nusers:\n- name: me\n  user:\n{user}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: me\n    namespace: streaming\n"
        ),
    )
    .unwrap();
    path
}

fn scale_routes() -> Reply {
    Reply::Routes(vec![
        Route::new("GET", PATH, 200, &fixture("scale-2.json")),
        Route::new("PATCH", PATH, 200, &fixture("scale-3.json")),
    ])
}

#[tokio::test]
async fn a_kubeconfig_client_certificate_reaches_an_api_server_that_demands_one() {
    let pki = Pki::new();
    let fake = serve_tls(scale_routes(), &pki, true).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("me.key"), &pki.client_key_pem).unwrap();
    let user = format!(
        "    client-certificate-data: {}\n    client-key: me.key\n",
        b64(&pki.client_cert_pem)
    );
    let conn = load_kubeconfig(
        &[kubeconfig(dir.path(), &fake.url, &pki.ca_pem, &user)],
        None,
    )
    .unwrap();
    assert_eq!(conn.namespace.as_deref(), Some("streaming"));
    let pool = KubernetesPool::new(connect(&conn));
    pool.add().await.unwrap();
    let reqs = fake.requests();
    assert_eq!(
        reqs.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        ["GET", "PATCH"]
    );
    assert!(fake.handshake_failures().is_empty());
}

#[tokio::test]
async fn without_the_client_certificate_the_handshake_is_refused() {
    let pki = Pki::new();
    let fake = serve_tls(scale_routes(), &pki, true).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = load_kubeconfig(
        &[kubeconfig(
            dir.path(),
            &fake.url,
            &pki.ca_pem,
            "    token: abc\n",
        )],
        None,
    )
    .unwrap();
    let err = connect(&conn).get().await.unwrap_err();
    assert!(matches!(err, EngineError::Unreachable { .. }), "{err:?}");
    assert!(fake.requests().is_empty(), "no request got through");
    assert!(
        !fake.handshake_failures().is_empty(),
        "the server refused it"
    );
}

#[tokio::test]
async fn a_server_certificate_the_cluster_ca_did_not_sign_is_refused() {
    let pki = Pki::new();
    let fake = serve_tls(scale_routes(), &pki, false).await;
    let dir = tempfile::tempdir().unwrap();
    let conn = load_kubeconfig(
        &[kubeconfig(
            dir.path(),
            &fake.url,
            &pki.other_ca_pem,
            "    token: abc\n",
        )],
        None,
    )
    .unwrap();
    let err = connect(&conn).get().await.unwrap_err();
    let EngineError::Unreachable { detail, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        detail.to_lowercase().contains("certificate"),
        "the reason names the certificate: {detail}"
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn in_cluster_uses_the_service_account_and_rereads_a_rotated_token() {
    let pki = Pki::new();
    let fake = serve_tls(scale_routes(), &pki, false).await;
    let sa = tempfile::tempdir().unwrap();
    std::fs::write(sa.path().join("ca.crt"), &pki.ca_pem).unwrap();
    std::fs::write(sa.path().join("token"), "sa-token-1\n").unwrap();
    std::fs::write(sa.path().join("namespace"), "streaming").unwrap();
    let port = fake.url.rsplit(':').next().unwrap().to_string();
    let workload: KubeWorkload = toml::from_str(&format!(
        "auth = \"in-cluster\"\nservice_account_dir = {:?}\nname = \"flink-taskmanager\"\n",
        sa.path().display().to_string()
    ))
    .unwrap();
    let env = |k: &str| match k {
        "KUBERNETES_SERVICE_HOST" => Some("127.0.0.1".to_string()),
        "KUBERNETES_SERVICE_PORT" => Some(port.clone()),
        _ => None,
    };
    let conn = workload.connection(env).unwrap();
    assert_eq!(workload.namespace_for(&conn), "streaming");
    let scale = connect(&conn);
    scale.get().await.unwrap();
    std::fs::write(sa.path().join("token"), "sa-token-2\n").unwrap();
    scale.get().await.unwrap();
    let auth: Vec<String> = fake
        .requests()
        .iter()
        .flat_map(|r| {
            r.headers
                .iter()
                .filter(|h| h.starts_with("authorization"))
                .cloned()
        })
        .collect();
    assert_eq!(
        auth,
        [
            "authorization: bearer sa-token-1",
            "authorization: bearer sa-token-2"
        ]
    );
}

/// An exec credential plugin (a shell script here, `aws eks get-token` in real life): its token is
/// cached, renewed once when the API answers 401, and given the ExecCredential request.
#[tokio::test]
async fn an_exec_plugin_token_is_cached_and_renewed_after_a_401() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let script = dir.path().join("get-token");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nn=$(( $(cat {d}/count 2>/dev/null || echo 0) + 1 ))\necho $n > {d}/count\necho \"$KUBERNETES_EXEC_INFO\" > {d}/info\necho \"{{\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{{\\\"token\\\":\\\"t-$n\\\",\\\"expirationTimestamp\\\":\\\"$1\\\"}}}}\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let scale_2 = fixture("scale-2.json");
    let pki = Pki::new();
    let fake = serve_tls(
        Reply::Sequence(vec![
            (401, r#"{"message":"Unauthorized"}"#.into()),
            (200, scale_2),
        ]),
        &pki,
        false,
    )
    .await;
    let user = |expiry: &str| {
        format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: ./get-token\n      args: [\"{expiry}\"]\n"
        )
    };
    let cfg = kubeconfig(
        dir.path(),
        &fake.url,
        &pki.ca_pem,
        &user("2999-01-01T00:00:00Z"),
    );
    let scale = connect(&load_kubeconfig(&[cfg], None).unwrap());
    scale.get().await.unwrap();
    scale.get().await.unwrap();
    let bearer = |r: &daedalus_tests::fake_http::Recorded| {
        r.headers
            .iter()
            .find_map(|h| h.strip_prefix("authorization: bearer "))
            .unwrap_or("")
            .to_string()
    };
    let tokens: Vec<String> = fake.requests().iter().map(bearer).collect();
    assert_eq!(
        tokens,
        ["t-1", "t-2", "t-2"],
        "renewed after the 401, then cached"
    );
    let info = std::fs::read_to_string(dir.path().join("info")).unwrap();
    assert!(info.contains("\"kind\":\"ExecCredential\""), "{info}");

    // A token that has expired is renewed on every call.
    let cfg = kubeconfig(
        dir.path(),
        &fake.url,
        &pki.ca_pem,
        &user("2001-01-01T00:00:00Z"),
    );
    let scale = connect(&load_kubeconfig(&[cfg], None).unwrap());
    scale.get().await.unwrap();
    scale.get().await.unwrap();
    let tokens: Vec<String> = fake.requests().iter().skip(3).map(bearer).collect();
    assert_eq!(tokens, ["t-3", "t-4"]);
}

#[tokio::test]
async fn a_failing_exec_plugin_is_a_clear_error_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("get-token");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'no credentials for cluster east' >&2\nexit 3\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pki = Pki::new();
    let fake = serve_tls(scale_routes(), &pki, false).await;
    let cfg = kubeconfig(
        dir.path(),
        &fake.url,
        &pki.ca_pem,
        "    exec:\n      command: ./get-token\n",
    );
    let err = connect(&load_kubeconfig(&[cfg], None).unwrap())
        .get()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("credential plugin") && err.contains("no credentials for cluster east"),
        "{err}"
    );
    assert!(fake.requests().is_empty());
}
