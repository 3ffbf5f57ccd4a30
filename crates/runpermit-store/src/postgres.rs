//! The PostgreSQL backend: for production, and for several `runpermit serve` processes
//! sharing one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::Pool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use crate::backend::{Backend, Params, SizedSql};
use crate::error::DbResult as _;
use crate::{StoreError, Write};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

const MAX_CONNECTIONS: u32 = 16;
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The transaction-level advisory lock (two-key form) that batches with audit events hold, so
/// that audit `seq` numbers become visible in order: a reader paging with `after_seq` never
/// skips an event that was numbered earlier but committed later. Taken first in the
/// transaction, so it cannot deadlock with row locks.
const AUDIT_LOCK: (i32, i32) = (0x7270_6d74, 1); // "rpmt", 1

/// A [`Store`](crate::Store) on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `postgres://…` or `postgresql://…` (libpq URL parameters such as
    /// `options=-c search_path=…` and `sslmode` apply). Fails if the server cannot be reached.
    /// Does not migrate.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Invalid(format!(
                "store URL: not a PostgreSQL URL such as postgres://USER@HOST:5432/DATABASE ({e})"
            ))
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .db()?;
        Ok(PgStore { pool })
    }

    /// The connection pool, for what the [`Store`](crate::Store) traits do not cover
    /// (tests, maintenance).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Backend for PgStore {
    type Db = sqlx::Postgres;

    /// A row lock on the log state, held until the sequencer's transaction ends.
    const LOG_SIZE_LOCKED: &'static str = crate::log::sql::LOG_SIZE_FOR_UPDATE;

    /// Row locks on the runs of an ingestion batch, held until its transaction ends.
    const RUNS_LOCKED: &'static SizedSql = &crate::runs::usage::RUNS_IN_FOR_UPDATE;
    const GRANT_LOCKED: &'static str = crate::runs::access_usage::GRANT_EXISTS_FOR_UPDATE;

    /// `$N` in generated statements, like every other statement.
    const PARAMS: Params = Params::Numbered;

    fn connections(&self) -> &Pool<sqlx::Postgres> {
        &self.pool
    }

    /// Runs on a connection of its own, closed afterwards: sqlx holds a session-level advisory
    /// lock while migrating (so concurrent `migrate()` calls take turns), and a failed
    /// migration must not leave that lock behind on a pooled connection.
    async fn run_migrations(&self) -> Result<(), StoreError> {
        let mut conn = PgConnection::connect_with(&self.pool.connect_options())
            .await
            .db()?;
        // `run_direct` is `run` without the `Acquire` bound, whose higher-ranked lifetime makes
        // the future fail the `Send` check of `async_trait` (sqlx documents it as the way
        // around that error).
        let result = MIGRATOR.run_direct(None, &mut conn, false).await;
        let _ = conn.close().await;
        result.map_err(|e| StoreError::Database(format!("PostgreSQL migration failed: {e}")))
    }

    async fn begin_write(
        &self,
        writes: &[Write],
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
        let mut tx = self.pool.begin().await.db()?;
        if writes.iter().any(|w| matches!(w, Write::InsertAudit(_))) {
            sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind(AUDIT_LOCK.0)
                .bind(AUDIT_LOCK.1)
                .execute(&mut *tx)
                .await
                .db()?;
        }
        Ok(tx)
    }
}
