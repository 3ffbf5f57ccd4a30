//! The authority's HTTP API driven in-process: authorization of every endpoint × role, the
//! application lifecycle for every tier, separation of duties, idempotency, the audit trail,
//! and the OpenAPI document.
//!
//! Runs on in-memory SQLite; with `RUNPERMIT_TEST_DATABASE_URL` set, the lifecycle tests also
//! run on that PostgreSQL database.

mod common;

use axum::http::StatusCode;
use common::{Api, error_fields, plan};
use runpermit_authority::http::authz::{ENDPOINTS, OrgKind};
use runpermit_permit::{verify_exemption, verify_permit};
use serde_json::{Value, json};

/// Every endpoint × every (organization kind, role) and no token: the role rule decides 403
/// (401 without a token); allowed callers never get 401 or 403.
#[tokio::test]
async fn every_endpoint_answers_every_role_by_its_rule() {
    let mut checked = 0;
    let mut expected = 0;
    for endpoint in ENDPOINTS {
        let mut callers: Vec<Option<(OrgKind, runpermit_authority::http::authz::Role)>> =
            vec![None];
        for kind in OrgKind::ALL {
            for role in kind.roles() {
                callers.push(Some((*kind, *role)));
            }
        }
        expected += callers.len();
        for caller in callers {
            let api = Api::new().await;
            // A lab's application, to give path ids something to point at.
            let (_, _, lab_token) = api
                .authority
                .member(("org_lab", "Lab"), "developer", "applicant")
                .await;
            let (status, app) = api
                .call(
                    "POST",
                    "/v1/applications",
                    Some(&lab_token),
                    Some(json!({"plan": plan("standard"), "draft": true})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{app}");
            let app_id = app["id"].as_str().expect("id").to_owned();

            let (token, own_org, own_member) = match caller {
                None => (None, "org_lab".to_owned(), "mem_none".to_owned()),
                Some((kind, role)) => {
                    let org_id = if kind == OrgKind::Developer {
                        "org_lab".to_owned()
                    } else {
                        format!("org_{kind}")
                    };
                    let (org, member, token) = api
                        .authority
                        .member((&org_id, "Org"), kind.as_str(), role.as_str())
                        .await;
                    (Some(token), org, member)
                }
            };
            let own_token_id = match &token {
                Some(t) => {
                    let (_, me) = api.call("GET", "/v1/whoami", Some(t), None).await;
                    me["token_id"].as_str().unwrap_or("tok_none").to_owned()
                }
                None => "tok_none".to_owned(),
            };
            let path = endpoint
                .path
                .replace("/v1/orgs/{id}", &format!("/v1/orgs/{own_org}"))
                .replace("/v1/members/{id}", &format!("/v1/members/{own_member}"))
                .replace("/v1/tokens/{id}", &format!("/v1/tokens/{own_token_id}"))
                .replace(
                    "/v1/applications/{id}",
                    &format!("/v1/applications/{app_id}"),
                )
                .replace("/v1/permits/{id}", "/v1/permits/pmt_none");
            let body = match (endpoint.method, endpoint.path) {
                ("POST", "/v1/orgs") => Some(json!({"name": "New", "kind": "developer"})),
                ("POST", "/v1/orgs/{id}/members") => Some(json!({"name": "New", "role": "admin"})),
                ("POST", "/v1/applications") => Some(json!({"plan": plan("exempt")})),
                ("PUT", _) => Some(json!({"plan": plan("standard"), "version": 0})),
                ("POST", "/v1/applications/{id}/reviews") => {
                    Some(json!({"decision": "request_changes", "reason": "more detail"}))
                }
                ("POST", "/v1/estimate") => Some(json!({"parameters": 1e9, "tokens": 1e12})),
                ("POST", "/v1/usage") => Some(json!({"reports": ["not.a.report"]})),
                ("POST", "/v1/access-usage") => Some(json!({"reports": ["not.a.report"]})),
                ("POST", "/v1/orgs/{id}/reporting-keys") => Some(json!({"jwk": {
                    "kty": "OKP", "crv": "Ed25519", "kid": "k1",
                    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}})),
                ("POST", "/v1/runs/{id}/milestones") => Some(json!({
                    "checkpoint_digest": format!("sha256:{}", "a".repeat(64)),
                    "evals": {"cyber": "pass"}})),
                ("POST", "/v1/incidents") => {
                    Some(json!({"category": "other", "summary": "something happened"}))
                }
                ("POST", "/v1/incidents/{id}/follow-up") => Some(json!({"text": "resolved"})),
                ("POST", "/v1/access-requests") => Some(json!({"model_id": "mdl_none",
                    "tier": "api_sampling", "purpose": "p",
                    "research_plan_digest": format!("sha256:{}", "a".repeat(64)),
                    "agreement_digest": format!("sha256:{}", "a".repeat(64)), "days": 1})),
                ("POST", "/v1/access-requests/{id}/consent") => {
                    Some(json!({"consent": true, "reason": "r"}))
                }
                ("POST", "/v1/access-requests/{id}/review") => {
                    Some(json!({"approve": false, "reason": "r"}))
                }
                ("POST", "/v1/models") => Some(json!({"name": "M", "run_id": "run_none",
                    "checkpoint_digest": format!("sha256:{}", "a".repeat(64)),
                    "release_plan": "internal"})),
                ("POST", "/v1/kyc-reports") => Some(json!({"customer": "LEI-1", "from": 0,
                    "to": 3600, "jobs": 1, "accelerator_seconds": 3600.0, "flop": 1e21})),
                ("POST", _) => Some(json!({"reason": "because"})),
                _ => None,
            };
            let role_label = caller
                .map(|(k, r)| format!("{r} of {k}"))
                .unwrap_or_else(|| "anonymous".into());
            let (status, response) = api
                .call(endpoint.method, &path, token.as_deref(), body)
                .await;
            let allowed = match caller {
                None => matches!(
                    endpoint.access,
                    runpermit_authority::http::authz::Access::Public
                ),
                Some((kind, role)) => match endpoint.access {
                    runpermit_authority::http::authz::Access::Public
                    | runpermit_authority::http::authz::Access::AnyMember => true,
                    runpermit_authority::http::authz::Access::Only(grants) => {
                        grants.contains(&(kind, role))
                    }
                },
            };
            if allowed {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{role_label} may call {} {} but got {status}: {response}",
                    endpoint.method,
                    endpoint.path
                );
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{} {} is not routed",
                    endpoint.method,
                    endpoint.path
                );
            } else {
                let expected = if token.is_none() {
                    StatusCode::UNAUTHORIZED
                } else {
                    StatusCode::FORBIDDEN
                };
                assert_eq!(
                    status, expected,
                    "{role_label} on {} {}: {response}",
                    endpoint.method, endpoint.path
                );
            }
            checked += 1;
        }
    }
    println!("checked {checked} endpoint × role pairs");
    assert_eq!(checked, expected);
    assert!(checked >= ENDPOINTS.len() * 10, "{checked}");
}

