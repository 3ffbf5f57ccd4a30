//! Permits, exemption receipts, the keys that verify them and the signed status list.
//!
//! `ExemptionView` keeps its fields in alphabetical order: the order this body had when the
//! server built it as a JSON map, so its bytes did not change.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::foreign::{PermitClaimsSchema, names, stand_in, text};

stand_in!(
    /// The values of [`PermitView::status`].
    PermitStatus => "PermitStatus",
    names(
        "Where a permit stands: `intent` (decided, not yet signed), `logging` (signed, not yet \
         in the public log) or `issued` (in the log: its token and proof are served).",
        ["intent", "logging", "issued"].map(String::from)
    )
);

/// A permit as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PermitView {
    /// Always `permit`.
    pub kind: String,
    /// Permit id (the JWT `jti`).
    pub id: String,
    /// The application it answers.
    pub application_id: String,
    /// The run it authorizes (the JWT `sub`).
    pub run_id: String,
    /// Holder organization.
    pub org_id: String,
    /// `intent` (decided, not yet signed), `logging` (signed, not yet in the public log) or
    /// `issued` (in the log: `token` and `proof` are served).
    #[schema(value_type = PermitStatus)]
    pub status: String,
    /// The compact JWS, once the permit is in the public log.
    pub token: Option<String>,
    /// Index of the permit's entry in the public log.
    pub log_index: Option<i64>,
    /// A `c2sp.org/tlog-proof@v1` bundle proving the entry (with the token) is in the log.
    pub proof: Option<String>,
    /// Its claims.
    #[schema(value_type = PermitClaimsSchema)]
    pub claims: Value,
    /// Signing key id.
    pub kid: String,
    /// Policy version.
    pub policy_version: String,
    /// RFC 3339.
    pub issued_at: Option<String>,
}

/// An exemption receipt as the API shows it: the signed statement that a run needs no
/// permit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ExemptionView {
    /// The application it answers.
    pub application_id: String,
    /// Receipt id.
    pub id: String,
    /// RFC 3339.
    pub issued_at: String,
    /// Always `exemption`.
    pub kind: String,
    /// The exempt organization.
    pub org_id: String,
    /// Always `issued`.
    pub status: String,
    /// The signed receipt (compact JWS, `typ` `runpermit-exemption+jwt`).
    pub token: String,
}

/// `GET /v1/applications/{id}/permit`: what was issued for an application, told apart by
/// `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum IssuedDocument {
    /// A permit (`kind` `permit`).
    Permit(PermitView),
    /// An exemption receipt (`kind` `exemption`).
    Exemption(ExemptionView),
}

stand_in!(
    /// `GET /v1/status-list`: the signed list, as `application/jwt`.
    StatusListToken => "StatusListToken",
    text(
        "The signed list of permits not in good standing: a compact JWS (`typ` \
         `runpermit-status+jwt`) and a newline."
    )
);
