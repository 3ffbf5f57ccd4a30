//! Organizations, members and API tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runpermit_api::identity::{
    MemberView, NewMember, NewOrganization, NewToken, OrganizationView, Revocation, TokenView,
    WhoAmI,
};
use runpermit_store::{Member, Organization, Token};

use crate::domain::audit::rfc3339;
use crate::domain::{Caller, identity};
use crate::http::authz;
use crate::http::error::{ApiError, ApiJson};
use crate::http::state::AppState;

/// The API view of a stored organization.
fn org_view(o: Organization) -> OrganizationView {
    OrganizationView {
        id: o.id,
        name: o.name,
        kind: o.kind.to_string(),
        created_at: rfc3339(o.created_at),
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
    Ok((StatusCode::CREATED, Json(org_view(org))))
}

pub(crate) async fn list_orgs(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<OrganizationView>>, ApiError> {
    authz::ORGS_LIST.authorize(&caller)?;
    let orgs = state.store.organizations().await?;
    Ok(Json(orgs.into_iter().map(org_view).collect()))
}

pub(crate) async fn get_org(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    authz::ORGS_GET.authorize(&caller)?;
    Ok(Json(org_view(
        identity::visible_org(&state, &caller, &id).await?,
    )))
}

/// The API view of a stored member.
fn member_view(m: Member) -> MemberView {
    MemberView {
        id: m.id,
        org_id: m.org_id,
        name: m.name,
        role: m.role.to_string(),
        created_at: rfc3339(m.created_at),
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
    Ok((StatusCode::CREATED, Json(member_view(member))))
}

pub(crate) async fn list_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(org_id): Path<String>,
) -> Result<Json<Vec<MemberView>>, ApiError> {
    authz::MEMBERS_LIST.authorize(&caller)?;
    let members = identity::members(&state, &caller, &org_id).await?;
    Ok(Json(members.into_iter().map(member_view).collect()))
}

/// The API view of a stored token (never with its secret).
fn token_view(t: Token) -> TokenView {
    TokenView {
        id: t.id,
        member_id: t.member_id,
        label: t.label,
        created_at: rfc3339(t.created_at),
        expires_at: t.expires_at.map(rfc3339),
        revoked_at: t.revoked_at.map(rfc3339),
        secret: None,
        secret_withheld: None,
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
    let mut view = token_view(token);
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
    Ok(Json(tokens.into_iter().map(token_view).collect()))
}

pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
    ApiJson(body): ApiJson<Revocation>,
) -> Result<Json<TokenView>, ApiError> {
    authz::TOKENS_REVOKE.authorize(&caller)?;
    let token = identity::revoke_token(&state, &caller, &token_id, body.reason.as_deref()).await?;
    Ok(Json(token_view(token)))
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
