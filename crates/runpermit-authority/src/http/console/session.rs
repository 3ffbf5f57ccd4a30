//! Signing in to the console: a person gives an API token once and gets a session cookie.
//!
//! - The cookie holds a random secret (`HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure` when
//!   the request came over TLS); the database holds its SHA-256 ([`runpermit_store::Session`]),
//!   so every `serve` process sharing the database knows the session, and a stolen database
//!   yields no usable cookie.
//! - A session ends at sign-out, after [`SESSION_MS`], or when its token is revoked or expires,
//!   whichever comes first: the store answers only sessions in force.
//! - Every form carries the session's anti-forgery token ([`csrf_field`]); [`Submitted`]
//!   refuses a form without it, or with another session's, and any cross-site post (`Origin`,
//!   `Sec-Fetch-Site`). Sign-in itself, which has no session yet, is held to the same-origin
//!   check.
//! - Signing in and out is audited (`session.create`, `session.end`); what a person does once
//!   signed in is audited by the domain services exactly as through the API, as them.

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{Markup, html};
use runpermit_store::{Session, Write};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::domain::Caller;
use crate::domain::audit::{event, rfc3339};
use crate::domain::ids::{new_random_hex, new_token_secret, token_hash};
use crate::http::console::error::ConsoleError;
use crate::http::console::page;
pub use crate::http::console::viewer::{Viewer, csrf_field};
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "runpermit_session";

/// The longest a session lasts: a working day.
pub const SESSION_MS: i64 = 8 * 3_600_000;

/// The largest form the console accepts, in bytes (a milestone report with its results).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The session cookie's secret in `headers`, if any.
fn cookie_secret(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The session in force that `parts` carries, if any.
async fn session_of(parts: &Parts, state: &AppState) -> Result<Option<Viewer>, ConsoleError> {
    if let Some(viewer) = parts.extensions.get::<Viewer>() {
        return Ok(Some(viewer.clone()));
    }
    let Some(secret) = cookie_secret(&parts.headers) else {
        return Ok(None);
    };
    let id_hash = token_hash(&secret);
    let found = state
        .store
        .session(&id_hash, state.clock.now_ms())
        .await
        .map_err(ApiError::from)?;
    Ok(found.map(|(principal, session)| Viewer {
        caller: Caller::from(principal),
        csrf: session.csrf,
        expires_at: session.expires_at,
        id_hash,
    }))
}

/// A page for signed-in people: without a session in force, the person is sent to sign in
/// and brought back.
impl FromRequestParts<AppState> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match session_of(parts, state).await? {
            Some(viewer) => {
                parts.extensions.insert(viewer.clone());
                Ok(viewer)
            }
            None => Err(ConsoleError::SignIn {
                next: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "/console".to_owned()),
            }),
        }
    }
}

/// A page anyone may read: `None` without a session in force.
impl OptionalFromRequestParts<AppState> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        session_of(parts, state).await
    }
}

/// Refuses a request that a browser says came from another site: `Sec-Fetch-Site` other than
/// `same-origin` (or `none`, typed by the person), or an `Origin` whose host is neither this
/// server's `Host` nor the `X-Forwarded-Host` a reverse proxy in front of it names (a page
/// on another site cannot make the person's browser send either header with its own value).
/// Clients that send neither are held to the anti-forgery token alone.
fn same_origin(headers: &HeaderMap) -> Result<(), ConsoleError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(ConsoleError::Forgery(format!(
            "the browser says this form was sent from another site or another origin of it, not \
             from this console (Sec-Fetch-Site: {site})"
        )));
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let named = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let origin_host = origin
            .split_once("://")
            .map(|(_, rest)| rest.trim_end_matches('/'));
        let ours = |host: Option<&str>| host.is_some() && host == origin_host;
        if !ours(named(header::HOST.as_str())) && !ours(named("x-forwarded-host")) {
            return Err(ConsoleError::Forgery(format!(
                "the form was sent from {origin}, not from this console"
            )));
        }
    }
    Ok(())
}

