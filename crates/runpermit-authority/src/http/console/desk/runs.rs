//! Runs: the list (scoped like `GET /v1/runs`) and one run with its three usage figures
//! (central estimate, lower and upper bound) and the one its tranches are judged on, its
//! accounting basis, usage by provider, chart, flags, milestones, the actions this person may
//! take, and the lab's milestone report form (the forms and their handlers are in
//! `run_actions`).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_api::runs::{
    MilestoneView, ProviderUsage, RunFlagView, RunView, UsageQuery, UsageReportView,
};
use runpermit_compute::AccountingBasis;
use runpermit_types::RunFlagKind;

use crate::http::authz::OrgKind;
use crate::http::console::desk::chart::{self, Chart};
use crate::http::console::desk::run_actions::{action_form, milestone_form};
use crate::http::console::desk::widgets;
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::Viewer;
use crate::http::error::ApiQuery;
use crate::http::routes;
use crate::http::state::AppState;

/// Most usage-report pages (of 1000) read for one run's chart.
const MAX_USAGE_PAGES: usize = 50;

/// The share of the released tranche used, by the figure the policy judges tranches on.
fn percent_of_tranche(run: &RunView) -> String {
    if run.released_flop > 0.0 && run.tranche_percent.is_finite() {
        format!("{:.1}%", run.tranche_percent)
    } else {
        "–".to_owned()
    }
}

/// Which usage figure a tranche is judged on, in words.
pub fn figure_words(figure: &str) -> &str {
    match figure {
        "central" => "central estimate",
        "lower" => "lower bound",
        "upper" => "upper bound",
        other => other,
    }
}

/// A flag's kind in words; a kind this console does not know, as the API named it.
pub fn flag_kind_words(kind: &str) -> String {
    match kind.parse::<RunFlagKind>() {
        Ok(RunFlagKind::UsageBeforePermit) => "Usage before the permit was valid".to_owned(),
        Ok(RunFlagKind::UsageAfterExpiry) => "Usage after the permit expired".to_owned(),
        Ok(RunFlagKind::UpperBoundPastTranche) => {
            "Upper bound past the released tranche".to_owned()
        }
        Ok(RunFlagKind::UtilizationAboveDeclared) => {
            "Measured utilization above the declared range".to_owned()
        }
        Ok(RunFlagKind::OperationCountGap) => {
            "Operation counting (6·N·D) far from the metered figure".to_owned()
        }
        Ok(RunFlagKind::EvaluationThresholdCrossed) => {
            "An evaluation crossed the policy's threshold".to_owned()
        }
        Err(_) => kind.replace('_', " "),
    }
}

/// The run's `operation_count_gap` flag on milestone report `milestone`, if raised.
pub fn gap_flag<'f>(flags: &'f [RunFlagView], milestone: &str) -> Option<&'f RunFlagView> {
    flags
        .iter()
        .find(|f| f.kind == RunFlagKind::OperationCountGap.as_str() && f.subject == milestone)
}

/// How far operation counting lies from the metered figure, in words.
fn factor_words(factor: f64) -> String {
    if factor.is_finite() {
        format!("a factor of {factor:.2} from the metered figure")
    } else {
        "against a metered figure of zero".to_owned()
    }
}

