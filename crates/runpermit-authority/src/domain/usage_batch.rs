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

/// The result of report `index` of a batch before it is judged: to be stored.
pub fn fresh_result(index: usize) -> ReportResult {
    ReportResult {
        index,
        status: "stored".into(),
        provider_id: None,
        run_id: None,
        grant_id: None,
        seq: None,
        gap: None,
        late: false,
        error: None,
    }
}
