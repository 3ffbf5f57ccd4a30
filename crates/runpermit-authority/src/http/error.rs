//! The one place where errors become HTTP responses.
//!
//! Bad input gets a status that says whose fault it is and a body that names each field:
//!
//! ```json
//! { "error": "invalid_input", "message": "…", "errors": [ { "field": "tokens", "message": "…" } ] }
//! ```
//!
//! A rate limit answers 429 with `Retry-After` (seconds) and names the limit in `limit`
//! (`{"error": "rate_limited", "limit": "applications_per_org", "message": "…"}`).
//!
//! Internal failures get generic text; their detail goes to the log only.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use runpermit_types::{FieldError, InvalidInput};

use crate::domain::error::DomainError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An error an API handler returns.
#[derive(Debug)]
pub enum ApiError {
    /// One or more fields are invalid (422).
    Invalid(Vec<FieldError>),
    /// The request cannot be read at all: not JSON, wrong content type, too large.
    BadRequest {
        /// 400, 413 or 415.
        status: StatusCode,
        /// What is wrong.
        message: String,
    },
    /// No valid token (401).
    Unauthorized(String),
    /// The caller's role may not do this (403).
    Forbidden(String),
    /// No such resource, or one the caller may not see (404).
    NotFound(String),
    /// The request conflicts with the resource's state: an invalid transition, a concurrent
    /// update, a reused idempotency key (409).
    Conflict(String),
    /// A rate limit is reached (429, with `Retry-After`): the body names the limit.
    RateLimited {
        /// The limit's name (`applications_per_org`).
        limit: &'static str,
        /// Seconds until the request would be admitted.
        retry_after_s: u64,
        /// What was limited, the limit, and when to retry.
        message: String,
    },
    /// A failure that is not the caller's fault (500); the detail is logged, not returned.
    Internal(String),
}

impl ApiError {
    /// 422 for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(vec![FieldError::new(field, message)])
    }
}

pub use crate::domain::error::{checked_text, reason};
pub use runpermit_types::Problems;

impl From<runpermit_store::StoreError> for ApiError {
    fn from(e: runpermit_store::StoreError) -> Self {
        DomainError::from(e).into()
    }
}

impl From<DomainError> for ApiError {
    /// The one mapping from the domain's errors to HTTP. A batch refused item by item is
    /// answered by its route, which has the body to send ([`crate::domain::error::Refusal`]);
    /// reaching here it is a 422 without the per-item results.
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(errors) => ApiError::Invalid(errors),
            DomainError::Unauthenticated(m) => ApiError::Unauthorized(m),
            DomainError::Forbidden(m) => ApiError::Forbidden(m),
            DomainError::NotFound(m) => ApiError::NotFound(m),
            DomainError::Conflict(m) => ApiError::Conflict(m),
            DomainError::RateLimited {
                limit,
                retry_after_s,
                message,
            } => ApiError::RateLimited {
                limit,
                retry_after_s,
                message,
            },
            DomainError::Refused(r) => ApiError::Invalid(vec![FieldError::new(
                "reports",
                format!("{} report(s) refused", r.answer.refused),
            )]),
            DomainError::Internal(m) => ApiError::Internal(m),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'a str>,
    message: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
}

impl ApiError {
    /// The status, the machine-readable code and the message people read: what the JSON
    /// body says, and what the console shows. An internal error's detail is logged here and
    /// never returned.
    pub fn described(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Invalid(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                InvalidInput {
                    errors: errors.clone(),
                }
                .to_string(),
            ),
            ApiError::BadRequest { status, message } => (*status, "bad_request", message.clone()),
            ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, "unauthorized", m.clone()),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, "forbidden", m.clone()),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            ApiError::RateLimited { message, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                message.clone(),
            ),
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; the authority has logged the details".to_owned(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.described();
        let errors = match &self {
            ApiError::Invalid(errors) => errors.as_slice(),
            _ => &[][..],
        };
        let limit = match &self {
            ApiError::RateLimited { limit, .. } => Some(*limit),
            _ => None,
        };
        let body = ErrorBody {
            error: code,
            limit,
            message,
            errors,
        };
        let mut response = (status, Json(body)).into_response();
        match &self {
            ApiError::Unauthorized(_) => {
                response.headers_mut().insert(
                    axum::http::header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            ApiError::RateLimited { retry_after_s, .. } => {
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(*retry_after_s),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        ApiError::Invalid(e.errors)
    }
}

/// A query string read into `T`; what cannot be read is invalid input naming the parameter
/// (422 with the shared error body), as for a body, rather than axum's plain-text 400.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let field = field_of(e.path());
                ApiError::Invalid(vec![FieldError::new(field, e.into_inner().to_string())])
            })
    }
}

/// The field a deserialization error is at: its path, or empty for the input as a whole.
fn field_of(path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    if path == "." { String::new() } else { path }
}

/// A JSON body whose deserialization errors name the field (`hardware.count: invalid type`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_content = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json_content {
            return Err(ApiError::BadRequest {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: "expected a body with content-type application/json".to_owned(),
            });
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::BadRequest {
                status: rejection.status(),
                message: rejection.body_text(),
            })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = field_of(e.path());
            let inner = e.into_inner();
            if inner.is_data() {
                ApiError::Invalid(vec![FieldError::new(field, inner.to_string())])
            } else {
                not_json(&inner)
            }
        })?;
        de.end().map_err(|e| not_json(&e))?;
        Ok(ApiJson(value))
    }
}

fn not_json(e: &serde_json::Error) -> ApiError {
    ApiError::BadRequest {
        status: StatusCode::BAD_REQUEST,
        message: format!("the body is not valid JSON: {e}"),
    }
}
