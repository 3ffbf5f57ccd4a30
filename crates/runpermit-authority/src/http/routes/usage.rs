//! What providers send: signed usage reports, their reporting keys, and know-your-customer
//! reports of large unpermitted jobs (with split-run detection over all providers).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use runpermit_compute::{Flop, HardwareTable, limits, text};
use runpermit_permit::{Jwk, PublicKey};
use runpermit_policy::{UnpermittedUse, split_runs};
use runpermit_store::{KycReport, ProviderKey, Write};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::Caller;
use crate::domain::audit::{event, rfc3339};
use crate::domain::error::{DomainError, RefusalKind};
use crate::domain::ids::new_id;
use crate::domain::limits::Limit;
use crate::domain::runs::ingestion;
use crate::domain::usage_batch::MAX_REPORTS_PER_REQUEST;
use crate::http::authz::{self, OrgKind};
use crate::http::error::{ApiError, ApiJson, Problems};
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

async fn provider_org(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let org = state
        .store
        .organization(id)
        .await?
        .filter(|_| caller.sees_org(id))
        .ok_or_else(|| ApiError::NotFound(format!("no organization {id}")))?;
    if org.kind != OrgKind::Provider.as_str() {
        return Err(ApiError::field(
            "id",
            format!(
                "{id} is a {} organization: only providers have reporting keys",
                org.kind
            ),
        ));
    }
    Ok(())
}

pub(crate) async fn create_reporting_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewReportingKey>,
) -> Result<(StatusCode, Json<ReportingKeyView>), ApiError> {
    authz::REPORTING_KEYS_CREATE.authorize(&caller)?;
    if !caller.manages_org(&id) {
        return Err(ApiError::NotFound(format!("no organization {id}")));
    }
    provider_org(&state, &caller, &id).await?;
    let key = PublicKey::from_jwk(&body.jwk).map_err(|e| ApiError::field("jwk", e.to_string()))?;
    let now = state.clock.now_ms();
    let record = ProviderKey {
        kid: key.kid().to_owned(),
        org_id: id.clone(),
        public_key: key.as_bytes().to_vec(),
        created_at: now,
        revoked_at: None,
    };
    state
        .store
        .commit(vec![
            Write::InsertProviderKey(record.clone()),
            event(
                Some(&caller),
                now,
                "reporting_key.create",
                &format!("org/{id}"),
                None,
                json!({"kid": record.kid}),
            ),
        ])
        .await?;
    state.provider_keys.invalidate();
    Ok((StatusCode::CREATED, Json(key_view(&record)?)))
}

pub(crate) async fn list_reporting_keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<ReportingKeyView>>, ApiError> {
    authz::REPORTING_KEYS_LIST.authorize(&caller)?;
    provider_org(&state, &caller, &id).await?;
    let keys = state.store.provider_keys(&id).await?;
    Ok(Json(keys.iter().map(key_view).collect::<Result<_, _>>()?))
}

pub(crate) async fn revoke_reporting_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(kid): Path<String>,
) -> Result<Json<ReportingKeyView>, ApiError> {
    authz::REPORTING_KEYS_REVOKE.authorize(&caller)?;
    let key = state
        .store
        .provider_key(&kid)
        .await?
        .filter(|k| caller.manages_org(&k.org_id))
        .ok_or_else(|| ApiError::NotFound(format!("no reporting key {kid}")))?;
    let now = state.clock.now_ms();
    state
        .store
        .commit(vec![
            Write::RevokeProviderKey {
                kid: kid.clone(),
                at: now,
            },
            event(
                Some(&caller),
                now,
                "reporting_key.revoke",
                &format!("org/{}", key.org_id),
                None,
                json!({"kid": kid}),
            ),
        ])
        .await?;
    state.provider_keys.invalidate();
    let key = state
        .store
        .provider_key(&kid)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("reporting key {kid} vanished")))?;
    Ok(Json(key_view(&key)?))
}

/// `POST /v1/kyc-reports` body: one customer's large jobs that ran without a permit at this
/// provider over an interval.
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

/// The longest interval one KYC report covers: a year.
const MAX_KYC_INTERVAL_S: i64 = 366 * 86_400;

