//! Permits, exemption receipts and the public keys that verify them.

use axum::Json;
use axum::extract::{Path, State};
use runpermit_permit::{Jwks, PublicKey};
use runpermit_store::Permit;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::rfc3339;
use crate::auth::Caller;
use crate::authz::{self, OrgKind};
use crate::error::ApiError;
use crate::routes::applications::visible;
use crate::state::AppState;
use crate::tlog;

/// A permit as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
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
    pub status: String,
    /// The compact JWS, once the permit is in the public log.
    pub token: Option<String>,
    /// Index of the permit's entry in the public log.
    pub log_index: Option<i64>,
    /// A `c2sp.org/tlog-proof@v1` bundle proving the entry (with the token) is in the log.
    pub proof: Option<String>,
    /// Its claims.
    pub claims: Value,
    /// Signing key id.
    pub kid: String,
    /// Policy version.
    pub policy_version: String,
    /// RFC 3339.
    pub issued_at: Option<String>,
}

/// The API view of `p`: the token and its proof only once the permit is in the public log.
pub async fn permit_view(state: &AppState, p: Permit) -> Result<PermitView, ApiError> {
    let claims = serde_json::from_str(&p.claims_json)
        .map_err(|e| ApiError::Internal(format!("stored claims: {e}")))?;
    let log_index = if p.status == "issued" {
        state.store.log_index(&format!("permit/{}", p.id)).await?
    } else {
        None
    };
    let (status, token, proof) = match log_index {
        Some(index) => (
            "issued".to_owned(),
            p.token,
            Some(tlog::proof_bundle(state, index).await?.to_string()),
        ),
        None if p.status == "issued" => ("logging".to_owned(), None, None),
        None => (p.status, None, None),
    };
    Ok(PermitView {
        kind: "permit".into(),
        claims,
        id: p.id,
        application_id: p.application_id,
        run_id: p.run_id,
        org_id: p.org_id,
        status,
        token,
        log_index,
        proof,
        kid: p.kid,
        policy_version: p.policy_version,
        issued_at: p.issued_at.map(rfc3339),
    })
}

/// Whether `caller` may read permit `p`: its holder, the authority's staff, and the
/// operators of providers the *signed* permit names (through its run, which exists once the
/// permit is signed), never those a copy of its claims in the database names.
async fn may_read(state: &AppState, caller: &Caller, p: &Permit) -> Result<bool, ApiError> {
    if caller.sees_org(&p.org_id) {
        return Ok(true);
    }
    if caller.org_kind != OrgKind::Provider {
        return Ok(false);
    }
    match state.store.run(&p.run_id).await? {
        Some(run) if run.permit_id == p.id => {
            crate::routes::runs::sees_run(state, caller, &run).await
        }
        _ => Ok(false),
    }
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PermitView>, ApiError> {
    authz::PERMITS_GET.authorize(&caller)?;
    let not_found = || ApiError::NotFound(format!("no permit {id}"));
    let permit = state.store.permit(&id).await?.ok_or_else(not_found)?;
    if !may_read(&state, &caller, &permit).await? {
        return Err(not_found());
    }
    Ok(Json(permit_view(&state, permit).await?))
}

pub(crate) async fn for_application(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authz::APPLICATION_PERMIT.authorize(&caller)?;
    let app = visible(&state, &caller, &id).await?;
    if let Some(permit) = state
        .store
        .permits_for_application(&app.id)
        .await?
        .into_iter()
        .next_back()
    {
        let view = permit_view(&state, permit).await?;
        return serde_json::to_value(view)
            .map(Json)
            .map_err(|e| ApiError::Internal(e.to_string()));
    }
    if let Some(receipt) = state.store.receipt_for_application(&app.id).await? {
        return Ok(Json(serde_json::json!({
            "kind": "exemption",
            "id": receipt.id,
            "application_id": receipt.application_id,
            "org_id": receipt.org_id,
            "status": "issued",
            "token": receipt.token,
            "issued_at": rfc3339(receipt.created_at),
        })));
    }
    Err(ApiError::NotFound(format!(
        "application {} ({}) has no permit or exemption receipt",
        app.id, app.status
    )))
}

/// `GET /.well-known/jwks.json`: every key that may still verify a permit in force. Retired
/// keys stay until the longest permit validity has passed since their retirement.
pub(crate) async fn jwks(State(state): State<AppState>) -> Result<Json<Jwks>, ApiError> {
    let keep_ms = i64::from(state.policy.permit.validity_days) * 86_400_000;
    Ok(Json(
        verifying_keys(&state, Some(state.clock.now_ms() - keep_ms)).await?,
    ))
}

/// The authority's permit keys: every key, or with `retired_after`, only those not retired
/// before that time (unix ms).
pub(crate) async fn verifying_keys(
    state: &AppState,
    retired_after: Option<i64>,
) -> Result<Jwks, ApiError> {
    let mut keys = Vec::new();
    for k in state.store.signing_keys().await? {
        if let (Some(at), Some(after)) = (k.retired_at, retired_after)
            && at < after
        {
            continue;
        }
        keys.push(
            PublicKey::from_bytes(&k.public_key)
                .map_err(|e| ApiError::Internal(format!("stored key {}: {e}", k.kid)))?,
        );
    }
    Ok(Jwks::from_keys(&keys))
}

/// `GET /v1/status-list`: the signed list of permits not in good standing, for gates to poll.
/// Signed with the permit key, valid for the policy's `status_ttl_seconds`, built from the
/// runs' stored status at the moment of the request, so a change shows in the very next
/// list. Its version is the signing time in milliseconds, so it increases with every list
/// any process signs as long as the processes' clocks are synchronized (NTP), which a gate
/// needs anyway.
///
/// The list never contradicts the authority's own log: before signing, every permit that the
/// sequenced log says is not in good standing is added if the runs do not list it, and a
/// final entry (`run_revoked`, `run_completed`) always lists it as revoked
/// ([`runpermit_permit::reconcile`]). Each such correction means the database was changed
/// behind the log's back: it is logged as an error and counted in
/// `runpermit_status_list_corrections_total`. A resumption takes effect on the list once it
/// is sequenced (normally within the sequencing interval).
pub(crate) async fn status_list(
    State(state): State<AppState>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let now_ms = state.clock.now_ms();
    let iat = now_ms.div_euclid(1000);
    let mut entries = crate::oversight::status_entries(&state).await?;
    let skew = i64::from(state.policy.permit.clock_skew_seconds);
    {
        let folded = tlog::log_standing(&state, iat - skew).await?;
        for c in runpermit_permit::reconcile(&mut entries, &folded.standing, iat, iat - skew) {
            tracing::error!(
                permit = %c.permit_id,
                was = c.was.map_or("in good standing", |s| s.as_str()),
                now = %c.now,
                log = %c.log_says,
                "the database contradicts the public log; the status list follows the log"
            );
            metrics::counter!("runpermit_status_list_corrections_total", "to" => c.now.as_str())
                .increment(1);
        }
    }
    let claims = runpermit_permit::StatusListClaims::new(
        state.issuer.clone(),
        iat,
        i64::from(state.policy.permit.status_ttl_seconds),
        u64::try_from(now_ms).unwrap_or(0),
        entries,
    );
    let token = runpermit_permit::sign_status_list(&claims, &state.signer);
    let mut response = (axum::http::StatusCode::OK, format!("{token}\n")).into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/jwt"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
