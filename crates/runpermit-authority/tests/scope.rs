//! Scope by assignment (issue 11, finding 8), driven in-process through the HTTP API.
//!
//! - An evaluator acts on the runs its signed permit assigns it (by the policy, or by the
//!   reviewers who approved) and sees only those: to any other evaluator a run, its
//!   milestones, its usage and its milestone reports answer exactly as ids that do not exist.
//! - A provider files incidents only on runs whose signed permit names it, and cannot tell
//!   another run's id from a missing one; it lists the runs it meters.
//! - Scope is read from the signed permit: a provider or evaluator added to the database's
//!   copy of the permit's claims gains nothing.
//!
//! Each scenario runs on a SQLite file (so that the database can be edited by hand beside the
//! authority) and, with `RUNPERMIT_TEST_DATABASE_URL`, on PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::{Api, error_fields, plan};
use runpermit_permit::{PermitClaims, verify_permit_signature};
use runpermit_policy::Policy;
use serde_json::{Value, json};

/// The evaluator organization the policy assigns to every permit issued without review.
const INSTITUTE: &str = "org_aisi";

struct World {
    api: Api,
    database_url: String,
    lab: String,
    reviewers: [String; 2],
    /// An evaluator of [`INSTITUTE`].
    assigned: String,
    /// An evaluator of `org_other_eval`, which nothing assigns.
    other: String,
    /// An operator of `org_cloud_a`, which the permit names.
    cloud_a: String,
    /// An operator of `org_cloud_c`, which the permit does not name.
    cloud_c: String,
    run_id: String,
    permit_id: String,
}

/// A standard-tier permit (issued by the policy, without review) whose run may use
/// `org_cloud_a`, under a policy that assigns [`INSTITUTE`] to evaluate such runs.
async fn world(database_url: &str) -> World {
    let mut policy = Policy::builtin().clone();
    policy.oversight.evaluators = vec![INSTITUTE.to_owned()];
    let api = Api::with_policy(Some(database_url), policy).await;
    let a = &api.authority;
    let (_, _, lab) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (_, _, r1) = a
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, _, r2) = a
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, _, assigned) = a
        .member((INSTITUTE, "Safety Institute"), "evaluator", "evaluator")
        .await;
    let (_, _, other) = a
        .member(
            ("org_other_eval", "Other Evaluator"),
            "evaluator",
            "evaluator",
        )
        .await;
    let (_, _, cloud_a) = a
        .member(("org_cloud_a", "Cloud A"), "provider", "provider_operator")
        .await;
    let (_, _, cloud_c) = a
        .member(("org_cloud_c", "Cloud C"), "provider", "provider_operator")
        .await;
    let mut p = plan("standard");
    p["providers"] = json!([{"provider": "org_cloud_a", "clusters": ["a-east"]}]);
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": p})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let permit_id = app["permit_id"].as_str().expect("a permit").to_owned();
    let run = api
        .authority
        .state
        .store
        .run_by_permit(&permit_id)
        .await
        .unwrap()
        .expect("its run");
    World {
        api,
        database_url: database_url.to_owned(),
        lab,
        reviewers: [r1, r2],
        assigned,
        other,
        cloud_a,
        cloud_c,
        run_id: run.id,
        permit_id,
    }
}

impl World {
    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.api.call("GET", path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.api.call("POST", path, Some(token), Some(body)).await
    }

    /// The claims of permit `id` as signed, verified with the authority's JWKS.
    async fn signed_claims(&self, id: &str) -> PermitClaims {
        let (status, permit) = self
            .get(&format!("/v1/permits/{id}"), &self.reviewers[0])
            .await;
        assert_eq!(status, StatusCode::OK, "{permit}");
        let token = permit["token"].as_str().expect("a token");
        verify_permit_signature(token, &self.api.jwks().await).expect("a valid permit")
    }

