//! Who is acting: the authenticated member behind a request, as the domain sees it. How a
//! caller is authenticated is the HTTP layer's business (`crate::http::auth`).

use runpermit_types::{OrgKind, Role};

/// The authenticated member making a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Member id.
    pub member_id: String,
    /// Member name.
    pub member_name: String,
    /// Organization id.
    pub org_id: String,
    /// Organization name.
    pub org_name: String,
    /// Organization kind.
    pub org_kind: OrgKind,
    /// Role in the organization.
    pub role: Role,
    /// The token used.
    pub token_id: String,
    /// When that token expires (unix milliseconds); `None` for a token stored without an
    /// expiry (the bootstrap admin token). Tokens it creates never outlive it.
    pub token_expires_at: Option<i64>,
}

impl From<runpermit_store::Principal> for Caller {
    /// The caller a stored principal (a token in force, its member and organization) is.
    fn from(principal: runpermit_store::Principal) -> Caller {
        Caller {
            member_id: principal.member.id,
            member_name: principal.member.name,
            org_id: principal.org.id,
            org_name: principal.org.name,
            org_kind: principal.org.kind,
            role: principal.member.role,
            token_id: principal.token.id,
            token_expires_at: principal.token.expires_at,
        }
    }
}

impl Caller {
    /// An admin, reviewer or auditor of the authority.
    pub fn is_authority_staff(&self) -> bool {
        self.org_kind == OrgKind::Authority
            && matches!(self.role, Role::Admin | Role::Reviewer | Role::Auditor)
    }

    /// May read data belonging to organization `org_id`.
    pub fn sees_org(&self, org_id: &str) -> bool {
        self.is_authority_staff() || self.org_id == org_id
    }

    /// May manage members and tokens of organization `org_id`.
    pub fn manages_org(&self, org_id: &str) -> bool {
        self.role == Role::Admin && (self.org_kind == OrgKind::Authority || self.org_id == org_id)
    }
}
