//! [`StoreError`] and the mapping of database errors onto it.

use sqlx::error::{DatabaseError, ErrorKind};

use crate::Write;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write named a row that does not exist: `RevokeToken`, `UpdateApplication`,
    /// `IssuePermit`, `RetireSigningKey`, `RevokeProviderKey`, `UpdateRun`,
    /// `SetRunSummarized`, `DecideMilestone` or `FollowUpIncident` with an unknown id;
    /// `TakeOverIdempotency`, `AnswerIdempotency` or `ReleaseIdempotency` of a key with no
    /// record; `ingest_usage` with a record of an unknown run; or `log_hashes` asked for a
    /// hash that is not stored.
    #[error("not found: {0}")]
    NotFound(String),
    /// A precondition on stored state failed: `UpdateApplication` whose `expected_version` is
    /// not the stored version (someone else updated it first), likewise `UpdateRun`,
    /// `IssuePermit` on a permit that is not in `intent`, revoking a revoked token or provider
    /// key, retiring a retired key, deciding a decided milestone, following up a closed
    /// incident; taking over, answering or releasing an idempotency reservation that is
    /// answered already or was taken over by another request; a
    /// `sequence_log` batch built on a tree size that is no longer the stored one, or naming a
    /// queued log entry that is no longer queued (another sequencer went first). Re-read and
    /// decide again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An insert hit a unique constraint; the message says which (an id, the token hash, the
    /// one receipt per application, or an idempotency key already reserved or answered).
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// The caller's input is unusable: a store URL in none of the accepted forms, a write
    /// whose fields fail validation (the message names each field and its accepted form), a
    /// reference to a row that does not exist (foreign key), or a bad query argument.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The database failed or could not be reached, a migration failed, or a stored row could
    /// not be decoded. Not the caller's fault; worth logging and retrying later.
    #[error("database error: {0}")]
    Database(String),
    /// SQLite answered "database is locked" (`SQLITE_BUSY` and its extended codes) where
    /// waiting out the busy timeout could not help: another process was recovering the
    /// write-ahead log, or changed the database under a read that wanted to write. Nothing was
    /// written; the same operation can be retried at once.
    #[error("database busy: {0}")]
    Busy(String),
}

impl StoreError {
    pub(crate) fn database(e: impl std::fmt::Display) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

/// `.db()` turns a sqlx result into a store result with [`StoreError::Database`].
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(from_sqlx)
    }
}

/// A database's own error as the server said it: its message (and detail), without sqlx's
/// "error returned from database" prefix or PostgreSQL's source line in its own C code
/// (`at line 948`), which tell an operator nothing.
pub(crate) fn from_sqlx(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) => {
            let detail = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .and_then(|pg| pg.detail())
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            if is_sqlite_busy(db.as_ref()) {
                return StoreError::Busy(db.message().to_owned());
            }
            StoreError::Database(format!("{}{detail}", db.message()))
        }
        _ => StoreError::database(e),
    }
}

/// Whether a database error is SQLite's `SQLITE_BUSY` (5) or one of its extended codes
/// (`BUSY_RECOVERY` 261, `BUSY_SNAPSHOT` 517, `BUSY_TIMEOUT` 773), all "database is locked".
fn is_sqlite_busy(db: &dyn DatabaseError) -> bool {
    db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
        && db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == 5)
}

/// Maps an error of `sequence_log` writing `what`: a unique violation means that part of the
/// log is already stored (the tree moved on under this batch), so `Conflict`.
pub(crate) fn log_error(what: &str, e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.kind() == ErrorKind::UniqueViolation
    {
        return StoreError::Conflict(format!(
            "log: {what} already stored ({})",
            unique_target(db.as_ref())
        ));
    }
    StoreError::Database(format!("log: writing {what}: {e}"))
}

/// Maps the error of executing `write` to a [`StoreError`] that says what went wrong in the
/// caller's terms.
pub(crate) fn write_error(write: &Write, e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            ErrorKind::UniqueViolation => {
                return StoreError::Duplicate(duplicate_message(write, db.as_ref()));
            }
            ErrorKind::ForeignKeyViolation => {
                return StoreError::Invalid(missing_reference_message(write));
            }
            _ => {}
        }
    }
    StoreError::Database(format!("{}: {e}", write.describe()))
}

/// The violated unique constraint: its name on PostgreSQL (`tokens_hash_key`), the column list
/// from the message on SQLite (`UNIQUE constraint failed: tokens.hash`).
fn unique_target(db: &dyn DatabaseError) -> String {
    match db.constraint() {
        Some(name) => name.to_owned(),
        None => db.message().to_owned(),
    }
}