    /// The ids of the runs `token` lists.
    async fn listed(&self, token: &str) -> Vec<String> {
        let (status, runs) = self.get("/v1/runs", token).await;
        assert_eq!(status, StatusCode::OK, "{runs}");
        runs.as_array()
            .expect("a list")
            .iter()
            .map(|r| r["id"].as_str().expect("an id").to_owned())
            .collect()
    }

    /// Adds `org` to the database's copy of the permit's claims, under `list` (`providers`
    /// or `evaluators`): what someone with write access to the database can do.
    async fn tamper(&self, list: &str, entry: Value) {
        let store = &self.api.authority.state.store;
        let stored = store.permit(&self.permit_id).await.unwrap().unwrap();
        let mut claims: Value = serde_json::from_str(&stored.claims_json).unwrap();
        claims[list].as_array_mut().expect("a list").push(entry);
        let sql = format!(
            "UPDATE permits SET claims_json = '{}' WHERE id = '{}'",
            claims.to_string().replace('\'', "''"),
            self.permit_id
        );
        let sql = sqlx::AssertSqlSafe(sql);
        if self.database_url.starts_with("postgres") {
            let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.expect("tampering");
        } else {
            let pool = sqlx::SqlitePool::connect(&self.database_url).await.unwrap();
            sqlx::query(sql).execute(&pool).await.expect("tampering");
        }
        let edited = store.permit(&self.permit_id).await.unwrap().unwrap();
        assert!(edited.claims_json.contains(entry_id(&claims, list)));
    }

