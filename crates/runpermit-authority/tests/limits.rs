//! Rate limits, tried as an adversary would: a script creating applications or tokens as fast
//! as it can, and one address hammering public endpoints. Each limit trips deterministically
//! (small buckets, the test authority's clock standing still until moved) and answers 429
//! with `Retry-After` and the limit's name.
//!
//! Runs on in-memory SQLite; with `RUNPERMIT_TEST_DATABASE_URL` set, the scenarios that
//! touch the database also run on PostgreSQL.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{Api, plan};
use http_body_util::BodyExt;
use runpermit_authority::limits::{Limits, LimitsConfig};
use runpermit_authority::testing::TestAuthority;
use serde_json::{Value, json};
use tower::ServiceExt;

/// An API whose limits are `limits` (a `[limits]` section, as JSON).
async fn api_with(database_url: Option<&str>, limits: Value) -> Api {
    let mut authority = TestAuthority::new(database_url).await;
    let config: LimitsConfig = serde_json::from_value(limits).expect("a limits section");
    authority.state.limits = Arc::new(Limits::new(config).expect("valid limits"));
    let router = runpermit_authority::router(authority.state.clone());
    Api { authority, router }
}

/// One bucket of `burst` refilled at `count` per `period`.
fn bucket(burst: u32, count: u32, period: &str) -> Value {
    json!({"burst": burst, "count": count, "period": period})
}

/// A request as it arrives over a socket from `peer`: status, `Retry-After`, body.
async fn from(
    api: &Api,
    peer: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let mut request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let peer: SocketAddr = peer.parse().expect("a socket address");
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = api.router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ASCII").to_owned());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, retry_after, value)
}

/// As [`Api::call`], with the `Retry-After` header.
async fn call(
    api: &Api,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    let response = api.router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().expect("ASCII").to_owned());
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, retry_after, value)
}

/// Asserts a 429 naming `limit` with `Retry-After: retry_after`.
fn limited(answer: &(StatusCode, Option<String>, Value), limit: &str, retry_after: &str) {
    let (status, header, body) = answer;
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert_eq!(body["limit"], limit, "{body}");
    assert_eq!(header.as_deref(), Some(retry_after), "{body}");
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains(limit), "{message}");
    assert!(
        message.contains(&format!("retry in {retry_after} s")),
        "{message}"
    );
}

/// A draft application for a plan of its own (`name`).
fn draft(name: &str) -> Value {
    let mut p = plan("standard");
    p["run"]["name"] = json!(name);
    json!({"plan": p, "draft": true})
}

