//! `runpermit access gateway`: an HTTP reverse proxy in front of an OpenAI-compatible model
//! server, admitting each request under an access grant ([`check`](crate::check)), metering
//! per grant ([`Ledger`]) and shipping signed access-usage reports to the authority.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/completions` (the caller sends
//! `Authorization: Bearer <grant>` and `X-Runpermit-Grant-Proof: <proof bundle, base64>`),
//! `GET /v1/models` (the served model only; no grant needed). A request with `logprobs` or
//! `top_logprobs` needs tier `logprobs`; any other, `api_sampling`. `stream: true` is refused
//! (400): tokens are charged from the upstream's `usage`, which a stream does not carry
//! reliably. Refusals are OpenAI-shaped errors: `{"error": {"type": "runpermit_access",
//! "code", "message", "grant_id"?, "retry_at"?}}`, with `Retry-After` on 429.
//!
//! The upstream client is `ureq` on a blocking task (the workspace's HTTP client).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use runpermit_gate::StatusListCache;
use runpermit_permit::{AccessTier, Jwks, SigningKey, verify_status_list};
use serde_json::{Value, json};

use crate::check::{AccessRequest, Anchors, check};
use crate::config::{GatewayConfig, Served};
use crate::decision::AccessDecision;
use crate::ledger::{Ledger, PendingReport};

/// The header carrying the grant's proof bundle, base64 (standard alphabet).
pub const PROOF_HEADER: &str = "x-runpermit-grant-proof";
/// The held status list's file name in the state folder.
pub const STATUS_FILE: &str = "status-list.jwt";

/// The clock: unix milliseconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    })
}

