//! Organizations, their members and the members' API tokens: who may create, see and manage
//! which, and how long a token may live.

use runpermit_policy::TokenPolicy;
use runpermit_store::{Member, Organization, Token, Write};
use runpermit_types::text::MAX_NAME_CHARS;
use runpermit_types::{OrgKind, Role};
use serde_json::json;

use crate::domain::audit::{event, rfc3339};
use crate::domain::error::checked_text;
use crate::domain::ids::{new_id, new_token_secret, token_hash};
use crate::domain::{Authority, Caller, DomainError};

/// The longest handle, in characters (a DNS label's length).
pub const MAX_HANDLE_CHARS: usize = 63;

/// What is wrong with `handle` as an organization's handle, if anything: 2 to 63 lowercase
/// letters, digits and hyphens, starting with a letter and not ending with a hyphen (like a
/// DNS label, so that it reads the same in a plan, a URL and a gate's configuration). It can
/// never look like a generated id (`org_…`), which holds an underscore.
pub fn handle_problem(handle: &str) -> Option<String> {
    let sound = (2..=MAX_HANDLE_CHARS).contains(&handle.len())
        && handle.starts_with(|c: char| c.is_ascii_lowercase())
        && !handle.ends_with('-')
        && handle
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (!sound).then(|| {
        format!(
            "must be 2 to {MAX_HANDLE_CHARS} lowercase letters, digits and hyphens, starting \
             with a letter and not ending with a hyphen, like northwind-cloud (got {handle:?})"
        )
    })
}

/// Creates an organization of `kind` named `name`. With a `handle` (such as
/// `northwind-cloud`) the organization's id is that handle: stable, unique, chosen by people,
/// and usable wherever an id is (a plan's providers, a gate's `provider_id`, a URL); without
/// one the id is generated (`org_…`). A handle already taken is a conflict.
pub async fn create_org(
    state: &Authority,
    caller: &Caller,
    name: &str,
    kind: OrgKind,
    handle: Option<&str>,
) -> Result<Organization, DomainError> {
    let id = match handle {
        Some(handle) => {
            if let Some(problem) = handle_problem(handle) {
                return Err(DomainError::field("handle", problem));
            }
            if state.store.organization(handle).await?.is_some() {
                return Err(DomainError::Conflict(format!(
                    "the handle {handle} is taken by another organization"
                )));
            }
            handle.to_owned()
        }
        None => new_id("org"),
    };
    let now = state.clock.now_ms();
    let org = Organization {
        id,
        name: checked_text("name", name, MAX_NAME_CHARS, false)?,
        kind,
        created_at: now,
    };
    let subject = format!("organization/{}", org.id);
    state
        .store
        .commit(vec![
            Write::InsertOrganization(org.clone()),
            event(
                Some(caller),
                now,
                "organization.create",
                &subject,
                None,
                json!({"name": org.name, "kind": org.kind}),
            ),
        ])
        .await?;
    Ok(org)
}

pub async fn visible_org(
    state: &Authority,
    caller: &Caller,
    id: &str,
) -> Result<Organization, DomainError> {
    let not_found = || DomainError::NotFound(format!("no organization {id}"));
    if !caller.sees_org(id) {
        return Err(not_found());
    }
    state.store.organization(id).await?.ok_or_else(not_found)
}

/// Adds a member named `name` with `role` to organization `org_id`, by one of its admins or
/// the authority's; the role must be one the organization's kind has.
pub async fn create_member(
    state: &Authority,
    caller: &Caller,
    org_id: &str,
    name: &str,
    role: Role,
) -> Result<Member, DomainError> {
    if !caller.manages_org(org_id) {
        return Err(DomainError::Forbidden(
            "only the organization's admins, or the authority's, may add members".into(),
        ));
    }
    let org = visible_org(state, caller, org_id).await?;
    let kind = org.kind;
    if !kind.roles().contains(&role) {
        let allowed: Vec<&str> = kind.roles().iter().map(|r| r.as_str()).collect();
        return Err(DomainError::field(
            "role",
            format!(
                "{} organization's members may be: {}",
                runpermit_types::names::with_article(kind.as_str()),
                allowed.join(", ")
            ),
        ));
    }
    let now = state.clock.now_ms();
    let member = Member {
        id: new_id("mem"),
        org_id: org.id.clone(),
        name: checked_text("name", name, MAX_NAME_CHARS, false)?,
        role,
        created_at: now,
    };
    state
        .store
        .commit(vec![
            Write::InsertMember(member.clone()),
            event(
                Some(caller),
                now,
                "member.create",
                &format!("member/{}", member.id),
                None,
                json!({"org_id": org.id, "name": member.name, "role": member.role}),
            ),
        ])
        .await?;
    Ok(member)
}

