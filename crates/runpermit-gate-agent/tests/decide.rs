//! `POST /v1/decide` and `GET /healthz` through the router, in process.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{AUTHORITY, CLUSTER, World, post};
use http_body_util::BodyExt;
use runpermit_gate::{Code, Decision, JobRequest, PermitEvidence};
use runpermit_gate_agent::{Agent, router};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn decide(agent: &Arc<Agent>, job: &JobRequest) -> Decision {
    let (status, body) = post(agent, "/v1/decide", serde_json::to_vec(job).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn decisions_round_trip() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let agent = world.agent(dir.path());
    let mut job = JobRequest {
        cluster: CLUSTER.into(),
        accelerators: 2048,
        hours: Some(24.0),
        permit: Some(PermitEvidence {
            token: world.main.token.clone(),
            proof_bundle: world.main.proof.clone(),
        }),
    };
    let allowed = decide(&agent, &job).await;
    assert_eq!(allowed.code, Code::Permitted, "{}", allowed.message);
    assert!(allowed.allow);
    assert_eq!(allowed.permit_id.as_deref(), Some("pmt_main"));
    assert_eq!(
        allowed,
        agent.decide(&job),
        "HTTP and in-process decisions agree"
    );

    job.accelerators = 8192;
    let refused = decide(&agent, &job).await;
    assert_eq!(refused.code, Code::TooManyAccelerators);
    assert!(!refused.allow);

    job.permit = None;
    assert_eq!(decide(&agent, &job).await.code, Code::PermitRequired);
    job.cluster = "elsewhere".into();
    assert_eq!(decide(&agent, &job).await.code, Code::UnknownCluster);
}

#[tokio::test]
async fn malformed_jobs_name_the_field() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let agent = world.agent(dir.path());
    for (body, field) in [
        (json!({"accelerators": 8}), "cluster"),
        (
            json!({"cluster": CLUSTER, "accelerators": "eight"}),
            "accelerators",
        ),
        (
            json!({"cluster": CLUSTER, "accelerators": 8, "gpus": 8}),
            "gpus",
        ),
        (
            json!({"cluster": CLUSTER, "accelerators": 8, "permit": {"token": "a.b.c"}}),
            "permit.proof_bundle",
        ),
    ] {
        let (status, bytes) = post(&agent, "/v1/decide", serde_json::to_vec(&body).unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(answer["error"], "invalid_input");
        assert_eq!(answer["errors"][0]["field"], field, "{answer}");
    }
    let (status, bytes) = post(&agent, "/v1/decide", b"{\"cluster\":".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(answer["error"], "bad_request");
}

#[tokio::test]
async fn health_reports_the_status_list() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let get = |agent: Arc<Agent>| async move {
        let response = router(agent)
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    let bare = Arc::new(world.bare_agent(dir.path()));
    assert_eq!(
        get(bare).await,
        json!({"status": "ok", "cluster": CLUSTER, "status_list": {"version": null, "freshness": "missing"}})
    );
    let agent = world.agent(dir.path());
    assert_eq!(
        get(agent).await["status_list"],
        json!({"version": 1, "freshness": "fresh"})
    );
    // Past exp (NOW - 60 + 3600) plus the 300 s default grace, the list is stale.
    let later = Arc::new(
        world
            .bare_agent(dir.path())
            .with_clock(|| common::NOW + 4000),
    );
    assert_eq!(
        get(later).await["status_list"],
        json!({"version": 1, "freshness": "stale"})
    );
}
