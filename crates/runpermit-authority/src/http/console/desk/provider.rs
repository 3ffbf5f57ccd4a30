//! `/console/provider`: a compute provider's view of what it reports: the runs it meters
//! (`GET /v1/runs`, scoped to the permits that name it), its own usage reports of each as the
//! authority stored them, the gaps in their sequence numbers, and its reporting keys
//! (`GET /v1/orgs/{id}/reporting-keys`).
//!
//! A provider may list the runs it meters but not read a run (`GET /v1/runs/{id}` is for
//! the run's readers), so its reports are read here with the list's rule and the run's
//! scope (`visible_run`), and only its own: never another provider's figures.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_store::UsageRecord;

use crate::domain::Caller;
use crate::domain::runs::visible_run;
use crate::http::authz::{self, OrgKind};
use crate::http::console::desk::widgets;
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::Viewer;
use crate::http::error::ApiError;
use crate::http::routes;
use crate::http::state::AppState;

/// Most of a provider's own reports of one run read to find gaps (pages of 1000).
const MAX_REPORTS: usize = 20_000;
/// Reports listed per run, newest first.
const SHOWN_REPORTS: usize = 20;

/// `caller`'s own usage reports of run `run_id`, in `seq` order (at most [`MAX_REPORTS`];
/// `true` when there are more).
async fn own_reports(
    state: &AppState,
    caller: &Caller,
    run_id: &str,
) -> Result<(Vec<UsageRecord>, bool), ConsoleError> {
    let mut out: Vec<UsageRecord> = Vec::new();
    let mut after = (caller.org_id.clone(), 0);
    loop {
        let page = state
            .store
            .usage_reports(run_id, Some(after.clone()), 1000)
            .await
            .map_err(ApiError::from)?;
        let full = page.len() == 1000;
        let mine: Vec<UsageRecord> = page
            .into_iter()
            .take_while(|r| r.provider_id == caller.org_id)
            .collect();
        let ended = mine.len() < 1000 || !full;
        if let Some(last) = mine.last() {
            after = (last.provider_id.clone(), last.seq);
        }
        out.extend(mine);
        if ended {
            return Ok((out, false));
        }
        if out.len() >= MAX_REPORTS {
            return Ok((out, true));
        }
    }
}

/// The missing sequence numbers among `seqs` (sorted), as inclusive ranges.
pub fn gaps(seqs: &[i64]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut expected = 1;
    for &s in seqs {
        if s > expected {
            out.push((expected, s - 1));
        }
        expected = expected.max(s + 1);
    }
    out
}

fn run_section(
    run: &runpermit_api::runs::RunView,
    reports: &[UsageRecord],
    truncated: bool,
    names: &std::collections::BTreeMap<String, String>,
    now: i64,
) -> Markup {
    let seqs: Vec<i64> = reports.iter().map(|r| r.seq).collect();
    let missing = gaps(&seqs);
    let total: f64 = reports.iter().map(|r| r.flop).sum();
    html! {
        section.run id={ "run-" (run.id) } aria-labelledby={ "run-title-" (run.id) } {
            h2 id={ "run-title-" (run.id) } { "Run " code { (run.id) } " " (widgets::badge(&run.status)) }
            dl.facts {
                dt { "Holder" } dd { (widgets::org(names, &run.org_id)) }
                dt { "Permit" } dd { a href={ "/permits/" (run.permit_id) } { code { (run.permit_id) } } }
                dt { "Standing" } dd {
                    @if run.in_good_standing { span.good { "in good standing" } }
                    @else { span.bad { "not in good standing: your gate holds its jobs" } @if !run.reason.is_empty() { " (" (run.reason) ")" } }
                }
                dt { "Your reports" } dd { (reports.len()) @if truncated { "+" } ", " (format::flop(total)) }
                dt { "Gaps" } dd {
                    @if missing.is_empty() { "none" } @else {
                        span.warn {
                            @for (i, (a, b)) in missing.iter().enumerate() {
                                @if i > 0 { ", " }
                                @if a == b { (a) } @else { (a) "–" (b) }
                            }
                        }
                        " (sequence numbers the authority has not received)"
                    }
                }
            }
            @if !reports.is_empty() {
                div.table-wrap { table.reports {
                    caption.muted { "Your latest " (reports.len().min(SHOWN_REPORTS)) " reports" }
                    thead { tr {
                        th scope="col" class="num" { "Seq" } th scope="col" { "Cluster" } th scope="col" { "Period" }
                        th scope="col" class="num" { "FLOP" } th scope="col" class="num" { "Bounds" }
                        th scope="col" { "Method" } th scope="col" { "Received" }
                    } }
                    tbody {
                        @for r in reports.iter().rev().take(SHOWN_REPORTS) {
                            tr {
                                td.num { (r.seq) }
                                td { (r.cluster) }
                                td { (format::utc(r.from_s * 1000)) " – " (format::utc(r.to_s * 1000)) }
                                td.num { (format::flop(r.flop)) }
                                td.num { (runpermit_compute::format_flop_number(r.flop_lower)) " – " (runpermit_compute::format_flop_number(r.flop_upper)) }
                                td { (r.method) }
                                td { (format::when(r.received_at, now)) }
                            }
                        }
                    }
                } }
            }
        }
    }
}

