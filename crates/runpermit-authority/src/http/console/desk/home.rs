//! `/console`: what is waiting for the signed-in person, by role.

use axum::extract::State;
use axum::response::Response;
use maud::{Markup, html};

use runpermit_api::incidents::IncidentQuery;

use crate::http::authz::{self, OrgKind};
use crate::http::console::desk::{applications, milestones, nav, reviews, runs, widgets};
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::Viewer;
use crate::http::error::ApiQuery;
use crate::http::routes;
use crate::http::state::AppState;

/// Application statuses that still need someone to act.
const OPEN_APPLICATION: &[&str] = &[
    "draft",
    "submitted",
    "under_review",
    "changes_requested",
    "appealed",
];

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

/// The lab's part: what is due next (milestone reports, incident follow-ups), its open
/// applications and its runs with their usage by provider.
async fn for_lab(state: &AppState, viewer: &Viewer) -> Result<Markup, ConsoleError> {
    let caller = &viewer.caller;
    if caller.org_kind != OrgKind::Developer || !authz::RUNS_LIST.allows(Some(caller)) {
        return Ok(html! {});
    }
    let now = state.clock.now_ms();
    let names = widgets::org_names(state).await?;
    let apps: Vec<_> = applications::records(state, caller)
        .await?
        .into_iter()
        .filter(|a| OPEN_APPLICATION.contains(&a.status.as_str()))
        .collect();
    let run_list = routes::runs::list(State(state.clone()), caller.clone())
        .await?
        .0;
    let incidents = routes::incidents::list(
        State(state.clone()),
        caller.clone(),
        ApiQuery(IncidentQuery::default()),
    )
    .await?
    .0;
    let open_incidents: Vec<_> = incidents
        .iter()
        .filter(|i| i.status == "open" && i.followed_up_at.is_none())
        .collect();
    let mut usage = Vec::new();
    for run in run_list.iter().take(10) {
        let detail = routes::runs::get(
            State(state.clone()),
            caller.clone(),
            axum::extract::Path(run.id.clone()),
        )
        .await?
        .0;
        usage.push(detail);
    }
    Ok(html! {
        section aria-labelledby="due" {
            h2 id="due" { "Due next" }
            ul id="due-list" {
                @for r in &run_list {
                    @if r.status == "milestone_due" {
                        li.warn { "A milestone report is due for run "
                            a href={ "/console/runs/" (r.id) "#report-milestone" } { code { (r.id) } }
                            " (tranche " (r.tranche) " used up)." }
                    } @else if r.status == "paused" {
                        li.warn { "Run " a href={ "/console/runs/" (r.id) } { code { (r.id) } } " is paused: " (r.reason) }
                    }
                }
                @for i in &open_incidents {
                    li class=(if i.overdue { "bad" } else { "warn" }) {
                        "Incident " a href={ "/console/incidents#follow-up-" (i.id) } { code { (i.id) } } " (" (i.category) ") needs its follow-up "
                        @if i.overdue { "— overdue since " } @else { "by " }
                        (widgets::when_text(&i.follow_up_due, now)) "."
                    }
                }
                @for a in &apps {
                    @if matches!(a.status.as_str(), "changes_requested" | "draft") {
                        li { "Application " a href={ "/console/applications/" (a.id) } { code { (a.id) } } " is "
                            (a.status.as_str().replace('_', " ")) ": change and submit it with " code { "runpermit" } "." }
                    }
                }
            }
            @if !run_list.iter().any(|r| r.status == "milestone_due" || r.status == "paused") && open_incidents.is_empty() {
                p { "Nothing is due." }
            }
        }
        section aria-labelledby="open-applications" {
            h2 id="open-applications" { "Applications in progress" }
            @if apps.is_empty() { p { "None." } } @else { (applications::table("open-applications-table", &apps, &names, now)) }
            p { a href="/console/applications" { "All your applications" } }
        }
        section aria-labelledby="your-runs" {
            h2 id="your-runs" { "Your runs" }
            @if run_list.is_empty() { p { "No permitted runs yet." } } @else {
                (runs::table(&run_list, &names, false, now))
                h3 { "Usage by provider" }
                ul {
                    @for d in &usage {
                        li { code { (d.run.id) } ": "
                            @if d.usage_by_provider.is_empty() { "no usage reported yet" }
                            @for (p, u) in &d.usage_by_provider {
                                (widgets::org(&names, p)) " " (format::flop(u.flop))
                                @if u.missing_reports > 0 { " (" (u.missing_reports) " reports missing)" } "; "
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The evaluator's part: milestone reports waiting for a decision.
async fn for_evaluator(state: &AppState, viewer: &Viewer) -> Result<Markup, ConsoleError> {
    let caller = &viewer.caller;
    if caller.org_kind != OrgKind::Evaluator || !authz::MILESTONES_LIST.allows(Some(caller)) {
        return Ok(html! {});
    }
    let waiting = milestones::waiting(state, caller).await?;
    Ok(html! {
        section aria-labelledby="waiting-milestones" {
            h2 id="waiting-milestones" { "Milestone reports waiting for evaluation" }
            @if waiting.is_empty() { p { "None." } } @else {
                ul { @for (run, m) in &waiting {
                    li { a href={ "/console/milestones#milestone-" (m.id) } { code { (m.id) } } ", tranche " (m.tranche) " of run " code { (run.id) } }
                } }
            }
        }
    })
}

/// The provider's part: the runs it meters.
async fn for_provider(state: &AppState, viewer: &Viewer) -> Result<Markup, ConsoleError> {
    let caller = &viewer.caller;
    if caller.org_kind != OrgKind::Provider || !authz::RUNS_LIST.allows(Some(caller)) {
        return Ok(html! {});
    }
    let metered = routes::runs::list(State(state.clone()), caller.clone())
        .await?
        .0;
    let held = metered.iter().filter(|r| !r.in_good_standing).count();
    Ok(html! {
        section aria-labelledby="metered" {
            h2 id="metered" { "Runs you meter" }
            p { (metered.len()) " run(s), " (held) " not in good standing (your gate must hold their jobs). "
                a href="/console/provider" { "Your reports, gaps and keys" } }
        }
    })
}

/// The authority staff's part: overdue incident follow-ups, runs not in good standing,
/// split-run flags.
async fn for_staff(state: &AppState, viewer: &Viewer) -> Result<Markup, ConsoleError> {
    let caller = &viewer.caller;
    if !caller.is_authority_staff() {
        return Ok(html! {});
    }
    let incidents = routes::incidents::list(
        State(state.clone()),
        caller.clone(),
        ApiQuery(IncidentQuery { overdue: true }),
    )
    .await?
    .0;
    let held: Vec<_> = routes::runs::list(State(state.clone()), caller.clone())
        .await?
        .0
        .into_iter()
        .filter(|r| {
            !r.in_good_standing
                && !matches!(r.status.as_str(), "revoked" | "terminated" | "completed")
        })
        .collect();
    let flags = routes::usage::kyc_flags(State(state.clone()), caller.clone())
        .await?
        .0
        .flags;
    Ok(html! {
        section aria-labelledby="oversight" {
            h2 id="oversight" { "Oversight" }
            ul {
                li { a href="/console/incidents" { (incidents.len()) " incident follow-up(s) overdue" } }
                li { a href="/console/runs" { (held.len()) " run(s) held (paused, suspended or awaiting a milestone)" } }
                li { a href="/console/kyc" { (flags.len()) " customer(s) flagged for unpermitted compute" } }
            }
        }
    })
}

/// `GET /console`.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ConsoleError> {
    let c = &viewer.caller;
    let reviewer = for_reviewer(&state, &viewer).await?;
    let staff = for_staff(&state, &viewer).await?;
    let lab = for_lab(&state, &viewer).await?;
    let evaluator = for_evaluator(&state, &viewer).await?;
    let provider = for_provider(&state, &viewer).await?;
    let body = html! {
        h1 { "Your desk" }
        p { "Signed in as " strong { (c.member_name) } ", " (c.role.as_str()) " of " (c.org_name)
            " (" (c.org_kind.as_str()) " organization)." }
        (reviewer)
        (staff)
        (lab)
        (evaluator)
        (provider)
        h2 { "Your sections" }
        ul {
            @for (label, path) in nav(c).into_iter().skip(1) {
                li { a href=(path) { (label) } }
            }
        }
    };
    Ok(page::respond(Some(&viewer), "Your desk", body))
}
