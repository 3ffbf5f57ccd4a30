//! A query string that cannot be read is invalid input naming the parameter, with the shared
//! error body, as a body is: never axum's plain-text 400.

mod common;

use axum::http::StatusCode;
use common::Api;

#[tokio::test]
async fn unreadable_query_parameters_are_named() {
    let api = Api::new().await;
    let (_, _, reviewer) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    for (path, field) in [
        ("/v1/incidents?overdue=maybe", "overdue"),
        ("/v1/runs/run_x/usage?limit=many", "limit"),
        ("/v1/incidents?surprise=1", "surprise"),
    ] {
        let (status, body) = api.call("GET", path, Some(&reviewer), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["error"], "invalid_input", "{path}: {body}");
        assert_eq!(common::error_fields(&body), [field], "{path}: {body}");
    }
    let (status, body) = api
        .call("GET", "/v1/incidents?overdue=true", Some(&reviewer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
