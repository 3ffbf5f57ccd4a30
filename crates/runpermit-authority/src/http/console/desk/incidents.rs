//! Incidents with their deadlines, overdue follow-ups marked (scoped like
//! `GET /v1/incidents`), and the split-run flags of providers' KYC reports
//! (`GET /v1/kyc/flags`, the authority's staff only).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_api::incidents::{FollowUp, IncidentQuery, IncidentView};
use serde::Deserialize;

use crate::http::authz;
use crate::http::console::desk::widgets::{self, see_other};
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::{Submitted, Viewer, csrf_field};
use crate::http::error::{ApiJson, ApiQuery};
use crate::http::routes;
use crate::http::state::AppState;

fn incident_table(
    id: &str,
    incidents: &[&IncidentView],
    names: &BTreeMap<String, String>,
    now: i64,
) -> Markup {
    html! {
        div.table-wrap { table id=(id) {
            thead { tr {
                th scope="col" { "Incident" } th scope="col" { "Organization" } th scope="col" { "Run" }
                th scope="col" { "Category" } th scope="col" { "Summary" } th scope="col" { "Occurred" }
                th scope="col" { "Reported" } th scope="col" { "Follow-up" }
            } }
            tbody {
                @for i in incidents {
                    tr class=[i.overdue.then_some("overdue")] {
                        td { code { (i.id) } br; (widgets::badge(&i.status)) }
                        td { (widgets::org(names, &i.org_id)) }
                        td { @match &i.run_id { Some(r) => { a href={ "/console/runs/" (r) } { code { (r) } } } None => { "–" } } }
                        td { (i.category) }
                        td { (i.summary) }
                        td { (widgets::when_text(&i.occurred_at, now)) }
                        td {
                            (widgets::when_text(&i.reported_at, now))
                            @if i.reported_late { br; span.bad { "late: due " (widgets::when_text(&i.report_due, now)) } }
                        }
                        td {
                            @match (&i.followed_up_at, &i.follow_up) {
                                (Some(at), text) => {
                                    "done " (widgets::when_text(at, now))
                                    @if let Some(t) = text { br; span.muted { (t) } }
                                }
                                (None, _) => {
                                    @if i.overdue { strong.bad { "overdue" } ", due " } @else { "due " }
                                    (widgets::when_text(&i.follow_up_due, now))
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

/// `GET /console/incidents`: open incidents first, overdue ones marked; then closed ones.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(done): Query<widgets::Done>,
) -> Result<Response, ConsoleError> {
    let all = routes::incidents::list(
        State(state.clone()),
        viewer.caller.clone(),
        ApiQuery(IncidentQuery::default()),
    )
    .await?
    .0;
    let names = widgets::org_names(&state).await?;
    let now = state.clock.now_ms();
    let mut open: Vec<&IncidentView> = all.iter().filter(|i| i.status == "open").collect();
    // Overdue first, then by follow-up deadline.
    open.sort_by(|a, b| (!a.overdue, &a.follow_up_due).cmp(&(!b.overdue, &b.follow_up_due)));
    let closed: Vec<&IncidentView> = all.iter().filter(|i| i.status != "open").collect();
    let overdue = open.iter().filter(|i| i.overdue).count();
    let forms: Vec<Markup> = open
        .iter()
        .filter(|i| i.followed_up_at.is_none())
        .map(|i| follow_up_form(&viewer, i))
        .collect();
    let body = html! {
        h1 { "Incidents" }
        (done.notice())
        p { (open.len()) " open, " @if overdue > 0 { strong.bad { (overdue) " overdue" } } @else { "none overdue" } "." }
        h2 { "Open" }
        @if open.is_empty() { p { "No open incidents." } } @else { (incident_table("open-incidents", &open, &names, now)) }
        @if forms.iter().any(|f| !f.0.is_empty()) {
            h2 { "Follow-ups due" }
            @for f in &forms { (f) }
        }
        h2 { "Closed" }
        @if closed.is_empty() { p { "None." } } @else { (incident_table("closed-incidents", &closed, &names, now)) }
    };
    Ok(page::respond(Some(&viewer), "Incidents", body))
}

/// The follow-up form of open incident `i`, for those who may follow it up (its
/// organization's reporters and the authority's reviewers).
fn follow_up_form(viewer: &Viewer, i: &IncidentView) -> Markup {
    let caller = &viewer.caller;
    if !authz::INCIDENTS_FOLLOW_UP.allows(Some(caller)) || !caller.sees_org(&i.org_id) {
        return html! {};
    }
    let id = &i.id;
    html! {
        form.stack id={ "follow-up-" (id) } method="post" action={ "/console/incidents/" (id) "/follow-up" } {
            (csrf_field(viewer))
            h3 { "Incident " code { (id) } ": " (i.summary) }
            label for={ "follow-up-text-" (id) } { "Follow-up report (what happened since, what was done)" }
            textarea id={ "follow-up-text-" (id) } name="text" required {}
            label for={ "follow-up-close-" (id) } {
                input id={ "follow-up-close-" (id) } name="close" type="checkbox" value="true" checked;
                " Close the incident with this follow-up"
            }
            button type="submit" { "Send the follow-up" }
        }
    }
}

/// The follow-up form as posted (an unchecked box is not sent: the incident stays open).
#[derive(Debug, Deserialize)]
pub struct FollowUpForm {
    text: Option<String>,
    close: Option<String>,
}

/// `POST /console/incidents/{id}/follow-up`: the handler of
/// `POST /v1/incidents/{id}/follow-up`.
pub async fn follow_up(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<FollowUpForm>,
) -> Result<Response, ConsoleError> {
    let body = FollowUp {
        text: submitted.form.text.unwrap_or_default(),
        close: submitted.form.close.is_some(),
    };
    let _followed = routes::incidents::follow_up(
        State(state),
        submitted.viewer.caller,
        Path(id),
        ApiJson(body),
    )
    .await?;
    Ok(see_other("/console/incidents?done=follow_up"))
}

/// `GET /console/kyc`: customers whose unpermitted compute, summed over providers within the
/// policy's window, reaches the permit threshold.
pub async fn kyc(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ConsoleError> {
    let flags = routes::usage::kyc_flags(State(state.clone()), viewer.caller.clone())
        .await?
        .0;
    let names = widgets::org_names(&state).await?;
    let body = html! {
        h1 { "Split-run flags" }
        p { "Customers whose unpermitted compute reported by providers (know-your-customer reports) within the last "
            (flags.window_days) " days reaches the permit threshold"
            @if let Some(t) = flags.threshold { " (" (format::flop(t.get())) ")" } "." }
        @if flags.flags.is_empty() {
            p id="kyc-none" { "No customer is flagged." }
        } @else {
            div.table-wrap { table id="kyc-flags" {
                thead { tr {
                    th scope="col" { "Customer" } th scope="col" class="num" { "Unpermitted compute" }
                    th scope="col" { "Providers" } th scope="col" { "Split across providers" }
                } }
                tbody {
                    @for f in &flags.flags {
                        tr {
                            td { code { (f.customer) } }
                            td.num { (format::flop(f.total.get())) }
                            td { ul { @for (p, flop) in &f.providers { li { (widgets::org(&names, p)) ": " (format::flop(flop.get())) } } } }
                            td { @if f.split { span.bad { "yes: no provider alone reaches the threshold" } } @else { "no" } }
                        }
                    }
                }
            } }
        }
    };
    Ok(page::respond(Some(&viewer), "Split-run flags", body))
}
