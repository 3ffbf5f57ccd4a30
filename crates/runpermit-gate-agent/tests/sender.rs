//! Usage reports shipped over HTTP to a local test authority that checks each signature, as
//! the authority's ingestion will (it lands with the oversight issue).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use runpermit_compute::HardwareTable;
use runpermit_gate::scheduler_accounting;
use runpermit_gate_agent::sender::http_sender;
use runpermit_gate_agent::{Backoff, UsageQueue};
use runpermit_permit::{Jwks, SigningKey, UsageReportClaims, verify_usage_report};
use serde_json::Value;

/// What the test authority saw: (run, seq) stored, in order, and how to answer next.
#[derive(Default)]
struct Seen {
    stored: Vec<(String, u64)>,
    /// Answer 503 to this many requests first.
    unavailable: usize,
}

async fn usage(
    State((keys, seen)): State<(Arc<Jwks>, Arc<Mutex<Seen>>)>,
    Json(body): Json<Value>,
) -> (StatusCode, String) {
    let mut seen = seen.lock().expect("lock");
    if seen.unavailable > 0 {
        seen.unavailable -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "try later".into());
    }
    for token in body["reports"].as_array().into_iter().flatten() {
        match verify_usage_report(token.as_str().unwrap_or(""), &keys) {
            Ok(claims) => {
                let id = (claims.sub, claims.seq);
                if !seen.stored.contains(&id) {
                    seen.stored.push(id);
                }
            }
            Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        }
    }
    (StatusCode::ACCEPTED, "{}".into())
}

fn claims(run: &str) -> UsageReportClaims {
    let chip = HardwareTable::builtin().lookup("H100 SXM").expect("chip");
    let metered = scheduler_accounting(chip, 3600.0, None).expect("metered");
    UsageReportClaims::new(
        "org-cloud",
        run,
        "pmt_1",
        "us-east-1",
        0,
        (1_800_000_000, 1_800_003_600),
        1_800_003_601,
        metered,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_reach_an_authority_that_checks_signatures_exactly_once() {
    let provider = SigningKey::generate();
    let stranger = SigningKey::generate();
    let seen = Arc::new(Mutex::new(Seen {
        unavailable: 2,
        ..Seen::default()
    }));
    let keys = Arc::new(Jwks::from_keys(&[provider.public()]));
    let app = axum::Router::new()
        .route("/v1/usage", post(usage))
        .with_state((keys, seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("temp dir");
    let outcome = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        move || {
            let mut queue = UsageQueue::open(&dir).expect("queue");
            queue.enqueue(claims("run_a"), &provider).expect("enqueue");
            queue.enqueue(claims("run_a"), &provider).expect("enqueue");
            queue.enqueue(claims("run_b"), &provider).expect("enqueue");
            // A report signed by a key the authority does not know: refused for good.
            queue.enqueue(claims("run_c"), &stranger).expect("enqueue");
            let mut send = http_sender(&url, Duration::from_secs(5));
            let mut backoff =
                Backoff::with_seed(Duration::from_millis(1), Duration::from_millis(4), 7);
            let mut attempts = 0;
            let mut last = None;
            while !queue.pending().is_empty() && attempts < 20 {
                let outcome = queue
                    .ship(
                        &mut send,
                        &mut backoff,
                        Instant::now() + Duration::from_secs(attempts),
                    )
                    .expect("ship");
                attempts += 1;
                last = Some(outcome);
            }
            (
                attempts,
                last,
                queue.dead_letters().expect("dead letters").len(),
            )
        }
    })
    .await
    .expect("shipping");
    let (attempts, last, dead) = outcome;
    let seen = seen.lock().expect("lock");
    assert_eq!(
        seen.stored,
        vec![
            ("run_a".to_owned(), 1),
            ("run_a".to_owned(), 2),
            ("run_b".to_owned(), 1)
        ],
        "every report stored once, in order"
    );
    assert!(attempts >= 3, "two 503s were retried: {attempts} attempts");
    assert_eq!(dead, 1, "the report the authority refused is dead-lettered");
    assert_eq!(last.expect("an outcome").pending, 0);
}

#[test]
fn an_unreachable_authority_is_a_transient_failure() {
    let mut send = http_sender("http://127.0.0.1:9", Duration::from_millis(500));
    match send("a.b.c") {
        Err(runpermit_gate_agent::SendError::Transient(m)) => {
            assert!(m.contains("127.0.0.1:9"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_report_keeps_the_authoritys_reason_for_it() {
    // The authority's answer to a refused batch (runpermit-api's `UsageRefused`).
    let refusal = serde_json::json!({
        "error": "usage_refused",
        "message": "1 of 1 report(s) refused, so none of this batch was stored; first: …",
        "refused": 1,
        "results": [{"index": 0, "status": "refused",
                     "error": "no registered reporting key has kid \"k1\""}],
    });
    let app = axum::Router::new().route(
        "/v1/usage",
        post(move || {
            let body = refusal.to_string();
            async move { (StatusCode::UNAUTHORIZED, body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let outcome = tokio::task::spawn_blocking(move || {
        let mut send = http_sender(&url, Duration::from_secs(5));
        send("a.b.c")
    })
    .await
    .expect("sending");
    match outcome {
        Err(runpermit_gate_agent::SendError::Rejected(reason)) => {
            assert!(
                reason.ends_with("HTTP 401: no registered reporting key has kid \"k1\""),
                "{reason}"
            );
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}
