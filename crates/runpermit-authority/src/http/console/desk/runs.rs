//! Runs: the list (scoped like `GET /v1/runs`) and one run with its usage by provider, its
//! chart, its milestones, the actions this person may take, and the lab's milestone report
//! form. Every action goes through the handler of its API endpoint.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_api::runs::{
    MilestoneView, NewMilestone, ProviderUsage, Reason, RunView, UsageQuery, UsageReportView,
};
use serde::Deserialize;

use crate::http::authz::OrgKind;
use crate::http::console::desk::chart::{self, Chart};
use crate::http::console::desk::widgets::{self, see_other};
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::{Submitted, Viewer, csrf_field};
use crate::http::error::{ApiError, ApiJson, ApiQuery};
use crate::http::routes;
use crate::http::state::AppState;

/// The run actions the action form offers (milestones have their own forms).
pub const RUN_ACTIONS: &[&str] = &[
    "pause",
    "resume",
    "suspend",
    "revoke",
    "terminate",
    "complete",
    "appeal",
];

/// Most usage-report pages (of 1000) read for one run's chart.
const MAX_USAGE_PAGES: usize = 50;

fn percent_of_tranche(run: &RunView) -> String {
    format::percent(run.cumulative_flop, run.released_flop)
}

/// A table of runs. Providers, who may list the runs they meter but not read a run, are
/// sent to their own page's entry for it.
pub fn table(
    runs: &[RunView],
    names: &BTreeMap<String, String>,
    provider: bool,
    now: i64,
) -> Markup {
    html! {
        div.table-wrap { table id="runs" {
            thead { tr {
                th scope="col" { "Run" } th scope="col" { "Holder" } th scope="col" { "Status" }
                th scope="col" class="num" { "Tranche" } th scope="col" class="num" { "Used" }
                th scope="col" class="num" { "Of released" } th scope="col" class="num" { "Budget" }
                th scope="col" { "Status since" }
            } }
            tbody {
                @for r in runs {
                    tr {
                        td {
                            @if provider {
                                a href={ "/console/provider#run-" (r.id) } { code { (r.id) } }
                            } @else {
                                a href={ "/console/runs/" (r.id) } { code { (r.id) } }
                            }
                        }
                        td { (widgets::org(names, &r.org_id)) }
                        td { (widgets::badge(&r.status)) @if !r.reason.is_empty() { br; span.muted { (r.reason) } } }
                        td.num { (r.tranche) }
                        td.num { (format::flop(r.cumulative_flop)) }
                        td.num { (percent_of_tranche(r)) " of " (format::flop(r.released_flop)) }
                        td.num { (format::flop(r.budget_flop)) }
                        td { (widgets::when_text(&r.status_since, now)) }
                    }
                }
            }
        } }
    }
}

/// `GET /console/runs`: what `GET /v1/runs` answers this person (a provider: the runs it
/// meters; an evaluator: the runs it is assigned).
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ConsoleError> {
    let runs = routes::runs::list(State(state.clone()), viewer.caller.clone())
        .await?
        .0;
    let names = widgets::org_names(&state).await?;
    let now = state.clock.now_ms();
    let provider = viewer.caller.org_kind == OrgKind::Provider;
    let body = html! {
        h1 { "Runs" }
        p.muted { @match viewer.caller.org_kind {
            OrgKind::Provider => "The runs whose permits name your organization as a provider.",
            OrgKind::Evaluator => "The runs whose permits name your organization as an evaluator.",
            OrgKind::Developer => "Your organization's permitted runs.",
            OrgKind::Authority => "Every permitted run.",
        } }
        @if runs.is_empty() { p { "No runs." } } @else { (table(&runs, &names, provider, now)) }
    };
    Ok(page::respond(Some(&viewer), "Runs", body))
}

