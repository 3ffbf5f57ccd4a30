//! The one error body every endpoint answers with (`Error`), and the body of a usage batch
//! refused report by report (`UsageRefused`).
//!
//! ```json
//! { "error": "invalid_input", "message": "…", "errors": [ { "field": "tokens", "message": "…" } ] }
//! ```

use runpermit_types::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::foreign::FieldErrorSchema;
use crate::usage::ReportResult;

/// What kind of error: the `error` field, one per kind of failure. The HTTP status says the
/// same in fewer words; clients branch on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 422: one or more fields are invalid (`errors` names each).
    InvalidInput,
    /// 400, 413 or 415: the request cannot be read at all (not JSON, too large, another
    /// content type).
    BadRequest,
    /// 401: no valid token (or, on `POST /v1/usage`, a report no registered key signed).
    Unauthorized,
    /// 403: the caller's role may not call this endpoint.
    Forbidden,
    /// 404: no such resource, or one the caller may not see.
    NotFound,
    /// 409: the request conflicts with the resource's state (an invalid transition, a
    /// concurrent update, a reused idempotency key).
    Conflict,
    /// 429: a rate limit is reached; `limit` names it and `Retry-After` says when to retry.
    RateLimited,
    /// A usage batch refused report by report (`UsageRefused`, 401, 409 or 422).
    UsageRefused,
    /// 500: not the caller's fault; the authority has logged the details.
    Internal,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// The kind of error.
    pub error: ErrorCode,
    /// The rate limit reached (`applications_per_org`), on 429 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// What went wrong, for people.
    pub message: String,
    /// Each invalid field, on 422.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorSchema>)]
    pub errors: Vec<FieldError>,
}

/// The answer to a usage batch of which a report was refused: nothing of the batch is stored
/// (401 when a report's signature does not verify, 409 when a report conflicts with one
/// stored, 422 otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRefused {
    /// Always `usage_refused`.
    pub error: ErrorCode,
    /// How many reports were refused, and the first reason.
    pub message: String,
    /// Reports refused.
    pub refused: usize,
    /// One result per report, in request order.
    pub results: Vec<ReportResult>,
}
