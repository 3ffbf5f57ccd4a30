//! The witness's durable state: one SQLite file, one row per log with the latest checkpoint
//! it cosigned (origin, size, root, the note with the log's signature and the witness's
//! cosignature, when).
//!
//! WAL mode with `synchronous=FULL`: a commit is on disk when it returns. The
//! check-and-update of one submission ([`Store::update`]) is one `BEGIN IMMEDIATE`
//! transaction, which holds SQLite's write lock from its first read to its commit, so two
//! submissions — in this process or in another one sharing the file — are serialized: the
//! second sees what the first wrote, and a witness can neither roll a log back nor cosign
//! two inconsistent checkpoints. In one process, a mutex queues writers before SQLite's
//! lock so they wait in order instead of in the busy handler's sleeps.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use runpermit_log::Hash;
use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::decide::LogState;

/// How long a writer waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1; // also written literally in `open`

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS witness_log (
    origin TEXT PRIMARY KEY NOT NULL,
    size INTEGER NOT NULL CHECK (size >= 0),
    root BLOB NOT NULL CHECK (length(root) = 32),
    note TEXT NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT";

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("witness database: {0}")]
pub struct StoreError(String);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        StoreError(e.to_string())
    }
}

/// The latest cosigned checkpoint of one log, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLog {
    /// The log's origin.
    pub origin: String,
    /// Its size and root.
    pub state: LogState,
    /// The checkpoint note: the log's signature lines and the witness's cosignature.
    pub note: String,
    /// When it was cosigned, unix seconds.
    pub updated_at: u64,
}

/// What [`Store::update`]'s decision wants written.
#[derive(Clone, Debug)]
pub struct NewState {
    /// The new size and root.
    pub state: LogState,
    /// The cosigned note to keep and serve.
    pub note: String,
    /// Unix seconds.
    pub updated_at: u64,
}

/// The witness's SQLite database.
#[derive(Debug)]
pub struct Store {
    pool: SqlitePool,
    writer: tokio::sync::Mutex<()>,
}

impl Store {
    /// Opens (creating when missing, with its folder) the database file at `path`.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError(format!(
                    "cannot create the folder {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError(format!("opening {}: {e}", path.display())))?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *tx)
            .await?;
        if version > SCHEMA_VERSION {
            return Err(StoreError(format!(
                "{} has schema version {version}; this witness knows version {SCHEMA_VERSION} \
                 (a newer runpermit wrote it)",
                path.display()
            )));
        }
        sqlx::query(SCHEMA).execute(&mut *tx).await?;
        sqlx::query("PRAGMA user_version = 1")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Store {
            pool,
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// The stored checkpoint of `origin`, if the witness ever cosigned one.
    pub async fn get(&self, origin: &str) -> Result<Option<StoredLog>, StoreError> {
        let row = sqlx::query(
            "SELECT origin, size, root, note, updated_at FROM witness_log WHERE origin = ?",
        )
        .bind(origin)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| stored_log(&r)).transpose()
    }

    /// Every stored log, by origin.
    pub async fn all(&self) -> Result<Vec<StoredLog>, StoreError> {
        let rows = sqlx::query(
            "SELECT origin, size, root, note, updated_at FROM witness_log ORDER BY origin",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_log).collect()
    }

    /// The atomic check-and-update: reads `origin`'s state, hands it to `decide` and, when
    /// `decide` returns a new state, writes it and commits — all under the write lock.
    /// Returns `Ok(Ok(t))` only after the commit returned (the state is on disk);
    /// `Ok(Err(refusal))` writes nothing.
    pub async fn update<T, E>(
        &self,
        origin: &str,
        decide: impl FnOnce(Option<&LogState>) -> Result<(NewState, T), E>,
    ) -> Result<Result<T, E>, StoreError> {
        let _queued = self.writer.lock().await;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query("SELECT size, root FROM witness_log WHERE origin = ?")
            .bind(origin)
            .fetch_optional(&mut *tx)
            .await?;
        let current = row.map(|r| log_state(&r)).transpose()?;
        let (new, out) = match decide(current.as_ref()) {
            Ok(decided) => decided,
            Err(refusal) => {
                tx.rollback().await?;
                return Ok(Err(refusal));
            }
        };
        let size = i64::try_from(new.state.size)
            .map_err(|_| StoreError(format!("size {} does not fit", new.state.size)))?;
        let updated_at = i64::try_from(new.updated_at)
            .map_err(|_| StoreError(format!("time {} does not fit", new.updated_at)))?;
        sqlx::query(
            "INSERT INTO witness_log (origin, size, root, note, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root,
                 note = excluded.note, updated_at = excluded.updated_at",
        )
        .bind(origin)
        .bind(size)
        .bind(new.state.root.as_bytes().as_slice())
        .bind(&new.note)
        .bind(updated_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(out))
    }

    /// Closes the connections (the WAL is checkpointed by the last one).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn log_state(row: &sqlx::sqlite::SqliteRow) -> Result<LogState, StoreError> {
    let size: i64 = row.try_get("size")?;
    let root: Vec<u8> = row.try_get("root")?;
    Ok(LogState {
        size: u64::try_from(size).map_err(|_| StoreError(format!("negative size {size}")))?,
        root: Hash(
            root.try_into()
                .map_err(|_| StoreError("a stored root is not 32 bytes".into()))?,
        ),
    })
}

fn stored_log(row: &sqlx::sqlite::SqliteRow) -> Result<StoredLog, StoreError> {
    let updated_at: i64 = row.try_get("updated_at")?;
    Ok(StoredLog {
        origin: row.try_get("origin")?,
        state: log_state(row)?,
        note: row.try_get("note")?,
        updated_at: u64::try_from(updated_at).unwrap_or(0),
    })
}
