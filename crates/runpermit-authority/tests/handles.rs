//! Organizations with a handle chosen by people: the handle is the id, so a plan, a gate's
//! configuration and a URL can name the organization before anyone has read a generated id.

mod common;

use axum::http::StatusCode;
use common::Api;
use serde_json::json;

#[tokio::test]
async fn a_handle_is_the_organizations_id_and_is_taken_once() {
    let api = Api::new().await;
    let (_, _, admin) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "admin")
        .await;
    let create = |body| api.call("POST", "/v1/orgs", Some(&admin), Some(body));

    let (status, org) = create(json!({"name": "Northwind Cloud", "kind": "provider",
                                      "handle": "northwind-cloud"}))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    assert_eq!(org["id"], "northwind-cloud");
    let (status, read) = api
        .call("GET", "/v1/orgs/northwind-cloud", Some(&admin), None)
        .await;
    assert_eq!(
        (status, &read["name"]),
        (StatusCode::OK, &json!("Northwind Cloud"))
    );

    // Taken once, whatever the name or kind.
    let (status, body) = create(json!({"name": "Other", "kind": "developer",
                                       "handle": "northwind-cloud"}))
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("taken"),
        "{body}"
    );

    // A handle reads like a DNS label and can never look like a generated id.
    for bad in [
        "Northwind",
        "org_1234",
        "n",
        "-lead",
        "trail-",
        "has space",
        "x".repeat(64).as_str(),
    ] {
        let (status, body) = create(json!({"name": "X", "kind": "provider", "handle": bad})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_eq!(common::error_fields(&body), ["handle"], "{bad}: {body}");
    }

    // Without a handle the id is generated, as before.
    let (status, org) = create(json!({"name": "Frontier Lab", "kind": "developer"})).await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    assert!(
        org["id"].as_str().unwrap_or("").starts_with("org_"),
        "{org}"
    );
}