/// The running gateway's state, shared by the handlers and the background loops.
pub struct Gateway {
    config: GatewayConfig,
    served: Served,
    anchors: Anchors,
    status: Mutex<StatusListCache>,
    ledger: Mutex<Ledger>,
    http: ureq::Agent,
    clock: Clock,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("model_id", &self.config.model_id)
            .field("upstream_url", &self.config.upstream_url)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Reads the pinned JWKS and the reporting key named by `config`, opens the ledger and
    /// loads the held status list (if any) from the state folder.
    pub fn open(config: GatewayConfig, clock: Clock) -> Result<Gateway, String> {
        let jwks_text = std::fs::read_to_string(&config.jwks)
            .map_err(|e| format!("reading the JWKS {}: {e}", config.jwks.display()))?;
        let jwks = Jwks::from_json(&jwks_text)
            .map_err(|e| format!("the JWKS {}: {e}", config.jwks.display()))?;
        let pem = std::fs::read_to_string(&config.reporting_key).map_err(|e| {
            format!(
                "reading the reporting key {}: {e}",
                config.reporting_key.display()
            )
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|e| format!("the reporting key {}: {e}", config.reporting_key.display()))?;
        let ledger = Ledger::open(
            &config.state_dir,
            key,
            &config.developer_id,
            config.report_interval_seconds,
        )
        .map_err(|e| e.to_string())?;
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(config.upstream_timeout_seconds)))
            .build()
            .into();
        let gateway = Gateway {
            served: config.served(),
            anchors: Anchors {
                jwks,
                log_vkey: config.log_vkey.clone(),
            },
            status: Mutex::new(StatusListCache::new(config.status_grace_seconds)),
            ledger: Mutex::new(ledger),
            http,
            clock,
            config,
        };
        let held = gateway.config.state_dir.join(STATUS_FILE);
        if let Ok(token) = std::fs::read_to_string(&held)
            && let Err(e) = gateway.accept_status_token(&token)
        {
            tracing::warn!(file = %held.display(), error = %e, "ignoring the held status list");
        }
        Ok(gateway)
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// The ledger (per-grant counters and queued reports).
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn status(&self) -> MutexGuard<'_, StatusListCache> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Verifies a status list token against the pinned JWKS and takes it if it is newer than
    /// the held one (never an older one), keeping it in the state folder. `Ok(true)` when it
    /// was taken as a new version.
    pub fn accept_status_token(&self, token: &str) -> Result<bool, String> {
        let claims = verify_status_list(token.trim(), &self.anchors.jwks)
            .map_err(|e| format!("status list refused: {e}"))?;
        let version = claims.version;
        let mut status = self.status();
        let before = status.current().map(|l| l.version);
        status.accept(claims).map_err(|e| e.to_string())?;
        if before == Some(version) {
            return Ok(false);
        }
        let path = self.config.state_dir.join(STATUS_FILE);
        let tmp = self.config.state_dir.join(format!("{STATUS_FILE}.tmp"));
        std::fs::write(&tmp, token.trim())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("keeping the status list in {}: {e}", path.display()))?;
        Ok(true)
    }

    /// Fetches `{authority_url}/v1/status-list` and accepts it. Blocking.
    pub fn refresh_status(&self) -> Result<bool, String> {
        let url = format!(
            "{}/v1/status-list",
            self.config.authority_url.trim_end_matches('/')
        );
        let mut response = self
            .http
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("GET {url}: {e}"))?;
        if status != 200 {
            return Err(format!("GET {url}: HTTP {status}: {}", body.trim()));
        }
        self.accept_status_token(&body)
    }

    /// Closes the report intervals due at the clock's now (every open one with `all`) and
    /// sends every queued report to `{authority_url}/v1/access-usage` as
    /// `{"reports": [..]}`; acknowledged ones leave the queue. Blocking. Returns how many
    /// were delivered.
    pub fn roll_and_ship(&self, all: bool) -> Result<usize, String> {
        let now = (self.clock)().div_euclid(1000);
        let pending = {
            let mut ledger = self.ledger();
            ledger.roll(now, all).map_err(|e| e.to_string())?;
            ledger.pending().to_vec()
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let url = format!(
            "{}/v1/access-usage",
            self.config.authority_url.trim_end_matches('/')
        );
        let body = json!({ "reports": pending.iter().map(|p| &p.token).collect::<Vec<_>>() });
        let mut response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            // A batch is stored whole or not at all. On a refusal for good (4xx but a timeout
            // or rate limit) the reports the answer names as refused become dead letters and
            // the others (withheld) are sent again next time; an answer naming none refuses
            // the batch as a whole.
            if (400..500).contains(&status) && status != 408 && status != 429 {
                let refused = refused_reports(&pending, status, &text);
                let moved = self
                    .ledger()
                    .dead_letter(&refused)
                    .map_err(|e| e.to_string())?;
                tracing::error!(status, moved, answer = %text.trim(), "access-usage reports refused for good: kept as dead letters");
                return Err(format!(
                    "POST {url}: HTTP {status}: {}; {moved} report(s) refused for good, kept as \
                     dead letters in the ledger; the others stay queued",
                    text.trim()
                ));
            }
            return Err(format!(
                "POST {url}: HTTP {status}: {}; the reports stay queued",
                text.trim()
            ));
        }
        let mut ledger = self.ledger();
        for p in &pending {
            ledger.ack(&p.grant_id, p.seq).map_err(|e| e.to_string())?;
        }
        Ok(pending.len())
    }

    /// The gateway's routes.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completions))
            .route("/v1/models", get(models))
            .with_state(self)
    }

    /// Decides `request` now without recording anything: what `runpermit access check` asks.
    pub fn decide(&self, request: &AccessRequest<'_>) -> AccessDecision {
        let now_ms = (self.clock)();
        let status = self.status();
        let ledger = self.ledger();
        check(
            &self.served,
            &self.anchors,
            &status,
            request,
            |id| ledger.usage(id),
            now_ms,
        )
    }

    /// Decides `request` now, recording the outcome durably: an admitted request (and the
    /// grant's new rate state) before it is forwarded, a refusal under a verified grant in
    /// the current report interval.
    pub fn admit(&self, request: &AccessRequest<'_>) -> AccessDecision {
        let now_ms = (self.clock)();
        let now = now_ms.div_euclid(1000);
        let status = self.status();
        let mut ledger = self.ledger();
        let mut decision = check(
            &self.served,
            &self.anchors,
            &status,
            request,
            |id| ledger.usage(id),
            now_ms,
        );
        drop(status);
        // Only a grant proven logged and for this model is counted (and so reported): a
        // refusal before the proof check may be under a grant the authority never issued
        // for this gateway.
        if let Some(claims) = &decision.claims
            && decision.code.proof_checked()
        {
            let recorded = match decision.next_tat_ns {
                Some(tat) if decision.allowed() => ledger.admit(claims, tat, now),
                _ => ledger.refuse(claims, now),
            };
            if let Err(e) = recorded {
                tracing::error!(error = %e, "gateway ledger not written; refusing");
                decision = AccessDecision::new(
                    crate::decision::Code::LedgerUnavailable,
                    "the gateway cannot record usage durably right now, so it admits nothing; \
                     try again later, and tell the gateway's operator if this persists"
                        .to_owned(),
                );
            }
        }
        decision
    }
}

