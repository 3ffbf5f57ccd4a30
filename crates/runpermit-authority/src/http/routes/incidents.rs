//! Incident reports from developers and providers, each category with its deadlines from the
//! policy; overdue follow-ups are visible to the authority.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use runpermit_policy::parse_timestamp;
use runpermit_store::{Incident, Write};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::Caller;
use crate::domain::audit::{event, rfc3339};
use crate::domain::ids::new_id;
use crate::http::authz;
use crate::http::error::{ApiError, ApiJson, Problems};
use crate::http::state::AppState;
use runpermit_compute::text::{MAX_REASON_CHARS, MAX_TEXT_CHARS};

/// The largest `details` of an incident, as JSON.
const MAX_DETAILS_BYTES: usize = 16 * 1024;

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
        status: i.status,
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewIncident>,
) -> Result<(StatusCode, Json<IncidentView>), ApiError> {
    authz::INCIDENTS_CREATE.authorize(&caller)?;
    let mut problems = Problems::default();
    let category = state.policy.incident_category(&body.category);
    if category.is_none() {
        problems.push(
            "category",
            format!(
                "unknown category {:?}: the policy has {}",
                body.category,
                state
                    .policy
                    .incident_categories
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    problems.text("summary", &body.summary, MAX_REASON_CHARS, true);
    if let Some(details) = &body.details {
        let bytes = details.to_string().len();
        if bytes > MAX_DETAILS_BYTES {
            problems.push(
                "details",
                format!("must be at most {MAX_DETAILS_BYTES} bytes of JSON (got {bytes})"),
            );
        }
    }
    let now = state.clock.now_ms();
    let occurred_at = match &body.occurred_at {
        None => now,
        Some(text) => match parse_timestamp(text) {
            Ok(t) if t.saturating_mul(1000) <= now => t * 1000,
            Ok(_) => {
                problems.push("occurred_at", "must not be in the future");
                now
            }
            Err(e) => {
                problems.push("occurred_at", e);
                now
            }
        },
    };
    if let Some(run_id) = &body.run_id {
        // A provider reports on the runs whose signed permit names it, a developer on its
        // own; any other run answers exactly as one that does not exist.
        let visible = match state.store.run(run_id).await? {
            Some(run) => crate::domain::runs::sees_run(&state, &caller, &run).await?,
            None => false,
        };
        if !visible {
            problems.push("run_id", format!("no run {run_id}"));
        }
    }
    problems.check()?;
    let category = category.ok_or_else(|| ApiError::field("category", "unknown category"))?;
    let incident = Incident {
        id: new_id("inc"),
        org_id: caller.org_id.clone(),
        reported_by: caller.member_id.clone(),
        run_id: body.run_id.clone(),
        category: category.id.clone(),
        summary: body.summary.trim().to_owned(),
        details_json: body.details.clone().unwrap_or(Value::Null).to_string(),
        occurred_at,
        reported_at: now,
        follow_up_due: now + i64::from(category.follow_up_within_hours) * 3_600_000,
        followed_up_at: None,
        follow_up: None,
        status: "open".into(),
    };
    state
        .store
        .commit(vec![
            Write::InsertIncident(incident.clone()),
            event(
                Some(&caller),
                now,
                "incident.open",
                &format!("incident/{}", incident.id),
                Some(&incident.summary),
                json!({"category": incident.category, "run_id": incident.run_id}),
            ),
        ])
        .await?;
    tracing::warn!(incident = %incident.id, category = %incident.category, "incident reported");
    Ok((StatusCode::CREATED, Json(view(&state, incident))))
}

/// `GET /v1/incidents` query.
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
    let scope = (!caller.is_authority_staff()).then_some(caller.org_id.as_str());
    let incidents = state.store.incidents(scope).await?;
    Ok(Json(
        incidents
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
    crate::http::error::checked_text("text", &body.text, MAX_TEXT_CHARS, true)?;
    let incident = state
        .store
        .incident(&id)
        .await?
        .filter(|i| caller.sees_org(&i.org_id))
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    let now = state.clock.now_ms();
    state
        .store
        .commit(vec![
            Write::FollowUpIncident {
                id: incident.id.clone(),
                at: now,
                text: body.text.trim().to_owned(),
                close: body.close,
            },
            event(
                Some(&caller),
                now,
                "incident.follow_up",
                &format!("incident/{}", incident.id),
                None,
                json!({"close": body.close}),
            ),
        ])
        .await?;
    let stored = state
        .store
        .incident(&id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("incident {id} vanished")))?;
    Ok(Json(view(&state, stored)))
}
