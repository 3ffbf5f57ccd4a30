//! Permitted runs as the authority follows them: runs, providers' signed usage reports,
//! milestones, incidents and providers' KYC reports.

mod access_sql;
pub(crate) mod access_usage;
mod records;
pub(crate) mod sql;
pub(crate) mod usage;

use crate::StoreError;
pub use records::{
    AccessRequest, AccessUsageRecord, Grant, Incident, Ingested, KycReport, KycTotal, Milestone,
    Model, ProviderUsage, Run, RunFlag, UsageRecord,
};
use runpermit_types::UsageFigure;

/// Runs and what is reported about them. Times are unix milliseconds.
#[async_trait::async_trait]
pub trait RunStore: Send + Sync + 'static {
    async fn run(&self, id: &str) -> Result<Option<Run>, StoreError>;

    /// The run of a permit (there is at most one).
    async fn run_by_permit(&self, permit_id: &str) -> Result<Option<Run>, StoreError>;

    /// Runs, of one holder organization or all, newest first (`created_at`, then id,
    /// descending).
    async fn runs(&self, org_id: Option<&str>) -> Result<Vec<Run>, StoreError>;

    /// The runs not in good standing (status other than `active`) whose permit has not
    /// expired by `min_permit_exp_s` (`permit_exp_s > min_permit_exp_s`, unix seconds), in id
    /// order: what gates must hold.
    async fn runs_not_in_good_standing(
        &self,
        min_permit_exp_s: i64,
    ) -> Result<Vec<Run>, StoreError>;

    /// The runs whose `figure` (`cumulative_flop` for the central figure,
    /// `cumulative_lower_flop`, `cumulative_upper_flop`) differs from their `summarized_flop`
    /// (usage arrived since the last summary written to the public log), in id order.
    async fn runs_to_summarize(&self, figure: UsageFigure) -> Result<Vec<Run>, StoreError>;

    /// Stores signed usage reports in one transaction and returns what became of each, in
    /// order. A record is stored unless a report with its key `(provider_id, run_id, seq)` is
    /// already stored (or came earlier in the batch): then it is [`Ingested::Duplicate`] when
    /// the stored digest is the record's, [`Ingested::Conflict`] otherwise. The batch is all
    /// or nothing: when any record conflicts, nothing of the batch is written and every
    /// record that would have been stored is [`Ingested::Withheld`]. For each run with stored
    /// records, `cumulative_flop`, `cumulative_lower_flop` and `cumulative_upper_flop` grow by
    /// the sums of their `flop`, `flop_lower` and `flop_upper`; `measured_flop` and
    /// `measured_capacity_flop` by the sums of `flop` and `capacity_flop` of the
    /// `dcgm_tensor_activity` records; `first_usage_s`/`last_usage_s` widen to their earliest
    /// `from_s` and latest `to_s`; `updated_at` becomes their latest `received_at` (if later
    /// than the stored one); the run's `version` does not change.
    ///
    /// - `Invalid` (before touching the database), listing every problem: an empty
    ///   `provider_id`, `run_id`, `permit_id`, `cluster`, `method` or `token`; `seq` below 1;
    ///   `to_s <= from_s`; a FLOP figure negative or not finite, or not
    ///   `flop_lower <= flop <= flop_upper`; `accelerator_seconds_json` not JSON; `digest`
    ///   not 64 lowercase hex characters.
    /// - `NotFound` naming the run when a record's run does not exist: nothing of the batch is
    ///   written.
    ///
    /// Batches of the same runs take turns (PostgreSQL locks the batch's run rows, in id
    /// order, from the first read to commit; SQLite writes one transaction at a time), so
    /// concurrent calls never lose a sum nor misreport `previous_max_seq`. An empty batch is a
    /// no-op.
    async fn ingest_usage(&self, records: Vec<UsageRecord>) -> Result<Vec<Ingested>, StoreError>;

    /// A run's usage reports summed per provider, in provider id order.
    async fn usage_by_provider(&self, run_id: &str) -> Result<Vec<ProviderUsage>, StoreError>;

    /// Up to `limit` (at least 1) usage reports of a run, in `(provider_id, seq)` order, after
    /// `after` (a `(provider_id, seq)` pair, excluded) when given. Page by passing the last
    /// report's `(provider_id, seq)` as the next `after`; start with `None`.
    async fn usage_reports(
        &self,
        run_id: &str,
        after: Option<(String, i64)>,
        limit: i64,
    ) -> Result<Vec<UsageRecord>, StoreError>;

    async fn milestone(&self, id: &str) -> Result<Option<Milestone>, StoreError>;

    /// A run's milestones, oldest first (`submitted_at`, then id).
    async fn milestones(&self, run_id: &str) -> Result<Vec<Milestone>, StoreError>;

    async fn model(&self, id: &str) -> Result<Option<Model>, StoreError>;

    async fn access_request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError>;

    /// Applications for access, newest first: all, or those `org_id` made or is the model
    /// developer of.
    async fn access_requests(&self, org_id: Option<&str>)
    -> Result<Vec<AccessRequest>, StoreError>;

    async fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError>;

    /// Stores signed access-usage reports in one transaction and returns what became of
    /// each, in order, as [`RunStore::ingest_usage`] does for usage reports: keyed by
    /// `(iss, grant_id, seq)`, [`Ingested::Duplicate`] for the same digest,
    /// [`Ingested::Conflict`] for another (then nothing of the batch is written and the rest
    /// is [`Ingested::Withheld`]). For each grant with stored records, `usage_reports`,
    /// `usage_requests`, `usage_prompt_tokens`, `usage_completion_tokens` and `usage_refused`
    /// grow by their count and sums and `usage_last_to_s` moves to their latest `to_s` if
    /// later; the grant's `version` does not change.
    ///
    /// - `Invalid` (before touching the database), listing every problem: an empty `iss`,
    ///   `grant_id`, `model_id` or `token`; `seq` below 1; `to_s <= from_s`; a negative count;
    ///   `digest` not 64 lowercase hex characters.
    /// - `NotFound` naming the grant when a record's grant does not exist: nothing is written.
    ///
    /// Batches of the same grants take turns (PostgreSQL locks the grant rows, in id order;
    /// SQLite writes one transaction at a time). An empty batch is a no-op.
    async fn ingest_access_usage(
        &self,
        records: Vec<AccessUsageRecord>,
    ) -> Result<Vec<Ingested>, StoreError>;

    /// A grant's access-usage reports in `(iss, seq)` order, at most `limit` (at least 1).
    async fn access_usage_reports(
        &self,
        grant_id: &str,
        limit: i64,
    ) -> Result<Vec<AccessUsageRecord>, StoreError>;

    /// Grants, newest first: all, or those `org_id` holds or is the model developer of.
    async fn grants(&self, org_id: Option<&str>) -> Result<Vec<Grant>, StoreError>;

    /// Grants not `active` whose token has not expired by `min_exp_s` (unix seconds), in id
    /// order: what enforcement points must hold.
    async fn grants_not_in_good_standing(&self, min_exp_s: i64) -> Result<Vec<Grant>, StoreError>;

    /// Registered models, newest first (`registered_at`, then id, descending), at most
    /// `limit` (at least 1).
    async fn models(&self, limit: i64) -> Result<Vec<Model>, StoreError>;

    /// A run's flags, oldest first (`raised_at`, then kind and subject).
    async fn run_flags(&self, run_id: &str) -> Result<Vec<RunFlag>, StoreError>;

    async fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError>;

    /// Incidents, reported by one organization or all, newest first (`reported_at`, then id,
    /// descending).
    async fn incidents(&self, org_id: Option<&str>) -> Result<Vec<Incident>, StoreError>;

    /// The KYC reports of periods ending after `since_s` (`to_s > since_s`, unix seconds),
    /// summed per customer and provider, in `(customer, provider_id)` order.
    async fn kyc_totals(&self, since_s: i64) -> Result<Vec<KycTotal>, StoreError>;
}
