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
