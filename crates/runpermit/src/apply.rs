//! `runpermit apply`, `runpermit applications`, `runpermit review`: the lab's and the
//! reviewer's side of an application.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use runpermit_api::applications::{ApplicationView, NewApplication, PlanUpdate, StepBody};
use runpermit_api::reviews::{NewReview, ReviewView};
use runpermit_compute::{format_count, format_flop_number};
use runpermit_policy::{RunPlan, Schedule, Timestamp, parse_timestamp};
use runpermit_types::ReviewDecision;
use serde_json::json;

use crate::args::ArgError;
use crate::client::{Client, ClientArgs};
use crate::output::{print_answer, print_json};
use crate::view::{self, Table, field, flop};

/// `runpermit apply` flags.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The run plan: a TOML or JSON file (see docs/run-plan.md and examples/plans/).
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
    /// Save as a draft instead of submitting.
    #[arg(long)]
    draft: bool,
    #[command(flatten)]
    start: StartArg,
    /// Make a retried apply safe: the same key returns the first answer.
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// `--start`: moves a plan's schedule before it is sent.
#[derive(Debug, Args)]
pub struct StartArg {
    /// Move the plan's schedule to start on this date (RFC 3339 date or date-time, or
    /// `today`, midnight UTC of the current day), keeping its length: the plan file keeps
    /// its own dates and the application gets the moved ones.
    #[arg(long, value_name = "DATE|today")]
    start: Option<String>,
}

impl StartArg {
    /// The plan with its schedule moved to `--start`, or as it is without the flag. `now` is
    /// the current time in unix seconds (what `today` is read against).
    fn apply(&self, plan: RunPlan, now: i64) -> Result<RunPlan> {
        let Some(text) = self.start.as_deref() else {
            return Ok(plan);
        };
        let start = if text.trim().eq_ignore_ascii_case("today") {
            now - now.rem_euclid(86_400)
        } else {
            parse_timestamp(text).map_err(|e| {
                ArgError(format!(
                    "--start {text:?}: {e}; expected `today` or {}",
                    runpermit_policy::TIMESTAMP_FORMS
                ))
            })?
        };
        move_schedule(plan, start).map_err(|e| ArgError(format!("--start: {e}")).into())
    }
}

/// `plan` with its schedule starting at `start` (unix seconds) and ending as long after it as
/// the plan's own schedule lasts.
fn move_schedule(mut plan: RunPlan, start: i64) -> Result<RunPlan, String> {
    let (Some(from), Some(to)) = (plan.start_unix(), plan.end_unix()) else {
        return Err("the plan has no readable [schedule] start and end to move".to_owned());
    };
    let end = start
        .checked_add(to - from)
        .filter(|end| *end < 253_402_300_800) // 10000-01-01: RFC 3339 has four-digit years
        .ok_or_else(|| "the moved schedule would end after the year 9999".to_owned())?;
    plan.schedule = Some(Schedule {
        start: Timestamp(runpermit_permit::utc(start)),
        end: Timestamp(runpermit_permit::utc(end)),
    });
    Ok(plan)
}

/// Reads a plan file (TOML or JSON, by extension, else by content), validated locally so that
/// mistakes are named before anything is sent.
pub fn read_plan(path: &Path) -> Result<RunPlan> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_json = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => true,
        Some("toml") => false,
        _ => text.trim_start().starts_with('{'),
    };
    let parsed = if is_json {
        RunPlan::from_json(&text)
    } else {
        RunPlan::from_toml(&text)
    };
    let plan = parsed.map_err(|e| plan_errors(path, &[e.to_field_error()]))?;
    plan.validate()
        .map_err(|errors| plan_errors(path, &errors))?;
    Ok(plan)
}

fn plan_errors(path: &Path, errors: &[runpermit_compute::FieldError]) -> anyhow::Error {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                e.message.clone()
            } else {
                format!("{}: {}", e.field, e.message)
            }
        })
        .collect();
    ArgError(format!(
        "{} is not a valid run plan:\n  {}",
        path.display(),
        lines.join("\n  ")
    ))
    .into()
}

