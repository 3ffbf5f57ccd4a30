//! The web console: server-rendered HTML pages on the authority's own port.
//!
//! - [`public`]: what anyone may read without signing in — the registry of permits, decisions,
//!   the log browser, the decoded status list, the organization directory, how to verify. Only
//!   what the log already makes public; confidential plan content stays behind its digest.
//! - [`desk`]: the signed-in pages of reviewers, evaluators, labs and providers, and the forms
//!   through which they act.
//! - [`session`]: sign-in with an API token, the session cookie (stored in the database so
//!   that every `serve` process shares it), the anti-forgery token on every form, sign-out.
//!
//! The console is not a second policy: every page reads through the API's own handlers or the
//! domain services they call, with the signed-in person as the [`Caller`], so the endpoint
//! table (`http::authz`) and the resource scoping decide what a page may show and what a form
//! may do, and every action is audited exactly as through the API. Pages work without
//! JavaScript; charts are SVG drawn here.
//!
//! [`Caller`]: crate::domain::Caller

pub mod desk;
pub mod error;
pub mod format;
pub mod nav;
pub mod page;
pub mod public;
pub mod session;
pub mod viewer;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

use crate::http::state::AppState;

/// The console's style sheet, compiled in.
const CSS: &str = include_str!("../../../static/console.css");

/// The console's routes; `http::router` merges them with the API's.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console/static/console.css", get(css))
        .route("/dashboard", get(|| async { Redirect::to("/console") }))
        .merge(session::routes())
        .merge(public::routes())
        .merge(desk::routes())
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
}
