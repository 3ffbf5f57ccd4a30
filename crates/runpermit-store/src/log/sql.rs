//! The log aggregate's SQL, for every [`Backend`]: the queue, the sequencer's batches, and
//! reading entries, hashes and state.

use sqlx::{Encode, Executor, Type};

use super::cosignatures as cosign;
use super::refs::{
    LOG_ORGANIZATIONS, REGISTRY_COLUMNS, REGISTRY_COUNT, REGISTRY_ENTRIES, contains_pattern,
    index_entries,
};
use crate::backend::Affected as _;
use crate::backend::{Backend, Column, Conn, Db, IN_LIST_ROWS, Row, SizedSql, pieces};
use crate::error::{DbResult as _, write_error};
use crate::{
    Cosignature, LogBatch, LogFilter, LogRow, LogState, LogStore, Organization, QueuedLogEntry,
    RegistryFilter, RegistryPage, RegistryRow, StoreError, Write,
};

const LOG_QUEUE: &str = "SELECT id, subject, entry, created_at FROM log_queue ORDER BY id LIMIT $1";
const LOG_STATE: &str = "SELECT size, root, checkpoint, updated_at FROM log_state WHERE id = 1";
/// The stored tree size, on SQLite (whose `BEGIN IMMEDIATE` already serializes writers).
pub(crate) const LOG_SIZE: &str = "SELECT size FROM log_state WHERE id = 1";
/// The stored tree size, row-locked until the transaction ends, on PostgreSQL.
pub(crate) const LOG_SIZE_FOR_UPDATE: &str = "SELECT size FROM log_state WHERE id = 1 FOR UPDATE";
/// Stores the new tree state only if the stored size is still `$5` (the batch's
/// `expected_size`): a compare-and-set that also covers the first state row, which no
/// `FOR UPDATE` can lock before it exists (a concurrent insert makes this wait, then affect no
/// row).
const PUT_LOG_STATE: &str = "INSERT INTO log_state \
     (id, size, root, checkpoint, updated_at) VALUES (1, $1, $2, $3, $4) \
     ON CONFLICT (id) DO UPDATE SET size = excluded.size, root = excluded.root, \
     checkpoint = excluded.checkpoint, updated_at = excluded.updated_at \
     WHERE log_state.size = $5";
const TAKE_LOG_QUEUE_RANGE: &str = "DELETE FROM log_queue WHERE id BETWEEN $1 AND $2 RETURNING id";
const LOG_ENTRIES: &str = "SELECT entry FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";
const LOG_INDEX: &str = "SELECT MAX(idx) FROM log_entries WHERE subject = $1";
const TAKE_LOG_LEASE: &str = "UPDATE log_lease SET holder = $1, until = $2 \
     WHERE id = 1 AND (holder = $1 OR until < $3)";

/// Rows per multi-row `INSERT INTO log_entries` (5 parameters a row), far below SQLite's 32766
/// and PostgreSQL's 65535 parameters.
const LOG_ENTRY_ROWS: usize = 1024;
/// Rows per multi-row `INSERT INTO log_hashes` (2 parameters a row).
const LOG_HASH_ROWS: usize = 4096;
/// Rows per multi-row `INSERT INTO log_queue` (3 parameters a row).
const QUEUE_LOG_ENTRY_ROWS: usize = 1024;

// Every generated statement stays within SQLite's 32766 parameters.
const _: () = assert!(
    QUEUE_LOG_ENTRY_ROWS * 3 <= 32_766
        && LOG_ENTRY_ROWS * 5 <= 32_766
        && LOG_HASH_ROWS * 2 <= 32_766
);