/// Runs `runpermit apply`.
pub fn apply(args: ApplyArgs) -> Result<()> {
    let plan = args
        .start
        .apply(read_plan(&args.plan)?, crate::now_unix())?;
    let client = Client::new(&args.client)?;
    let body = NewApplication {
        plan: serde_json::to_value(&plan)?,
        draft: args.draft,
    };
    let headers: Vec<(&str, &str)> = args
        .idempotency_key
        .as_deref()
        .map(|k| vec![("Idempotency-Key", k)])
        .unwrap_or_default();
    let app: ApplicationView = client.post("/v1/applications", &body, &headers)?;
    finish(args.client.json, &app)
}

/// The run plan an application carries, as the authority stored it; `None` for one this CLI
/// cannot read (written under another plan schema).
fn plan_of(app: &ApplicationView) -> Option<RunPlan> {
    RunPlan::from_json(&app.plan.to_string()).ok()
}

/// Human summary of an application. `names` holds the organization names known by id;
/// `reviews` its reviews, when read.
pub fn print_application(
    app: &ApplicationView,
    names: &BTreeMap<String, String>,
    reviews: Option<&[ReviewView]>,
) {
    let id = &app.id;
    println!("Application {id}: {}", app.status);
    let plan = plan_of(app);
    if let Some(plan) = &plan {
        match &plan.run.description {
            Some(d) if !d.is_empty() => field("run", format!("{} ({d})", plan.run.name)),
            _ => field("run", &plan.run.name),
        }
    }
    field("organization", view::org(names, &app.org_id));
    field("tier", format!("{} ({})", app.tier, app.decision));
    field(
        "estimate",
        format!(
            "{} ({})",
            flop(app.estimate.flop.get()),
            json_name(&app.estimate.method)
        ),
    );
    if let Some(plan) = &plan {
        print_plan(plan);
    }
    field("plan digest", &app.plan_digest);
    field("policy", &app.policy_version);
    if app.decision == "review" {
        field("approvals", format!("{} required", app.approvals_required));
    }
    for reason in &app.review_reasons {
        field("review reason", reason);
    }
    for r in reviews.unwrap_or_default() {
        field(
            "review",
            format!(
                "{} by {} ({}) at {}: {}",
                r.decision, r.reviewer_id, r.reviewer_org_id, r.created_at, r.reason
            ),
        );
        for condition in &r.conditions {
            field("  condition", condition);
        }
        for evaluator in &r.evaluators {
            field("  evaluator", evaluator);
        }
    }
    if let Some(p) = &app.permit_id {
        field(
            "permit",
            format!("{p}  (runpermit permit get {p} -o permit.jwt)"),
        );
    }
    if let Some(r) = &app.receipt_id {
        field(
            "exemption",
            format!("{r}  (runpermit permit get {id} -o exemption.jwt)"),
        );
    }
}

/// What a reviewer reads first of a plan: the model, data and compute, where and when it
/// runs, and its safeguards.
fn print_plan(plan: &RunPlan) {
    let mut model = format!("{} parameters", format_count(plan.model.parameters));
    if let Some(active) = plan.model.active_parameters {
        model.push_str(&format!(" ({} active)", format_count(active)));
    }
    model.push_str(&format!(", {} tokens", format_count(plan.data.tokens)));
    if plan.data.epochs != 1.0 {
        model.push_str(&format!(" × {} epochs", plan.data.epochs));
    }
    if let Some(base) = &plan.base_model {
        model.push_str(&format!(
            "; fine-tunes {} ({})",
            base.name, base.cumulative_flop
        ));
    }
    field("model", model);
    if let Some(c) = &plan.compute {
        field(
            "compute",
            format!(
                "{} × {} for {} days at {:.0}% utilization",
                c.accelerators,
                c.accelerator,
                c.duration_days,
                c.expected_utilization * 100.0
            ),
        );
    }
    for p in &plan.providers {
        if p.clusters.is_empty() {
            field("provider", &p.provider);
        } else {
            field(
                "provider",
                format!("{} ({})", p.provider, p.clusters.join(", ")),
            );
        }
    }
    if let Some(s) = &plan.schedule {
        field(
            "schedule",
            format!("{} to {}", s.start.as_str(), s.end.as_str()),
        );
    }
    let g = &plan.safeguards;
    let mut safeguards = Vec::new();
    if let Some(level) = &g.weights_security_level {
        safeguards.push(format!("weights security {}", json_name(level)));
    }
    match g.full_shutdown_capability {
        Some(true) => safeguards.push("full shutdown capability".to_owned()),
        Some(false) => safeguards.push("no full shutdown capability".to_owned()),
        None => {}
    }
    if g.incident_response.is_some() {
        safeguards.push("incident response plan".to_owned());
    }
    if let Some(e) = &g.evaluation_plan {
        let at: Vec<String> = e.milestones.iter().map(|m| m.at_flop.to_string()).collect();
        safeguards.push(format!(
            "{} evaluation milestone(s){}",
            e.milestones.len(),
            if at.is_empty() {
                String::new()
            } else {
                format!(" at {}", at.join(", "))
            }
        ));
    }
    if safeguards.is_empty() {
        safeguards.push("none stated".to_owned());
    }
    field("safeguards", safeguards.join("; "));
    if !g.affordances.is_empty() {
        let names: Vec<String> = g.affordances.iter().map(json_name).collect();
        field("affordances", names.join(", "));
    }
}

