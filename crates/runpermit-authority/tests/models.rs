//! The model registry (issue 15), driven in-process through the HTTP API on SQLite and, with
//! `RUNPERMIT_TEST_DATABASE_URL`, on PostgreSQL: a permitted run's developer registers the
//! models it produced; registration is audited and publicly logged; the registry is public;
//! each checkpoint registers once, a name once per organization; nobody registers a model of
//! another organization's run.

mod common;

use axum::http::StatusCode;
use common::{Api, error_fields, plan};
use runpermit_log::LogEntry;
use serde_json::json;

struct World {
    api: Api,
    lab: String,
    other_lab: String,
    admin: String,
    run_id: String,
    permit_id: String,
}

async fn world(database_url: &str) -> World {
    let api = Api::with_policy(
        Some(database_url),
        runpermit_policy::Policy::builtin().clone(),
    )
    .await;
    let a = &api.authority;
    let (_, _, lab) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (_, _, other_lab) = a
        .member(("org_other", "Other Lab"), "developer", "applicant")
        .await;
    let (_, _, admin) = a
        .member(("org_authority", "Authority"), "authority", "admin")
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
    let permit_id = app["permit_id"].as_str().expect("a permit").to_owned();
    let (_, runs) = api.call("GET", "/v1/runs", Some(&lab), None).await;
    let run_id = runs[0]["id"].as_str().expect("a run").to_owned();
    World {
        api,
        lab,
        other_lab,
        admin,
        run_id,
        permit_id,
    }
}

fn digest(byte: &str) -> String {
    format!("sha256:{}", byte.repeat(32))
}

async fn a_developer_registers_its_runs_models_publicly(w: World) {
    let registration = json!({
        "name": "Frontier-1",
        "run_id": w.run_id,
        "checkpoint_digest": digest("ab"),
        "cumulative_flop": 2.4e25,
        "release_plan": "staged API access after pre-deployment evaluation",
    });
    let (status, model) = w
        .api
        .call(
            "POST",
            "/v1/models",
            Some(&w.lab),
            Some(registration.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    let id = model["id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("mdl_"), "{model}");
    assert_eq!(
        (
            model["org_id"].as_str(),
            model["run_id"].as_str(),
            model["permit_id"].as_str(),
            model["cumulative_flop"].as_f64(),
        ),
        (
            Some("org_lab"),
            Some(w.run_id.as_str()),
            Some(w.permit_id.as_str()),
            Some(2.4e25)
        ),
        "{model}"
    );

    // Public: listed and shown without a token.
    let (status, list) = w.api.call("GET", "/v1/models", None, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["name"], "Frontier-1");
    let (status, shown) = w
        .api
        .call("GET", &format!("/v1/models/{id}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown, model);
    let (status, _) = w.api.call("GET", "/v1/models/mdl_nope", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Audited, and in the public log once sequenced.
    let (_, audit) = w
        .api
        .call(
            "GET",
            &format!("/v1/audit?subject=model/{id}"),
            Some(&w.admin),
            None,
        )
        .await;
    assert!(audit.to_string().contains("model.register"), "{audit}");
    let state = &w.api.authority.state;
    while runpermit_authority::domain::log::sequence_once(state)
        .await
        .expect("sequenced")
        > 0
    {}
    let logged = logged_models(&w).await;
    assert_eq!(
        logged,
        [(w.run_id.clone(), "Frontier-1".to_owned(), digest("ab"))]
    );

    // The same checkpoint again, or the same name: conflicts, nothing written.
    let mut same_checkpoint = registration.clone();
    same_checkpoint["name"] = json!("Frontier-1b");
    let (status, body) = w
        .api
        .call("POST", "/v1/models", Some(&w.lab), Some(same_checkpoint))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("already registered"), "{body}");
    let mut renamed_only = registration.clone();
    renamed_only["checkpoint_digest"] = json!(digest("cd"));
    let (status, body) = w
        .api
        .call("POST", "/v1/models", Some(&w.lab), Some(renamed_only))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body.to_string().contains("already has a model named"),
        "{body}"
    );

    // Without a figure, the run's metered central estimate (none yet: 0).
    let (status, second) = w
        .api
        .call(
            "POST",
            "/v1/models",
            Some(&w.lab),
            Some(json!({"name": "Frontier-1-mini", "run_id": w.run_id,
                        "checkpoint_digest": digest("ef"), "release_plan": "internal"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["cumulative_flop"], 0.0);

    // Another organization's run is no run at all; an anonymous caller may not register.
    let mut theirs = registration.clone();
    theirs["checkpoint_digest"] = json!(digest("01"));
    theirs["name"] = json!("Borrowed");
    let (status, body) = w
        .api
        .call(
            "POST",
            "/v1/models",
            Some(&w.other_lab),
            Some(theirs.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_fields(&body), ["run_id"], "{body}");
    let mut unknown = theirs.clone();
    unknown["run_id"] = json!("run_nope");
    let (_, unknown_body) = w
        .api
        .call("POST", "/v1/models", Some(&w.other_lab), Some(unknown))
        .await;
    assert_eq!(
        unknown_body["message"]
            .as_str()
            .map(|m| m.replace("run_nope", &w.run_id)),
        body["message"].as_str().map(str::to_owned),
        "another's run and no run answer alike"
    );
    let (status, _) = w.api.call("POST", "/v1/models", None, Some(theirs)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bad input: every field named at once.
    let (status, body) = w
        .api
        .call(
            "POST",
            "/v1/models",
            Some(&w.lab),
            Some(
                json!({"name": "", "run_id": "run/../x", "checkpoint_digest": "md5:00",
                        "cumulative_flop": 1e40, "release_plan": "a\u{202E}b",
                        "milestone_id": "mst nope"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let mut fields = error_fields(&body);
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "checkpoint_digest",
            "cumulative_flop",
            "milestone_id",
            "name",
            "release_plan",
            "run_id"
        ],
        "{body}"
    );
    // A milestone report of another run is refused by name.
    let (status, body) = w
        .api
        .call(
            "POST",
            "/v1/models",
            Some(&w.lab),
            Some(json!({"name": "Frontier-2", "run_id": w.run_id,
                        "checkpoint_digest": digest("23"), "release_plan": "internal",
                        "milestone_id": "mst_of_another_run"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_fields(&body), ["milestone_id"], "{body}");
    let (_, list) = w.api.call("GET", "/v1/models", None, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
}

/// The `model_registered` entries of the sequenced log: (run, name, checkpoint).
async fn logged_models(w: &World) -> Vec<(String, String, String)> {
    let state = &w.api.authority.state;
    let size = state
        .store
        .log_state()
        .await
        .expect("log state")
        .map_or(0, |s| s.size);
    let mut out = Vec::new();
    for entry in state.store.log_entries(0, size).await.expect("log entries") {
        let (decoded, _) = runpermit_log::decode(&entry).expect("a log entry");
        if let LogEntry::ModelRegistered {
            run_id,
            model_name,
            checkpoint_digest,
        } = decoded
        {
            out.push((run_id, model_name, checkpoint_digest));
        }
    }
    out
}

common::on_both! {
    world:
    models_on_sqlite, models_on_postgres => a_developer_registers_its_runs_models_publicly;
}
