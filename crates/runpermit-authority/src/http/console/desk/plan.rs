//! An application's content laid out for reviewers and applicants: the whole run plan, the
//! compute estimate with both methods, its range and thresholds, and the policy tier with what
//! it requires. Pure rendering of what the API's `ApplicationView` holds.

use std::collections::BTreeMap;

use maud::{Markup, html};
use runpermit_compute::format_count as number;
use runpermit_compute::limits::number as plain;
use runpermit_compute::{Estimate, ThresholdStatus};
use runpermit_policy::{Policy, RunPlan};

use crate::http::console::desk::widgets;
use crate::http::console::format;

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// A URL the plan gives, as a link only when it is http(s); anything else (a `javascript:`
/// URL, say) is shown as text.
fn link(url: &str) -> Markup {
    let lower = url.to_ascii_lowercase();
    html! {
        @if lower.starts_with("https://") || lower.starts_with("http://") {
            a href=(url) rel="noopener noreferrer" { (url) }
        } @else {
            code { (url) }
        }
    }
}

/// A schedule timestamp as written, with its reading.
fn stamp(t: &runpermit_policy::Timestamp, now_ms: i64) -> Markup {
    match t.unix() {
        Ok(s) => format::when_s(s, now_ms),
        Err(_) => html! { (t.as_str()) },
    }
}

/// The whole plan, section by section. A stored plan that no longer reads under this
/// version's rules is shown as its JSON.
pub fn plan_sections(
    plan: &serde_json::Value,
    names: &BTreeMap<String, String>,
    now_ms: i64,
) -> Markup {
    let Ok(p) = RunPlan::from_json(&plan.to_string()) else {
        return html! {
            h2 { "Plan" }
            p.warn { "This stored plan does not read as a current run plan; here it is as sent." }
            pre { code { (serde_json::to_string_pretty(plan).unwrap_or_default()) } }
        };
    };
    let s = &p.safeguards;
    let r = &p.responsibility;
    html! {
        section aria-labelledby="plan-run" {
            h2 id="plan-run" { "Run" }
            dl.facts {
                dt { "Name" } dd { (p.run.name) }
                dt { "Description" } dd { (p.run.description.as_deref().unwrap_or("–")) }
            }
        }
        section aria-labelledby="plan-model" {
            h2 id="plan-model" { "Model" }
            dl.facts {
                dt { "Architecture" } dd { (p.model.architecture_family.as_str().replace('_', " ")) }
                dt { "Parameters" } dd { (number(p.model.parameters)) }
                dt { "Active parameters" } dd { (p.model.active_parameters.map_or("–".to_owned(), number)) }
                dt { "Modalities" } dd { (p.model.modality.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")) }
                dt { "Mostly biological sequence data" } dd { (yes_no(p.model.biological_sequence_data)) }
            }
        }
        section aria-labelledby="plan-data" {
            h2 id="plan-data" { "Data" }
            dl.facts {
                dt { "Tokens" } dd { (number(p.data.tokens)) }
                dt { "Epochs" } dd { (plain(p.data.epochs)) }
                dt { "Examples" } dd { (p.data.examples.map_or("–".to_owned(), |e| e.to_string())) }
                dt { "Synthetic data generator (parameters)" } dd { (p.data.synthetic_generator_parameters.map_or("–".to_owned(), number)) }
                dt { "Synthetic tokens" } dd { (p.data.synthetic_tokens.map_or("–".to_owned(), number)) }
            }
        }
        section aria-labelledby="plan-compute" {
            h2 id="plan-compute" { "Compute" }
            @match &p.compute {
                Some(c) => {
                    dl.facts {
                        dt { "Accelerator" } dd { (c.accelerator) }
                        dt { "Accelerators" } dd { (c.accelerators) }
                        dt { "Duration" } dd { (plain(c.duration_days)) " days" }
                        dt { "Expected utilization" } dd { (format::percent(c.expected_utilization, 1.0)) }
                        dt { "Utilization range" } dd {
                            @match (c.utilization_low, c.utilization_high) {
                                (Some(l), Some(h)) => { (format::percent(l, 1.0)) " – " (format::percent(h, 1.0)) }
                                _ => { "–" }
                            }
                        }
                        dt { "Precision" } dd { (c.precision.map_or("bf16 (default)".to_owned(), |p| p.to_string())) }
                        dt { "Additional compute" } dd { (c.additional_flop.map_or("–".to_owned(), |f| format::flop(f.get()))) }
                    }
                }
                None => { p.muted { "No cluster declared." } }
            }
        }
        section aria-labelledby="plan-providers" {
            h2 id="plan-providers" { "Providers" }
            @if p.providers.is_empty() {
                p.muted { "No providers declared." }
            } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Provider" } th scope="col" { "Clusters" } } }
                    tbody {
                        @for a in &p.providers {
                            tr { td { (widgets::org(names, &a.provider)) } td { (a.clusters.join(", ")) } }
                        }
                    }
                } }
            }
        }
        section aria-labelledby="plan-schedule" {
            h2 id="plan-schedule" { "Schedule" }
            @match &p.schedule {
                Some(sch) => { dl.facts {
                    dt { "Start" } dd { (stamp(&sch.start, now_ms)) }
                    dt { "End" } dd { (stamp(&sch.end, now_ms)) }
                } }
                None => { p.muted { "No schedule declared." } }
            }
            @if let Some(b) = &p.base_model {
                h3 { "Base model" }
                dl.facts {
                    dt { "Name" } dd { (b.name) }
                    dt { "Lineage compute" } dd { (format::flop(b.cumulative_flop.get())) }
                }
            }
        }
        section aria-labelledby="plan-safeguards" {
            h2 id="plan-safeguards" { "Safeguards" }
            dl.facts {
                dt { "Weights security level" } dd { (s.weights_security_level.map_or("–", |l| l.as_str())) }
                dt { "Incident response" } dd { (s.incident_response.as_deref().unwrap_or("–")) }
                dt { "Full shutdown capability" } dd { (s.full_shutdown_capability.map_or("–", yes_no)) }
                dt { "Affordances" } dd {
                    @if s.affordances.is_empty() { "–" } @else {
                        (s.affordances.iter().map(|a| a.as_str().replace('_', " ")).collect::<Vec<_>>().join(", "))
                    }
                }
            }
            h3 id="plan-evaluation" { "Evaluation plan" }
            @match &s.evaluation_plan {
                Some(ev) => {
                    p { (ev.description) }
                    @if !ev.milestones.is_empty() {
                        div.table-wrap { table {
                            caption.muted { "Evaluations at this run's own metered compute" }
                            thead { tr { th scope="col" class="num" { "At" } th scope="col" { "Evaluations" } } }
                            tbody {
                                @for m in &ev.milestones {
                                    tr { td.num { (format::flop(m.at_flop.get())) } td { (m.evaluations.join(", ")) } }
                                }
                            }
                        } }
                    }
                }
                None => { p.muted { "No evaluation plan declared." } }
            }
        }
        section aria-labelledby="plan-release" {
            h2 id="plan-release" { "Release plan" }
            p { (p.release.as_ref().map_or("–".to_owned(), |r| r.plan.as_str().replace('_', " "))) }
        }
        section aria-labelledby="plan-responsibility" {
            h2 id="plan-responsibility" { "Responsibility profile" }
            dl.facts {
                dt { "Safety framework" } dd {
                    @match &r.safety_framework_url { Some(u) => { (link(u)) } None => { "–" } }
                }
                dt { "Framework digest (SHA-256)" } dd { code { (r.safety_framework_sha256.as_deref().unwrap_or("–")) } }
                dt { "Practices" } dd {
                    @if r.practices.is_empty() { "–" } @else {
                        ul { @for pr in &r.practices { li { (pr) } } }
                    }
                }
            }
        }
    }
}

