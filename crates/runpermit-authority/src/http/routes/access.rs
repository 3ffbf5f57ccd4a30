//! Structured access: applications, the developer's consent, reviewers' decisions, and grants
//! with their tokens and log proofs.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use runpermit_api::access::{
    AccessRequestView, AccessReview, AccessUsageBatch, Consent, GrantUsage, GrantView,
    NewAccessRequest,
};
use runpermit_api::runs::Reason;
use runpermit_store::{AccessRequest, Grant};
use serde_json::Value;

use crate::domain::access_usage::{self, MAX_ACCESS_REPORTS_PER_REQUEST};
use crate::domain::audit::rfc3339;
use crate::domain::limits::Limit;
use crate::domain::log as tlog;
use crate::domain::{Caller, access};
use crate::http::authz::{self, Endpoint};
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes::usage;
use crate::http::state::{AppState, ClientAddress};

fn request_view(state: &AppState, r: AccessRequest) -> AccessRequestView {
    let policy = &state.policy.access;
    AccessRequestView {
        approvals: access::approvals_of(&r),
        approvals_needed: policy.approvals_for(&r.tier),
        consent_required: policy.consent_required(&r.tier),
        quotas: serde_json::from_str(&r.quotas_json).unwrap_or(Value::Null),
        days: u32::try_from(r.days).unwrap_or(0),
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
        id: r.id,
        org_id: r.org_id,
        member_id: r.member_id,
        model_id: r.model_id,
        developer_org_id: r.developer_org_id,
        tier: r.tier,
        purpose: r.purpose,
        research_plan_digest: r.research_plan_digest,
        agreement_digest: r.agreement_digest,
        status: r.status,
        consent: r.consent,
        consent_reason: r.consent_reason,
        reason: r.reason,
        grant_id: r.grant_id,
    }
}

/// The API view of `g`: its token and proof only once its `access_granted` entry is logged.
async fn grant_view(state: &AppState, g: Grant) -> Result<GrantView, ApiError> {
    let log_index = state.store.log_index(&access::grant_subject(&g.id)).await?;
    let expired = g.exp_s <= state.clock.now_s();
    let (status, token, proof) = match log_index {
        Some(index) => (
            if expired && g.status != "revoked" {
                "expired".to_owned()
            } else {
                g.status.clone()
            },
            Some(g.token.clone()),
            Some(tlog::proof_bundle(state, index).await?.to_string()),
        ),
        None => ("logging".to_owned(), None, None),
    };
    Ok(GrantView {
        claims: serde_json::from_str(&g.claims_json).unwrap_or(Value::Null),
        expires_at: rfc3339(g.exp_s.saturating_mul(1000)),
        id: g.id,
        org_id: g.org_id,
        model_id: g.model_id,
        developer_org_id: g.developer_org_id,
        tier: g.tier,
        origin: g.origin,
        request_id: g.request_id,
        milestone_id: g.milestone_id,
        status,
        reason: g.reason,
        token,
        log_index,
        proof,
        usage: GrantUsage {
            requests: count(g.usage_requests),
            prompt_tokens: count(g.usage_prompt_tokens),
            completion_tokens: count(g.usage_completion_tokens),
            refused: count(g.usage_refused),
            reports: count(g.usage_reports),
            last_to: g.usage_last_to_s.map(|s| rfc3339(s.saturating_mul(1000))),
        },
    })
}

/// A stored sum, never negative.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `POST /v1/access-usage`: developers' gateways' signed access-usage reports, each
/// authenticated by its signature (no caller).
pub(crate) async fn ingest_usage(
    State(state): State<AppState>,
    address: Option<Extension<ClientAddress>>,
    ApiJson(body): ApiJson<AccessUsageBatch>,
) -> Result<Response, ApiError> {
    // Each report is a signature to check: the source address pays per report, in the same
    // bucket as compute usage reports.
    let address = address.and_then(|Extension(ClientAddress(a))| a);
    if let Some(address) = &address {
        let reports = body.reports.len().min(MAX_ACCESS_REPORTS_PER_REQUEST);
        state.limits.admit(
            state.clock.now_ms(),
            &[(
                Limit::UsageReportsPerAddress,
                address,
                u32::try_from(reports).unwrap_or(u32::MAX),
            )],
        )?;
    }
    usage::answer_batch(access_usage::ingest(&state, body.reports, address.as_deref()).await)
}

pub(crate) async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewAccessRequest>,
) -> Result<(StatusCode, Json<AccessRequestView>), ApiError> {
    authz::ACCESS_REQUESTS_CREATE.authorize(&caller)?;
    let r = access::apply(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(request_view(&state, r))))
}

pub(crate) async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<AccessRequestView>>, ApiError> {
    authz::ACCESS_REQUESTS_LIST.authorize(&caller)?;
    Ok(Json(
        access::visible_requests(&state, &caller)
            .await?
            .into_iter()
            .map(|r| request_view(&state, r))
            .collect(),
    ))
}

pub(crate) async fn get_request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccessRequestView>, ApiError> {
    authz::ACCESS_REQUESTS_GET.authorize(&caller)?;
    let r = access::visible_request(&state, &caller, &id).await?;
    Ok(Json(request_view(&state, r)))
}

pub(crate) async fn consent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Consent>,
) -> Result<Json<AccessRequestView>, ApiError> {
    authz::ACCESS_REQUESTS_CONSENT.authorize(&caller)?;
    let r = access::consent(&state, &caller, &id, body).await?;
    Ok(Json(request_view(&state, r)))
}

pub(crate) async fn review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AccessReview>,
) -> Result<Json<AccessRequestView>, ApiError> {
    authz::ACCESS_REQUESTS_REVIEW.authorize(&caller)?;
    let r = access::review(&state, &caller, &id, body).await?;
    Ok(Json(request_view(&state, r)))
}

pub(crate) async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<GrantView>>, ApiError> {
    authz::GRANTS_LIST.authorize(&caller)?;
    let mut out = Vec::new();
    for g in access::visible_grants(&state, &caller).await? {
        out.push(grant_view(&state, g).await?);
    }
    Ok(Json(out))
}

pub(crate) async fn get_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GrantView>, ApiError> {
    authz::GRANTS_GET.authorize(&caller)?;
    let g = access::visible_grant(&state, &caller, &id).await?;
    Ok(Json(grant_view(&state, g).await?))
}

async fn change(
    state: AppState,
    caller: Caller,
    id: String,
    body: Reason,
    endpoint: Endpoint,
    to: &str,
) -> Result<Json<GrantView>, ApiError> {
    endpoint.authorize(&caller)?;
    let g = access::change_grant(&state, &caller, &id, to, &body.reason).await?;
    Ok(Json(grant_view(&state, g).await?))
}

pub(crate) async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<GrantView>, ApiError> {
    change(state, caller, id, body, authz::GRANTS_SUSPEND, "suspended").await
}

pub(crate) async fn reinstate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<GrantView>, ApiError> {
    change(state, caller, id, body, authz::GRANTS_REINSTATE, "active").await
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<GrantView>, ApiError> {
    change(state, caller, id, body, authz::GRANTS_REVOKE, "revoked").await
}