#[tokio::test]
async fn a_lab_never_sees_another_labs_applications() {
    let api = Api::new().await;
    let (_, _, a) = api
        .authority
        .member(("org_a", "Lab A"), "developer", "applicant")
        .await;
    let (_, _, b) = api
        .authority
        .member(("org_b", "Lab B"), "developer", "applicant")
        .await;
    let (_, _, reviewer) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&a),
            Some(json!({"plan": plan("full")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let id = app["id"].as_str().unwrap();

    for path in [
        format!("/v1/applications/{id}"),
        format!("/v1/applications/{id}/reviews"),
        format!("/v1/applications/{id}/permit"),
    ] {
        let (status, body) = api.call("GET", &path, Some(&b), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (_, list_b) = api.call("GET", "/v1/applications", Some(&b), None).await;
    assert_eq!(list_b.as_array().unwrap().len(), 0);
    let (_, list_a) = api.call("GET", "/v1/applications", Some(&a), None).await;
    assert_eq!(list_a.as_array().unwrap().len(), 1);
    let (_, list_r) = api
        .call("GET", "/v1/applications", Some(&reviewer), None)
        .await;
    assert_eq!(list_r.as_array().unwrap().len(), 1);
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/applications/{id}/withdraw"),
            Some(&b),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn lifecycle_on(api: &Api) {
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (_, _, r1) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, _, r2) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let jwks = api.jwks().await;
    let now_s = runpermit_authority::testing::T0_MS / 1000;

    // Exempt: a signed exemption receipt, no permit.
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("exempt")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "exempt", "{app}");
    let (status, receipt) = api
        .call(
            "GET",
            &format!("/v1/applications/{}/permit", app["id"].as_str().unwrap()),
            Some(&lab),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["kind"], "exemption");
    let claims =
        verify_exemption(receipt["token"].as_str().unwrap(), &jwks).expect("a valid receipt");
    assert_eq!(claims.application_id, app["id"].as_str().unwrap());

    // Standard (notify) tier: approved by policy and permitted at once.
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("standard")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "approved", "{app}");
    let permit_id = app["permit_id"].as_str().expect("a permit");
    let (status, permit) = api
        .call("GET", &format!("/v1/permits/{permit_id}"), Some(&lab), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{permit}");
    // Valid from the plan's schedule start, not before.
    let token = permit["token"].as_str().unwrap();
    let nbf = permit["claims"]["nbf"].as_i64().unwrap();
    assert!(nbf > now_s, "the example plan starts in the future");
    assert!(verify_permit(token, &jwks, now_s, 60).is_err());
    let claims = verify_permit(token, &jwks, nbf, 60).expect("a valid permit");
    assert_eq!(claims.application_id, app["id"].as_str().unwrap());
    assert_eq!(claims.holder.org_id, "org_lab");
    assert_eq!(
        claims.policy_version,
        app["policy_version"].as_str().unwrap()
    );
    assert_eq!(claims.tranches.last().unwrap().flop, claims.flop_budget);

    // Full tier: two distinct reviewers, never the same one twice, with conditions.
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("full")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "submitted", "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    let reviews = format!("/v1/applications/{id}/reviews");
    let (status, app) = api
        .call("POST", &reviews, Some(&r1), Some(json!({"decision": "approve", "reason": "safeguards adequate", "conditions": ["report weekly"]})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "under_review", "one approval of two: {app}");
    let (status, again) = api
        .call(
            "POST",
            &reviews,
            Some(&r1),
            Some(json!({"decision": "approve", "reason": "still fine"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, app) = api
        .call("POST", &reviews, Some(&r2), Some(json!({"decision": "approve", "reason": "agree", "conditions": ["SL4 before 1e26"]})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "approved", "{app}");
    let (_, permit) = api
        .call(
            "GET",
            &format!("/v1/applications/{id}/permit"),
            Some(&lab),
            None,
        )
        .await;
    let nbf = permit["claims"]["nbf"].as_i64().unwrap();
    let claims =
        verify_permit(permit["token"].as_str().unwrap(), &jwks, nbf, 60).expect("a valid permit");
    assert_eq!(
        claims.conditions,
        vec!["report weekly".to_owned(), "SL4 before 1e26".to_owned()]
    );
    assert_eq!(claims.tier, app["tier"].as_str().unwrap());

    // Horizon: denied by default, appealable, then reviewable.
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("horizon")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "denied", "{app}");
    let id = app["id"].as_str().unwrap().to_owned();
    let (status, app) = api
        .call(
            "POST",
            &format!("/v1/applications/{id}/appeal"),
            Some(&lab),
            Some(json!({"reason": "new safeguards"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["status"], "appealed");
    let (status, app) = api
        .call(
            "POST",
            &format!("/v1/applications/{id}/reviews"),
            Some(&r1),
            Some(json!({"decision": "deny", "reason": "above the horizon"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "denied");

    // The same plan again is refused while its permit is in force, naming the permit.
    let (status, again) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("full")})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already permitted: permit pmt_"),
        "{again}"
    );
    // Changes requested, plan updated, resubmitted (another run: its own plan).
    let mut second = plan("full");
    second["run"]["name"] = json!("frontier-2 continued pretraining");
    let (_, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": second.clone()})),
        )
        .await;
    let id = app["id"].as_str().unwrap().to_owned();
    let (status, app) = api
        .call(
            "POST",
            &format!("/v1/applications/{id}/reviews"),
            Some(&r1),
            Some(json!({"decision": "request_changes", "reason": "add a milestone"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "changes_requested");
    let (status, stale) = api
        .call(
            "PUT",
            &format!("/v1/applications/{id}"),
            Some(&lab),
            Some(json!({"plan": plan("full"), "version": 0})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a stale version is refused: {stale}"
    );
    let version = app["version"].as_i64().unwrap();
    let (status, app) = api
        .call(
            "PUT",
            &format!("/v1/applications/{id}"),
            Some(&lab),
            Some(json!({"plan": second, "version": version})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    let (status, app) = api
        .call(
            "POST",
            &format!("/v1/applications/{id}/submit"),
            Some(&lab),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["status"], "submitted");
    // The approval of the earlier round does not count.
    let (_, app) = api
        .call(
            "POST",
            &format!("/v1/applications/{id}/reviews"),
            Some(&r1),
            Some(json!({"decision": "approve", "reason": "ok"})),
        )
        .await;
    assert_eq!(app["status"], "under_review", "{app}");

    // An invalid transition names what is allowed.
    let (status, body) = api
        .call(
            "POST",
            &format!("/v1/applications/{id}/appeal"),
            Some(&lab),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn lifecycle_of_every_tier_on_sqlite() {
    lifecycle_on(&Api::new().await).await;
}

#[tokio::test]
async fn lifecycle_of_every_tier_on_postgres() {
    // A schema of its own, so that runs never see each other's rows.
    let Some(db) = common::PgSchema::create("api") else {
        return;
    };
    lifecycle_on(&Api::on(Some(&db.url)).await).await;
}

#[tokio::test]
async fn invalid_plans_name_every_field() {
    let api = Api::new().await;
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let mut bad = plan("standard");
    bad["model"]["parameters"] = json!(-5);
    bad["compute"]["expected_utilization"] = json!(1.7);
    let (status, body) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": bad})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields = error_fields(&body);
    assert!(fields.contains(&"plan.model.parameters"), "{body}");
    assert!(
        fields.contains(&"plan.compute.expected_utilization"),
        "{body}"
    );

    let mut unknown = plan("standard");
    unknown["model"]["paramz"] = json!(5);
    let (status, body) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": unknown})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("paramz"), "{body}");

    // Nothing was created by the refusals.
    let (_, list) = api.call("GET", "/v1/applications", Some(&lab), None).await;
    assert_eq!(list.as_array().unwrap().len(), 0);
}

/// A lab that wants less scrutiny argues its plan's figures down: an epoch count that
/// contradicts its own cluster, an accelerator count no cluster has.
#[tokio::test]
async fn classification_cannot_be_argued_down() {
    let api = Api::new().await;
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;

    // 0.2 epochs: operation counting says 7.6e24 (exempt), the plan's own 16,384 H100s for
    // 54 days at 38% say 2.9e25.
    let mut understated = plan("standard");
    understated["data"]["epochs"] = json!(0.2);
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": understated})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_ne!(app["tier"], "exempt", "{app}");
    assert_eq!(app["tier"], "standard", "{app}");
    assert_eq!(app["decision"], "review", "{app}");
    assert_eq!(app["status"], "submitted", "awaits reviewers: {app}");
    assert!(
        app.get("receipt_id").is_none() && app.get("permit_id").is_none(),
        "{app}"
    );
    assert!(
        app["review_reasons"][0]
            .as_str()
            .is_some_and(|r| r.contains("disagree")),
        "{app}"
    );

    // 2^63 accelerators: refused, naming the field, before anything is written.
    let mut huge = plan("standard");
    huge["compute"]["accelerators"] = json!(1u64 << 63);
    let (status, body) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": huge})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields = error_fields(&body);
    assert_eq!(fields, ["plan.compute.accelerators"], "{body}");
    let (_, list) = api.call("GET", "/v1/applications", Some(&lab), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn idempotency_keys_replay_and_refuse_reuse() {
    let api = Api::new().await;
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let body = json!({"plan": plan("standard")});
    let key = [("idempotency-key", "apply-once")];
    let (s1, a1) = api
        .call_with(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(body.clone()),
            &key,
        )
        .await;
    let (s2, a2) = api
        .call_with("POST", "/v1/applications", Some(&lab), Some(body), &key)
        .await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(a1["id"], a2["id"]);
    assert_eq!(a1["permit_id"], a2["permit_id"]);
    let (s3, body) = api
        .call_with(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("exempt")})),
            &key,
        )
        .await;
    assert_eq!(s3, StatusCode::CONFLICT, "{body}");
    let (_, list) = api.call("GET", "/v1/applications", Some(&lab), None).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Every POST takes a key: an organization is created once.
    let (_, _, admin) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "admin")
        .await;
    let org = json!({"name": "Northwind Cloud", "kind": "provider"});
    let key = [("idempotency-key", "org-northwind")];
    let (_, o1) = api
        .call_with("POST", "/v1/orgs", Some(&admin), Some(org.clone()), &key)
        .await;
    let (_, o2) = api
        .call_with("POST", "/v1/orgs", Some(&admin), Some(org), &key)
        .await;
    assert_eq!(o1["id"], o2["id"]);
    // Token creation too: tests/tokens_idempotency.rs.
}

#[tokio::test]
async fn every_change_is_in_the_audit_trail_with_who_and_why() {
    let api = Api::new().await;
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let (_, _, r1) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, _, auditor) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "auditor")
        .await;
    let (_, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("full")})),
        )
        .await;
    let id = app["id"].as_str().unwrap();
    api.call(
        "POST",
        &format!("/v1/applications/{id}/reviews"),
        Some(&r1),
        Some(json!({"decision": "deny", "reason": "no shutdown plan"})),
    )
    .await;
    let (status, events) = api
        .call(
            "GET",
            &format!("/v1/audit?subject=application/{id}"),
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let actions: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "application.create",
            "application.submit",
            "application.review_start",
            "application.deny"
        ],
        "{events}"
    );
    let deny = &events.as_array().unwrap()[3];
    assert_eq!(deny["reason"], "no shutdown plan");
    assert!(
        deny["actor_member_id"]
            .as_str()
            .unwrap()
            .starts_with("mem_")
    );
    let seqs: Vec<i64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn revoked_and_expired_tokens_are_refused() {
    let api = Api::new().await;
    let (_, member, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "admin")
        .await;
    let (status, token) = api
        .call(
            "POST",
            &format!("/v1/members/{member}/tokens"),
            Some(&lab),
            Some(json!({"label": "ci", "expires_in_days": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let secret = token["secret"].as_str().unwrap().to_owned();
    assert_eq!(
        api.call("GET", "/v1/whoami", Some(&secret), None).await.0,
        StatusCode::OK
    );
    api.authority.clock.advance_ms(2 * 86_400_000);
    assert_eq!(
        api.call("GET", "/v1/whoami", Some(&secret), None).await.0,
        StatusCode::UNAUTHORIZED
    );

    let (_, other) = api
        .call(
            "POST",
            &format!("/v1/members/{member}/tokens"),
            Some(&lab),
            Some(json!({})),
        )
        .await;
    let other_secret = other["secret"].as_str().unwrap().to_owned();
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/tokens/{}/revoke", other["id"].as_str().unwrap()),
            Some(&lab),
            Some(json!({"reason": "leaked"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.call("GET", "/v1/whoami", Some(&other_secret), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // Listing shows no secrets.
    let (_, list) = api
        .call(
            "GET",
            &format!("/v1/members/{member}/tokens"),
            Some(&lab),
            None,
        )
        .await;
    assert!(!list.to_string().contains("rpt_"), "{list}");
}

#[tokio::test]
async fn openapi_document_is_stable() {
    let api = Api::new().await;
    let (status, doc) = api.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    insta::assert_json_snapshot!(doc);
}

/// A crash after the decision is committed but before the token is recorded leaves an intent;
/// the next start signs it.
#[tokio::test]
async fn a_permit_decided_before_a_crash_is_signed_at_restart() {
    use runpermit_authority::domain::{applications, permits};
    let api = Api::new().await;
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let (_, draft) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("standard"), "draft": true})),
        )
        .await;
    let state = &api.authority.state;
    let app = state
        .store
        .application(draft["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let plan = applications::stored_plan(&app).unwrap();
    let estimate = applications::estimate_of(&app).unwrap();
    let pending = permits::pending_permit(
        state,
        &app,
        (&plan, &estimate, &Default::default()),
        "Lab",
        vec![],
        vec![],
        None,
    )
    .unwrap();
    state
        .store
        .commit(permits::intent_writes(state, &app, &pending).unwrap())
        .await
        .unwrap();
    let intents = state.store.pending_permits().await.unwrap();
    assert_eq!(intents.len(), 1);

    assert_eq!(permits::resume_pending(state).await.unwrap(), 1);
    assert!(state.store.pending_permits().await.unwrap().is_empty());
    let permit = state.store.permit(&intents[0].id).await.unwrap().unwrap();
    assert_eq!(permit.status, runpermit_types::PermitState::Issued);
    let nbf = serde_json::from_str::<Value>(&permit.claims_json).unwrap()["nbf"]
        .as_i64()
        .unwrap();
    verify_permit(permit.token.as_deref().unwrap(), &api.jwks().await, nbf, 0).expect("valid");
    assert_eq!(
        permits::resume_pending(state).await.unwrap(),
        0,
        "nothing is signed twice"
    );
}

/// Every permit travels with a proof that its exact token is in the public log, and every
/// decision is logged.
#[tokio::test]
async fn permits_are_public_with_a_proof_and_decisions_are_logged() {
    let api = Api::new().await;
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let (_, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("standard")})),
        )
        .await;
    let (status, permit) = api
        .call(
            "GET",
            &format!("/v1/permits/{}", app["permit_id"].as_str().unwrap()),
            Some(&lab),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{permit}");
    assert_eq!(permit["status"], "issued");
    let (_, vkey) = api.call("GET", "/log/vkey", None, None).await;
    let vkey = vkey.as_str().unwrap().trim().to_owned();
    let bundle = runpermit_log::ProofBundle::parse(permit["proof"].as_str().unwrap())
        .expect("a proof bundle");
    let proved = bundle.verify_entry(&vkey).expect("the proof verifies");
    match proved.entry {
        runpermit_log::LogEntry::PermitIssued {
            token, permit_id, ..
        } => {
            assert_eq!(token, permit["token"].as_str().unwrap());
            assert_eq!(permit_id, permit["id"].as_str().unwrap());
        }
        other => panic!("the proof is of {other:?}"),
    }
    // The log holds the submission, the decision and the permit, in that order.
    let (status, checkpoint) = api.call("GET", "/log/checkpoint", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let cp = runpermit_log::verify_checkpoint(checkpoint.as_str().unwrap(), &vkey).expect("signed");
    assert_eq!(cp.size, 3);
    let (status, bytes) = api.raw("/log/tile/entries/000.p/3").await;
    assert_eq!(status, StatusCode::OK);
    let entries = runpermit_log::parse_entries_tile(&bytes).expect("a bundle");
    let types: Vec<&str> = entries
        .iter()
        .map(|e| runpermit_log::decode(e).unwrap().0.type_name())
        .collect();
    assert_eq!(
        types,
        ["application_submitted", "decision", "permit_issued"]
    );
    // Tiles beyond the tree are not served.
    assert_eq!(
        api.call("GET", "/log/tile/entries/000.p/4", None, None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.call("GET", "/log/tile/0/000.p/3", None, None).await.0,
        StatusCode::OK
    );
}

/// A schedule that has already ended would give a permit expired when issued: refused at
/// submission with the field named; a draft may still hold it. Dates come from the test clock.
#[tokio::test]
async fn a_plan_whose_schedule_has_ended_is_refused_at_submission() {
    let api = Api::new().await;
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let standard = plan("standard");
    let end =
        runpermit_policy::parse_timestamp(standard["schedule"]["end"].as_str().unwrap()).unwrap();
    let now = runpermit_authority::testing::T0_MS / 1000;
    assert!(end > now, "the example ends after the test clock's start");
    // Past the end of the schedule.
    api.authority.clock.advance_ms((end - now + 1) * 1000);
    let (status, body) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": standard.clone()})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body.to_string().contains("plan.schedule.end") && body.to_string().contains("has passed"),
        "{body}"
    );
    let (status, draft) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": standard, "draft": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
}
