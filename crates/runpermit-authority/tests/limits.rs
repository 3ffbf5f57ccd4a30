//! Rate limits, tried as an adversary would: a script creating applications or tokens as fast
//! as it can, one address hammering public endpoints, and a forger who knows a provider's
//! `kid` and sends batches of bad signatures. Each limit trips deterministically (small
//! buckets, the test authority's clock standing still until moved) and answers 429 with
//! `Retry-After` and the limit's name.
//!
//! Runs on in-memory SQLite; with `RUNPERMIT_TEST_DATABASE_URL` set, the scenarios that
//! touch the database also run on PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use common::{Api, plan};
use http_body_util::BodyExt;
use runpermit_authority::domain::limits::{Limits, LimitsConfig};
use runpermit_authority::testing::TestAuthority;
use runpermit_compute::Flop;
use runpermit_permit::SigningKey;
use runpermit_permit::{MeterMethod, Metered, UsageReportClaims, sign_usage_report};
use serde_json::{Value, json};
use tower::ServiceExt;

/// An API whose limits are `limits` (a `[limits]` section, as JSON).
async fn api_with(database_url: Option<&str>, limits: Value) -> Api {
    let mut authority = TestAuthority::new(database_url).await;
    let config: LimitsConfig = serde_json::from_value(limits).expect("a limits section");
    authority.state.authority.limits = Arc::new(Limits::new(config).expect("valid limits"));
    let router = runpermit_authority::router(authority.state.clone());
    Api { authority, router }
}

/// One bucket of `burst` refilled at `count` per `period`.
fn bucket(burst: u32, count: u32, period: &str) -> Value {
    json!({"burst": burst, "count": count, "period": period})
}

/// An answer: status, `Retry-After`, body.
type Answer = (StatusCode, Option<String>, Value);

