//! Organizations, members and API tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runpermit_policy::TokenPolicy;
use runpermit_store::{Member, Organization, Token, Write};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::Caller;
use crate::domain::audit::{event, rfc3339};
use crate::domain::ids::{new_id, new_token_secret, token_hash};
use crate::http::authz::{self, OrgKind, Role};
use crate::http::error::{ApiError, ApiJson, checked_text};
use crate::http::state::AppState;
use runpermit_compute::text::MAX_NAME_CHARS;

/// `POST /v1/orgs` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    /// Display name.
    pub name: String,
    /// `authority`, `developer`, `provider` or `evaluator`.
    pub kind: OrgKind,
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
            kind: o.kind,
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
    let now = state.clock.now_ms();
    let org = Organization {
        id: new_id("org"),
        name: checked_text("name", &body.name, MAX_NAME_CHARS, false)?,
        kind: body.kind.as_str().to_owned(),
        created_at: now,
    };
    let subject = format!("organization/{}", org.id);
    state
        .store
        .commit(vec![
            Write::InsertOrganization(org.clone()),
            event(
                Some(&caller),
                now,
                "organization.create",
                &subject,
                None,
                json!({"name": org.name, "kind": org.kind}),
            ),
        ])
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

async fn visible_org(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<Organization, ApiError> {
    let not_found = || ApiError::NotFound(format!("no organization {id}"));
    if !caller.sees_org(id) {
        return Err(not_found());
    }
    state.store.organization(id).await?.ok_or_else(not_found)
}

pub(crate) async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    authz::ORGS_GET.authorize(&caller)?;
    Ok(Json(visible_org(&state, &caller, &id).await?.into()))
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
            role: m.role,
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
    if !caller.manages_org(&org_id) {
        return Err(ApiError::Forbidden(
            "only the organization's admins, or the authority's, may add members".into(),
        ));
    }
    let org = visible_org(&state, &caller, &org_id).await?;
    let kind: OrgKind = org
        .kind
        .parse()
        .map_err(|e: runpermit_types::UnknownName| ApiError::Internal(e.to_string()))?;
    if !kind.roles().contains(&body.role) {
        let allowed: Vec<&str> = kind.roles().iter().map(|r| r.as_str()).collect();
        return Err(ApiError::field(
            "role",
            format!(
                "a {kind} organization's members may be: {}",
                allowed.join(", ")
            ),
        ));
    }
    let now = state.clock.now_ms();
    let member = Member {
        id: new_id("mem"),
        org_id: org.id.clone(),
        name: checked_text("name", &body.name, MAX_NAME_CHARS, false)?,
        role: body.role.as_str().to_owned(),
        created_at: now,
    };
    state
        .store
        .commit(vec![
            Write::InsertMember(member.clone()),
            event(
                Some(&caller),
                now,
                "member.create",
                &format!("member/{}", member.id),
                None,
                json!({"org_id": org.id, "name": member.name, "role": member.role}),
            ),
        ])
        .await?;
    Ok((StatusCode::CREATED, Json(member.into())))
}

pub(crate) async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    authz::MEMBERS_LIST.authorize(&caller)?;
    if !(caller.manages_org(&org_id) || caller.is_authority_staff()) {
        return Err(ApiError::NotFound(format!("no organization {org_id}")));
    }
    visible_org(&state, &caller, &org_id).await?;
    let members = state.store.members(&org_id).await?;
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

/// The member `member_id`, when `caller` may manage its tokens.
async fn manageable_member(
    state: &AppState,
    caller: &Caller,
    member_id: &str,
) -> Result<Member, ApiError> {
    let not_found = || ApiError::NotFound(format!("no member {member_id}"));
    let member = state.store.member(member_id).await?.ok_or_else(not_found)?;
    if caller.member_id == member.id || caller.manages_org(&member.org_id) {
        Ok(member)
    } else if caller.sees_org(&member.org_id) {
        Err(ApiError::Forbidden(
            "only the member, its organization's admins or the authority's admins manage its tokens"
                .into(),
        ))
    } else {
        Err(not_found())
    }
}

const DAY_MS: i64 = 86_400_000;

/// When a token that `caller` creates at `now` expires: `requested` days (1 to the policy's
/// maximum), or the maximum when absent, and never after the caller's own token expires.
fn new_token_expiry(
    policy: &TokenPolicy,
    caller: &Caller,
    requested: Option<i64>,
    now: i64,
) -> Result<i64, ApiError> {
    let max_days = i64::from(policy.max_lifetime_days);
    let creator_expires = caller.token_expires_at.unwrap_or(i64::MAX);
    let Some(days) = requested else {
        return Ok((now + max_days * DAY_MS).min(creator_expires));
    };
    if !(1..=max_days).contains(&days) {
        return Err(ApiError::field(
            "expires_in_days",
            format!(
                "must be a whole number of days from 1 to {max_days} (the policy's \
                 tokens.max_lifetime_days), got {days}; leave it out for the longest allowed"
            ),
        ));
    }
    let expires = now + days * DAY_MS;
    if expires > creator_expires {
        let left = (creator_expires - now) / DAY_MS;
        let ask = if left >= 1 {
            format!("ask for 1 to {left} days, or leave it out")
        } else {
            "leave it out".to_owned()
        };
        return Err(ApiError::field(
            "expires_in_days",
            format!(
                "the token making this request expires at {}, and a token cannot create one \
                 that outlives it: {ask} for a token that expires with it at the latest",
                rfc3339(creator_expires),
            ),
        ));
    }
    Ok(expires)
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(member_id): Path<String>,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<TokenView>), ApiError> {
    authz::TOKENS_CREATE.authorize(&caller)?;
    let member = manageable_member(&state, &caller, &member_id).await?;
    let now = state.clock.now_ms();
    let expires_at = new_token_expiry(&state.policy.tokens, &caller, body.expires_in_days, now)?;
    let secret =
        new_token_secret().map_err(|e| ApiError::Internal(format!("random token: {e}")))?;
    let token = Token {
        id: new_id("tok"),
        member_id: member.id.clone(),
        hash: token_hash(&secret),
        label: if body.label.trim().is_empty() {
            String::new()
        } else {
            checked_text("label", &body.label, MAX_NAME_CHARS, false)?
        },
        created_at: now,
        expires_at: Some(expires_at),
        revoked_at: None,
    };
    state
        .store
        .commit(vec![
            Write::InsertToken(token.clone()),
            event(
                Some(&caller),
                now,
                "token.create",
                &format!("token/{}", token.id),
                None,
                json!({"member_id": member.id, "label": token.label, "expires_at": token.expires_at}),
            ),
        ])
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
    let member = manageable_member(&state, &caller, &member_id).await?;
    let tokens = state.store.tokens(&member.id).await?;
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
    let reason = body
        .reason
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .map(|r| crate::http::error::reason("reason", r))
        .transpose()?;
    let not_found = || ApiError::NotFound(format!("no token {token_id}"));
    let token = state.store.token(&token_id).await?.ok_or_else(not_found)?;
    manageable_member(&state, &caller, &token.member_id).await?;
    if token.revoked_at.is_some() {
        return Ok(Json(token.into()));
    }
    let now = state.clock.now_ms();
    state
        .store
        .commit(vec![
            Write::RevokeToken {
                id: token.id.clone(),
                at: now,
            },
            event(
                Some(&caller),
                now,
                "token.revoke",
                &format!("token/{}", token.id),
                reason.as_deref(),
                json!({"member_id": token.member_id}),
            ),
        ])
        .await?;
    let mut view = TokenView::from(token);
    view.revoked_at = Some(rfc3339(now));
    Ok(Json(view))
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
