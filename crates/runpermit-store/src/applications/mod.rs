//! Applications: what labs apply for and what the authority decides: applications, reviews,
//! permits (intents, then signed) and exemption receipts, and the plans permits claim.

mod records;
pub(crate) mod sql;

use crate::StoreError;
#[cfg(doc)]
use crate::Write;
pub use records::{Application, Permit, REVIEW_DECISIONS, Receipt, Review};

/// Applications and their decisions. Times are unix milliseconds.
#[async_trait::async_trait]
pub trait ApplicationStore: Send + Sync + 'static {
    async fn application(&self, id: &str) -> Result<Option<Application>, StoreError>;

    /// Applications, of one organization or all, newest first (`created_at`, then id,
    /// descending).
    async fn applications(&self, org_id: Option<&str>) -> Result<Vec<Application>, StoreError>;

    /// An application's reviews, oldest first (`created_at`, then id).
    async fn reviews(&self, application_id: &str) -> Result<Vec<Review>, StoreError>;

    async fn permit(&self, id: &str) -> Result<Option<Permit>, StoreError>;

    /// An application's permits, oldest first (`created_at`, then id).
    async fn permits_for_application(
        &self,
        application_id: &str,
    ) -> Result<Vec<Permit>, StoreError>;

    /// Permits decided but not yet signed (status `intent`), oldest first: what a crash
    /// between committing a decision and recording its signed token leaves behind.
    async fn pending_permits(&self) -> Result<Vec<Permit>, StoreError>;

    /// An application's exemption receipt (there is at most one).
    async fn receipt_for_application(
        &self,
        application_id: &str,
    ) -> Result<Option<Receipt>, StoreError>;

    /// The permit that last claimed the plan with this digest ([`Write::ClaimPlan`]).
    async fn plan_permit(&self, plan_digest: &str) -> Result<Option<String>, StoreError>;
}