fn duplicate_message(write: &Write, db: &dyn DatabaseError) -> String {
    let target = unique_target(db);
    match write {
        Write::InsertOrganization(o) => format!("organization id {:?} already exists", o.id),
        Write::InsertMember(m) => format!("member id {:?} already exists", m.id),
        Write::InsertToken(t) if target.contains("hash") => format!(
            "token {:?}: a token with the same hash already exists (hash must be unique)",
            t.id
        ),
        Write::InsertToken(t) => format!("token id {:?} already exists", t.id),
        Write::InsertApplication(a) => format!("application id {:?} already exists", a.id),
        Write::InsertReview(r) => format!("review id {:?} already exists", r.id),
        Write::InsertPermit(p) => format!("permit id {:?} already exists", p.id),
        Write::InsertReceipt(r) if target.contains("application_id") => format!(
            "receipt {:?}: application {:?} already has an exemption receipt",
            r.id, r.application_id
        ),
        Write::InsertReceipt(r) => format!("receipt id {:?} already exists", r.id),
        Write::InsertSigningKey(k) => format!("signing key kid {:?} already exists", k.kid),
        Write::InsertDeployment(_) => {
            "the deployment is already recorded (it is written once)".to_owned()
        }
        Write::ClaimPlan { plan_digest, .. } => {
            format!("plan {plan_digest} was permitted by another request at the same time")
        }
        Write::ReserveIdempotency(i) => format!(
            "idempotency key {:?} is already reserved or answered for principal {:?}",
            i.key, i.principal_id
        ),
        Write::InsertProviderKey(k) => format!("provider key kid {:?} already exists", k.kid),
        Write::InsertRun(r) if target.contains("permit_id") => {
            format!("run {:?}: permit {:?} already has a run", r.id, r.permit_id)
        }
        Write::InsertRun(r) => format!("run id {:?} already exists", r.id),
        Write::InsertMilestone(m) => format!("milestone id {:?} already exists", m.id),
        Write::InsertIncident(i) => format!("incident id {:?} already exists", i.id),
        Write::InsertKycReport(k) => format!("KYC report id {:?} already exists", k.id),
        Write::InsertModel(m) if target.contains("checkpoint_digest") => format!(
            "checkpoint {} is already registered as a model",
            m.checkpoint_digest
        ),
        Write::InsertModel(m) if target.contains("name") => format!(
            "organization {:?} already has a model named {:?}",
            m.org_id, m.name
        ),
        Write::InsertModel(m) => format!("model id {:?} already exists", m.id),
        other => format!("{}: unique constraint {target}", other.describe()),
    }
}

fn missing_reference_message(write: &Write) -> String {
    match write {
        Write::InsertMember(m) => format!(
            "member {:?}: org_id {:?} names no organization",
            m.id, m.org_id
        ),
        Write::InsertToken(t) => format!(
            "token {:?}: member_id {:?} names no member",
            t.id, t.member_id
        ),
        Write::InsertApplication(a) => format!(
            "application {:?}: org_id {:?} names no organization",
            a.id, a.org_id
        ),
        Write::InsertReview(r) => format!(
            "review {:?}: application_id {:?} names no application",
            r.id, r.application_id
        ),
        Write::InsertPermit(p) => format!(
            "permit {:?}: application_id {:?} names no application",
            p.id, p.application_id
        ),
        Write::InsertReceipt(r) => format!(
            "receipt {:?}: application_id {:?} names no application",
            r.id, r.application_id
        ),
        Write::InsertProviderKey(k) => format!(
            "provider key {:?}: org_id {:?} names no organization",
            k.kid, k.org_id
        ),
        Write::InsertRun(r) => format!(
            "run {:?}: permit_id {:?} names no permit",
            r.id, r.permit_id
        ),
        Write::InsertMilestone(m) => {
            format!("milestone {:?}: run_id {:?} names no run", m.id, m.run_id)
        }
        Write::InsertIncident(i) => format!(
            "incident {:?}: org_id {:?} names no organization",
            i.id, i.org_id
        ),
        Write::InsertKycReport(k) => format!(
            "KYC report {:?}: provider_id {:?} names no organization",
            k.id, k.provider_id
        ),
        Write::ClaimPlan { permit_id, .. } => {
            format!("plan claim: permit_id {permit_id:?} names no permit")
        }
        other => format!("{}: refers to a row that does not exist", other.describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read transaction whose snapshot another connection has moved past cannot write:
    /// SQLite answers `SQLITE_BUSY_SNAPSHOT` at once, without its busy handler, and the
    /// store names it [`StoreError::Busy`] so that callers know nothing was written.
    #[tokio::test]
    async fn a_stale_snapshot_that_wants_to_write_is_busy() {
        let dir = std::env::temp_dir().join(format!(
            "runpermit-busy-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let url = format!("sqlite://{}", dir.join("busy.db").display());
        let store = crate::SqliteStore::connect(&url).await.expect("connect");
        let pool = store.pool();
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(pool)
            .await
            .unwrap();
        let mut reader = pool.acquire().await.unwrap();
        let mut writer = pool.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *reader).await.unwrap();
        sqlx::query("SELECT count(*) FROM t")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *writer)
            .await
            .unwrap();
        let e = sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *reader)
            .await
            .expect_err("a stale snapshot cannot write");
        let e = from_sqlx(e);
        assert!(
            matches!(e, StoreError::Busy(ref m) if m.contains("locked")),
            "{e:?}"
        );
        // Any other database error stays a database error.
        let e = from_sqlx(
            sqlx::query("SELECT * FROM missing")
                .execute(&mut *writer)
                .await
                .unwrap_err(),
        );
        assert!(matches!(e, StoreError::Database(_)), "{e:?}");
        drop((reader, writer));
        let _ = std::fs::remove_dir_all(dir);
    }
}
