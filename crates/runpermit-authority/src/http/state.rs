//! What every handler shares: the domain's [`Authority`] and the process's metrics; what the
//! edge middleware leaves in a request for handlers ([`ClientAddress`]).

use std::ops::Deref;

use crate::domain::Authority;

/// Shared state of the authority's handlers; cheap to clone. Dereferences to the
/// [`Authority`], so a handler passes `&state` to a domain service.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The domain: store, clock, policy, keys, log, limits.
    pub authority: Authority,
    /// Renders `/metrics`; absent when the process did not install a recorder.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Deref for AppState {
    type Target = Authority;

    fn deref(&self) -> &Authority {
        &self.authority
    }
}

/// The request's source address as the limits count it (`domain::limits::address`), left in
/// the request's extensions by the limits middleware for handlers that charge more than the
/// request itself (`POST /v1/usage` charges per report).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub Option<String>);
