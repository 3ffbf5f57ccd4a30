//! Incident reports from developers and providers, each category with its deadlines from the
//! policy; overdue follow-ups are visible to the authority.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use runpermit_store::Incident;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::audit::rfc3339;
use crate::domain::{Caller, incidents};
use crate::http::authz;
use crate::http::error::{ApiError, ApiJson};
use crate::http::state::AppState;

/// `POST /v1/incidents` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    /// A category of the policy (`weights_stolen`, `dangerous_capability`, …).
    pub category: String,
    /// What happened, in a sentence or two.
    pub summary: String,
    /// The run concerned, if any.
    #[serde(default)]
    pub run_id: Option<String>,
    /// When the incident was discovered (RFC 3339 or a date); default: now.
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// Anything else (free JSON).
    #[serde(default)]
    pub details: Option<Value>,
}

/// `POST /v1/incidents/{id}/follow-up` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    /// The follow-up report.
    pub text: String,
    /// Close the incident with it (default true).
    #[serde(default = "yes")]
    pub close: bool,
}

fn yes() -> bool {
    true
}

/// An incident as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct IncidentView {
    /// Id.
    pub id: String,
    /// The reporting organization (the run's holder for incidents the authority opened).
    pub org_id: String,
    /// Who reported it (`authority` for incidents opened automatically).
    pub reported_by: String,
    /// The run concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The category.
    pub category: String,
    /// What happened.
    pub summary: String,
    /// More.
    pub details: Value,
    /// When it was discovered (RFC 3339).
    pub occurred_at: String,
    /// When it was reported (RFC 3339).
    pub reported_at: String,
    /// The initial report was due by (RFC 3339).
    pub report_due: String,
    /// Reported after its deadline.
    pub reported_late: bool,
    /// The follow-up is due by (RFC 3339).
    pub follow_up_due: String,
    /// The follow-up is late: not filed and past due.
    pub overdue: bool,
    /// When the follow-up was filed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub followed_up_at: Option<String>,
    /// The follow-up report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
    /// open or closed.
    pub status: String,
}

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
    let incident = incidents::report(
        &state,
        &caller,
        incidents::Report {
            category: body.category,
            summary: body.summary,
            run_id: body.run_id,
            occurred_at: body.occurred_at,
            details: body.details,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, incident))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    /// Only incidents whose follow-up is overdue.
    #[serde(default)]
    pub overdue: bool,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<IncidentQuery>,
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