/// Everything implausible in a KYC report: the customer id's hygiene, an interval that is
/// empty, longer than a year or in the future, and figures beyond what the largest cluster
/// (10^7 accelerators at the fastest chip's highest peak) can give the interval.
fn kyc_problems(body: &NewKycReport, now_s: i64, problems: &mut Problems) {
    if let Some(problem) = text::id_problem(body.customer.trim()) {
        problems.push(
            "customer",
            format!("the customer's registry id (such as its LEI) {problem}"),
        );
    }
    let interval = i128::from(body.to) - i128::from(body.from);
    if interval <= 0 {
        problems.push(
            "to",
            format!("must be later than from ({} ≤ {})", body.to, body.from),
        );
    } else if interval > i128::from(MAX_KYC_INTERVAL_S) {
        problems.push(
            "to",
            format!("a report covers at most {MAX_KYC_INTERVAL_S} s (a year); got {interval} s"),
        );
    } else if body.to > now_s.saturating_add(300) {
        problems.push(
            "to",
            format!(
                "{} is in the future (the authority's clock reads {})",
                runpermit_permit::utc(body.to),
                runpermit_permit::utc(now_s)
            ),
        );
    }
    if !(1..=1_000_000_000).contains(&body.jobs) {
        problems.push("jobs", format!("must be 1 to 1e9 (got {})", body.jobs));
    }
    let most_seconds =
        interval.clamp(0, i128::from(MAX_KYC_INTERVAL_S)) as f64 * limits::ACCELERATORS.max;
    let seconds = body.accelerator_seconds;
    if !(seconds.is_finite() && (0.0..=most_seconds).contains(&seconds)) {
        problems.push(
            "accelerator_seconds",
            format!(
                "must be a finite number from 0 to the interval × {} accelerators ({}) (got {})",
                limits::number(limits::ACCELERATORS.max),
                limits::number(most_seconds),
                limits::number(seconds)
            ),
        );
    } else {
        let fastest = HardwareTable::builtin()
            .accelerators()
            .iter()
            .filter_map(|a| a.max_peak())
            .map(|(_, rate)| rate.get())
            .fold(0.0, f64::max);
        let most_flop = seconds * fastest;
        if body.flop.get() > most_flop * (1.0 + 1e-9) {
            problems.push(
                "flop",
                format!(
                    "{} FLOP is more than {} accelerator-seconds can compute at the fastest \
                     chip's highest peak ({} FLOP)",
                    limits::number(body.flop.get()),
                    limits::number(seconds),
                    limits::number(most_flop)
                ),
            );
        }
    }
}

pub(crate) async fn create_kyc(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewKycReport>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authz::KYC_CREATE.authorize(&caller)?;
    let mut problems = Problems::default();
    kyc_problems(&body, state.clock.now_s(), &mut problems);
    problems.check()?;
    let now = state.clock.now_ms();
    let report = KycReport {
        id: new_id("kyc"),
        provider_id: caller.org_id.clone(),
        customer: body.customer.trim().to_owned(),
        from_s: body.from,
        to_s: body.to,
        jobs: body.jobs,
        accelerator_seconds: body.accelerator_seconds,
        flop: body.flop.get(),
        received_at: now,
    };
    // One read of the window's totals: the customer's flag before and after this report,
    // so that the report and a new flag's audit event commit together.
    let (mut usage, since) = unpermitted_use(&state).await?;
    let flag_of = |usage: &[UnpermittedUse]| {
        state.policy.permit_threshold().and_then(|threshold| {
            let mine: Vec<UnpermittedUse> = usage
                .iter()
                .filter(|u| u.customer == report.customer)
                .cloned()
                .collect();
            split_runs(&mine, threshold).into_iter().next()
        })
    };
    let was_flagged = flag_of(&usage).is_some();
    if report.to_s > since {
        usage.push(UnpermittedUse {
            customer: report.customer.clone(),
            provider_id: report.provider_id.clone(),
            flop: body.flop,
        });
    }
    let flag = flag_of(&usage);
    let mut writes = vec![
        Write::InsertKycReport(report.clone()),
        event(
            Some(&caller),
            now,
            "kyc.report",
            &format!("customer/{}", report.customer),
            None,
            json!({"id": report.id, "flop": report.flop, "jobs": report.jobs}),
        ),
    ];
    if let (Some(flag), false) = (&flag, was_flagged) {
        tracing::warn!(customer = %flag.customer, total = %flag.total, split = flag.split,
            "unpermitted compute over all providers reached the permit threshold");
        writes.push(event(
            None,
            now,
            if flag.split {
                "kyc.split_run_suspected"
            } else {
                "kyc.unpermitted_run_suspected"
            },
            &format!("customer/{}", flag.customer),
            Some(&format!(
                "{} FLOP of unpermitted compute across {} provider(s) reaches the permit threshold {}",
                flag.total,
                flag.providers.len(),
                flag.threshold
            )),
            json!(flag),
        ));
    }
    state.store.commit(writes).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": report.id, "customer": report.customer, "flag": flag})),
    ))
}

/// Every customer's unpermitted compute by provider within the policy's window, and the
/// window's start (unix seconds; reports ending after it count).
async fn unpermitted_use(state: &AppState) -> Result<(Vec<UnpermittedUse>, i64), ApiError> {
    let window_s = i64::from(state.policy.oversight.split_run_window_days) * 86_400;
    let since = state.clock.now_s() - window_s;
    let usage = state
        .store
        .kyc_totals(since)
        .await?
        .into_iter()
        .filter_map(|t| {
            Some(UnpermittedUse {
                customer: t.customer,
                provider_id: t.provider_id,
                flop: Flop::new(t.flop).ok()?,
            })
        })
        .collect();
    Ok((usage, since))
}

pub(crate) async fn kyc_flags(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    authz::KYC_FLAGS.authorize(&caller)?;
    let (usage, _) = unpermitted_use(&state).await?;
    let flags = state
        .policy
        .permit_threshold()
        .map_or_else(Vec::new, |threshold| split_runs(&usage, threshold));
    Ok(Json(json!({
        "threshold": state.policy.permit_threshold(),
        "window_days": state.policy.oversight.split_run_window_days,
        "flags": flags,
    })))
}
