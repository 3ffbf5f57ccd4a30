//! Issue 11, findings 5 and 11, as an adversary would try them: a token that mints a token
//! outliving it, a lifetime that is not a date.
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
    api.authority.state.policy = Arc::new(policy);
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