fn threshold_row(t: &ThresholdStatus) -> Markup {
    let figure = |v: f64| {
        if t.kind == "cluster_capacity" {
            runpermit_compute::format_flop_rate(v)
        } else {
            format::flop(v)
        }
    };
    html! {
        tr {
            td { (t.regime_name) }
            td { code { (t.threshold) } }
            td.num { (figure(t.limit)) }
            td.num { (figure(t.value)) }
            td {
                @if t.crossed { span.bad { "crossed" } } @else { "not crossed" }
                @if t.within_range { " " span.warn { "(within the estimate's range: could flip)" } }
            }
            td { (t.consequence) }
        }
    }
}

/// The compute estimate: both methods, the range, and every threshold that concerns the run.
pub fn estimate_section(e: &Estimate) -> Markup {
    html! {
        section aria-labelledby="estimate" {
            h2 id="estimate" { "Compute estimate" }
            dl.facts {
                dt { "Central estimate" } dd { (format::flop(e.flop.get())) " (" (e.method.to_string()) ")" }
                dt { "Range" } dd { (format::flop(e.low.get())) " – " (format::flop(e.high.get())) }
                dt { "Figure the policy tiers by" } dd { (format::flop(e.highest_flop().get())) " (the higher method's central figure, base model included)" }
                dt { "This run alone" } dd { (format::flop(e.run_flop.get())) }
                dt { "Base model" } dd { (format::flop(e.base_model_flop.get())) }
                @if let Some(ratio) = e.method_ratio() {
                    dt { "Methods agree within" } dd { (format!("{ratio:.2}×")) }
                }
            }
            h3 { "Operation counting" }
            @match &e.operation_counting {
                Some(o) => { dl.facts {
                    dt { "Figure" } dd { (format::flop(o.flop.get())) " (" (format::flop(o.low.get())) " – " (format::flop(o.high.get())) ")" }
                    dt { "Formula" } dd { code { (o.formula) } }
                    dt { "Training" } dd { (format::flop(o.training_flop.get())) }
                    dt { "Synthetic data" } dd { (format::flop(o.synthetic_data_flop.get())) }
                    dt { "Additional" } dd { (format::flop(o.additional_flop.get())) }
                } }
                None => { p.muted { "Not computed: the plan lacks its inputs." } }
            }
            h3 { "Hardware method" }
            @match &e.hardware {
                Some(h) => { dl.facts {
                    dt { "Figure" } dd { (format::flop(h.flop.get())) " (" (format::flop(h.low.get())) " – " (format::flop(h.high.get())) ")" }
                    dt { "Cluster ceiling (100% utilization)" } dd { (format::flop(h.ceiling_flop.get())) }
                    dt { "Cluster" } dd { (h.count) " × " (h.accelerator) ", " (plain(h.hours)) " hours at " (h.precision.to_string()) }
                    dt { "Peak per accelerator" } dd { (h.peak_flop_per_second.to_string()) }
                    dt { "Utilization" } dd {
                        (format::percent(h.utilization, 1.0)) " (" (format::percent(h.utilization_low, 1.0)) " – " (format::percent(h.utilization_high, 1.0)) ")"
                    }
                    dt { "Peak figure from" } dd { (h.source) }
                } }
                None => { p.muted { "Not computed: the plan declares no cluster." } }
            }
            @if !e.warnings.is_empty() {
                h3 { "Warnings" }
                ul { @for w in &e.warnings { li.warn { (w) } } }
            }
            h3 id="thresholds" { "Thresholds" }
            div.table-wrap { table id="thresholds-table" {
                thead { tr {
                    th scope="col" { "Regime" } th scope="col" { "Threshold" }
                    th scope="col" class="num" { "Limit" } th scope="col" class="num" { "This run" }
                    th scope="col" { "Verdict" } th scope="col" { "Consequence" }
                } }
                tbody { @for t in &e.thresholds { (threshold_row(t)) } }
            } }
        }
    }
}

