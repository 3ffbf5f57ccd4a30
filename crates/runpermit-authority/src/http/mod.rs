//! The HTTP layer: routes, authentication and the endpoint table, idempotency keys, rate
//! limits at the edge, and the one mapping from errors to responses ([`error`]).
//!
//! Handlers are thin: they authenticate ([`auth`]), authorize against the endpoint table
//! ([`authz`]), read the request into the domain's types, call a domain service
//! (`crate::domain`) and render its answer or error. Views and wire shapes live here, with the
//! routes.

pub mod auth;
pub mod authz;
pub mod console;
pub mod error;
pub mod idempotency;
pub mod limits;
pub mod openapi;
pub mod routes;
pub mod state;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::http::state::AppState;

/// Largest request body accepted, in bytes: a run plan is a few kilobytes.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The authority's routes over `state`.
pub fn router(state: AppState) -> Router {
    use routes::{
        access, applications, estimate, identity, incidents, log, models, ops, permits, reviews,
        runs, usage,
    };
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/v1/openapi.json", get(ops::openapi))
        .route("/.well-known/jwks.json", get(permits::jwks))
        .route("/v1/status-list", get(permits::status_list))
        .route("/v1/estimate", post(estimate::create))
        .route("/log/checkpoint", get(log::checkpoint))
        .route("/log/vkey", get(log::vkey))
        .route("/log/tile/{*path}", get(log::tile))
        .route("/v1/log/proofs/{index}", get(log::proof))
        .route("/v1/policy", get(ops::policy))
        .route("/v1/whoami", get(identity::whoami))
        .route(
            "/v1/orgs",
            post(identity::create_org).get(identity::list_orgs),
        )
        .route("/v1/orgs/{id}", get(identity::get_org))
        .route(
            "/v1/orgs/{id}/members",
            post(identity::create_member).get(identity::list_members),
        )
        .route(
            "/v1/members/{id}/tokens",
            post(identity::create_token).get(identity::list_tokens),
        )
        .route("/v1/tokens/{id}/revoke", post(identity::revoke_token))
        .route(
            "/v1/applications",
            post(applications::create).get(applications::list),
        )
        .route(
            "/v1/applications/{id}",
            get(applications::get).put(applications::update),
        )
        .route("/v1/applications/{id}/submit", post(applications::submit))
        .route(
            "/v1/applications/{id}/withdraw",
            post(applications::withdraw),
        )
        .route("/v1/applications/{id}/appeal", post(applications::appeal))
        .route(
            "/v1/applications/{id}/reviews",
            post(reviews::create).get(reviews::list),
        )
        .route(
            "/v1/applications/{id}/permit",
            get(permits::for_application),
        )
        .route("/v1/permits/{id}", get(permits::get))
        .route(
            "/v1/usage",
            post(usage::ingest).layer(axum::extract::DefaultBodyLimit::max(
                usage::MAX_USAGE_BODY_BYTES,
            )),
        )
        .route(
            "/v1/orgs/{id}/reporting-keys",
            post(usage::create_reporting_key).get(usage::list_reporting_keys),
        )
        .route(
            "/v1/reporting-keys/{kid}/revoke",
            post(usage::revoke_reporting_key),
        )
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/usage", get(runs::usage))
        .route("/v1/runs/{id}/pause", post(runs::pause))
        .route("/v1/runs/{id}/resume", post(runs::resume))
        .route("/v1/runs/{id}/suspend", post(runs::suspend))
        .route("/v1/runs/{id}/revoke", post(runs::revoke))
        .route("/v1/runs/{id}/terminate", post(runs::terminate))
        .route("/v1/runs/{id}/complete", post(runs::complete))
        .route("/v1/runs/{id}/appeal", post(runs::appeal))
        .route(
            "/v1/runs/{id}/milestones",
            post(runs::create_milestone)
                .layer(axum::extract::DefaultBodyLimit::max(
                    runs::MAX_MILESTONE_BODY_BYTES,
                ))
                .get(runs::list_milestones),
        )
        .route("/v1/milestones/{id}/accept", post(runs::accept_milestone))
        .route("/v1/milestones/{id}/reject", post(runs::reject_milestone))
        .route(
            "/v1/incidents",
            post(incidents::create).get(incidents::list),
        )
        .route("/v1/incidents/{id}/follow-up", post(incidents::follow_up))
        .route(
            "/v1/access-requests",
            post(access::apply).get(access::list_requests),
        )
        .route("/v1/access-requests/{id}", get(access::get_request))
        .route("/v1/access-requests/{id}/consent", post(access::consent))
        .route("/v1/access-requests/{id}/review", post(access::review))
        .route(
            "/v1/access-usage",
            post(access::ingest_usage).layer(axum::extract::DefaultBodyLimit::max(
                usage::MAX_USAGE_BODY_BYTES,
            )),
        )
        .route("/v1/grants", get(access::list_grants))
        .route("/v1/grants/{id}", get(access::get_grant))
        .route("/v1/grants/{id}/suspend", post(access::suspend))
        .route("/v1/grants/{id}/reinstate", post(access::reinstate))
        .route("/v1/grants/{id}/revoke", post(access::revoke))
        .route("/v1/models", post(models::create).get(models::list))
        .route("/v1/models/{id}", get(models::get))
        .route("/v1/kyc-reports", post(usage::create_kyc))
        .route("/v1/kyc/flags", get(usage::kyc_flags))
        .route("/v1/audit", get(ops::audit))
        .merge(console::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), limits::layer))
        .layer(middleware::from_fn(record_metrics))
        .with_state(state)
}

/// The header that names a request in the logs: taken from the client (or a proxy) when it
/// is a short token, else made here, and returned on the response.
pub const REQUEST_ID: &str = "x-request-id";

/// The request id the client sent, when it is 1–64 characters of `[A-Za-z0-9._-]` (anything
/// else could forge log lines or fill them).
fn client_request_id(request: &Request) -> Option<String> {
    let id = request.headers().get(REQUEST_ID)?.to_str().ok()?;
    let sound = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    sound.then(|| id.to_owned())
}

/// Names each request (`x-request-id`), logs one line per request with its route, status and
/// duration in milliseconds (to the microsecond) inside a span that carries the id, so that any
/// error a handler logs names its request, and counts requests and their latency by route and
/// status (Prometheus names `runpermit_http_requests_total` and
/// `runpermit_http_request_duration_seconds`).
async fn record_metrics(request: Request, next: Next) -> Response {
    use tracing::Instrument as _;
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let id = client_request_id(&request).unwrap_or_else(|| crate::domain::ids::new_id("req"));
    let span = tracing::info_span!("request", id = %id);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route = %route,
            status = response.status().as_u16(),
            ms = %format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0),
            "request"
        );
    });
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("runpermit_http_requests_total", &labels).increment(1);
    metrics::histogram!("runpermit_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
    response
}

/// Serves [`router`] on `listener` until `shutdown` completes. Each request carries its
/// peer's address (`ConnectInfo`), which the per-address limits count.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> Request {
        Request::builder()
            .uri("/healthz")
            .header(REQUEST_ID, id)
            .body(axum::body::Body::empty())
            .expect("a request")
    }

    #[test]
    fn a_client_request_id_is_kept_only_when_it_is_a_short_token() {
        assert_eq!(
            client_request_id(&with_id("trace-42.a_b")).as_deref(),
            Some("trace-42.a_b")
        );
        for bad in ["", "two words", "a=b;c", &"x".repeat(65)] {
            assert_eq!(client_request_id(&with_id(bad)), None, "{bad:?}");
        }
    }
}
