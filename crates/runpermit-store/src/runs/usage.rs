//! Usage reports' SQL, for every [`Backend`]: ingestion (one transaction per batch, all or
//! nothing, exact sums per run) and reading reports back.

use sqlx::{Encode, Executor, Type};

use crate::backend::{Backend, Column, Conn, Db, IN_LIST_ROWS, Row, SizedSql, pieces};
use crate::error::DbResult as _;
use crate::{Ingested, StoreError, UsageRecord};

macro_rules! usage_columns {
    () => {
        "provider_id, run_id, seq, permit_id, cluster, from_s, to_s, flop, flop_lower, \
     flop_upper, method, accelerator_seconds_json, capacity_flop, digest, token, received_at"
    };
}
/// Parameters of one row of [`INSERT_USAGE`].
const USAGE_PARAMS: usize = 16;
pub(crate) const USAGE_BY_PROVIDER: &str = "SELECT provider_id, COUNT(*) AS reports, \
     MAX(seq) AS max_seq, SUM(flop) AS flop, SUM(flop_lower) AS flop_lower, \
     SUM(flop_upper) AS flop_upper, MIN(from_s) AS first_from_s, MAX(to_s) AS last_to_s, \
     MAX(received_at) AS last_received_at \
     FROM usage_reports WHERE run_id = $1 GROUP BY provider_id ORDER BY provider_id";
pub(crate) const USAGE_REPORTS: &str = concat!(
    "SELECT ",
    usage_columns!(),
    " FROM usage_reports WHERE run_id = $1 ORDER BY provider_id, seq LIMIT $2"
);
pub(crate) const USAGE_REPORTS_AFTER: &str = concat!(
    "SELECT ",
    usage_columns!(),
    " FROM usage_reports WHERE run_id = $1 AND (provider_id, seq) > ($2, $3) \
     ORDER BY provider_id, seq LIMIT $4"
);
/// Adds one batch's stored usage to a run; `updated_at` only moves forward, the usage span
/// only widens.
const ADD_RUN_USAGE: &str = "UPDATE runs SET \
     cumulative_flop = cumulative_flop + $2, \
     cumulative_upper_flop = cumulative_upper_flop + $3, \
     updated_at = CASE WHEN updated_at > $4 THEN updated_at ELSE $4 END, \
     cumulative_lower_flop = cumulative_lower_flop + $5, \
     measured_flop = measured_flop + $6, \
     measured_capacity_flop = measured_capacity_flop + $7, \
     first_usage_s = CASE WHEN first_usage_s IS NULL OR first_usage_s > $8 THEN $8 \
                     ELSE first_usage_s END, \
     last_usage_s = CASE WHEN last_usage_s IS NULL OR last_usage_s < $9 THEN $9 \
                    ELSE last_usage_s END \
     WHERE id = $1";

/// The method whose reports measure utilization (their sums are the run's `measured_*`).
const MEASURING_METHOD: &str = "dcgm_tensor_activity";

/// One run's sums over the reports a batch stores.
struct RunSums {
    flop: f64,
    lower: f64,
    upper: f64,
    measured: f64,
    capacity: f64,
    first_from_s: i64,
    last_to_s: i64,
    received_at: i64,
}

/// Rows per multi-row `INSERT INTO usage_reports` (16 parameters a row).
const USAGE_ROWS: usize = 1024;
/// Rows per `WITH b(…) AS (VALUES …)` lookup list of usage ingestion (at most 4 parameters a
/// row).
const LOOKUP_ROWS: usize = 1024;

const _: () = assert!(USAGE_ROWS * USAGE_PARAMS <= 32_766 && LOOKUP_ROWS * 4 <= 32_766);

