//! Issue 11, findings 5 and 11, as an adversary would try them: a token that mints a token
//! outliving it, a lifetime that is not a date, ten identical requests racing on one
//! `Idempotency-Key`, and the header on the routes that refused it.
//!
//! Each scenario runs on in-memory SQLite and, with `RUNPERMIT_TEST_DATABASE_URL` set, on a
//! PostgreSQL schema of its own.

mod common;

use std::future::Future;
use std::sync::Arc;

use axum::http::StatusCode;
use common::{Api, PgSchema, error_fields};
use serde_json::{Value, json};

const DAY_MS: i64 = 86_400_000;

/// Runs `scenario` on SQLite, then on PostgreSQL when a database is configured.
async fn on_both<F, Fut>(prefix: &str, scenario: F)
where
    F: Fn(Api) -> Fut,
    Fut: Future<Output = ()>,
{
    scenario(Api::new().await).await;
    if let Some(db) = PgSchema::create(prefix) {
        scenario(Api::on(Some(&db.url)).await).await;
    }
}

fn ms(rfc3339: &Value) -> i64 {
    let text = rfc3339
        .as_str()
        .unwrap_or_else(|| panic!("a date: {rfc3339}"));
    runpermit_policy::parse_timestamp(text).unwrap_or_else(|e| panic!("{text}: {e}")) * 1000
}

/// An admin of a developer organization, its member id and its token (which never expires,
/// like tokens stored before expiry was required).
async fn lab_admin(api: &Api) -> (String, String) {
    let (_, member, token) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "admin")
        .await;
    (member, token)
}

