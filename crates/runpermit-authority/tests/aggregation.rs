//! Aggregation (issue 11, finding 3): one plan is permitted once; an organization's permits
//! within the policy's window count towards the tier of its next application, so that one run
//! split into several lands in the tier of the whole; a base model counts at what its runs
//! here used, not at what a later plan declares.
//!
//! In-process, on in-memory SQLite and, with `RUNPERMIT_TEST_DATABASE_URL`, PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::{Api, plan};
use runpermit_policy::RunPlan;
use serde_json::{Value, json};

async fn apply(api: &Api, token: &str, plan: &Value, draft: bool) -> (StatusCode, Value) {
    api.call(
        "POST",
        "/v1/applications",
        Some(token),
        Some(json!({"plan": plan, "draft": draft})),
    )
    .await
}

/// The standard example plan as run `name`: the same plan, split off as another run.
fn standard_named(name: &str) -> Value {
    let mut p = plan("standard");
    p["run"]["name"] = json!(name);
    p
}

async fn splitting_one_run_does_not_lower_its_tier(api: Api) {
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;

    // A standard (notify) plan is permitted at once, without review.
    let (status, first) = apply(&api, &lab, &plan("standard"), false).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let first_permit = first["permit_id"].as_str().expect("a permit").to_owned();

    // The same plan again is refused while that permit is in force, naming it.
    let (status, again) = apply(&api, &lab, &plan("standard"), false).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let message = again["message"].as_str().unwrap();
    assert!(message.contains(&first_permit), "{again}");

    // A second share under another name: still below the full tier together.
    let (status, second) = apply(&api, &lab, &standard_named("heron-405b part 2"), false).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["tier"], "standard", "{second}");
    assert!(second["permit_id"].is_string(), "{second}");

    // The third share takes the organization's total past 1e26: the full tier, with its two
    // reviewers, as the whole run would have been, and never an automatic permit.
    let (status, third) = apply(&api, &lab, &standard_named("heron-405b part 3"), true).await;
    assert_eq!(status, StatusCode::CREATED, "{third}");
    assert_eq!(third["tier"], "full", "{third}");
    let id = third["id"].as_str().unwrap();
    let (status, submitted) = api
        .call(
            "POST",
            &format!("/v1/applications/{id}/submit"),
            Some(&lab),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the full tier's requirements apply: {submitted}"
    );
    assert!(
        submitted.to_string().contains("tier \\\"full\\\""),
        "{submitted}"
    );
    let (_, runs) = api.call("GET", "/v1/runs", Some(&lab), None).await;
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs}");

    // Another organization's permits do not count towards this one's.
    let (_, _, other) = api
        .authority
        .member(("org_other", "Other Lab"), "developer", "applicant")
        .await;
    let (status, theirs) = apply(&api, &other, &standard_named("wren-405b"), true).await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_eq!(theirs["tier"], "standard", "{theirs}");

    // Outside the window (90 days), earlier permits no longer count.
    api.authority.clock.advance_ms(91 * 86_400_000);
    let (status, later) = apply(&api, &lab, &standard_named("heron-405b part 4"), true).await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    assert_eq!(later["tier"], "standard", "{later}");
}

#[tokio::test]
async fn splitting_on_sqlite() {
    splitting_one_run_does_not_lower_its_tier(Api::new().await).await;
}

#[tokio::test]
async fn splitting_on_postgres() {
    if let Some(db) = common::PgSchema::create("aggregation_split") {
        splitting_one_run_does_not_lower_its_tier(Api::on(Some(&db.url)).await).await;
    }
}

async fn one_plan_is_permitted_once_under_concurrency(api: Api) {
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let api = std::sync::Arc::new(api);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (api, lab) = (api.clone(), lab.clone());
            tokio::spawn(async move { apply(&api, &lab, &plan("standard"), false).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::CONFLICT,
            "{status}: {body}"
        );
        statuses.push(status);
    }
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    let (_, runs) = api.call("GET", "/v1/runs", Some(&lab), None).await;
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    // Once its run is finished, the plan may be permitted again.
    let run_id = runs[0]["id"].as_str().unwrap();
    let (_, _, reviewer) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (status, body) = api
        .call(
            "POST",
            &format!("/v1/runs/{run_id}/revoke"),
            Some(&reviewer),
            Some(json!({"reason": "test"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, again) = apply(&api, &lab, &plan("standard"), false).await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
}

#[tokio::test]
async fn concurrency_on_sqlite() {
    one_plan_is_permitted_once_under_concurrency(Api::new().await).await;
}

#[tokio::test]
async fn concurrency_on_postgres() {
    if let Some(db) = common::PgSchema::create("aggregation_once") {
        one_plan_is_permitted_once_under_concurrency(Api::on(Some(&db.url)).await).await;
    }
}

async fn a_base_model_counts_at_what_its_runs_used(api: Api) {
    let (_, _, lab) = api
        .authority
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (status, base) = apply(&api, &lab, &plan("standard"), false).await;
    assert_eq!(status, StatusCode::CREATED, "{base}");
    let (_, runs) = api.call("GET", "/v1/runs", Some(&lab), None).await;
    let run_id = runs[0]["id"].as_str().unwrap().to_owned();
    let permit_id = runs[0]["permit_id"].as_str().unwrap().to_owned();
    // The base run used 3e25 FLOP (as ingestion stores it).
    let token = "eyJ.usage.report".to_owned();
    api.authority
        .state
        .store
        .ingest_usage(vec![runpermit_store::UsageRecord {
            provider_id: "northwind-cloud".into(),
            run_id: run_id.clone(),
            seq: 1,
            permit_id,
            cluster: "nw-east-1".into(),
            from_s: 1,
            to_s: 2,
            flop: 3e25,
            flop_lower: 0.0,
            flop_upper: 3e25,
            method: "scheduler_accounting".into(),
            accelerator_seconds_json: "{}".into(),
            capacity_flop: 0.0,
            digest: runpermit_authority::domain::ids::sha256_hex(token.as_bytes()),
            token,
            received_at: runpermit_authority::testing::T0_MS,
        }])
        .await
        .unwrap();

    // A fine-tune of it that declares its base model at a tenth of that.
    let mut tune = serde_json::to_value(
        RunPlan::from_toml(include_str!("../../../examples/plans/fine-tune.toml")).unwrap(),
    )
    .unwrap();
    tune["base_model"]["name"] = json!("heron-405b");
    tune["base_model"]["cumulative_flop"] = json!(3e24);
    let (status, app) = apply(&api, &lab, &tune, true).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let id = app["id"].as_str().unwrap();
    let (_, shown) = api
        .call("GET", &format!("/v1/applications/{id}"), Some(&lab), None)
        .await;
    let reasons = shown["review_reasons"].to_string();
    assert!(
        reasons.contains("declares its base model \\\"heron-405b\\\"") && reasons.contains(&run_id),
        "{shown}"
    );
    assert_eq!(shown["decision"], "review", "{shown}");
}

#[tokio::test]
async fn lineage_on_sqlite() {
    a_base_model_counts_at_what_its_runs_used(Api::new().await).await;
}

#[tokio::test]
async fn lineage_on_postgres() {
    if let Some(db) = common::PgSchema::create("aggregation_lineage") {
        a_base_model_counts_at_what_its_runs_used(Api::on(Some(&db.url)).await).await;
    }
}