/// `INSERT INTO usage_reports` of `rows` rows; bind the 16 columns of `usage_columns!` for
/// each.
static INSERT_USAGE: SizedSql = SizedSql::new(USAGE_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| format!("({})", p.list(USAGE_PARAMS)))
        .collect();
    format!(
        "INSERT INTO usage_reports ({}) VALUES {}",
        usage_columns!(),
        rows.join(", ")
    )
});
/// The ids, among the `rows` bound, of the runs that exist (SQLite, where `BEGIN IMMEDIATE`
/// already serializes writers).
pub(crate) static RUNS_IN: SizedSql = SizedSql::new(IN_LIST_ROWS, |rows, p| {
    format!("SELECT id FROM runs WHERE id IN ({})", p.list(rows))
});
/// The same, row-locked until the transaction ends (PostgreSQL). `FOR NO KEY UPDATE` is the
/// lock an `UPDATE` of non-key columns takes: concurrent ingestion batches of a run take
/// turns, while foreign-key checks of other tables (`FOR KEY SHARE`) do not wait. Rows are
/// locked in byte order of their ids (`COLLATE "C"`, the order ingestion sorts them in), so
/// two batches never deadlock on each other's runs.
pub(crate) static RUNS_IN_FOR_UPDATE: SizedSql = SizedSql::new(IN_LIST_ROWS, |rows, p| {
    format!(
        "SELECT id FROM runs WHERE id IN ({}) ORDER BY id COLLATE \"C\" FOR NO KEY UPDATE",
        p.list(rows)
    )
});
/// For `rows` rows of `(i, provider_id, run_id)` bound, `(i, the highest stored seq)`, the
/// latter NULL when none is stored. One primary-key lookup per row.
static USAGE_MAX_SEQS: SizedSql = SizedSql::new(LOOKUP_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows).map(|_| format!("({})", p.list(3))).collect();
    format!(
        "WITH b (i, p, r) AS (VALUES {}) SELECT b.i, (SELECT MAX(u.seq) FROM usage_reports u \
         WHERE u.provider_id = b.p AND u.run_id = b.r) FROM b",
        rows.join(", ")
    )
});
/// For `rows` rows of `(i, provider_id, run_id, seq)` bound, `(i, digest)` of those stored.
static USAGE_DIGESTS: SizedSql = SizedSql::new(LOOKUP_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows).map(|_| format!("({})", p.list(4))).collect();
    format!(
        "WITH b (i, p, r, s) AS (VALUES {}) SELECT b.i, u.digest FROM b JOIN usage_reports u \
         ON u.provider_id = b.p AND u.run_id = b.r AND u.seq = b.s",
        rows.join(", ")
    )
});

