//! `/status`: the signed status list (the permits gates must refuse), decoded.

use axum::extract::State;
use axum::response::Response;
use maud::html;

use crate::domain::permits::verifying_keys;
use crate::domain::runs::status_list::status_list;
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::public::entry::encode;
use crate::http::console::session::Viewer;
use crate::http::state::AppState;

/// `GET /status`: the list as `/v1/status-list` serves it now, verified and decoded.
pub async fn page(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
) -> Result<Response, ConsoleError> {
    let token = status_list(&state).await?;
    let jwks = verifying_keys(&state, None).await?;
    let claims = runpermit_permit::verify_status_list(&token, &jwks);
    let now = state.clock.now_ms();
    let body = html! {
        h1 { "Status list" }
        p {
            "The permits that are not in good standing, signed by the authority for compute \
             providers' gates to poll: a gate refuses new work under a permit listed here. \
             The raw signed token (JWT) is at " a href="/v1/status-list" { code { "/v1/status-list" } }
            "; it verifies with the keys at " a href="/.well-known/jwks.json" { code { "/.well-known/jwks.json" } } "."
        }
        @match &claims {
            Err(e) => { p.error role="alert" { "The list does not verify: " (e.to_string()) } }
            Ok(c) => {
                dl.facts {
                    dt { "Issuer" } dd { code { (c.iss) } }
                    dt { "Version" } dd { (c.version) }
                    dt { "Signed" } dd { (format::when_s(c.iat, now)) }
                    dt { "Valid until" } dd { (format::when_s(c.exp, now)) }
                    dt { "Permits listed" } dd { (c.entries.len()) }
                }
                div.table-wrap {
                    table #status-list {
                        thead {
                            tr {
                                th scope="col" { "Permit" }
                                th scope="col" { "Status" }
                                th scope="col" { "Why" }
                                th scope="col" { "Since" }
                            }
                        }
                        tbody {
                            @for e in &c.entries {
                                tr {
                                    td { a href=(format!("/permits/{}", encode(&e.permit_id))) { code { (e.permit_id) } } }
                                    td { (e.status.as_str().replace('_', " ")) }
                                    td { (e.reason) }
                                    td { (format::when_s(e.since, now)) }
                                }
                            }
                        }
                    }
                }
                @if c.entries.is_empty() { p { "Every permit in force is in good standing." } }
            }
        }
        details {
            summary { "The signed token" }
            pre.mono { (token) }
        }
    };
    Ok(page::respond(viewer.as_ref(), "Status list", body))
}
