//! The authority's persistence: organizations, members, API tokens, applications, reviews,
//! permits, exemption receipts, signing public keys, the deployment's log key, idempotency records and an append-only
//! audit trail.
//!
//! One trait, [`Store`], with two implementations: [`SqliteStore`] (embedded, the default) and
//! [`PgStore`] (production; several authority processes may share one database). [`open`]
//! picks one from a URL.
//!
//! Every state change is one [`Store::commit`] of a batch of [`Write`]s, which should include
//! its audit events: the batch is one transaction, applied in order, all or nothing.
//! Applications carry a `version`; [`Write::UpdateApplication`] succeeds only against the
//! version the caller read, so concurrent updates never silently overwrite each other.
//!
//! The public transparency log is stored here too: [`Write::QueueLogEntry`] queues an entry in
//! the batch of the state change it records, and the one sequencer (elected with
//! [`Store::take_log_lease`]) moves queued entries into the log with [`Store::sequence_log`],
//! one transaction that also stores the new tree hashes and state and refuses to extend any
//! size but the stored one.
//!
//! Permitted runs are followed here as well: [`Run`]s (their state guarded by a `version`
//! like applications), providers' signed usage reports ([`Store::ingest_usage`], which keeps
//! each run's cumulative FLOP), milestones, incidents, provider keys and KYC reports.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runpermit_store::StoreError> {
//! let store = runpermit_store::open("sqlite://data/runpermit.db").await?;
//! store.migrate().await?;
//! if store.organization_count().await? == 0 {
//!     // first start: bootstrap the authority organization and its admin
//! }
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

mod error;
mod postgres;
mod records;
mod shared;
mod sqlite;
mod validate;

pub use error::StoreError;
pub use postgres::PgStore;
pub use records::{
    Application, AuditEvent, Deployment, INCIDENT_STATUSES, Idempotency, Incident, Ingested,
    KycReport, KycTotal, LogBatch, LogState, MAX_LOG_ENTRY_BYTES, MEMBER_ROLES,
    MILESTONE_DECISIONS, MILESTONE_STATUSES, Member, Milestone, ORGANIZATION_KINDS, Organization,
    PERMIT_STATUSES, Permit, Principal, ProviderKey, ProviderUsage, QueuedLogEntry,
    REVIEW_DECISIONS, RUN_STATUSES, Receipt, Review, Run, SequencedEntry, SigningKey, Token,
    UsageRecord, Write,
};
pub use sqlite::SqliteStore;

