//! Incident reports from developers and providers, each category with its deadlines from the
//! policy; overdue follow-ups are visible to the authority.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runpermit_api::incidents::{FollowUp, IncidentQuery, IncidentView, NewIncident};
use runpermit_store::Incident;
use serde_json::Value;

use crate::domain::audit::rfc3339;
use crate::domain::{Caller, incidents};
use crate::http::authz;
use crate::http::error::{ApiError, ApiJson, ApiQuery};
use crate::http::state::AppState;

/// The API view of a stored incident, with its deadlines as of now.
fn view(state: &AppState, i: Incident) -> IncidentView {
    let now = state.clock.now_ms();
    let report_hours = state
        .policy
        .incident_category(&i.category)
        .map_or(0, |c| c.report_within_hours);
    let report_due = i.occurred_at + i64::from(report_hours) * 3_600_000;
    IncidentView {
        details: serde_json::from_str(&i.details_json).unwrap_or(Value::Null),
        report_due: rfc3339(report_due),
        reported_late: i.reported_at > report_due,
        overdue: i.followed_up_at.is_none() && now > i.follow_up_due,
        follow_up_due: rfc3339(i.follow_up_due),
        occurred_at: rfc3339(i.occurred_at),
        reported_at: rfc3339(i.reported_at),
        followed_up_at: i.followed_up_at.map(rfc3339),
        id: i.id,
        org_id: i.org_id,
        reported_by: i.reported_by,
        run_id: i.run_id,
        category: i.category,
        summary: i.summary,
        follow_up: i.follow_up,
        status: i.status.to_string(),
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewIncident>,
) -> Result<(StatusCode, Json<IncidentView>), ApiError> {
    authz::INCIDENTS_CREATE.authorize(&caller)?;
    let incident = incidents::report(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(view(&state, incident))))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<IncidentQuery>,
) -> Result<Json<Vec<IncidentView>>, ApiError> {
    authz::INCIDENTS_LIST.authorize(&caller)?;
    Ok(Json(
        incidents::visible(&state, &caller)
            .await?
            .into_iter()
            .map(|i| view(&state, i))
            .filter(|v| !q.overdue || v.overdue)
            .collect(),
    ))
}

pub(crate) async fn follow_up(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FollowUp>,
) -> Result<Json<IncidentView>, ApiError> {
    authz::INCIDENTS_FOLLOW_UP.authorize(&caller)?;
    let stored = incidents::follow_up(&state, &caller, &id, &body.text, body.close).await?;
    Ok(Json(view(&state, stored)))
}
