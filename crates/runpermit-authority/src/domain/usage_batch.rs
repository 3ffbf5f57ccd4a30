//! A batch of providers' signed usage reports: its bounds, and the answer to it, report by
//! report. Shared by ingestion (`runs::ingestion`, `runs::signatures`), the limits and the
//! errors that carry a refused batch's answer.

use serde::{Deserialize, Serialize};

/// Most reports one `POST /v1/usage` may carry.
pub const MAX_REPORTS_PER_REQUEST: usize = 5000;

/// Largest usage report accepted, in bytes (a report is about 800 bytes).
pub const MAX_REPORT_BYTES: usize = 16 * 1024;

/// The status of a sound report not stored because another of its batch was refused.
pub const WITHHELD: &str = "withheld";

/// What became of one report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportResult {
    /// The report's position in the request.
    pub index: usize,
    /// `stored`, `duplicate` (the same report was already stored: nothing changed),
    /// `refused`, or `withheld` (not stored because another report of the batch was refused:
    /// it was judged sound, or not judged at all once the batch was lost; send it again
    /// without the refused one).
    pub status: String,
    /// The reporting provider, when the report could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The run, when the report could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The sequence number, when the report could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Sequence numbers of this provider for this run that have not arrived, when this
    /// report skipped some (`[first, last]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<[u64; 2]>,
    /// The report arrived after a later one of the same provider and run.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub late: bool,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to `POST /v1/usage`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IngestAnswer {
    /// Reports newly stored.
    pub stored: usize,
    /// Reports already stored before (resent).
    pub duplicates: usize,
    /// Reports refused (then nothing of the batch is stored).
    pub refused: usize,
    /// One result per report, in request order.
    pub results: Vec<ReportResult>,
}