/// Sends a request with `token`, as if from `peer` over a socket when given.
async fn send(
    api: &Api,
    (method, path): (&str, &str),
    token: Option<&str>,
    peer: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let mut request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request");
    if let Some(peer) = peer {
        let peer: SocketAddr = peer.parse().expect("a socket address");
        request.extensions_mut().insert(ConnectInfo(peer));
    }
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

/// A request without a token as it arrives over a socket from `peer`.
async fn from(api: &Api, peer: &str, method: &str, path: &str, body: Option<Value>) -> Answer {
    send(api, (method, path), None, Some(peer), body).await
}

/// A request with `token`, in process (no peer address).
async fn call(api: &Api, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
    send(api, (method, path), Some(token), None, body).await
}

/// Asserts a 429 naming `limit` with `Retry-After: retry_after`.
fn limited(answer: &Answer, limit: &str, retry_after: &str) {
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

/// A provider with a registered reporting key, and a report for a run that does not exist
/// (verification comes before the run is looked up, so the answer shows how far it got).
struct Provider {
    key: SigningKey,
}

impl Provider {
    async fn register(api: &Api, org: &str) -> Provider {
        let (_, _, admin) = api.authority.member((org, org), "provider", "admin").await;
        let key = SigningKey::generate();
        let (status, body) = api
            .call(
                "POST",
                &format!("/v1/orgs/{org}/reporting-keys"),
                Some(&admin),
                Some(json!({"jwk": key.public().to_jwk()})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Provider { key }
    }
}

fn claims(provider: &str, seq: u64) -> UsageReportClaims {
    let seconds = 3600.0 * 8.0;
    let flop = Flop::new(seconds * 1e15).expect("flop");
    let metered = Metered {
        method: MeterMethod::SchedulerAccounting,
        accelerator_seconds: BTreeMap::from([("h100-sxm".to_owned(), seconds)]),
        flop,
        lower: Flop::ZERO,
        upper: flop,
    };
    let start = runpermit_authority::testing::T0_MS / 1000 - 7200;
    UsageReportClaims::new(
        provider,
        "run_none",
        "pmt_none",
        "c1",
        seq,
        (start, start + 3600),
        start + 3601,
        metered,
    )
}

/// A report signed by `key`.
fn signed(provider: &str, seq: u64, key: &SigningKey) -> String {
    sign_usage_report(&claims(provider, seq), key).expect("signing")
}

/// A report whose header names `kid` but whose signature is someone else's: what a forger
/// who knows a registered `kid` can send.
fn forged(provider: &str, seq: u64, kid_of: &SigningKey) -> String {
    let genuine = signed(provider, seq, kid_of);
    let stranger = signed(provider, seq, &SigningKey::generate());
    let (signing_input, _) = genuine.rsplit_once('.').expect("a JWS");
    let (_, signature) = stranger.rsplit_once('.').expect("a JWS");
    format!("{signing_input}.{signature}")
}

async fn ingest(api: &Api, reports: &[String]) -> Answer {
    from(
        api,
        "198.51.100.7:5000",
        "POST",
        "/v1/usage",
        Some(json!({"reports": reports})),
    )
    .await
}

fn statuses(body: &Value) -> Vec<&str> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_str().expect("a status"))
        .collect()
}

async fn failed_verifications_per_kid(database_url: Option<&str>) {
    let api = api_with(
        database_url,
        json!({"defaults": {"usage_failed_verifications_per_kid": bucket(2, 2, "1m")}}),
    )
    .await;
    let cloud = Provider::register(&api, "org_cloud").await;
    let other = Provider::register(&api, "org_other").await;
    // A batch stops at its first bad signature: one check, the rest not even verified.
    let batch = vec![forged("org_cloud", 1, &cloud.key); 50];
    for round in 0..2 {
        let (status, _, body) = ingest(&api, &batch).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "round {round}: {body}");
        let s = statuses(&body);
        assert_eq!(s[0], "refused", "{body}");
        assert!(s[1..].iter().all(|s| *s == "withheld"), "{body}");
        assert!(
            body["results"][0]["error"]
                .as_str()
                .unwrap()
                .contains("signature"),
            "{body}"
        );
    }
    // Two failures a minute for this kid from this address: the third batch is refused before
    // any verification, and so is anything else with that kid from there.
    let refused = ingest(&api, &batch).await;
    limited(&refused, "usage_failed_verifications_per_kid", "30");
    let message = refused.2["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{} from 198.51.100.7", cloud.key.kid())),
        "{message}"
    );
    let genuine = signed("org_cloud", 1, &cloud.key);
    limited(
        &ingest(&api, std::slice::from_ref(&genuine)).await,
        "usage_failed_verifications_per_kid",
        "30",
    );
    // The provider's own gate reports from elsewhere: the forger cannot silence it.
    let (status, _, body) = from(
        &api,
        "203.0.113.50:443",
        "POST",
        "/v1/usage",
        Some(json!({"reports": [genuine]})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verified, then no such run: {body}"
    );
    // Another provider's key is not affected either.
    let (status, _, body) = ingest(&api, &[signed("org_other", 1, &other.key)]).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verified, then no such run: {body}"
    );
    api.authority.clock.advance_ms(30_000);
    let (status, _, body) = ingest(&api, &[genuine]).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "verified again once a cell is back: {body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("run_none"),
        "{body}"
    );
    // A large batch is verified in parallel: still a handful of checks, never all of it.
    api.authority.clock.advance_ms(60_000);
    let big = vec![forged("org_cloud", 2, &cloud.key); 2000];
    let (status, _, body) = ingest(&api, &big).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let checked = statuses(&body).iter().filter(|s| **s == "refused").count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        (1..=cores).contains(&checked),
        "{checked} bad signatures checked"
    );
}

#[tokio::test]
async fn failed_verifications_are_capped_per_kid() {
    failed_verifications_per_kid(None).await;
}

#[tokio::test]
async fn failed_verifications_are_capped_on_postgres() {
    if let Some(db) = common::PgSchema::create("limits_failed_kid") {
        failed_verifications_per_kid(Some(&db.url)).await;
    }
}

