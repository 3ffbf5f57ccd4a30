//! The log's entry references (`log_entry_refs`, `log_entry_orgs`): what each sequenced
//! entry names, written in the sequencing transaction and backfilled for older entries; and
//! the registry's and log search's SQL that reads them.

use sqlx::{Encode, Executor, Type};

use crate::StoreError;
use crate::backend::{Backend, Column, Conn, Db, Row, SizedSql, pieces};
use crate::error::DbResult as _;
/// Rows per multi-row `INSERT INTO log_entry_refs` (6 parameters a row).
const REF_ROWS: usize = 1024;
/// Rows per multi-row `INSERT INTO log_entry_orgs` (2 parameters a row).
const ORG_ROWS: usize = 4096;
const _: () = assert!(REF_ROWS * 6 <= 32_766 && ORG_ROWS * 2 <= 32_766);

/// `INSERT INTO log_entry_refs` of `rows` rows; bind `idx, type, application_id, permit_id,
/// run_id, org_id` for each. A row already there (indexed by another process) stays.
static INSERT_LOG_REFS: SizedSql = SizedSql::new(REF_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| {
            let row: Vec<String> = (0..6).map(|_| p.next()).collect();
            format!("({})", row.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO log_entry_refs (idx, type, application_id, permit_id, run_id, org_id) \
         VALUES {} ON CONFLICT (idx) DO NOTHING",
        rows.join(", ")
    )
});
/// `INSERT INTO log_entry_orgs` of `rows` rows; bind `org_id, idx` for each.
static INSERT_LOG_ORGS: SizedSql = SizedSql::new(ORG_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| format!("({}, {})", p.next(), p.next()))
        .collect();
    format!(
        "INSERT INTO log_entry_orgs (org_id, idx) VALUES {} ON CONFLICT (org_id, idx) DO NOTHING",
        rows.join(", ")
    )
});
/// What an entry's own fields do not say, from the records it names: a run's permit…
const REFS_PERMIT_OF_RUN: &str = "UPDATE log_entry_refs SET permit_id = \
     (SELECT permit_id FROM runs WHERE runs.id = log_entry_refs.run_id) \
     WHERE idx BETWEEN $1 AND $2 AND permit_id IS NULL AND run_id IS NOT NULL";
/// … and the organization of an application or a permit.
const REFS_ORG: &str = "UPDATE log_entry_refs SET org_id = COALESCE(\
     (SELECT org_id FROM applications WHERE applications.id = log_entry_refs.application_id), \
     (SELECT org_id FROM permits WHERE permits.id = log_entry_refs.permit_id)) \
     WHERE idx BETWEEN $1 AND $2 AND org_id IS NULL";
const REFS_ORG_ROWS: &str = "INSERT INTO log_entry_orgs (org_id, idx) \
     SELECT org_id, idx FROM log_entry_refs WHERE idx BETWEEN $1 AND $2 AND org_id IS NOT NULL \
     ON CONFLICT (org_id, idx) DO NOTHING";
/// The entries without references, from `$1` on, in index order, at most `$2`.
const UNINDEXED: &str = "SELECT e.idx, e.entry FROM log_entries e WHERE e.idx >= $1 \
     AND NOT EXISTS (SELECT 1 FROM log_entry_refs r WHERE r.idx = e.idx) ORDER BY e.idx LIMIT $2";
const COUNT_UNINDEXED: &str = "SELECT (SELECT COUNT(*) FROM log_entries) - \
     (SELECT COUNT(*) FROM log_entry_refs)";
pub(super) const LOG_ORGANIZATIONS: &str = "SELECT id, name, kind, created_at FROM organizations o \
     WHERE EXISTS (SELECT 1 FROM log_entry_orgs g WHERE g.org_id = o.id) ORDER BY name, id";
/// The registry's entries: each sequenced `permit_issued` entry (its references name the
/// permit, run, application and holder), read from the partial index of those entries
/// (migration 0010). Conditions are added for the filters given.
pub(super) const REGISTRY_ENTRIES: &str = "SELECT l.idx, l.permit_id, l.run_id, l.application_id, l.org_id \
     FROM log_entry_refs l WHERE l.type = 'permit_issued'";
/// How many entries match: conditions on the references only (every `permit_issued` entry
/// has its run).
pub(super) const REGISTRY_COUNT: &str =
    "SELECT COUNT(*) FROM log_entry_refs l WHERE l.type = 'permit_issued'";
/// The registry's columns; the token, tier and holder's name are read for the rows returned
/// only.
pub(super) const REGISTRY_COLUMNS: &str = "SELECT l.permit_id, COALESCE(l.run_id, '') AS run_id, \
     COALESCE(l.application_id, '') AS application_id, COALESCE(l.org_id, '') AS org_id, \
     (SELECT name FROM organizations WHERE id = l.org_id) AS org_name, \
     COALESCE((SELECT token FROM permits WHERE id = l.permit_id), '') AS token, \
     COALESCE((SELECT tier FROM applications WHERE id = l.application_id), '') AS tier, \
     l.idx AS log_index, r.status AS run_status, r.reason, r.status_since, r.tranche, \
     r.released_flop, r.budget_flop, r.summarized_flop, r.permit_exp_s ";

