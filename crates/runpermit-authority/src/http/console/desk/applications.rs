//! Applications: the list (scoped like `GET /v1/applications`) and one application with its
//! whole plan, estimate, tier, reviews, the organization's history, and the review form.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_api::applications::ApplicationView;
use runpermit_api::incidents::{IncidentQuery, IncidentView};
use runpermit_api::reviews::ReviewView;
use runpermit_store::Application;

use crate::domain::Caller;
use crate::domain::applications::estimate_of;
use crate::http::authz;
use crate::http::console::desk::reviews::{AWAITING_REVIEW, current_round};
use crate::http::console::desk::{plan, widgets};
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::{Viewer, csrf_field};
use crate::http::error::{ApiError, ApiQuery};
use crate::http::routes;
use crate::http::state::AppState;

fn run_name(app: &ApplicationView) -> &str {
    app.plan["run"]["name"].as_str().unwrap_or("–")
}

/// The applications `caller` may list, as `GET /v1/applications` scopes them (the
/// authority's staff: all; others: their organization's), newest first, from their records:
/// the API's full view of each would classify every plan again, which a list does not show.
pub async fn records(state: &AppState, caller: &Caller) -> Result<Vec<Application>, ConsoleError> {
    authz::APPLICATIONS_LIST.authorize(caller)?;
    let scope = (!caller.is_authority_staff()).then_some(caller.org_id.as_str());
    Ok(state
        .store
        .applications(scope)
        .await
        .map_err(ApiError::from)?)
}

