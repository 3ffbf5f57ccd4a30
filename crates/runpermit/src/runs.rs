//! `runpermit run`, `runpermit incident`, `runpermit kyc`: oversight of permitted runs as they
//! train, incident reports, and know-your-customer reports with split-run flags.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use runpermit_api::incidents::{FollowUp, NewIncident};
use runpermit_api::runs::{NewMilestone, Reason};
use runpermit_api::usage::NewKycReport;
use runpermit_compute::format_flop;
use runpermit_policy::{RunAction, RunActor};
use serde_json::Value;

use crate::args::{self, ArgError};
use crate::client::{Client, ClientArgs};
use crate::output::print_json;
use crate::view::{self, flop, int, items, num, text, yes};

/// `runpermit run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(subcommand)]
    command: RunCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum RunCommand {
    /// List permitted runs (a developer sees its own).
    List,
    /// Show a run: status, released tranche, usage by provider, milestone reports.
    Show {
        /// Run id (the permit's `sub`).
        id: String,
    },
    /// A run's usage report by report (each one interval of one provider).
    Usage {
        /// Run id.
        id: String,
        /// Reports to show.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Submit a milestone report (the run's developer).
    Milestone {
        /// Run id.
        id: String,
        /// `sha256:<hex>` of the checkpoint evaluated.
        #[arg(long, value_name = "DIGEST")]
        checkpoint_digest: String,
        /// Evaluation results: a JSON object (or a TOML table), by evaluation name.
        #[arg(long, value_name = "FILE", required_unless_present = "eval_log")]
        evals: Option<PathBuf>,
        /// An Inspect (`inspect_ai`) `.eval` log of an evaluation of the checkpoint
        /// (repeatable, at most 8 MiB each): the file is sent, and the authority extracts its
        /// digest, task, model and scores and checks them against the policy's thresholds.
        #[arg(long = "eval-log", value_name = "FILE")]
        eval_log: Vec<PathBuf>,
        /// Cumulative FLOP at the checkpoint [default: the run's metered cumulative].
        #[arg(long, value_name = "FLOP")]
        flop: Option<String>,
        /// Training tokens processed up to the checkpoint (`1.4e12`, `1.4T`): 6 × the
        /// permit's parameters × tokens is set beside the metered figure for the evaluator.
        #[arg(long, value_name = "COUNT")]
        tokens: Option<String>,
    },
    /// Accept a milestone report (an evaluator): the next tranche is released.
    Accept {
        /// Milestone report id (mst_…).
        milestone: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Reject a milestone report (an evaluator): the run is paused.
    Reject {
        /// Milestone report id.
        milestone: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// Pause a run (a reviewer).
    Pause(Transition),
    /// Resume a paused or suspended run (a reviewer).
    Resume(Transition),
    /// Suspend a run (a reviewer).
    Suspend(Transition),
    /// Revoke a run's permit for good (a reviewer).
    Revoke(Transition),
    /// End a run for good (a reviewer).
    Terminate(Transition),
    /// Declare a run finished (its developer).
    Complete(Transition),
    /// Appeal a pause or suspension (its developer).
    Appeal(Transition),
}

#[derive(Debug, Args)]
struct Transition {
    /// Run id.
    id: String,
    /// Why: audited, logged publicly and shown to the run's gates.
    #[arg(long)]
    reason: String,
}

/// Reads an evaluation results file: JSON, or TOML when it does not parse as JSON.
/// An Inspect `.eval` log as the API takes it (base64), checked here first so that a wrong
/// file is named before it is sent; the authority parses it again itself.
fn read_eval_log(path: &PathBuf) -> Result<String> {
    use base64::Engine as _;
    let bytes =
        std::fs::read(path).with_context(|| format!("reading --eval-log {}", path.display()))?;
    runpermit_policy::inspect::parse_eval_log(&bytes)
        .map_err(|e| ArgError(format!("--eval-log {}: {e}", path.display())))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn read_evals(path: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --evals {}", path.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(v);
    }
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        ArgError(format!(
            "--evals {}: neither JSON nor TOML: {}",
            path.display(),
            e.message()
        ))
    })?;
    serde_json::to_value(table).context("converting the evaluation results")
}

fn print_run(run: &Value, names: &BTreeMap<String, String>, caller: Option<&Value>) {
    println!("run {}  ({})", text(run, "id"), text(run, "status"));
    println!("  permit      {}", text(run, "permit_id"));
    println!("  holder      {}", view::org(names, text(run, "org_id")));
    if !text(run, "reason").is_empty() {
        println!("  reason      {}", text(run, "reason"));
    }
    println!(
        "  tranche     {} released to {} (budget {})",
        int(run, "tranche"),
        flop(run, "released_flop"),
        flop(run, "budget_flop")
    );
    println!(
        "  usage       central {}  (lower {}, upper {})",
        flop(run, "cumulative_flop"),
        flop(run, "cumulative_lower_flop"),
        flop(run, "cumulative_upper_flop")
    );
    println!(
        "  judged on   the {} figure: {:.1}% of the released tranche",
        text(run, "tranche_figure"),
        num(run, "tranche_percent")
    );
    if let Some(b) = run.get("accounting").filter(|b| b.is_object()) {
        let parameters = b
            .get("parameters")
            .and_then(Value::as_f64)
            .map(|n| {
                format!(
                    ", {} parameters per token",
                    runpermit_compute::format_count(n)
                )
            })
            .unwrap_or_default();
        println!(
            "  declared    {} at {:.0}% utilization ({:.0}–{:.0}%){parameters}",
            text(b, "precision"),
            num(b, "utilization") * 100.0,
            num(b, "utilization_low") * 100.0,
            num(b, "utilization_high") * 100.0
        );
    }
    if let Some(measured) = run.get("measured_utilization").and_then(Value::as_f64) {
        println!(
            "  measured    {:.0}% utilization (DCGM tensor-pipe activity)",
            measured * 100.0
        );
    }
    if yes(run, "appeal_pending") {
        println!("  appeal      pending");
    }
    if let Some(by) = run.get("usage_by_provider").and_then(Value::as_object) {
        for (provider, u) in by {
            let missing = int(u, "missing_reports");
            println!(
                "  provider    {}: {} in {} report(s){}",
                view::org(names, provider),
                flop(u, "flop"),
                int(u, "reports"),
                if missing > 0 {
                    format!(", {missing} missing")
                } else {
                    String::new()
                }
            );
        }
    }
    if let Some(ms) = run.get("milestones").and_then(Value::as_array) {
        for m in ms {
            println!(
                "  milestone   {}  tranche {}  {}  {}",
                text(m, "id"),
                int(m, "tranche"),
                text(m, "status"),
                text(m, "checkpoint_digest")
            );
            if m.get("operation_count_flop").is_some_and(Value::is_number) {
                println!(
                    "              6·N·D {} vs metered {} ({:.2}×)",
                    flop(m, "operation_count_flop"),
                    flop(m, "metered_flop"),
                    num(m, "operation_count_factor")
                );
            }
        }
    }
    if let Some(flags) = run.get("flags").and_then(Value::as_array) {
        for f in flags {
            println!(
                "  flag        {} ({}): {}",
                text(f, "kind"),
                text(f, "subject"),
                text(f, "message")
            );
        }
    }
    let actions: Vec<RunAction> = run
        .get("allowed_actions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect();
    let yours: Vec<&str> = run
        .get("your_actions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for line in next_steps(&actions, &yours, caller) {
        println!("  {line}");
    }
}

/// Who may take a run action, for people.
fn actor_name(actor: RunActor) -> &'static str {
    match actor {
        RunActor::Reviewer => "a reviewer",
        RunActor::Developer => "the developer",
        RunActor::Evaluator => "an assigned evaluator",
        RunActor::System => "the authority",
    }
}

/// What may happen next to a run whose status allows `actions`, by whom; then `yours`, what
/// the authority says the caller may take now (its role, organization and assignment), labelled
/// with who the caller is when `whoami` was read.
fn next_steps(actions: &[RunAction], yours: &[&str], whoami: Option<&Value>) -> Vec<String> {
    let mut by_actor: Vec<(RunActor, Vec<&str>)> = Vec::new();
    for action in actions {
        match by_actor.iter_mut().find(|(a, _)| *a == action.actor()) {
            Some((_, names)) => names.push(action.as_str()),
            None => by_actor.push((action.actor(), vec![action.as_str()])),
        }
    }
    if by_actor.is_empty() {
        return vec!["next        nothing: the run is over".to_owned()];
    }
    let mut lines: Vec<String> = by_actor
        .iter()
        .map(|(actor, names)| format!("next        {} ({})", names.join(", "), actor_name(*actor)))
        .collect();
    let who = whoami
        .map(|me| format!(" (as {} of {})", text(me, "role"), text(me, "org_name")))
        .unwrap_or_default();
    lines.push(if yours.is_empty() {
        format!("you may     none of these{who}")
    } else {
        format!("you may     {}{who}", yours.join(", "))
    });
    lines
}

/// Runs `runpermit run`.
pub fn run(args: RunArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let transition = |action: &str, t: Transition| {
        client.post(
            &format!("/v1/runs/{}/{action}", t.id),
            &Reason { reason: t.reason },
            &[],
        )
    };
    let out = match args.command {
        RunCommand::List => client.get("/v1/runs")?,
        RunCommand::Show { id } => client.get(&format!("/v1/runs/{id}"))?,
        RunCommand::Usage { id, limit } => client.get(&format!(
            "/v1/runs/{id}/usage?limit={}",
            limit.clamp(1, 1000)
        ))?,
        RunCommand::Milestone {
            id,
            checkpoint_digest,
            evals,
            eval_log,
            flop,
            tokens,
        } => {
            let evals = evals.as_ref().map(read_evals).transpose()?;
            let inspect_logs = eval_log
                .iter()
                .map(read_eval_log)
                .collect::<Result<Vec<_>>>()?;
            let tokens = tokens
                .map(|t| {
                    runpermit_compute::parse_count(&t).ok_or_else(|| {
                        ArgError(format!(
                            "--tokens {t:?}: not a count such as 1.4e12 or 1.4T"
                        ))
                    })
                })
                .transpose()?;
            let cumulative_flop = flop
                .map(|flop| {
                    flop.parse::<runpermit_compute::Flop>()
                        .map_err(|e| ArgError(format!("--flop {flop:?}: {e}")))
                })
                .transpose()?;
            let body = NewMilestone {
                checkpoint_digest,
                cumulative_flop,
                tokens,
                evals: evals.unwrap_or(Value::Null),
                inspect_logs,
            };
            client.post(&format!("/v1/runs/{id}/milestones"), &body, &[])?
        }
        RunCommand::Accept { milestone, reason } => client.post(
            &format!("/v1/milestones/{milestone}/accept"),
            &Reason { reason },
            &[],
        )?,
        RunCommand::Reject { milestone, reason } => client.post(
            &format!("/v1/milestones/{milestone}/reject"),
            &Reason { reason },
            &[],
        )?,
        RunCommand::Pause(t) => transition("pause", t)?,
        RunCommand::Resume(t) => transition("resume", t)?,
        RunCommand::Suspend(t) => transition("suspend", t)?,
        RunCommand::Revoke(t) => transition("revoke", t)?,
        RunCommand::Terminate(t) => transition("terminate", t)?,
        RunCommand::Complete(t) => transition("complete", t)?,
        RunCommand::Appeal(t) => transition("appeal", t)?,
    };
    if args.client.json {
        return print_json(&out);
    }
    if let Some(list) = out.as_array() {
        for r in list {
            println!(
                "{}  {:<13}  {:>6.1}% of tranche {}  {}",
                text(r, "id"),
                text(r, "status"),
                num(r, "tranche_percent"),
                int(r, "tranche"),
                text(r, "permit_id")
            );
        }
    } else if out.get("reports").is_some() {
        for r in out["reports"].as_array().into_iter().flatten() {
            println!(
                "{}  seq {:<5}  {}..{}  {}  ({})",
                text(r, "provider_id"),
                int(r, "seq"),
                int(r, "from"),
                int(r, "to"),
                flop(r, "flop"),
                text(r, "method")
            );
        }
        println!(
            "cumulative {} (lower {}, upper {})",
            flop(&out, "cumulative_flop"),
            flop(&out, "cumulative_lower_flop"),
            flop(&out, "cumulative_upper_flop")
        );
    } else if out.get("checkpoint_digest").is_some() {
        println!(
            "milestone report {}  run {}  tranche {}  {}",
            text(&out, "id"),
            text(&out, "run_id"),
            int(&out, "tranche"),
            text(&out, "status")
        );
    } else {
        // What the caller may do of what the status allows: `whoami` says who it is.
        let me = client.get("/v1/whoami").ok();
        let providers = out.get("usage_by_provider").and_then(Value::as_object);
        let ids = providers
            .into_iter()
            .flat_map(|p| p.keys().map(String::as_str));
        let names = view::org_names(&client, ids.chain([text(&out, "org_id")]));
        print_run(&out, &names, me.as_ref());
    }
    Ok(())
}

/// `runpermit incident`.
#[derive(Debug, Args)]
pub struct IncidentArgs {
    #[command(subcommand)]
    command: IncidentCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum IncidentCommand {
    /// Report an incident.
    File {
        /// weights_stolen, weights_leaked, dangerous_capability, security_breach, overrun,
        /// other (the policy's categories).
        #[arg(long)]
        category: String,
        /// What happened.
        #[arg(long)]
        summary: String,
        /// The run concerned.
        #[arg(long)]
        run: Option<String>,
        /// When it was discovered (RFC 3339 or a date) [default: now].
        #[arg(long, value_name = "TIME")]
        occurred_at: Option<String>,
    },
    /// List incidents with their deadlines.
    List {
        /// Only those whose follow-up is overdue.
        #[arg(long)]
        overdue: bool,
    },
    /// File an incident's follow-up report.
    FollowUp {
        /// Incident id (inc_…).
        id: String,
        /// The follow-up report.
        #[arg(long)]
        text: String,
        /// Keep the incident open.
        #[arg(long)]
        keep_open: bool,
    },
}

/// Runs `runpermit incident`.
pub fn incident(args: IncidentArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let out = match args.command {
        IncidentCommand::File {
            category,
            summary,
            run,
            occurred_at,
        } => client.post(
            "/v1/incidents",
            &NewIncident {
                category,
                summary,
                run_id: run,
                occurred_at,
                details: None,
            },
            &[],
        )?,
        IncidentCommand::List { overdue } => client.get(if overdue {
            "/v1/incidents?overdue=true"
        } else {
            "/v1/incidents"
        })?,
        IncidentCommand::FollowUp {
            id,
            text,
            keep_open,
        } => client.post(
            &format!("/v1/incidents/{id}/follow-up"),
            &FollowUp {
                text,
                close: !keep_open,
            },
            &[],
        )?,
    };
    if args.client.json {
        return print_json(&out);
    }
    for i in items(&out) {
        print_incident(i);
    }
    Ok(())
}

/// An incident with its deadlines: when it was reported against when it was due, and when
/// its follow-up is (or was) due.
fn print_incident(i: &Value) {
    let run = match text(i, "run_id") {
        "" => String::new(),
        id => format!("  run {id}"),
    };
    println!(
        "{}  {}  {}{run}  {}",
        text(i, "id"),
        text(i, "category"),
        text(i, "status"),
        text(i, "summary")
    );
    println!(
        "  reported {} (due {}{})",
        text(i, "reported_at"),
        text(i, "report_due"),
        if yes(i, "reported_late") {
            ", LATE"
        } else {
            ""
        }
    );
    match text(i, "followed_up_at") {
        "" => println!(
            "  follow-up due {}{}",
            text(i, "follow_up_due"),
            if yes(i, "overdue") { "  OVERDUE" } else { "" }
        ),
        at => println!("  followed up {at} (due {})", text(i, "follow_up_due")),
    }
}

/// `runpermit kyc`.
#[derive(Debug, Args)]
pub struct KycArgs {
    #[command(subcommand)]
    command: KycCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum KycCommand {
    /// Report a customer's large jobs that ran without a permit (providers).
    Report {
        /// The customer's registry id (such as its LEI), the same at every provider.
        #[arg(long)]
        customer: String,
        /// Interval start (unix seconds, RFC 3339 or a date).
        #[arg(long, value_name = "TIME")]
        from: String,
        /// Interval end.
        #[arg(long, value_name = "TIME")]
        to: String,
        /// How many jobs, e.g. 4 or 1.2k.
        #[arg(long, default_value_t = 1, value_parser = args::whole, allow_hyphen_values = true)]
        jobs: u64,
        /// Their accelerator-seconds, e.g. 3.1e9 or 3.1B.
        #[arg(long, value_name = "SECONDS", value_parser = args::count, allow_hyphen_values = true)]
        accelerator_seconds: f64,
        /// Their compute (such as 4e24).
        #[arg(long, value_name = "FLOP")]
        flop: String,
    },
    /// Customers whose unpermitted compute over all providers reaches the permit threshold
    /// (authority staff).
    Flags,
}

fn unix_time(flag: &str, text: &str) -> Result<i64> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    runpermit_policy::parse_timestamp(text)
        .map_err(|e| ArgError(format!("--{flag} {text:?}: {e}")).into())
}

/// Runs `runpermit kyc`.
pub fn kyc(args: KycArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let out = match args.command {
        KycCommand::Report {
            customer,
            from,
            to,
            jobs,
            accelerator_seconds,
            flop,
        } => {
            let parsed: runpermit_compute::Flop = flop
                .parse()
                .map_err(|e| ArgError(format!("--flop {flop:?}: {e}")))?;
            client.post(
                "/v1/kyc-reports",
                &NewKycReport {
                    customer,
                    from: unix_time("from", &from)?,
                    to: unix_time("to", &to)?,
                    jobs: i64::try_from(jobs)
                        .map_err(|_| ArgError(format!("--jobs {jobs}: too many")))?,
                    accelerator_seconds,
                    flop: parsed,
                },
                &[],
            )?
        }
        KycCommand::Flags => client.get("/v1/kyc/flags")?,
    };
    if args.client.json {
        return print_json(&out);
    }
    if let Some(flags) = out.get("flags").and_then(Value::as_array) {
        if flags.is_empty() {
            println!("no customer's unpermitted compute reaches the permit threshold");
        }
        for flag in flags {
            let providers: Vec<String> = flag
                .get("providers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some(format!(
                        "{} {}",
                        p.get(0)?.as_str()?,
                        format_flop(p.get(1)?.as_f64()?)
                    ))
                })
                .collect();
            println!(
                "{}  {}{}  ({})",
                text(flag, "customer"),
                flop(flag, "total"),
                if yes(flag, "split") {
                    "  SPLIT RUN SUSPECTED"
                } else {
                    "  unpermitted"
                },
                providers.join(", ")
            );
        }
    } else {
        println!(
            "recorded {} for customer {}{}",
            text(&out, "id"),
            text(&out, "customer"),
            if out.get("flag").is_some_and(|f| !f.is_null()) {
                ": its unpermitted compute over all providers reaches the permit threshold"
            } else {
                ""
            }
        );
    }
    Ok(())
}
