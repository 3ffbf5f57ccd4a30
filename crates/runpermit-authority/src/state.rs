//! What every handler shares: the store, the clock, the policy, the signing key, the limits.

use std::sync::Arc;

use runpermit_permit::SigningKey;
use runpermit_policy::Policy;
use runpermit_store::Store;

use crate::clock::Clock;

/// Shared state of the authority's handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
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
    pub log: Arc<crate::tlog::LogService>,
    /// The providers' usage-reporting keys, held in memory.
    pub provider_keys: Arc<crate::oversight::ProviderKeys>,
    /// The rate limits and their buckets.
    pub limits: Arc<crate::limits::Limits>,
    /// Renders `/metrics`; absent when the process did not install a recorder.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("issuer", &self.issuer)
            .field("policy", &self.policy.version)
            .field("kid", &self.signer.kid())
            .finish_non_exhaustive()
    }
}
