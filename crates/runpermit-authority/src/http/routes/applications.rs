//! Applications: apply, read, update, submit, withdraw, appeal.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use runpermit_compute::Estimate;
use runpermit_policy::RunPlan;
use runpermit_store::Application;
use runpermit_types::PermitState;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::Caller;
use crate::domain::applications::{self as lifecycle, visible};
use crate::domain::audit::rfc3339;
use crate::http::authz;
use crate::http::error::{ApiError, ApiJson};
use crate::http::state::AppState;

/// `POST /v1/applications` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    /// The run plan (`runpermit.plan/v1`).
    pub plan: Value,
    /// Keep as a draft instead of submitting at once.
    #[serde(default)]
    pub draft: bool,
}

/// An application as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApplicationView {
    /// Id.
    pub id: String,
    /// Applicant organization.
    pub org_id: String,
    /// Member who created it.
    pub created_by: String,
    /// Lifecycle status.
    pub status: String,
    /// Policy tier.
    pub tier: String,
    /// What the policy decides for the tier: exempt, auto_permit, review, deny.
    pub decision: String,
    /// Distinct approvals the tier needs.
    pub approvals_required: i64,
    /// Why the policy in force sends this plan to review although its tier would exempt or
    /// permit it automatically: its estimate's methods disagree, or its figure does not fit
    /// its cluster (absent when none, or when the application was decided under another
    /// policy version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub review_reasons: Vec<String>,
    /// SHA-256 of the canonical plan: what the public log will carry.
    pub plan_digest: String,
    /// Policy version of the latest decision.
    pub policy_version: String,
    /// The server's compute estimate.
    pub estimate: Estimate,
    /// The run plan.
    pub plan: Value,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The issued permit, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permit_id: Option<String>,
    /// The exemption receipt, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_id: Option<String>,
}

/// An application view with its permit or receipt looked up.
pub async fn view(state: &AppState, app: Application) -> Result<ApplicationView, ApiError> {
    let permit_id = state
        .store
        .permits_for_application(&app.id)
        .await?
        .into_iter()
        .rev()
        .find(|p| p.status == PermitState::Issued)
        .map(|p| p.id);
    // A permit is announced only once it is in the public log.
    let permit_id = match permit_id {
        Some(id)
            if state
                .store
                .log_index(&format!("permit/{id}"))
                .await?
                .is_some() =>
        {
            Some(id)
        }
        _ => None,
    };
    let receipt_id = state
        .store
        .receipt_for_application(&app.id)
        .await?
        .map(|r| r.id);
    let estimate = lifecycle::estimate_of(&app)?;
    let review_reasons = if app.policy_version == state.policy.version {
        let plan = lifecycle::stored_plan(&app)?;
        lifecycle::classification(state, &app.org_id, &plan, &estimate)
            .await?
            .0
            .review_reasons
    } else {
        Vec::new()
    };
    Ok(ApplicationView {
        estimate,
        review_reasons,
        plan: serde_json::from_str(&app.plan_json)
            .map_err(|e| ApiError::Internal(format!("stored plan: {e}")))?,
        id: app.id,
        org_id: app.org_id,
        created_by: app.created_by,
        status: app.status.to_string(),
        tier: app.tier,
        decision: app.decision,
        approvals_required: app.approvals_required,
        plan_digest: app.plan_digest,
        policy_version: app.policy_version,
        version: app.version,
        created_at: rfc3339(app.created_at),
        updated_at: rfc3339(app.updated_at),
        permit_id,
        receipt_id,
    })
}

/// The plan in a request body, parsed with field-named errors.
fn parse_plan(plan: &Value) -> Result<RunPlan, ApiError> {
    RunPlan::from_json(&plan.to_string())
        .map_err(|e| ApiError::from(lifecycle::in_plan(vec![e.to_field_error()])))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewApplication>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authz::APPLICATIONS_CREATE.authorize(&caller)?;
    // Replays are answered by the idempotency layer; here the key only makes the id
    // deterministic.
    let key = crate::http::idempotency::key(&headers)?;
    let plan = parse_plan(&body.plan)?;
    let stored = lifecycle::create(&state, &caller, &plan, body.draft, key.as_deref()).await?;
    let body = serde_json::to_value(view(&state, stored).await?)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::CREATED, Json(body)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<ApplicationView>>, ApiError> {
    authz::APPLICATIONS_LIST.authorize(&caller)?;
    let filter = (!caller.is_authority_staff()).then_some(caller.org_id.as_str());
    let mut out = Vec::new();
    for app in state.store.applications(filter).await? {
        out.push(view(&state, app).await?);
    }
    Ok(Json(out))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApplicationView>, ApiError> {
    authz::APPLICATIONS_GET.authorize(&caller)?;
    let app = visible(&state, &caller, &id).await?;
    Ok(Json(view(&state, app).await?))
}

/// `PUT /v1/applications/{id}` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanUpdate {
    /// The new run plan.
    pub plan: Value,
    /// The version read; a stale one gets 409.
    pub version: i64,
}

pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PlanUpdate>,
) -> Result<Json<ApplicationView>, ApiError> {
    authz::APPLICATIONS_UPDATE.authorize(&caller)?;
    let plan = parse_plan(&body.plan)?;
    let app = lifecycle::update(&state, &caller, &id, &plan, body.version).await?;
    Ok(Json(view(&state, app).await?))
}

/// Body of submit, withdraw and appeal.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    /// Why (required for withdraw and appeal).
    #[serde(default)]
    pub reason: Option<String>,
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(_body): ApiJson<StepBody>,
) -> Result<Json<ApplicationView>, ApiError> {
    authz::APPLICATIONS_SUBMIT.authorize(&caller)?;
    let app = lifecycle::submit(&state, &caller, &id).await?;
    Ok(Json(view(&state, app).await?))
}

pub(crate) async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StepBody>,
) -> Result<Json<ApplicationView>, ApiError> {
    authz::APPLICATIONS_WITHDRAW.authorize(&caller)?;
    let app = lifecycle::withdraw(&state, &caller, &id, body.reason.as_deref()).await?;
    Ok(Json(view(&state, app).await?))
}

pub(crate) async fn appeal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StepBody>,
) -> Result<Json<ApplicationView>, ApiError> {
    authz::APPLICATIONS_APPEAL.authorize(&caller)?;
    let app = lifecycle::appeal(&state, &caller, &id, body.reason.as_deref()).await?;
    Ok(Json(view(&state, app).await?))
}
