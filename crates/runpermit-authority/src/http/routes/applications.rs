//! Applications: apply, read, update, submit, withdraw, appeal.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use runpermit_api::applications::{ApplicationView, NewApplication, PlanUpdate, StepBody};
use runpermit_policy::RunPlan;
use runpermit_store::Application;
use serde_json::Value;

use crate::domain::Caller;
use crate::domain::applications::{self as lifecycle, visible};
use crate::domain::audit::rfc3339;
use crate::http::authz;
use crate::http::error::{ApiError, ApiJson};
use crate::http::state::AppState;

/// An application view with its permit or receipt looked up.
pub async fn view(state: &AppState, app: Application) -> Result<ApplicationView, ApiError> {
    let permit_id = state
        .store
        .permits_for_application(&app.id)
        .await?
        .into_iter()
        .rev()
        .find(|p| p.status == runpermit_types::PermitState::Issued)
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
) -> Result<(StatusCode, Json<ApplicationView>), ApiError> {
    authz::APPLICATIONS_CREATE.authorize(&caller)?;
    // Replays are answered by the idempotency layer; here the key only makes the id
    // deterministic.
    let key = crate::http::idempotency::key(&headers)?;
    let plan = parse_plan(&body.plan)?;
    let stored = lifecycle::create(&state, &caller, &plan, body.draft, key.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(view(&state, stored).await?)))
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
