//! Review decisions on applications.

use runpermit_types::ReviewDecision;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::foreign::ReviewDecisionSchema;

/// `POST /v1/applications/{id}/reviews` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    /// approve, deny or request_changes.
    #[schema(value_type = ReviewDecisionSchema)]
    pub decision: ReviewDecision,
    /// Why: recorded, audited and shown to the applicant.
    pub reason: String,
    /// Conditions attached to an approval; they become the permit's `conditions`.
    #[serde(default)]
    pub conditions: Vec<String>,
    /// Evaluator organizations (ids) assigned with an approval: the permit names those of
    /// every approval of the round (the policy's `[oversight] evaluators` when none names
    /// any), and only they see the run and decide its milestone reports.
    #[serde(default)]
    pub evaluators: Vec<String>,
}

/// A review as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReviewView {
    /// Id.
    pub id: String,
    /// Reviewer member id.
    pub reviewer_id: String,
    /// Reviewer organization.
    pub reviewer_org_id: String,
    /// start, approve, deny or request_changes.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Conditions.
    pub conditions: Vec<String>,
    /// Evaluator organizations assigned with an approval.
    pub evaluators: Vec<String>,
    /// Policy version in force.
    pub policy_version: String,
    /// RFC 3339.
    pub created_at: String,
}
