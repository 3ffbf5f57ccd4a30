//! Structured access to registered models: researchers' applications, the developer's consent,
//! the authority's decision, and the signed grants it issues (docs/access.md).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /v1/access-requests` body: a researcher's organization applies for access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccessRequest {
    /// The registered model (`mdl_…`).
    pub model_id: String,
    /// `api_sampling`, `logprobs`, `finetune`, `activations` or `weights`.
    pub tier: String,
    /// What the access is for, in words.
    pub purpose: String,
    /// `sha256:<hex>` of the research plan.
    pub research_plan_digest: String,
    /// `sha256:<hex>` of the access agreement the grantee accepts.
    pub agreement_digest: String,
    /// Quotas over the grant's validity: `{"tokens", "requests", "accelerator_hours"}`, each
    /// optional (a tier above `api_sampling` sets at least one).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub quotas: Value,
    /// How many days of access (at most the policy's `[access] max_grant_days`).
    pub days: u32,
}

/// `POST /v1/access-requests/{id}/consent` body: the model's developer consents or objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// `true` to consent, `false` to object.
    pub consent: bool,
    /// Why, in words (logged with the decision).
    pub reason: String,
}

/// `POST /v1/access-requests/{id}/review` body: a reviewer approves or denies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessReview {
    /// `true` to approve, `false` to deny.
    pub approve: bool,
    /// Why, in words.
    pub reason: String,
}

/// An application for access as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessRequestView {
    /// Id (`acr_…`).
    pub id: String,
    /// The applying organization.
    pub org_id: String,
    /// The applicant (member id).
    pub member_id: String,
    /// The model.
    pub model_id: String,
    /// The model's developer organization.
    pub developer_org_id: String,
    /// The tier asked for.
    pub tier: String,
    /// What for.
    pub purpose: String,
    /// `sha256:<hex>` of the research plan.
    pub research_plan_digest: String,
    /// `sha256:<hex>` of the access agreement.
    pub agreement_digest: String,
    /// The quotas asked for.
    #[schema(value_type = Object)]
    pub quotas: Value,
    /// Days of access asked for.
    pub days: u32,
    /// `pending`, `granted` or `denied`.
    pub status: String,
    /// The developer's answer: `consented`, `objected`, or absent while it has not answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// The developer's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_reason: Option<String>,
    /// Whether this tier needs the developer's consent (the policy's rule).
    pub consent_required: bool,
    /// Reviewer approvals so far, and how many the tier needs.
    pub approvals: u32,
    /// Approvals the tier needs.
    pub approvals_needed: u32,
    /// The decision's reason, once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The grant issued, once granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// A grant as the API shows it: its token and proof once it is in the public log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GrantView {
    /// Id (`grt_…`, the token's `jti`).
    pub id: String,
    /// The grantee organization.
    pub org_id: String,
    /// The model (`mdl_…`, or the milestone report for an evaluation grant).
    pub model_id: String,
    /// The model's developer organization.
    pub developer_org_id: String,
    /// The tier.
    pub tier: String,
    /// `application` or `evaluation`.
    pub origin: String,
    /// The application it was granted on, for an application grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The milestone report, for an evaluation grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub milestone_id: Option<String>,
    /// `logging` (signed, not yet in the public log: not yet served), `active`, `suspended`,
    /// `revoked` or `expired`.
    pub status: String,
    /// Why it has this status.
    pub reason: String,
    /// The signed grant (compact JWS), once in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Its `access_granted` entry's index in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_index: Option<i64>,
    /// The `c2sp.org/tlog-proof@v1` bundle proving the entry, once in the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// The grant's claims.
    #[schema(value_type = Object)]
    pub claims: Value,
    /// Valid until (RFC 3339).
    pub expires_at: String,
    /// What the developer's access gateway reported serving under it, summed.
    #[serde(default)]
    pub usage: GrantUsage,
}

/// A grant's access-usage reports, summed (`POST /v1/access-usage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantUsage {
    /// Requests admitted and forwarded to the model.
    pub requests: u64,
    /// Input tokens of those requests.
    pub prompt_tokens: u64,
    /// Output tokens of those requests.
    pub completion_tokens: u64,
    /// Requests under the grant the gateway refused.
    pub refused: u64,
    /// Reports stored.
    pub reports: u64,
    /// The end of the latest reported interval (RFC 3339), once a report is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_to: Option<String>,
}

/// `POST /v1/access-usage` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessUsageBatch {
    /// Signed access-usage reports (compact JWS, `typ` `runpermit-access-usage+jwt`), signed
    /// with the developer's registered reporting key; at most 1000 of at most 16 KiB each.
    pub reports: Vec<String>,
}
