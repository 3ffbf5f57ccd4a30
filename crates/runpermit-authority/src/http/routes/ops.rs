//! Operations endpoints, the policy, the audit trail and the OpenAPI document (built in
//! [`crate::http::openapi`]).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use runpermit_api::ops::{AuditQuery, AuditView, Health, Readiness};
use runpermit_policy::Policy;
use serde_json::Value;

use crate::domain::Caller;
use crate::domain::audit::rfc3339;
use crate::http::authz;
use crate::http::error::{ApiError, ApiQuery};
use crate::http::openapi::openapi_document;
use crate::http::state::AppState;

pub(crate) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

/// Ready when the database answers.
pub(crate) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Readiness {
                status: "ready".into(),
                reason: None,
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Readiness {
                    status: "unavailable".into(),
                    reason: Some("database unreachable".into()),
                }),
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

pub(crate) async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
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