/// Equal in constant time (no early exit on the first difference).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A form posted by a signed-in person: same-origin, with this session's anti-forgery token,
/// its fields read into `T` (unknown fields, such as `csrf`, are ignored).
#[derive(Debug)]
pub struct Submitted<T> {
    /// Who posted it.
    pub viewer: Viewer,
    /// What it said.
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for Submitted<T> {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        same_origin(&parts.headers)?;
        let viewer =
            <Viewer as FromRequestParts<AppState>>::from_request_parts(&mut parts, state).await?;
        let bytes = read_form(body).await?;
        let csrf = form_urlencoded::parse(&bytes)
            .find(|(name, _)| name == "csrf")
            .map(|(_, value)| value.into_owned());
        match csrf {
            Some(token) if same_secret(token.as_bytes(), viewer.csrf.as_bytes()) => {}
            Some(_) => {
                return Err(ConsoleError::Forgery(
                    "the form's anti-forgery token is not this session's: reload the page and \
                     send it again"
                        .into(),
                ));
            }
            None => {
                return Err(ConsoleError::Forgery(
                    "the form has no anti-forgery token (csrf)".into(),
                ));
            }
        }
        let form = read_fields(&bytes)?;
        Ok(Submitted { viewer, form })
    }
}

async fn read_form(body: axum::body::Body) -> Result<axum::body::Bytes, ConsoleError> {
    axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            ConsoleError::Api(ApiError::BadRequest {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                message: format!("the form is larger than {MAX_FORM_BYTES} bytes"),
            })
        })
}

fn read_fields<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ConsoleError> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| {
        ConsoleError::Api(ApiError::BadRequest {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("the form could not be read: {e}"),
        })
    })
}

/// Whether the request reached us over TLS (directly, or through a proxy that says so).
fn over_tls(parts: &Parts) -> bool {
    parts.uri.scheme_str() == Some("https")
        || parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value for `secret`, living `max_age_s` seconds (0 clears it).
fn set_cookie(secret: &str, max_age_s: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    ))
    .expect("cookie secrets are base64url")
}

/// Where to go after signing in: a path on this server, else the desk. Anything that could
/// leave the site (`//host`, `/\host`, a scheme) is refused.
pub fn local_path(next: Option<&str>) -> String {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.contains('\\')
                && !p.chars().any(char::is_control) =>
        {
            p.to_owned()
        }
        _ => "/console".to_owned(),
    }
}

/// The routes of signing in and out.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", axum::routing::post(sign_out))
}

#[derive(Debug, Deserialize)]
struct Next {
    next: Option<String>,
}

fn sign_in_form(next: &str, problem: Option<&str>) -> Markup {
    html! {
        h1 { "Sign in" }
        p { "Sign in with an API token the authority issued you (" code { "runpermit token create" } "). \
             The console keeps a session for up to eight hours, or until the token is revoked or expires." }
        @if let Some(problem) = problem {
            p.error role="alert" id="sign-in-error" { (problem) }
        }
        form method="post" action="/console/sign-in" {
            input type="hidden" name="next" value=(next);
            label for="token" { "API token" }
            input id="token" name="token" type="password" autocomplete="off" required
                spellcheck="false" aria-describedby=[problem.map(|_| "sign-in-error")];
            button type="submit" { "Sign in" }
        }
    }
}

async fn sign_in_page(viewer: Option<Viewer>, Query(query): Query<Next>) -> Response {
    let next = local_path(query.next.as_deref());
    let body = match &viewer {
        Some(v) => html! {
            h1 { "Signed in" }
            p { "You are signed in as " strong { (v.caller.member_name) } ", "
                (v.caller.role.as_str()) " of " (v.caller.org_name) "." }
            p { a href=(next) { "Continue" } }
        },
        None => sign_in_form(&next, None),
    };
    page::respond(viewer.as_ref(), "Sign in", body)
}

#[derive(Debug, Deserialize)]
struct SignIn {
    token: String,
    next: Option<String>,
}