async fn create_token(api: &Api, member: &str, with: &str, body: Value) -> (StatusCode, Value) {
    api.call(
        "POST",
        &format!("/v1/members/{member}/tokens"),
        Some(with),
        Some(body),
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Finding 5: tokens

async fn a_token_cannot_mint_a_token_that_outlives_it(api: Api) {
    let (member, admin) = lab_admin(&api).await;
    let (status, day) = create_token(&api, &member, &admin, json!({"expires_in_days": 1})).await;
    assert_eq!(status, StatusCode::CREATED, "{day}");
    let day_secret = day["secret"].as_str().unwrap().to_owned();
    let day_expiry = ms(&day["expires_at"]);
    assert_eq!(day_expiry, runpermit_authority::testing::T0_MS + DAY_MS);

    // Asking for no lifetime gets the creator's remaining one, not a token that never expires.
    let (status, child) = create_token(&api, &member, &day_secret, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{child}");
    assert!(ms(&child["expires_at"]) <= day_expiry, "{child}");

    // Asking for more is refused, naming the field and the limit.
    let (status, body) =
        create_token(&api, &member, &day_secret, json!({"expires_in_days": 30})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_fields(&body), ["expires_in_days"], "{body}");
    assert!(body.to_string().contains("expires at"), "{body}");

    // The child dies with its creator.
    let child_secret = child["secret"].as_str().unwrap().to_owned();
    api.authority.clock.advance_ms(DAY_MS);
    for secret in [&day_secret, &child_secret] {
        let (status, body) = api.call("GET", "/v1/whoami", Some(secret), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
}

#[tokio::test]
async fn token_cannot_mint_a_token_that_outlives_it() {
    on_both("tok", a_token_cannot_mint_a_token_that_outlives_it).await;
}

async fn token_expiry_is_always_a_date_within_the_policy_maximum(api: Api) {
    let (member, admin) = lab_admin(&api).await;
    let max = i64::from(api.authority.state.policy.tokens.max_lifetime_days);
    assert_eq!(max, 365, "the shipped policy's maximum");
    for bad in [
        json!(4_294_967_295_u64),
        json!(0),
        json!(-1),
        json!(max + 1),
    ] {
        let (status, body) =
            create_token(&api, &member, &admin, json!({"expires_in_days": bad})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(error_fields(&body), ["expires_in_days"], "{body}");
        assert!(
            body.to_string().contains(&format!("1 to {max}")),
            "names the range: {body}"
        );
    }
    // Absent: the policy's maximum, even from a token that never expires.
    let (status, token) = create_token(&api, &member, &admin, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    assert_eq!(
        ms(&token["expires_at"]),
        runpermit_authority::testing::T0_MS + max * DAY_MS,
        "{token}"
    );
    let (status, token) =
        create_token(&api, &member, &admin, json!({"expires_in_days": max})).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    // The token that never expires keeps working.
    let (status, me) = api.call("GET", "/v1/whoami", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["token_expires_at"], Value::Null, "{me}");
    let secret = token["secret"].as_str().unwrap();
    let (_, me) = api.call("GET", "/v1/whoami", Some(secret), None).await;
    assert_eq!(me["token_expires_at"], token["expires_at"], "{me}");
}

#[tokio::test]
async fn token_expiry_is_a_date_within_the_policy_maximum() {
    on_both(
        "tok",
        token_expiry_is_always_a_date_within_the_policy_maximum,
    )
    .await;
}

#[tokio::test]
async fn the_policy_sets_the_token_maximum() {
    let mut api = Api::new().await;
    let mut policy = (*api.authority.state.policy).clone();
    policy.tokens.max_lifetime_days = 30;
    api.authority.state.authority.policy = Arc::new(policy);
    api.router = runpermit_authority::router(api.authority.state.clone());
    let (member, admin) = lab_admin(&api).await;
    let (status, body) = create_token(&api, &member, &admin, json!({"expires_in_days": 31})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("1 to 30"), "{body}");
    let (_, token) = create_token(&api, &member, &admin, json!({})).await;
    assert_eq!(
        ms(&token["expires_at"]),
        runpermit_authority::testing::T0_MS + 30 * DAY_MS
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 11: idempotency

const IN_PROGRESS: &str = "a request with this Idempotency-Key is in progress; retry later";

async fn ten_identical_requests_on_one_key_create_one_incident(api: Api) {
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let api = Arc::new(api);
    let body = json!({"category": "security_breach", "summary": "a door left open"});
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (api, lab, body) = (api.clone(), lab.clone(), body.clone());
        tasks.spawn(async move {
            api.call_with(
                "POST",
                "/v1/incidents",
                Some(&lab),
                Some(body),
                &[("idempotency-key", "incident-1")],
            )
            .await
        });
    }
    let mut ids = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let (status, body) = answer.expect("a request task");
        match status {
            StatusCode::CREATED => ids.push(body["id"].as_str().unwrap().to_owned()),
            StatusCode::CONFLICT => {
                assert!(
                    body["message"].as_str().unwrap().contains(IN_PROGRESS),
                    "{body}"
                )
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(!ids.is_empty());
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    // After the first answer, a retry replays it.
    let (status, again) = api
        .call_with(
            "POST",
            "/v1/incidents",
            Some(&lab),
            Some(body),
            &[("idempotency-key", "incident-1")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_eq!(again["id"], ids[0].as_str());
    let (_, list) = api.call("GET", "/v1/incidents", Some(&lab), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_on_one_key_create_one_incident() {
    on_both(
        "idem",
        ten_identical_requests_on_one_key_create_one_incident,
    )
    .await;
}

async fn a_failed_request_releases_its_key(api: Api) {
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let key = [("idempotency-key", "fix-and-retry")];
    let bad = json!({"category": "no_such_category", "summary": "x"});
    for _ in 0..2 {
        let (status, body) = api
            .call_with("POST", "/v1/incidents", Some(&lab), Some(bad.clone()), &key)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    // The client corrects its request and retries with the same key.
    let good = json!({"category": "other", "summary": "x"});
    let (status, body) = api
        .call_with("POST", "/v1/incidents", Some(&lab), Some(good), &key)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Now the key is bound to that request.
    let (status, body) = api
        .call_with("POST", "/v1/incidents", Some(&lab), Some(bad), &key)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{body}"
    );
}

#[tokio::test]
async fn failed_requests_release_their_key() {
    on_both("idem", a_failed_request_releases_its_key).await;
}

#[tokio::test]
async fn the_key_is_accepted_on_unauthenticated_posts() {
    let api = Api::new().await;
    let key = [("idempotency-key", "public-1")];
    let estimate = json!({"parameters": 1e9, "tokens": 1e12});
    let (plain, expected) = api
        .call("POST", "/v1/estimate", None, Some(estimate.clone()))
        .await;
    assert_eq!(plain, StatusCode::OK, "{expected}");
    for _ in 0..2 {
        let (status, body) = api
            .call_with("POST", "/v1/estimate", None, Some(estimate.clone()), &key)
            .await;
        assert_eq!((status, &body), (StatusCode::OK, &expected));
    }
    // Usage reports answer as they would without the key: here, an empty batch.
    let usage = json!({"reports": []});
    let (plain, expected) = api
        .call("POST", "/v1/usage", None, Some(usage.clone()))
        .await;
    let (status, body) = api
        .call_with("POST", "/v1/usage", None, Some(usage), &key)
        .await;
    assert_ne!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!((status, body), (plain, expected));
}

async fn token_creation_replays_without_the_secret(api: Api) {
    let (member, admin) = lab_admin(&api).await;
    let path = format!("/v1/members/{member}/tokens");
    let key = [("idempotency-key", "ci-token")];
    let body = json!({"label": "ci", "expires_in_days": 7});
    let (status, first) = api
        .call_with("POST", &path, Some(&admin), Some(body.clone()), &key)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let secret = first["secret"].as_str().unwrap();
    let (status, replay) = api
        .call_with("POST", &path, Some(&admin), Some(body), &key)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{replay}");
    assert_eq!(replay["id"], first["id"], "{replay}");
    assert_eq!(replay["expires_at"], first["expires_at"], "{replay}");
    assert!(replay.get("secret").is_none(), "{replay}");
    assert!(
        replay["secret_withheld"]
            .as_str()
            .unwrap()
            .contains("shown only once"),
        "{replay}"
    );
    // Nothing stored holds the secret.
    let stored = api
        .authority
        .state
        .store
        .idempotency(&member, "ci-token")
        .await
        .unwrap()
        .expect("the stored answer");
    assert!(!stored.response_json.contains(secret), "{stored:?}");
    let (_, list) = api.call("GET", &path, Some(&admin), None).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "the admin's and one: {list}"
    );
}

#[tokio::test]
async fn token_creation_with_a_key_replays_without_the_secret() {
    on_both("idem", token_creation_replays_without_the_secret).await;
}

/// A process that died mid-request leaves its reservation behind: it holds the key off for
/// the timeout, then the next request with the key takes it over.
async fn an_abandoned_reservation_is_taken_over(api: Api) {
    use runpermit_authority::http::idempotency::RESERVATION_TIMEOUT_MS;
    use runpermit_store::{Idempotency, Write};
    let (_, member, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let body = json!({"category": "other", "summary": "the first try crashed"});
    let key = [("idempotency-key", "after-a-crash")];
    api.authority
        .state
        .store
        .commit(vec![Write::ReserveIdempotency(Idempotency {
            principal_id: member.clone(),
            key: "after-a-crash".into(),
            method_path: "POST /v1/incidents".into(),
            request_hash: runpermit_authority::domain::ids::sha256_hex(body.to_string().as_bytes()),
            status: Idempotency::RESERVED,
            response_json: String::new(),
            created_at: runpermit_authority::testing::T0_MS,
        })])
        .await
        .unwrap();
    api.authority.clock.advance_ms(RESERVATION_TIMEOUT_MS - 1);
    let (status, answer) = api
        .call_with(
            "POST",
            "/v1/incidents",
            Some(&lab),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["message"], IN_PROGRESS, "{answer}");
    // Another request with the reserved key is still "another request".
    let other = json!({"category": "other", "summary": "something else"});
    let (status, answer) = api
        .call_with("POST", "/v1/incidents", Some(&lab), Some(other), &key)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer.to_string().contains("different request"), "{answer}");

    api.authority.clock.advance_ms(1);
    let (status, first) = api
        .call_with(
            "POST",
            "/v1/incidents",
            Some(&lab),
            Some(body.clone()),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = api
        .call_with("POST", "/v1/incidents", Some(&lab), Some(body), &key)
        .await;
    assert_eq!((status, &again["id"]), (StatusCode::CREATED, &first["id"]));
    let (_, list) = api.call("GET", "/v1/incidents", Some(&lab), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn an_abandoned_reservation_is_taken_over_after_the_timeout() {
    on_both("idem", an_abandoned_reservation_is_taken_over).await;
}