/// The members of organization `org_id`, for its admins and the authority's staff.
pub async fn members(
    state: &Authority,
    caller: &Caller,
    org_id: &str,
) -> Result<Vec<Member>, DomainError> {
    if !(caller.manages_org(org_id) || caller.is_authority_staff()) {
        return Err(DomainError::NotFound(format!("no organization {org_id}")));
    }
    visible_org(state, caller, org_id).await?;
    let members = state.store.members(org_id).await?;
    Ok(members)
}

/// The member `member_id`, when `caller` may manage its tokens.
pub async fn manageable_member(
    state: &Authority,
    caller: &Caller,
    member_id: &str,
) -> Result<Member, DomainError> {
    let not_found = || DomainError::NotFound(format!("no member {member_id}"));
    let member = state.store.member(member_id).await?.ok_or_else(not_found)?;
    if caller.member_id == member.id || caller.manages_org(&member.org_id) {
        Ok(member)
    } else if caller.sees_org(&member.org_id) {
        Err(DomainError::Forbidden(
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
) -> Result<i64, DomainError> {
    let max_days = i64::from(policy.max_lifetime_days);
    let creator_expires = caller.token_expires_at.unwrap_or(i64::MAX);
    let Some(days) = requested else {
        return Ok((now + max_days * DAY_MS).min(creator_expires));
    };
    if !(1..=max_days).contains(&days) {
        return Err(DomainError::field(
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
        return Err(DomainError::field(
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

/// A new token for member `member_id` (the member itself or its managers), labelled `label`,
/// expiring after `expires_in_days` (default: the longest the policy and the creating token
/// allow). Returns the token and its secret, which is shown once and never stored.
pub async fn create_token(
    state: &Authority,
    caller: &Caller,
    member_id: &str,
    label: &str,
    expires_in_days: Option<i64>,
) -> Result<(Token, String), DomainError> {
    let member = manageable_member(state, caller, member_id).await?;
    let now = state.clock.now_ms();
    let expires_at = new_token_expiry(&state.policy.tokens, caller, expires_in_days, now)?;
    let secret =
        new_token_secret().map_err(|e| DomainError::Internal(format!("random token: {e}")))?;
    let token = Token {
        id: new_id("tok"),
        member_id: member.id.clone(),
        hash: token_hash(&secret),
        label: if label.trim().is_empty() {
            String::new()
        } else {
            checked_text("label", label, MAX_NAME_CHARS, false)?
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
                Some(caller),
                now,
                "token.create",
                &format!("token/{}", token.id),
                None,
                json!({"member_id": member.id, "label": token.label, "expires_at": token.expires_at}),
            ),
        ])
        .await?;
    Ok((token, secret))
}

/// The tokens of member `member_id`, for the member and its managers.
pub async fn tokens(
    state: &Authority,
    caller: &Caller,
    member_id: &str,
) -> Result<Vec<Token>, DomainError> {
    let member = manageable_member(state, caller, member_id).await?;
    Ok(state.store.tokens(&member.id).await?)
}

/// Revokes token `token_id` (idempotent: a revoked token is answered as it is), with an
/// optional `reason` for the audit trail.
pub async fn revoke_token(
    state: &Authority,
    caller: &Caller,
    token_id: &str,
    reason: Option<&str>,
) -> Result<Token, DomainError> {
    let reason = reason
        .filter(|r| !r.trim().is_empty())
        .map(|r| crate::domain::error::reason("reason", r))
        .transpose()?;
    let not_found = || DomainError::NotFound(format!("no token {token_id}"));
    let token = state.store.token(token_id).await?.ok_or_else(not_found)?;
    manageable_member(state, caller, &token.member_id).await?;
    if token.revoked_at.is_some() {
        return Ok(token);
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
                Some(caller),
                now,
                "token.revoke",
                &format!("token/{}", token.id),
                reason.as_deref(),
                json!({"member_id": token.member_id}),
            ),
        ])
        .await?;
    let mut token = token;
    token.revoked_at = Some(now);
    Ok(token)
}
