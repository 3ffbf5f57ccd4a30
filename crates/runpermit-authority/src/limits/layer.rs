//! The middleware that charges every request to its buckets before any other work: the
//! source address first, then, on authenticated writes, the token and its organization.
//!
//! The source address is the TCP peer (axum's `ConnectInfo`, which `serve` provides), or,
//! when the peer is one of the configured `trusted_proxies`, the right-most address of
//! `X-Forwarded-For` that is not itself a trusted proxy: what the last proxy we trust saw.
//! An IPv6 client is counted by its /64, which one subscriber usually holds whole. Requests
//! with no peer (in-process tests) have no address and are limited per token only.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Limit, Limits};
use crate::auth::Caller;
use crate::authz::{self, Access, Endpoint};
use crate::error::ApiError;
use crate::state::AppState;

/// The request's source address as the limits count it (see [`address_key`]), for handlers
/// that charge more than the request itself (`POST /v1/usage` charges per report).
#[derive(Debug, Clone)]
pub struct ClientAddress(pub Option<String>);

/// The id an address is counted under: an IPv4 address as written, an IPv6 address as its
/// /64 (`2001:db8:1:2::/64`); IPv4-mapped IPv6 addresses count as IPv4.
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// An override's address id, normalized: an IP address (an IPv6 one stands for its /64),
/// optionally written with its /64.
pub(super) fn override_address(id: &str) -> Result<String, String> {
    let id = id.trim();
    let address = id.strip_suffix("/64").unwrap_or(id);
    address
        .parse::<IpAddr>()
        .map(address_key)
        .map_err(|_| format!("{id:?} is not an IP address (IPv4, or IPv6 for its /64)"))
}

/// A trusted proxy: an address or a CIDR range.
#[derive(Debug, Clone, Copy)]
pub(super) struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for IpRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or a CIDR range such as 10.0.0.0/8");
        let (address, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(bad());
        }
        Ok(IpRange { network, prefix })
    }
}

impl IpRange {
    fn contains(&self, ip: IpAddr) -> bool {
        let masked = |a: u128, bits: u8, width: u8| {
            if bits == 0 { 0 } else { a >> (width - bits) }
        };
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                masked(u32::from(n).into(), self.prefix, 32)
                    == masked(u32::from(a).into(), self.prefix, 32)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                masked(u128::from(n), self.prefix, 128) == masked(u128::from(a), self.prefix, 128)
            }
            _ => false,
        }
    }
}

impl Limits {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|r| r.contains(ip))
    }

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
    match admit(&state, request, address.as_deref()).await {
        Ok(request) => next.run(request).await,
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
    use crate::limits::LimitsConfig;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        assert_eq!(address_key(ip("203.0.113.7")), "203.0.113.7");
        assert_eq!(address_key(ip("::ffff:203.0.113.7")), "203.0.113.7");
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2::1")),
            address_key(ip("2001:db8:1:2:ffff::9"))
        );
        assert_eq!(
            override_address("2001:db8:1:2::/64"),
            Ok("2001:db8:1:2::/64".to_owned())
        );
        assert_eq!(
            override_address(" 2001:db8:1:2::7 "),
            Ok("2001:db8:1:2::/64".to_owned())
        );
        assert!(override_address("lab.example").is_err());
    }

    #[test]
    fn ranges_match_by_prefix() {
        let r: IpRange = "10.0.0.0/8".parse().expect("a range");
        assert!(r.contains(ip("10.200.3.4")));
        assert!(r.contains(ip("::ffff:10.1.1.1")));
        assert!(!r.contains(ip("11.0.0.1")));
        assert!(!r.contains(ip("::1")));
        let one: IpRange = "192.0.2.1".parse().expect("an address");
        assert!(one.contains(ip("192.0.2.1")) && !one.contains(ip("192.0.2.2")));
        let all: IpRange = "::/0".parse().expect("everything");
        assert!(all.contains(ip("2001:db8::1")));
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/x", "proxy"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
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
