//! The webhook with real AdmissionReview v1 documents: objects built from the Kubernetes API
//! types (k8s-openapi), wrapped in kube's `AdmissionReview`, sent through the router, and the
//! answers parsed with the same types.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use common::{AUTHORITY, Logged, World, post};
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Pod, PodSpec, PodTemplateSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::{DynamicObject, GroupVersionKind, GroupVersionResource, TypeMeta};
use runpermit_gate_agent::{Agent, PERMIT_ANNOTATION, PROOF_ANNOTATION};

/// A container requesting `gpus` NVIDIA GPUs (as a limit), or none.
fn container(name: &str, gpus: Option<&str>) -> Container {
    let limits = gpus.map(|n| {
        BTreeMap::from([
            ("nvidia.com/gpu".to_owned(), Quantity(n.to_owned())),
            ("cpu".to_owned(), Quantity("16".to_owned())),
        ])
    });
    Container {
        name: name.into(),
        image: Some("ghcr.io/example/train:1".into()),
        resources: Some(ResourceRequirements {
            limits,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn annotations(permit: Option<&Logged>) -> Option<BTreeMap<String, String>> {
    permit.map(|p| {
        BTreeMap::from([
            (PERMIT_ANNOTATION.to_owned(), p.token.clone()),
            (PROOF_ANNOTATION.to_owned(), p.proof.clone()),
        ])
    })
}

fn pod_spec(gpus: Option<&str>, deadline: Option<i64>) -> PodSpec {
    PodSpec {
        containers: vec![container("train", gpus)],
        active_deadline_seconds: deadline,
        restart_policy: Some("Never".into()),
        ..Default::default()
    }
}

fn pod(gpus: Option<&str>, permit: Option<&Logged>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("train-0".into()),
            namespace: Some("ml".into()),
            annotations: annotations(permit),
            ..Default::default()
        },
        spec: Some(pod_spec(gpus, None)),
        ..Default::default()
    }
}

/// A Job of `parallelism` pods of `gpus` each, the permit on the Job or on its template.
fn job(parallelism: i32, gpus: &str, on_job: Option<&Logged>, on_template: Option<&Logged>) -> Job {
    Job {
        metadata: ObjectMeta {
            name: Some("pretrain".into()),
            namespace: Some("ml".into()),
            annotations: annotations(on_job),
            ..Default::default()
        },
        spec: Some(JobSpec {
            parallelism: Some(parallelism),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    annotations: annotations(on_template),
                    ..Default::default()
                }),
                spec: Some(pod_spec(Some(gpus), None)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An AdmissionReview v1 request for `object` of kind `gvk`, serialized by kube's types.
fn review<K: serde::Serialize>(
    uid: &str,
    (group, version, kind, resource): (&str, &str, &str, &str),
    operation: Operation,
    object: &K,
) -> Vec<u8> {
    let object: DynamicObject =
        serde_json::from_value(serde_json::to_value(object).unwrap()).unwrap();
    let (object, old_object) = match operation {
        Operation::Delete => (None, Some(object)),
        _ => (Some(object), None),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let gvr = GroupVersionResource::gvr(group, version, resource);
    let request = AdmissionRequest {
        types: TypeMeta::default(),
        uid: uid.into(),
        kind: gvk.clone(),
        resource: gvr.clone(),
        sub_resource: None,
        request_kind: Some(gvk),
        request_resource: Some(gvr),
        request_sub_resource: None,
        name: "train-0".into(),
        namespace: Some("ml".into()),
        operation,
        user_info: UserInfo {
            username: Some("alice@example.org".into()),
            groups: Some(vec!["system:authenticated".into()]),
            ..Default::default()
        },
        object,
        old_object,
        dry_run: false,
        options: None,
    };
    serde_json::to_vec(&AdmissionReview {
        types: TypeMeta {
            api_version: "admission.k8s.io/v1".into(),
            kind: "AdmissionReview".into(),
        },
        request: Some(request),
        response: None,
    })
    .unwrap()
}

const POD: (&str, &str, &str, &str) = ("", "v1", "Pod", "pods");
const JOB: (&str, &str, &str, &str) = ("batch", "v1", "Job", "jobs");

/// Sends a review and parses the answer with kube's types; checks the envelope and the uid.
async fn admit(agent: &Arc<Agent>, uid: &str, body: Vec<u8>) -> AdmissionResponse {
    let (status, body) = post(agent, "/v1/admission", body).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(&body).unwrap();
    assert_eq!(review.types.api_version, "admission.k8s.io/v1");
    assert_eq!(review.types.kind, "AdmissionReview");
    let response = review.response.expect("a response");
    assert_eq!(response.uid, uid, "the response must echo request.uid");
    response
}

#[track_caller]
fn denied(response: &AdmissionResponse, code: &str) {
    assert!(!response.allowed, "{:?}", response.result.message);
    assert_eq!(response.result.code, 403);
    assert_eq!(response.result.reason, "Forbidden");
    assert!(
        response.result.message.starts_with(&format!("{code}: ")),
        "{}",
        response.result.message
    );
    assert_eq!(response.audit_annotations["decision"], code);
}

#[track_caller]
fn allowed(response: &AdmissionResponse, code: Option<&str>) {
    assert!(response.allowed, "{}", response.result.message);
    if let Some(code) = code {
        assert!(
            response.result.message.starts_with(&format!("{code}: ")),
            "{}",
            response.result.message
        );
        assert_eq!(response.audit_annotations["decision"], code);
    }
}

fn setup() -> (World, tempfile::TempDir, Arc<Agent>) {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let agent = world.agent(dir.path());
    (world, dir, agent)
}

#[tokio::test]
async fn gpu_pod_without_permit_is_denied() {
    let (_world, _dir, agent) = setup();
    let uid = "705ab4f5-6393-11e8-b7cc-42010a800002";
    let response = admit(
        &agent,
        uid,
        review(uid, POD, Operation::Create, &pod(Some("8"), None)),
    )
    .await;
    denied(&response, "permit_required");
    assert!(
        response.result.message.contains("no duration"),
        "{}",
        response.result.message
    );
    assert_eq!(response.audit_annotations["accelerators"], "8");
}

#[tokio::test]
async fn gpu_pod_with_permit_and_proof_is_allowed() {
    let (world, _dir, agent) = setup();
    let body = review(
        "uid-allowed",
        POD,
        Operation::Create,
        &pod(Some("8"), Some(&world.main)),
    );
    let response = admit(&agent, "uid-allowed", body).await;
    allowed(&response, Some("permitted"));
    assert_eq!(response.audit_annotations["permit-id"], "pmt_main");
}

#[tokio::test]
async fn a_tampered_permit_or_a_missing_proof_is_denied() {
    let (world, _dir, agent) = setup();
    let mut tampered = world.main.clone();
    tampered
        .token
        .replace_range(tampered.token.len() - 4.., "AAAA");
    let body = review(
        "u1",
        POD,
        Operation::Create,
        &pod(Some("8"), Some(&tampered)),
    );
    denied(&admit(&agent, "u1", body).await, "permit_bad_signature");

    let mut no_proof = pod(Some("8"), Some(&world.main));
    no_proof
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .remove(PROOF_ANNOTATION);
    let body = review("u2", POD, Operation::Create, &no_proof);
    denied(&admit(&agent, "u2", body).await, "proof_missing");
}

#[tokio::test]
async fn without_a_status_list_a_permitted_pod_is_refused() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let agent = Arc::new(world.bare_agent(dir.path()));
    let body = review(
        "u",
        POD,
        Operation::Create,
        &pod(Some("8"), Some(&world.main)),
    );
    denied(&admit(&agent, "u", body).await, "status_list_missing");
    // A CPU-only pod never depends on the list.
    let body = review("u", POD, Operation::Create, &pod(None, None));
    allowed(&admit(&agent, "u", body).await, None);
}

#[tokio::test]
async fn job_above_the_permits_maximum_is_denied() {
    let (world, _dir, agent) = setup();
    // 4 pods × 8 GPUs = 32 > the small permit's 16.
    let body = review(
        "u-job",
        JOB,
        Operation::Create,
        &job(4, "8", Some(&world.small), None),
    );
    let response = admit(&agent, "u-job", body).await;
    denied(&response, "too_many_accelerators");
    assert_eq!(response.audit_annotations["accelerators"], "32");
    assert_eq!(response.audit_annotations["permit-id"], "pmt_small");
}

#[tokio::test]
async fn job_permit_on_the_pod_template_counts_and_completions_bound_parallelism() {
    let (world, _dir, agent) = setup();
    // 2 × 8 = 16 ≤ 16, the annotations on the template only.
    let body = review(
        "u",
        JOB,
        Operation::Create,
        &job(2, "8", None, Some(&world.small)),
    );
    allowed(&admit(&agent, "u", body).await, Some("permitted"));
    // parallelism 4 but completions 2: at most 2 pods run at once.
    let mut bounded = job(4, "8", Some(&world.small), None);
    bounded.spec.as_mut().unwrap().completions = Some(2);
    let response = admit(&agent, "u", review("u", JOB, Operation::Create, &bounded)).await;
    allowed(&response, Some("permitted"));
    assert_eq!(response.audit_annotations["accelerators"], "16");
}

#[tokio::test]
async fn only_a_jobs_own_deadline_bounds_it() {
    let (_world, _dir, agent) = setup();
    // Pods that may each run an hour do not bound the Job: retries and waves of pods.
    let mut pods_bounded = job(2, "8", None, None);
    let spec = pods_bounded.spec.as_mut().unwrap();
    spec.template.spec.as_mut().unwrap().active_deadline_seconds = Some(3600);
    let body = review("u", JOB, Operation::Create, &pods_bounded);
    let response = admit(&agent, "u", body).await;
    denied(&response, "permit_required");
    assert!(
        response.result.message.contains("no duration"),
        "{}",
        response.result.message
    );
    // The Job's own deadline does.
    pods_bounded.spec.as_mut().unwrap().active_deadline_seconds = Some(3600);
    let body = review("u", JOB, Operation::Create, &pods_bounded);
    allowed(&admit(&agent, "u", body).await, Some("below_threshold"));
}

#[tokio::test]
async fn small_gpu_pod_with_a_deadline_is_below_the_threshold() {
    let (_world, _dir, agent) = setup();
    let mut small = pod(Some("8"), None);
    small.spec.as_mut().unwrap().active_deadline_seconds = Some(3600);
    let body = review("u", POD, Operation::Create, &small);
    allowed(&admit(&agent, "u", body).await, Some("below_threshold"));
}

#[tokio::test]
async fn cpu_only_pods_deletes_and_other_kinds_are_allowed() {
    let (world, _dir, agent) = setup();
    let body = review("u-cpu", POD, Operation::Create, &pod(None, None));
    let response = admit(&agent, "u-cpu", body).await;
    allowed(&response, None);
    assert!(response.audit_annotations.is_empty());

    let body = review("u-del", POD, Operation::Delete, &pod(Some("4096"), None));
    allowed(&admit(&agent, "u-del", body).await, None);
    let body = review("u-upd", JOB, Operation::Update, &job(512, "8", None, None));
    allowed(&admit(&agent, "u-upd", body).await, None);

    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("settings".into()),
            annotations: annotations(Some(&world.main)),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("nvidia.com/gpu".into(), "4096".into())])),
        ..Default::default()
    };
    let body = review(
        "u-cm",
        ("", "v1", "ConfigMap", "configmaps"),
        Operation::Create,
        &config_map,
    );
    allowed(&admit(&agent, "u-cm", body).await, None);
}

#[tokio::test]
async fn a_fractional_gpu_quantity_is_refused() {
    let (_world, _dir, agent) = setup();
    let body = review("u", POD, Operation::Create, &pod(Some("500m"), None));
    let response = admit(&agent, "u", body).await;
    denied(&response, "invalid_request");
    assert!(
        response
            .result
            .message
            .contains("spec.containers[0].resources.limits[nvidia.com/gpu]"),
        "{}",
        response.result.message
    );
}

#[tokio::test]
async fn malformed_reviews_get_400() {
    let (_world, _dir, agent) = setup();
    let good = review("u", POD, Operation::Create, &pod(Some("8"), None));
    let mut v1beta1: serde_json::Value = serde_json::from_slice(&good).unwrap();
    v1beta1["apiVersion"] = "admission.k8s.io/v1beta1".into();
    let mut no_uid: serde_json::Value = serde_json::from_slice(&good).unwrap();
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let mut no_request: serde_json::Value = serde_json::from_slice(&good).unwrap();
    no_request.as_object_mut().unwrap().remove("request");
    for (body, fragment) in [
        (b"{not json".to_vec(), "not an AdmissionReview v1 request"),
        (
            serde_json::to_vec(&v1beta1).unwrap(),
            "admission.k8s.io/v1beta1",
        ),
        (serde_json::to_vec(&no_uid).unwrap(), "missing field `uid`"),
        (
            serde_json::to_vec(&no_request).unwrap(),
            "missing field `request`",
        ),
    ] {
        let (status, body) = post(&agent, "/v1/admission", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "bad_request");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(fragment), "{message}");
    }
}

