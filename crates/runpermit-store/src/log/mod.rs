//! The public transparency log: entries queued with the state changes they record, the one
//! sequencer's batches, and the entries, stored hashes and tree state it reads back.

mod cosignatures;
mod records;
pub(crate) mod refs;
pub(crate) mod sql;

use crate::StoreError;
#[cfg(doc)]
use crate::Write;
pub use records::{
    Cosignature, LogBatch, LogFilter, LogRow, LogState, MAX_LOG_ENTRY_BYTES, QueuedLogEntry,
    RegistryFilter, RegistryPage, RegistryRow, SequencedEntry,
};

/// The transparency log's storage. Times are unix milliseconds.
#[async_trait::async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Up to `limit` queued transparency-log entries ([`Write::QueueLogEntry`]), oldest first
    /// (id order). `Invalid` if `limit` is below 1.
    async fn log_queue(&self, limit: i64) -> Result<Vec<QueuedLogEntry>, StoreError>;

    /// The log's tree as last sequenced; `None` before the first [`LogStore::sequence_log`].
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
    /// before `until` (and must stop sequencing if renewal fails; [`LogStore::sequence_log`]'s
    /// size check keeps the log linear even if it does not). `Invalid` if `holder` is empty.
    async fn take_log_lease(&self, holder: &str, now: i64, until: i64) -> Result<bool, StoreError>;

    /// The checkpoint the sequencer signed for tree size `size`, if it signed one (every
    /// [`LogStore::sequence_log`] stores its checkpoint by size; older sizes are kept).
    async fn log_checkpoint(&self, size: i64) -> Result<Option<String>, StoreError>;

    /// Stores witness `witness`'s cosignature line on the checkpoint of tree size `size`
    /// (replacing an earlier one by the same witness on the same size). The caller verifies
    /// the line first. `Invalid` for an empty witness or line, or a size with no stored
    /// checkpoint.
    async fn record_cosignature(
        &self,
        witness: &str,
        size: i64,
        signature: &str,
        at: i64,
    ) -> Result<(), StoreError>;

    /// The cosignatures on the checkpoint of tree size `size`, by witness name.
    async fn log_cosignatures(&self, size: i64) -> Result<Vec<Cosignature>, StoreError>;

    /// Each witness's latest cosignature (on the largest size it cosigned), by witness name.
    async fn witness_progress(&self) -> Result<Vec<Cosignature>, StoreError>;

    /// The tree sizes that carry at least one cosignature, largest first, at most `limit`
    /// (1 to 1000, else `Invalid`).
    async fn cosigned_sizes(&self, limit: i64) -> Result<Vec<i64>, StoreError>;

    /// Sequenced entries matching `filter`, newest first, at most `limit` (1 to 1000, else
    /// `Invalid`). Served from the entries' references (`log_entry_refs`, `log_entry_orgs`),
    /// which [`LogStore::sequence_log`] writes with the entries, so a page costs the same
    /// however long the log is. Page backwards with `filter.before` = the last index shown.
    async fn log_search(&self, filter: &LogFilter, limit: i64) -> Result<Vec<LogRow>, StoreError>;

    /// The organizations the log names (as applicant, holder, provider or evaluator), by name:
    /// the public directory.
    async fn log_organizations(&self) -> Result<Vec<crate::Organization>, StoreError>;

    /// The public registry: signed permits whose `permit_issued` entry is sequenced, with
    /// their runs, newest entry first; `limit` (1 to 1000, else `Invalid`) from `offset`
    /// (0 or more), and how many match in all.
    async fn registry(
        &self,
        filter: &RegistryFilter,
        offset: i64,
        limit: i64,
    ) -> Result<RegistryPage, StoreError>;
}
