//! The public pages: what anyone may read without signing in, and only what the log already
//! makes public.
//!
//! - `/` ([`registry`]): signed permits whose `permit_issued` entry is sequenced, with their
//!   runs' standing; search, filters, pages of 50; a log-scale chart against the regulatory
//!   thresholds ([`chart`]).
//! - `/permits/{id}` ([`permit`]): one permit's signed claims, standing and history.
//! - `/decisions` ([`decisions`]): every logged decision with its public reason.
//! - `/log`, `/log/entries/{index}`, `…/raw` ([`log`]): the checkpoint and the entries,
//!   decoded, searchable by type, permit, run and organization.
//! - `/models`, `/models/{id}` ([`models`]): the registry of models permitted runs produced,
//!   through `GET /v1/models`; grants of access to them are not public and are not shown.
//! - `/status` ([`status`]): the signed status list, decoded.
//! - `/orgs` ([`orgs`]): the organizations the log names.
//! - `/verify` ([`verify`]): how to check all of it without trusting these pages.
//!
//! What these pages show comes from the log or from what it makes public: permits' signed
//! claims (their tokens are logged), runs' standing (every status change is logged with its
//! reason), the usage last summarized in the log. Plans stay behind their digest.
//!
//! Cost: every page reads a bounded slice through the store's indexed reads
//! ([`runpermit_store::LogStore::registry`], [`runpermit_store::LogStore::log_search`]), so a
//! page costs the same with 10^4 permits and 10^6 entries
//! (`examples/console_bench.rs` measures it).

pub mod chart;
pub mod decisions;
pub mod entry;
pub mod log;
pub mod models;
pub mod orgs;
pub mod permit;
pub mod registry;
pub mod status;
pub mod verify;

use axum::Router;
use axum::routing::get;
use maud::{Markup, html};
use runpermit_permit::PermitClaims;

use crate::http::console::error::ConsoleError;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Rows per page of the registry, the log and the decisions.
pub const PAGE: i64 = 50;

/// The routes of the public pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(registry::page))
        .route("/permits/{id}", get(permit::page))
        .route("/decisions", get(decisions::page))
        .route("/log", get(log::page))
        .route("/log/entries/{index}", get(log::entry_page))
        .route("/log/entries/{index}/raw", get(log::raw))
        .route("/models", get(models::list))
        .route("/models/{id}", get(models::show))
        .route("/status", get(status::page))
        .route("/orgs", get(orgs::page))
        .route("/verify", get(verify::page))
}

/// A page's query string, read leniently as text pairs: the pages name what they cannot use.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The pairs of `query` (`None`: no query string).
    pub fn parse(query: Option<&str>) -> Params {
        Params(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of `name`, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// `name` as a whole number of at least `min`, or a clear error naming it.
    pub fn number(&self, name: &str, min: i64) -> Result<Option<i64>, ConsoleError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= min => Ok(Some(n)),
                _ => Err(ApiError::field(
                    name,
                    format!("must be a whole number of at least {min}, got {v:?}"),
                )
                .into()),
            },
        }
    }

    /// `name`, which must be an id (no control characters, at most 200 characters).
    pub fn id(&self, name: &str) -> Result<Option<String>, ConsoleError> {
        match self.get(name) {
            Some(v) if v.chars().count() > 200 || v.chars().any(char::is_control) => {
                Err(ApiError::field(
                    name,
                    "must be an id: at most 200 characters, no control characters",
                )
                .into())
            }
            v => Ok(v),
        }
    }
}

/// `path?query` with `pairs` (those with a value), for links that keep a page's filters.
pub fn link(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            query.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_owned()
    }
}

/// The claims of a logged permit token, read without checking its signature: what the
/// public log holds (the permit page verifies; `/verify` says how to). `None` when the token
/// does not read as a permit.
pub fn claims_of(token: &str) -> Option<PermitClaims> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// A permit's providers as people read them: `provider (cluster, cluster)`, or "any cluster".
pub fn providers(claims: &PermitClaims) -> Markup {
    html! {
        @if claims.providers.is_empty() {
            span.muted { "none named" }
        }
        @for (i, p) in claims.providers.iter().enumerate() {
            @if i > 0 { ", " }
            a href=(link("/log", &[("org", Some(p.provider.clone()))])) { code { (p.provider) } }
            @if p.clusters.is_empty() {
                " (any cluster)"
            } @else {
                " (" (p.clusters.join(", ")) ")"
            }
        }
    }
}

/// Whether a run's status is good standing, as a badge: the words the browser tests and
/// people read.
pub fn standing_badge(status: runpermit_types::RunStatus) -> Markup {
    html! {
        @if status.in_good_standing() {
            span.badge.good { "in good standing" }
        } @else {
            span.badge.bad { "not in good standing" }
        }
    }
}

/// Paging links: `prev` ("← Newer" or "← Previous") and `next` ("Older →", "Next →").
pub fn pager(prev: Option<(String, &str)>, next: Option<(String, &str)>) -> Markup {
    let both = prev.is_some() && next.is_some();
    html! {
        @if prev.is_some() || next.is_some() {
            nav aria-label="Pages" {
                p {
                    @if let Some((href, label)) = prev { a rel="prev" href=(href) { "← " (label) } }
                    @if both { " · " }
                    @if let Some((href, label)) = next { a rel="next" href=(href) { (label) " →" } }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_only_the_filters_given_encoded() {
        assert_eq!(link("/log", &[("org", None)]), "/log");
        assert_eq!(
            link(
                "/",
                &[
                    ("q", Some("a&b <c>".into())),
                    ("tier", None),
                    ("page", Some("2".into()))
                ]
            ),
            "/?q=a%26b+%3Cc%3E&page=2"
        );
    }

    #[test]
    fn parameters_name_what_they_cannot_use() {
        let p = Params::parse(Some("page=0&before=x&permit=%01&q=+lab+&q=&run=r1"));
        assert!(p.number("page", 1).is_err());
        assert!(p.number("before", 0).is_err());
        assert_eq!(p.number("absent", 0).unwrap(), None);
        assert!(p.id("permit").is_err(), "control characters");
        assert_eq!(p.id("run").unwrap().as_deref(), Some("r1"));
        // The last value counts; an empty one is none.
        assert_eq!(p.get("q"), None);
        assert_eq!(
            Params::parse(Some("q=+lab+")).get("q").as_deref(),
            Some("lab")
        );
    }

    #[test]
    fn only_a_permit_token_reads_as_claims() {
        assert!(claims_of("not a token").is_none());
        assert!(claims_of("a.e30.c").is_none(), "{{}} is not a permit");
        let key = runpermit_permit::SigningKey::generate();
        let status = runpermit_permit::StatusListClaims::new("iss", 1, 60, 1, Vec::new());
        let token = runpermit_permit::sign_status_list(&status, &key);
        assert!(claims_of(&token).is_none(), "a status list is not a permit");
    }
}
