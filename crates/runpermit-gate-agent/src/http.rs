//! The HTTP routes: `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /v1/metering`,
//! `POST /v1/decide`, `POST /v1/admission`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use runpermit_gate::{Freshness, JobRequest};
use serde_json::json;

use crate::Agent;
use crate::admission;

/// The largest request body accepted: an AdmissionReview carries a whole object, and
/// Kubernetes objects reach about 1.5 MiB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The gate's HTTP API over `agent`:
///
/// - `GET /healthz`: 200 while the process serves, with the held status list's version and
///   freshness (`{"status":"ok","cluster","status_list":{"version","freshness"}}`, and
///   `"metering":{"pending","dead_letters","last_cycle"}` when the gate meters). It does
///   not fail on a stale list: decisions fail closed for large jobs by themselves, and a
///   failing probe would take the webhook away for every Pod.
/// - `GET /readyz`: 200 `{"status":"ready","cluster","status_list":{"version","freshness"}}`
///   when the configuration is loaded and the gate holds a verified status list that is
///   fresh now; 503 `{"status":"unavailable","reason"}` otherwise (no list yet, or a stale
///   one), saying why. Decisions fail closed for large jobs meanwhile; small jobs are still
///   admitted, so take care before making it a webhook's readiness probe.
/// - `GET /metrics`: Prometheus text (see the `metrics` module: decisions by code, the
///   status list's freshness, version and age, usage reports queued, delivered and
///   dead-lettered, the last delivery and cycle).
/// - `GET /v1/metering`: the metering loop's [`MeteringStatus`](crate::MeteringStatus)
///   (sources, reports pending and dead-lettered, the last cycle and its errors,
///   deliveries, backoff); 404 when the configuration has no `[metering]`.
/// - `POST /v1/decide`: a `JobRequest` JSON body; 200 with the `Decision` JSON (allow or
///   deny is in the body); 400 for a body that is not JSON, 422 naming the field for one
///   that is not a `JobRequest`.
/// - `POST /v1/admission`: an AdmissionReview v1 request; 200 with the AdmissionReview
///   response; 400 for a body that is not one.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/metering", get(metering))
        .route("/v1/decide", post(decide))
        .route("/v1/admission", post(admission))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(agent)
}

/// The held status list's version and freshness, as `/healthz` and `/readyz` show them.
fn status_list(agent: &Agent) -> serde_json::Value {
    let freshness = match agent.status_freshness() {
        Freshness::Fresh => "fresh",
        Freshness::Stale { .. } => "stale",
        Freshness::Missing => "missing",
    };
    json!({"version": agent.status_version(), "freshness": freshness})
}

async fn healthz(State(agent): State<Arc<Agent>>) -> Response {
    let mut body = json!({
        "status": "ok",
        "cluster": agent.cluster(),
        "status_list": status_list(&agent),
    });
    if let Some(m) = agent.metering_status() {
        body["metering"] = json!({
            "pending": m.pending,
            "dead_letters": m.dead_letters,
            "last_cycle": m.last_cycle,
        });
    }
    Json(body).into_response()
}

async fn readyz(State(agent): State<Arc<Agent>>) -> Response {
    match agent.readiness() {
        Ok(()) => Json(json!({
            "status": "ready",
            "cluster": agent.cluster(),
            "status_list": status_list(&agent),
        }))
        .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason})),
        )
            .into_response(),
    }
}

async fn metrics(State(agent): State<Arc<Agent>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        agent.metrics_text(),
    )
        .into_response()
}

async fn metering(State(agent): State<Arc<Agent>>) -> Response {
    match agent.metering_status() {
        Some(status) => Json(status).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this gate does not meter: its configuration has no [metering] table".into(),
            None,
        ),
    }
}

async fn decide(State(agent): State<Arc<Agent>>, body: Bytes) -> Response {
    let de = &mut serde_json::Deserializer::from_slice(&body);
    match serde_path_to_error::deserialize::<_, JobRequest>(de) {
        Ok(job) => Json(agent.decide(&job)).into_response(),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the body is not JSON: {inner}"),
                    None,
                );
            }
            let message = inner.to_string();
            let field = named_field(&path, &message);
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_input",
                format!("{field}: {message}"),
                Some((field, message)),
            )
        }
    }
}

/// The dotted path of the field a deserialization error is about: serde names a missing or
/// unknown field in its message, with the path of the object that holds it.
fn named_field(path: &str, message: &str) -> String {
    let quoted = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.split_once(p))
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name);
    match (path, quoted) {
        (".", Some(name)) => name.to_owned(),
        (_, Some(name)) if !path.ends_with(name) => format!("{path}.{name}"),
        (".", None) => String::new(),
        _ => path.to_owned(),
    }
}

async fn admission(State(agent): State<Arc<Agent>>, body: Bytes) -> Response {
    match admission::review(&agent, &body) {
        Ok(review) => Json(review).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "malformed AdmissionReview");
            error(StatusCode::BAD_REQUEST, "bad_request", e.to_string(), None)
        }
    }
}

/// `{"error", "message", "errors"?: [{"field", "message"}]}`, as the authority answers.
fn error(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<(String, String)>,
) -> Response {
    let mut body = json!({"error": code, "message": message});
    if let Some((field, message)) = field {
        body["errors"] = json!([{"field": field, "message": message}]);
    }
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::named_field;

    #[test]
    fn names_fields() {
        assert_eq!(named_field(".", "missing field `cluster`"), "cluster");
        assert_eq!(
            named_field(".", "unknown field `gpus`, expected one of"),
            "gpus"
        );
        assert_eq!(
            named_field("permit", "missing field `proof_bundle`"),
            "permit.proof_bundle"
        );
        assert_eq!(
            named_field("accelerators", "invalid type: string"),
            "accelerators"
        );
    }
}
