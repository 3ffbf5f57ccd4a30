//! The middleware that charges every request to its buckets before any other work: the
//! source address first, then, on authenticated writes, the token and its organization. A
//! form posted to the console is a write of the token its session was made with.
//!
//! The source address is the TCP peer (axum's `ConnectInfo`, which `serve` provides), or,
//! when the peer is one of the configured `trusted_proxies`, the right-most address of
//! `X-Forwarded-For` that is not itself a trusted proxy: what the last proxy we trust saw.
//! An IPv6 client is counted by its /64, which one subscriber usually holds whole. Requests
//! with no peer (in-process tests) have no address and are limited per token only.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::domain::Caller;
use crate::domain::limits::address::address_key;
use crate::domain::limits::{Limit, Limits};
use crate::http::authz::{self, Access, Endpoint};
use crate::http::console::error::ConsoleError;
use crate::http::console::viewer::Viewer;
use crate::http::error::ApiError;
use crate::http::state::{AppState, ClientAddress};

impl Limits {
    /// The client's address: the peer, or what trusted proxies say the client was.
    fn client_ip(&self, request: &Request) -> Option<IpAddr> {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()?
            .0
            .ip();
        if !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => client = ip,
                Ok(ip) => return Some(ip),
                // Garbage from the client's side of the chain: the last hop we trust is it.
                Err(_) => break,
            }
        }
        Some(client)
    }
}

/// The middleware.
pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let address = state.limits.client_ip(&request).map(address_key);
    request
        .extensions_mut()
        .insert(ClientAddress(address.clone()));
    let console = request.uri().path().starts_with("/console/");
    match admit(&state, request, address.as_deref()).await {
        Ok(request) => next.run(request).await,
        // A person at the console reads the refusal as a page.
        Err(e) if console => ConsoleError::Api(e).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn admit(
    state: &AppState,
    request: Request,
    address: Option<&str>,
) -> Result<Request, ApiError> {
    let now = state.clock.now_ms();
    let limits = &state.limits;
    let writes = matches!(
        *request.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    if let Some(address) = address {
        let limit = if writes {
            Limit::WritesPerAddress
        } else {
            Limit::ReadsPerAddress
        };
        limits.admit(now, &[(limit, address, 1)])?;
    }
    if writes && request.uri().path().starts_with("/console/") {
        return admit_console_form(state, request, now).await;
    }
    let Some(endpoint) = writes.then(|| endpoint(&request)).flatten() else {
        return Ok(request);
    };
    if matches!(endpoint.access, Access::Public) {
        return Ok(request);
    }
    let (mut parts, body) = request.into_parts();
    // Without a valid token the handler answers 401 as usual; with one, the Caller stays in
    // the request's extensions, so the handler does not look the token up again.
    if let Ok(caller) = Caller::from_request_parts(&mut parts, state).await {
        let mut charges = vec![
            (Limit::WritesPerToken, caller.token_id.as_str(), 1),
            (Limit::WritesPerOrg, caller.org_id.as_str(), 1),
        ];
        if [
            authz::APPLICATIONS_CREATE.path,
            authz::APPLICATIONS_SUBMIT.path,
        ]
        .contains(&endpoint.path)
        {
            charges.push((Limit::ApplicationsPerToken, &caller.token_id, 1));
            charges.push((Limit::ApplicationsPerOrg, &caller.org_id, 1));
        }
        if endpoint.path == authz::TOKENS_CREATE.path {
            charges.push((Limit::TokensPerToken, &caller.token_id, 1));
            charges.push((Limit::TokensPerOrg, &caller.org_id, 1));
        }
        limits.admit(now, &charges)?;
    }
    Ok(Request::from_parts(parts, body))
}

/// A form posted to the console by a signed-in person: charged to the token the session was
/// made with and its organization, as the same action through the API would be. Without a
/// session in force the console answers as usual (sign in), having spent only the address's
/// bucket. The viewer found stays in the request's extensions for the handler.
async fn admit_console_form(
    state: &AppState,
    request: Request,
    now: i64,
) -> Result<Request, ApiError> {
    let (mut parts, body) = request.into_parts();
    if let Ok(Some(viewer)) =
        <Viewer as axum::extract::OptionalFromRequestParts<AppState>>::from_request_parts(
            &mut parts, state,
        )
        .await
    {
        state.limits.admit(
            now,
            &[
                (Limit::WritesPerToken, viewer.caller.token_id.as_str(), 1),
                (Limit::WritesPerOrg, viewer.caller.org_id.as_str(), 1),
            ],
        )?;
        parts.extensions.insert(viewer);
    }
    Ok(Request::from_parts(parts, body))
}

/// The endpoint a request was routed to, if any.
fn endpoint(request: &Request) -> Option<&'static Endpoint> {
    let path = request.extensions().get::<MatchedPath>()?.as_str();
    let method = request.method().as_str();
    authz::ENDPOINTS
        .iter()
        .find(|e| e.method == method && e.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::limits::LimitsConfig;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn request(peer: &str, forwarded: &[&str]) -> Request {
        let mut builder = Request::builder().uri("/v1/estimate");
        for f in forwarded {
            builder = builder.header("x-forwarded-for", *f);
        }
        let mut request = builder.body(axum::body::Body::empty()).expect("request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip(peer), 40_000)));
        request
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let limits = Limits::new(LimitsConfig {
            trusted_proxies: vec!["10.0.0.0/8".into()],
            ..LimitsConfig::default()
        })
        .expect("valid");
        let client =
            |peer, fwd: &[&str]| limits.client_ip(&request(peer, fwd)).map(|i| i.to_string());
        // Anyone else's header is ignored: a client cannot choose its own bucket.
        assert_eq!(
            client("198.51.100.9", &["1.2.3.4"]).as_deref(),
            Some("198.51.100.9")
        );
        // Through our proxy: the right-most hop it did not add itself.
        assert_eq!(
            client("10.0.0.2", &["1.2.3.4, 203.0.113.5"]).as_deref(),
            Some("203.0.113.5")
        );
        assert_eq!(
            client("10.0.0.2", &["1.2.3.4", "203.0.113.5, 10.0.0.3"]).as_deref(),
            Some("203.0.113.5"),
            "several headers and a chain of trusted proxies"
        );
        assert_eq!(client("10.0.0.2", &[]).as_deref(), Some("10.0.0.2"));
        assert_eq!(
            client("10.0.0.2", &["junk, 10.0.0.7"]).as_deref(),
            Some("10.0.0.7")
        );
        let no_peer = Request::builder()
            .body(axum::body::Body::empty())
            .expect("request");
        assert_eq!(limits.client_ip(&no_peer), None);
    }
}
