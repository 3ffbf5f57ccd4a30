//! A decoded log entry as people read it: a one-line summary for lists, every field for the
//! entry's own page. Ids link to the pages and searches about them.

use maud::{Markup, html};
use runpermit_log::LogEntry;

use crate::http::console::format;
use crate::http::console::public::link;

fn permit_link(id: &str) -> Markup {
    html! { a href=(format!("/permits/{}", encode(id))) { code { (id) } } }
}

fn search_link(name: &str, id: &str) -> Markup {
    html! { a href=(link("/log", &[(name, Some(id.to_owned()))])) { code { (id) } } }
}

/// `id` as one path segment.
pub fn encode(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// One line about `entry`, for lists.
pub fn summary(entry: &LogEntry, now_ms: i64) -> Markup {
    match entry {
        LogEntry::ApplicationSubmitted {
            application_id,
            org_id,
            tier,
            estimated_flop,
            ..
        } => html! {
            "Application " (search_link("application", application_id)) " by "
            (search_link("org", org_id)) ": tier " strong { (tier) } ", estimated "
            (format::flop(estimated_flop.get()))
        },
        LogEntry::Decision {
            application_id,
            decision,
            tier,
            reason,
            ..
        } => html! {
            strong { (decision.as_str().replace('_', " ")) } " — application "
            (search_link("application", application_id)) " (tier " (tier) ")"
            @if let Some(r) = reason { ": " q { (r) } }
        },
        LogEntry::PermitIssued {
            permit_id,
            run_id,
            holder_org_id,
            flop_budget,
            nbf,
            exp,
            ..
        } => html! {
            "Permit " (permit_link(permit_id)) " for run " (search_link("run", run_id)) " of "
            (search_link("org", holder_org_id)) ": " (format::flop(flop_budget.get()))
            ", valid " (format::when_s(*nbf, now_ms)) " to " (format::when_s(*exp, now_ms))
        },
        LogEntry::TrancheReleased {
            permit_id,
            run_id,
            tranche,
            flop,
        } => html! {
            "Tranche " (tranche) " released to run " (search_link("run", run_id)) " (permit "
            (permit_link(permit_id)) "): may compute up to " (format::flop(flop.get()))
        },
        LogEntry::RunPaused {
            permit_id,
            run_id,
            reason,
        } => standing("paused", permit_id, run_id, reason),
        LogEntry::RunResumed {
            permit_id,
            run_id,
            reason,
        } => standing("resumed", permit_id, run_id, reason),
        LogEntry::RunRevoked {
            permit_id,
            run_id,
            reason,
        } => standing("revoked", permit_id, run_id, reason),
        LogEntry::RunCompleted {
            permit_id,
            run_id,
            reason,
        } => standing("completed", permit_id, run_id, reason),
        LogEntry::UsageSummary {
            run_id,
            cumulative_flop,
            providers,
            through,
        } => html! {
            "Run " (search_link("run", run_id)) " used " (format::flop(cumulative_flop.get()))
            " (" (providers) " provider" @if *providers != 1 { "s" } ") through "
            (format::when_s(*through, now_ms))
        },
        LogEntry::ModelRegistered {
            run_id,
            model_name,
            checkpoint_digest,
        } => html! {
            "Model " strong { (model_name) } " of run " (search_link("run", run_id))
            " registered: " code { (checkpoint_digest) }
        },
        LogEntry::AccessGranted {
            grant_id,
            model_id,
            grantee_org_id,
            tier,
            ..
        } => html! {
            "Access grant " code { (grant_id) } " to model " code { (model_id) } " for "
            (search_link("org", grantee_org_id)) ": tier " strong { (tier.replace('_', " ")) }
        },
        LogEntry::AccessChanged {
            grant_id,
            status,
            reason,
        } => html! {
            "Access grant " code { (grant_id) } " " strong { (status) } ": " q { (reason) }
        },
    }
}

fn standing(what: &str, permit_id: &str, run_id: &str, reason: &str) -> Markup {
    html! {
        "Run " (search_link("run", run_id)) " " strong { (what) } " (permit " (permit_link(permit_id))
        "): " q { (reason) }
    }
}

/// Every field of `entry`, appended at `at` (unix seconds), as a definition list.
pub fn fields(entry: &LogEntry, at: i64, now_ms: i64) -> Markup {
    let flop = |f: &runpermit_compute::Flop| format::flop(f.get());
    html! {
        dl.facts {
            dt { "type" } dd { code { (entry.type_name()) } }
            dt { "at" } dd { (format::when_s(at, now_ms)) }
            @match entry {
                LogEntry::ApplicationSubmitted { application_id, org_id, plan_digest, tier, estimated_flop, policy_version } => {
                    dt { "application_id" } dd { (search_link("application", application_id)) }
                    dt { "org_id" } dd { (search_link("org", org_id)) }
                    dt { "plan_digest" } dd { code { (plan_digest) } " "
                        span.muted { "(the plan itself is confidential; its digest lets the lab prove what it submitted)" } }
                    dt { "tier" } dd { (tier) }
                    dt { "estimated_flop" } dd { (flop(estimated_flop)) }
                    dt { "policy_version" } dd { (policy_version) }
                }
                LogEntry::Decision { application_id, decision, tier, policy_version, reason } => {
                    dt { "application_id" } dd { (search_link("application", application_id)) }
                    dt { "decision" } dd { strong { (decision.as_str()) } }
                    dt { "tier" } dd { (tier) }
                    dt { "policy_version" } dd { (policy_version) }
                    dt { "reason" } dd { @match reason { Some(r) => (r), None => span.muted { "none given (decided by policy)" } } }
                }
                LogEntry::PermitIssued { permit_id, application_id, run_id, holder_org_id, token, flop_budget, nbf, exp, policy_version } => {
                    dt { "permit_id" } dd { (permit_link(permit_id)) }
                    dt { "application_id" } dd { (search_link("application", application_id)) }
                    dt { "run_id" } dd { (search_link("run", run_id)) }
                    dt { "holder_org_id" } dd { (search_link("org", holder_org_id)) }
                    dt { "flop_budget" } dd { (flop(flop_budget)) }
                    dt { "nbf" } dd { (format::when_s(*nbf, now_ms)) }
                    dt { "exp" } dd { (format::when_s(*exp, now_ms)) }
                    dt { "policy_version" } dd { (policy_version) }
                    dt { "token" } dd { pre.mono { (token) } }
                }
                LogEntry::TrancheReleased { permit_id, run_id, tranche, flop: f } => {
                    dt { "permit_id" } dd { (permit_link(permit_id)) }
                    dt { "run_id" } dd { (search_link("run", run_id)) }
                    dt { "tranche" } dd { (tranche) }
                    dt { "flop" } dd { (flop(f)) }
                }
                LogEntry::RunPaused { permit_id, run_id, reason }
                | LogEntry::RunResumed { permit_id, run_id, reason }
                | LogEntry::RunRevoked { permit_id, run_id, reason }
                | LogEntry::RunCompleted { permit_id, run_id, reason } => {
                    dt { "permit_id" } dd { (permit_link(permit_id)) }
                    dt { "run_id" } dd { (search_link("run", run_id)) }
                    dt { "reason" } dd { (reason) }
                }
                LogEntry::UsageSummary { run_id, cumulative_flop, providers, through } => {
                    dt { "run_id" } dd { (search_link("run", run_id)) }
                    dt { "cumulative_flop" } dd { (flop(cumulative_flop)) }
                    dt { "providers" } dd { (providers) }
                    dt { "through" } dd { (format::when_s(*through, now_ms)) }
                }
                LogEntry::ModelRegistered { run_id, model_name, checkpoint_digest } => {
                    dt { "run_id" } dd { (search_link("run", run_id)) }
                    dt { "model_name" } dd { (model_name) }
                    dt { "checkpoint_digest" } dd { code { (checkpoint_digest) } }
                }
                LogEntry::AccessGranted { grant_id, model_id, grantee_org_id, tier, token } => {
                    dt { "grant_id" } dd { code { (grant_id) } }
                    dt { "model_id" } dd { code { (model_id) } }
                    dt { "grantee_org_id" } dd { (search_link("org", grantee_org_id)) }
                    dt { "tier" } dd { (tier) }
                    dt { "token" } dd { pre.mono { (token) } }
                }
                LogEntry::AccessChanged { grant_id, status, reason } => {
                    dt { "grant_id" } dd { code { (grant_id) } }
                    dt { "status" } dd { (status) }
                    dt { "reason" } dd { (reason) }
                }
            }
        }
    }
}
