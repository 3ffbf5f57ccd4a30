//! `Idempotency-Key` on every POST: a retried request with the same key and the same body gets
//! the first answer again instead of acting twice; the same key with another body (or on
//! another path) gets 409.
//!
//! On authenticated routes the key is scoped to the calling member and *reserved before the
//! work*: an insert that exactly one of several concurrent requests with the key wins
//! ([`Write::ReserveIdempotency`]). The others answer 409 "in progress" with `Retry-After`
//! (they do not wait: a client retries, and then gets the stored answer). A successful (2xx)
//! answer is stored in the reservation; any other answer releases it, so that the client may
//! correct its request and retry with the same key. A reservation older than
//! [`RESERVATION_TIMEOUT_MS`] was abandoned (the process died during the work) and is taken
//! over by the next request with the key. The work runs in a task of its own, so a client
//! that hangs up cannot cancel it between the work and its answer being stored.
//!
//! Token creation accepts the key too, but its stored answer never holds the secret: a replay
//! shows the created token without `secret` and says so in `secret_withheld`.
//!
//! On public routes (`POST /v1/usage`, `POST /v1/estimate`) the key is accepted and ignored:
//! usage ingestion is already idempotent by each report's (provider, run, seq), an estimate
//! changes nothing, and these routes have no caller to scope a key to.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use runpermit_store::{Idempotency, StoreError, Write};

use crate::domain::Caller;
use crate::domain::ids::sha256_hex;
use crate::http::MAX_BODY_BYTES;
use crate::http::authz::{self, Access, Endpoint};
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The header, lower case.
pub const HEADER: &str = "idempotency-key";

/// How long a reservation holds off other requests with its key: five minutes, far beyond
/// any request's work. An older reservation was abandoned by a process that died during the
/// work, and the next request with the key takes it over (and does the work again).
pub const RESERVATION_TIMEOUT_MS: i64 = 5 * 60 * 1000;

/// The answer to a request whose key is reserved by another one still in progress.
pub const IN_PROGRESS: &str = "a request with this Idempotency-Key is in progress; retry later";

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

/// The POST endpoint a request was routed to, if any.
fn endpoint(request: &Request) -> Option<&'static Endpoint> {
    let path = request.extensions().get::<MatchedPath>()?.as_str();
    authz::ENDPOINTS
        .iter()
        .find(|e| e.method == "POST" && e.path == path)
}

async fn handle(state: AppState, request: Request, next: Next) -> Result<Response, ApiError> {
    if request.method() != Method::POST {
        // Validated anyway, as before: a malformed key is a client bug worth reporting.
        key(request.headers())?;
        return Ok(next.run(request).await);
    }
    let endpoint = match endpoint(&request) {
        // Public routes ignore the key; unknown routes answer 404/405 as usual.
        Some(e) if !matches!(e.access, Access::Public) => e,
        _ => return Ok(next.run(request).await),
    };
    let Some(key) = key(request.headers())? else {
        return Ok(next.run(request).await);
    };
    let (mut parts, body) = request.into_parts();
    let caller = Caller::from_request_parts(&mut parts, &state).await?;
    let bytes = to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::BadRequest {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        })?;
    let reservation = Reservation {
        principal_id: caller.member_id,
        key,
        method_path: format!("POST {}", parts.uri.path()),
        request_hash: sha256_hex(&bytes),
        reserved_at: 0,
        holds_secret: endpoint.path == authz::TOKENS_CREATE.path,
    };
    let reservation = match reserve(&state, reservation).await? {
        Reserved::Ours(r) => r,
        Reserved::Answered(response) => return Ok(response),
    };
    let request = Request::from_parts(parts, Body::from(bytes));
    let task_state = state.clone();
    let task_reservation = reservation.clone();
    let work = tokio::spawn(async move {
        let response = next.run(request).await;
        settle(&task_state, &task_reservation, response).await
    });
    match work.await {
        Ok(answer) => answer,
        Err(e) => {
            // The handler panicked: a bug, answered like any other failure. Had it committed
            // before panicking, a retry acts again, as after a crash.
            release(&state, &reservation).await;
            Err(ApiError::Internal(format!(
                "the request's work failed: {e}"
            )))
        }
    }
}

/// A key reserved by this request.
#[derive(Debug, Clone)]
struct Reservation {
    principal_id: String,
    key: String,
    method_path: String,
    request_hash: String,
    /// When it was reserved: names the reservation to the store.
    reserved_at: i64,
    /// The answer holds a secret that must not be stored (token creation).
    holds_secret: bool,
}

