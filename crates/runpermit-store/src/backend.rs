//! What the shared SQL needs of a backend, and the one transaction that spans aggregates.
//!
//! Every statement is written once with `$N` placeholders, which PostgreSQL and sqlx's SQLite
//! driver both accept, in the `sql.rs` of its aggregate; the code that runs it is generic over
//! [`Backend`], implemented by [`SqliteStore`](crate::SqliteStore) and
//! [`PgStore`](crate::PgStore). What differs between them (connecting, migrating, starting a
//! write transaction, row locks, how long generated statements write their parameters) is the
//! [`Backend`] implementation in `sqlite.rs` and `postgres.rs`.
//!
//! Generic code names what it needs of the database in its `where` clause: an executor for
//! the connection, and each Rust type it binds or reads as a [`Column`].

use std::future::Future;
use std::sync::OnceLock;

use sqlx::{Database, Decode, Encode, Executor, IntoArguments, Pool, Transaction, Type};

use crate::error::DbResult as _;
use crate::write::Aggregate;
use crate::{StoreError, Write, applications, identity, log, ops, runs};

/// A store on one sqlx database: the pool, and what differs between the databases.
pub(crate) trait Backend: Send + Sync + 'static {
    type Db: Database<Arguments: IntoArguments<Self::Db>, QueryResult: Affected>;

    /// How generated statements write their parameters ([`Params`]).
    const PARAMS: Params;

    /// The query that reads the stored log size and holds it until the transaction ends.
    const LOG_SIZE_LOCKED: &'static str;

    /// The query that reads which of a list of runs exist and holds them until the
    /// transaction ends.
    const RUNS_LOCKED: &'static SizedSql;
    /// Reads one access grant's id by id (`$1`), row-locked until commit where the database
    /// needs it (access-usage ingestion).
    const GRANT_LOCKED: &'static str;

    fn connections(&self) -> &Pool<Self::Db>;

    fn run_migrations(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Starts the transaction of a [`crate::Store::commit`] of `writes` (or, with no writes, of
    /// sequencing or ingestion).
    fn begin_write(
        &self,
        writes: &[Write],
    ) -> impl Future<Output = Result<Transaction<'static, Self::Db>, StoreError>> + Send;
}

/// What a statement's result tells: how many rows it changed.
pub(crate) trait Affected {
    fn rows_affected(&self) -> u64;
}

impl Affected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

impl Affected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

/// The sqlx database of backend `B`.
pub(crate) type Db<B> = <B as Backend>::Db;
/// A connection of backend `B`, as a transaction holds it.
pub(crate) type Conn<B> = <Db<B> as Database>::Connection;
/// A row of backend `B`.
pub(crate) type Row<B> = <Db<B> as Database>::Row;

/// A Rust type that database `DB` binds and decodes as one column value.
pub(crate) trait Column<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + Sync
{
}

impl<DB: Database, T> Column<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + Sync
{
}

#[async_trait::async_trait]
impl<B: Backend> crate::Store for B
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
    Vec<u8>: Column<Db<B>>,
    for<'a> &'a str: sqlx::ColumnIndex<Row<B>>,
    usize: sqlx::ColumnIndex<Row<B>>,
{
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        crate::validate::batch(&writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write(&writes).await?;
        let mut rest = &writes[..];
        while !rest.is_empty() {
            // Consecutive queued log entries go in multi-row inserts (a bulk producer may
            // queue thousands in one batch); the rest one by one.
            let queued = rest
                .iter()
                .take_while(|w| matches!(w, Write::QueueLogEntry { .. }))
                .count();
            let (now, later) = rest.split_at(queued.max(1));
            rest = later;
            let applied = match now[0].aggregate() {
                Aggregate::Log => log::sql::queue::<B>(&mut tx, now).await,
                Aggregate::Identity => identity::sql::apply::<B>(&mut tx, &now[0]).await,
                Aggregate::Applications => applications::sql::apply::<B>(&mut tx, &now[0]).await,
                Aggregate::Runs => runs::sql::apply::<B>(&mut tx, &now[0]).await,
                Aggregate::Ops => ops::sql::apply::<B>(&mut tx, &now[0]).await,
            };
            if let Err(e) = applied {
                tracing::debug!(error = %e, "store batch rolled back");
                // Dropping `tx` would also roll back, but lazily; do it now so the connection
                // is clean before it returns to the pool.
                let _ = tx.rollback().await;
                return Err(e);
            }
        }
        tx.commit().await.db()?;
        tracing::debug!(writes = writes.len(), "store batch committed");
        Ok(())
    }
}

/// How a backend's generated statements write their parameters: the fixed statements use `$N`
/// on both backends, but binding a SQLite statement with `n` *named* parameters costs O(n²)
/// (sqlx looks up each parameter's name, and `sqlite3_bind_parameter_name` scans the names
/// linearly): for statements of thousands of parameters SQLite gets plain `?`, bound in
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Params {
    /// `$1`, `$2`, … (PostgreSQL).
    Numbered,
    /// `?`, `?`, … (SQLite).
    Anonymous,
}

/// Writes the parameters of one statement, in binding order.
#[derive(Debug)]
pub(crate) struct Placeholders {
    style: Params,
    count: usize,
}

impl Placeholders {
    pub(crate) fn next(&mut self) -> String {
        self.count += 1;
        match self.style {
            Params::Numbered => format!("${}", self.count),
            Params::Anonymous => "?".to_owned(),
        }
    }

    pub(crate) fn list(&mut self, n: usize) -> String {
        let list: Vec<String> = (0..n).map(|_| self.next()).collect();
        list.join(", ")
    }
}

/// A statement with a list of `rows` rows (or values), for every power of two `rows` up to a
/// maximum and each parameter style, each text built once and then reused: one text per size
/// keeps every statement in the connections' prepared-statement caches, however long the
/// batches are. Split a longer list with [`pieces`] (inserts) or pad it to a power of two by
/// repeating a value (`IN`).
#[derive(Debug)]
pub(crate) struct SizedSql {
    max_rows: usize,
    build: fn(usize, &mut Placeholders) -> String,
    numbered: [OnceLock<String>; 16],
    anonymous: [OnceLock<String>; 16],
}

impl SizedSql {
    pub(crate) const fn new(
        max_rows: usize,
        build: fn(usize, &mut Placeholders) -> String,
    ) -> SizedSql {
        assert!(max_rows.is_power_of_two() && max_rows.trailing_zeros() < 16);
        SizedSql {
            max_rows,
            build,
            numbered: [const { OnceLock::new() }; 16],
            anonymous: [const { OnceLock::new() }; 16],
        }
    }

    /// The most rows one statement takes.
    pub(crate) fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// The statement for `rows` rows (a power of two, at most [`SizedSql::max_rows`]) with
    /// parameters written in `style`.
    pub(crate) fn get(&'static self, rows: usize, style: Params) -> &'static str {
        debug_assert!(
            rows.is_power_of_two() && rows <= self.max_rows,
            "{rows} rows"
        );
        let texts = match style {
            Params::Numbered => &self.numbered,
            Params::Anonymous => &self.anonymous,
        };
        texts[rows.trailing_zeros() as usize]
            .get_or_init(|| (self.build)(rows, &mut Placeholders { style, count: 0 }))
    }
}

/// Splits `n` rows into statement sizes, largest first, each a power of two of at most
/// `max_rows` (itself a power of two): full statements, then the binary digits of the rest.
pub(crate) fn pieces(n: usize, max_rows: usize) -> impl Iterator<Item = usize> {
    let rest = n % max_rows;
    std::iter::repeat_n(max_rows, n / max_rows).chain(
        (0..max_rows.trailing_zeros())
            .rev()
            .map(|bit| 1_usize << bit)
            .filter(move |size| rest & size != 0),
    )
}

/// Values per `IN (…)` list (deleting queue rows, reading hashes, locking runs).
pub(crate) const IN_LIST_ROWS: usize = 1024;

// Every `IN` list stays within SQLite's 32766 parameters.
const _: () = assert!(IN_LIST_ROWS <= 32_766);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_powers_of_two_largest_first() {
        let split = |n| pieces(n, 8).collect::<Vec<_>>();
        assert_eq!(split(0), Vec::<usize>::new());
        assert_eq!(split(1), [1]);
        assert_eq!(split(8), [8]);
        assert_eq!(split(23), [8, 8, 4, 2, 1]);
        assert_eq!(split(16), [8, 8]);
        for n in 0..100 {
            assert_eq!(split(n).iter().sum::<usize>(), n);
        }
    }
}
