//! Operations: health and readiness, metrics, the audit trail, and the OpenAPI document.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::foreign::{stand_in, text};

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The authority's version.
    pub version: String,
}

/// `GET /readyz`: 200 when the database answers, 503 otherwise. Fields in alphabetical order,
/// as the body was first written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// Why not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `ready` or `unavailable`.
    pub status: String,
}

stand_in!(
    /// `GET /metrics`.
    Metrics => "Metrics",
    text("Prometheus metrics in the text exposition format (version 0.0.4).")
);

stand_in!(
    /// `GET /v1/openapi.json`.
    OpenApiDocument => "OpenApiDocument",
    crate::foreign::document("This document: OpenAPI 3.1.")
);

/// `GET /v1/audit` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events about this subject (`application/app_…`).
    pub subject: Option<String>,
    /// Only events after this sequence number.
    #[serde(default)]
    pub after: i64,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditView {
    /// Sequence number: strictly increasing.
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    /// Acting member; none for the authority's own automatic decisions.
    pub actor_member_id: Option<String>,
    /// Acting organization.
    pub actor_org_id: Option<String>,
    /// What happened (`application.submit`).
    pub action: String,
    /// What it happened to.
    pub subject: String,
    /// Why.
    pub reason: Option<String>,
    /// Details.
    pub details: Value,
}