async fn unknown_kids_before_verification(database_url: Option<&str>) {
    let api = api_with(
        database_url,
        json!({"defaults": {"usage_failed_verifications_per_kid": bucket(1, 1, "1h")}}),
    )
    .await;
    let cloud = Provider::register(&api, "org_cloud").await;
    let stranger = SigningKey::generate();
    // Forgeries under a registered kid, and one report under a kid nobody registered: the
    // whole batch is refused on the unknown kid, and nothing is verified.
    let mut batch = vec![forged("org_cloud", 1, &cloud.key); 100];
    batch.push(signed("org_cloud", 101, &stranger));
    let (status, _, body) = ingest(&api, &batch).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let s = statuses(&body);
    assert!(s[..100].iter().all(|s| *s == "withheld"), "{body}");
    assert_eq!(s[100], "refused");
    let error = body["results"][100]["error"].as_str().unwrap();
    assert!(
        error.contains(stranger.kid()) && error.contains("no registered reporting key"),
        "{error}"
    );
    assert_eq!(body["refused"], 1);
    // Proof that no forgery was checked: the kid's one-failure bucket is still full.
    let (status, _, body) = ingest(&api, &batch[..1]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "checked now: {body}");
    limited(
        &ingest(&api, &batch[..1]).await,
        "usage_failed_verifications_per_kid",
        "3600",
    );
    // A batch of unknown kids only costs a key lookup.
    let unknown = vec![signed("org_cloud", 1, &stranger); 100];
    let (status, _, body) = ingest(&api, &unknown).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["refused"], 100);
}

#[tokio::test]
async fn unknown_kids_are_refused_before_any_verification() {
    unknown_kids_before_verification(None).await;
}

#[tokio::test]
async fn unknown_kids_are_refused_on_postgres() {
    if let Some(db) = common::PgSchema::create("limits_unknown_kid") {
        unknown_kids_before_verification(Some(&db.url)).await;
    }
}

#[tokio::test]
async fn usage_reports_are_limited_per_address_and_by_size() {
    let api = api_with(
        None,
        json!({"defaults": {"usage_reports_per_address": bucket(6000, 6000, "1m")}}),
    )
    .await;
    let cloud = Provider::register(&api, "org_cloud").await;
    // Each report is a cell, whatever becomes of it (forgeries here, cheap to refuse): 5000
    // and then 1000 fit, one more does not.
    let many = vec![forged("org_cloud", 1, &cloud.key); 5000];
    let (status, _, body) = ingest(&api, &many).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, body) = ingest(&api, &many[..1000]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    limited(
        &ingest(&api, &many[..1]).await,
        "usage_reports_per_address",
        "1",
    );
    let report = signed("org_cloud", 1, &cloud.key);
    // A report far larger than any real one is refused unread, and its batch with it.
    let (signing_input, signature) = report.rsplit_once('.').expect("a JWS");
    let padded = format!("{signing_input}{}.{signature}", "A".repeat(20_000));
    let (status, _, body) = from(
        &api,
        "198.51.100.8:5000",
        "POST",
        "/v1/usage",
        Some(json!({"reports": [report, padded]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(statuses(&body), ["withheld", "refused"]);
    assert!(
        body["results"][1]["error"]
            .as_str()
            .unwrap()
            .contains("more than the 16384"),
        "{body}"
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

/// Process CPU time in seconds (Linux), to print what a request costs.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Prints (never asserts) the CPU time of a `POST /v1/usage` of 5000 forged reports, under a
/// registered kid and under an unknown one. Run alone to read it:
/// `cargo test --release -p runpermit-authority --test limits cost -- --nocapture`.
#[tokio::test]
async fn cost_of_forged_batches() {
    let api = Api::new().await;
    let cloud = Provider::register(&api, "org_cloud").await;
    let stranger = SigningKey::generate();
    let known = vec![forged("org_cloud", 1, &cloud.key); 5000];
    let unknown = vec![signed("org_cloud", 1, &stranger); 5000];
    for (what, batch) in [("a registered kid", &known), ("an unknown kid", &unknown)] {
        let body = json!({"reports": batch});
        let started = std::time::Instant::now();
        let cpu = cpu_seconds();
        let (status, _) = api.call("POST", "/v1/usage", None, Some(body)).await;
        let spent = cpu.zip(cpu_seconds()).map(|(a, b)| b - a);
        println!(
            "5000 forged reports under {what}: HTTP {status}, {:.3} s CPU, {:.3} s wall",
            spent.unwrap_or(f64::NAN),
            started.elapsed().as_secs_f64()
        );
    }
}
