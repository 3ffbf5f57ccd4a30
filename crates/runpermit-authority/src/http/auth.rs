//! Authentication: `Authorization: Bearer rpt_…` → the calling member.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::domain::caller::Caller;
use crate::domain::ids::token_hash;
use crate::http::error::ApiError;
use crate::http::state::AppState;

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Authenticated once per request: the limits layer (or the idempotency layer) leaves
        // the caller it found in the request's extensions.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::Unauthorized("missing Authorization: Bearer <token> header".into())
            })?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        let now = state.clock.now_ms();
        let principal = state
            .store
            .authenticate(&token_hash(secret), now)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("unknown, revoked or expired token".into()))?;
        let caller = Caller::from(principal);
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}
