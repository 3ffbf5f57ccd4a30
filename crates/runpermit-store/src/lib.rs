//! The authority's persistence: organizations, members, API tokens, applications, reviews,
//! permits, exemption receipts, signing public keys, the deployment's log key, idempotency
//! records and an append-only audit trail.
//!
//! One trait, [`Store`], with two implementations: [`SqliteStore`] (embedded, the default) and
//! [`PgStore`] (production; several authority processes may share one database). [`open`]
//! picks one from a URL. [`Store`] is the union of one trait per aggregate, each with its
//! records and SQL in a module of its own: [`IdentityStore`] (organizations, members, tokens,
//! signing and reporting keys), [`ApplicationStore`] (applications, reviews, permits,
//! receipts, plan claims), [`LogStore`] (the transparency log), [`RunStore`] (runs, usage,
//! milestones, incidents, KYC) and [`OpsStore`] (schema, health, the deployment's identity,
//! audit trail, idempotency). Through `dyn Store` every method is callable as is; on a
//! concrete store, `use runpermit_store::prelude::*`.
//!
//! Every state change is one [`Store::commit`] of a batch of [`Write`]s, which should include
//! its audit events: the batch is one transaction, applied in order, all or nothing, whichever
//! aggregates it touches. Applications carry a `version`; [`Write::UpdateApplication`]
//! succeeds only against the version the caller read, so concurrent updates never silently
//! overwrite each other.
//!
//! The public transparency log is stored here too: [`Write::QueueLogEntry`] queues an entry in
//! the batch of the state change it records, and the one sequencer (elected with
//! [`LogStore::take_log_lease`]) moves queued entries into the log with
//! [`LogStore::sequence_log`], one transaction that also stores the new tree hashes and state
//! and refuses to extend any size but the stored one.
//!
//! Permitted runs are followed here as well: [`Run`]s (their state guarded by a `version`
//! like applications), providers' signed usage reports ([`RunStore::ingest_usage`], which
//! keeps each run's cumulative FLOP), milestones, incidents, provider keys and KYC reports.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runpermit_store::StoreError> {
//! let store = runpermit_store::open("sqlite://data/runpermit.db").await?;
//! store.migrate().await?;
//! if store.organization_count().await? == 0 {
//!     // first start: bootstrap the authority organization and its admin
//! }
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

mod applications;
mod backend;
mod error;
mod identity;
mod log;
mod ops;
mod postgres;
mod runs;
mod sqlite;
mod validate;
mod write;

pub use applications::{Application, ApplicationStore, Permit, REVIEW_DECISIONS, Receipt, Review};
pub use error::StoreError;
pub use identity::{
    IdentityStore, Member, Organization, Principal, ProviderKey, Session, SigningKey, Token,
};
pub use log::{
    Cosignature, LogBatch, LogFilter, LogRow, LogState, LogStore, MAX_LOG_ENTRY_BYTES,
    QueuedLogEntry, RegistryFilter, RegistryPage, RegistryRow, SequencedEntry,
};
pub use ops::{AuditEvent, Deployment, Idempotency, OpsStore};
pub use postgres::PgStore;
pub use runs::{
    AccessRequest, AccessUsageRecord, Grant, Incident, Ingested, KycReport, KycTotal, Milestone,
    Model, ProviderUsage, Run, RunFlag, RunStore, UsageRecord,
};
pub use sqlite::SqliteStore;
pub use write::Write;

/// The store's traits, for callers that call its methods on a concrete store or through a
/// generic parameter: `use runpermit_store::prelude::*;`. (Through `dyn Store`, every method
/// is callable without them.)
pub mod prelude {
    pub use crate::{ApplicationStore, IdentityStore, LogStore, OpsStore, RunStore, Store};
}

/// The authority's storage: the union of the aggregates' traits, and [`Store::commit`], the
/// one transaction that spans them. Times are unix milliseconds.
///
/// Implemented by [`SqliteStore`] and [`PgStore`]; callers hold an `Arc<dyn Store>`.
#[async_trait::async_trait]
pub trait Store: IdentityStore + ApplicationStore + LogStore + RunStore + OpsStore {
    /// Applies `writes` in order in one transaction: all of them or, on any error, none.
    /// The batch is validated first (`Invalid` lists every problem). An empty batch is a no-op.
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;
}

/// The store URL forms [`open`] accepts, for messages and `--help` text.
pub const ACCEPTED_URLS: &str = "sqlite://PATH, sqlite::memory: or postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE \
     (postgresql:// also works)";

/// Opens the store named by `url` (see [`ACCEPTED_URLS`]): [`SqliteStore::connect`] for
/// `sqlite:` URLs, [`PgStore::connect`] for `postgres://` and `postgresql://`. Does not
/// migrate: call [`OpsStore::migrate`] next.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        // Name only the scheme: the rest of a URL may hold a password.
        let scheme = url.split_once(':').map_or("none", |(scheme, _)| scheme);
        Err(StoreError::Invalid(format!(
            "store URL: must be {ACCEPTED_URLS} (got a URL with scheme {scheme:?})"
        )))
    }
}
