//! The licensing authority's HTTP service: `runpermit serve`.
//!
//! So far it serves its health endpoint and the compute estimator; applications, review,
//! permits and the transparency log come next (see ARCHITECTURE.md).
//!
//! Handlers are thin: they parse, call a pure core, and hand the result or error to
//! [`error`], the one module that turns errors into HTTP responses.

pub mod error;
mod estimate;
mod health;

use axum::Router;
use axum::routing::{get, post};

/// Largest request body accepted, in bytes. Estimate inputs are a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The authority's routes.
pub fn router() -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/v1/estimate", post(estimate::create))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router())
        .with_graceful_shutdown(shutdown)
        .await
}
