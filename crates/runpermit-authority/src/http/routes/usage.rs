//! What providers send: signed usage reports, their reporting keys, and know-your-customer
//! reports of large unpermitted jobs (with split-run detection over all providers).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use runpermit_api::error::{ErrorCode, UsageRefused};
use runpermit_api::usage::{
    KycAnswer, KycFlags, NewKycReport, NewReportingKey, ReportingKeyView, UsageBatch,
};
use runpermit_permit::PublicKey;
use runpermit_store::ProviderKey;

use crate::domain::audit::rfc3339;
use crate::domain::error::{DomainError, RefusalKind};
use crate::domain::limits::Limit;
use crate::domain::runs::ingestion;
use crate::domain::usage_batch::MAX_REPORTS_PER_REQUEST;
use crate::domain::{Caller, kyc, provider_keys};
use crate::http::authz::{self};
use crate::http::error::{ApiError, ApiJson};
use crate::http::state::AppState;
use crate::http::state::ClientAddress;

/// Largest `POST /v1/usage` body: [`MAX_REPORTS_PER_REQUEST`] reports of about
/// 800 bytes.
pub const MAX_USAGE_BODY_BYTES: usize = 8 * 1024 * 1024;

pub(crate) async fn ingest(
    State(state): State<AppState>,
    address: Option<Extension<ClientAddress>>,
    ApiJson(body): ApiJson<UsageBatch>,
) -> Result<Response, ApiError> {
    // Each report is a signature to check: the source address pays per report.
    let address = address.and_then(|Extension(ClientAddress(a))| a);
    if let Some(address) = &address {
        let reports = body.reports.len().min(MAX_REPORTS_PER_REQUEST);
        state.limits.admit(
            state.clock.now_ms(),
            &[(
                Limit::UsageReportsPerAddress,
                address,
                u32::try_from(reports).unwrap_or(u32::MAX),
            )],
        )?;
    }
    answer_batch(ingestion::ingest(&state, body.reports, address.as_deref()).await)
}

/// The answer to a batch of signed reports: 200 with every report's result, or the batch's
/// refusal (401, 409 or 422) with every report's result.
pub(crate) fn answer_batch(
    outcome: Result<runpermit_api::usage::IngestAnswer, DomainError>,
) -> Result<Response, ApiError> {
    match outcome {
        Ok(answer) => Ok((StatusCode::OK, Json(answer)).into_response()),
        Err(DomainError::Refused(refused)) => {
            let status = match refused.reason {
                RefusalKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                RefusalKind::Conflict => StatusCode::CONFLICT,
                RefusalKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            };
            let first = refused
                .answer
                .results
                .iter()
                .find_map(|r| r.error.as_ref().map(|e| format!("report {}: {e}", r.index)))
                .unwrap_or_default();
            let body = UsageRefused {
                error: ErrorCode::UsageRefused,
                message: format!(
                    "{} of {} report(s) refused, so none of this batch was stored; first: {first}",
                    refused.answer.refused,
                    refused.answer.results.len()
                ),
                refused: refused.answer.refused,
                results: refused.answer.results,
            };
            Ok((status, Json(body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The API view of a stored reporting key.
fn key_view(k: &ProviderKey) -> Result<ReportingKeyView, ApiError> {
    let key = PublicKey::from_bytes(&k.public_key)
        .map_err(|e| ApiError::Internal(format!("stored reporting key {}: {e}", k.kid)))?;
    Ok(ReportingKeyView {
        kid: k.kid.clone(),
        org_id: k.org_id.clone(),
        jwk: key.to_jwk(),
        created_at: rfc3339(k.created_at),
        revoked_at: k.revoked_at.map(rfc3339),
    })
}

pub(crate) async fn create_reporting_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewReportingKey>,
) -> Result<(StatusCode, Json<ReportingKeyView>), ApiError> {
    authz::REPORTING_KEYS_CREATE.authorize(&caller)?;
    let key = PublicKey::from_jwk(&body.jwk).map_err(|e| ApiError::field("jwk", e.to_string()))?;
    let record = provider_keys::register(&state, &caller, &id, &key).await?;
    Ok((StatusCode::CREATED, Json(key_view(&record)?)))
}

pub(crate) async fn list_reporting_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<ReportingKeyView>>, ApiError> {
    authz::REPORTING_KEYS_LIST.authorize(&caller)?;
    let keys = provider_keys::list(&state, &caller, &id).await?;
    Ok(Json(keys.iter().map(key_view).collect::<Result<_, _>>()?))
}

pub(crate) async fn revoke_reporting_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(kid): Path<String>,
) -> Result<Json<ReportingKeyView>, ApiError> {
    authz::REPORTING_KEYS_REVOKE.authorize(&caller)?;
    let key = provider_keys::revoke(&state, &caller, &kid).await?;
    Ok(Json(key_view(&key)?))
}

pub(crate) async fn create_kyc(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewKycReport>,
) -> Result<(StatusCode, Json<KycAnswer>), ApiError> {
    authz::KYC_CREATE.authorize(&caller)?;
    let (report, flag) = kyc::report(&state, &caller, body).await?;
    Ok((
        StatusCode::CREATED,
        Json(KycAnswer {
            id: report.id,
            customer: report.customer,
            flag,
        }),
    ))
}

pub(crate) async fn kyc_flags(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<KycFlags>, ApiError> {
    authz::KYC_FLAGS.authorize(&caller)?;
    let (threshold, flags) = kyc::flags(&state).await?;
    Ok(Json(KycFlags {
        threshold,
        window_days: state.policy.oversight.split_run_window_days,
        flags,
    }))
}
