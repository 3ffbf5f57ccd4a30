//! Incident reports from developers and providers, each category with its deadlines from the
//! policy, and their follow-ups.

use runpermit_policy::parse_timestamp;
use runpermit_store::{Incident, Write};
use runpermit_types::text::{MAX_REASON_CHARS, MAX_TEXT_CHARS};
use runpermit_types::{IncidentStatus, Problems};
use serde_json::{Value, json};

use crate::domain::audit::event;
use crate::domain::error::checked_text;
use crate::domain::ids::new_id;
use crate::domain::{Authority, Caller, DomainError};

/// The largest details of an incident report, as JSON.
pub const MAX_DETAILS_BYTES: usize = 16 * 1024;

/// An incident as its reporter describes it (the API's request body).
pub use runpermit_api::incidents::NewIncident as Report;

/// Records `report` by `caller`'s organization, with its follow-up deadline from the policy's
/// category; every invalid field is named, and a run the reporter may not see is named as
/// one that does not exist.
pub async fn report(
    state: &Authority,
    caller: &Caller,
    report: Report,
) -> Result<Incident, DomainError> {
    let mut problems = Problems::default();
    let category = state.policy.incident_category(&report.category);
    if category.is_none() {
        problems.push(
            "category",
            format!(
                "unknown category {:?}: the policy has {}",
                report.category,
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
    problems.text("summary", &report.summary, MAX_REASON_CHARS, true);
    if let Some(details) = &report.details {
        let bytes = details.to_string().len();
        if bytes > MAX_DETAILS_BYTES {
            problems.push(
                "details",
                format!("must be at most {MAX_DETAILS_BYTES} bytes of JSON (got {bytes})"),
            );
        }
    }
    let now = state.clock.now_ms();
    let occurred_at = match &report.occurred_at {
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
    if let Some(run_id) = &report.run_id {
        // A provider reports on the runs whose signed permit names it, a developer on its
        // own; any other run answers exactly as one that does not exist.
        let visible = match state.store.run(run_id).await? {
            Some(run) => crate::domain::runs::sees_run(state, caller, &run).await?,
            None => false,
        };
        if !visible {
            problems.push("run_id", format!("no run {run_id}"));
        }
    }
    problems.check()?;
    let category = category.ok_or_else(|| DomainError::field("category", "unknown category"))?;
    let incident = Incident {
        id: new_id("inc"),
        org_id: caller.org_id.clone(),
        reported_by: caller.member_id.clone(),
        run_id: report.run_id.clone(),
        category: category.id.clone(),
        summary: report.summary.trim().to_owned(),
        details_json: report.details.clone().unwrap_or(Value::Null).to_string(),
        occurred_at,
        reported_at: now,
        follow_up_due: now + i64::from(category.follow_up_within_hours) * 3_600_000,
        followed_up_at: None,
        follow_up: None,
        status: IncidentStatus::Open,
        tranche: None,
    };
    state
        .store
        .commit(vec![
            Write::InsertIncident(incident.clone()),
            event(
                Some(caller),
                now,
                "incident.open",
                &format!("incident/{}", incident.id),
                Some(&incident.summary),
                json!({"category": incident.category, "run_id": incident.run_id}),
            ),
        ])
        .await?;
    tracing::warn!(incident = %incident.id, category = %incident.category, "incident reported");
    Ok(incident)
}

/// The incidents `caller` may see: every one for the authority's staff, else its own
/// organization's.
pub async fn visible(state: &Authority, caller: &Caller) -> Result<Vec<Incident>, DomainError> {
    let scope = (!caller.is_authority_staff()).then_some(caller.org_id.as_str());
    Ok(state.store.incidents(scope).await?)
}

/// Records `caller`'s follow-up `text` of incident `id` (closing it when `close`); an incident
/// the caller may not see is not found.
pub async fn follow_up(
    state: &Authority,
    caller: &Caller,
    id: &str,
    text: &str,
    close: bool,
) -> Result<Incident, DomainError> {
    let text = checked_text("text", text, MAX_TEXT_CHARS, true)?;
    let incident = state
        .store
        .incident(id)
        .await?
        .filter(|i| caller.sees_org(&i.org_id))
        .ok_or_else(|| DomainError::NotFound(format!("no incident {id}")))?;
    let now = state.clock.now_ms();
    state
        .store
        .commit(vec![
            Write::FollowUpIncident {
                id: incident.id.clone(),
                at: now,
                text,
                close,
            },
            event(
                Some(caller),
                now,
                "incident.follow_up",
                &format!("incident/{}", incident.id),
                None,
                json!({"close": close}),
            ),
        ])
        .await?;
    let stored = state
        .store
        .incident(id)
        .await?
        .ok_or_else(|| DomainError::Internal(format!("incident {id} vanished")))?;
    Ok(stored)
}
