//! Applications for a permit: the request that carries a run plan, and the application as the
//! API shows it.

use runpermit_compute::Estimate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::foreign::{ApplicationStatusSchema, EstimateSchema, RunPlanSchema};

/// `POST /v1/applications` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    /// The run plan (`runpermit.plan/v1`).
    #[schema(value_type = RunPlanSchema)]
    pub plan: Value,
    /// Keep as a draft instead of submitting at once.
    #[serde(default)]
    pub draft: bool,
}

/// `PUT /v1/applications/{id}` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanUpdate {
    /// The new run plan.
    #[schema(value_type = RunPlanSchema)]
    pub plan: Value,
    /// The version read; a stale one gets 409.
    pub version: i64,
}

/// Body of submit, withdraw and appeal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepBody {
    /// Why (required for withdraw and appeal).
    #[serde(default)]
    pub reason: Option<String>,
}

/// An application as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApplicationView {
    /// Id.
    pub id: String,
    /// Applicant organization.
    pub org_id: String,
    /// Member who created it.
    pub created_by: String,
    /// Lifecycle status.
    #[schema(value_type = ApplicationStatusSchema)]
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
    #[schema(value_type = EstimateSchema)]
    pub estimate: Estimate,
    /// The run plan.
    #[schema(value_type = RunPlanSchema)]
    pub plan: Value,
    /// Optimistic-concurrency version.
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// The issued permit, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_id: Option<String>,
    /// The exemption receipt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_id: Option<String>,
}
