//! What a domain operation can fail with, in the domain's words. Only the HTTP layer
//! (`crate::http::error`) turns these into statuses and bodies; a service never chooses a status.

use runpermit_types::{FieldError, InvalidInput};

/// Why a domain operation did not happen.
#[derive(Debug)]
pub enum DomainError {
    /// One or more fields are invalid; each names its field.
    Invalid(Vec<FieldError>),
    /// The caller could not be authenticated (a signature or key did not verify).
    Unauthenticated(String),
    /// The caller may not do this.
    Forbidden(String),
    /// No such resource, or one the caller may not see.
    NotFound(String),
    /// The request conflicts with the resource's state: an invalid transition, a concurrent
    /// update, a duplicate.
    Conflict(String),
    /// A limit is reached: `limit` names it, `retry_after_s` says when to try again.
    RateLimited {
        /// The limit's name (`applications_per_org`).
        limit: &'static str,
        /// Seconds until the request would be admitted.
        retry_after_s: u64,
        /// What was limited, the limit, and when to retry.
        message: String,
    },
    /// Some items of a batch were refused: nothing of it was stored, and `answer` says which
    /// item was refused and why.
    Refused(Box<Refusal>),
    /// A failure that is not the caller's fault; the detail is for the operator's log.
    Internal(String),
}

/// A batch refused item by item ([`DomainError::Refused`]).
#[derive(Debug)]
pub struct Refusal {
    /// The gravest reason among the refused items.
    pub reason: RefusalKind,
    /// The per-item results.
    pub answer: crate::domain::usage_batch::IngestAnswer,
}

/// The gravest reason a batch's items were refused for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RefusalKind {
    /// An item is invalid, names an unknown run, or is out of its permit's scope.
    Invalid,
    /// An item contradicts one already stored (the same sequence number, other content).
    Conflict,
    /// An item's signature or key did not verify.
    Unauthenticated,
}

impl DomainError {
    /// Invalid input in one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> DomainError {
        DomainError::Invalid(vec![FieldError::new(field, message)])
    }
}

impl std::fmt::Display for DomainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainError::Invalid(errors) => write!(
                f,
                "{}",
                InvalidInput {
                    errors: errors.clone()
                }
            ),
            DomainError::Unauthenticated(m)
            | DomainError::Forbidden(m)
            | DomainError::NotFound(m)
            | DomainError::Conflict(m)
            | DomainError::Internal(m) => f.write_str(m),
            DomainError::RateLimited { message, .. } => f.write_str(message),
            DomainError::Refused(r) => write!(f, "{} report(s) refused", r.answer.refused),
        }
    }
}

impl std::error::Error for DomainError {}

impl From<InvalidInput> for DomainError {
    fn from(e: InvalidInput) -> Self {
        DomainError::Invalid(e.errors)
    }
}

impl From<runpermit_store::StoreError> for DomainError {
    fn from(e: runpermit_store::StoreError) -> Self {
        use runpermit_store::StoreError;
        match e {
            StoreError::NotFound(m) => DomainError::NotFound(m),
            StoreError::Conflict(m) => DomainError::Conflict(format!(
                "{m}; the resource changed meanwhile: read it again and retry"
            )),
            StoreError::Duplicate(m) => DomainError::Conflict(format!("already exists: {m}")),
            other => DomainError::Internal(other.to_string()),
        }
    }
}

/// A reason, summary or condition from a request, trimmed: invalid in `field` when it is
/// blank, longer than [`runpermit_types::text::MAX_REASON_CHARS`], or holds control or
/// bidirectional characters.
pub fn reason(field: &str, value: &str) -> Result<String, DomainError> {
    checked_text(field, value, runpermit_types::text::MAX_REASON_CHARS, true)
}

/// `value` trimmed, when it is text of at most `max` characters (line breaks allowed when
/// `multiline`): the shared text rules, as invalid input in `field`.
pub fn checked_text(
    field: &str,
    value: &str,
    max: usize,
    multiline: bool,
) -> Result<String, DomainError> {
    let value = value.trim();
    match runpermit_types::text::text_problem(value, max, multiline) {
        Some(problem) => Err(DomainError::field(field, problem)),
        None => Ok(value.to_owned()),
    }
}

/// A batch is stored whole or not at all: when any report of `results` is refused, every
/// sound one becomes `withheld` and the batch is refused, its kind the `gravest` of the
/// refusals; otherwise the results come back as they are, to be stored.
pub fn refuse_whole_batch(
    mut results: Vec<crate::domain::usage_batch::ReportResult>,
    gravest: RefusalKind,
) -> Result<Vec<crate::domain::usage_batch::ReportResult>, DomainError> {
    let refused = results.iter().filter(|r| r.status == "refused").count();
    if refused == 0 {
        return Ok(results);
    }
    for r in &mut results {
        if r.status == "stored" {
            r.status = crate::domain::usage_batch::WITHHELD.into();
        }
    }
    Err(DomainError::Refused(Box::new(Refusal {
        reason: gravest,
        answer: crate::domain::usage_batch::IngestAnswer {
            stored: 0,
            duplicates: 0,
            refused,
            results,
        },
    })))
}

/// Field errors as one line: `field: message; field: message`.
pub fn field_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// How a signed report that did not verify is refused: unsound claims and a token that is
/// no report at all are invalid input; a key or signature that does not check out is
/// unauthenticated. The same for compute and access-usage reports.
pub fn report_refusal(e: runpermit_permit::ReportError) -> (RefusalKind, String) {
    use runpermit_permit::{ReportError, VerifyError};
    match e {
        ReportError::Invalid(errors) => (RefusalKind::Invalid, field_errors(&errors)),
        ReportError::Verify(
            e @ (VerifyError::Malformed(_)
            | VerifyError::UnsupportedAlgorithm(_)
            | VerifyError::WrongType { .. }),
        ) => (RefusalKind::Invalid, e.to_string()),
        e => (RefusalKind::Unauthenticated, e.to_string()),
    }
}
