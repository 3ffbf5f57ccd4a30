//! Applications: apply, read, update, submit, withdraw, appeal.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use runpermit_compute::Estimate;
use runpermit_policy::RunPlan;
use runpermit_policy::workflow::{Action, Status};
use runpermit_store::{Application, Write};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::Caller;
use crate::domain::applications::{self as lifecycle, visible};
use crate::domain::audit::{event, rfc3339};
use crate::domain::ids::{new_id, sha256_hex};
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
        .find(|p| p.status == "issued")
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
        status: app.status,
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
    // deterministic, so that two concurrent retries collide on the primary key instead of
    // creating two applications.
    let key = crate::http::idempotency::key(&headers)?;
    let plan = parse_plan(&body.plan)?;
    let estimate = lifecycle::assess(&plan)?;
    let (class, _) = lifecycle::classification(&state, &caller.org_id, &plan, &estimate).await?;
    // With an idempotency key the id is derived from it, so that two concurrent retries
    // collide on the primary key instead of creating two applications.
    let id = match &key {
        Some(k) => format!(
            "app_{}",
            &sha256_hex(format!("{}\n{k}", caller.member_id).as_bytes())[..32]
        ),
        None => new_id("app"),
    };
    let app = lifecycle::draft(&state, &caller, id, &plan, &estimate, &class)?;
    let created = event(
        Some(&caller),
        app.created_at,
        "application.create",
        &format!("application/{}", app.id),
        None,
        json!({"plan_digest": app.plan_digest, "tier": app.tier}),
    );
    let stored = if body.draft {
        state
            .store
            .commit(vec![Write::InsertApplication(app.clone()), created])
            .await?;
        app
    } else {
        let mut submission =
            lifecycle::submit(&state, &caller, app.clone(), Action::Submit).await?;
        submission.writes.insert(0, created);
        let first = Write::InsertApplication(submission.app.clone());
        lifecycle::commit_submission(&state, first, submission).await?;
        state
            .store
            .application(&app.id)
            .await?
            .ok_or_else(|| ApiError::Internal("an application vanished after commit".into()))?
    };
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

async fn own_application(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Application, ApiError> {
    let app = visible(state, caller, id).await?;
    if app.org_id != caller.org_id {
        return Err(ApiError::Forbidden(
            "only the applicant organization may change its application".into(),
        ));
    }
    Ok(app)
}

pub(crate) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PlanUpdate>,
) -> Result<Json<ApplicationView>, ApiError> {
    authz::APPLICATIONS_UPDATE.authorize(&caller)?;
    let mut app = own_application(&state, &caller, &id).await?;
    let status: Status = app
        .status
        .parse()
        .map_err(|e| ApiError::Internal(format!("{e:?}")))?;
    if !matches!(status, Status::Draft | Status::ChangesRequested) {
        return Err(ApiError::Conflict(format!(
            "the plan of a {} application cannot change; only drafts and applications with changes requested can",
            app.status
        )));
    }
    let plan = parse_plan(&body.plan)?;
    let estimate = lifecycle::assess(&plan)?;
    let (class, _) = lifecycle::classification(&state, &app.org_id, &plan, &estimate).await?;
    let fresh = lifecycle::draft(&state, &caller, app.id.clone(), &plan, &estimate, &class)?;
    app.plan_json = fresh.plan_json;
    app.plan_digest = fresh.plan_digest;
    app.estimate_json = fresh.estimate_json;
    app.tier = fresh.tier;
    app.decision = fresh.decision;
    app.approvals_required = fresh.approvals_required;
    app.policy_version = fresh.policy_version;
    app.updated_at = fresh.updated_at;
    let audit = event(
        Some(&caller),
        app.updated_at,
        "application.update",
        &format!("application/{}", app.id),
        None,
        json!({"plan_digest": app.plan_digest, "tier": app.tier}),
    );
    state
        .store
        .commit(vec![
            Write::UpdateApplication {
                application: app.clone(),
                expected_version: body.version,
            },
            audit,
        ])
        .await?;
    let app = visible(&state, &caller, &id).await?;
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
    let app = own_application(&state, &caller, &id).await?;
    let action = if app.status == Status::ChangesRequested.as_str() {
        Action::Resubmit
    } else {
        Action::Submit
    };
    let expected_version = app.version;
    let submission = lifecycle::submit(&state, &caller, app, action).await?;
    let first = Write::UpdateApplication {
        application: submission.app.clone(),
        expected_version,
    };
    lifecycle::commit_submission(&state, first, submission).await?;
    let app = visible(&state, &caller, &id).await?;
    Ok(Json(view(&state, app).await?))
}

async fn step(
    state: AppState,
    caller: Caller,
    id: String,
    body: StepBody,
    action: Action,
    audit_action: &str,
) -> Result<Json<ApplicationView>, ApiError> {
    let reason = crate::http::error::reason("reason", body.reason.as_deref().unwrap_or_default())?;
    let mut app = own_application(&state, &caller, &id).await?;
    let expected_version = app.version;
    let mut writes = lifecycle::transition_writes(
        &state,
        &caller,
        &mut app,
        action,
        audit_action,
        Some(&reason),
    )?;
    writes.insert(
        0,
        Write::UpdateApplication {
            application: app,
            expected_version,
        },
    );
    state.store.commit(writes).await?;
    let app = visible(&state, &caller, &id).await?;
    Ok(Json(view(&state, app).await?))
}

pub(crate) async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StepBody>,
) -> Result<Json<ApplicationView>, ApiError> {
    authz::APPLICATIONS_WITHDRAW.authorize(&caller)?;
    step(
        state,
        caller,
        id,
        body,
        Action::Withdraw,
        "application.withdraw",
    )
    .await
}

pub(crate) async fn appeal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StepBody>,
) -> Result<Json<ApplicationView>, ApiError> {
    authz::APPLICATIONS_APPEAL.authorize(&caller)?;
    step(
        state,
        caller,
        id,
        body,
        Action::Appeal,
        "application.appeal",
    )
    .await
}
