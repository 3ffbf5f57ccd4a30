//! The gateway end to end, in-process, in front of a minimal OpenAI-compatible upstream
//! written here (an axum handler answering a chat.completion with `usage`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use common::{NOW, World};
use http_body_util::BodyExt;
use runpermit_access::GatewayConfig;
use runpermit_access::gateway::{Clock, Gateway};
use runpermit_permit::{Jwks, PermitStatus, SigningKey, StatusEntry, verify_access_usage};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The minimal OpenAI-compatible upstream: a chat.completion with 10 prompt and 5
/// completion tokens, echoing the model it was asked for.
async fn minimal_openai_compatible_upstream() -> String {
    async fn chat(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
        axum::Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": NOW,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }))
    }
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(chat));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

struct Setup {
    dir: tempfile::TempDir,
    config: GatewayConfig,
    clock: Arc<AtomicI64>,
    reporting: SigningKey,
}

impl Setup {
    fn open(&self) -> Arc<Gateway> {
        let c = self.clock.clone();
        let clock: Clock = Arc::new(move || c.load(Ordering::SeqCst));
        Arc::new(Gateway::open(self.config.clone(), clock).unwrap())
    }
}

async fn setup(world: &World) -> Setup {
    let upstream = minimal_openai_compatible_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("jwks.json"), world.jwks.to_json()).unwrap();
    let reporting = SigningKey::from_seed(&[7; 32]);
    std::fs::write(
        dir.path().join("reporting-key.pem"),
        reporting.to_pkcs8_pem().as_str(),
    )
    .unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, world.config_text(&upstream)).unwrap();
    let config = GatewayConfig::load(&path).unwrap();
    Setup {
        dir,
        config,
        clock: Arc::new(AtomicI64::new(NOW * 1000)),
        reporting,
    }
}

async fn call(
    gw: &Arc<Gateway>,
    grant: &str,
    proof: &str,
    body: Value,
) -> (StatusCode, Value, Option<String>) {
    let proof = base64::engine::general_purpose::STANDARD.encode(proof);
    let request = Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {grant}"))
        .header("x-runpermit-grant-proof", proof)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = gw.clone().router().oneshot(request).await.unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        retry,
    )
}

fn chat() -> Value {
    json!({"model": "example-7b", "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_meters_refuses_and_reports() {
    let w = World::new();
    let s = setup(&w).await;
    let gw = s.open();
    let main = &w.main;

    // No status list yet: 503.
    let (status, body, _) = call(&gw, &main.token, &main.proof, chat()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "status_list_missing");
    gw.accept_status_token(&w.status_token(1, NOW - 60, vec![]))
        .unwrap();

    // Served, with the upstream's model name sent upstream and tokens charged.
    let (status, body, _) = call(&gw, &main.token, &main.proof, chat()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "local-model");
    assert_eq!(gw.ledger().tokens("agr_main"), (10, 5));

    // Refusals.
    let mut logprobs = chat();
    logprobs["logprobs"] = json!(true);
    let (status, body, _) = call(&gw, &main.token, &main.proof, logprobs.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("tier_too_low"))
    );
    let (status, _, _) = call(&gw, &w.deep.token, &w.deep.proof, logprobs).await;
    assert_eq!(status, StatusCode::OK);
    let mut tampered = main.token.clone();
    tampered.insert(tampered.len() - 3, 'x');
    let (status, _, _) = call(&gw, &tampered, &main.proof, chat()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body, _) = call(&gw, &w.other_model.token, &w.other_model.proof, chat()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("grant_wrong_model"))
    );
    let (status, body, _) = call(&gw, &w.unlogged.token, &w.unlogged.proof, chat()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("proof_wrong_grant"))
    );
    let mut stream = chat();
    stream["stream"] = json!(true);
    let (status, _, _) = call(&gw, &main.token, &main.proof, stream).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Within quota (3 requests): two more, then 429 with the reset time.
    for _ in 0..2 {
        let (status, body, _) = call(&gw, &main.token, &main.proof, chat()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body, retry) = call(&gw, &main.token, &main.proof, chat()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["error"]["code"], "quota_exhausted");
    assert_eq!(body["error"]["retry_at"], NOW + 30 * 86_400);
    assert_eq!(retry.as_deref(), Some((30 * 86_400).to_string().as_str()));
    assert_eq!(gw.ledger().tokens("agr_main"), (30, 15));

    // Counters survive a restart.
    drop(gw);
    let gw = s.open();
    assert_eq!(gw.ledger().usage("agr_main").requests, 3);
    let (status, body, _) = call(&gw, &main.token, &main.proof, chat()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // Revoked on the status list (held across the restart too); the expired grant.
    let revoked = StatusEntry {
        permit_id: "agr_deep".into(),
        status: PermitStatus::Revoked,
        reason: "terms breached".into(),
        since: NOW - 10,
    };
    gw.accept_status_token(&w.status_token(2, NOW, vec![revoked]))
        .unwrap();
    let (status, body, _) = call(&gw, &w.deep.token, &w.deep.proof, chat()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("grant_revoked"))
    );
    s.clock.store((NOW + 200) * 1000, Ordering::SeqCst);
    let (status, body, _) = call(&gw, &w.short.token, &w.short.proof, chat()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("grant_expired"))
    );

    // Reports: nothing before the interval (600 s) ends; then one per grant with activity,
    // queued once, signed by the developer's key.
    assert_eq!(gw.ledger().roll(NOW + 500, false).unwrap(), 0);
    assert_eq!(gw.ledger().roll(NOW + 600, false).unwrap(), 2);
    assert_eq!(gw.ledger().roll(NOW + 600, false).unwrap(), 0);
    let keys = Jwks::from_keys(&[s.reporting.public()]);
    let reports: Vec<_> = gw
        .ledger()
        .pending()
        .iter()
        .map(|p| verify_access_usage(&p.token, &keys).unwrap())
        .collect();
    assert_eq!(reports.len(), 2);
    let main_report = reports.iter().find(|r| r.grant_id == "agr_main").unwrap();
    assert_eq!(
        (
            main_report.seq,
            main_report.requests,
            main_report.prompt_tokens,
            main_report.completion_tokens,
            main_report.refused
        ),
        (1, 3, 30, 15, 3)
    );
    assert_eq!(
        (main_report.iss.as_str(), main_report.model_id.as_str()),
        ("org_dev", "mdl_1")
    );
    let deep_report = reports.iter().find(|r| r.grant_id == "agr_deep").unwrap();
    assert_eq!((deep_report.requests, deep_report.refused), (1, 1));
    // Queued reports survive a restart too; acknowledging removes them for good.
    drop(gw);
    let gw = s.open();
    assert_eq!(gw.ledger().pending().len(), 2);
    assert!(gw.ledger().ack("agr_main", 1).unwrap());
    drop(gw);
    assert_eq!(s.open().ledger().pending().len(), 1);
    let _ = &s.dir;
}
