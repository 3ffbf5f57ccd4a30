//! Access-usage reports' SQL, for every [`Backend`]: ingestion (one transaction per batch, all
//! or nothing, exact sums per grant) and reading reports back. Batches are small (a gateway
//! ships what it rolled since its last acknowledgement), so each report is looked up on its
//! own.

use std::collections::{BTreeMap, HashMap};

use sqlx::{Encode, Executor, Type};

use crate::backend::{Backend, Column, Conn, Db, Row};
use crate::error::DbResult as _;
use crate::{AccessUsageRecord, Ingested, StoreError};

macro_rules! access_usage_columns {
    () => {
        "iss, grant_id, seq, model_id, from_s, to_s, requests, prompt_tokens, \
         completion_tokens, refused, digest, token, received_at"
    };
}
const INSERT: &str = concat!(
    "INSERT INTO access_usage_reports (",
    access_usage_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);
pub(crate) const REPORTS: &str = concat!(
    "SELECT ",
    access_usage_columns!(),
    " FROM access_usage_reports WHERE grant_id = $1 ORDER BY iss, seq LIMIT $2"
);
const MAX_SEQ: &str = "SELECT MAX(seq) FROM access_usage_reports WHERE iss = $1 AND grant_id = $2";
const DIGEST: &str =
    "SELECT digest FROM access_usage_reports WHERE iss = $1 AND grant_id = $2 AND seq = $3";
/// The grant, to check it exists (SQLite, where `BEGIN IMMEDIATE` already serializes writers).
pub(crate) const GRANT_EXISTS: &str = "SELECT id FROM access_grants WHERE id = $1";
/// The same, row-locked until the transaction ends (PostgreSQL), as usage ingestion locks
/// runs: grants are locked in byte order of their ids, so two batches never deadlock.
pub(crate) const GRANT_EXISTS_FOR_UPDATE: &str =
    "SELECT id FROM access_grants WHERE id = $1 FOR NO KEY UPDATE";
/// Adds one batch's stored reports to a grant; `usage_last_to_s` only moves forward.
const ADD_GRANT_USAGE: &str = "UPDATE access_grants SET \
     usage_reports = usage_reports + $2, \
     usage_requests = usage_requests + $3, \
     usage_prompt_tokens = usage_prompt_tokens + $4, \
     usage_completion_tokens = usage_completion_tokens + $5, \
     usage_refused = usage_refused + $6, \
     usage_last_to_s = CASE WHEN usage_last_to_s IS NULL OR usage_last_to_s < $7 THEN $7 \
                       ELSE usage_last_to_s END \
     WHERE id = $1";

#[derive(Default)]
struct GrantSums {
    reports: i64,
    requests: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    refused: i64,
    last_to_s: i64,
}

/// The body of [`RunStore::ingest_access_usage`](crate::RunStore::ingest_access_usage),
/// inside its transaction; `records` are valid and not empty.
pub(super) async fn ingest<B: Backend>(
    conn: &mut Conn<B>,
    records: &[AccessUsageRecord],
) -> Result<Vec<Ingested>, StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    // The batch's grants, in byte order: checked to exist and, on PostgreSQL, locked.
    let mut grants: Vec<&str> = records.iter().map(|r| r.grant_id.as_str()).collect();
    grants.sort_unstable();
    grants.dedup();
    for grant in &grants {
        let found: Option<String> = sqlx::query_scalar(B::GRANT_LOCKED)
            .bind(*grant)
            .fetch_optional(&mut *conn)
            .await
            .db()?;
        if found.is_none() {
            let r = records
                .iter()
                .find(|r| r.grant_id == *grant)
                .expect("a grant of the batch");
            return Err(StoreError::NotFound(format!(
                "grant {:?} (access-usage report {} of {:?})",
                r.grant_id, r.seq, r.iss
            )));
        }
    }

    let mut running_max: HashMap<(&str, &str), i64> = HashMap::new();
    let mut stored_now: HashMap<(&str, &str, i64), &str> = HashMap::new();
    let mut outcomes = Vec::with_capacity(records.len());
    let mut to_insert = Vec::with_capacity(records.len());
    let mut sums: BTreeMap<&str, GrantSums> = BTreeMap::new();
    for r in records {
        let pair = (r.iss.as_str(), r.grant_id.as_str());
        let max = match running_max.get(&pair) {
            Some(max) => *max,
            None => {
                let max: Option<i64> = sqlx::query_scalar(MAX_SEQ)
                    .bind(&r.iss)
                    .bind(&r.grant_id)
                    .fetch_one(&mut *conn)
                    .await
                    .db()?;
                max.unwrap_or(0)
            }
        };
        let key = (pair.0, pair.1, r.seq);
        let existing: Option<String> = match stored_now.get(&key) {
            Some(digest) => Some((*digest).to_owned()),
            None if r.seq <= max => sqlx::query_scalar(DIGEST)
                .bind(&r.iss)
                .bind(&r.grant_id)
                .bind(r.seq)
                .fetch_optional(&mut *conn)
                .await
                .db()?,
            None => None,
        };
        outcomes.push(match existing {
            Some(digest) if digest == r.digest => Ingested::Duplicate,
            Some(digest) => Ingested::Conflict {
                stored_digest: digest,
            },
            None => {
                stored_now.insert(key, r.digest.as_str());
                to_insert.push(r);
                let sum = sums.entry(pair.1).or_default();
                sum.reports += 1;
                sum.requests += r.requests;
                sum.prompt_tokens += r.prompt_tokens;
                sum.completion_tokens += r.completion_tokens;
                sum.refused += r.refused;
                sum.last_to_s = sum.last_to_s.max(r.to_s);
                Ingested::Stored {
                    previous_max_seq: max,
                }
            }
        });
        running_max.insert(pair, max.max(r.seq));
    }

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

    for r in to_insert {
        sqlx::query(INSERT)
            .bind(&r.iss)
            .bind(&r.grant_id)
            .bind(r.seq)
            .bind(&r.model_id)
            .bind(r.from_s)
            .bind(r.to_s)
            .bind(r.requests)
            .bind(r.prompt_tokens)
            .bind(r.completion_tokens)
            .bind(r.refused)
            .bind(&r.digest)
            .bind(&r.token)
            .bind(r.received_at)
            .execute(&mut *conn)
            .await
            .map_err(|e| match &e {
                // Cannot happen while the grants are locked; say what it would mean.
                sqlx::Error::Database(db)
                    if db.kind() == sqlx::error::ErrorKind::UniqueViolation =>
                {
                    StoreError::Conflict(
                        "access-usage reports: a report of this batch was stored concurrently"
                            .to_owned(),
                    )
                }
                _ => StoreError::Database(format!("access-usage reports: {e}")),
            })?;
    }
    for (grant, sum) in sums {
        sqlx::query(ADD_GRANT_USAGE)
            .bind(grant)
            .bind(sum.reports)
            .bind(sum.requests)
            .bind(sum.prompt_tokens)
            .bind(sum.completion_tokens)
            .bind(sum.refused)
            .bind(sum.last_to_s)
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::Database(format!("grant {grant:?}: {e}")))?;
    }
    Ok(outcomes)
}