/// The run's name in a stored plan.
fn record_run_name(app: &Application) -> String {
    serde_json::from_str::<serde_json::Value>(&app.plan_json)
        .ok()
        .and_then(|p| p["run"]["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "–".to_owned())
}

/// A table of applications, each linking to its page.
pub fn table(id: &str, apps: &[Application], names: &BTreeMap<String, String>, now: i64) -> Markup {
    html! {
        div.table-wrap { table id=(id) {
            thead { tr {
                th scope="col" { "Application" } th scope="col" { "Organization" }
                th scope="col" { "Run" } th scope="col" { "Status" } th scope="col" { "Tier" }
                th scope="col" class="num" { "Estimate" } th scope="col" { "Plan digest" } th scope="col" { "Updated" }
            } }
            tbody {
                @for app in apps {
                    tr {
                        td { a href={ "/console/applications/" (app.id) } { code { (app.id) } } }
                        td { (widgets::org(names, &app.org_id)) }
                        td { (record_run_name(app)) }
                        td { (widgets::badge(app.status.as_str())) }
                        td { (app.tier) }
                        td.num { (estimate_of(app).map_or("–".to_owned(), |e| format::flop(e.highest_flop().get()))) }
                        td { code { (app.plan_digest.chars().take(19).collect::<String>()) "…" } }
                        td { (format::when(app.updated_at, now)) }
                    }
                }
            }
        } }
    }
}

/// `GET /console/applications`: what `GET /v1/applications` answers this person.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ConsoleError> {
    let apps = records(&state, &viewer.caller).await?;
    let names = widgets::org_names(&state).await?;
    let now = state.clock.now_ms();
    let staff = viewer.caller.is_authority_staff();
    let body = html! {
        h1 { @if staff { "Applications" } @else { "Your organization's applications" } }
        @if apps.is_empty() {
            p { "No applications yet." }
            @if authz::APPLICATIONS_CREATE.allows(Some(&viewer.caller)) {
                p { "Apply with " code { "runpermit apply plan.toml" } " (see " a href="/verify" { "how it works" } ")." }
            }
        } @else {
            (table("applications", &apps, &names, now))
        }
    };
    Ok(page::respond(Some(&viewer), "Applications", body))
}

fn reviews_section(
    caller: &Caller,
    reviews: &[ReviewView],
    names: &BTreeMap<String, String>,
    now: i64,
) -> Markup {
    let round = current_round(reviews);
    html! {
        section aria-labelledby="reviews" {
            h2 id="reviews" { "Reviews" }
            @if reviews.is_empty() {
                p.muted { "No reviewer has decided yet." }
            } @else {
                div.table-wrap { table id="reviews-table" {
                    thead { tr {
                        th scope="col" { "Reviewer" } th scope="col" { "Decision" } th scope="col" { "Reason" }
                        th scope="col" { "Conditions" } th scope="col" { "Evaluators" } th scope="col" { "When" }
                    } }
                    tbody {
                        @for r in reviews {
                            @let in_round = round.iter().any(|x| x.id == r.id);
                            tr class=[(!in_round).then_some("muted")] {
                                td {
                                    @if r.reviewer_id == caller.member_id { strong { "You" } " " }
                                    code { (r.reviewer_id) } br; (widgets::org(names, &r.reviewer_org_id))
                                }
                                td { (widgets::badge(&r.decision)) @if !in_round { br; span.muted { "(earlier round)" } } }
                                td { (r.reason) }
                                td { @if r.conditions.is_empty() { "–" } @else { ul { @for c in &r.conditions { li { (c) } } } } }
                                td { @if r.evaluators.is_empty() { "–" } @else { @for e in &r.evaluators { (widgets::org(names, e)) br; } } }
                                td { (widgets::when_text(&r.created_at, now)) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

fn review_form(app: &ApplicationView, viewer: &Viewer, reviews: &[ReviewView]) -> Markup {
    let caller = &viewer.caller;
    if !authz::REVIEWS_CREATE.allows(Some(caller)) {
        return html! {};
    }
    if app.org_id == caller.org_id {
        return html! { p.muted { "Separation of duties: you do not review your own organization's application." } };
    }
    if !AWAITING_REVIEW.contains(&app.status.as_str()) {
        return html! { p.muted { "This application is " (app.status.replace('_', " ")) ": it awaits no review." } };
    }
    let mine = current_round(reviews)
        .iter()
        .any(|r| r.reviewer_id == caller.member_id && r.decision == "approve");
    html! {
        section aria-labelledby="decide" {
            h2 id="decide" { "Your decision" }
            @if mine {
                p.warn { "You have approved this application in this round; another reviewer must approve. You may still deny it or request changes." }
            }
            form.stack id="review" method="post" action={ "/console/applications/" (app.id) "/review" } {
                (csrf_field(viewer))
                label for="decision" { "Decision" }
                select id="decision" name="decision" required {
                    option value="" { "Choose…" }
                    option value="approve" { "Approve" }
                    option value="deny" { "Deny" }
                    option value="request_changes" { "Request changes" }
                }
                label for="reason" { "Reason (recorded, audited, shown to the applicant; public in the log)" }
                textarea id="reason" name="reason" required {}
                label for="conditions" { "Conditions, one per line (an approval's conditions become the permit's)" }
                textarea id="conditions" name="conditions" {}
                label for="evaluators" { "Evaluator organizations to assign (ids, separated by commas; approvals only; optional)" }
                input id="evaluators" name="evaluators" type="text" autocomplete="off";
                button type="submit" { "Record decision" }
            }
        }
    }
}

/// What a changed plan can be compared with: the authority keeps only a plan's current
/// version, so after "changes requested" the page says when it changed and what it was
/// asked to change, not a field-by-field comparison.
fn changes_section(app: &ApplicationView, reviews: &[ReviewView], now: i64) -> Markup {
    let Some(asked) = reviews
        .iter()
        .rev()
        .find(|r| r.decision == "request_changes")
    else {
        return html! {};
    };
    let changed = match (
        widgets::seconds(&app.updated_at),
        widgets::seconds(&asked.created_at),
    ) {
        (Some(u), Some(a)) => u > a,
        _ => false,
    };
    html! {
        section aria-labelledby="changes" {
            h2 id="changes" { "Changes since they were requested" }
            p { "Changes were requested " (widgets::when_text(&asked.created_at, now)) ": “" (asked.reason) "”" }
            @if changed {
                p { "The application changed afterwards (last " (widgets::when_text(&app.updated_at, now)) "); its plan digest is now " code { (app.plan_digest) } "." }
            } @else {
                p { "The plan has not changed since." }
            }
            p.muted { "The authority keeps only the current version of a plan, so the earlier version cannot be compared here field by field." }
        }
    }
}

fn history_section(
    app: &ApplicationView,
    earlier: &[Application],
    incidents: Option<&[IncidentView]>,
    names: &BTreeMap<String, String>,
    now: i64,
) -> Markup {
    html! {
        section aria-labelledby="history" {
            h2 id="history" { "The organization's record" }
            h3 { "Other applications" }
            @if earlier.is_empty() {
                p.muted { "No other applications from " (widgets::org(names, &app.org_id)) "." }
            } @else {
                (table("org-applications", earlier, names, now))
            }
            h3 { "Incidents" }
            @match incidents {
                None => { p.muted { "Incidents are not shown to your role." } }
                Some([]) => { p.muted { "No incidents reported by this organization." } }
                Some(list) => {
                    div.table-wrap { table id="org-incidents" {
                        thead { tr {
                            th scope="col" { "Incident" } th scope="col" { "Category" } th scope="col" { "Summary" }
                            th scope="col" { "Status" } th scope="col" { "Follow-up due" }
                        } }
                        tbody { @for i in list { tr {
                            td { code { (i.id) } }
                            td { (i.category) }
                            td { (i.summary) }
                            td { (widgets::badge(&i.status)) }
                            td { (widgets::when_text(&i.follow_up_due, now)) @if i.overdue { " " span.bad { "overdue" } } }
                        } } }
                    } }
                }
            }
        }
    }
}

/// `GET /console/applications/{id}`: through `GET /v1/applications/{id}` (404 outside the
/// person's scope, as the API answers), its reviews, and the organization's record.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(done): Query<widgets::Done>,
) -> Result<Response, ConsoleError> {
    let caller = viewer.caller.clone();
    let app = routes::applications::get(State(state.clone()), caller.clone(), Path(id.clone()))
        .await?
        .0;
    let reviews = routes::reviews::list(State(state.clone()), caller.clone(), Path(id.clone()))
        .await?
        .0;
    // The organization's other applications, as `GET /v1/applications` scopes them (the
    // caller sees this one, so it sees its organization's), from their records: a full view
    // of each would classify every plan again.
    authz::APPLICATIONS_LIST.authorize(&caller)?;
    let earlier: Vec<Application> = if caller.sees_org(&app.org_id) {
        state
            .store
            .applications(Some(&app.org_id))
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .filter(|a| a.id != app.id)
            .collect()
    } else {
        Vec::new()
    };
    let incidents = if authz::INCIDENTS_LIST.allows(Some(&caller)) {
        Some(
            routes::incidents::list(
                State(state.clone()),
                caller.clone(),
                ApiQuery(IncidentQuery::default()),
            )
            .await?
            .0
            .into_iter()
            .filter(|i| i.org_id == app.org_id)
            .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    let names = widgets::org_names(&state).await?;
    let now = state.clock.now_ms();
    let approvals = current_round(&reviews)
        .iter()
        .filter(|r| r.decision == "approve")
        .count();
    let body = html! {
        h1 { "Application " code { (app.id) } }
        (done.notice())
        dl.facts {
            dt { "Run" } dd { (run_name(&app)) }
            dt { "Organization" } dd { (widgets::org(&names, &app.org_id)) }
            dt { "Status" } dd { (widgets::badge(&app.status)) }
            dt { "Tier" } dd { (app.tier) " (" (app.decision.replace('_', " ")) ")" }
            dt { "Approvals" } dd { (approvals) " of " (app.approvals_required) " in this round" }
            dt { "Estimate" } dd { (format::flop(app.estimate.highest_flop().get())) }
            dt { "Plan digest" } dd { code { (app.plan_digest) } }
            dt { "Policy" } dd { (app.policy_version) }
            dt { "Submitted by" } dd { code { (app.created_by) } }
            dt { "Created" } dd { (widgets::when_text(&app.created_at, now)) }
            dt { "Updated" } dd { (widgets::when_text(&app.updated_at, now)) }
            @if let Some(p) = &app.permit_id {
                dt { "Permit" } dd { a href={ "/permits/" (p) } { code { (p) } } }
            }
            @if let Some(r) = &app.receipt_id {
                dt { "Exemption receipt" } dd { code { (r) } }
            }
        }
        nav aria-label="On this page" { ul {
            li { a href="#reviews" { "Reviews" } }
            li { a href="#tier" { "Tier" } }
            li { a href="#estimate" { "Estimate" } }
            li { a href="#plan-run" { "Plan" } }
            li { a href="#history" { "The organization's record" } }
        } }
        (reviews_section(&caller, &reviews, &names, now))
        (review_form(&app, &viewer, &reviews))
        (changes_section(&app, &reviews, now))
        (plan::tier_section(&state.policy, &app.tier, &app.policy_version, &app.review_reasons))
        (plan::estimate_section(&app.estimate))
        (plan::plan_sections(&app.plan, &names, now))
        (history_section(&app, &earlier, incidents.as_deref(), &names, now))
    };
    Ok(page::respond(
        Some(&viewer),
        &format!("Application {}", app.id),
        body,
    ))
}