async fn chat(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    proxy(gw, "/v1/chat/completions", headers, body).await
}

async fn completions(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    proxy(gw, "/v1/completions", headers, body).await
}

async fn models(State(gw): State<Arc<Gateway>>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": gw.config.served_model,
            "object": "model",
            "owned_by": gw.config.developer_id,
        }],
    }))
    .into_response()
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(
            json!({"error": {"type": "runpermit_access", "code": code, "message": message}}),
        ),
    )
        .into_response()
}

fn refusal(decision: &AccessDecision, now: i64) -> Response {
    let status = StatusCode::from_u16(decision.code.http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut body =
        json!({"type": "runpermit_access", "code": decision.code, "message": decision.message});
    if let Some(id) = &decision.grant_id {
        body["grant_id"] = json!(id);
    }
    if let Some(at) = decision.retry_at {
        body["retry_at"] = json!(at);
        body["retry_at_utc"] = json!(runpermit_permit::utc(at));
    }
    let mut response = (status, axum::Json(json!({ "error": body }))).into_response();
    if let Some(at) = decision.retry_at
        && status == StatusCode::TOO_MANY_REQUESTS
        && let Ok(v) = HeaderValue::from_str(&(at - now).max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// The tier a request body needs: `logprobs` when it asks for `logprobs` or `top_logprobs`
/// (any value other than absent, `null` or `false`), `api_sampling` otherwise.
pub fn tier_needed(body: &Value) -> AccessTier {
    let asks = |k: &str| {
        !matches!(
            body.get(k),
            None | Some(Value::Null) | Some(Value::Bool(false))
        )
    };
    if asks("logprobs") || asks("top_logprobs") {
        AccessTier::Logprobs
    } else {
        AccessTier::ApiSampling
    }
}

async fn proxy(gw: Arc<Gateway>, path: &'static str, headers: HeaderMap, body: Bytes) -> Response {
    let mut body: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => {
            return error(
                400,
                "invalid_request",
                "the request body must be a JSON object",
            );
        }
        Err(e) => {
            return error(
                400,
                "invalid_request",
                &format!("the request body is not valid JSON: {e}"),
            );
        }
    };
    if matches!(body.get("stream"), Some(Value::Bool(true))) {
        return error(
            400,
            "stream_not_supported",
            "this gateway does not stream yet: send \"stream\": false (tokens are metered from the \
             complete response's usage)",
        );
    }
    let grant = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim()
        .to_owned();
    let proof = match headers.get(PROOF_HEADER).map(|v| v.as_bytes()) {
        None => String::new(),
        Some(raw) => base64::engine::general_purpose::STANDARD
            .decode(raw.trim_ascii())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            // Not base64: handed on as is, so the check refuses it as an unreadable proof.
            .unwrap_or_else(|| String::from_utf8_lossy(raw).into_owned()),
    };
    let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
    let request = AccessRequest {
        grant: &grant,
        proof: &proof,
        model: model.as_deref(),
        tier: tier_needed(&body),
    };
    let decision = gw.admit(&request);
    let now = (gw.clock)().div_euclid(1000);
    if !decision.allowed() {
        tracing::info!(code = %decision.code, grant = ?decision.grant_id, "access refused");
        return refusal(&decision, now);
    }
    let claims = decision
        .claims
        .clone()
        .expect("an allowed decision has claims");
    body["model"] = json!(gw.config.upstream_model());
    let url = format!("{}{path}", gw.config.upstream_url.trim_end_matches('/'));
    let http = gw.http.clone();
    let sent = tokio::task::spawn_blocking(move || -> Result<(u16, String), String> {
        let mut response = http
            .post(&url)
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("POST {url}: reading the answer: {e}"))?;
        Ok((status, text))
    })
    .await;
    let (status, text) = match sent {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "upstream unavailable");
            return error(
                502,
                "upstream_unavailable",
                "the model server did not answer",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "upstream task failed");
            return error(
                502,
                "upstream_unavailable",
                "the model server did not answer",
            );
        }
    };
    if (200..300).contains(&status) {
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let count = |k: &str| answer["usage"][k].as_u64().unwrap_or(0);
        let (prompt, completion) = (count("prompt_tokens"), count("completion_tokens"));
        let now = (gw.clock)().div_euclid(1000);
        if let Err(e) = gw.ledger().charge(&claims, prompt, completion, now) {
            tracing::error!(error = %e, grant = %claims.jti, "tokens not charged");
        }
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Serves `gateway` on its configured address until `shutdown` resolves, polling the status
/// list every `status_poll_seconds` and closing report intervals and shipping reports every
/// minute; at shutdown, closes every open interval and tries once more to ship.
pub async fn serve(
    gateway: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&gateway.config.listen).await?;
    tracing::info!(listen = %gateway.config.listen, model = %gateway.config.model_id, "access gateway serving");
    let poll = {
        let gw = gateway.clone();
        tokio::spawn(async move {
            loop {
                let g = gw.clone();
                match tokio::task::spawn_blocking(move || g.refresh_status()).await {
                    Ok(Ok(new)) => tracing::debug!(new, "status list refreshed"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "status list not refreshed"),
                    Err(e) => tracing::error!(error = %e, "status poll task failed"),
                }
                tokio::time::sleep(Duration::from_secs(gw.config.status_poll_seconds)).await;
            }
        })
    };
    let ship = {
        let gw = gateway.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                let g = gw.clone();
                match tokio::task::spawn_blocking(move || g.roll_and_ship(false)).await {
                    Ok(Ok(n)) if n > 0 => {
                        tracing::info!(delivered = n, "access-usage reports shipped")
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "access-usage reports not shipped"),
                    Err(e) => tracing::error!(error = %e, "report task failed"),
                }
            }
        })
    };
    let result = axum::serve(listener, gateway.clone().router())
        .with_graceful_shutdown(shutdown)
        .await;
    poll.abort();
    ship.abort();
    let g = gateway.clone();
    match tokio::task::spawn_blocking(move || g.roll_and_ship(true)).await {
        Ok(Ok(n)) => tracing::info!(delivered = n, "final access-usage reports shipped"),
        Ok(Err(e)) => tracing::warn!(error = %e, "final reports stay queued"),
        Err(e) => tracing::error!(error = %e, "report task failed"),
    }
    result
}

