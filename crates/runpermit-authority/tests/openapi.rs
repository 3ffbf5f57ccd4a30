//! The OpenAPI document describes every route of the endpoint table completely: a schema for
//! every request and response body, real operation ids, every `$ref` resolving. That the
//! bodies the server sends conform to it is checked on every call the other suites make
//! (`common::assert_documented`).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Api, openapi};
use runpermit_authority::http::authz::{Access, ENDPOINTS};
use serde_json::Value;
use tower::ServiceExt;

/// The `$ref` of a body's schema: the schema itself or, for a list, its items.
fn reference(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()
        .or_else(|| schema["items"]["$ref"].as_str())
}

#[test]
fn every_route_has_its_schemas_and_an_operation_id() {
    let doc = openapi();
    let mut ids = std::collections::BTreeSet::new();
    for e in ENDPOINTS {
        let what = format!("{} {}", e.method, e.path);
        let op = &doc["paths"][e.path][e.method.to_ascii_lowercase()];
        assert!(op.is_object(), "{what} is not in the document");
        let id = op["operationId"].as_str().expect("an operationId");
        assert!(
            id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && id.chars().all(|c| c.is_ascii_alphanumeric()),
            "{what}: operationId {id:?} is not lowerCamelCase"
        );
        assert!(ids.insert(id), "{what}: operationId {id} is used twice");
        assert!(
            op["description"].as_str().is_some_and(|d| d.len() > 20),
            "{what}: no description"
        );

        let success = &op["responses"][e.success.to_string()]["content"];
        let (media, content) = success
            .as_object()
            .and_then(|c| c.iter().next())
            .unwrap_or_else(|| panic!("{what}: no content for {}", e.success));
        assert_eq!(media, e.response.content_type, "{what}");
        let name = reference(&content["schema"])
            .unwrap_or_else(|| panic!("{what}: the response is no $ref: {content}"));
        assert_eq!(name, format!("#/components/schemas/{}", e.response.name()));

        match e.request {
            Some(request) => {
                let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                assert_eq!(
                    reference(schema),
                    Some(format!("#/components/schemas/{}", request.name()).as_str()),
                    "{what}: the request body"
                );
                assert_eq!(op["requestBody"]["required"], true, "{what}");
            }
            None => assert!(op["requestBody"].is_null(), "{what} takes no body"),
        }

        for (status, response) in op["responses"].as_object().expect("responses") {
            let code: u16 = status.parse().expect("a status");
            if code >= 400 {
                let text = response.to_string();
                assert!(
                    text.contains("#/components/responses/")
                        || text.contains("#/components/schemas/"),
                    "{what}: {status} has no schema: {text}"
                );
            }
        }
        assert!(op["responses"]["429"].is_object(), "{what}: no 429");
        assert!(op["responses"]["500"].is_object(), "{what}: no 500");
        let idempotency = op["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
        assert_eq!(idempotency, e.method == "POST", "{what}: Idempotency-Key");
        assert_eq!(
            op["security"] == serde_json::json!([]),
            matches!(e.access, Access::Public),
            "{what}: security"
        );
    }
    assert_eq!(
        doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|p| p.as_object().expect("a path item").len())
            .sum::<usize>(),
        ENDPOINTS.len(),
        "an operation the endpoint table does not have"
    );
    let rate_limited = &doc["components"]["responses"]["RateLimited"];
    assert!(
        rate_limited["headers"]["Retry-After"]["schema"]["type"] == "integer",
        "{rate_limited}"
    );
}

/// Every `$ref` under `value`, with where it is.
fn references<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push((at.clone(), r)),
                    _ => references(v, format!("{at}/{key}"), out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                references(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_every_component_is_used() {
    let doc = openapi();
    let mut refs = Vec::new();
    references(doc, String::new(), &mut refs);
    assert!(refs.len() > 100, "{} references", refs.len());
    for (at, r) in &refs {
        assert!(
            runpermit_api::check::resolve(doc, r).is_some(),
            "{at}: {r} does not resolve"
        );
    }
    for name in doc["components"]["schemas"]
        .as_object()
        .expect("schemas")
        .keys()
    {
        let target = format!("#/components/schemas/{name}");
        assert!(
            refs.iter().any(|(_, r)| *r == target),
            "component {name} is never referred to"
        );
    }
}

/// The table says which routes read a body: exactly those refuse a body of another type with
/// 415 (a route that reads none never looks at it).
#[tokio::test]
async fn the_routes_that_take_a_body_are_those_the_table_says() {
    let api = Api::new().await;
    let (_, _, admin) = api
        .authority
        .member(("org_authority", "Authority"), "authority", "admin")
        .await;
    for e in ENDPOINTS
        .iter()
        .filter(|e| matches!(e.method, "POST" | "PUT"))
    {
        let path = e.path.replace("{id}", "x").replace("{kid}", "x");
        let request = Request::builder()
            .method(e.method)
            .uri(&path)
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "text/plain")
            .body(Body::from("hello"))
            .expect("a request");
        let status = api
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("a response")
            .status();
        assert_eq!(
            status == StatusCode::UNSUPPORTED_MEDIA_TYPE,
            e.request.is_some(),
            "{} {path} answered {status}",
            e.method
        );
    }
}
