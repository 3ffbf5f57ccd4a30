//! What providers send: batches of signed usage reports and the answer report by report,
//! their reporting keys, and know-your-customer reports of large unpermitted jobs.
//!
//! `KycAnswer` and `KycFlags` keep their fields in alphabetical order: the order these
//! bodies had when the server built them as JSON maps, so their bytes did not change.

use runpermit_compute::Flop;
use runpermit_permit::Jwk;
use runpermit_policy::SplitRunFlag;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::foreign::{FlopSchema, JwkSchema, SplitRunFlagSchema, stand_in};

/// `POST /v1/usage` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// Signed usage reports (compact JWS, `typ` `runpermit-usage+jwt`), at most 5000 of at
    /// most 16 KiB each.
    pub reports: Vec<String>,
}

stand_in!(
    /// What became of one usage report: the values of [`ReportResult::status`].
    ReportStatus => "ReportStatus",
    crate::foreign::names(
        "What became of one report: `stored`, `duplicate` (the same report was already \
         stored: nothing changed), `refused`, or `withheld` (not stored because another \
         report of the batch was refused: send it again without the refused one).",
        ["stored", "duplicate", "refused", "withheld"].map(String::from)
    )
);

/// What became of one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportResult {
    /// The report's position in the request.
    pub index: usize,
    /// `stored`, `duplicate` (the same report was already stored: nothing changed),
    /// `refused`, or `withheld` (not stored because another report of the batch was refused:
    /// it was judged sound, or not judged at all once the batch was lost; send it again
    /// without the refused one).
    #[schema(value_type = ReportStatus)]
    pub status: String,
    /// The reporting provider, when the report could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The run, when the report could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The access grant, for an access-usage report that could be read (`POST
    /// /v1/access-usage`; there `provider_id` is unset and the reporter is the developer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// The sequence number, when the report could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Sequence numbers of this provider for this run that have not arrived, when this
    /// report skipped some (`[first, last]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<[u64; 2]>,
    /// The report arrived after a later one of the same provider and run.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub late: bool,
    /// Why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to `POST /v1/usage` when every report is durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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

/// `POST /v1/orgs/{id}/reporting-keys` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReportingKey {
    /// The Ed25519 public key as a JWK (`{"kty":"OKP","crv":"Ed25519","x":…}`).
    #[schema(value_type = JwkSchema)]
    pub jwk: Jwk,
}

/// A reporting key as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReportingKeyView {
    /// RFC 7638 thumbprint: the `kid` the gate puts in its reports' headers.
    pub kid: String,
    /// The provider.
    pub org_id: String,
    /// The public key.
    #[schema(value_type = JwkSchema)]
    pub jwk: Jwk,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, when revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// `POST /v1/kyc-reports` body: a customer's large jobs that ran without a permit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKycReport {
    /// The customer's registry id (such as its LEI), the same at every provider.
    pub customer: String,
    /// Interval start (unix seconds).
    pub from: i64,
    /// Interval end (unix seconds), after `from`.
    pub to: i64,
    /// How many jobs.
    pub jobs: i64,
    /// Their accelerator-seconds.
    pub accelerator_seconds: f64,
    /// Their compute (metered, or accelerator-seconds × peak).
    #[schema(value_type = FlopSchema)]
    pub flop: Flop,
}

/// The answer to `POST /v1/kyc-reports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KycAnswer {
    /// The customer, as stored (trimmed).
    pub customer: String,
    /// The customer's flag when its unpermitted compute over all providers now reaches the
    /// permit threshold; null otherwise.
    #[schema(value_type = Option<SplitRunFlagSchema>)]
    pub flag: Option<SplitRunFlag>,
    /// The report's id.
    pub id: String,
}

/// `GET /v1/kyc/flags`: customers whose unpermitted compute over all providers reaches the
/// permit threshold, largest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KycFlags {
    /// The flags.
    #[schema(value_type = Vec<SplitRunFlagSchema>)]
    pub flags: Vec<SplitRunFlag>,
    /// The permit threshold of the policy in force; null when no tier needs a permit.
    #[schema(value_type = Option<FlopSchema>)]
    pub threshold: Option<Flop>,
    /// The window over which reports are summed, in days.
    pub window_days: u32,
}