/// `GET /console/provider`.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ConsoleError> {
    let caller = viewer.caller.clone();
    if caller.org_kind != OrgKind::Provider {
        return Err(ApiError::Forbidden(
            "the provider page is for the staff of compute providers".into(),
        )
        .into());
    }
    authz::RUNS_LIST.authorize(&caller)?;
    let runs = routes::runs::list(State(state.clone()), caller.clone())
        .await?
        .0;
    let keys = routes::usage::list_reporting_keys(
        State(state.clone()),
        caller.clone(),
        Path(caller.org_id.clone()),
    )
    .await?
    .0;
    let names = widgets::org_names(&state).await?;
    let now = state.clock.now_ms();
    let mut sections = Vec::new();
    for run in &runs {
        // The list's scope, read again for the one run: a permit that names this provider.
        let _scoped = visible_run(&state, &caller, &run.id).await?;
        let (reports, truncated) = own_reports(&state, &caller, &run.id).await?;
        sections.push(run_section(run, &reports, truncated, &names, now));
    }
    let body = html! {
        h1 { "Your reporting" }
        p { "What the authority holds from " (widgets::org(&names, &caller.org_id)) ": the runs whose permits name you as a provider, your usage reports of each, and your reporting keys." }
        section aria-labelledby="keys" {
            h2 id="keys" { "Reporting keys" }
            @if keys.is_empty() {
                p.warn { "No reporting key is registered: the authority refuses every usage report you send. An admin registers one with "
                    code { "runpermit org add-reporting-key" } " or " code { "POST /v1/orgs/" (caller.org_id) "/reporting-keys" } "." }
            } @else {
                div.table-wrap { table id="reporting-keys" {
                    thead { tr { th scope="col" { "Key id (kid)" } th scope="col" { "Registered" } th scope="col" { "Status" } } }
                    tbody { @for k in &keys { tr {
                        td { code { (k.kid) } }
                        td { (widgets::when_text(&k.created_at, now)) }
                        td { @match &k.revoked_at { Some(at) => { span.bad { "revoked " } (widgets::when_text(at, now)) } None => { span.good { "in use" } } } }
                    } } }
                } }
            }
        }
        @if runs.is_empty() { p { "No permit names you as a provider." } }
        @for s in &sections { (s) }
        section aria-labelledby="not-recorded" {
            h2 id="not-recorded" { "What the authority does not record" }
            ul {
                li { "Dead letters: reports the authority refused for good stay in your gate's queue (" code { "dead-letters.log" } "); a refused batch stores nothing here, so only your gate knows them." }
                li { "Refused batches: the authority answers each refusal report by report, but keeps no record of it beyond its metrics." }
            }
        }
    };
    Ok(page::respond(Some(&viewer), "Your reporting", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_the_missing_sequence_numbers() {
        assert!(gaps(&[]).is_empty());
        assert!(gaps(&[1, 2, 3]).is_empty());
        assert_eq!(gaps(&[2, 3, 7, 8, 10]), [(1, 1), (4, 6), (9, 9)]);
    }
}