/// Every usage report of a run the caller may read, through `GET /v1/runs/{id}/usage`, page
/// by page; `true` when there were more than the chart reads.
async fn all_reports(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
) -> Result<(Vec<UsageReportView>, bool), ConsoleError> {
    let mut out = Vec::new();
    let mut after: Option<(String, i64)> = None;
    for _ in 0..MAX_USAGE_PAGES {
        let (after_provider, after_seq) = match after.take() {
            Some((p, s)) => (Some(p), Some(s)),
            None => (None, None),
        };
        let page = routes::runs::usage(
            State(state.clone()),
            viewer.caller.clone(),
            Path(id.to_owned()),
            ApiQuery(UsageQuery {
                after_provider,
                after_seq,
                limit: Some(1000),
            }),
        )
        .await?
        .0;
        out.extend(page.reports);
        match page.next {
            Some(next) => after = Some((next.after_provider, next.after_seq)),
            None => return Ok((out, false)),
        }
    }
    Ok((out, true))
}

fn usage_table(
    usage: &BTreeMap<String, ProviderUsage>,
    names: &BTreeMap<String, String>,
) -> Markup {
    html! {
        @if usage.is_empty() {
            p.muted { "No usage reported yet." }
        } @else {
            div.table-wrap { table id="usage-by-provider" {
                thead { tr {
                    th scope="col" { "Provider" } th scope="col" class="num" { "Reports" }
                    th scope="col" class="num" { "Missing" } th scope="col" class="num" { "Metered" }
                    th scope="col" class="num" { "Lower" } th scope="col" class="num" { "Upper" }
                    th scope="col" { "Period" }
                } }
                tbody {
                    @for (provider, u) in usage {
                        tr {
                            td { (widgets::org(names, provider)) }
                            td.num { (u.reports) }
                            td.num { @if u.missing_reports > 0 { span.warn { (u.missing_reports) } } @else { "0" } }
                            td.num { (format::flop(u.flop)) }
                            td.num { (format::flop(u.flop_lower)) }
                            td.num { (format::flop(u.flop_upper)) }
                            td { (format::utc(u.from * 1000)) " – " (format::utc(u.through * 1000)) }
                        }
                    }
                }
            } }
        }
    }
}

/// The evaluation results of a milestone report, as a table when they are an object of
/// results; each result's score and threshold when it gives them.
pub fn evals_table(evals: &serde_json::Value) -> Markup {
    let Some(map) = evals.as_object() else {
        return html! { pre { code { (evals.to_string()) } } };
    };
    let number = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_f64);
    html! {
        div.table-wrap { table.evals {
            thead { tr {
                th scope="col" { "Evaluation" } th scope="col" class="num" { "Score" }
                th scope="col" class="num" { "Threshold" } th scope="col" { "Against the threshold" }
                th scope="col" { "As reported" }
            } }
            tbody {
                @for (name, v) in map {
                    @let score = number(v, "score").or_else(|| v.as_f64());
                    @let threshold = number(v, "threshold");
                    tr {
                        th scope="row" { (name) }
                        td.num { (score.map_or("–".to_owned(), |s| s.to_string())) }
                        td.num { (threshold.map_or("–".to_owned(), |t| t.to_string())) }
                        td {
                            @match (score, threshold) {
                                (Some(s), Some(t)) if s >= t => { span.bad { "at or above" } }
                                (Some(_), Some(_)) => { span.good { "below" } }
                                _ => { span.muted { "no threshold given" } }
                            }
                        }
                        td { code { (v.to_string()) } }
                    }
                }
            }
        } }
    }
}

fn milestones_table(milestones: &[MilestoneView], now: i64) -> Markup {
    html! {
        @if milestones.is_empty() {
            p.muted { "No milestone reports yet." }
        } @else {
            @for m in milestones {
                article.milestone id={ "milestone-" (m.id) } {
                    h3 { "Tranche " (m.tranche) " — " code { (m.id) } " " (widgets::badge(&m.status)) }
                    dl.facts {
                        dt { "Checkpoint" } dd { code { (m.checkpoint_digest) } }
                        dt { "Compute at the checkpoint" } dd { (format::flop(m.cumulative_flop)) }
                        dt { "Submitted" } dd { (widgets::when_text(&m.submitted_at, now)) " by " code { (m.submitted_by) } }
                        @if let (Some(at), Some(by)) = (&m.decided_at, &m.decided_by) {
                            dt { "Decided" } dd { (widgets::when_text(at, now)) " by " code { (by) }
                                @if let Some(org) = &m.decided_org { " (" code { (org) } ")" } }
                        }
                        @if let Some(reason) = &m.reason { dt { "Reason" } dd { (reason) } }
                    }
                    (evals_table(&m.evals))
                }
            }
        }
    }
}

