//! The SQL of structured access within the runs aggregate, for every [`Backend`]: registered
//! models, access requests and grants (their writes here; their reads are `RunStore`'s, in
//! `sql.rs`, with these statements). Access-usage reports are in `access_usage.rs`.

use sqlx::{Encode, Executor, Type};

use super::sql::lost_race;
use crate::backend::Affected as _;
use crate::backend::{Backend, Column, Conn, Db, Row};
use crate::error::write_error;
use crate::{StoreError, Write};

macro_rules! model_columns {
    () => {
        "id, org_id, run_id, milestone_id, name, checkpoint_digest, cumulative_flop, \
     release_plan, registered_by, registered_at"
    };
}
const INSERT_MODEL: &str = concat!(
    "INSERT INTO models (",
    model_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
pub(super) const MODEL: &str = concat!("SELECT ", model_columns!(), " FROM models WHERE id = $1");
pub(super) const MODELS: &str = concat!(
    "SELECT ",
    model_columns!(),
    " FROM models ORDER BY registered_at DESC, id DESC LIMIT $1"
);

macro_rules! access_request_columns {
    () => {
        "id, org_id, member_id, model_id, developer_org_id, tier, purpose, \
     research_plan_digest, agreement_digest, quotas_json, days, status, consent, \
     consent_reason, approvals_json, reason, grant_id, version, created_at, updated_at"
    };
}
const INSERT_ACCESS_REQUEST: &str = concat!(
    "INSERT INTO access_requests (",
    access_request_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
     $18, $19, $20)"
);
/// The decision's state only: `$1` id, `$8` the expected version.
const UPDATE_ACCESS_REQUEST: &str = "UPDATE access_requests SET status = $2, consent = $3, \
     consent_reason = $4, approvals_json = $5, reason = $6, grant_id = $7, \
     version = $8 + 1, updated_at = $9 WHERE id = $1 AND version = $8";
const ACCESS_REQUEST_VERSION: &str = "SELECT version FROM access_requests WHERE id = $1";
pub(super) const ACCESS_REQUEST: &str = concat!(
    "SELECT ",
    access_request_columns!(),
    " FROM access_requests WHERE id = $1"
);
pub(super) const ACCESS_REQUESTS: &str = concat!(
    "SELECT ",
    access_request_columns!(),
    " FROM access_requests ORDER BY created_at DESC, id DESC"
);
pub(super) const ACCESS_REQUESTS_OF_ORG: &str = concat!(
    "SELECT ",
    access_request_columns!(),
    " FROM access_requests WHERE org_id = $1 OR developer_org_id = $1 \
     ORDER BY created_at DESC, id DESC"
);

macro_rules! grant_insert_columns {
    () => {
        "id, request_id, milestone_id, model_id, org_id, developer_org_id, tier, origin, \
     token, claims_json, status, reason, status_since, exp_s, version, created_at"
    };
}
/// What a grant is read with: its columns and its usage sums (which only
/// [`RunStore::ingest_access_usage`] writes).
macro_rules! grant_columns {
    () => {
        concat!(
            grant_insert_columns!(),
            ", usage_reports, usage_requests, usage_prompt_tokens, usage_completion_tokens, \
             usage_refused, usage_last_to_s"
        )
    };
}
const INSERT_GRANT: &str = concat!(
    "INSERT INTO access_grants (",
    grant_insert_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
);
const UPDATE_GRANT: &str = "UPDATE access_grants SET status = $2, reason = $3, \
     status_since = $4, version = $5 + 1 WHERE id = $1 AND version = $5";
const GRANT_VERSION: &str = "SELECT version FROM access_grants WHERE id = $1";
pub(super) const GRANT: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM access_grants WHERE id = $1"
);
pub(super) const GRANTS: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM access_grants ORDER BY created_at DESC, id DESC"
);
pub(super) const GRANTS_OF_ORG: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM access_grants WHERE org_id = $1 OR developer_org_id = $1 \
     ORDER BY created_at DESC, id DESC"
);
pub(super) const GRANTS_NOT_IN_GOOD_STANDING: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM access_grants WHERE status <> 'active' AND exp_s > $1 ORDER BY id"
);

/// Applies one write of a model, an access request or a grant inside the batch's
/// transaction.
pub(super) async fn apply<B: Backend>(conn: &mut Conn<B>, write: &Write) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    Option<f64>: Column<Db<B>>,
    f64: Column<Db<B>>,
    bool: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    let fail = |e| write_error(write, e);
    match write {
        Write::InsertAccessRequest(r) => {
            sqlx::query(INSERT_ACCESS_REQUEST)
                .bind(&r.id)
                .bind(&r.org_id)
                .bind(&r.member_id)
                .bind(&r.model_id)
                .bind(&r.developer_org_id)
                .bind(&r.tier)
                .bind(&r.purpose)
                .bind(&r.research_plan_digest)
                .bind(&r.agreement_digest)
                .bind(&r.quotas_json)
                .bind(r.days)
                .bind(&r.status)
                .bind(&r.consent)
                .bind(&r.consent_reason)
                .bind(&r.approvals_json)
                .bind(&r.reason)
                .bind(&r.grant_id)
                .bind(r.version)
                .bind(r.created_at)
                .bind(r.updated_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::UpdateAccessRequest {
            request: r,
            expected_version,
        } => {
            let done = sqlx::query(UPDATE_ACCESS_REQUEST)
                .bind(&r.id)
                .bind(&r.status)
                .bind(&r.consent)
                .bind(&r.consent_reason)
                .bind(&r.approvals_json)
                .bind(&r.reason)
                .bind(&r.grant_id)
                .bind(*expected_version)
                .bind(r.updated_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                return Err(lost_race::<B>(
                    conn,
                    ACCESS_REQUEST_VERSION,
                    "access request",
                    &r.id,
                    *expected_version,
                )
                .await);
            }
        }
        Write::InsertGrant(g) => {
            sqlx::query(INSERT_GRANT)
                .bind(&g.id)
                .bind(&g.request_id)
                .bind(&g.milestone_id)
                .bind(&g.model_id)
                .bind(&g.org_id)
                .bind(&g.developer_org_id)
                .bind(&g.tier)
                .bind(&g.origin)
                .bind(&g.token)
                .bind(&g.claims_json)
                .bind(&g.status)
                .bind(&g.reason)
                .bind(g.status_since)
                .bind(g.exp_s)
                .bind(g.version)
                .bind(g.created_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::UpdateGrant {
            grant: g,
            expected_version,
        } => {
            let done = sqlx::query(UPDATE_GRANT)
                .bind(&g.id)
                .bind(&g.status)
                .bind(&g.reason)
                .bind(g.status_since)
                .bind(*expected_version)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                return Err(
                    lost_race::<B>(conn, GRANT_VERSION, "grant", &g.id, *expected_version).await,
                );
            }
        }
        Write::InsertModel(m) => {
            sqlx::query(INSERT_MODEL)
                .bind(&m.id)
                .bind(&m.org_id)
                .bind(&m.run_id)
                .bind(&m.milestone_id)
                .bind(&m.name)
                .bind(&m.checkpoint_digest)
                .bind(m.cumulative_flop)
                .bind(&m.release_plan)
                .bind(&m.registered_by)
                .bind(m.registered_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        other => unreachable!("{} is not a structured-access write", other.describe()),
    }
    Ok(())
}