async fn applications_per_token_and_org(database_url: Option<&str>) {
    let api = api_with(
        database_url,
        json!({"defaults": {
            "applications_per_token": bucket(2, 2, "1h"),
            "applications_per_org": bucket(3, 3, "1h"),
        }}),
    )
    .await;
    let a = &api.authority;
    let (_, _, alice) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (_, _, bob) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let create = async |token: &str, name: &str| {
        call(&api, "POST", "/v1/applications", token, Some(draft(name))).await
    };
    let (status, _, first) = create(&alice, "a-1").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    // Submitting counts as applying too.
    let id = first["id"].as_str().expect("an id");
    let submitted = call(
        &api,
        "POST",
        &format!("/v1/applications/{id}/submit"),
        &alice,
        Some(json!({})),
    )
    .await;
    assert!(submitted.0.is_success(), "{}", submitted.2);
    // Two an hour per token: the third waits half an hour, and is not created.
    limited(
        &create(&alice, "a-3").await,
        "applications_per_token",
        "1800",
    );
    let (status, _, apps) = call(&api, "GET", "/v1/applications", &alice, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(apps.as_array().map(Vec::len), Some(1), "{apps}");
    // Another token of the same lab has its own bucket, but the lab's is shared: three an hour.
    let (status, _, body) = create(&bob, "b-1").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    limited(&create(&bob, "b-2").await, "applications_per_org", "1200");
    // Reads are not applications.
    let (status, _, _) = call(&api, "GET", "/v1/applications", &bob, None).await;
    assert_eq!(status, StatusCode::OK);
    // The clock moves on and the buckets refill.
    a.clock.advance_ms(1_800_000);
    let (status, _, body) = create(&alice, "a-4").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn applications_are_limited_per_token_and_per_organization() {
    applications_per_token_and_org(None).await;
}

#[tokio::test]
async fn applications_are_limited_on_postgres() {
    if let Some(db) = common::PgSchema::create("limits_applications") {
        applications_per_token_and_org(Some(&db.url)).await;
    }
}

async fn override_for_one_org(database_url: Option<&str>) {
    let api = api_with(
        database_url,
        json!({
            "defaults": {"applications_per_org": bucket(1, 1, "1d")},
            "overrides": [{
                "limit": "applications_per_org", "ids": ["org_big"],
                "burst": 3, "count": 3, "period": "1d",
                "comment": "a lab running an ablation sweep",
            }],
        }),
    )
    .await;
    let a = &api.authority;
    let (_, _, small) = a
        .member(("org_small", "Small Lab"), "developer", "applicant")
        .await;
    let (_, _, big) = a
        .member(("org_big", "Big Lab"), "developer", "applicant")
        .await;
    let create = async |token: &str, name: &str| {
        call(&api, "POST", "/v1/applications", token, Some(draft(name))).await
    };
    assert_eq!(create(&small, "s-1").await.0, StatusCode::CREATED);
    limited(
        &create(&small, "s-2").await,
        "applications_per_org",
        "86400",
    );
    for i in 0..3 {
        let (status, _, body) = create(&big, &format!("b-{i}")).await;
        assert_eq!(status, StatusCode::CREATED, "the override's burst: {body}");
    }
    limited(&create(&big, "b-3").await, "applications_per_org", "28800");
}

#[tokio::test]
async fn an_override_raises_a_limit_for_one_organization() {
    override_for_one_org(None).await;
}

#[tokio::test]
async fn an_override_raises_a_limit_on_postgres() {
    if let Some(db) = common::PgSchema::create("limits_override") {
        override_for_one_org(Some(&db.url)).await;
    }
}

#[tokio::test]
async fn token_creation_is_limited_per_token_and_per_organization() {
    let api = api_with(
        None,
        json!({"defaults": {
            "tokens_per_token": bucket(2, 2, "1h"),
            "tokens_per_org": bucket(3, 3, "1h"),
        }}),
    )
    .await;
    let a = &api.authority;
    let (_, alice_id, alice) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (_, bob_id, bob) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let mint = async |token: &str, member: &str| {
        call(
            &api,
            "POST",
            &format!("/v1/members/{member}/tokens"),
            token,
            Some(json!({"label": "ci", "expires_in_days": 30})),
        )
        .await
    };
    for _ in 0..2 {
        let (status, _, body) = mint(&alice, &alice_id).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    limited(&mint(&alice, &alice_id).await, "tokens_per_token", "1800");
    // A token minted by the limited one is a new token, but still the same organization.
    let (status, _, body) = mint(&bob, &bob_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let fresh = body["secret"].as_str().expect("a secret").to_owned();
    limited(&mint(&fresh, &bob_id).await, "tokens_per_org", "1200");
}

#[tokio::test]
async fn every_write_is_limited_per_token_and_per_organization() {
    let api = api_with(
        None,
        json!({"defaults": {
            "writes_per_token": bucket(2, 2, "1m"),
            "writes_per_org": bucket(3, 3, "1m"),
        }}),
    )
    .await;
    let a = &api.authority;
    let (_, _, alice) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (_, _, bob) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    // Any write counts, whatever its outcome: here a withdrawal of nothing (404).
    let write = async |token: &str| {
        call(
            &api,
            "POST",
            "/v1/applications/app_none/withdraw",
            token,
            Some(json!({"reason": "changed our minds"})),
        )
        .await
    };
    for _ in 0..2 {
        assert_eq!(write(&alice).await.0, StatusCode::NOT_FOUND);
    }
    limited(&write(&alice).await, "writes_per_token", "30");
    // Reads are not writes, and an unknown token is 401 without touching anyone's bucket.
    for _ in 0..5 {
        let (status, _, _) = call(&api, "GET", "/v1/whoami", &alice, None).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = write("rpt_not_a_token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(write(&bob).await.0, StatusCode::NOT_FOUND);
    limited(&write(&bob).await, "writes_per_org", "20");
    // An Idempotency-Key does not buy a second charge-free attempt.
    let (status, body) = api
        .call_with(
            "POST",
            "/v1/applications/app_none/withdraw",
            Some(&bob),
            Some(json!({"reason": "changed our minds"})),
            &[("idempotency-key", "k1")],
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn writes_and_reads_are_limited_per_source_address() {
    let api = api_with(
        None,
        json!({"defaults": {
            "writes_per_address": bucket(2, 2, "1m"),
            "reads_per_address": bucket(3, 3, "1m"),
        }}),
    )
    .await;
    let estimate = json!({"parameters": 7e9, "tokens": 2e12});
    // Public writes: nothing but the address to count them by.
    for _ in 0..2 {
        let (status, _, body) = from(
            &api,
            "192.0.2.1:4000",
            "POST",
            "/v1/estimate",
            Some(estimate.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    limited(
        &from(
            &api,
            "192.0.2.1:4001",
            "POST",
            "/v1/estimate",
            Some(estimate.clone()),
        )
        .await,
        "writes_per_address",
        "30",
    );
    let (status, _, _) = from(
        &api,
        "192.0.2.2:4000",
        "POST",
        "/v1/estimate",
        Some(estimate.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "another address has its own bucket");
    // Authenticated writes count against the address before the token is even looked up.
    limited(
        &from(
            &api,
            "192.0.2.1:4002",
            "POST",
            "/v1/applications",
            Some(json!({})),
        )
        .await,
        "writes_per_address",
        "30",
    );
    // One IPv6 /64 is one client.
    for peer in ["[2001:db8:1:2::1]:4000", "[2001:db8:1:2::ffff]:4000"] {
        let (status, _, _) = from(&api, peer, "POST", "/v1/estimate", Some(estimate.clone())).await;
        assert_eq!(status, StatusCode::OK);
    }
    limited(
        &from(
            &api,
            "[2001:db8:1:2:abcd::9]:4000",
            "POST",
            "/v1/estimate",
            Some(estimate.clone()),
        )
        .await,
        "writes_per_address",
        "30",
    );
    let (status, _, _) = from(
        &api,
        "[2001:db8:1:3::1]:4000",
        "POST",
        "/v1/estimate",
        Some(estimate),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the next /64 is another client");
    // Reads have their own, larger bucket.
    for _ in 0..3 {
        let (status, _, _) = from(&api, "192.0.2.1:4000", "GET", "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
    }
    limited(
        &from(&api, "192.0.2.1:4000", "GET", "/v1/status-list", None).await,
        "reads_per_address",
        "20",
    );
}

#[tokio::test]
async fn refusals_are_counted_in_metrics() {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    let handle = HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of this test binary")
    });
    let mut api = api_with(
        None,
        json!({"defaults": {"writes_per_address": bucket(1, 1, "1h")}}),
    )
    .await;
    api.authority.state.metrics = Some(handle.clone());
    api.router = runpermit_authority::router(api.authority.state.clone());
    let estimate = json!({"parameters": 7e9, "tokens": 2e12});
    let _ = from(
        &api,
        "203.0.113.1:1",
        "POST",
        "/v1/estimate",
        Some(estimate.clone()),
    )
    .await;
    let refused = from(
        &api,
        "203.0.113.1:1",
        "POST",
        "/v1/estimate",
        Some(estimate),
    )
    .await;
    limited(&refused, "writes_per_address", "3600");
    let (status, metrics) = api.raw("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(metrics).expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("runpermit_rate_limited_total{limit=\"writes_per_address\"}")),
        "{metrics}"
    );
}
