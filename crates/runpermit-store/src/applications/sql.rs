//! The applications aggregate's SQL, for every [`Backend`].

use sqlx::{Encode, Executor, Type};

use crate::backend::Affected as _;
use crate::backend::{Backend, Column, Conn, Db, Row};
use crate::error::{DbResult as _, write_error};
use crate::{Application, ApplicationStore, Permit, Receipt, Review, StoreError, Write};

const INSERT_APPLICATION: &str = "INSERT INTO applications \
     (id, org_id, created_by, status, tier, decision, approvals_required, plan_json, \
      plan_digest, estimate_json, policy_version, version, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
const UPDATE_APPLICATION: &str = "UPDATE applications SET \
     status = $2, tier = $3, decision = $4, approvals_required = $5, plan_json = $6, \
     plan_digest = $7, estimate_json = $8, policy_version = $9, updated_at = $10, \
     version = $11 \
     WHERE id = $1 AND version = $12";
const APPLICATION_VERSION: &str = "SELECT version FROM applications WHERE id = $1";
const INSERT_REVIEW: &str = "INSERT INTO reviews \
     (id, application_id, reviewer_id, reviewer_org_id, decision, reason, conditions_json, \
      evaluators_json, policy_version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const INSERT_PERMIT: &str = "INSERT INTO permits \
     (id, application_id, run_id, org_id, status, claims_json, token, kid, policy_version, \
      created_at, issued_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const ISSUE_PERMIT: &str = "UPDATE permits SET status = 'issued', token = $2, \
     issued_at = $3 WHERE id = $1 AND status = 'intent'";
const PERMIT_STATUS: &str = "SELECT status FROM permits WHERE id = $1";
const INSERT_RECEIPT: &str = "INSERT INTO receipts \
     (id, application_id, org_id, token, created_at) VALUES ($1, $2, $3, $4, $5)";
const INSERT_PLAN_PERMIT: &str =
    "INSERT INTO plan_permits (plan_digest, permit_id, claimed_at) VALUES ($1, $2, $3)";
const REPLACE_PLAN_PERMIT: &str = "UPDATE plan_permits SET permit_id = $2, \
     claimed_at = $3 WHERE plan_digest = $1 AND permit_id = $4";
const PLAN_PERMIT: &str = "SELECT permit_id FROM plan_permits WHERE plan_digest = $1";
macro_rules! application_columns {
    () => {
        "id, org_id, created_by, status, tier, decision, \
     approvals_required, plan_json, plan_digest, estimate_json, policy_version, version, \
     created_at, updated_at"
    };
}
const APPLICATION: &str = concat!(
    "SELECT ",
    application_columns!(),
    " FROM applications WHERE id = $1"
);
const APPLICATIONS: &str = concat!(
    "SELECT ",
    application_columns!(),
    " FROM applications ORDER BY created_at DESC, id DESC"
);
const APPLICATIONS_OF_ORG: &str = concat!(
    "SELECT ",
    application_columns!(),
    " FROM applications WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
);
const REVIEWS: &str = "SELECT id, application_id, reviewer_id, reviewer_org_id, \
     decision, reason, conditions_json, evaluators_json, policy_version, created_at FROM reviews \
     WHERE application_id = $1 ORDER BY created_at, id";
macro_rules! permit_columns {
    () => {
        "id, application_id, run_id, org_id, status, claims_json, token, \
     kid, policy_version, created_at, issued_at"
    };
}
const PERMIT: &str = concat!("SELECT ", permit_columns!(), " FROM permits WHERE id = $1");
const PERMITS_FOR_APPLICATION: &str = concat!(
    "SELECT ",
    permit_columns!(),
    " FROM permits WHERE application_id = $1 ORDER BY created_at, id"
);
const PENDING_PERMITS: &str = concat!(
    "SELECT ",
    permit_columns!(),
    " FROM permits WHERE status = 'intent' ORDER BY created_at, id"
);
const RECEIPT_FOR_APPLICATION: &str = "SELECT id, application_id, org_id, token, \
     created_at FROM receipts WHERE application_id = $1";

/// Applies one applications write inside the batch's transaction.
pub(crate) async fn apply<B: Backend>(conn: &mut Conn<B>, write: &Write) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    let fail = |e| write_error(write, e);
    match write {
        Write::InsertApplication(a) => {
            sqlx::query(INSERT_APPLICATION)
                .bind(&a.id)
                .bind(&a.org_id)
                .bind(&a.created_by)
                .bind(a.status.as_str())
                .bind(&a.tier)
                .bind(&a.decision)
                .bind(a.approvals_required)
                .bind(&a.plan_json)
                .bind(&a.plan_digest)
                .bind(&a.estimate_json)
                .bind(&a.policy_version)
                .bind(a.version)
                .bind(a.created_at)
                .bind(a.updated_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::UpdateApplication {
            application: a,
            expected_version,
        } => {
            let next = expected_version.checked_add(1).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "application {:?}: expected_version {} is too large",
                    a.id, expected_version
                ))
            })?;
            let done = sqlx::query(UPDATE_APPLICATION)
                .bind(&a.id)
                .bind(a.status.as_str())
                .bind(&a.tier)
                .bind(&a.decision)
                .bind(a.approvals_required)
                .bind(&a.plan_json)
                .bind(&a.plan_digest)
                .bind(&a.estimate_json)
                .bind(&a.policy_version)
                .bind(a.updated_at)
                .bind(next)
                .bind(*expected_version)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                let stored: Option<i64> = sqlx::query_scalar(APPLICATION_VERSION)
                    .bind(&a.id)
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                return Err(match stored {
                    None => StoreError::NotFound(format!("application {:?}", a.id)),
                    Some(stored) => StoreError::Conflict(format!(
                        "application {:?} was changed concurrently: \
                             expected version {}, stored version {}",
                        a.id, expected_version, stored
                    )),
                });
            }
        }
        Write::InsertReview(r) => {
            sqlx::query(INSERT_REVIEW)
                .bind(&r.id)
                .bind(&r.application_id)
                .bind(&r.reviewer_id)
                .bind(&r.reviewer_org_id)
                .bind(&r.decision)
                .bind(&r.reason)
                .bind(&r.conditions_json)
                .bind(&r.evaluators_json)
                .bind(&r.policy_version)
                .bind(r.created_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::InsertPermit(p) => {
            sqlx::query(INSERT_PERMIT)
                .bind(&p.id)
                .bind(&p.application_id)
                .bind(&p.run_id)
                .bind(&p.org_id)
                .bind(p.status.as_str())
                .bind(&p.claims_json)
                .bind(&p.token)
                .bind(&p.kid)
                .bind(&p.policy_version)
                .bind(p.created_at)
                .bind(p.issued_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::IssuePermit {
            id,
            token,
            issued_at,
        } => {
            let done = sqlx::query(ISSUE_PERMIT)
                .bind(id)
                .bind(token)
                .bind(*issued_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                let status: Option<String> = sqlx::query_scalar(PERMIT_STATUS)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                return Err(match status {
                    None => StoreError::NotFound(format!("permit {id:?}")),
                    Some(status) => StoreError::Conflict(format!(
                        "permit {:?} is {:?}; only an \"intent\" can be issued",
                        id, status
                    )),
                });
            }
        }
        Write::InsertReceipt(r) => {
            sqlx::query(INSERT_RECEIPT)
                .bind(&r.id)
                .bind(&r.application_id)
                .bind(&r.org_id)
                .bind(&r.token)
                .bind(r.created_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::ClaimPlan {
            plan_digest,
            permit_id,
            replaces,
            at,
        } => match replaces {
            None => {
                sqlx::query(INSERT_PLAN_PERMIT)
                    .bind(plan_digest)
                    .bind(permit_id)
                    .bind(*at)
                    .execute(&mut *conn)
                    .await
                    .map_err(fail)?;
            }
            Some(previous) => {
                let done = sqlx::query(REPLACE_PLAN_PERMIT)
                    .bind(plan_digest)
                    .bind(permit_id)
                    .bind(*at)
                    .bind(previous)
                    .execute(&mut *conn)
                    .await
                    .map_err(fail)?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict(format!(
                        "plan {plan_digest:?} is no longer claimed by permit \
                             {previous:?}: another permit claimed it meanwhile"
                    )));
                }
            }
        },
        other => unreachable!("{} is not an application write", other.describe()),
    }
    Ok(())
}

#[async_trait::async_trait]
impl<B: Backend> ApplicationStore for B
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
    for<'a> &'a str: sqlx::ColumnIndex<Row<B>>,
{
    async fn application(&self, id: &str) -> Result<Option<Application>, StoreError> {
        sqlx::query_as(APPLICATION)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn applications(&self, org_id: Option<&str>) -> Result<Vec<Application>, StoreError> {
        match org_id {
            Some(org_id) => sqlx::query_as(APPLICATIONS_OF_ORG)
                .bind(org_id)
                .fetch_all(self.connections())
                .await
                .db(),
            None => sqlx::query_as(APPLICATIONS)
                .fetch_all(self.connections())
                .await
                .db(),
        }
    }

    async fn reviews(&self, application_id: &str) -> Result<Vec<Review>, StoreError> {
        sqlx::query_as(REVIEWS)
            .bind(application_id)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn permit(&self, id: &str) -> Result<Option<Permit>, StoreError> {
        sqlx::query_as(PERMIT)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn permits_for_application(
        &self,
        application_id: &str,
    ) -> Result<Vec<Permit>, StoreError> {
        sqlx::query_as(PERMITS_FOR_APPLICATION)
            .bind(application_id)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn pending_permits(&self) -> Result<Vec<Permit>, StoreError> {
        sqlx::query_as(PENDING_PERMITS)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn receipt_for_application(
        &self,
        application_id: &str,
    ) -> Result<Option<Receipt>, StoreError> {
        sqlx::query_as(RECEIPT_FOR_APPLICATION)
            .bind(application_id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn plan_permit(&self, plan_digest: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(PLAN_PERMIT)
            .bind(plan_digest)
            .fetch_optional(self.connections())
            .await
            .db()
    }
}
