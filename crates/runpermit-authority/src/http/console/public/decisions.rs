//! `/decisions`: every decision the log records, with its public reason.
//!
//! What the log holds: one `decision` entry per decision on an application (by the policy, or
//! by the reviewer whose decision settles it), with that decision's public reason. At the top
//! tier an approval needs two reviewers; the first approval is recorded by the authority
//! (audit trail, reviews) but not logged, so only the reason of the approval that completed
//! the round is public. Changes requested and denials are each logged with their reason.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::html;
use runpermit_log::{LogEntry, decode};
use runpermit_store::LogFilter;

use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::public::{PAGE, Params, link, pager};
use crate::http::console::session::Viewer;
use crate::http::state::AppState;

/// `GET /decisions`: newest first; `before` pages back.
pub async fn page(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let params = Params::parse(query.as_deref());
    let before = params.number("before", 0)?;
    let rows = state
        .store
        .log_search(
            &LogFilter {
                types: vec!["decision".to_owned()],
                before,
                ..LogFilter::default()
            },
            PAGE,
        )
        .await?;
    let now = state.clock.now_ms();
    let older = (rows.len() as i64 == PAGE)
        .then(|| {
            rows.last().map(|r| {
                (
                    link("/decisions", &[("before", Some(r.idx.to_string()))]),
                    "Older",
                )
            })
        })
        .flatten();
    let newer = before.map(|_| ("/decisions".to_owned(), "Newest"));
    let body = html! {
        h1 { "Decisions" }
        p {
            "Every decision on an application, as the log records it, with its public reason. \
             The plans behind them are confidential; the log holds each plan's digest (see the \
             application's " code { "application_submitted" } " entry)."
        }
        p.muted {
            "At the top tier two reviewers from outside the applicant must approve. The log \
             records the decision when the second approval completes it, with that reviewer's \
             reason; the first reviewer's approval and reason are kept in the authority's \
             records but are not in the public log. Requests for changes and denials are \
             logged each with their own reason."
        }
        div.table-wrap {
            table #decisions {
                thead {
                    tr {
                        th scope="col" { "Decided" }
                        th scope="col" { "Application" }
                        th scope="col" { "Applicant" }
                        th scope="col" { "Decision" }
                        th scope="col" { "Tier" }
                        th scope="col" { "Public reason" }
                        th scope="col" class="num" { "Entry" }
                    }
                }
                tbody {
                    @for row in &rows {
                        @if let Ok((LogEntry::Decision { application_id, decision, tier, policy_version, reason }, at)) = decode(&row.entry) {
                            tr {
                                td { (format::when_s(at, now)) }
                                td { a href=(link("/log", &[("application", Some(application_id.clone()))])) { code { (application_id) } } }
                                td { @match (&row.org_id, &row.org_name) {
                                    (Some(id), Some(name)) => { (name) " " span.muted { "(" code { (id) } ")" } }
                                    (Some(id), None) => { code { (id) } }
                                    _ => { span.muted { "unknown" } }
                                } }
                                td { strong { (decision.as_str().replace('_', " ")) } }
                                td { (tier) br; span.muted { "policy " (policy_version) } }
                                td { @match reason { Some(r) => (r), None => span.muted { "none given: decided by the policy" } } }
                                td.num { a href=(format!("/log/entries/{}", row.idx)) { (row.idx) } }
                            }
                        }
                    }
                }
            }
        }
        @if rows.is_empty() { p { "No decision is logged yet." } }
        (pager(newer, older))
    };
    Ok(page::respond(viewer.as_ref(), "Decisions", body))
}
