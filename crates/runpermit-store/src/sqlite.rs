//! The SQLite backend: the embedded default, one file (or memory) per authority.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Pool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::backend::{Backend, Params, SizedSql};
use crate::error::DbResult as _;
use crate::{StoreError, Write};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a writer waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Extra tries of a migration that failed, perhaps because another process migrated the
/// same file at the same moment.
const MIGRATE_ATTEMPTS: u32 = 5;

/// Connections of a file-backed store: WAL lets readers run beside the one writer.
const MAX_CONNECTIONS: u32 = 8;

/// A [`Store`](crate::Store) on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens `sqlite://PATH` (also `sqlite:PATH`), creating the file and its parent
    /// directories when missing, in WAL mode with foreign keys on, a busy timeout and full
    /// fsync on commit; or `sqlite::memory:`, a private in-memory database held by a single
    /// connection that lives as long as the store. Does not migrate.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url).map_err(|e| {
            StoreError::Invalid(format!(
                "store URL: not a SQLite URL such as sqlite://PATH or sqlite::memory: ({e})"
            ))
        })?;
        let options = options
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        let pool = if is_memory(url) {
            // Every connection to `:memory:` would be its own database, and the database
            // disappears with its last connection: exactly one, never recycled.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .db()?
        } else {
            let path = options.get_filename();
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Database(format!(
                        "cannot create the directory {} for the SQLite database: {e}",
                        parent.display()
                    ))
                })?;
            }
            let options = options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal);
            SqlitePoolOptions::new()
                .max_connections(MAX_CONNECTIONS)
                .connect_with(options)
                .await
                .db()?
        };
        Ok(SqliteStore { pool })
    }

    /// The connection pool, for what the [`Store`](crate::Store) traits do not cover
    /// (tests, maintenance).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl Backend for SqliteStore {
    type Db = sqlx::Sqlite;

    /// `BEGIN IMMEDIATE` (see [`Backend::begin_write`]) already holds the write lock.
    const LOG_SIZE_LOCKED: &'static str = crate::log::sql::LOG_SIZE;

    /// `BEGIN IMMEDIATE` already serializes ingestion batches: the runs need no row lock.
    const RUNS_LOCKED: &'static SizedSql = &crate::runs::usage::RUNS_IN;
    const GRANT_LOCKED: &'static str = crate::runs::access_usage::GRANT_EXISTS;

    /// Plain `?` in long generated statements: binding named ones is quadratic on SQLite.
    const PARAMS: Params = Params::Anonymous;

    fn connections(&self) -> &Pool<sqlx::Sqlite> {
        &self.pool
    }

    /// sqlx takes no lock while migrating SQLite (it does on PostgreSQL), so two processes
    /// starting at once on a new file collide ("table … already exists", or a busy
    /// snapshot). Each migration is one transaction, so the loser's rolls back whole; running
    /// again finds the winner's work recorded and applies only what is left.
    async fn run_migrations(&self) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < MIGRATE_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "SQLite migration collided; again");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                }
                Err(e) => {
                    return Err(StoreError::Database(format!(
                        "SQLite migration failed: {e}"
                    )));
                }
            }
        }
    }

    /// `BEGIN IMMEDIATE` takes the write lock up front (waiting up to the busy timeout), so a
    /// batch never fails halfway on a lock upgrade when another process writes.
    async fn begin_write(
        &self,
        _writes: &[Write],
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool.begin_with("BEGIN IMMEDIATE").await.db()
    }
}

/// Whether a SQLite URL names an in-memory database, as sqlx parses it: `sqlite::memory:`,
/// `sqlite://:memory:` or `mode=memory`.
fn is_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

#[cfg(test)]
mod tests {
    use super::is_memory;

    #[test]
    fn recognises_in_memory_urls() {
        assert!(is_memory("sqlite::memory:"));
        assert!(is_memory("sqlite://:memory:"));
        assert!(is_memory("sqlite://x.db?mode=memory"));
        assert!(!is_memory("sqlite://data/runpermit.db"));
        assert!(!is_memory("sqlite:///var/lib/runpermit/memory.db"));
    }
}