    async fn submit_milestone(&self) -> String {
        let (status, m) = self
            .post(
                &format!("/v1/runs/{}/milestones", self.run_id),
                &self.lab,
                json!({
                    "checkpoint_digest": format!("sha256:{}", "ab".repeat(32)),
                    "evals": {"cyber_uplift": {"score": 0.12, "threshold": 0.5}},
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{m}");
        m["id"].as_str().expect("milestone id").to_owned()
    }
}

fn entry_id<'a>(claims: &'a Value, list: &str) -> &'a str {
    let last = claims[list].as_array().unwrap().last().unwrap();
    last.as_str()
        .or_else(|| last["provider"].as_str())
        .expect("an id")
}

/// Asserts that `(status, body)`, the answer about `id`, is the answer about `missing` (an id
/// that does not exist) with the id replaced: nothing tells them apart.
fn answers_as_missing(
    (status, body): (StatusCode, Value),
    id: &str,
    (missing_status, missing_body): (StatusCode, Value),
    missing: &str,
) {
    assert_eq!(status, missing_status, "{body} vs {missing_body}");
    assert_eq!(
        body.to_string().replace(id, "ID"),
        missing_body.to_string().replace(missing, "ID"),
        "the answers differ beyond the id"
    );
}

common::on_both! {
    world:
    evaluators_by_policy_on_sqlite, evaluators_by_policy_on_postgres
        => an_evaluator_sees_and_decides_only_the_runs_it_is_assigned_to;
    evaluators_by_reviewers_on_sqlite, evaluators_by_reviewers_on_postgres
        => reviewers_assign_evaluators_at_approval;
    providers_on_sqlite, providers_on_postgres
        => a_provider_reaches_only_the_runs_its_permit_names;
}

/// The policy assigns the institute: the signed permit names it; another evaluator finds
/// neither the run, its milestones, its usage nor its milestone report, and cannot decide
/// it, even after its organization is added to the database's copy of the permit.
async fn an_evaluator_sees_and_decides_only_the_runs_it_is_assigned_to(w: World) {
    let claims = w.signed_claims(&w.permit_id).await;
    assert_eq!(claims.rpv, 3);
    assert_eq!(claims.evaluators(), [INSTITUTE]);

    assert_eq!(w.listed(&w.assigned).await, [w.run_id.as_str()]);
    assert_eq!(w.listed(&w.other).await, Vec::<String>::new());
    let missing = "run_doesnotexist";
    for suffix in ["", "/milestones", "/usage"] {
        let (status, body) = w
            .get(&format!("/v1/runs/{}{suffix}", w.run_id), &w.assigned)
            .await;
        assert_eq!(status, StatusCode::OK, "{suffix}: {body}");
        answers_as_missing(
            w.get(&format!("/v1/runs/{}{suffix}", w.run_id), &w.other)
                .await,
            &w.run_id,
            w.get(&format!("/v1/runs/{missing}{suffix}"), &w.other)
                .await,
            missing,
        );
    }

    // A milestone report awaits evaluation (the run paused, so a decision can release it).
    let (status, body) = w
        .post(
            &format!("/v1/runs/{}/pause", w.run_id),
            &w.reviewers[0],
            json!({"reason": "evaluation before more compute"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let milestone = w.submit_milestone().await;
    let missing_milestone = "mst_doesnotexist";
    for decision in ["accept", "reject"] {
        let body = json!({"reason": "evaluations fine"});
        answers_as_missing(
            w.post(
                &format!("/v1/milestones/{milestone}/{decision}"),
                &w.other,
                body.clone(),
            )
            .await,
            &milestone,
            w.post(
                &format!("/v1/milestones/{missing_milestone}/{decision}"),
                &w.other,
                body,
            )
            .await,
            missing_milestone,
        );
    }

    // The database's copy of the permit names the other evaluator: nothing changes, for
    // scope is the signed permit's.
    w.tamper("evaluators", json!("org_other_eval")).await;
    assert_eq!(w.listed(&w.other).await, Vec::<String>::new());
    let (status, _) = w.get(&format!("/v1/runs/{}", w.run_id), &w.other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = w
        .post(
            &format!("/v1/milestones/{milestone}/accept"),
            &w.other,
            json!({"reason": "let me in"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, run) = w.get(&format!("/v1/runs/{}", w.run_id), &w.lab).await;
    assert_eq!(
        (run["status"].as_str(), run["tranche"].as_i64()),
        (Some("paused"), Some(1)),
        "nothing the other evaluator did changed the run: {run}"
    );
    assert_eq!(run["milestones"][0]["status"], "submitted", "{run}");

    // The assigned institute decides: the next tranche is released.
    let (status, body) = w
        .post(
            &format!("/v1/milestones/{milestone}/accept"),
            &w.assigned,
            json!({"reason": "dangerous-capability evaluations below thresholds"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decided_org"], INSTITUTE);
    let (_, run) = w.get(&format!("/v1/runs/{}", w.run_id), &w.lab).await;
    assert_eq!(
        (run["status"].as_str(), run["tranche"].as_i64()),
        (Some("active"), Some(2)),
        "{run}"
    );
}

/// Reviewers name evaluators with their approvals: the permit names the union of the
/// round's (instead of the policy's), each must be an evaluator organization, and only an
/// approval assigns.
async fn reviewers_assign_evaluators_at_approval(w: World) {
    let a = &w.api.authority;
    let (_, _, iso) = a
        .member(("org_iso", "Evaluation Lab"), "evaluator", "evaluator")
        .await;
    // Its own lab, so that no rule about one lab's several permits interferes.
    let (_, _, applicant) = a
        .member(("org_lab_2", "Second Lab"), "developer", "applicant")
        .await;
    let (status, app) = w
        .post(
            "/v1/applications",
            &applicant,
            json!({"plan": plan("full")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["status"], "submitted", "{app}");
    let reviews = format!("/v1/applications/{}/reviews", app["id"].as_str().unwrap());

    // Refused, each naming what is wrong: not an evaluator, unknown, twice, not an approval.
    let (status, body) = w
        .post(
            &reviews,
            &w.reviewers[0],
            json!({"decision": "approve", "reason": "fine",
                   "evaluators": ["org_lab", "org_nope", "org_iso", "org_iso"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        error_fields(&body),
        ["evaluators[0]", "evaluators[1]", "evaluators[3]"],
        "{body}"
    );
    let text = body.to_string();
    for needle in [
        "org_lab is a developer organization, not an evaluator organization",
        "no evaluator organization \\\"org_nope\\\"",
        "named twice",
    ] {
        assert!(text.contains(needle), "{needle}: {body}");
    }
    let (status, body) = w
        .post(
            &reviews,
            &w.reviewers[0],
            json!({"decision": "request_changes", "reason": "more detail",
                   "evaluators": ["org_iso"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_fields(&body), ["evaluators"], "{body}");
    assert!(body.to_string().contains("with an approval only"), "{body}");

    // Two approvals, each naming one evaluator: the permit names both, not the policy's.
    let (status, body) = w
        .post(
            &reviews,
            &w.reviewers[0],
            json!({"decision": "approve", "reason": "safeguards adequate",
                   "evaluators": ["org_iso"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "under_review", "{body}");
    let (status, body) = w
        .post(
            &reviews,
            &w.reviewers[1],
            json!({"decision": "approve", "reason": "agree",
                   "evaluators": ["org_other_eval", "org_iso"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "approved", "{body}");
    let permit_id = body["permit_id"].as_str().expect("a permit").to_owned();
    let claims = w.signed_claims(&permit_id).await;
    assert_eq!(claims.evaluators(), ["org_iso", "org_other_eval"]);
    let (_, listed) = w.get(&reviews, &w.reviewers[0]).await;
    let named: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["evaluators"])
        .collect();
    assert!(
        named.contains(&&json!(["org_iso"]))
            && named.contains(&&json!(["org_other_eval", "org_iso"])),
        "each review shows what it named: {listed}"
    );

    // The reviewers' evaluators see the run; the policy's institute does not.
    let run = &claims.sub;
    assert_eq!(w.listed(&iso).await, [run.as_str()]);
    assert!(w.listed(&w.other).await.contains(run));
    assert!(!w.listed(&w.assigned).await.contains(run));
    let (status, _) = w.get(&format!("/v1/runs/{run}"), &w.assigned).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A provider files incidents only on runs whose signed permit names it; any other run
/// answers exactly as a missing one, even when the database's copy of the permit names the
/// provider. It lists the runs it meters, and reads only their permits.
async fn a_provider_reaches_only_the_runs_its_permit_names(w: World) {
    let incident = |run_id: &str| {
        json!({"category": "security_breach", "summary": "a login from an unknown network",
               "run_id": run_id})
    };
    let missing = "run_doesnotexist";
    let (status, body) = w
        .post("/v1/incidents", &w.cloud_a, incident(&w.run_id))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    answers_as_missing(
        w.post("/v1/incidents", &w.cloud_c, incident(&w.run_id))
            .await,
        &w.run_id,
        w.post("/v1/incidents", &w.cloud_c, incident(missing)).await,
        missing,
    );
    let (_, body) = w.post("/v1/incidents", &w.cloud_c, incident(missing)).await;
    assert_eq!(error_fields(&body), ["run_id"], "{body}");

    assert_eq!(w.listed(&w.cloud_a).await, [w.run_id.as_str()]);
    assert_eq!(w.listed(&w.cloud_c).await, Vec::<String>::new());
    let (status, _) = w
        .get(&format!("/v1/permits/{}", w.permit_id), &w.cloud_a)
        .await;
    assert_eq!(status, StatusCode::OK);

    // The database's copy of the permit names cloud C: the signed permit does not.
    w.tamper(
        "providers",
        json!({"provider": "org_cloud_c", "clusters": []}),
    )
    .await;
    answers_as_missing(
        w.post("/v1/incidents", &w.cloud_c, incident(&w.run_id))
            .await,
        &w.run_id,
        w.post("/v1/incidents", &w.cloud_c, incident(missing)).await,
        missing,
    );
    assert_eq!(w.listed(&w.cloud_c).await, Vec::<String>::new());
    let missing_permit = "pmt_doesnotexist";
    answers_as_missing(
        w.get(&format!("/v1/permits/{}", w.permit_id), &w.cloud_c)
            .await,
        &w.permit_id,
        w.get(&format!("/v1/permits/{missing_permit}"), &w.cloud_c)
            .await,
        missing_permit,
    );
    let (status, body) = w.get("/v1/incidents", &w.cloud_c).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]), "cloud C filed nothing");
}