fn action_form(viewer: &Viewer, run: &RunView) -> Markup {
    let actions: Vec<&str> = run
        .your_actions
        .iter()
        .map(String::as_str)
        .filter(|a| RUN_ACTIONS.contains(a))
        .collect();
    let evaluates = run.your_actions.iter().any(|a| a == "accept_milestone");
    let to_queue = html! {
        @if evaluates {
            p { "Its milestone report awaits your decision: "
                a href="/console/milestones" { "decide it in your queue" } "." }
        }
    };
    if actions.is_empty() {
        return html! {
            (to_queue)
            p.muted { "There is nothing else you may do to this run in its status (" (run.status.replace('_', " ")) ")." }
        };
    }
    html! {
        (to_queue)
        form.stack id="run-action" method="post" action={ "/console/runs/" (run.id) "/action" } {
            (csrf_field(viewer))
            label for="action" { "Action" }
            select id="action" name="action" required {
                option value="" { "Choose…" }
                @for a in &actions { option value=(a) { (a) } }
            }
            label for="run-reason" { "Reason (audited, logged publicly, shown on the status list)" }
            textarea id="run-reason" name="reason" required {}
            button.danger type="submit" { "Act on this run" }
        }
    }
}

fn milestone_form(viewer: &Viewer, run: &RunView) -> Markup {
    if !run.your_actions.iter().any(|a| a == "submit_milestone") {
        return html! {};
    }
    html! {
        section aria-labelledby="report-milestone" {
            h2 id="report-milestone" { "Submit a milestone report" }
            p { "For tranche " (run.tranche) ": an evaluator the permit names accepts it (the next tranche is released) or rejects it (the run is paused)." }
            form.stack id="milestone-report" method="post" action={ "/console/runs/" (run.id) "/milestones" } {
                (csrf_field(viewer))
                label for="checkpoint_digest" { "Checkpoint digest (sha256: and 64 hex digits)" }
                input id="checkpoint_digest" name="checkpoint_digest" type="text" required autocomplete="off" spellcheck="false";
                label for="cumulative_flop" { "Compute at the checkpoint (FLOP; empty: the run's metered figure now)" }
                input id="cumulative_flop" name="cumulative_flop" type="text" autocomplete="off";
                label for="evals" { "Evaluation results, a JSON object by evaluation name (for example {\"cyber-ctf-suite\": {\"score\": 0.12, \"threshold\": 0.5}})" }
                textarea id="evals" name="evals" required spellcheck="false" {}
                button type="submit" { "Submit the milestone report" }
            }
        }
    }
}

/// What the holder should do next, by the run's status.
fn due(run: &RunView, own: bool) -> Markup {
    html! {
        @match run.status.as_str() {
            "milestone_due" => {
                p.warn role="status" { "Tranche " (run.tranche) " is used up: the run is held until an evaluator accepts a milestone report."
                    @if own && run.your_actions.iter().any(|a| a == "submit_milestone") { " Submit one below." } }
            }
            "paused" if own => {
                p.warn role="status" { "The run is paused: " (run.reason)
                    @if run.your_actions.iter().any(|a| a == "submit_milestone") {
                        " If its milestone report was rejected, submit a new one below: an evaluator's acceptance resumes the run."
                    } }
            }
            _ => {}
        }
    }
}