/// A review exactly as kube-apiserver sends it (the JSON of a `kubectl apply` of a GPU pod,
/// with the server-set fields), not built by our test types.
#[tokio::test]
async fn a_verbatim_apiserver_review_is_answered() {
    let (_world, _dir, agent) = setup();
    let body = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{
      "uid":"0c9a8d74-9cb7-44dd-b98e-09fd62def2f4",
      "kind":{"group":"","version":"v1","kind":"Pod"},
      "resource":{"group":"","version":"v1","resource":"pods"},
      "requestKind":{"group":"","version":"v1","kind":"Pod"},
      "requestResource":{"group":"","version":"v1","resource":"pods"},
      "name":"trainer","namespace":"ml","operation":"CREATE",
      "userInfo":{"username":"alice@example.org","groups":["system:authenticated"]},
      "object":{"kind":"Pod","apiVersion":"v1",
        "metadata":{"name":"trainer","namespace":"ml","creationTimestamp":null,
          "annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}\n"}},
        "spec":{"containers":[{"name":"train","image":"ghcr.io/example/train:1",
          "resources":{"limits":{"nvidia.com/gpu":"8"},"requests":{"nvidia.com/gpu":"8"}},
          "terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File",
          "imagePullPolicy":"IfNotPresent"}],
          "initContainers":[{"name":"fetch","image":"busybox","resources":{}}],
          "restartPolicy":"Never","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst",
          "serviceAccountName":"default","securityContext":{},"schedulerName":"default-scheduler",
          "priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},
        "status":{}},
      "oldObject":null,"dryRun":false,
      "options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1","fieldManager":"kubectl-client-side-apply"}}}"#;
    let response = admit(&agent, "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4", body.into()).await;
    denied(&response, "permit_required");
}