/// A milestone report's cross-check as `dt`/`dd` pairs of a `dl.facts`: the tokens stated,
/// the run's metered central estimate when it was submitted, and operation counting (6·N·D)
/// with the factor between them; highlighted with the flag's words when `gap` (the run's
/// `operation_count_gap` flag on this report) was raised.
pub fn operation_count_facts(m: &MilestoneView, gap: Option<&RunFlagView>) -> Markup {
    html! {
        dt { "Tokens processed" }
        dd { @match m.tokens { Some(t) => { (format::count(t)) }, None => { span.muted { "not stated" } } } }
        @if let Some(metered) = m.metered_flop {
            dt { "Metered when submitted" } dd { (format::flop(metered)) " (central estimate)" }
        }
        dt { "Operation counting (6·N·D)" }
        dd.flagged[gap.is_some()] id={ "operation-count-" (m.id) } {
            @match (m.operation_count_flop, m.operation_count_factor) {
                (Some(ops), Some(factor)) => { (format::flop(ops)) ", " (factor_words(factor)) }
                (Some(ops), None) => { (format::flop(ops)) }
                (None, _) if m.tokens.is_some() => { span.muted { "not counted: the permit declares no parameters per token" } }
                (None, _) => { span.muted { "not counted: no tokens stated" } }
            }
            @if let Some(f) = gap {
                br; strong.bad { "Flagged: " } (f.message)
            }
        }
    }
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
                th scope="col" class="num" { "Tranche" }
                th scope="col" class="num" { "Used (central; lower–upper)" }
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
                        td.num {
                            (format::flop(r.cumulative_flop)) br;
                            span.muted.range { (format::flop_number(r.cumulative_lower_flop)) "–" (format::flop_number(r.cumulative_upper_flop)) }
                        }
                        td.num {
                            (percent_of_tranche(r)) " of " (format::flop(r.released_flop))
                            @if r.tranche_figure != "central" { br; span.muted { "by the " (figure_words(&r.tranche_figure)) } }
                        }
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

/// The utilization measured by tensor-pipe activity, against the declared range when the
/// permit declares one.
fn measured_utilization(u: f64, basis: Option<&AccountingBasis>) -> Markup {
    html! {
        (format::fraction(u)) " (DCGM tensor-pipe activity)"
        @if let Some(b) = basis {
            @let range = format!("{}–{}", format::fraction(b.utilization_low), format::fraction(b.utilization_high));
            @if u > b.utilization_high {
                " — " span.warn { "above the declared " (range) }
            } @else {
                " — declared " (range)
            }
        }
    }
}

/// What the authority noticed about the run: kind in words, what it is about (a milestone
/// report links to its entry below), when, and the message with its figures.
fn flags_table(flags: &[RunFlagView], milestones: &[MilestoneView], now: i64) -> Markup {
    html! {
        @if flags.is_empty() {
            p.muted id="no-flags" { "Nothing flagged." }
        } @else {
            div.table-wrap { table id="run-flags" {
                thead { tr {
                    th scope="col" { "Flag" } th scope="col" { "About" }
                    th scope="col" { "Raised" } th scope="col" { "What was noticed" }
                } }
                tbody {
                    @for f in flags {
                        tr.flagged {
                            th scope="row" { (flag_kind_words(&f.kind)) }
                            td {
                                @if milestones.iter().any(|m| m.id == f.subject) {
                                    "milestone report " a href={ "#milestone-" (f.subject) } { code { (f.subject) } }
                                } @else { (f.subject) }
                            }
                            td { (widgets::when_text(&f.raised_at, now)) }
                            td { (f.message) }
                        }
                    }
                }
            } }
        }
    }
}

fn milestones_table(milestones: &[MilestoneView], flags: &[RunFlagView], now: i64) -> Markup {
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
                        (operation_count_facts(m, gap_flag(flags, &m.id)))
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
            dt { "Metered compute" } dd id="run-figures" {
                "central estimate " strong { (format::flop(run.cumulative_flop)) }
                "; lower bound " (format::flop(run.cumulative_lower_flop))
                "; upper bound " (format::flop(run.cumulative_upper_flop))
            }
            dt { "Tranche judged on" } dd id="tranche-figure" {
                "the " (figure_words(&run.tranche_figure)) ": " (percent_of_tranche(run)) " of the released tranche"
            }
            dt { "Budget" } dd { (format::flop(run.budget_flop)) " (" (format::percent(run.cumulative_flop, run.budget_flop)) " used by the central estimate)" }
            dt { "Accounting basis" } dd id="accounting-basis" { (format::accounting_basis(detail.accounting.as_ref())) "." }
            @if let Some(u) = run.measured_utilization {
                dt { "Measured utilization" } dd id="measured-utilization" { (measured_utilization(u, detail.accounting.as_ref())) }
            }
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
        section aria-labelledby="flags" {
            h2 id="flags" { "Flags" }
            p.muted { "What the authority noticed about the run, for its reviewers and evaluators: each is raised once and audited, and changes nothing by itself." }
            (flags_table(&detail.flags, &detail.milestones, now))
        }
        section aria-labelledby="milestones" {
            h2 id="milestones" { "Milestone reports" }
            (milestones_table(&detail.milestones, &detail.flags, now))
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
    fn measured_utilization_is_set_against_the_declared_range() {
        let basis = AccountingBasis {
            precision: runpermit_compute::Precision::Bf16,
            utilization: 0.38,
            utilization_low: 0.35,
            utilization_high: 0.43,
            parameters: None,
        };
        let within = measured_utilization(0.41, Some(&basis)).into_string();
        assert!(
            within.contains("41%") && within.contains("declared 35%–43%"),
            "{within}"
        );
        assert!(!within.contains("warn"), "{within}");
        let above = measured_utilization(0.62, Some(&basis)).into_string();
        assert!(
            above.contains("<span class=\"warn\">above the declared 35%–43%"),
            "{above}"
        );
        let no_basis = measured_utilization(0.5, None).into_string();
        assert!(
            no_basis.contains("50%") && !no_basis.contains("declared"),
            "{no_basis}"
        );
    }

    #[test]
    fn every_flag_kind_has_words() {
        for kind in RunFlagKind::ALL {
            let words = flag_kind_words(kind.as_str());
            assert!(!words.contains('_'), "{kind}: {words}");
        }
        assert_eq!(flag_kind_words("something_new"), "something new");
    }

    fn milestone(tokens: Option<f64>, ops: Option<f64>, factor: Option<f64>) -> MilestoneView {
        MilestoneView {
            id: "ms_1".into(),
            run_id: "run_1".into(),
            tranche: 1,
            status: "submitted".into(),
            checkpoint_digest: format!("sha256:{}", "ab".repeat(32)),
            cumulative_flop: 1.02e25,
            tokens,
            metered_flop: Some(1.02e25),
            operation_count_flop: ops,
            operation_count_factor: factor,
            evals: serde_json::json!({}),
            submitted_by: "mem_1".into(),
            submitted_at: "2026-12-04T00:00:00Z".into(),
            decided_by: None,
            decided_org: None,
            decided_at: None,
            reason: None,
        }
    }

    #[test]
    fn operation_counting_is_set_beside_the_metered_figure_and_highlighted_when_flagged() {
        let m = milestone(Some(1.26e13), Some(3.06e25), Some(3.0));
        let html = operation_count_facts(&m, None).into_string();
        for text in ["12.6T", "1.02e25 FLOP", "3.06e25 FLOP", "a factor of 3.00"] {
            assert!(html.contains(text), "{text}: {html}");
        }
        assert!(!html.contains("flagged"), "{html}");
        let flag = RunFlagView {
            kind: "operation_count_gap".into(),
            subject: "ms_1".into(),
            raised_at: "2026-12-04T00:00:00Z".into(),
            message: "differ by 3.00×".into(),
            details: serde_json::json!({}),
        };
        let flags = [flag];
        assert!(gap_flag(&flags, "ms_2").is_none());
        let html = operation_count_facts(&m, gap_flag(&flags, "ms_1")).into_string();
        assert!(
            html.contains("class=\"flagged\"") && html.contains("differ by 3.00×"),
            "{html}"
        );
        let zero = milestone(Some(1e12), Some(2.4e24), Some(f64::INFINITY));
        let html = operation_count_facts(&zero, None).into_string();
        assert!(html.contains("metered figure of zero"), "{html}");
        let none = operation_count_facts(&milestone(None, None, None), None).into_string();
        assert!(none.contains("no tokens stated"), "{none}");
        let no_parameters =
            operation_count_facts(&milestone(Some(1e12), None, None), None).into_string();
        assert!(
            no_parameters.contains("declares no parameters per token"),
            "{no_parameters}"
        );
    }
}