async fn sign_in(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
) -> Result<Response, ConsoleError> {
    let (parts, body) = request.into_parts();
    same_origin(&parts.headers)?;
    let bytes = read_form(body).await?;
    let form: SignIn = read_fields(&bytes)?;
    let next = local_path(form.next.as_deref());
    let now = state.clock.now_ms();
    let principal = state
        .store
        .authenticate(&token_hash(form.token.trim()), now)
        .await
        .map_err(ApiError::from)?;
    let Some(principal) = principal else {
        let body = sign_in_form(&next, Some("That token is unknown, revoked or expired."));
        let mut response = page::respond(None, "Sign in", body);
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return Ok(response);
    };
    let caller = Caller::from(principal);
    let secret = new_token_secret().map_err(|e| ApiError::Internal(e.to_string()))?;
    let csrf = new_random_hex().map_err(|e| ApiError::Internal(e.to_string()))?;
    let expires_at = caller
        .token_expires_at
        .map_or(now + SESSION_MS, |t| t.min(now + SESSION_MS));
    let session = Session {
        id_hash: token_hash(&secret),
        token_id: caller.token_id.clone(),
        csrf,
        created_at: now,
        expires_at,
        ended_at: None,
    };
    state
        .store
        .commit(vec![
            Write::InsertSession(session),
            event(
                Some(&caller),
                now,
                "session.create",
                &format!("member/{}", caller.member_id),
                None,
                json!({"token_id": caller.token_id, "expires_at": rfc3339(expires_at)}),
            ),
        ])
        .await
        .map_err(ApiError::from)?;
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&secret, (expires_at - now) / 1000, over_tls(&parts)),
    );
    Ok(response)
}

/// Ends the session and clears its cookie.
async fn sign_out(
    axum::extract::State(state): axum::extract::State<AppState>,
    submitted: Submitted<serde::de::IgnoredAny>,
) -> Result<Response, ConsoleError> {
    let viewer = submitted.viewer;
    let now = state.clock.now_ms();
    state
        .store
        .commit(vec![
            Write::EndSession {
                id_hash: viewer.id_hash.clone(),
                at: now,
            },
            event(
                Some(&viewer.caller),
                now,
                "session.end",
                &format!("member/{}", viewer.caller.member_id),
                None,
                json!({"token_id": viewer.caller.token_id}),
            ),
        ])
        .await
        .map_err(ApiError::from)?;
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie("", 0, false));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/console/reviews")), "/console/reviews");
        assert_eq!(local_path(Some("/runs?id=a&b=c")), "/runs?id=a&b=c");
        for away in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "",
            "/x\r\nSet-Cookie: a=b",
        ] {
            assert_eq!(local_path(Some(away)), "/console", "{away:?}");
        }
        assert_eq!(local_path(None), "/console");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&headers(&[])).is_ok());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_origin(&headers(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-site")])).is_err());
        let ok = headers(&[
            ("host", "authority.example:8080"),
            ("origin", "https://authority.example:8080"),
        ]);
        assert!(same_origin(&ok).is_ok());
        let other = headers(&[
            ("host", "authority.example:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(same_origin(&other).is_err());
        assert!(same_origin(&headers(&[("host", "a"), ("origin", "null")])).is_err());
        // Behind a reverse proxy that rewrites Host, the host the person used is forwarded.
        let proxied = headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "permits.example"),
            ("origin", "https://permits.example"),
        ]);
        assert!(same_origin(&proxied).is_ok());
        let elsewhere = headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "permits.example"),
            ("origin", "https://evil.example"),
        ]);
        assert!(same_origin(&elsewhere).is_err());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; runpermit_session=rpt_abc; b=2")]);
        assert_eq!(cookie_secret(&h).as_deref(), Some("rpt_abc"));
        assert_eq!(
            cookie_secret(&headers(&[("cookie", "runpermit_session=")])),
            None
        );
        assert_eq!(
            cookie_secret(&headers(&[("cookie", "xrunpermit_session=1")])),
            None
        );
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_tls() {
        let c = set_cookie("s", 60, true);
        let c = c.to_str().unwrap();
        for part in [
            "runpermit_session=s",
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Max-Age=60",
            "Path=/",
        ] {
            assert!(c.contains(part), "{part} in {c}");
        }
        assert!(
            !set_cookie("s", 60, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
