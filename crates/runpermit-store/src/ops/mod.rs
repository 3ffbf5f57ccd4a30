//! The deployment's own records: its schema and health, its identity (the log key recorded at
//! the first start), the append-only audit trail and the idempotency records of requests.

mod records;
pub(crate) mod sql;

use crate::StoreError;
#[cfg(doc)]
use crate::Write;
pub use records::{AuditEvent, Deployment, Idempotency};

/// Operating the deployment: schema, health, identity, audit trail and idempotency. Times are
/// unix milliseconds.
#[async_trait::async_trait]
pub trait OpsStore: Send + Sync + 'static {
    /// Creates or upgrades the schema. Idempotent; on PostgreSQL, concurrent calls from
    /// several processes take turns (sqlx holds an advisory lock while migrating).
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Checks that the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// The deployment's identity ([`Write::InsertDeployment`]); `None` until the first start
    /// records it.
    async fn deployment(&self) -> Result<Option<Deployment>, StoreError>;

    /// Up to `limit` (at least 1) audit events with `seq > after_seq`, of one subject or all,
    /// in `seq` order. Page by passing the last `seq` seen as the next `after_seq`; start
    /// with 0.
    async fn audit(
        &self,
        subject: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// The record of `key` for `principal_id`: a reservation (the request is in progress, or
    /// was abandoned) or a stored answer.
    async fn idempotency(
        &self,
        principal_id: &str,
        key: &str,
    ) -> Result<Option<Idempotency>, StoreError>;
}
