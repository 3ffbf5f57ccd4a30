//! `Idempotency-Key` on every authenticated POST: a retried request with the same key and the
//! same body gets the first answer again instead of acting twice; the same key with another
//! body gets 409.
//!
//! Successful answers are stored per member and key. Token creation refuses the header: its
//! answer holds a secret, and secrets are never stored.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use runpermit_store::{Idempotency, StoreError, Write};

use crate::MAX_BODY_BYTES;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ids::sha256_hex;
use crate::state::AppState;

/// The header, lower case.
pub const HEADER: &str = "idempotency-key";

/// The key of a request, validated.
pub fn key(headers: &axum::http::HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get(HEADER) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 200)
            .map(|k| Some(k.to_owned()))
            .ok_or_else(|| {
                ApiError::field(
                    "Idempotency-Key",
                    "must be 1 to 200 visible ASCII characters",
                )
            }),
    }
}

/// The middleware.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match handle(state, request, next).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn handle(state: AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    let key = match key(request.headers())? {
        Some(k) if request.method() == Method::POST => k,
        _ => return Ok(next.run(request).await),
    };
    let (mut parts, body) = request.into_parts();
    if parts.uri.path().starts_with("/v1/members/") && parts.uri.path().ends_with("/tokens") {
        return Err(ApiError::field(
            "Idempotency-Key",
            "is not accepted when creating tokens: the answer holds a secret, and secrets are never stored",
        ));
    }
    let caller = Caller::from_request_parts(&mut parts, &state).await?;
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::BadRequest {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        })?;
    let method_path = format!("POST {}", parts.uri.path());
    let request_hash = sha256_hex(&bytes);
    if let Some(previous) = state.store.idempotency(&caller.member_id, &key).await? {
        return replay(previous, &request_hash, &method_path);
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !response.status().is_success() {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(format!("buffering a response: {e}")))?;
    let stored = state
        .store
        .commit(vec![Write::PutIdempotency(Idempotency {
            principal_id: caller.member_id.clone(),
            key,
            method_path,
            request_hash,
            status: i64::from(parts.status.as_u16()),
            response_json: String::from_utf8_lossy(&body).into_owned(),
            created_at: state.clock.now_ms(),
        })])
        .await;
    match stored {
        // A concurrent retry stored its answer first; both describe the same outcome.
        Ok(()) | Err(StoreError::Duplicate(_)) => {}
        Err(e) => tracing::warn!(error = %e, "storing an idempotent answer failed"),
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn replay(
    previous: Idempotency,
    request_hash: &str,
    method_path: &str,
) -> Result<Response, ApiError> {
    if previous.request_hash != request_hash || previous.method_path != method_path {
        return Err(ApiError::Conflict(format!(
            "this Idempotency-Key was used for a different request ({}); use a new key",
            previous.method_path
        )));
    }
    let status = u16::try_from(previous.status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, Bytes::from(previous.response_json)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert("idempotent-replay", HeaderValue::from_static("true"));
    Ok(response)
}