/// The reports of `pending` a refused batch's answer names as `refused` (by index), with the
/// reason; every report when the answer names none (a body that is not a per-report answer).
fn refused_reports(
    pending: &[PendingReport],
    status: u16,
    text: &str,
) -> Vec<(String, u64, String)> {
    let answer: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let named: Vec<(String, u64, String)> = answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "refused")
        .filter_map(|r| {
            let p = pending.get(usize::try_from(r["index"].as_u64()?).ok()?)?;
            Some((
                p.grant_id.clone(),
                p.seq,
                format!(
                    "HTTP {status}: {}",
                    r["error"].as_str().unwrap_or("refused")
                ),
            ))
        })
        .collect();
    if !named.is_empty() {
        return named;
    }
    pending
        .iter()
        .map(|p| {
            (
                p.grant_id.clone(),
                p.seq,
                format!("HTTP {status}: {}", text.trim()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seq: u64) -> PendingReport {
        PendingReport {
            grant_id: "grt_1".into(),
            seq,
            token: format!("t{seq}"),
        }
    }

    #[test]
    fn a_refused_batch_dead_letters_the_reports_it_names_and_keeps_the_rest() {
        let pending = [report(1), report(2), report(3)];
        let answer = r#"{"error":"usage_refused","results":[
            {"index":0,"status":"withheld"},
            {"index":1,"status":"refused","error":"seq 2 of org_lab for grt_1 was already stored with other content"},
            {"index":2,"status":"withheld"}]}"#;
        let refused = refused_reports(&pending, 409, answer);
        assert_eq!(refused.len(), 1);
        assert_eq!((refused[0].0.as_str(), refused[0].1), ("grt_1", 2));
        assert!(refused[0].2.contains("HTTP 409: seq 2"), "{refused:?}");
        // An answer naming none refuses the batch as a whole.
        let all = refused_reports(&pending, 413, "too large");
        assert_eq!(all.len(), 3);
        assert!(all[0].2.contains("HTTP 413: too large"));
    }
}