/// A plan enum's name as the plan writes it (its serde name).
fn json_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `runpermit applications`.
#[derive(Debug, Args)]
pub struct ApplicationsArgs {
    #[command(subcommand)]
    command: Option<ApplicationsCommand>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum ApplicationsCommand {
    /// List applications (a lab sees its own; the authority sees all).
    List,
    /// Show one application and its reviews.
    Show {
        /// Application id.
        id: String,
    },
    /// Submit a draft, or resubmit after changes were requested.
    Submit {
        /// Application id.
        id: String,
    },
    /// Replace the plan of a draft or of an application with changes requested.
    Update {
        /// Application id.
        id: String,
        /// The new run plan (TOML or JSON).
        plan: PathBuf,
        #[command(flatten)]
        start: StartArg,
    },
    /// Withdraw an application.
    Withdraw {
        /// Application id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Appeal a denial.
    Appeal {
        /// Application id.
        id: String,
        /// Why the decision should change.
        #[arg(long)]
        reason: String,
    },
}

/// Runs `runpermit applications`.
pub fn applications(args: ApplicationsArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let json_out = args.client.json;
    match args.command.unwrap_or(ApplicationsCommand::List) {
        ApplicationsCommand::List => {
            let apps: Vec<ApplicationView> = client.get("/v1/applications")?;
            if json_out {
                return print_answer(&apps);
            }
            let names = view::org_names(&client, apps.iter().map(|a| a.org_id.as_str()));
            let mut table = Table::new(&[
                "ID",
                "STATUS",
                "TIER",
                "FLOP",
                "ORGANIZATION",
                "RUN",
                "UPDATED",
            ]);
            for app in &apps {
                table.row(vec![
                    app.id.clone(),
                    app.status.clone(),
                    app.tier.clone(),
                    format_flop_number(app.estimate.flop.get()),
                    names
                        .get(&app.org_id)
                        .filter(|n| !n.is_empty())
                        .cloned()
                        .unwrap_or_else(|| app.org_id.clone()),
                    plan_of(app).map(|p| p.run.name).unwrap_or_default(),
                    app.updated_at.clone(),
                ]);
            }
            table.print();
            Ok(())
        }
        ApplicationsCommand::Show { id } => {
            let app: ApplicationView = client.get(&format!("/v1/applications/{id}"))?;
            let reviews: Vec<ReviewView> = client.get(&format!("/v1/applications/{id}/reviews"))?;
            if json_out {
                return print_json(&json!({
                    "application": serde_json::to_value(&app)?,
                    "reviews": serde_json::to_value(&reviews)?,
                }));
            }
            let names = view::org_names(&client, [app.org_id.as_str()]);
            print_application(&app, &names, Some(&reviews));
            Ok(())
        }
        ApplicationsCommand::Submit { id } => {
            let app: ApplicationView = client.post(
                &format!("/v1/applications/{id}/submit"),
                &StepBody { reason: None },
                &[],
            )?;
            finish(json_out, &app)
        }
        ApplicationsCommand::Update { id, plan, start } => {
            let plan = start.apply(read_plan(&plan)?, crate::now_unix())?;
            let current: ApplicationView = client.get(&format!("/v1/applications/{id}"))?;
            let app: ApplicationView = client.put(
                &format!("/v1/applications/{id}"),
                &PlanUpdate {
                    plan: serde_json::to_value(&plan)?,
                    version: current.version,
                },
            )?;
            finish(json_out, &app)
        }
        ApplicationsCommand::Withdraw { id, reason } => {
            let app: ApplicationView = client.post(
                &format!("/v1/applications/{id}/withdraw"),
                &StepBody {
                    reason: Some(reason),
                },
                &[],
            )?;
            finish(json_out, &app)
        }
        ApplicationsCommand::Appeal { id, reason } => {
            let app: ApplicationView = client.post(
                &format!("/v1/applications/{id}/appeal"),
                &StepBody {
                    reason: Some(reason),
                },
                &[],
            )?;
            finish(json_out, &app)
        }
    }
}

fn finish(json_out: bool, app: &ApplicationView) -> Result<()> {
    view::show(json_out, app, |app| {
        print_application(app, &BTreeMap::new(), None)
    })
}

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Decision {
    Approve,
    Deny,
    RequestChanges,
}

/// `runpermit review` flags.
#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Application id.
    id: String,
    /// approve, deny or request-changes.
    #[arg(value_enum)]
    decision: Decision,
    /// Why: recorded, audited and shown to the applicant.
    #[arg(long)]
    reason: String,
    /// A condition attached to an approval (repeatable); it becomes part of the permit.
    #[arg(long = "condition", value_name = "TEXT")]
    conditions: Vec<String>,
    /// An evaluator organization assigned with an approval (repeatable): the permit names
    /// the approvals' evaluators (the policy's when none names any), and only they decide
    /// the run's milestone reports.
    #[arg(long = "evaluator", value_name = "ORG")]
    evaluators: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `runpermit review`.
pub fn review(args: ReviewArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let decision = match args.decision {
        Decision::Approve => ReviewDecision::Approve,
        Decision::Deny => ReviewDecision::Deny,
        Decision::RequestChanges => ReviewDecision::RequestChanges,
    };
    let app: ApplicationView = client.post(
        &format!("/v1/applications/{}/reviews", args.id),
        &NewReview {
            decision,
            reason: args.reason,
            conditions: args.conditions,
            evaluators: args.evaluators,
        },
        &[],
    )?;
    finish(args.client.json, &app)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn standard() -> RunPlan {
        read_plan(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plans/standard.toml"))
            .expect("the standard example plan")
    }

    fn start(text: &str) -> StartArg {
        StartArg {
            start: Some(text.to_owned()),
        }
    }

    #[test]
    fn start_moves_the_schedule_and_keeps_its_length() {
        let plan = standard();
        let length = plan.end_unix().unwrap() - plan.start_unix().unwrap();
        // 12:34:56 on some day: `today` is that day's midnight, whatever the day is.
        let now = 1_900_000_000 - 1_900_000_000 % 86_400 + 45_296;
        let moved = start("today").apply(plan.clone(), now).unwrap();
        let midnight = now - 45_296;
        assert_eq!(moved.start_unix(), Some(midnight));
        assert_eq!(moved.end_unix(), Some(midnight + length));
        moved.validate().expect("the moved plan is still valid");
        // Everything but the schedule is as written.
        assert_eq!(
            RunPlan {
                schedule: plan.schedule.clone(),
                ..moved
            },
            plan
        );

        let dated = start("2030-02-01T06:00:00Z")
            .apply(plan.clone(), now)
            .unwrap();
        let schedule = dated.schedule.as_ref().unwrap();
        assert_eq!(schedule.start.as_str(), "2030-02-01T06:00:00Z");
        assert_eq!(dated.end_unix(), Some(dated.start_unix().unwrap() + length));
        // Without the flag the plan is untouched.
        let untouched = StartArg { start: None }.apply(plan.clone(), now).unwrap();
        assert_eq!(untouched, plan);
    }

    #[test]
    fn start_names_what_is_wrong() {
        let err = start("next week").apply(standard(), 0).unwrap_err();
        assert!(
            err.to_string().starts_with("--start \"next week\"")
                && err.to_string().contains("today"),
            "{err}"
        );
        let err = start("9999-12-01").apply(standard(), 0).unwrap_err();
        assert!(err.to_string().contains("after the year 9999"), "{err}");
        let mut no_schedule = standard();
        no_schedule.schedule = None;
        let err = start("today").apply(no_schedule, 0).unwrap_err();
        assert!(err.to_string().contains("no readable [schedule]"), "{err}");
    }
}
