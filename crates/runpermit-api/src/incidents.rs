//! Incident reports, their follow-ups and deadlines.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::foreign::IncidentStatusSchema;

/// `POST /v1/incidents` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUp {
    /// The follow-up report.
    pub text: String,
    /// Close the incident with it (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub close: bool,
}

fn yes() -> bool {
    true
}

/// `GET /v1/incidents` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct IncidentQuery {
    /// Only incidents whose follow-up is overdue.
    #[serde(default)]
    pub overdue: bool,
}

/// An incident as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct IncidentView {
    /// Id.
    pub id: String,
    /// The reporting organization (the run's holder for incidents the authority opened).
    pub org_id: String,
    /// Who reported it (`authority` for incidents opened automatically).
    pub reported_by: String,
    /// The run concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followed_up_at: Option<String>,
    /// The follow-up report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<String>,
    /// open or closed.
    #[schema(value_type = IncidentStatusSchema)]
    pub status: String,
}