/// The ids a log entry names, read from its JSON (any version: unknown fields are ignored).
#[derive(Debug, Default, serde::Deserialize)]
struct EntryIds {
    #[serde(rename = "type")]
    kind: Option<String>,
    application_id: Option<String>,
    permit_id: Option<String>,
    run_id: Option<String>,
    org_id: Option<String>,
    holder_org_id: Option<String>,
    token: Option<String>,
}

/// The organizations a permit's claims name besides its holder.
#[derive(Debug, Default, serde::Deserialize)]
struct NamedOrgs {
    #[serde(default)]
    providers: Vec<NamedProvider>,
    #[serde(default)]
    evaluators: Option<Vec<String>>,
}

#[derive(Debug, serde::Deserialize)]
struct NamedProvider {
    provider: String,
}

/// The providers and evaluators named in a compact JWS's payload (none if it does not read).
fn orgs_in_token(token: &str) -> Vec<String> {
    use base64::Engine as _;
    let Some(payload) = token.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return Vec::new();
    };
    let named: NamedOrgs = serde_json::from_slice(&bytes).unwrap_or_default();
    named
        .providers
        .into_iter()
        .map(|p| p.provider)
        .chain(named.evaluators.unwrap_or_default())
        .collect()
}

/// Writes the references of `entries` (`(idx, bytes)`, ascending, consecutive or not) in the
/// caller's transaction: what each names itself, then what the records it names add. Rows
/// already written stay as they are, so indexing twice is harmless.
pub(super) async fn index_entries<B: Backend>(
    conn: &mut Conn<B>,
    entries: &[(i64, &[u8])],
) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    i64: Column<Db<B>>,
{
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Ok(());
    };
    let mut refs = Vec::with_capacity(entries.len());
    let mut orgs: Vec<(String, i64)> = Vec::new();
    for &(idx, bytes) in entries {
        let ids: EntryIds = serde_json::from_slice(bytes).unwrap_or_default();
        let org = ids.org_id.or(ids.holder_org_id);
        if let Some(token) = &ids.token {
            for named in orgs_in_token(token) {
                if !orgs.iter().any(|(o, i)| *i == idx && *o == named) {
                    orgs.push((named, idx));
                }
            }
        }
        refs.push((
            idx,
            ids.kind,
            ids.application_id,
            ids.permit_id,
            ids.run_id,
            org,
        ));
    }
    let mut rest = &refs[..];
    for rows in pieces(rest.len(), INSERT_LOG_REFS.max_rows()) {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let mut query = sqlx::query(INSERT_LOG_REFS.get(rows, B::PARAMS));
        for (idx, kind, application, permit, run, org) in chunk {
            query = query
                .bind(*idx)
                .bind(kind.clone())
                .bind(application.clone())
                .bind(permit.clone())
                .bind(run.clone())
                .bind(org.clone());
        }
        query.execute(&mut *conn).await.db()?;
    }
    for statement in [REFS_PERMIT_OF_RUN, REFS_ORG, REFS_ORG_ROWS] {
        sqlx::query(statement)
            .bind(first.0)
            .bind(last.0)
            .execute(&mut *conn)
            .await
            .db()?;
    }
    let mut rest = &orgs[..];
    for rows in pieces(rest.len(), INSERT_LOG_ORGS.max_rows()) {
        let (chunk, tail) = rest.split_at(rows);
        rest = tail;
        let mut query = sqlx::query(INSERT_LOG_ORGS.get(rows, B::PARAMS));
        for (org, idx) in chunk {
            query = query.bind(org).bind(*idx);
        }
        query.execute(&mut *conn).await.db()?;
    }
    Ok(())
}

/// Indexes the entries sequenced before their references were kept (or by a process that
/// did not keep them), in chunks of one transaction each. Cheap when there are none.
pub(crate) async fn index_unindexed<B: Backend>(store: &B) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    i64: Column<Db<B>>,
    Vec<u8>: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    const CHUNK: i64 = 4096;
    let missing: i64 = sqlx::query_scalar(COUNT_UNINDEXED)
        .fetch_one(store.connections())
        .await
        .db()?;
    if missing <= 0 {
        return Ok(());
    }
    tracing::info!(
        entries = missing,
        "indexing log entries for the public console"
    );
    let mut from = 0;
    loop {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(UNINDEXED)
            .bind(from)
            .bind(CHUNK)
            .fetch_all(store.connections())
            .await
            .db()?;
        let Some(last) = rows.last().map(|r| r.0) else {
            return Ok(());
        };
        let entries: Vec<(i64, &[u8])> = rows.iter().map(|(i, e)| (*i, e.as_slice())).collect();
        let mut tx = store.begin_write(&[]).await?;
        if let Err(e) = index_entries::<B>(&mut tx, &entries).await {
            let _ = tx.rollback().await;
            return Err(e);
        }
        tx.commit().await.db()?;
        from = last + 1;
    }
}

/// `LIKE` pattern finding `text` anywhere, lowercase, with `\` escaping `%`, `_` and `\`.
pub(super) fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