/// The policy tier the application falls in and what it requires, with why it goes to review.
pub fn tier_section(
    policy: &Policy,
    tier: &str,
    policy_version: &str,
    review_reasons: &[String],
) -> Markup {
    let t = policy.tier(tier);
    html! {
        section aria-labelledby="tier" {
            h2 id="tier" { "Policy tier: " (tier) }
            @if policy_version != policy.version {
                p.warn { "Decided under policy " (policy_version) "; the policy in force is " (policy.version) "." }
            }
            @match t {
                Some(t) => { dl.facts {
                    dt { "What it means" } dd { (t.description.as_deref().unwrap_or("–")) }
                    dt { "Decision" } dd { (t.decision.as_str().replace('_', " ")) }
                    dt { "Approvals required" } dd { (t.approvals) " distinct reviewers from outside the applicant's organization" }
                    dt { "Threshold" } dd { (format::flop(t.min_flop.get())) @if let Some(b) = t.bio_min_flop { " (biological data: " (format::flop(b.get())) ")" } }
                    dt { "Required fields" } dd {
                        @if t.required_fields.is_empty() { "–" } @else {
                            ul { @for f in &t.required_fields { li { code { (f) } } } }
                        }
                    }
                    dt { "Must be true" } dd {
                        @if t.required_true.is_empty() { "–" } @else {
                            ul { @for f in &t.required_true { li { code { (f) } } } }
                        }
                    }
                    dt { "Lowest weights security level" } dd { (t.min_weights_security_level.map_or("–", |l| l.as_str())) }
                } }
                None => { p.muted { "The policy in force has no tier " (tier) "." } }
            }
            @if !review_reasons.is_empty() {
                h3 { "Why a person reviews it" }
                ul { @for r in review_reasons { li { (r) } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> serde_json::Value {
        let plan = RunPlan::from_toml(include_str!("../../../../../../examples/plans/full.toml"))
            .expect("the full example");
        serde_json::to_value(plan).expect("as JSON")
    }

    #[test]
    fn the_whole_plan_is_laid_out() {
        let names = BTreeMap::from([("northwind-cloud".to_owned(), "Northwind".to_owned())]);
        let html = plan_sections(&full(), &names, crate::testing::T0_MS).into_string();
        for text in [
            "kestrel-2t",
            "moe transformer",
            "B200",
            "32768",
            "Northwind",
            "fjord-a, fjord-b",
            "SL4",
            "third-party-red-team",
            "1.60e26 FLOP",
            "api",
            "href=\"https://lab.example/frontier-safety-framework-v3.pdf\"",
            "9f2c4e6a8b0d",
            "insider-threat programme",
            "2027-05-01 00:00 UTC",
        ] {
            assert!(html.contains(text), "{text} in the plan page");
        }
    }

    #[test]
    fn only_web_links_are_links() {
        assert!(link("https://a.example/x").into_string().contains("href"));
        let html = link("javascript:alert(1)").into_string();
        assert!(!html.contains("href"), "{html}");
    }

    #[test]
    fn a_plan_that_no_longer_reads_is_shown_as_sent() {
        let html = plan_sections(
            &serde_json::json!({"odd": "<b>"}),
            &BTreeMap::new(),
            crate::testing::T0_MS,
        )
        .into_string();
        assert!(
            html.contains("as sent") && html.contains("&lt;b&gt;"),
            "{html}"
        );
    }
}
