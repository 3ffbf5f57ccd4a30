//! `/console`: what is waiting for the signed-in person, by role.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use crate::http::authz;
use crate::http::console::desk::{nav, reviews, widgets};
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::Viewer;
use crate::http::state::AppState;

/// The reviewer's part: how many applications wait for their decision.
async fn for_reviewer(state: &AppState, viewer: &Viewer) -> Result<Markup, ConsoleError> {
    if !authz::REVIEWS_CREATE.allows(Some(&viewer.caller)) {
        return Ok(html! {});
    }
    let waiting = reviews::waiting(state, &viewer.caller).await?;
    let names = widgets::org_names(state).await?;
    Ok(html! {
        section aria-labelledby="waiting-reviews" {
            h2 id="waiting-reviews" { "Applications waiting for your review" }
            @if waiting.is_empty() {
                p { "None." }
            } @else {
                ul {
                    @for (app, _) in waiting.iter().take(10) {
                        li {
                            a href={ "/console/applications/" (app.id) } { code { (app.id) } }
                            " — " (app.plan["run"]["name"].as_str().unwrap_or("–"))
                            ", " (widgets::org(&names, &app.org_id))
                            ", " (app.tier) ", " (format::flop(app.estimate.highest_flop().get()))
                        }
                    }
                }
                p { a href="/console/reviews" { "All " (waiting.len()) " in your queue" } }
            }
        }
    })
}

/// `GET /console`.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ConsoleError> {
    let c = &viewer.caller;
    let reviewer = for_reviewer(&state, &viewer).await?;
    let body = html! {
        h1 { "Your desk" }
        p { "Signed in as " strong { (c.member_name) } ", " (c.role.as_str()) " of " (c.org_name)
            " (" (c.org_kind.as_str()) " organization)." }
        (reviewer)
        h2 { "Your sections" }
        ul {
            @for (label, path) in nav(c).into_iter().skip(1) {
                li { a href=(path) { (label) } }
            }
        }
    };
    Ok(page::respond(Some(&viewer), "Your desk", body))
}
