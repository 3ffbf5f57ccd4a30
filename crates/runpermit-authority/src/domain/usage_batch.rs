//! A batch of providers' signed usage reports: its bounds, and the answer to it, report by
//! report (`runpermit-api`'s wire types). Shared by ingestion (`runs::ingestion`,
//! `runs::signatures`), the limits and the errors that carry a refused batch's answer.

/// Most reports one `POST /v1/usage` may carry.
pub const MAX_REPORTS_PER_REQUEST: usize = 5000;

/// Largest usage report accepted, in bytes (a report is about 800 bytes).
pub const MAX_REPORT_BYTES: usize = 16 * 1024;

/// The status of a sound report not stored because another of its batch was refused.
pub const WITHHELD: &str = "withheld";

pub use runpermit_api::usage::{IngestAnswer, ReportResult};

use crate::domain::error::{DomainError, Refusal, RefusalKind};

/// A batch is stored whole or not at all: when any report of `results` is refused, every
/// sound one becomes [`WITHHELD`] and the batch is refused, its kind the `gravest` of the
/// refusals; otherwise the results come back as they are, to be stored.
pub fn refuse_whole_batch(
    mut results: Vec<ReportResult>,
    gravest: RefusalKind,
) -> Result<Vec<ReportResult>, DomainError> {
    let refused = results.iter().filter(|r| r.status == "refused").count();
    if refused == 0 {
        return Ok(results);
    }
    for r in &mut results {
        if r.status == "stored" {
            r.status = WITHHELD.into();
        }
    }
    Err(DomainError::Refused(Box::new(Refusal {
        reason: gravest,
        answer: IngestAnswer {
            stored: 0,
            duplicates: 0,
            refused,
            results,
        },
    })))
}
