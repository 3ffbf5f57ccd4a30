//! The evaluator's queue: milestone reports awaiting a decision on the runs whose permits name
//! the evaluator's organization (never its own organization's runs), each with its results,
//! checkpoint, the run's compute (central estimate with its bounds) and operation counting
//! (6·N·D) beside the metered figure, highlighted when the run is flagged for the gap; accept
//! or reject through the handlers of `POST /v1/milestones/{id}/accept|reject`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_api::runs::{MilestoneView, Reason, RunFlagView, RunView};
use serde::Deserialize;

use crate::domain::Caller;
use crate::http::authz::{self, OrgKind};
use crate::http::console::desk::runs::{
    evals_table, figure_words, gap_flag, operation_count_facts,
};
use crate::http::console::desk::widgets::{self, see_other};
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::{Submitted, Viewer, csrf_field};
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes;
use crate::http::state::AppState;

/// The milestone reports awaiting a decision that `caller` may see, with their runs, oldest
/// first; read through `GET /v1/runs` and `GET /v1/runs/{id}/milestones`.
pub async fn waiting(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<(RunView, MilestoneView)>, ConsoleError> {
    authz::MILESTONES_LIST.authorize(caller)?;
    if !(caller.org_kind == OrgKind::Evaluator || caller.is_authority_staff()) {
        return Err(ApiError::Forbidden(
            "the milestone queue is for evaluators and the authority's staff".into(),
        )
        .into());
    }
    let runs = routes::runs::list(State(state.clone()), caller.clone())
        .await?
        .0;
    let mut out = Vec::new();
    for run in runs {
        if run.org_id == caller.org_id {
            continue;
        }
        let milestones = routes::runs::list_milestones(
            State(state.clone()),
            caller.clone(),
            Path(run.id.clone()),
        )
        .await?
        .0;
        for m in milestones {
            if m.status == "submitted" {
                out.push((run.clone(), m));
            }
        }
    }
    out.sort_by(|a, b| a.1.submitted_at.cmp(&b.1.submitted_at));
    Ok(out)
}

fn decide_form(viewer: &Viewer, run: &RunView, m: &MilestoneView) -> Markup {
    let caller = &viewer.caller;
    if !authz::MILESTONES_ACCEPT.allows(Some(caller)) || run.org_id == caller.org_id {
        return html! { p.muted { "Only an evaluator of an organization the permit names decides this report." } };
    }
    let id = &m.id;
    html! {
        form.stack id={ "decide-" (id) } method="post" action={ "/console/milestones/" (id) "/decide" } {
            (csrf_field(viewer))
            label for={ "decision-" (id) } { "Decision" }
            select id={ "decision-" (id) } name="decision" required {
                option value="" { "Choose…" }
                option value="accept" { "Accept: release tranche " (run.tranche + 1) }
                option value="reject" { "Reject: pause the run" }
            }
            label for={ "reason-" (id) } { "Reason (audited and logged publicly)" }
            textarea id={ "reason-" (id) } name="reason" required {}
            button type="submit" { "Record decision" }
        }
    }
}

fn report(
    viewer: &Viewer,
    run: &RunView,
    m: &MilestoneView,
    flags: &[RunFlagView],
    names: &BTreeMap<String, String>,
    now: i64,
) -> Markup {
    html! {
        article.milestone id={ "milestone-" (m.id) } aria-labelledby={ "milestone-title-" (m.id) } {
            h2 id={ "milestone-title-" (m.id) } { "Tranche " (m.tranche) " of run " code { (run.id) } }
            dl.facts {
                dt { "Report" } dd { code { (m.id) } ", submitted " (widgets::when_text(&m.submitted_at, now)) }
                dt { "Holder" } dd { (widgets::org(names, &run.org_id)) }
                dt { "Run" } dd { a href={ "/console/runs/" (run.id) } { "the run's page, with its chart" } " — " (widgets::badge(&run.status)) }
                dt { "Checkpoint digest" } dd { code { (m.checkpoint_digest) } }
                dt { "Compute at the checkpoint" } dd { (format::flop(m.cumulative_flop)) }
                (operation_count_facts(m, gap_flag(flags, &m.id)))
                dt { "Metered compute now" } dd {
                    "central estimate " (format::flop(run.cumulative_flop))
                    " (lower bound " (format::flop(run.cumulative_lower_flop)) ", upper bound " (format::flop(run.cumulative_upper_flop)) ")"
                    " of " (format::flop(run.released_flop)) " released; judged on the " (figure_words(&run.tranche_figure)) ": "
                    (format!("{:.1}%", run.tranche_percent)) "; budget " (format::flop(run.budget_flop))
                }
            }
            h3 { "Evaluation results" }
            p.muted { "Laid out against the thresholds the report states. The run plan (with its evaluation plan) is confidential to the holder and the authority." }
            (evals_table(&m.evals))
            (decide_form(viewer, run, m))
        }
    }
}

/// `GET /console/milestones`.
pub async fn queue(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(done): Query<widgets::Done>,
) -> Result<Response, ConsoleError> {
    let waiting = waiting(&state, &viewer.caller).await?;
    // The flags of each run with a report waiting, through `GET /v1/runs/{id}`: an evaluator
    // the permit names reads the run.
    let mut flags: BTreeMap<String, Vec<RunFlagView>> = BTreeMap::new();
    for (run, _) in &waiting {
        if !flags.contains_key(&run.id) {
            let detail = routes::runs::get(
                State(state.clone()),
                viewer.caller.clone(),
                Path(run.id.clone()),
            )
            .await?
            .0;
            flags.insert(run.id.clone(), detail.flags);
        }
    }
    let names = widgets::org_names(&state).await?;
    let now = state.clock.now_ms();
    let body = html! {
        h1 { "Milestone reports awaiting evaluation" }
        (done.notice())
        @if waiting.is_empty() {
            p id="milestone-queue-empty" { "No milestone report is waiting." }
        }
        div.table-wrap { table id="milestone-queue" {
            caption.muted { (waiting.len()) " waiting, oldest first" }
            thead { tr {
                th scope="col" { "Report" } th scope="col" { "Run" } th scope="col" { "Holder" }
                th scope="col" class="num" { "Tranche" } th scope="col" class="num" { "At" }
                th scope="col" class="num" { "6·N·D" }
                th scope="col" { "Submitted" }
            } }
            tbody {
                @for (run, m) in &waiting {
                    tr {
                        td { a href={ "#milestone-" (m.id) } { code { (m.id) } } }
                        td { a href={ "/console/runs/" (run.id) } { code { (run.id) } } }
                        td { (widgets::org(&names, &run.org_id)) }
                        td.num { (m.tranche) }
                        td.num { (format::flop(m.cumulative_flop)) }
                        td.num {
                            @match m.operation_count_flop {
                                Some(ops) => {
                                    (format::flop(ops))
                                    @if gap_flag(flags.get(&run.id).map_or(&[][..], Vec::as_slice), &m.id).is_some() {
                                        br; strong.bad { "flagged" }
                                    }
                                }
                                None => { span.muted { "–" } }
                            }
                        }
                        td { (widgets::when_text(&m.submitted_at, now)) }
                    }
                }
            }
        } }
        @for (run, m) in &waiting {
            (report(&viewer, run, m, flags.get(&run.id).map_or(&[][..], Vec::as_slice), &names, now))
        }
    };
    Ok(page::respond(Some(&viewer), "Milestones", body))
}

/// The decision form as posted.
#[derive(Debug, Deserialize)]
pub struct DecideForm {
    decision: Option<String>,
    reason: Option<String>,
}

/// `POST /console/milestones/{id}/decide`: the handler of `POST /v1/milestones/{id}/accept`
/// or `/reject`.
pub async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<DecideForm>,
) -> Result<Response, ConsoleError> {
    let caller = submitted.viewer.caller;
    let body = ApiJson(Reason {
        reason: submitted.form.reason.unwrap_or_default(),
    });
    let _decided = match submitted.form.decision.as_deref().unwrap_or_default() {
        "accept" => routes::runs::accept_milestone(State(state), caller, Path(id), body).await?,
        "reject" => routes::runs::reject_milestone(State(state), caller, Path(id), body).await?,
        other => {
            return Err(ApiError::field(
                "decision",
                format!("{other:?} is not a decision: choose accept or reject"),
            )
            .into());
        }
    };
    Ok(see_other("/console/milestones?done=decide"))
}
