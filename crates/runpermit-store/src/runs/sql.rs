//! The runs aggregate's SQL, for every [`Backend`]: runs, milestones, incidents, run flags
//! and KYC reports, and the aggregate's `RunStore` implementation (usage reports are in
//! `usage.rs`; registered models, access requests and grants in `access_sql.rs`).

use sqlx::{Encode, Executor, Type};

use super::access_sql::{
    ACCESS_REQUEST, ACCESS_REQUESTS, ACCESS_REQUESTS_OF_ORG, GRANT, GRANTS,
    GRANTS_NOT_IN_GOOD_STANDING, GRANTS_OF_ORG, MODEL, MODELS,
};
use super::{access_sql, access_usage, usage};
use crate::backend::Affected as _;
use crate::backend::{Backend, Column, Conn, Db, Row};
use crate::error::{DbResult as _, write_error};
use crate::{
    AccessRequest, AccessUsageRecord, Grant, Incident, Ingested, KycTotal, Milestone, Model,
    ProviderUsage, Run, RunFlag, RunStore, StoreError, UsageRecord, Write,
};
use runpermit_types::UsageFigure;

macro_rules! run_columns {
    () => {
        "id, permit_id, org_id, status, reason, status_since, tranche, released_flop, \
     budget_flop, cumulative_flop, cumulative_upper_flop, summarized_flop, alerted_percent, \
     appeal_pending, permit_exp_s, version, created_at, updated_at, cumulative_lower_flop, \
     measured_flop, measured_capacity_flop, first_usage_s, last_usage_s"
    };
}
const INSERT_RUN: &str = concat!(
    "INSERT INTO runs (",
    run_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, \
     $19, $20, $21, $22, $23)"
);
/// Only the run's state: never the usage figures, which ingestion changes concurrently.
const UPDATE_RUN: &str = "UPDATE runs SET \
     status = $2, reason = $3, status_since = $4, tranche = $5, released_flop = $6, \
     alerted_percent = $7, appeal_pending = $8, updated_at = $9, version = $10 \
     WHERE id = $1 AND version = $11";
const RUN_VERSION: &str = "SELECT version FROM runs WHERE id = $1";
const SET_RUN_SUMMARIZED: &str = "UPDATE runs SET summarized_flop = $2, \
     updated_at = $3 WHERE id = $1 AND summarized_flop = $4";
const RUN: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1");
const RUN_BY_PERMIT: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE permit_id = $1");
const RUNS: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs ORDER BY created_at DESC, id DESC"
);
const RUNS_OF_ORG: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
);
const RUNS_NOT_IN_GOOD_STANDING: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE status <> 'active' AND permit_exp_s > $1 ORDER BY id"
);
/// `$1` names the figure the public log summarises ([`UsageFigure`]).
const RUNS_TO_SUMMARIZE: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE CASE $1 WHEN 'lower' THEN cumulative_lower_flop \
     WHEN 'upper' THEN cumulative_upper_flop ELSE cumulative_flop END <> summarized_flop \
     ORDER BY id"
);

macro_rules! milestone_columns {
    () => {
        "id, run_id, tranche, status, checkpoint_digest, cumulative_flop, evals_json, \
     submitted_by, submitted_at, decided_by, decided_org, decided_at, reason, tokens, \
     metered_flop, operation_count_flop"
    };
}
const INSERT_MILESTONE: &str = concat!(
    "INSERT INTO milestones (",
    milestone_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
);
const DECIDE_MILESTONE: &str = "UPDATE milestones SET status = $2, \
     decided_by = $3, decided_org = $4, decided_at = $5, reason = $6 \
     WHERE id = $1 AND status = 'submitted'";
const MILESTONE_STATUS: &str = "SELECT status FROM milestones WHERE id = $1";
const MILESTONE: &str = concat!(
    "SELECT ",
    milestone_columns!(),
    " FROM milestones WHERE id = $1"
);
const MILESTONES: &str = concat!(
    "SELECT ",
    milestone_columns!(),
    " FROM milestones WHERE run_id = $1 ORDER BY submitted_at, id"
);

