//! `/orgs`: the organization directory: the public names of the organizations the log
//! names (applicants, holders, providers, evaluators). Ids, names and kinds only: never
//! members or tokens.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use crate::http::console::error::ConsoleError;
use crate::http::console::page;
use crate::http::console::public::link;
use crate::http::console::session::Viewer;
use crate::http::state::AppState;

/// `GET /orgs`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
) -> Result<Response, ConsoleError> {
    let orgs = state.store.log_organizations().await?;
    let body = html! {
        h1 { "Organizations" }
        p {
            "The log names organizations by id. These are the names of those it names: \
             applicants and permit holders, and the providers and evaluators that permits \
             name."
        }
        div.table-wrap {
            table #orgs {
                thead {
                    tr {
                        th scope="col" { "Id" }
                        th scope="col" { "Name" }
                        th scope="col" { "Kind" }
                        th scope="col" { "In the log" }
                    }
                }
                tbody {
                    @for o in &orgs {
                        tr {
                            td { code { (o.id) } }
                            td { (o.name) }
                            td { (o.kind.as_str()) }
                            td { a href=(link("/log", &[("org", Some(o.id.clone()))])) { "entries" } }
                        }
                    }
                }
            }
        }
        @if orgs.is_empty() { p { "The log names no organization yet." } }
    };
    Ok(page::respond(viewer.as_ref(), "Organizations", body))
}
