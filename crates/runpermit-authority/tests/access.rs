//! Structured access (issue 15), driven in-process through the HTTP API on SQLite and, with
//! `RUNPERMIT_TEST_DATABASE_URL`, on PostgreSQL: a researcher applies for access to a
//! registered model; the developer consents or objects; reviewers decide as the policy's
//! `[access]` says; the grant is signed, logged with its token, served with a proof that
//! verifies offline; reviewers suspend, reinstate and revoke it and the status list follows;
//! a milestone report gives the policy's evaluators an evaluation grant by rule; the
//! developer's gateway reports what it served under a grant, signed, and the grant shows
//! the sums.

mod common;

use axum::http::StatusCode;
use common::{Api, error_fields, plan};
use runpermit_authority::domain::clock::Clock;
use runpermit_log::{LogEntry, ProofBundle};
use runpermit_permit::{
    AccessTier, AccessUsageClaims, PermitStatus, SigningKey, sign_access_usage,
    verify_access_grant, verify_status_list,
};
use serde_json::{Value, json};

const INSTITUTE: &str = "org_aisi";

struct World {
    api: Api,
    lab: String,
    researcher: String,
    reviewers: [String; 2],
    institute: String,
    model_id: String,
    run_id: String,
}

async fn world(database_url: &str) -> World {
    let mut policy = runpermit_policy::Policy::builtin().clone();
    policy.access.evaluators = vec![INSTITUTE.to_owned()];
    let api = Api::with_policy(Some(database_url), policy).await;
    let a = &api.authority;
    let (_, _, lab) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (_, _, researcher) = a
        .member(("org_uni", "University Lab"), "developer", "applicant")
        .await;
    let (_, _, r1) = a
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, _, r2) = a
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, _, institute) = a
        .member((INSTITUTE, "Safety Institute"), "evaluator", "evaluator")
        .await;
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": plan("standard")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let (_, runs) = api.call("GET", "/v1/runs", Some(&lab), None).await;
    let run_id = runs[0]["id"].as_str().expect("a run").to_owned();
    let (status, model) = api
        .call(
            "POST",
            "/v1/models",
            Some(&lab),
            Some(json!({"name": "Frontier-1", "run_id": run_id,
                        "checkpoint_digest": digest("ab"), "release_plan": "staged API"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    World {
        model_id: model["id"].as_str().expect("a model").to_owned(),
        api,
        lab,
        researcher,
        reviewers: [r1, r2],
        institute,
        run_id,
    }
}

fn digest(byte: &str) -> String {
    format!("sha256:{}", byte.repeat(32))
}

impl World {
    async fn apply(&self, tier: &str) -> Value {
        let (status, body) = self
            .api
            .call(
                "POST",
                "/v1/access-requests",
                Some(&self.researcher),
                Some(json!({"model_id": self.model_id, "tier": tier,
                            "purpose": "interpretability of refusals",
                            "research_plan_digest": digest("01"),
                            "agreement_digest": digest("02"),
                            "quotas": {"tokens": 1_000_000, "requests": 10_000},
                            "days": 90})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.api.call("POST", path, Some(token), Some(body)).await
    }

    /// Reviewer `who` (0 or 1) decides application `id`.
    async fn review(&self, who: usize, id: &str, approve: bool) -> (StatusCode, Value) {
        self.post(
            &self.reviewers[who],
            &format!("/v1/access-requests/{id}/review"),
            json!({"approve": approve, "reason": format!("reviewer {who}")}),
        )
        .await
    }

    async fn sequence(&self) {
        while runpermit_authority::domain::log::sequence_once(&self.api.authority.state)
            .await
            .expect("sequencing")
            > 0
        {}
    }

    async fn grant(&self, token: &str, id: &str) -> Value {
        let (status, g) = self
            .api
            .call("GET", &format!("/v1/grants/{id}"), Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{g}");
        g
    }

    /// The status list's entry for `id`, verified with the authority's JWKS.
    async fn listed(&self, id: &str) -> Option<PermitStatus> {
        let jwks = self.api.jwks().await;
        let (_, body) = self.api.raw("/v1/status-list").await;
        let token = String::from_utf8(body).expect("UTF-8");
        verify_status_list(token.trim(), &jwks)
            .expect("a valid status list")
            .entries
            .into_iter()
            .find(|e| e.permit_id == id)
            .map(|e| e.status)
    }
}

async fn access_is_applied_for_consented_decided_logged_and_enforceable(w: World) {
    // api_sampling: one approval, no consent needed.
    let request = w.apply("api_sampling").await;
    let id = request["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            request["status"].as_str(),
            request["approvals_needed"].as_u64(),
            request["consent_required"].as_bool()
        ),
        (Some("pending"), Some(1), Some(false)),
        "{request}"
    );
    // The developer sees it and may object; the authority may still decide.
    let (status, answered) = w
        .post(
            &w.lab,
            &format!("/v1/access-requests/{id}/consent"),
            json!({"consent": false, "reason": "competitor"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answered}");
    assert_eq!(answered["consent"], "objected");
    // Nobody else answers for the developer.
    let (status, _) = w
        .post(
            &w.researcher,
            &format!("/v1/access-requests/{id}/consent"),
            json!({"consent": true, "reason": "yes please"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, decided) = w
        .post(
            &w.reviewers[0],
            &format!("/v1/access-requests/{id}/review"),
            json!({"approve": true, "reason": "sampling access is in the public interest"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "granted", "{decided}");
    let grant_id = decided["grant_id"].as_str().unwrap().to_owned();
    // Not served before it is public.
    let g = w.grant(&w.researcher, &grant_id).await;
    assert_eq!(g["status"], "logging", "{g}");
    assert!(g.get("token").is_none(), "{g}");
    w.sequence().await;
    let g = w.grant(&w.researcher, &grant_id).await;
    assert_eq!(g["status"], "active", "{g}");
    let token = g["token"].as_str().unwrap();
    let jwks = w.api.jwks().await;
    let now = w.api.authority.clock.now_s();
    let claims = verify_access_grant(token, &jwks, now, 0).expect("a valid grant");
    assert_eq!(claims.jti, grant_id);
    assert_eq!(claims.tier, AccessTier::ApiSampling);
    assert_eq!(claims.model.model_id, w.model_id);
    assert_eq!(claims.model.checkpoint_digest, digest("ab"));
    assert_eq!(claims.grantee.org_id, "org_uni");
    assert_eq!(claims.developer, "org_lab");
    assert_eq!(claims.quotas.tokens, Some(1_000_000));
    // The proof bundle proves the access_granted entry carrying exactly this token.
    let (_, vkey) = w.api.raw("/log/vkey").await;
    let vkey = String::from_utf8(vkey).unwrap();
    let bundle = ProofBundle::parse(g["proof"].as_str().unwrap()).expect("a bundle");
    let proved = bundle
        .verify_entry(vkey.trim())
        .expect("a proof that verifies");
    match proved.entry {
        LogEntry::AccessGranted {
            token: logged,
            grant_id: logged_id,
            ..
        } => {
            assert_eq!(logged, token);
            assert_eq!(logged_id, grant_id);
        }
        other => panic!("not an access_granted entry: {other:?}"),
    }
    // Decided once.
    let (status, _) = w
        .post(
            &w.reviewers[1],
            &format!("/v1/access-requests/{id}/review"),
            json!({"approve": true, "reason": "again"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // logprobs: the developer's consent, then two distinct reviewers.
    let deeper = w.apply("logprobs").await;
    let deeper_id = deeper["id"].as_str().unwrap().to_owned();
    assert_eq!(deeper["approvals_needed"], 2);
    assert_eq!(deeper["consent_required"], true);
    let (status, body) = w.review(0, &deeper_id, true).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("consent"),
        "{body}"
    );
    let (status, _) = w
        .post(
            &w.lab,
            &format!("/v1/access-requests/{deeper_id}/consent"),
            json!({"consent": true, "reason": "a research partner"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = w.review(0, &deeper_id, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["status"].as_str(), body["approvals"].as_u64()),
        (Some("pending"), Some(1))
    );
    let (status, body) = w.review(0, &deeper_id, true).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one reviewer counts once: {body}"
    );
    let (status, body) = w.review(1, &deeper_id, true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "granted", "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .starts_with("reviewer 1 of 2: reviewer 0"),
        "{body}"
    );

    // Suspended, reinstated, revoked: the status list follows; revocation is final.
    let (status, g) = w
        .post(
            &w.reviewers[0],
            &format!("/v1/grants/{grant_id}/suspend"),
            json!({"reason": "usage reports overdue"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{g}");
    assert_eq!(g["status"], "suspended");
    assert_eq!(w.listed(&grant_id).await, Some(PermitStatus::Suspended));
    let (status, _) = w
        .post(
            &w.reviewers[0],
            &format!("/v1/grants/{grant_id}/reinstate"),
            json!({"reason": "reports filed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w.listed(&grant_id).await, None);
    let (status, _) = w
        .post(
            &w.reviewers[1],
            &format!("/v1/grants/{grant_id}/revoke"),
            json!({"reason": "results published without review"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w.listed(&grant_id).await, Some(PermitStatus::Revoked));
    let (status, body) = w
        .post(
            &w.reviewers[0],
            &format!("/v1/grants/{grant_id}/reinstate"),
            json!({"reason": "oops"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("final"),
        "{body}"
    );
    // The researcher may not change standing.
    let (status, _) = w
        .post(
            &w.researcher,
            &format!("/v1/grants/{grant_id}/suspend"),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Scope: another organization sees neither the application nor the grant.
    let (status, _) = w
        .api
        .call(
            "GET",
            &format!("/v1/grants/{grant_id}"),
            Some(&w.institute),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = w
        .api
        .call(
            "GET",
            &format!("/v1/access-requests/{id}"),
            Some(&w.institute),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, mine) = w.api.call("GET", "/v1/grants", Some(&w.lab), None).await;
    assert_eq!(
        mine.as_array().map(Vec::len),
        Some(2),
        "the developer sees both: {mine}"
    );

    // A denial decides; bad input names every field; nobody applies for its own model.
    let denied = w.apply("api_sampling").await;
    let (status, body) = w
        .post(
            &w.reviewers[0],
            &format!(
                "/v1/access-requests/{}/review",
                denied["id"].as_str().unwrap()
            ),
            json!({"approve": false, "reason": "purpose too vague"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "denied");
    let (status, body) = w
        .post(
            &w.researcher,
            "/v1/access-requests",
            json!({"model_id": "mdl nope", "tier": "root", "purpose": "",
                   "research_plan_digest": "x", "agreement_digest": digest("02"),
                   "quotas": {"tokenz": 1}, "days": 9999}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let mut fields = error_fields(&body);
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "days",
            "model_id",
            "purpose",
            "quotas",
            "research_plan_digest",
            "tier"
        ],
        "{body}"
    );
    let (status, body) = w
        .post(
            &w.lab,
            "/v1/access-requests",
            json!({"model_id": w.model_id, "tier": "api_sampling", "purpose": "self",
                   "research_plan_digest": digest("01"), "agreement_digest": digest("02"),
                   "days": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("its own model"), "{body}");
}

async fn a_milestone_report_gives_the_policys_evaluators_access(w: World) {
    let (status, m) = w
        .post(
            &w.lab,
            &format!("/v1/runs/{}/milestones", w.run_id),
            json!({"checkpoint_digest": digest("cd"), "evals": {"cyber": 0.1}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let milestone = m["id"].as_str().unwrap();
    w.sequence().await;
    let (status, grants) = w
        .api
        .call("GET", "/v1/grants", Some(&w.institute), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{grants}");
    let g = &grants[0];
    assert_eq!(
        (
            g["origin"].as_str(),
            g["tier"].as_str(),
            g["milestone_id"].as_str(),
            g["status"].as_str()
        ),
        (
            Some("evaluation"),
            Some("api_sampling"),
            Some(milestone),
            Some("active")
        ),
        "{grants}"
    );
    let claims = &g["claims"];
    assert_eq!(claims["model"]["checkpoint_digest"], digest("cd"));
    assert_eq!(claims["grantee"]["org_id"], INSTITUTE);
    assert_eq!(claims["developer"], "org_lab");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap(),
        30 * 86_400
    );
    assert!(g["proof"].is_string(), "{g}");
    // The lab sees the grant to its checkpoint; the researcher does not.
    let (_, theirs) = w
        .api
        .call("GET", "/v1/grants", Some(&w.researcher), None)
        .await;
    assert_eq!(theirs.as_array().map(Vec::len), Some(0), "{theirs}");
}

/// Access-usage report `seq` of `iss` under `grant_id` for `model_id`, over the hour before
/// `now`.
fn usage_claims(
    iss: &str,
    grant_id: &str,
    model_id: &str,
    seq: u64,
    now: i64,
) -> AccessUsageClaims {
    AccessUsageClaims {
        iss: iss.to_owned(),
        grant_id: grant_id.to_owned(),
        model_id: model_id.to_owned(),
        seq,
        from: now - 3_600,
        to: now,
        iat: now,
        requests: 4,
        prompt_tokens: 400,
        completion_tokens: 100,
        refused: 1,
    }
}

async fn access_usage_reports_are_verified_stored_and_summed(w: World) {
    // An application grant to org_uni for org_lab's model.
    let request = w.apply("api_sampling").await;
    let id = request["id"].as_str().unwrap().to_owned();
    let (status, decided) = w.review(0, &id, true).await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let grant_id = decided["grant_id"].as_str().unwrap().to_owned();
    w.sequence().await;
    let g = w.grant(&w.lab, &grant_id).await;
    assert_eq!(
        g["usage"],
        json!({"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "refused": 0,
               "reports": 0}),
        "{g}"
    );

    // The lab's admin registers the gateway's reporting key; an applicant may not.
    let a = &w.api.authority;
    let (_, _, lab_admin) = a
        .member(("org_lab", "Frontier Lab"), "developer", "admin")
        .await;
    let (_, _, uni_admin) = a
        .member(("org_uni", "University Lab"), "developer", "admin")
        .await;
    let key = SigningKey::generate();
    let (status, _) = w
        .post(
            &w.lab,
            "/v1/orgs/org_lab/reporting-keys",
            json!({"jwk": key.public().to_jwk()}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nor another organization's admin.
    let (status, _) = w
        .post(
            &uni_admin,
            "/v1/orgs/org_lab/reporting-keys",
            json!({"jwk": key.public().to_jwk()}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = w
        .post(
            &lab_admin,
            "/v1/orgs/org_lab/reporting-keys",
            json!({"jwk": key.public().to_jwk()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["kid"], key.kid());
    // A developer's key signs access usage, never compute usage, whatever a permit names.
    let (_, run) = w
        .api
        .call("GET", &format!("/v1/runs/{}", w.run_id), Some(&w.lab), None)
        .await;
    let chip = runpermit_compute::HardwareTable::builtin()
        .lookup("H100 SXM")
        .expect("H100");
    let f = runpermit_compute::accounting::over_time(chip, 3600.0, None).expect("figures");
    let now_s = a.clock.now_s();
    let compute = runpermit_permit::UsageReportClaims::new(
        "org_lab",
        &w.run_id,
        run["permit_id"].as_str().expect("permit"),
        "a-east",
        1,
        (now_s - 3600, now_s - 60),
        now_s,
        runpermit_permit::Metered {
            method: runpermit_permit::MeterMethod::SchedulerAccounting,
            accelerator_seconds: std::collections::BTreeMap::from([(chip.id.clone(), 3600.0)]),
            flop: f.central,
            lower: f.lower,
            upper: f.upper,
        },
    );
    let token = runpermit_permit::sign_usage_report(&compute, &key).expect("signed");
    let (status, body) = w
        .api
        .call("POST", "/v1/usage", None, Some(json!({"reports": [token]})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body.to_string().contains("not a compute provider"),
        "{body}"
    );
    // The grantee registers one too: it signs for org_uni, not for the lab.
    let uni_key = SigningKey::generate();
    let (status, body) = w
        .post(
            &uni_admin,
            "/v1/orgs/org_uni/reporting-keys",
            json!({"jwk": uni_key.public().to_jwk()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let now = a.clock.now_s();
    let ingest = |reports: Vec<String>| {
        let api = &w.api;
        async move {
            api.call(
                "POST",
                "/v1/access-usage",
                None,
                Some(json!({"reports": reports})),
            )
            .await
        }
    };
    let sign = |c: &AccessUsageClaims, k: &SigningKey| sign_access_usage(c, k).expect("sound");
    let first = sign(
        &usage_claims("org_lab", &grant_id, &w.model_id, 1, now),
        &key,
    );
    let second = sign(
        &usage_claims("org_lab", &grant_id, &w.model_id, 2, now),
        &key,
    );

    // Stored, then a retry is a duplicate.
    let (status, answer) = ingest(vec![first.clone(), second.clone()]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["stored"].as_u64(), answer["duplicates"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(answer["results"][0]["grant_id"], grant_id.as_str());
    let (status, answer) = ingest(vec![second.clone()]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["status"], "duplicate", "{answer}");

    // Other content under a stored seq: 409, nothing stored.
    let mut changed = usage_claims("org_lab", &grant_id, &w.model_id, 2, now);
    changed.requests = 40;
    let (status, answer) = ingest(vec![
        sign(
            &usage_claims("org_lab", &grant_id, &w.model_id, 3, now),
            &key,
        ),
        sign(&changed, &key),
    ])
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["results"][0]["status"], "withheld", "{answer}");
    assert_eq!(answer["results"][1]["status"], "refused", "{answer}");

    // Refused, each with a reason, and the sound report with them withheld.
    let sound = sign(
        &usage_claims("org_lab", &grant_id, &w.model_id, 3, now),
        &key,
    );
    let cases: Vec<(String, StatusCode, &str)> = vec![
        // The grantee is not the grant's developer, even with its own registered key.
        (
            sign(
                &usage_claims("org_uni", &grant_id, &w.model_id, 1, now),
                &uni_key,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "grant_id",
        ),
        // The lab's key, but iss claims another organization.
        (
            sign(
                &usage_claims("org_uni", &grant_id, &w.model_id, 1, now),
                &key,
            ),
            StatusCode::UNAUTHORIZED,
            "registered the signing key",
        ),
        (
            sign(
                &usage_claims("org_lab", &grant_id, "mdl_other", 3, now),
                &key,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "model_id",
        ),
        (
            sign(
                &usage_claims("org_lab", "grt_unknown", &w.model_id, 1, now),
                &key,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no grant",
        ),
        (
            sign(
                &usage_claims("org_lab", &grant_id, &w.model_id, 3, now),
                &SigningKey::generate(),
            ),
            StatusCode::UNAUTHORIZED,
            "no registered reporting key",
        ),
        (
            sign(
                &usage_claims("org_lab", &grant_id, &w.model_id, 3, now + 3_600),
                &key,
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "in the future",
        ),
    ];
    for (bad, expected, says) in cases {
        let (status, answer) = ingest(vec![sound.clone(), bad]).await;
        assert_eq!(status, expected, "{says}: {answer}");
        let bad_result = &answer["results"][1];
        assert_eq!(bad_result["status"], "refused", "{answer}");
        assert!(
            bad_result["error"].as_str().unwrap_or("").contains(says),
            "{says}: {answer}"
        );
        assert_eq!(answer["results"][0]["status"], "withheld", "{answer}");
    }

    // The grant shows the two stored reports, to the developer and the grantee alike.
    for who in [&w.lab, &w.researcher] {
        let g = w.grant(who, &grant_id).await;
        assert_eq!(
            g["usage"],
            json!({"requests": 8, "prompt_tokens": 800, "completion_tokens": 200,
                   "refused": 2, "reports": 2,
                   "last_to": runpermit_authority::domain::audit::rfc3339(now * 1000)}),
            "{g}"
        );
    }
    // The reports cost the grant nothing of its standing.
    let g = w.grant(&w.lab, &grant_id).await;
    assert_eq!(g["status"], "active", "{g}");
}

common::on_both! {
    world:
    access_on_sqlite, access_on_postgres
        => access_is_applied_for_consented_decided_logged_and_enforceable;
    evaluation_on_sqlite, evaluation_on_postgres
        => a_milestone_report_gives_the_policys_evaluators_access;
    usage_on_sqlite, usage_on_postgres
        => access_usage_reports_are_verified_stored_and_summed;
}
