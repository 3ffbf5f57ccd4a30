//! What providers send: signed usage reports, their reporting keys, and know-your-customer
//! reports of large unpermitted jobs (with split-run detection over all providers).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use runpermit_compute::Flop;
use runpermit_permit::{Jwk, PublicKey};
use runpermit_store::ProviderKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::audit::rfc3339;
use crate::domain::error::{DomainError, RefusalKind};
use crate::domain::limits::Limit;
use crate::domain::runs::ingestion;
use crate::domain::usage_batch::MAX_REPORTS_PER_REQUEST;
use crate::domain::{Caller, kyc, provider_keys};
use crate::http::authz::{self};
use crate::http::error::{ApiError, ApiJson};
use crate::http::limits::ClientAddress;
use crate::http::state::AppState;

/// Largest `POST /v1/usage` body: [`MAX_REPORTS_PER_REQUEST`] reports of about
/// 800 bytes.
pub const MAX_USAGE_BODY_BYTES: usize = 8 * 1024 * 1024;

/// `POST /v1/usage` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// Signed usage reports (compact JWS, `typ` `runpermit-usage+jwt`).
    pub reports: Vec<String>,
}

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
    match ingestion::ingest(&state, body.reports, address.as_deref()).await {
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
            let body = json!({
                "error": "usage_refused",
                "message": format!(
                    "{} of {} report(s) refused, so none of this batch was stored; first: {first}",
                    refused.answer.refused,
                    refused.answer.results.len()
                ),
                "refused": refused.answer.refused,
                "results": refused.answer.results,
            });
            Ok((status, Json(body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// `POST /v1/orgs/{id}/reporting-keys` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReportingKey {
    /// The Ed25519 public key as a JWK (`{"kty":"OKP","crv":"Ed25519","x":…}`).
    pub jwk: Jwk,
}

/// A reporting key as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReportingKeyView {
    /// RFC 7638 thumbprint: the `kid` the gate puts in its reports' headers.
    pub kid: String,
    /// The provider.
    pub org_id: String,
    /// The public key.
    pub jwk: Jwk,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

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

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKycReport {
    /// The customer's registry id (such as its LEI), the same at every provider.
    pub customer: String,
    /// Interval start (unix seconds).
    pub from: i64,
    /// Interval end (unix seconds), after `from`.
    pub to: i64,
    /// How many jobs.
    pub jobs: i64,
    /// Their accelerator-seconds.
    pub accelerator_seconds: f64,
    /// Their compute (metered, or accelerator-seconds × peak).
    pub flop: Flop,
}

pub(crate) async fn create_kyc(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewKycReport>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authz::KYC_CREATE.authorize(&caller)?;
    let (report, flag) = kyc::report(
        &state,
        &caller,
        kyc::Report {
            customer: body.customer,
            from: body.from,
            to: body.to,
            jobs: body.jobs,
            accelerator_seconds: body.accelerator_seconds,
            flop: body.flop,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": report.id, "customer": report.customer, "flag": flag})),
    ))
}

pub(crate) async fn kyc_flags(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    authz::KYC_FLAGS.authorize(&caller)?;
    let (threshold, flags) = kyc::flags(&state).await?;
    Ok(Json(json!({
        "threshold": threshold,
        "window_days": state.policy.oversight.split_run_window_days,
        "flags": flags,
    })))
}