/// The authority's storage. Times are unix milliseconds.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates or upgrades the schema. Idempotent; on PostgreSQL, concurrent calls from
    /// several processes take turns (sqlx holds an advisory lock while migrating).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks that the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies `writes` in order in one transaction: all of them or, on any error, none.
    /// The batch is validated first (`Invalid` lists every problem). An empty batch is a no-op.
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    async fn organization(&self, id: &str) -> Result<Option<Organization>, StoreError>;

    /// All organizations, oldest first.
    async fn organizations(&self) -> Result<Vec<Organization>, StoreError>;

    async fn member(&self, id: &str) -> Result<Option<Member>, StoreError>;

    /// The members of an organization, oldest first.
    async fn members(&self, org_id: &str) -> Result<Vec<Member>, StoreError>;

    /// A member's tokens (revoked and expired ones included), oldest first.
    async fn tokens(&self, member_id: &str) -> Result<Vec<Token>, StoreError>;

    async fn token(&self, id: &str) -> Result<Option<Token>, StoreError>;

    /// The principal whose token has hash `token_hash`, if that token is neither revoked nor
    /// expired at `now` (a token with `expires_at <= now` is expired).
    async fn authenticate(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<Principal>, StoreError>;

    async fn application(&self, id: &str) -> Result<Option<Application>, StoreError>;

    /// Applications, of one organization or all, newest first (`created_at`, then id,
    /// descending).
    async fn applications(&self, org_id: Option<&str>) -> Result<Vec<Application>, StoreError>;

    /// An application's reviews, oldest first (`created_at`, then id).
    async fn reviews(&self, application_id: &str) -> Result<Vec<Review>, StoreError>;

    async fn permit(&self, id: &str) -> Result<Option<Permit>, StoreError>;

    /// An application's permits, oldest first (`created_at`, then id).
    async fn permits_for_application(
        &self,
        application_id: &str,
    ) -> Result<Vec<Permit>, StoreError>;

    /// Permits decided but not yet signed (status `intent`), oldest first: what a crash
    /// between committing a decision and recording its signed token leaves behind.
    async fn pending_permits(&self) -> Result<Vec<Permit>, StoreError>;

    /// An application's exemption receipt (there is at most one).
    async fn receipt_for_application(
        &self,
        application_id: &str,
    ) -> Result<Option<Receipt>, StoreError>;

    /// Every signing key, retired ones included, oldest first.
    async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError>;

    /// The permit that last claimed the plan with this digest ([`Write::ClaimPlan`]).
    async fn plan_permit(&self, plan_digest: &str) -> Result<Option<String>, StoreError>;

    /// The deployment's identity ([`Write::InsertDeployment`]); `None` until the first start
    /// records it.
    async fn deployment(&self) -> Result<Option<Deployment>, StoreError>;

    /// Up to `limit` (at least 1) audit events with `seq > after_seq`, of one subject or all,
    /// in `seq` order. Page by passing the last `seq` seen as the next `after_seq`; start
    /// with 0.
    async fn audit(
        &self,
        subject: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// The record of `key` for `principal_id`: a reservation (the request is in progress, or
    /// was abandoned) or a stored answer.
    async fn idempotency(
        &self,
        principal_id: &str,
        key: &str,
    ) -> Result<Option<Idempotency>, StoreError>;

    /// How many organizations exist: 0 means a first start that needs bootstrapping.
    async fn organization_count(&self) -> Result<i64, StoreError>;

    /// Up to `limit` queued transparency-log entries ([`Write::QueueLogEntry`]), oldest first
    /// (id order). `Invalid` if `limit` is below 1.
    async fn log_queue(&self, limit: i64) -> Result<Vec<QueuedLogEntry>, StoreError>;

    /// The log's tree as last sequenced; `None` before the first [`Store::sequence_log`].
    async fn log_state(&self) -> Result<Option<LogState>, StoreError>;

    /// Appends a sequencer run to the log in one transaction: takes (deletes) the queue row of
    /// every entry, stores the entries (with `created_at = batch.at`) and hashes, and stores the
    /// new state. All of it or, on any error, none.
    ///
    /// - `Invalid` (before touching the database): the entries' indexes are not
    ///   `expected_size`, `expected_size + 1`, … in order; `size` is not
    ///   `expected_size + entries.len()`; the hashes are not exactly the stored-hash indexes the
    ///   new entries add, in order (see [`LogBatch::hashes`]); an empty subject, entry, hash,
    ///   root or checkpoint; an entry of [`MAX_LOG_ENTRY_BYTES`] or more; a queue id twice.
    /// - `Conflict`: the stored size (0 when no state is stored) is not `expected_size`, or a
    ///   queue row is no longer queued: another sequencer went first. Re-read the state and
    ///   the queue. Two sequencers never both extend the same size: PostgreSQL holds the
    ///   state row lock (`FOR UPDATE`) and SQLite the write lock (`BEGIN IMMEDIATE`) from the
    ///   size check to commit, and the state is stored by compare-and-set.
    ///
    /// A batch without entries is allowed: it stores the first (empty) checkpoint, or
    /// re-signs the current one.
    async fn sequence_log(&self, batch: LogBatch) -> Result<(), StoreError>;

    /// The stored hashes at `indexes` (tlog's stored-hash index space), in the order asked;
    /// an index may appear more than once. `NotFound` names the first index (in the order
    /// asked) that is not stored.
    async fn log_hashes(&self, indexes: &[i64]) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The entries with indexes `start..end`, in index order; fewer (only those stored) when
    /// `end` is beyond the log's size. `Invalid` if `start` is negative or `end < start`.
    async fn log_entries(&self, start: i64, end: i64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The index of the latest sequenced entry of `subject`, if any.
    async fn log_index(&self, subject: &str) -> Result<Option<i64>, StoreError>;

    /// Takes or renews the sequencer lease for `holder` until `until`: succeeds (`true`) when
    /// `holder` already holds it or the current lease expired (`until < now`); otherwise
    /// `false` and nothing changes. Whoever holds the lease is the one sequencer; it renews
    /// before `until` (and must stop sequencing if renewal fails; [`Store::sequence_log`]'s
    /// size check keeps the log linear even if it does not). `Invalid` if `holder` is empty.
    async fn take_log_lease(&self, holder: &str, now: i64, until: i64) -> Result<bool, StoreError>;

    async fn provider_key(&self, kid: &str) -> Result<Option<ProviderKey>, StoreError>;

    /// An organization's provider keys (revoked ones included), oldest first (`created_at`,
    /// then kid).
    async fn provider_keys(&self, org_id: &str) -> Result<Vec<ProviderKey>, StoreError>;

    /// Every provider key, revoked ones included, oldest first (`created_at`, then kid).
    async fn all_provider_keys(&self) -> Result<Vec<ProviderKey>, StoreError>;

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

    /// The runs whose `cumulative_flop` differs from their `summarized_flop` (usage arrived
    /// since the last summary written to the public log), in id order.
    async fn runs_to_summarize(&self) -> Result<Vec<Run>, StoreError>;

    /// Stores signed usage reports in one transaction and returns what became of each, in
    /// order. A record is stored unless a report with its key `(provider_id, run_id, seq)` is
    /// already stored (or came earlier in the batch): then it is [`Ingested::Duplicate`] when
    /// the stored digest is the record's, [`Ingested::Conflict`] otherwise. The batch is all
    /// or nothing: when any record conflicts, nothing of the batch is written and every
    /// record that would have been stored is [`Ingested::Withheld`]. For each run with stored records, `cumulative_flop` and
    /// `cumulative_upper_flop` grow by the sums of their `flop` and `flop_upper`, and
    /// `updated_at` becomes their latest `received_at` (if later than the stored one); the
    /// run's `version` does not change.
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

    async fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError>;

    /// Incidents, reported by one organization or all, newest first (`reported_at`, then id,
    /// descending).
    async fn incidents(&self, org_id: Option<&str>) -> Result<Vec<Incident>, StoreError>;

    /// The KYC reports of periods ending after `since_s` (`to_s > since_s`, unix seconds),
    /// summed per customer and provider, in `(customer, provider_id)` order.
    async fn kyc_totals(&self, since_s: i64) -> Result<Vec<KycTotal>, StoreError>;
}

/// The store URL forms [`open`] accepts, for messages and `--help` text.
pub const ACCEPTED_URLS: &str = "sqlite://PATH, sqlite::memory: or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE \
     (postgresql:// also works)";

/// Opens the store named by `url` (see [`ACCEPTED_URLS`]): [`SqliteStore::connect`] for
/// `sqlite:` URLs, [`PgStore::connect`] for `postgres://` and `postgresql://`. Does not
/// migrate: call [`Store::migrate`] next.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        // Name only the scheme: the rest of a URL may hold a password.
        let scheme = url.split_once(':').map_or("none", |(scheme, _)| scheme);
        Err(StoreError::Invalid(format!(
            "store URL: must be {ACCEPTED_URLS} (got a URL with scheme {scheme:?})"
        )))
    }
}
