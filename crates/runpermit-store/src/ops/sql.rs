//! The SQL of the deployment's own records (its identity, audit trail and idempotency
//! records), for every [`Backend`].

use sqlx::{Encode, Executor, Type};

use crate::backend::Affected as _;
use crate::backend::{Backend, Column, Conn, Db, Row};
use crate::error::{DbResult as _, write_error};
use crate::{AuditEvent, Deployment, Idempotency, OpsStore, StoreError, Write};

const PING: &str = "SELECT 1";
const INSERT_DEPLOYMENT: &str = "INSERT INTO deployment \
     (id, log_origin, log_vkey, created_at) VALUES (1, $1, $2, $3)";
const DEPLOYMENT: &str = "SELECT log_origin, log_vkey, created_at FROM deployment WHERE id = 1";
const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (at, actor_member_id, actor_org_id, action, subject, reason, details_json) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
const RESERVE_IDEMPOTENCY: &str = "INSERT INTO idempotency \
     (principal_id, key, method_path, request_hash, status, response_json, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Status 0 is a reservation ([`crate::Idempotency::RESERVED`]); `created_at` names which.
const TAKE_OVER_IDEMPOTENCY: &str = "UPDATE idempotency SET created_at = $4 \
     WHERE principal_id = $1 AND key = $2 AND status = 0 AND created_at = $3";
const ANSWER_IDEMPOTENCY: &str = "UPDATE idempotency \
     SET status = $4, response_json = $5 \
     WHERE principal_id = $1 AND key = $2 AND status = 0 AND created_at = $3";
const RELEASE_IDEMPOTENCY: &str = "DELETE FROM idempotency \
     WHERE principal_id = $1 AND key = $2 AND status = 0 AND created_at = $3";
const IDEMPOTENCY_STATE: &str =
    "SELECT status, created_at FROM idempotency WHERE principal_id = $1 AND key = $2";
macro_rules! audit_columns {
    () => {
        "seq, at, actor_member_id, actor_org_id, action, subject, reason, details_json"
    };
}
const AUDIT: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
);
const AUDIT_OF_SUBJECT: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE subject = $1 AND seq > $2 ORDER BY seq LIMIT $3"
);
const IDEMPOTENCY: &str = "SELECT principal_id, key, method_path, request_hash, \
     status, response_json, created_at FROM idempotency WHERE principal_id = $1 AND key = $2";

/// Applies one ops write inside the batch's transaction.
pub(crate) async fn apply<B: Backend>(conn: &mut Conn<B>, write: &Write) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    i64: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    let fail = |e| write_error(write, e);
    match write {
        Write::InsertDeployment(d) => {
            sqlx::query(INSERT_DEPLOYMENT)
                .bind(&d.log_origin)
                .bind(&d.log_vkey)
                .bind(d.created_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::InsertAudit(e) => {
            sqlx::query(INSERT_AUDIT)
                .bind(e.at)
                .bind(&e.actor_member_id)
                .bind(&e.actor_org_id)
                .bind(&e.action)
                .bind(&e.subject)
                .bind(&e.reason)
                .bind(&e.details_json)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::ReserveIdempotency(i) => {
            sqlx::query(RESERVE_IDEMPOTENCY)
                .bind(&i.principal_id)
                .bind(&i.key)
                .bind(&i.method_path)
                .bind(&i.request_hash)
                .bind(i.status)
                .bind(&i.response_json)
                .bind(i.created_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::TakeOverIdempotency {
            principal_id,
            key,
            reserved_at,
            at,
        } => {
            let done = sqlx::query(TAKE_OVER_IDEMPOTENCY)
                .bind(principal_id)
                .bind(key)
                .bind(*reserved_at)
                .bind(*at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                return Err(not_that_reservation::<B>(conn, principal_id, key, *reserved_at).await);
            }
        }
        Write::AnswerIdempotency {
            principal_id,
            key,
            reserved_at,
            status,
            response_json,
        } => {
            let done = sqlx::query(ANSWER_IDEMPOTENCY)
                .bind(principal_id)
                .bind(key)
                .bind(*reserved_at)
                .bind(*status)
                .bind(response_json)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                return Err(not_that_reservation::<B>(conn, principal_id, key, *reserved_at).await);
            }
        }
        Write::ReleaseIdempotency {
            principal_id,
            key,
            reserved_at,
        } => {
            let done = sqlx::query(RELEASE_IDEMPOTENCY)
                .bind(principal_id)
                .bind(key)
                .bind(*reserved_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                return Err(not_that_reservation::<B>(conn, principal_id, key, *reserved_at).await);
            }
        }
        other => unreachable!(
            "{} is not a write of the deployment's own records",
            other.describe()
        ),
    }
    Ok(())
}

/// Why a write addressed to the reservation of `key` made at `reserved_at`
/// changed nothing: `NotFound` without a record, else `Conflict`.
async fn not_that_reservation<B: Backend>(
    conn: &mut Conn<B>,
    principal_id: &str,
    key: &str,
    reserved_at: i64,
) -> StoreError
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    i64: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    let state: Option<(i64, i64)> = match sqlx::query_as(IDEMPOTENCY_STATE)
        .bind(principal_id)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await
        .db()
    {
        Ok(state) => state,
        Err(e) => return e,
    };
    match state {
        None => StoreError::NotFound(format!(
            "idempotency key {key:?} of principal {principal_id:?}"
        )),
        Some((status, _)) if status != Idempotency::RESERVED => StoreError::Conflict(format!(
            "idempotency key {key:?} of principal {principal_id:?} already \
                     has its answer (status {status})"
        )),
        Some((_, at)) => StoreError::Conflict(format!(
            "idempotency key {key:?} of principal {principal_id:?} is reserved \
                 since {at}, not since {reserved_at}: another request took it over"
        )),
    }
}

#[async_trait::async_trait]
impl<B: Backend> OpsStore for B
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    i64: Column<Db<B>>,
    Vec<u8>: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
    for<'a> &'a str: sqlx::ColumnIndex<Row<B>>,
{
    async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations().await?;
        // Entries sequenced before the log kept their references (migration 0009).
        crate::log::refs::index_unindexed(self).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(PING).execute(self.connections()).await.db()?;
        Ok(())
    }

    async fn deployment(&self) -> Result<Option<Deployment>, StoreError> {
        sqlx::query_as(DEPLOYMENT)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn audit(
        &self,
        subject: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if limit < 1 {
            return Err(StoreError::Invalid(format!(
                "audit limit: must be 1 or more (got {limit})"
            )));
        }
        match subject {
            Some(subject) => sqlx::query_as(AUDIT_OF_SUBJECT)
                .bind(subject)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(self.connections())
                .await
                .db(),
            None => sqlx::query_as(AUDIT)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(self.connections())
                .await
                .db(),
        }
    }

    async fn idempotency(
        &self,
        principal_id: &str,
        key: &str,
    ) -> Result<Option<Idempotency>, StoreError> {
        sqlx::query_as(IDEMPOTENCY)
            .bind(principal_id)
            .bind(key)
            .fetch_optional(self.connections())
            .await
            .db()
    }
}
