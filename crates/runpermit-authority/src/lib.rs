//! The licensing authority's service: `runpermit serve`.
//!
//! Three layers, each importing only those below it:
//!
//! - [`http`]: routes, authentication, the endpoint table, idempotency, edge rate limits, and
//!   the one place where errors become responses;
//! - [`domain`]: what the authority does — applications, permits, runs (ingestion,
//!   transitions, supervision), the log, provider keys, limits — over an [`Authority`] (store,
//!   clock, policy, keys), failing with a [`DomainError`], never with an HTTP status;
//! - [`setup`]: the data directory, database, keys and deployment record before serving.
//!
//! [`server`] wires them together: [`server::start`] binds, prepares and spawns the
//! background tasks; [`server::run`] serves until shutdown.

pub mod domain;
pub mod http;
pub mod server;
pub mod setup;
#[doc(hidden)]
pub mod testing;

pub use domain::{Authority, DomainError};
pub use http::openapi::openapi_document;
pub use http::state::AppState;
pub use http::{MAX_BODY_BYTES, router, serve};
