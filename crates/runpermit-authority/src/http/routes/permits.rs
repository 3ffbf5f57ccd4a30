//! Permits, exemption receipts and the public keys that verify them.

use axum::Json;
use axum::extract::{Path, State};
use runpermit_api::permits::{ExemptionView, IssuedDocument, PermitView};
use runpermit_permit::Jwks;
use runpermit_store::Permit;

use crate::domain::Caller;
use crate::domain::applications::visible;
use crate::domain::audit::rfc3339;
use crate::domain::log as tlog;
use crate::domain::permits;
use crate::http::authz::{self, OrgKind};
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The API view of `p`: the token and its proof only once the permit is in the public log.
pub async fn permit_view(state: &AppState, p: Permit) -> Result<PermitView, ApiError> {
    let claims = serde_json::from_str(&p.claims_json)
        .map_err(|e| ApiError::Internal(format!("stored claims: {e}")))?;
    let log_index = if p.status == runpermit_types::PermitState::Issued {
        state.store.log_index(&format!("permit/{}", p.id)).await?
    } else {
        None
    };
    let (status, token, proof) = match log_index {
        Some(index) => (
            "issued".to_owned(),
            p.token,
            Some(tlog::proof_bundle(state, index).await?.to_string()),
        ),
        None if p.status == runpermit_types::PermitState::Issued => {
            ("logging".to_owned(), None, None)
        }
        None => (p.status.to_string(), None, None),
    };
    Ok(PermitView {
        kind: "permit".into(),
        claims,
        id: p.id,
        application_id: p.application_id,
        run_id: p.run_id,
        org_id: p.org_id,
        status,
        token,
        log_index,
        proof,
        kid: p.kid,
        policy_version: p.policy_version,
        issued_at: p.issued_at.map(rfc3339),
    })
}

/// Whether `caller` may read permit `p`: its holder, the authority's staff, and the
/// operators of providers the *signed* permit names (through its run, which exists once the
/// permit is signed), never those a copy of its claims in the database names.
async fn may_read(state: &AppState, caller: &Caller, p: &Permit) -> Result<bool, ApiError> {
    if caller.sees_org(&p.org_id) {
        return Ok(true);
    }
    if caller.org_kind != OrgKind::Provider {
        return Ok(false);
    }
    match state.store.run(&p.run_id).await? {
        Some(run) if run.permit_id == p.id => {
            Ok(crate::domain::runs::sees_run(state, caller, &run).await?)
        }
        _ => Ok(false),
    }
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PermitView>, ApiError> {
    authz::PERMITS_GET.authorize(&caller)?;
    let not_found = || ApiError::NotFound(format!("no permit {id}"));
    let permit = state.store.permit(&id).await?.ok_or_else(not_found)?;
    if !may_read(&state, &caller, &permit).await? {
        return Err(not_found());
    }
    Ok(Json(permit_view(&state, permit).await?))
}

pub(crate) async fn for_application(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<IssuedDocument>, ApiError> {
    authz::APPLICATION_PERMIT.authorize(&caller)?;
    let app = visible(&state, &caller, &id).await?;
    if let Some(permit) = state
        .store
        .permits_for_application(&app.id)
        .await?
        .into_iter()
        .next_back()
    {
        let view = permit_view(&state, permit).await?;
        return Ok(Json(IssuedDocument::Permit(view)));
    }
    if let Some(receipt) = state.store.receipt_for_application(&app.id).await? {
        return Ok(Json(IssuedDocument::Exemption(ExemptionView {
            kind: "exemption".into(),
            id: receipt.id,
            application_id: receipt.application_id,
            org_id: receipt.org_id,
            status: "issued".into(),
            token: receipt.token,
            issued_at: rfc3339(receipt.created_at),
        })));
    }
    Err(ApiError::NotFound(format!(
        "application {} ({}) has no permit or exemption receipt",
        app.id, app.status
    )))
}

/// `GET /.well-known/jwks.json`: every key that may still verify a permit in force. Retired
/// keys stay until the longest permit validity has passed since their retirement.
pub(crate) async fn jwks(State(state): State<AppState>) -> Result<Json<Jwks>, ApiError> {
    let keep_ms = i64::from(state.policy.permit.validity_days) * 86_400_000;
    Ok(Json(
        permits::verifying_keys(&state, Some(state.clock.now_ms() - keep_ms)).await?,
    ))
}

/// `GET /v1/status-list`: the signed list of permits not in good standing, for gates to poll
/// ([`crate::domain::runs::status_list`] says how it is built), never cached.
pub(crate) async fn status_list(
    State(state): State<AppState>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let token = crate::domain::runs::status_list::status_list(&state).await?;
    let mut response = (axum::http::StatusCode::OK, format!("{token}\n")).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/jwt"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