/// The body of [`RunStore::ingest_usage`](crate::RunStore::ingest_usage), inside its
/// transaction; `records` are valid (see `validate::usage`) and not empty.
pub(super) async fn ingest<B: Backend>(
    conn: &mut Conn<B>,
    records: &[UsageRecord],
) -> Result<Vec<Ingested>, StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    f64: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    use std::collections::HashMap;

    // The batch's runs, in byte order: checked to exist and, on PostgreSQL,
    // locked in this order until commit.
    let mut runs: Vec<&str> = records.iter().map(|r| r.run_id.as_str()).collect();
    runs.sort_unstable();
    runs.dedup();
    let mut found: Vec<String> = Vec::with_capacity(runs.len());
    for chunk in runs.chunks(B::RUNS_LOCKED.max_rows()) {
        let rows = chunk.len().next_power_of_two();
        let mut query = sqlx::query_scalar(B::RUNS_LOCKED.get(rows, B::PARAMS));
        for i in 0..rows {
            // Padding repeats the last id: the same row, read once.
            query = query.bind(chunk[i.min(chunk.len() - 1)]);
        }
        found.extend(query.fetch_all(&mut *conn).await.db()?);
    }
    if found.len() != runs.len() {
        found.sort_unstable();
        if let Some(r) = records
            .iter()
            .find(|r| found.binary_search(&r.run_id).is_err())
        {
            return Err(StoreError::NotFound(format!(
                "run {:?} (usage report {} of provider {:?})",
                r.run_id, r.seq, r.provider_id
            )));
        }
    }

    // The highest seq stored per (provider, run), before this batch.
    let mut pair_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for r in records {
        pair_of
            .entry((r.provider_id.as_str(), r.run_id.as_str()))
            .or_insert_with_key(|key| {
                pairs.push(*key);
                pairs.len() - 1
            });
    }
    let mut stored_max = vec![0_i64; pairs.len()];
    for (c, chunk) in pairs.chunks(USAGE_MAX_SEQS.max_rows()).enumerate() {
        let offset = c * USAGE_MAX_SEQS.max_rows();
        let rows = chunk.len().next_power_of_two();
        let mut query =
            sqlx::query_as::<_, (i64, Option<i64>)>(USAGE_MAX_SEQS.get(rows, B::PARAMS));
        for i in 0..rows {
            let i = i.min(chunk.len() - 1);
            let (provider, run) = chunk[i];
            query = query.bind((offset + i) as i64).bind(provider).bind(run);
        }
        for (i, max) in query.fetch_all(&mut *conn).await.db()? {
            stored_max[i as usize] = max.unwrap_or(0);
        }
    }

    // The stored digests of the records that may be stored already: only those
    // at or below their pair's highest stored seq (usually none).
    let maybe_stored: Vec<usize> = (0..records.len())
        .filter(|&i| {
            let r = &records[i];
            r.seq <= stored_max[pair_of[&(r.provider_id.as_str(), r.run_id.as_str())]]
        })
        .collect();
    let mut stored_digest: HashMap<usize, String> = HashMap::new();
    for chunk in maybe_stored.chunks(USAGE_DIGESTS.max_rows()) {
        let rows = chunk.len().next_power_of_two();
        let mut query = sqlx::query_as::<_, (i64, String)>(USAGE_DIGESTS.get(rows, B::PARAMS));
        for i in 0..rows {
            let at = chunk[i.min(chunk.len() - 1)];
            let r = &records[at];
            query = query
                .bind(at as i64)
                .bind(&r.provider_id)
                .bind(&r.run_id)
                .bind(r.seq);
        }
        for (at, digest) in query.fetch_all(&mut *conn).await.db()? {
            stored_digest.insert(at as usize, digest);
        }
    }

    // Each record in order against what is stored, this batch's records
    // included.
    let mut running_max = stored_max;
    let mut stored_now: HashMap<(&str, &str, i64), usize> = HashMap::new();
    let mut outcomes = Vec::with_capacity(records.len());
    let mut to_insert: Vec<&UsageRecord> = Vec::with_capacity(records.len());
    let mut sums: HashMap<&str, RunSums> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let key = (r.provider_id.as_str(), r.run_id.as_str(), r.seq);
        let pair = pair_of[&(key.0, key.1)];
        let existing = stored_digest
            .get(&i)
            .map(String::as_str)
            .or_else(|| stored_now.get(&key).map(|&j| records[j].digest.as_str()));
        outcomes.push(match existing {
            Some(digest) if digest == r.digest => Ingested::Duplicate,
            Some(digest) => Ingested::Conflict {
                stored_digest: digest.to_owned(),
            },
            None => {
                stored_now.insert(key, i);
                to_insert.push(r);
                let sum = sums.entry(key.1).or_insert(RunSums {
                    flop: 0.0,
                    lower: 0.0,
                    upper: 0.0,
                    measured: 0.0,
                    capacity: 0.0,
                    first_from_s: i64::MAX,
                    last_to_s: i64::MIN,
                    received_at: i64::MIN,
                });
                sum.flop += r.flop;
                sum.lower += r.flop_lower;
                sum.upper += r.flop_upper;
                if r.method == MEASURING_METHOD {
                    sum.measured += r.flop;
                    sum.capacity += r.capacity_flop;
                }
                sum.first_from_s = sum.first_from_s.min(r.from_s);
                sum.last_to_s = sum.last_to_s.max(r.to_s);
                sum.received_at = sum.received_at.max(r.received_at);
                Ingested::Stored {
                    previous_max_seq: running_max[pair],
                }
            }
        });
        running_max[pair] = running_max[pair].max(r.seq);
    }

    // All or nothing: one conflicting record withholds the whole batch.
    if outcomes
        .iter()
        .any(|o| matches!(o, Ingested::Conflict { .. }))
    {
        for o in &mut outcomes {
            if matches!(o, Ingested::Stored { .. }) {
                *o = Ingested::Withheld;
            }
        }
        return Ok(outcomes);
    }

    let inserted = |e: sqlx::Error| match &e {
        // Cannot happen while the runs are locked; say what it would mean.
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            StoreError::Conflict(
                "usage reports: a report of this batch was stored concurrently".to_owned(),
            )
        }
        _ => StoreError::Database(format!("usage reports: {e}")),
    };
    let mut rest = &to_insert[..];
    let max_rows = INSERT_USAGE.max_rows();
    for rows in pieces(rest.len(), max_rows) {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let mut query = sqlx::query(INSERT_USAGE.get(rows, B::PARAMS));
        for r in chunk {
            query = query
                .bind(&r.provider_id)
                .bind(&r.run_id)
                .bind(r.seq)
                .bind(&r.permit_id)
                .bind(&r.cluster)
                .bind(r.from_s)
                .bind(r.to_s)
                .bind(r.flop)
                .bind(r.flop_lower)
                .bind(r.flop_upper)
                .bind(&r.method)
                .bind(&r.accelerator_seconds_json)
                .bind(r.capacity_flop)
                .bind(&r.digest)
                .bind(&r.token)
                .bind(r.received_at);
        }
        query.execute(&mut *conn).await.map_err(inserted)?;
    }

    let mut sums: Vec<_> = sums.into_iter().collect();
    sums.sort_unstable_by(|a, b| a.0.cmp(b.0));
    for (run, sum) in sums {
        sqlx::query(ADD_RUN_USAGE)
            .bind(run)
            .bind(sum.flop)
            .bind(sum.upper)
            .bind(sum.received_at)
            .bind(sum.lower)
            .bind(sum.measured)
            .bind(sum.capacity)
            .bind(sum.first_from_s)
            .bind(sum.last_to_s)
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::Database(format!("run {run:?}: {e}")))?;
    }
    Ok(outcomes)
}
