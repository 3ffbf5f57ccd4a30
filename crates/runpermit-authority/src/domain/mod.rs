//! The authority's domain layer: what the licensing authority does, without HTTP.
//!
//! Each service module applies the pure rules of `runpermit-policy`, `runpermit-compute` and
//! `runpermit-permit` to stored state in atomic batches through the [`Authority`] it is given
//! (store, clock, policy, keys, log), and fails with a [`DomainError`], which only the HTTP
//! layer (`crate::http`) turns into a status. Nothing here imports `crate::http`; wire shapes
//! and views live with the routes.
//!
//! - [`applications`]: drafts, submission, classification; [`reviews`]: review decisions;
//! - [`permits`]: issuance, the signed permit read back, verifying keys, the status list;
//! - [`runs`]: usage ingestion, run transitions, supervision;
//! - [`log`]: the transparency log (queueing, sequencing, proofs);
//! - [`identity`]: organizations, members and API tokens;
//! - [`incidents`]: incident reports and follow-ups;
//! - [`kyc`]: providers' know-your-customer reports and split-run flags;
//! - [`provider_keys`]: the providers' reporting keys held in memory;
//! - [`limits`]: the rate limits and their buckets;
//! - support: [`audit`], [`caller`], [`clock`], [`ids`], [`error`].

use std::sync::Arc;

use runpermit_permit::SigningKey;
use runpermit_policy::Policy;
use runpermit_store::Store;

pub mod access;
pub mod access_usage;
pub mod applications;
pub mod audit;
pub mod caller;
pub mod clock;
pub mod error;
pub mod identity;
pub mod ids;
pub mod incidents;
pub mod kyc;
pub mod limits;
pub mod log;
pub mod models;
pub mod permits;
pub mod provider_keys;
pub mod reviews;
pub mod runs;
pub mod usage_batch;
pub mod witnessing;

pub use caller::Caller;
pub use error::DomainError;

use clock::Clock;

/// What every domain operation works with: the store, the clock, the policy, the keys, the log
/// and the limits. Cheap to clone (every part is shared).
#[derive(Clone)]
pub struct Authority {
    /// Persistence.
    pub store: Arc<dyn Store>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// The policy in force.
    pub policy: Arc<Policy>,
    /// The permit-signing key (its public half is in the store and the JWKS).
    pub signer: Arc<SigningKey>,
    /// The `iss` of every permit: the authority's public base URL or name.
    pub issuer: String,
    /// The transparency log.
    pub log: Arc<log::LogService>,
    /// The providers' usage-reporting keys, held in memory.
    pub provider_keys: Arc<provider_keys::ProviderKeys>,
    /// The rate limits and their buckets.
    pub limits: Arc<limits::Limits>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("issuer", &self.issuer)
            .field("policy", &self.policy.version)
            .field("kid", &self.signer.kid())
            .finish_non_exhaustive()
    }
}
