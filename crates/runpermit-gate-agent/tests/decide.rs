//! `POST /v1/decide`, `GET /healthz`, `GET /readyz` and `GET /metrics` through the router,
//! in process.

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

/// `GET path` through the router: the status and the body.
async fn get(agent: Arc<Agent>, path: &str) -> (StatusCode, String) {
    let response = router(agent)
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn ready_only_with_a_fresh_verified_status_list() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let ready = |agent: Agent| async move {
        let (status, body) = get(Arc::new(agent), "/readyz").await;
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    // No list yet.
    let (status, body) = ready(world.bare_agent(dir.path())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("no verified status list yet"),
        "{reason}"
    );
    assert!(reason.contains(AUTHORITY), "{reason}");
    assert!(!reason.contains("  "), "one space between words: {reason}");
    // A fresh list.
    let agent = world.agent(dir.path());
    let (status, body) = get(agent, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"status": "ready", "cluster": CLUSTER, "status_list": {"version": 1, "freshness": "fresh"}})
    );
    // The same list past exp (NOW - 60 + 3600) and the 300 s grace: stale, not ready.
    let later = world
        .bare_agent(dir.path())
        .with_clock(|| common::NOW + 4000);
    let (status, body) = ready(later).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the held status list (version 1) is 4060 s old"),
        "{reason}"
    );
    assert!(!reason.contains("  "), "one space between words: {reason}");
    // A list that does not verify is never held, so it does not make the gate ready.
    let stranger = runpermit_permit::SigningKey::from_seed(&[9; 32]);
    let claims =
        runpermit_permit::StatusListClaims::new(AUTHORITY, common::NOW - 60, 3600, 1, vec![]);
    let forged = runpermit_permit::sign_status_list(&claims, &stranger);
    let other = tempfile::tempdir().unwrap();
    let agent = world.bare_agent(other.path());
    assert!(agent.accept_status_token(&forged).is_err());
    assert_eq!(ready(agent).await.0, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn metrics_count_decisions_by_code_and_age_the_status_list() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let bare = Arc::new(world.bare_agent(dir.path()));
    let (status, text) = get(Arc::clone(&bare), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.lines()
            .any(|l| l == "runpermit_gate_status_list_fresh 0"),
        "{text}"
    );
    assert!(
        !text.contains("runpermit_gate_status_list_age_seconds "),
        "{text}"
    );
    // No metering configured: no usage report series.
    assert!(!text.contains("runpermit_gate_usage_reports"), "{text}");

    let agent = world.agent(dir.path());
    let job = JobRequest {
        cluster: CLUSTER.into(),
        accelerators: 2048,
        hours: Some(24.0),
        permit: None,
    };
    for _ in 0..2 {
        assert_eq!(decide(&agent, &job).await.code, Code::PermitRequired);
    }
    let small = JobRequest {
        accelerators: 8,
        ..job.clone()
    };
    assert_eq!(decide(&agent, &small).await.code, Code::BelowThreshold);
    let (_, text) = get(agent, "/metrics").await;
    for line in [
        "runpermit_gate_decisions_total{code=\"permit_required\"} 2",
        "runpermit_gate_decisions_total{code=\"below_threshold\"} 1",
        "runpermit_gate_status_list_fresh 1",
        "runpermit_gate_status_list_version 1",
        // Issued a minute before NOW.
        "runpermit_gate_status_list_age_seconds 60",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    assert!(
        text.contains("# HELP runpermit_gate_decisions_total"),
        "{text}"
    );
}