/// `INSERT INTO log_queue` of `rows` rows; bind `subject, entry, created_at` for each. Rows
/// are inserted, and their ids drawn, in the order listed.
static QUEUE_LOG_ENTRIES: SizedSql = SizedSql::new(QUEUE_LOG_ENTRY_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| format!("({}, {}, {})", p.next(), p.next(), p.next()))
        .collect();
    format!(
        "INSERT INTO log_queue (subject, entry, created_at) VALUES {}",
        rows.join(", ")
    )
});
/// `INSERT INTO log_entries` of `rows` rows; bind `idx, subject, entry, queue_id, created_at`
/// for each.
static INSERT_LOG_ENTRIES: SizedSql = SizedSql::new(LOG_ENTRY_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| {
            let row: Vec<String> = (0..5).map(|_| p.next()).collect();
            format!("({})", row.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO log_entries (idx, subject, entry, queue_id, created_at) VALUES {}",
        rows.join(", ")
    )
});
/// `INSERT INTO log_hashes` of `rows` rows; bind `idx, hash` for each.
static INSERT_LOG_HASHES: SizedSql = SizedSql::new(LOG_HASH_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| format!("({}, {})", p.next(), p.next()))
        .collect();
    format!(
        "INSERT INTO log_hashes (idx, hash) VALUES {}",
        rows.join(", ")
    )
});
/// Deletes the queue rows with the `rows` ids bound, returning the ids deleted.
static TAKE_LOG_QUEUE_IN: SizedSql = SizedSql::new(IN_LIST_ROWS, |rows, p| {
    format!(
        "DELETE FROM log_queue WHERE id IN ({}) RETURNING id",
        p.list(rows)
    )
});
/// The stored hashes with the `rows` indexes bound, as `(idx, hash)` in no particular order.
static LOG_HASHES: SizedSql = SizedSql::new(IN_LIST_ROWS, |rows, p| {
    format!(
        "SELECT idx, hash FROM log_hashes WHERE idx IN ({})",
        p.list(rows)
    )
});

/// Applies `writes`, all [`Write::QueueLogEntry`], with multi-row inserts: the
/// same rows, ids in the same order, as applying them one by one.
pub(crate) async fn queue<B: Backend>(
    conn: &mut Conn<B>,
    writes: &[Write],
) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    Vec<u8>: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    f64: Column<Db<B>>,
    bool: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    let mut rest = writes;
    let max_rows = QUEUE_LOG_ENTRIES.max_rows();
    for rows in pieces(rest.len(), max_rows) {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let mut query = sqlx::query(QUEUE_LOG_ENTRIES.get(rows, B::PARAMS));
        for write in chunk {
            if let Write::QueueLogEntry { subject, entry, at } = write {
                query = query.bind(subject).bind(entry).bind(*at);
            }
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(|e| write_error(&chunk[0], e))?;
    }
    Ok(())
}

/// The body of [`LogStore::sequence_log`], inside its transaction; `queue_ids` are the
/// batch's, sorted (see `validate::log_batch`).
async fn sequence<B: Backend>(
    conn: &mut Conn<B>,
    batch: &LogBatch,
    queue_ids: &[i64],
) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    Vec<u8>: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    f64: Column<Db<B>>,
    bool: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    let moved_on = |stored: &str| {
        StoreError::Conflict(format!(
            "log: the batch extends a tree of size {}, but the stored size is \
                 {stored}: another sequencer went first",
            batch.expected_size
        ))
    };
    // Locks the state row (PostgreSQL) until commit: a second sequencer waits
    // here, then reads the size the first one stored.
    let stored: Option<i64> = sqlx::query_scalar(B::LOG_SIZE_LOCKED)
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    let stored = stored.unwrap_or(0);
    if stored != batch.expected_size {
        return Err(moved_on(&stored.to_string()));
    }
    // The state first: before there is a row to lock, this compare-and-set is
    // what keeps two sequencers from both extending size 0.
    let done = sqlx::query(PUT_LOG_STATE)
        .bind(batch.size)
        .bind(&batch.root)
        .bind(&batch.checkpoint)
        .bind(batch.at)
        .bind(batch.expected_size)
        .execute(&mut *conn)
        .await
        .db()?;
    if done.rows_affected() != 1 {
        return Err(moved_on("no longer that"));
    }
    cosign::put_checkpoint::<B>(&mut *conn, batch.size, &batch.checkpoint, batch.at).await?;
    take_queued::<B>(&mut *conn, queue_ids).await?;
    let mut rest = &batch.entries[..];
    let max_rows = INSERT_LOG_ENTRIES.max_rows();
    for rows in pieces(rest.len(), max_rows) {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let mut query = sqlx::query(INSERT_LOG_ENTRIES.get(rows, B::PARAMS));
        for e in chunk {
            query = query
                .bind(e.index)
                .bind(&e.subject)
                .bind(&e.entry)
                .bind(e.queue_id)
                .bind(batch.at);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(|e| crate::error::log_error("entries", e))?;
    }
    let entries: Vec<(i64, &[u8])> = batch
        .entries
        .iter()
        .map(|e| (e.index, e.entry.as_slice()))
        .collect();
    index_entries::<B>(&mut *conn, &entries).await?;
    let mut rest = &batch.hashes[..];
    let max_rows = INSERT_LOG_HASHES.max_rows();
    for rows in pieces(rest.len(), max_rows) {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let mut query = sqlx::query(INSERT_LOG_HASHES.get(rows, B::PARAMS));
        for (index, hash) in chunk {
            query = query.bind(*index).bind(hash);
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(|e| crate::error::log_error("hashes", e))?;
    }
    Ok(())
}

fn page_limit(what: &str, limit: i64) -> Result<(), StoreError> {
    if (1..=1000).contains(&limit) {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} limit: must be 1 to 1000 (got {limit})"
        )))
    }
}