/// `GET /console/runs/{id}`: through `GET /v1/runs/{id}` and `/usage` (404 outside the
/// person's scope); the tranches from the run's signed permit, which the public log holds.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(done): Query<widgets::Done>,
) -> Result<Response, ConsoleError> {
    let caller = viewer.caller.clone();
    let detail = routes::runs::get(State(state.clone()), caller.clone(), Path(id.clone()))
        .await?
        .0;
    let (reports, truncated) = all_reports(&state, &viewer, &id).await?;
    let stored = crate::domain::runs::visible_run(&state, &caller, &id).await?;
    let claims = crate::domain::permits::signed_permit(&state, &stored).await?;
    let tranche_ends: Vec<f64> = claims
        .as_ref()
        .map(|c| c.tranches.iter().map(|t| t.flop.get()).collect())
        .unwrap_or_else(|| vec![detail.run.released_flop]);
    let names = widgets::org_names(&state).await?;
    let now = state.clock.now_ms();
    let run = &detail.run;
    let chart_reports: Vec<chart::Report> = reports
        .iter()
        .map(|r| chart::Report {
            provider: names
                .get(&r.provider_id)
                .cloned()
                .unwrap_or_else(|| r.provider_id.clone()),
            from: r.from,
            to: r.to,
            flop: r.flop,
            lower: r.flop_lower,
            upper: r.flop_upper,
        })
        .collect();
    let released = usize::try_from(run.tranche).unwrap_or(0);
    let own = run.org_id == caller.org_id;
    let body = html! {
        h1 { "Run " code { (run.id) } }
        (done.notice())
        (due(run, own))
        dl.facts {
            dt { "Holder" } dd { (widgets::org(&names, &run.org_id)) }
            dt { "Permit" } dd { a href={ "/permits/" (run.permit_id) } { code { (run.permit_id) } } }
            dt { "Status" } dd {
                (widgets::badge(&run.status)) " since " (widgets::when_text(&run.status_since, now))
                @if run.in_good_standing { " — " span.good { "in good standing" } } @else { " — " span.bad { "not in good standing" } }
            }
            @if !run.reason.is_empty() { dt { "Why" } dd { (run.reason) } }
            dt { "Tranche" } dd { (run.tranche) " of " (tranche_ends.len()) " released, up to " (format::flop(run.released_flop)) }
            dt { "Metered compute" } dd { (format::flop(run.cumulative_flop)) " (" (percent_of_tranche(run)) " of the released tranche; upper bound " (format::flop(run.cumulative_upper_flop)) ")" }
            dt { "Budget" } dd { (format::flop(run.budget_flop)) " (" (format::percent(run.cumulative_flop, run.budget_flop)) " used)" }
            dt { "Highest alert raised" } dd { (run.alerted_percent) "% of the tranche" }
            @if run.appeal_pending { dt { "Appeal" } dd { span.warn { "pending" } } }
            @if let Some(c) = &claims {
                dt { "Providers" } dd { @for p in &c.providers { (widgets::org(&names, &p.provider)) @if !p.clusters.is_empty() { " (" (p.clusters.join(", ")) ")" } br; } }
                dt { "Evaluators" } dd { @if c.evaluators().is_empty() { "none named" } @else { @for e in c.evaluators() { (widgets::org(&names, e)) br; } } }
                dt { "Valid" } dd { (format::when_s(c.nbf, now)) " to " (format::when_s(c.exp, now)) }
            }
        }
        section aria-labelledby="chart" {
            h2 id="chart" { "Compute over time" }
            div.chart-wrap { (chart::render(&Chart {
                reports: &chart_reports,
                tranche_ends: &tranche_ends,
                released,
                budget: run.budget_flop,
                alert_percents: &state.policy.oversight.alert_percents,
            })) }
            @if truncated {
                p.warn { "The chart shows the first " (reports.len()) " usage reports; the figures above count them all." }
            }
            p.muted { "Dashed green lines: the released tranches' ends. Yellow points: alerts; red points: where the run was held for its milestone. The shaded band spans the reports' lower and upper bounds." }
        }
        section aria-labelledby="usage" {
            h2 id="usage" { "Usage by provider" }
            (usage_table(&detail.usage_by_provider, &names))
        }
        section aria-labelledby="milestones" {
            h2 id="milestones" { "Milestone reports" }
            (milestones_table(&detail.milestones, now))
        }
        (milestone_form(&viewer, run))
        section aria-labelledby="actions" {
            h2 id="actions" { "Actions" }
            (action_form(&viewer, run))
        }
    };
    Ok(page::respond(
        Some(&viewer),
        &format!("Run {}", run.id),
        body,
    ))
}

/// The action form as posted.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    action: Option<String>,
    reason: Option<String>,
}

