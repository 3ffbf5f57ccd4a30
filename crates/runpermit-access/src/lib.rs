//! The structured-access enforcement point.
//!
//! - [`check`]: the admission decision for one request under an access grant, pure (no IO,
//!   no clock), in a fixed order (see the module); [`AccessDecision`] and its [`Code`].
//! - [`GatewayConfig`]: the gateway's configuration file.
//! - [`Ledger`]: per-grant counters (requests, tokens, rate state) and the signed
//!   access-usage reports waiting to be shipped, persisted by atomic file replacement.
//! - [`gateway`]: `runpermit access gateway`, an axum reverse proxy in front of an
//!   OpenAI-compatible upstream, with the status-list poller and the report shipper.

mod check;
mod config;
mod decision;
pub mod gateway;
mod ledger;

pub use check::{AccessRequest, Anchors, GrantUsage, check, gcra};
pub use config::{ConfigError, GatewayConfig, Served};
pub use decision::{AccessDecision, Code};
pub use ledger::{DeadLetter, Ledger, LedgerError, PendingReport};