macro_rules! incident_columns {
    () => {
        "id, org_id, reported_by, run_id, category, summary, details_json, occurred_at, \
     reported_at, follow_up_due, followed_up_at, follow_up, status, tranche"
    };
}
const INSERT_INCIDENT: &str = concat!(
    "INSERT INTO incidents (",
    incident_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
);
/// `$4` is `'closed'` to close the incident, NULL to leave its status.
const FOLLOW_UP_INCIDENT: &str = "UPDATE incidents SET followed_up_at = $2, \
     follow_up = $3, status = COALESCE($4, status) WHERE id = $1 AND status <> 'closed'";
const INCIDENT_STATUS: &str = "SELECT status FROM incidents WHERE id = $1";
const INCIDENT: &str = concat!(
    "SELECT ",
    incident_columns!(),
    " FROM incidents WHERE id = $1"
);
const INCIDENTS: &str = concat!(
    "SELECT ",
    incident_columns!(),
    " FROM incidents ORDER BY reported_at DESC, id DESC"
);
const INCIDENTS_OF_ORG: &str = concat!(
    "SELECT ",
    incident_columns!(),
    " FROM incidents WHERE org_id = $1 ORDER BY reported_at DESC, id DESC"
);

/// Raised once: the same (run, kind, subject) again changes nothing.
const INSERT_RUN_FLAG: &str = "INSERT INTO run_flags \
     (run_id, kind, subject, raised_at, message, details_json) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, kind, subject) DO NOTHING";
const RUN_FLAGS: &str = "SELECT run_id, kind, subject, raised_at, message, details_json \
     FROM run_flags WHERE run_id = $1 ORDER BY raised_at, kind, subject";

const INSERT_KYC_REPORT: &str = "INSERT INTO kyc_reports \
     (id, provider_id, customer, from_s, to_s, jobs, accelerator_seconds, flop, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// `SUM` of a BIGINT is NUMERIC on PostgreSQL: cast back.
const KYC_TOTALS: &str = "SELECT customer, provider_id, COUNT(*) AS reports, \
     CAST(SUM(jobs) AS BIGINT) AS jobs, SUM(accelerator_seconds) AS accelerator_seconds, \
     SUM(flop) AS flop FROM kyc_reports WHERE to_s > $1 \
     GROUP BY customer, provider_id ORDER BY customer, provider_id";

/// Why a compare-and-set update of `what` `id` (expected at `expected_version`) changed no
/// row: `NotFound` when the row is gone, else `Conflict` naming the stored version.
/// `version_sql` reads the row's version by id.
pub(super) async fn lost_race<B: Backend>(
    conn: &mut Conn<B>,
    version_sql: &'static str,
    what: &str,
    id: &str,
    expected_version: i64,
) -> StoreError
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    i64: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    let stored: Result<Option<i64>, StoreError> = sqlx::query_scalar(version_sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .db();
    match stored {
        Err(e) => e,
        Ok(None) => StoreError::NotFound(format!("{what} {id:?}")),
        Ok(Some(stored)) => StoreError::Conflict(format!(
            "{what} {id:?} was changed concurrently: expected version {expected_version}, \
             stored version {stored}"
        )),
    }
}