/// Deletes the queue rows `ids` (sorted, distinct): one `BETWEEN` per run of
/// consecutive ids, one `IN` list per chunk of the others. A row that is no
/// longer queued is a `Conflict` naming it.
async fn take_queued<B: Backend>(conn: &mut Conn<B>, ids: &[i64]) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    Vec<u8>: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    f64: Column<Db<B>>,
    bool: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    /// Runs at least this long are deleted by range.
    const MIN_RUN: usize = 8;
    let check = |wanted: &[i64], mut taken: Vec<i64>| {
        if taken.len() == wanted.len() {
            return Ok(());
        }
        taken.sort_unstable();
        let missing = wanted
            .iter()
            .find(|id| taken.binary_search(id).is_err())
            .copied()
            .unwrap_or_default();
        Err(StoreError::Conflict(format!(
            "log: queued entry {missing} is no longer queued: another \
                 sequencer took it"
        )))
    };
    let mut scattered = Vec::new();
    let mut start = 0;
    while start < ids.len() {
        let mut end = start + 1;
        while end < ids.len() && ids[end - 1].checked_add(1) == Some(ids[end]) {
            end += 1;
        }
        let run = &ids[start..end];
        if run.len() >= MIN_RUN {
            let taken: Vec<i64> = sqlx::query_scalar(TAKE_LOG_QUEUE_RANGE)
                .bind(run[0])
                .bind(run[run.len() - 1])
                .fetch_all(&mut *conn)
                .await
                .db()?;
            check(run, taken)?;
        } else {
            scattered.extend_from_slice(run);
        }
        start = end;
    }
    for chunk in scattered.chunks(TAKE_LOG_QUEUE_IN.max_rows()) {
        let rows = chunk.len().next_power_of_two();
        let mut query = sqlx::query_scalar(TAKE_LOG_QUEUE_IN.get(rows, B::PARAMS));
        for i in 0..rows {
            // Padding repeats the last id: the same row, deleted once.
            query = query.bind(chunk[i.min(chunk.len() - 1)]);
        }
        let taken: Vec<i64> = query.fetch_all(&mut *conn).await.db()?;
        check(chunk, taken)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl<B: Backend> LogStore for B
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    Vec<u8>: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    f64: Column<Db<B>>,
    bool: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
    for<'a> &'a str: sqlx::ColumnIndex<Row<B>>,
{
    async fn log_queue(&self, limit: i64) -> Result<Vec<QueuedLogEntry>, StoreError> {
        if limit < 1 {
            return Err(StoreError::Invalid(format!(
                "log queue limit: must be 1 or more (got {limit})"
            )));
        }
        sqlx::query_as(LOG_QUEUE)
            .bind(limit)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn log_state(&self) -> Result<Option<LogState>, StoreError> {
        sqlx::query_as(LOG_STATE)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn sequence_log(&self, batch: LogBatch) -> Result<(), StoreError> {
        let queue_ids = crate::validate::log_batch(&batch)?;
        let mut tx = self.begin_write(&[]).await?;
        if let Err(e) = sequence::<B>(&mut *tx, &batch, &queue_ids).await {
            tracing::debug!(error = %e, "log batch rolled back");
            let _ = tx.rollback().await;
            return Err(e);
        }
        tx.commit().await.db()?;
        tracing::debug!(
            entries = batch.entries.len(),
            size = batch.size,
            "log batch committed"
        );
        Ok(())
    }

    async fn log_hashes(&self, indexes: &[i64]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut wanted = indexes.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let mut found = std::collections::HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(LOG_HASHES.max_rows()) {
            let rows = chunk.len().next_power_of_two();
            let mut query = sqlx::query_as::<_, (i64, Vec<u8>)>(LOG_HASHES.get(rows, B::PARAMS));
            for i in 0..rows {
                // Padding repeats the last index: the same row, read once.
                query = query.bind(chunk[i.min(chunk.len() - 1)]);
            }
            found.extend(query.fetch_all(self.connections()).await.db()?);
        }
        indexes
            .iter()
            .map(|index| {
                found
                    .get(index)
                    .cloned()
                    .ok_or_else(|| StoreError::NotFound(format!("log hash {index}")))
            })
            .collect()
    }

    async fn log_entries(&self, start: i64, end: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        if start < 0 || end < start {
            return Err(StoreError::Invalid(format!(
                "log entries: need 0 <= start <= end (got start {start}, end {end})"
            )));
        }
        sqlx::query_scalar(LOG_ENTRIES)
            .bind(start)
            .bind(end)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn log_index(&self, subject: &str) -> Result<Option<i64>, StoreError> {
        sqlx::query_scalar(LOG_INDEX)
            .bind(subject)
            .fetch_one(self.connections())
            .await
            .db()
    }

    async fn take_log_lease(&self, holder: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        if holder.is_empty() {
            return Err(StoreError::Invalid(
                "log lease holder: must not be empty".to_owned(),
            ));
        }
        let done = sqlx::query(TAKE_LOG_LEASE)
            .bind(holder)
            .bind(until)
            .bind(now)
            .execute(self.connections())
            .await
            .db()?;
        Ok(done.rows_affected() == 1)
    }
    async fn log_checkpoint(&self, size: i64) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(cosign::LOG_CHECKPOINT)
            .bind(size)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn record_cosignature(
        &self,
        witness: &str,
        size: i64,
        signature: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        if witness.is_empty() || signature.trim().is_empty() {
            return Err(StoreError::Invalid(
                "cosignature: the witness and the signature line must not be empty".into(),
            ));
        }
        let known: i64 = sqlx::query_scalar(cosign::HAS_CHECKPOINT)
            .bind(size)
            .fetch_one(self.connections())
            .await
            .db()?;
        if known == 0 {
            return Err(StoreError::Invalid(format!(
                "cosignature by {witness}: no checkpoint of size {size} is stored"
            )));
        }
        sqlx::query(cosign::PUT_COSIGNATURE)
            .bind(witness)
            .bind(size)
            .bind(signature)
            .bind(at)
            .execute(self.connections())
            .await
            .db()?;
        Ok(())
    }

    async fn log_cosignatures(&self, size: i64) -> Result<Vec<Cosignature>, StoreError> {
        sqlx::query_as(cosign::COSIGNATURES)
            .bind(size)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn witness_progress(&self) -> Result<Vec<Cosignature>, StoreError> {
        sqlx::query_as(cosign::PROGRESS)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn cosigned_sizes(&self, limit: i64) -> Result<Vec<i64>, StoreError> {
        page_limit("cosigned sizes", limit)?;
        sqlx::query_scalar(cosign::SIZES)
            .bind(limit)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn log_search(&self, filter: &LogFilter, limit: i64) -> Result<Vec<LogRow>, StoreError> {
        page_limit("log search", limit)?;
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let mut binds: Vec<String> = Vec::new();
        // By organization, the walk starts from its own index (org_id, idx), newest first;
        // otherwise from the references, by index or by the filter's own index.
        let (mut sql, key) = match &filter.org_id {
            Some(org) => {
                let sql = format!(
                    "SELECT g.idx, e.entry, e.created_at, r.org_id, o.name AS org_name \
                     FROM log_entry_orgs g JOIN log_entry_refs r ON r.idx = g.idx \
                     JOIN log_entries e ON e.idx = g.idx \
                     LEFT JOIN organizations o ON o.id = r.org_id WHERE g.org_id = {}",
                    next()
                );
                binds.push(org.clone());
                (sql, "g.idx")
            }
            None => (
                "SELECT r.idx, e.entry, e.created_at, r.org_id, o.name AS org_name \
                 FROM log_entry_refs r JOIN log_entries e ON e.idx = r.idx \
                 LEFT JOIN organizations o ON o.id = r.org_id WHERE 1 = 1"
                    .to_owned(),
                "r.idx",
            ),
        };
        if !filter.types.is_empty() {
            let list: Vec<String> = filter.types.iter().map(|_| next()).collect();
            sql.push_str(&format!(" AND r.type IN ({})", list.join(", ")));
            binds.extend(filter.types.iter().cloned());
        }
        for (column, value) in [
            ("application_id", &filter.application_id),
            ("permit_id", &filter.permit_id),
            ("run_id", &filter.run_id),
        ] {
            if let Some(value) = value {
                sql.push_str(&format!(" AND r.{column} = {}", next()));
                binds.push(value.clone());
            }
        }
        let before = filter.before.map(|b| (b, next()));
        if let Some((_, p)) = &before {
            sql.push_str(&format!(" AND {key} < {p}"));
        }
        sql.push_str(&format!(" ORDER BY {key} DESC LIMIT {}", next()));
        // Audited: the text holds only this function's fixed pieces and numbered placeholders;
        // every value is bound.
        let mut query = sqlx::query_as::<_, LogRow>(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        if let Some((b, _)) = before {
            query = query.bind(b);
        }
        query.bind(limit).fetch_all(self.connections()).await.db()
    }

    async fn log_organizations(&self) -> Result<Vec<Organization>, StoreError> {
        sqlx::query_as(LOG_ORGANIZATIONS)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn registry(
        &self,
        filter: &RegistryFilter,
        offset: i64,
        limit: i64,
    ) -> Result<RegistryPage, StoreError> {
        page_limit("registry", limit)?;
        if offset < 0 {
            return Err(StoreError::Invalid(format!(
                "registry offset: must be 0 or more (got {offset})"
            )));
        }
        let pattern = filter
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(contains_pattern);
        // Only the conditions asked for, so that each query gets the plan that suits it: the
        // newest `permit_issued` entries first by their partial index, each condition an
        // `IN` over a compact index (applications by tier, runs by status, organizations by
        // name), then each row shown joined by key.
        let mut conditions = String::new();
        let mut binds: Vec<String> = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if let Some(permit) = &filter.permit_id {
            conditions.push_str(&format!(" AND l.permit_id = {}", next()));
            binds.push(permit.clone());
        }
        if let Some(tier) = &filter.tier {
            conditions.push_str(&format!(
                " AND l.application_id IN (SELECT id FROM applications WHERE tier = {})",
                next()
            ));
            binds.push(tier.clone());
        }
        match filter.good_standing {
            Some(true) => conditions.push_str(
                " AND l.permit_id IN (SELECT permit_id FROM runs WHERE status = 'active')",
            ),
            Some(false) => conditions.push_str(
                " AND l.permit_id IN (SELECT permit_id FROM runs WHERE status <> 'active')",
            ),
            None => {}
        }
        if let Some(pattern) = &pattern {
            let p = next();
            conditions.push_str(&format!(
                " AND (LOWER(l.permit_id) LIKE {p} ESCAPE '\\' OR LOWER(l.run_id) LIKE {p} ESCAPE '\\' \
                 OR l.org_id IN (SELECT id FROM organizations WHERE LOWER(name) LIKE {p} ESCAPE '\\'))"
            ));
            binds.push(pattern.clone());
        }
        let (limit_p, offset_p) = (next(), next());
        // Audited: fixed pieces and numbered placeholders only; every value is bound.
        // The page's entries are chosen from the index alone; only those are joined with
        // their runs, permits and applications.
        let rows_sql = format!(
            "{REGISTRY_COLUMNS} FROM ({REGISTRY_ENTRIES}{conditions} ORDER BY l.idx DESC \
             LIMIT {limit_p} OFFSET {offset_p}) l JOIN runs r ON r.permit_id = l.permit_id \
             ORDER BY l.idx DESC"
        );
        let mut rows_query = sqlx::query_as::<_, RegistryRow>(sqlx::AssertSqlSafe(rows_sql));
        for b in &binds {
            rows_query = rows_query.bind(b.clone());
        }
        let rows = rows_query
            .bind(limit)
            .bind(offset)
            .fetch_all(self.connections())
            .await
            .db()?;
        // Every condition reads the references (or compact indexes through them), never the
        // permits' or the runs' rows: counting 10^4 entries stays cheap.
        let count_sql = format!("{REGISTRY_COUNT}{conditions}");
        let mut count_query = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql));
        for b in binds {
            count_query = count_query.bind(b);
        }
        let total: i64 = count_query.fetch_one(self.connections()).await.db()?;
        Ok(RegistryPage { rows, total })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Params;

    #[test]
    fn generated_statements_number_or_list_their_parameters() {
        assert_eq!(
            INSERT_LOG_HASHES.get(2, Params::Numbered),
            "INSERT INTO log_hashes (idx, hash) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            INSERT_LOG_HASHES.get(2, Params::Anonymous),
            "INSERT INTO log_hashes (idx, hash) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            LOG_HASHES.get(4, Params::Numbered),
            "SELECT idx, hash FROM log_hashes WHERE idx IN ($1, $2, $3, $4)"
        );
        let entries = INSERT_LOG_ENTRIES.get(LOG_ENTRY_ROWS, Params::Numbered);
        assert!(
            entries.ends_with(&format!("${})", LOG_ENTRY_ROWS * 5)),
            "{entries}"
        );
    }
}