enum Reserved {
    /// This request reserved the key and does the work.
    Ours(Reservation),
    /// Another request has it: its stored answer, or 409.
    Answered(Response),
}

async fn reserve(state: &AppState, mut ours: Reservation) -> Result<Reserved, ApiError> {
    // A few rounds: a reservation released or taken over between our insert and our read is
    // worth another try; anything busier than that is "in progress".
    for _ in 0..3 {
        let now = state.clock.now_ms();
        let record = Idempotency {
            principal_id: ours.principal_id.clone(),
            key: ours.key.clone(),
            method_path: ours.method_path.clone(),
            request_hash: ours.request_hash.clone(),
            status: Idempotency::RESERVED,
            response_json: String::new(),
            created_at: now,
        };
        match state
            .store
            .commit(vec![Write::ReserveIdempotency(record)])
            .await
        {
            Ok(()) => {
                ours.reserved_at = now;
                return Ok(Reserved::Ours(ours));
            }
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(previous) = state
            .store
            .idempotency(&ours.principal_id, &ours.key)
            .await?
        else {
            continue;
        };
        if previous.request_hash != ours.request_hash || previous.method_path != ours.method_path {
            return Err(ApiError::Conflict(format!(
                "this Idempotency-Key was used for a different request ({}); use a new key",
                previous.method_path
            )));
        }
        if !previous.is_reserved() {
            return Ok(Reserved::Answered(replay(previous)));
        }
        if now.saturating_sub(previous.created_at) < RESERVATION_TIMEOUT_MS {
            return Ok(Reserved::Answered(in_progress()));
        }
        let take_over = Write::TakeOverIdempotency {
            principal_id: ours.principal_id.clone(),
            key: ours.key.clone(),
            reserved_at: previous.created_at,
            at: now,
        };
        match state.store.commit(vec![take_over]).await {
            Ok(()) => {
                tracing::warn!(
                    principal = %ours.principal_id,
                    key = %ours.key,
                    reserved_at = previous.created_at,
                    "took over an idempotency reservation abandoned mid-request"
                );
                ours.reserved_at = now;
                return Ok(Reserved::Ours(ours));
            }
            Err(StoreError::Conflict(_) | StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Reserved::Answered(in_progress()))
}

/// Stores a successful answer in the reservation, or releases it after a failure.
async fn settle(
    state: &AppState,
    reservation: &Reservation,
    response: Response,
) -> Result<Response, ApiError> {
    if !response.status().is_success() {
        release(state, reservation).await;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    // On failure here the work is done but its answer lost: the reservation stays, and a
    // retry after the timeout acts again, as after a crash.
    let body = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(format!("buffering a response: {e}")))?;
    let response_json = if reservation.holds_secret {
        without_secret(&body)
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let stored = state
        .store
        .commit(vec![Write::AnswerIdempotency {
            principal_id: reservation.principal_id.clone(),
            key: reservation.key.clone(),
            reserved_at: reservation.reserved_at,
            status: i64::from(parts.status.as_u16()),
            response_json,
        }])
        .await;
    if let Err(e) = stored {
        // Taken over after the timeout (this request outlived it), or the database failed:
        // the caller still gets its answer; a retry may act again.
        tracing::warn!(error = %e, key = %reservation.key, "storing an idempotent answer failed");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

async fn release(state: &AppState, reservation: &Reservation) {
    let released = state
        .store
        .commit(vec![Write::ReleaseIdempotency {
            principal_id: reservation.principal_id.clone(),
            key: reservation.key.clone(),
            reserved_at: reservation.reserved_at,
        }])
        .await;
    if let Err(e) = released {
        tracing::warn!(error = %e, key = %reservation.key, "releasing an idempotency key failed");
    }
}

/// A created token's answer as stored: everything but the secret, and why it is missing.
fn without_secret(body: &[u8]) -> String {
    let mut view = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    view.remove("secret");
    let id = view
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or("the token")
        .to_owned();
    view.insert(
        "secret_withheld".into(),
        format!(
            "this is a replay of an earlier answer: a token's secret is shown only once, in \
             the first answer, and never stored; if it was lost, revoke {id} and create another"
        )
        .into(),
    );
    serde_json::Value::Object(view).to_string()
}

fn in_progress() -> Response {
    let mut response = ApiError::Conflict(IN_PROGRESS.to_owned()).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn replay(previous: Idempotency) -> Response {
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
    response
}
