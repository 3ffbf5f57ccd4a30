//! Organizations, members and API tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runpermit_store::{Member, Organization, Token};
use serde::{Deserialize, Serialize};

use crate::domain::audit::rfc3339;
use crate::domain::{Caller, identity};
use crate::http::authz::{self, OrgKind, Role};
use crate::http::error::{ApiError, ApiJson};
use crate::http::state::AppState;

/// `POST /v1/orgs` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    /// Display name.
    pub name: String,
    /// `authority`, `developer`, `provider` or `evaluator`.
    pub kind: OrgKind,
    /// A stable, unique handle chosen by people (`northwind-cloud`): it becomes the
    /// organization's id. Without it the id is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

/// An organization as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrganizationView {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<Organization> for OrganizationView {
    fn from(o: Organization) -> Self {
        OrganizationView {
            id: o.id,
            name: o.name,
            kind: o.kind.to_string(),
            created_at: rfc3339(o.created_at),
        }
    }
}

pub(crate) async fn create_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewOrganization>,
) -> Result<(StatusCode, Json<OrganizationView>), ApiError> {
    authz::ORGS_CREATE.authorize(&caller)?;
    let org = identity::create_org(
        &state,
        &caller,
        &body.name,
        body.kind,
        body.handle.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(org.into())))
}

pub(crate) async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<OrganizationView>>, ApiError> {
    authz::ORGS_LIST.authorize(&caller)?;
    let orgs = state.store.organizations().await?;
    Ok(Json(orgs.into_iter().map(Into::into).collect()))
}

pub(crate) async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    authz::ORGS_GET.authorize(&caller)?;
    Ok(Json(
        identity::visible_org(&state, &caller, &id).await?.into(),
    ))
}

/// `POST /v1/orgs/{id}/members` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// Person or service name.
    pub name: String,
    /// Role; must fit the organization's kind.
    pub role: Role,
}

/// A member as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct MemberView {
    /// Id.
    pub id: String,
    /// Organization id.
    pub org_id: String,
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        MemberView {
            id: m.id,
            org_id: m.org_id,
            name: m.name,
            role: m.role.to_string(),
            created_at: rfc3339(m.created_at),
        }
    }
}

pub(crate) async fn create_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<NewMember>,
) -> Result<(StatusCode, Json<MemberView>), ApiError> {
    authz::MEMBERS_CREATE.authorize(&caller)?;
    let member = identity::create_member(&state, &caller, &org_id, &body.name, body.role).await?;
    Ok((StatusCode::CREATED, Json(member.into())))
}

pub(crate) async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    authz::MEMBERS_LIST.authorize(&caller)?;
    let members = identity::members(&state, &caller, &org_id).await?;
    Ok(Json(members.into_iter().map(Into::into).collect()))
}

/// `POST /v1/members/{id}/tokens` body.
#[derive(Debug, Default, Serialize, Deserialize)]
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
#[derive(Debug, Serialize, Deserialize)]
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
    /// The secret: shown once, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        TokenView {
            id: t.id,
            member_id: t.member_id,
            label: t.label,
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
            secret: None,
        }
    }
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(member_id): Path<String>,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    authz::TOKENS_CREATE.authorize(&caller)?;
    let (token, secret) = identity::create_token(
        &state,
        &caller,
        &member_id,
        &body.label,
        body.expires_in_days,
    )
    .await?;
    let mut view = TokenView::from(token);
    view.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(view)))
}

pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    Path(member_id): Path<String>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    authz::TOKENS_LIST.authorize(&caller)?;
    let tokens = identity::tokens(&state, &caller, &member_id).await?;
    Ok(Json(tokens.into_iter().map(Into::into).collect()))
}

/// Body of `POST /v1/tokens/{id}/revoke`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Why (recorded in the audit trail).
    #[serde(default)]
    pub reason: Option<String>,
}

pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
    ApiJson(body): ApiJson<Revocation>,
) -> Result<Json<TokenView>, ApiError> {
    authz::TOKENS_REVOKE.authorize(&caller)?;
    let token = identity::revoke_token(&state, &caller, &token_id, body.reason.as_deref()).await?;
    Ok(Json(token.into()))
}

/// `GET /v1/whoami`.
#[derive(Debug, Serialize, Deserialize)]
pub struct WhoAmI {
    /// Member id.
    pub member_id: String,
    /// Member name.
    pub member_name: String,
    /// Role.
    pub role: String,
    /// Organization id.
    pub org_id: String,
    /// Organization name.
    pub org_name: String,
    /// Organization kind.
    pub org_kind: String,
    /// The token in use.
    pub token_id: String,
    /// When the token in use expires (RFC 3339); null for a token stored without an expiry.
    pub token_expires_at: Option<String>,
}

pub(crate) async fn whoami(caller: Caller) -> Result<Json<WhoAmI>, ApiError> {
    authz::WHOAMI.authorize(&caller)?;
    Ok(Json(WhoAmI {
        member_id: caller.member_id,
        member_name: caller.member_name,
        role: caller.role.to_string(),
        org_id: caller.org_id,
        org_name: caller.org_name,
        org_kind: caller.org_kind.to_string(),
        token_id: caller.token_id,
        token_expires_at: caller.token_expires_at.map(rfc3339),
    }))
}
