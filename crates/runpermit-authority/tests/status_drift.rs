//! The status list never contradicts the authority's own log (issue 11, finding 6): a run
//! revoked, completed or paused through the API and then set back to `active` in the
//! database stays on the signed status list, as the public log says, and the correction is
//! counted. In-process, on SQLite and (with `RUNPERMIT_TEST_DATABASE_URL`) PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::{Api, plan};
use runpermit_permit::{PermitStatus, verify_status_list};
use runpermit_store::Write;
use serde_json::json;

/// A permit of its own lab's (one per lab, so that no aggregation rule sees two), and its
/// run id.
async fn permit(api: &Api, lab: &str) -> (String, String, String) {
    let (_, _, applicant) = api
        .authority
        .member((lab, lab), "developer", "applicant")
        .await;
    let mut p = plan("standard");
    p["run"]["name"] = json!(format!("run-of-{lab}"));
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&applicant),
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
    (permit_id, run.id, applicant)
}

/// Sequences everything queued (no background sequencer runs in-process).
async fn sequence(api: &Api) {
    while runpermit_authority::domain::log::sequence_once(&api.authority.state)
        .await
        .expect("sequencing")
        > 0
    {}
}

/// Sets the run back to `active` behind the log's back: what someone with write access to
/// the database can do.
async fn set_active(api: &Api, run_id: &str) {
    let store = &api.authority.state.store;
    let mut run = store.run(run_id).await.unwrap().expect("run");
    let expected_version = run.version;
    run.status = "active".parse().expect("a status");
    run.reason = String::new();
    store
        .commit(vec![Write::UpdateRun {
            run,
            expected_version,
        }])
        .await
        .expect("the edit");
    assert_eq!(
        store.run(run_id).await.unwrap().expect("run").status,
        runpermit_types::RunStatus::Active
    );
}

async fn listed(api: &Api, permit_id: &str) -> Option<(PermitStatus, String)> {
    let jwks = api.jwks().await;
    let (status, body) = api.raw("/v1/status-list").await;
    assert_eq!(status, StatusCode::OK);
    let token = String::from_utf8(body).expect("UTF-8");
    let list = verify_status_list(token.trim(), &jwks).expect("a valid status list");
    list.entries
        .into_iter()
        .find(|e| e.permit_id == permit_id)
        .map(|e| (e.status, e.reason))
}

async fn act(api: &Api, token: &str, run_id: &str, action: &str, reason: &str) {
    let (status, body) = api
        .call(
            "POST",
            &format!("/v1/runs/{run_id}/{action}"),
            Some(token),
            Some(json!({"reason": reason})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{action}: {body}");
}

async fn the_list_follows_the_log(database_url: Option<&str>) {
    let api = Api::on(database_url).await;
    let (_, _, reviewer) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (revoked, revoked_run, _) = permit(&api, "org_lab_a").await;
    let (completed, completed_run, developer) = permit(&api, "org_lab_b").await;
    let (paused, paused_run, _) = permit(&api, "org_lab_c").await;
    let (unlogged, unlogged_run, _) = permit(&api, "org_lab_d").await;

    act(&api, &reviewer, &revoked_run, "revoke", "weights leaked").await;
    act(
        &api,
        &developer,
        &completed_run,
        "complete",
        "training done",
    )
    .await;
    act(&api, &reviewer, &paused_run, "pause", "incident review").await;
    sequence(&api).await;
    for permit_id in [&revoked, &completed, &paused] {
        assert!(listed(&api, permit_id).await.is_some(), "{permit_id}");
    }

    // The database is edited back to active; the log still says otherwise, and so does the
    // list.
    for run_id in [&revoked_run, &completed_run, &paused_run] {
        set_active(&api, run_id).await;
    }
    assert_eq!(
        listed(&api, &revoked).await,
        Some((PermitStatus::Revoked, "weights leaked".to_owned()))
    );
    assert_eq!(
        listed(&api, &completed).await,
        Some((PermitStatus::Revoked, "completed: training done".to_owned()))
    );
    assert_eq!(
        listed(&api, &paused).await,
        Some((PermitStatus::Paused, "incident review".to_owned()))
    );

    // Revoked in the log, edited to merely paused in the database (so that a later resume
    // would lift it): still revoked on the list.
    let store = &api.authority.state.store;
    let mut run = store.run(&revoked_run).await.unwrap().unwrap();
    let expected_version = run.version;
    run.status = "paused".parse().expect("a status");
    store
        .commit(vec![Write::UpdateRun {
            run,
            expected_version,
        }])
        .await
        .unwrap();
    assert_eq!(
        listed(&api, &revoked).await.map(|l| l.0),
        Some(PermitStatus::Revoked)
    );

    // A legitimate resumption lifts the pause once it is in the log.
    act(&api, &reviewer, &unlogged_run, "pause", "checking").await;
    sequence(&api).await;
    act(&api, &reviewer, &unlogged_run, "resume", "cleared").await;
    assert_eq!(
        listed(&api, &unlogged).await.map(|l| l.0),
        Some(PermitStatus::Paused),
        "until the resumption is public, the log's pause holds"
    );
    sequence(&api).await;
    assert_eq!(listed(&api, &unlogged).await, None);
}

#[tokio::test]
async fn the_list_follows_the_log_on_sqlite() {
    the_list_follows_the_log(None).await;
}

#[tokio::test]
async fn the_list_follows_the_log_on_postgresql() {
    if let Some(db) = common::PgSchema::create("status_drift") {
        the_list_follows_the_log(Some(&db.url)).await;
    }
}
