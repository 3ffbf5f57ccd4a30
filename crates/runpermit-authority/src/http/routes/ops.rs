//! Operations endpoints, the policy, the audit trail and the OpenAPI document.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use runpermit_policy::Policy;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::Caller;
use crate::domain::audit::rfc3339;
use crate::http::authz::{self, Access, ENDPOINTS};
use crate::http::error::ApiError;
use crate::http::state::AppState;

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Ready when the database answers.
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "reason": "database unreachable"})),
            )
        }
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

pub(crate) async fn policy(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Policy>, ApiError> {
    authz::POLICY.authorize(&caller)?;
    Ok(Json(state.policy.as_ref().clone()))
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only events about this subject (`application/app_…`).
    pub subject: Option<String>,
    /// Only events after this sequence number.
    #[serde(default)]
    pub after: i64,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// One audit event.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditView {
    /// Sequence number: strictly increasing.
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    /// Acting member; none for the authority's own automatic decisions.
    pub actor_member_id: Option<String>,
    /// Acting organization.
    pub actor_org_id: Option<String>,
    /// What happened (`application.submit`).
    pub action: String,
    /// What it happened to.
    pub subject: String,
    /// Why.
    pub reason: Option<String>,
    /// Details.
    pub details: Value,
}

pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditView>>, ApiError> {
    authz::AUDIT_LIST.authorize(&caller)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let events = state
        .store
        .audit(q.subject.as_deref(), q.after, limit)
        .await?;
    Ok(Json(
        events
            .into_iter()
            .map(|e| AuditView {
                seq: e.seq,
                at: rfc3339(e.at),
                actor_member_id: e.actor_member_id,
                actor_org_id: e.actor_org_id,
                action: e.action,
                subject: e.subject,
                reason: e.reason,
                details: serde_json::from_str(&e.details_json).unwrap_or(Value::Null),
            })
            .collect(),
    ))
}

pub(crate) async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3.1 document, generated from the endpoint table that also drives
/// authorization, so the two cannot drift.
pub fn openapi_document() -> Value {
    let mut paths = serde_json::Map::new();
    for e in ENDPOINTS {
        let who = match e.access {
            Access::Public => "Public.".to_owned(),
            Access::AnyMember => "Any authenticated member.".to_owned(),
            Access::Only(grants) => {
                let list: Vec<String> = grants
                    .iter()
                    .map(|(k, r)| format!("{r} of a {k} organization"))
                    .collect();
                format!("Allowed: {}.", list.join("; "))
            }
        };
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut responses = serde_json::Map::new();
        responses.insert(
            e.success.to_string(),
            json!({"description": "Success", "content": {"application/json": {}}}),
        );
        if !matches!(e.access, Access::Public) {
            responses.insert(
                "401".into(),
                json!({"$ref": "#/components/responses/Error"}),
            );
            responses.insert(
                "403".into(),
                json!({"$ref": "#/components/responses/Error"}),
            );
        }
        if e.path.contains('{') {
            responses.insert(
                "404".into(),
                json!({"$ref": "#/components/responses/Error"}),
            );
        }
        if matches!(e.method, "POST" | "PUT") {
            responses.insert(
                "409".into(),
                json!({"$ref": "#/components/responses/Error"}),
            );
            responses.insert(
                "422".into(),
                json!({"$ref": "#/components/responses/Error"}),
            );
        }
        let mut op = json!({
            "summary": e.summary,
            "description": who,
            "tags": [e.tag],
            "operationId": format!("{} {}", e.method, e.path),
            "parameters": params,
            "responses": responses,
        });
        if matches!(e.access, Access::Public) {
            op["security"] = json!([]);
        }
        if matches!(e.method, "POST" | "PUT") {
            op["requestBody"] =
                json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        entry[e.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "runpermit authority",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Permits, compute metering and a public log for frontier AI training runs. Errors share one body: {error, message, errors[{field, message}]}."
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API token (rpt_…) created with runpermit token create."}},
            "responses": {"Error": {"description": "An error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {"Error": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {
                    "error": {"type": "string", "enum": ["invalid_input", "bad_request", "unauthorized", "forbidden", "not_found", "conflict", "internal"]},
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {"field": {"type": "string"}, "message": {"type": "string"}, "suggestions": {"type": "array", "items": {"type": "string"}}}}}
                }
            }}
        }
    })
}
