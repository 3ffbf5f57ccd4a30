//! `/`: the public registry of permits.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_store::{RegistryFilter, RegistryRow};

use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::public::chart::{ChartRun, registry_chart};
use crate::http::console::public::entry::encode;
use crate::http::console::public::{
    PAGE, Params, claims_of, link, pager, providers, standing_badge,
};
use crate::http::console::session::Viewer;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// `GET /`: permits, newest first, 50 a page; `q` searches the holder's name, the permit id
/// and the run id; `tier` and `standing` (`good` or `not`) filter; `page` from 1.
pub async fn page(
    State(state): State<AppState>,
    viewer: Option<Viewer>,
    RawQuery(query): RawQuery,
) -> Result<Response, ConsoleError> {
    let params = Params::parse(query.as_deref());
    let q = params.get("q");
    if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::field("q", "must be at most 200 characters").into());
    }
    let tiers: Vec<String> = state.policy.tiers.iter().map(|t| t.id.clone()).collect();
    let tier = params.get("tier");
    if let Some(t) = &tier
        && !tiers.contains(t)
    {
        return Err(ApiError::field(
            "tier",
            format!(
                "unknown tier {t:?}; the policy's tiers are {}",
                tiers.join(", ")
            ),
        )
        .into());
    }
    let standing = params.get("standing");
    let good_standing = match standing.as_deref() {
        None => None,
        Some("good") => Some(true),
        Some("not") => Some(false),
        Some(other) => {
            return Err(ApiError::field(
                "standing",
                format!("must be \"good\" or \"not\", got {other:?}"),
            )
            .into());
        }
    };
    let number = params.number("page", 1)?.unwrap_or(1);
    let offset = (number - 1).saturating_mul(PAGE);
    let filter = RegistryFilter {
        q: q.clone(),
        tier: tier.clone(),
        good_standing,
        permit_id: None,
    };
    let registry = state.store.registry(&filter, offset, PAGE).await?;
    let now = state.clock.now_ms();
    let pages = (registry.total + PAGE - 1) / PAGE;
    let here = |n: i64| {
        link(
            "/",
            &[
                ("q", q.clone()),
                ("tier", tier.clone()),
                ("standing", standing.clone()),
                ("page", (n > 1).then(|| n.to_string())),
            ],
        )
    };
    let chart_runs: Vec<ChartRun> = registry
        .rows
        .iter()
        .map(|r| ChartRun {
            label: r.run_id.clone(),
            budget: r.budget_flop,
            released: r.released_flop,
            metered: r.summarized_flop,
            good_standing: r.run_status.in_good_standing(),
        })
        .collect();
    let filtered = q.is_some() || tier.is_some() || standing.is_some();
    let body = html! {
        h1 { "Registry of permits" }
        p {
            "Every permit the authority has signed and published in its "
            a href="/log" { "transparency log" } ", with its run's standing now. "
            "Anyone can check these facts without trusting this page: see "
            a href="/verify" { "how to verify" } "."
        }
        form.inline method="get" action="/" role="search" {
            div {
                label for="q" { "Search" }
                input #q type="search" name="q" value=[q.as_deref()]
                    placeholder="holder, permit id or run id";
            }
            div {
                label for="tier" { "Tier" }
                select #tier name="tier" {
                    option value="" { "any tier" }
                    @for t in &tiers {
                        option value=(t) selected[tier.as_deref() == Some(t.as_str())] { (t) }
                    }
                }
            }
            div {
                label for="standing" { "Standing" }
                select #standing name="standing" {
                    option value="" { "any standing" }
                    option value="good" selected[good_standing == Some(true)] { "in good standing" }
                    option value="not" selected[good_standing == Some(false)] { "not in good standing" }
                }
            }
            div { button type="submit" { "Show" } }
        }
        p role="status" {
            (registry.total) " permit" @if registry.total != 1 { "s" }
            @if filtered { " match" @if registry.total == 1 { "es" } " (" a href="/" { "show all" } ")" }
            @if pages > 1 { ", page " (number) " of " (pages) }
            "."
        }
        @if !registry.rows.is_empty() {
            div.chart-wrap { (registry_chart(&chart_runs, "FLOP budgets of the permits listed below, against regulatory thresholds")) }
            p.muted {
                "Chart: each listed run's budget (dot), released tranche (tick) and compute \
                 last reported in the log (bar), on a log scale; dashed lines are the \
                 training-compute thresholds of the regulatory regimes."
            }
        }
        p.muted {
            "Runs are named by their public id: a run's descriptive name is part of its \
             confidential plan, which the log holds only as a digest."
        }
        div.table-wrap {
            table #registry {
                caption.muted { "Permits, newest first" }
                thead {
                    tr {
                        th scope="col" { "Permit" }
                        th scope="col" { "Holder" }
                        th scope="col" { "Run" }
                        th scope="col" { "Tier" }
                        th scope="col" class="num" { "FLOP budget" }
                        th scope="col" { "Tranches released" }
                        th scope="col" { "Standing" }
                        th scope="col" { "Valid" }
                        th scope="col" { "Conditions" }
                        th scope="col" { "Providers" }
                    }
                }
                tbody {
                    @for r in &registry.rows { (row(r, now)) }
                }
            }
        }
        @if registry.rows.is_empty() {
            p { "No permit matches." }
        }
        (pager(
            (number > 1 && number <= pages.max(1)).then(|| (here(number - 1), "Previous")),
            (number < pages).then(|| (here(number + 1), "Next")),
        ))
    };
    Ok(page::respond(viewer.as_ref(), "Registry of permits", body))
}

fn row(r: &RegistryRow, now: i64) -> Markup {
    let claims = claims_of(&r.token);
    let holder = claims
        .as_ref()
        .map(|c| c.holder.name.clone())
        .or_else(|| r.org_name.clone())
        .unwrap_or_else(|| r.org_id.clone());
    html! {
        tr {
            td { a href=(format!("/permits/{}", encode(&r.permit_id))) { code { (r.permit_id) } } }
            td { (holder) }
            td { code { (r.run_id) } }
            td { (r.tier) }
            td.num { (format::flop(r.budget_flop)) }
            td {
                (r.tranche)
                @if let Some(c) = &claims { " of " (c.tranches.len()) }
                ": up to " (format::flop(r.released_flop))
                br;
                span.muted { "used " (format::flop(r.summarized_flop)) " as last logged" }
            }
            td {
                (standing_badge(r.run_status))
                @if !r.run_status.in_good_standing() {
                    br;
                    (r.run_status.as_str().replace('_', " ")) ": " (r.reason)
                    br;
                    span.muted { "since " (format::when(r.status_since, now)) }
                }
            }
            td {
                @match &claims {
                    Some(c) => { (format::when_s(c.nbf, now)) " to " (format::when_s(c.exp, now)) }
                    None => { "until " (format::when_s(r.permit_exp_s, now)) }
                }
            }
            td {
                @match &claims {
                    Some(c) if !c.conditions.is_empty() => {
                        ul { @for cond in &c.conditions { li { (cond) } } }
                    }
                    _ => { span.muted { "none" } }
                }
            }
            td {
                @if let Some(c) = &claims { (providers(c)) }
            }
        }
    }
}
