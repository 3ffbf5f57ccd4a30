//! `/permits/{id}`: one permit's public facts (with how its compute is counted, from the
//! signed token), its standing and why, and its history in the log.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use runpermit_log::{LogEntry, decode};
use runpermit_store::{LogFilter, RegistryFilter};

use crate::domain::DomainError;
use crate::domain::permits::verifying_keys;
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::public::entry::summary;
use crate::http::console::public::models;
use crate::http::console::public::{link, providers, standing_badge};
use crate::http::console::session::Viewer;
use crate::http::state::AppState;

/// Entries of the history shown (the log page has them all).
const HISTORY: i64 = 100;

/// `GET /permits/{id}`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let not_found = || DomainError::NotFound(format!("no permit {id} in the public log"));
    let filter = RegistryFilter {
        permit_id: Some(id.clone()),
        ..RegistryFilter::default()
    };
    let r = state
        .store
        .registry(&filter, 0, 1)
        .await?
        .rows
        .pop()
        .ok_or_else(not_found)?;
    let now = state.clock.now_ms();
    // The claims as signed: checked against the authority's keys, as anyone can.
    let jwks = verifying_keys(&state, None).await?;
    let verified = runpermit_permit::verify_permit_signature(&r.token, &jwks);
    let history = state
        .store
        .log_search(
            &LogFilter {
                permit_id: Some(r.permit_id.clone()),
                types: LogEntry::TYPES
                    .iter()
                    .filter(|t| **t != "usage_summary")
                    .map(|t| (*t).to_owned())
                    .collect(),
                ..LogFilter::default()
            },
            HISTORY,
        )
        .await?;
    let usage = state
        .store
        .log_search(
            &LogFilter {
                permit_id: Some(r.permit_id.clone()),
                types: vec!["usage_summary".to_owned()],
                ..LogFilter::default()
            },
            1,
        )
        .await?;
    let last_usage = usage.first().and_then(|row| decode(&row.entry).ok());
    let models = models::of_run(&state, &r.run_id).await?;
    let title = format!("Permit {}", r.permit_id);
    let body = html! {
        h1 { "Permit " code { (r.permit_id) } }
        p {
            (standing_badge(r.run_status))
            @if !r.run_status.in_good_standing() {
                " — " strong { (r.run_status.as_str().replace('_', " ")) } ": " (r.reason)
                " (since " (format::when(r.status_since, now)) ")"
            }
        }
        p {
            "Published as log entry "
            a #log-entry href=(format!("/log/entries/{}", r.log_index)) { (r.log_index) }
            " (" a href=(format!("/v1/log/proofs/{}", r.log_index)) { "inclusion proof" } "). "
            a href=(link("/log", &[("permit", Some(r.permit_id.clone()))])) { "Every log entry about this permit" } "."
        }
        h2 { "What was signed" }
        @match &verified {
            Err(e) => {
                p.error role="alert" { "This token does not verify with the authority's keys: " (e.to_string()) }
            }
            Ok(c) => {
                p.muted { "The permit's claims, verified with the authority's published keys ("
                    a href="/.well-known/jwks.json" { "JWKS" } ")." }
                dl.facts {
                    dt { "Holder" } dd { (c.holder.name) " (" a href=(link("/log", &[("org", Some(c.holder.org_id.clone()))])) { code { (c.holder.org_id) } } ")" }
                    dt { "Run" } dd { code { (c.sub) } " " span.muted { "(its public name; the descriptive name is in the confidential plan)" } }
                    @if !models.0.is_empty() {
                        dt { "Models registered" } dd { (models) }
                    }
                    dt { "Application" } dd { a href=(link("/log", &[("application", Some(c.application_id.clone()))])) { code { (c.application_id) } } }
                    dt { "Tier" } dd { (c.tier) }
                    dt { "FLOP budget" } dd { (format::flop(c.flop_budget.get())) }
                    dt { "Tranches" } dd {
                        ol {
                            @for t in &c.tranches {
                                li {
                                    "up to " (format::flop(t.flop.get()))
                                    @if i64::from(t.index) <= r.tranche { " — " span.good { "released" } }
                                }
                            }
                        }
                    }
                    dt { "Accounting" } dd id="accounting-basis" {
                        (format::accounting_basis(c.accounting.as_ref())) "."
                        @if c.accounting.is_some() {
                            " " span.muted { "Gates meter with it: the central estimate at the declared utilization, the lower bound at its low end, the upper bound at the chips' highest peak." }
                        }
                    }
                    dt { "Compute used" } dd {
                        @match &last_usage {
                            Some((LogEntry::UsageSummary { cumulative_flop, providers: n, through, .. }, _)) => {
                                (format::flop(cumulative_flop.get())) " from " (n) " provider"
                                @if *n != 1 { "s" } ", through " (format::when_s(*through, now))
                                " (" (format::percent(cumulative_flop.get(), c.flop_budget.get())) " of the budget)"
                            }
                            _ => { span.muted { "no usage summary in the log yet" } }
                        }
                    }
                    dt { "Valid" } dd { (format::when_s(c.nbf, now)) " to " (format::when_s(c.exp, now)) }
                    dt { "Issued" } dd { (format::when_s(c.iat, now)) }
                    dt { "Providers" } dd { (providers(c)) }
                    dt { "Accelerators" } dd { "at most " (c.max_accelerators) }
                    dt { "Evaluators" } dd {
                        @if c.evaluators().is_empty() { span.muted { "none named" } }
                        @for (i, e) in c.evaluators().iter().enumerate() {
                            @if i > 0 { ", " }
                            a href=(link("/log", &[("org", Some(e.clone()))])) { code { (e) } }
                        }
                    }
                    dt { "Conditions" } dd {
                        @if c.conditions.is_empty() { span.muted { "none" } }
                        @else { ul { @for cond in &c.conditions { li { (cond) } } } }
                    }
                    dt { "Policy" } dd { (c.policy_version) }
                    dt { "Issuer" } dd { code { (c.iss) } }
                }
            }
        }
        h2 { "Standing history" }
        p.muted { "Issuance, tranches and changes of standing, newest first, as logged." }
        ol reversed {
            @for row in &history {
                li {
                    a href=(format!("/log/entries/{}", row.idx)) { "entry " (row.idx) } ", "
                    @match decode(&row.entry) {
                        Ok((e, at)) => { (format::when_s(at, now)) ": " (summary(&e, now)) }
                        Err(e) => { span.error { "does not decode: " (e.to_string()) } }
                    }
                }
            }
        }
    };
    Ok(page::respond(viewer.as_ref(), &title, body))
}
