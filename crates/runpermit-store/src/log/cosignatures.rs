//! Checkpoints by size and the witnesses' cosignatures on them (issue 16's witnessed log):
//! the SQL behind [`LogStore::log_checkpoint`], [`LogStore::record_cosignature`] and the
//! reads of what was cosigned (their bodies are in the `LogStore` impl, `sql.rs`).
//!
//! [`LogStore::log_checkpoint`]: crate::LogStore::log_checkpoint
//! [`LogStore::record_cosignature`]: crate::LogStore::record_cosignature

use sqlx::{Encode, Executor, Type};

use crate::StoreError;
use crate::backend::{Backend, Column, Conn, Db, Row};
use crate::error::DbResult as _;

/// Stores the checkpoint of a sequencing round by its size; a re-signed checkpoint of a size
/// already stored is the same note (Ed25519 signatures are deterministic) and is kept.
pub(crate) const PUT_LOG_CHECKPOINT: &str = "INSERT INTO log_checkpoints \
     (size, checkpoint, created_at) VALUES ($1, $2, $3) ON CONFLICT (size) DO NOTHING";
pub(super) const LOG_CHECKPOINT: &str = "SELECT checkpoint FROM log_checkpoints WHERE size = $1";
pub(super) const HAS_CHECKPOINT: &str = "SELECT COUNT(*) FROM log_checkpoints WHERE size = $1";
pub(super) const PUT_COSIGNATURE: &str = "INSERT INTO log_cosignatures \
     (witness, size, signature, cosigned_at) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (witness, size) DO UPDATE SET signature = excluded.signature, \
     cosigned_at = excluded.cosigned_at";
pub(super) const COSIGNATURES: &str = "SELECT witness, size, signature, cosigned_at FROM log_cosignatures \
     WHERE size = $1 ORDER BY witness";
pub(super) const PROGRESS: &str = "SELECT c.witness, c.size, c.signature, c.cosigned_at \
     FROM log_cosignatures c JOIN (SELECT witness, MAX(size) AS size FROM log_cosignatures \
     GROUP BY witness) m ON c.witness = m.witness AND c.size = m.size ORDER BY c.witness";
pub(super) const SIZES: &str =
    "SELECT DISTINCT size FROM log_cosignatures ORDER BY size DESC LIMIT $1";

/// Stores the checkpoint of `size` inside a sequencing transaction.
pub(crate) async fn put_checkpoint<B: Backend>(
    conn: &mut Conn<B>,
    size: i64,
    checkpoint: &str,
    at: i64,
) -> Result<(), StoreError>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = Db<B>>,
    for<'q> &'q str: Encode<'q, Db<B>> + Type<Db<B>>,
    String: Column<Db<B>>,
    i64: Column<Db<B>>,
    Option<i64>: Column<Db<B>>,
    Vec<u8>: Column<Db<B>>,
    Option<String>: Column<Db<B>>,
    f64: Column<Db<B>>,
    bool: Column<Db<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    sqlx::query(PUT_LOG_CHECKPOINT)
        .bind(size)
        .bind(checkpoint)
        .bind(at)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}