/// Applies one runs write inside the batch's transaction.
pub(crate) async fn apply<B: Backend>(conn: &mut Conn<B>, write: &Write) -> Result<(), StoreError>
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
        Write::InsertRun(r) => {
            sqlx::query(INSERT_RUN)
                .bind(&r.id)
                .bind(&r.permit_id)
                .bind(&r.org_id)
                .bind(r.status.as_str())
                .bind(&r.reason)
                .bind(r.status_since)
                .bind(r.tranche)
                .bind(r.released_flop)
                .bind(r.budget_flop)
                .bind(r.cumulative_flop)
                .bind(r.cumulative_upper_flop)
                .bind(r.summarized_flop)
                .bind(r.alerted_percent)
                .bind(r.appeal_pending)
                .bind(r.permit_exp_s)
                .bind(r.version)
                .bind(r.created_at)
                .bind(r.updated_at)
                .bind(r.cumulative_lower_flop)
                .bind(r.measured_flop)
                .bind(r.measured_capacity_flop)
                .bind(r.first_usage_s)
                .bind(r.last_usage_s)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::UpdateRun {
            run: r,
            expected_version,
        } => {
            let next = expected_version.checked_add(1).ok_or_else(|| {
                StoreError::Invalid(format!(
                    "run {:?}: expected_version {} is too large",
                    r.id, expected_version
                ))
            })?;
            let done = sqlx::query(UPDATE_RUN)
                .bind(&r.id)
                .bind(r.status.as_str())
                .bind(&r.reason)
                .bind(r.status_since)
                .bind(r.tranche)
                .bind(r.released_flop)
                .bind(r.alerted_percent)
                .bind(r.appeal_pending)
                .bind(r.updated_at)
                .bind(next)
                .bind(*expected_version)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                return Err(
                    lost_race::<B>(conn, RUN_VERSION, "run", &r.id, *expected_version).await,
                );
            }
        }
        Write::SetRunSummarized {
            id,
            flop,
            expected_flop,
            at,
        } => {
            let done = sqlx::query(SET_RUN_SUMMARIZED)
                .bind(id)
                .bind(*flop)
                .bind(*at)
                .bind(*expected_flop)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                let stored: Option<i64> = sqlx::query_scalar(RUN_VERSION)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                return Err(match stored {
                    None => StoreError::NotFound(format!("run {id:?}")),
                    Some(_) => StoreError::Conflict(format!(
                        "run {id:?} was summarised concurrently: \
                             its summarized_flop is no longer {expected_flop}"
                    )),
                });
            }
        }
        Write::InsertMilestone(m) => {
            sqlx::query(INSERT_MILESTONE)
                .bind(&m.id)
                .bind(&m.run_id)
                .bind(m.tranche)
                .bind(m.status.as_str())
                .bind(&m.checkpoint_digest)
                .bind(m.cumulative_flop)
                .bind(&m.evals_json)
                .bind(&m.submitted_by)
                .bind(m.submitted_at)
                .bind(&m.decided_by)
                .bind(&m.decided_org)
                .bind(m.decided_at)
                .bind(&m.reason)
                .bind(m.tokens)
                .bind(m.metered_flop)
                .bind(m.operation_count_flop)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::DecideMilestone {
            id,
            status,
            decided_by,
            decided_org,
            decided_at,
            reason,
        } => {
            let done = sqlx::query(DECIDE_MILESTONE)
                .bind(id)
                .bind(status.as_str())
                .bind(decided_by)
                .bind(decided_org)
                .bind(*decided_at)
                .bind(reason)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                let stored: Option<String> = sqlx::query_scalar(MILESTONE_STATUS)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                return Err(match stored {
                    None => StoreError::NotFound(format!("milestone {id:?}")),
                    Some(stored) => StoreError::Conflict(format!(
                        "milestone {id:?} is already decided ({stored:?}); \
                             only a \"submitted\" one can be decided"
                    )),
                });
            }
        }
        Write::InsertAccessRequest(_)
        | Write::UpdateAccessRequest { .. }
        | Write::InsertGrant(_)
        | Write::UpdateGrant { .. }
        | Write::InsertModel(_) => access_sql::apply::<B>(conn, write).await?,
        Write::InsertRunFlag(f) => {
            sqlx::query(INSERT_RUN_FLAG)
                .bind(&f.run_id)
                .bind(&f.kind)
                .bind(&f.subject)
                .bind(f.raised_at)
                .bind(&f.message)
                .bind(&f.details_json)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::InsertIncident(i) => {
            sqlx::query(INSERT_INCIDENT)
                .bind(&i.id)
                .bind(&i.org_id)
                .bind(&i.reported_by)
                .bind(&i.run_id)
                .bind(&i.category)
                .bind(&i.summary)
                .bind(&i.details_json)
                .bind(i.occurred_at)
                .bind(i.reported_at)
                .bind(i.follow_up_due)
                .bind(i.followed_up_at)
                .bind(&i.follow_up)
                .bind(i.status.as_str())
                .bind(i.tranche)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        Write::FollowUpIncident {
            id,
            at,
            text,
            close,
        } => {
            let done = sqlx::query(FOLLOW_UP_INCIDENT)
                .bind(id)
                .bind(*at)
                .bind(text)
                .bind(close.then(|| "closed".to_owned()))
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
            if done.rows_affected() == 0 {
                let stored: Option<String> = sqlx::query_scalar(INCIDENT_STATUS)
                    .bind(id)
                    .fetch_optional(&mut *conn)
                    .await
                    .db()?;
                return Err(match stored {
                    None => StoreError::NotFound(format!("incident {id:?}")),
                    Some(_) => StoreError::Conflict(format!("incident {id:?} is closed")),
                });
            }
        }
        Write::InsertKycReport(k) => {
            sqlx::query(INSERT_KYC_REPORT)
                .bind(&k.id)
                .bind(&k.provider_id)
                .bind(&k.customer)
                .bind(k.from_s)
                .bind(k.to_s)
                .bind(k.jobs)
                .bind(k.accelerator_seconds)
                .bind(k.flop)
                .bind(k.received_at)
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        other => unreachable!("{} is not a run write", other.describe()),
    }
    Ok(())
}

#[async_trait::async_trait]
impl<B: Backend> RunStore for B
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
    for<'a> &'a str: sqlx::ColumnIndex<Row<B>>,
{
    async fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        sqlx::query_as(RUN)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn run_by_permit(&self, permit_id: &str) -> Result<Option<Run>, StoreError> {
        sqlx::query_as(RUN_BY_PERMIT)
            .bind(permit_id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn runs(&self, org_id: Option<&str>) -> Result<Vec<Run>, StoreError> {
        match org_id {
            Some(org_id) => sqlx::query_as(RUNS_OF_ORG)
                .bind(org_id)
                .fetch_all(self.connections())
                .await
                .db(),
            None => sqlx::query_as(RUNS)
                .fetch_all(self.connections())
                .await
                .db(),
        }
    }

    async fn runs_not_in_good_standing(
        &self,
        min_permit_exp_s: i64,
    ) -> Result<Vec<Run>, StoreError> {
        sqlx::query_as(RUNS_NOT_IN_GOOD_STANDING)
            .bind(min_permit_exp_s)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn runs_to_summarize(&self, figure: UsageFigure) -> Result<Vec<Run>, StoreError> {
        sqlx::query_as(RUNS_TO_SUMMARIZE)
            .bind(figure.as_str())
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn ingest_usage(&self, records: Vec<UsageRecord>) -> Result<Vec<Ingested>, StoreError> {
        crate::validate::usage(&records)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write(&[]).await?;
        let outcomes = match usage::ingest::<B>(&mut *tx, &records).await {
            Ok(outcomes)
                if outcomes
                    .iter()
                    .any(|o| matches!(o, Ingested::Conflict { .. })) =>
            {
                tx.rollback().await.db()?;
                tracing::debug!("usage batch withheld: a record conflicts");
                return Ok(outcomes);
            }
            Ok(outcomes) => outcomes,
            Err(e) => {
                tracing::debug!(error = %e, "usage batch rolled back");
                let _ = tx.rollback().await;
                return Err(e);
            }
        };
        tx.commit().await.db()?;
        tracing::debug!(records = records.len(), "usage batch committed");
        Ok(outcomes)
    }

    async fn usage_by_provider(&self, run_id: &str) -> Result<Vec<ProviderUsage>, StoreError> {
        sqlx::query_as(usage::USAGE_BY_PROVIDER)
            .bind(run_id)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn usage_reports(
        &self,
        run_id: &str,
        after: Option<(String, i64)>,
        limit: i64,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        if limit < 1 {
            return Err(StoreError::Invalid(format!(
                "usage reports limit: must be 1 or more (got {limit})"
            )));
        }
        match after {
            Some((provider_id, seq)) => sqlx::query_as(usage::USAGE_REPORTS_AFTER)
                .bind(run_id)
                .bind(provider_id)
                .bind(seq)
                .bind(limit)
                .fetch_all(self.connections())
                .await
                .db(),
            None => sqlx::query_as(usage::USAGE_REPORTS)
                .bind(run_id)
                .bind(limit)
                .fetch_all(self.connections())
                .await
                .db(),
        }
    }

    async fn milestone(&self, id: &str) -> Result<Option<Milestone>, StoreError> {
        sqlx::query_as(MILESTONE)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn milestones(&self, run_id: &str) -> Result<Vec<Milestone>, StoreError> {
        sqlx::query_as(MILESTONES)
            .bind(run_id)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
        sqlx::query_as(INCIDENT)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn incidents(&self, org_id: Option<&str>) -> Result<Vec<Incident>, StoreError> {
        match org_id {
            Some(org_id) => sqlx::query_as(INCIDENTS_OF_ORG)
                .bind(org_id)
                .fetch_all(self.connections())
                .await
                .db(),
            None => sqlx::query_as(INCIDENTS)
                .fetch_all(self.connections())
                .await
                .db(),
        }
    }

    async fn model(&self, id: &str) -> Result<Option<Model>, StoreError> {
        sqlx::query_as(MODEL)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn access_request(&self, id: &str) -> Result<Option<AccessRequest>, StoreError> {
        sqlx::query_as(ACCESS_REQUEST)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn access_requests(
        &self,
        org_id: Option<&str>,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        match org_id {
            None => sqlx::query_as(ACCESS_REQUESTS)
                .fetch_all(self.connections())
                .await
                .db(),
            Some(org) => sqlx::query_as(ACCESS_REQUESTS_OF_ORG)
                .bind(org)
                .fetch_all(self.connections())
                .await
                .db(),
        }
    }

    async fn grant(&self, id: &str) -> Result<Option<Grant>, StoreError> {
        sqlx::query_as(GRANT)
            .bind(id)
            .fetch_optional(self.connections())
            .await
            .db()
    }

    async fn ingest_access_usage(
        &self,
        records: Vec<AccessUsageRecord>,
    ) -> Result<Vec<Ingested>, StoreError> {
        crate::validate::access_usage(&records)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write(&[]).await?;
        let outcomes = match access_usage::ingest::<B>(&mut *tx, &records).await {
            Ok(outcomes)
                if outcomes
                    .iter()
                    .any(|o| matches!(o, Ingested::Conflict { .. })) =>
            {
                tx.rollback().await.db()?;
                return Ok(outcomes);
            }
            Ok(outcomes) => outcomes,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e);
            }
        };
        tx.commit().await.db()?;
        Ok(outcomes)
    }

    async fn access_usage_reports(
        &self,
        grant_id: &str,
        limit: i64,
    ) -> Result<Vec<AccessUsageRecord>, StoreError> {
        sqlx::query_as(access_usage::REPORTS)
            .bind(grant_id)
            .bind(limit.max(1))
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn grants(&self, org_id: Option<&str>) -> Result<Vec<Grant>, StoreError> {
        match org_id {
            None => sqlx::query_as(GRANTS)
                .fetch_all(self.connections())
                .await
                .db(),
            Some(org) => sqlx::query_as(GRANTS_OF_ORG)
                .bind(org)
                .fetch_all(self.connections())
                .await
                .db(),
        }
    }

    async fn grants_not_in_good_standing(&self, min_exp_s: i64) -> Result<Vec<Grant>, StoreError> {
        sqlx::query_as(GRANTS_NOT_IN_GOOD_STANDING)
            .bind(min_exp_s)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn models(&self, limit: i64) -> Result<Vec<Model>, StoreError> {
        sqlx::query_as(MODELS)
            .bind(limit.max(1))
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn run_flags(&self, run_id: &str) -> Result<Vec<RunFlag>, StoreError> {
        sqlx::query_as(RUN_FLAGS)
            .bind(run_id)
            .fetch_all(self.connections())
            .await
            .db()
    }

    async fn kyc_totals(&self, since_s: i64) -> Result<Vec<KycTotal>, StoreError> {
        sqlx::query_as(KYC_TOTALS)
            .bind(since_s)
            .fetch_all(self.connections())
            .await
            .db()
    }
}
