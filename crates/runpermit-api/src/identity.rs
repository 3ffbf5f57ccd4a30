//! Organizations, members, API tokens, and who the caller is.

use runpermit_types::{OrgKind, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::foreign::{OrgKindSchema, RoleSchema};

/// `POST /v1/orgs` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    /// Display name.
    pub name: String,
    /// `authority`, `developer`, `provider` or `evaluator`.
    #[schema(value_type = OrgKindSchema)]
    pub kind: OrgKind,
    /// A stable, unique handle chosen by people (`northwind-cloud`: 2 to 63 lowercase
    /// letters, digits and hyphens, starting with a letter): it becomes the organization's
    /// id. Without it the id is generated (`org_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

/// An organization as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrganizationView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Kind.
    #[schema(value_type = OrgKindSchema)]
    pub kind: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/orgs/{id}/members` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// Person or service name.
    pub name: String,
    /// Role; must fit the organization's kind.
    #[schema(value_type = RoleSchema)]
    pub role: Role,
}

/// A member as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    /// Id.
    pub id: String,
    /// Organization id.
    pub org_id: String,
    /// Name.
    pub name: String,
    /// Role.
    #[schema(value_type = RoleSchema)]
    pub role: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `POST /v1/members/{id}/tokens` body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for (`ci`, `laptop`).
    #[serde(default)]
    pub label: String,
    /// Lifetime in days: 1 to the policy's `tokens.max_lifetime_days`, and not beyond the
    /// expiry of the token making the request. When absent: the policy's maximum, cut to the
    /// requesting token's expiry. Every token created here has an expiry.
    #[serde(default)]
    pub expires_in_days: Option<i64>,
}

/// A token as the API shows it; `secret` only in the creation response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenView {
    /// Id.
    pub id: String,
    /// Member id.
    pub member_id: String,
    /// Label.
    pub label: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when set.
    pub expires_at: Option<String>,
    /// RFC 3339, when revoked.
    pub revoked_at: Option<String>,
    /// The secret: shown once, in the creation response, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Why `secret` is missing from a creation response: it is the replay of an earlier
    /// answer (same `Idempotency-Key`), and a secret is shown only once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_withheld: Option<String>,
}

/// Body of `POST /v1/tokens/{id}/revoke`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Why (recorded in the audit trail).
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET /v1/whoami`: the calling member, organization and token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    /// Member id.
    pub member_id: String,
    /// Member name.
    pub member_name: String,
    /// Role.
    #[schema(value_type = RoleSchema)]
    pub role: String,
    /// Organization id.
    pub org_id: String,
    /// Organization name.
    pub org_name: String,
    /// Organization kind.
    #[schema(value_type = OrgKindSchema)]
    pub org_kind: String,
    /// The token in use.
    pub token_id: String,
    /// When the token in use expires (RFC 3339); null for a token stored without an expiry.
    pub token_expires_at: Option<String>,
}
