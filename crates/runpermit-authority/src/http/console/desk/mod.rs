//! The signed-in pages: each person's desk, by organization kind and role.

use axum::Router;
use axum::routing::get;
use maud::html;

use crate::http::console::page;
use crate::http::console::session::Viewer;
use crate::http::state::AppState;

pub use crate::http::console::nav::nav;

/// The routes of the signed-in pages.
pub fn routes() -> Router<AppState> {
    Router::new().route("/console", get(home))
}

async fn home(viewer: Viewer) -> axum::response::Response {
    let c = &viewer.caller;
    let body = html! {
        h1 { "Your desk" }
        p { "Signed in as " strong { (c.member_name) } ", " (c.role.as_str()) " of " (c.org_name)
            " (" (c.org_kind.as_str()) " organization)." }
        ul {
            @for (label, path) in nav(c) {
                li { a href=(path) { (label) } }
            }
        }
    };
    page::respond(Some(&viewer), "Your desk", body)
}