fn run_path(id: &str, done: &str) -> String {
    format!(
        "/console/runs/{}?done={done}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// `POST /console/runs/{id}/action`: the handler of `POST /v1/runs/{id}/{action}`.
pub async fn act(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<ActionForm>,
) -> Result<Response, ConsoleError> {
    let caller = submitted.viewer.caller;
    let body = ApiJson(Reason {
        reason: submitted.form.reason.unwrap_or_default(),
    });
    let state = State(state);
    let path = Path(id.clone());
    let _view = match submitted.form.action.as_deref().unwrap_or_default() {
        "pause" => routes::runs::pause(state, caller, path, body).await?,
        "resume" => routes::runs::resume(state, caller, path, body).await?,
        "suspend" => routes::runs::suspend(state, caller, path, body).await?,
        "revoke" => routes::runs::revoke(state, caller, path, body).await?,
        "terminate" => routes::runs::terminate(state, caller, path, body).await?,
        "complete" => routes::runs::complete(state, caller, path, body).await?,
        "appeal" => routes::runs::appeal(state, caller, path, body).await?,
        other => {
            return Err(ApiError::field(
                "action",
                format!(
                    "{other:?} is not a run action: choose one of {}",
                    RUN_ACTIONS.join(", ")
                ),
            )
            .into());
        }
    };
    Ok(see_other(&run_path(&id, "action")))
}

/// The milestone report form as posted.
#[derive(Debug, Deserialize)]
pub struct MilestoneForm {
    checkpoint_digest: Option<String>,
    cumulative_flop: Option<String>,
    evals: Option<String>,
}

impl MilestoneForm {
    /// The API's request body for this form.
    fn report(self) -> Result<NewMilestone, ApiError> {
        let evals_text = self.evals.unwrap_or_default();
        let evals = serde_json::from_str(evals_text.trim()).map_err(|e| {
            ApiError::field(
                "evals",
                format!("must be a JSON object with the evaluation results: {e}"),
            )
        })?;
        let cumulative_flop = match self.cumulative_flop.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<runpermit_compute::Flop>()
                    .map_err(|e| ApiError::field("cumulative_flop", e.to_string()))?,
            ),
        };
        Ok(NewMilestone {
            checkpoint_digest: self.checkpoint_digest.unwrap_or_default().trim().to_owned(),
            cumulative_flop,
            tokens: None,
            evals,
        })
    }
}

/// `POST /console/runs/{id}/milestones`: the handler of `POST /v1/runs/{id}/milestones`.
pub async fn submit_milestone(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<MilestoneForm>,
) -> Result<Response, ConsoleError> {
    let body = submitted.form.report()?;
    let _created = routes::runs::create_milestone(
        State(state),
        submitted.viewer.caller,
        Path(id.clone()),
        ApiJson(body),
    )
    .await?;
    Ok(see_other(&run_path(&id, "milestone")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_laid_out_against_their_thresholds() {
        let html = evals_table(&serde_json::json!({
            "cyber": {"score": 0.12, "threshold": 0.5},
            "bio": {"score": 0.7, "threshold": 0.5},
            "autonomy": 0.3,
        }))
        .into_string();
        assert!(
            html.contains("below") && html.contains("at or above"),
            "{html}"
        );
        assert!(html.contains("no threshold given"), "{html}");
    }

    #[test]
    fn the_milestone_form_reads_into_the_apis_body() {
        let form = MilestoneForm {
            checkpoint_digest: Some(format!(" sha256:{} ", "ab".repeat(32))),
            cumulative_flop: Some("1.02e25".into()),
            evals: Some("{\"cyber\": {\"score\": 0.1}}".into()),
        };
        let body = form.report().expect("a report");
        assert_eq!(
            body.checkpoint_digest,
            format!("sha256:{}", "ab".repeat(32))
        );
        assert_eq!(body.cumulative_flop.map(|f| f.get()), Some(1.02e25));
        let bad = MilestoneForm {
            checkpoint_digest: None,
            cumulative_flop: None,
            evals: Some("cyber: fine".into()),
        };
        match bad.report() {
            Err(ApiError::Invalid(errors)) => assert_eq!(errors[0].field, "evals"),
            other => panic!("{other:?}"),
        }
    }
}
