//! `/models` and `/models/{id}`: the registry of models that permitted runs produced, as
//! `GET /v1/models` answers anyone: name, developer, run and permit, checkpoint digest,
//! cumulative training compute, release plan, when it was registered. Grants of access to a
//! model are not public (only the grantee, the developer and authority staff see them) and
//! appear on no public page.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_api::models::ModelView;

use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::public::link;
use crate::http::console::session::Viewer;
use crate::http::routes;
use crate::http::state::AppState;

/// The public names of the organizations the log names, by id.
async fn names(state: &AppState) -> Result<BTreeMap<String, String>, ConsoleError> {
    Ok(state
        .store
        .log_organizations()
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect())
}

/// The developer as `Name (id)`, linking its log entries.
fn developer(names: &BTreeMap<String, String>, id: &str) -> Markup {
    html! {
        @if let Some(name) = names.get(id).filter(|n| *n != id) { (name) " " }
        "(" a href=(link("/log", &[("org", Some(id.to_owned()))])) { code { (id) } } ")"
    }
}

/// An RFC 3339 time from the API as the console writes times; the text itself when it does
/// not read.
fn registered(text: &str, now_ms: i64) -> Markup {
    match runpermit_policy::parse_timestamp(text) {
        Ok(s) => format::when_s(s, now_ms),
        Err(_) => html! { (text) },
    }
}

/// `GET /models`: every registered model, newest first, through `GET /v1/models`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
) -> Result<Response, ConsoleError> {
    let models = routes::models::list(State(state.clone())).await?.0;
    let names = names(&state).await?;
    let now = state.clock.now_ms();
    let body = html! {
        h1 { "Models" }
        p {
            "Models that permitted runs produced, registered by their developer: the checkpoint \
             registered (by its digest), the training compute it took, and how the developer \
             plans to release it. Each registration is also written to the public log. The same \
             registry is at " a href="/v1/models" { code { "/v1/models" } } "."
        }
        @if models.is_empty() {
            p { "No model is registered yet." }
        } @else {
            div.table-wrap { table id="models" {
                thead { tr {
                    th scope="col" { "Model" } th scope="col" { "Developer" }
                    th scope="col" { "Run and permit" } th scope="col" { "Checkpoint" }
                    th scope="col" class="num" { "Training compute" }
                    th scope="col" { "Release plan" } th scope="col" { "Registered" }
                } }
                tbody {
                    @for m in &models {
                        tr {
                            th scope="row" { a href={ "/models/" (m.id) } { (m.name) } br; span.muted { code { (m.id) } } }
                            td { (developer(&names, &m.org_id)) }
                            td { (run_and_permit(m)) }
                            td { code { (m.checkpoint_digest) } }
                            td.num { (format::flop(m.cumulative_flop)) }
                            td { (m.release_plan) }
                            td { (registered(&m.registered_at, now)) }
                        }
                    }
                }
            } }
        }
    };
    Ok(page::respond(viewer.as_ref(), "Models", body))
}

/// The run (its log entries) and its permit (its public page).
fn run_and_permit(m: &ModelView) -> Markup {
    html! {
        "run " a href=(link("/log", &[("run", Some(m.run_id.clone()))])) { code { (m.run_id) } }
        @if !m.permit_id.is_empty() {
            br; "permit " a href={ "/permits/" (m.permit_id) } { code { (m.permit_id) } }
        }
    }
}

/// `GET /models/{id}`: one registered model, through `GET /v1/models/{id}` (404 for an
/// unknown id).
pub async fn show(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let m = routes::models::get(State(state.clone()), Path(id)).await?.0;
    let names = names(&state).await?;
    let now = state.clock.now_ms();
    let title = format!("Model {}", m.name);
    let body = html! {
        h1 { "Model " (m.name) }
        dl.facts {
            dt { "Id" } dd { code { (m.id) } }
            dt { "Developer" } dd { (developer(&names, &m.org_id)) }
            dt { "Trained by" } dd { (run_and_permit(&m)) }
            @if let Some(ms) = &m.milestone_id {
                dt { "Milestone report" } dd { code { (ms) } }
            }
            dt { "Checkpoint" } dd { code { (m.checkpoint_digest) } }
            dt { "Training compute" } dd { (format::flop(m.cumulative_flop)) " (cumulative, at the checkpoint)" }
            dt { "Release plan" } dd { (m.release_plan) }
            dt { "Registered" } dd { (registered(&m.registered_at, now)) }
        }
        p {
            a href=(link("/log", &[("type", Some("model_registered".to_owned())), ("run", Some(m.run_id.clone()))])) {
                "Its registration in the public log"
            }
            " · " a href={ "/v1/models/" (m.id) } { "as JSON" } " · " a href="/models" { "every model" }
        }
    };
    Ok(page::respond(viewer.as_ref(), &title, body))
}

/// The models registered from `run_id`, as links (for a permit's page); nothing when none.
pub async fn of_run(state: &AppState, run_id: &str) -> Result<Markup, ConsoleError> {
    let models: Vec<_> = crate::domain::models::list(state)
        .await?
        .into_iter()
        .filter(|m| m.run_id == run_id)
        .collect();
    Ok(html! {
        @if !models.is_empty() {
            ul id="run-models" {
                @for m in &models {
                    li { a href={ "/models/" (m.id) } { (m.name) } " " span.muted { "(" (format::flop(m.cumulative_flop)) ", checkpoint " code { (m.checkpoint_digest) } ")" } }
                }
            }
        }
    })
}
