//! `runpermit run`, `runpermit incident`, `runpermit kyc`: oversight of permitted runs as they
//! train, incident reports, and know-your-customer reports with split-run flags.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use runpermit_api::identity::WhoAmI;
use runpermit_api::incidents::{FollowUp, IncidentView, NewIncident};
use runpermit_api::runs::{MilestoneView, NewMilestone, Reason, RunDetail, RunUsage, RunView};
use runpermit_api::usage::{KycAnswer, KycFlags, NewKycReport};
use runpermit_compute::format_flop;
use runpermit_policy::{RunAction, RunActor};
use serde_json::Value;

use crate::args::{self, ArgError};
use crate::client::{Client, ClientArgs};
use crate::view::{self, flop, show};

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

/// A run for people; `detail` adds what `GET /v1/runs/{id}` shows beside the run (usage by
/// provider, milestone reports, the accounting basis, flags).
fn print_run(
    run: &RunView,
    detail: Option<&RunDetail>,
    names: &BTreeMap<String, String>,
    caller: Option<&WhoAmI>,
) {
    println!("run {}  ({})", run.id, run.status);
    println!("  permit      {}", run.permit_id);
    println!("  holder      {}", view::org(names, &run.org_id));
    if !run.reason.is_empty() {
        println!("  reason      {}", run.reason);
    }
    println!(
        "  tranche     {} released to {} (budget {})",
        run.tranche,
        flop(run.released_flop),
        flop(run.budget_flop)
    );
    println!(
        "  usage       central {}  (lower {}, upper {})",
        flop(run.cumulative_flop),
        flop(run.cumulative_lower_flop),
        flop(run.cumulative_upper_flop)
    );
    println!(
        "  judged on   the {} figure: {:.1}% of the released tranche",
        run.tranche_figure, run.tranche_percent
    );
    if let Some(b) = detail.and_then(|d| d.accounting.as_ref()) {
        let parameters = b
            .parameters
            .map(|n| {
                format!(
                    ", {} parameters per token",
                    runpermit_compute::format_count(n)
                )
            })
            .unwrap_or_default();
        println!(
            "  declared    {} at {:.0}% utilization ({:.0}–{:.0}%){parameters}",
            b.precision,
            b.utilization * 100.0,
            b.utilization_low * 100.0,
            b.utilization_high * 100.0
        );
    }
    if let Some(measured) = run.measured_utilization {
        println!(
            "  measured    {:.0}% utilization (DCGM tensor-pipe activity)",
            measured * 100.0
        );
    }
    if run.appeal_pending {
        println!("  appeal      pending");
    }
    if let Some(d) = detail {
        for (provider, u) in &d.usage_by_provider {
            println!(
                "  provider    {}: {} in {} report(s){}",
                view::org(names, provider),
                flop(u.flop),
                u.reports,
                if u.missing_reports > 0 {
                    format!(", {} missing", u.missing_reports)
                } else {
                    String::new()
                }
            );
        }
        for m in &d.milestones {
            println!(
                "  milestone   {}  tranche {}  {}  {}",
                m.id, m.tranche, m.status, m.checkpoint_digest
            );
            if let Some(counted) = m.operation_count_flop {
                println!(
                    "              6·N·D {} vs metered {} ({:.2}×)",
                    flop(counted),
                    m.metered_flop.map(flop).unwrap_or_default(),
                    m.operation_count_factor.unwrap_or_default()
                );
            }
        }
        for f in &d.flags {
            println!("  flag        {} ({}): {}", f.kind, f.subject, f.message);
        }
    }
    let actions: Vec<RunAction> = run
        .allowed_actions
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect();
    let yours: Vec<&str> = run.your_actions.iter().map(String::as_str).collect();
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
fn next_steps(actions: &[RunAction], yours: &[&str], whoami: Option<&WhoAmI>) -> Vec<String> {
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
        .map(|me| format!(" (as {} of {})", me.role, me.org_name))
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
    let json = args.client.json;
    let transition = |action: &str, t: Transition| -> Result<()> {
        let run: RunView = client.post(
            &format!("/v1/runs/{}/{action}", t.id),
            &Reason { reason: t.reason },
            &[],
        )?;
        show(json, &run, |run| show_run(&client, run, None))
    };
    match args.command {
        RunCommand::List => {
            let runs: Vec<RunView> = client.get("/v1/runs")?;
            show(json, &runs, |runs| {
                for r in runs {
                    println!(
                        "{}  {:<13}  {:>6.1}% of tranche {}  {}",
                        r.id, r.status, r.tranche_percent, r.tranche, r.permit_id
                    );
                }
            })
        }
        RunCommand::Show { id } => {
            let detail: RunDetail = client.get(&format!("/v1/runs/{id}"))?;
            show(json, &detail, |d| show_run(&client, &d.run, Some(d)))
        }
        RunCommand::Usage { id, limit } => {
            let usage: RunUsage = client.get(&format!(
                "/v1/runs/{id}/usage?limit={}",
                limit.clamp(1, 1000)
            ))?;
            show(json, &usage, print_usage)
        }
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
            let m: MilestoneView = client.post(&format!("/v1/runs/{id}/milestones"), &body, &[])?;
            show(json, &m, print_milestone)
        }
        RunCommand::Accept { milestone, reason } => {
            let m: MilestoneView = client.post(
                &format!("/v1/milestones/{milestone}/accept"),
                &Reason { reason },
                &[],
            )?;
            show(json, &m, print_milestone)
        }
        RunCommand::Reject { milestone, reason } => {
            let m: MilestoneView = client.post(
                &format!("/v1/milestones/{milestone}/reject"),
                &Reason { reason },
                &[],
            )?;
            show(json, &m, print_milestone)
        }
        RunCommand::Pause(t) => transition("pause", t),
        RunCommand::Resume(t) => transition("resume", t),
        RunCommand::Suspend(t) => transition("suspend", t),
        RunCommand::Revoke(t) => transition("revoke", t),
        RunCommand::Terminate(t) => transition("terminate", t),
        RunCommand::Complete(t) => transition("complete", t),
        RunCommand::Appeal(t) => transition("appeal", t),
    }
}

/// A run with its organizations by name and what the caller may do (`whoami` says who it
/// is).
fn show_run(client: &Client, run: &RunView, detail: Option<&RunDetail>) {
    let me: Option<WhoAmI> = client.get("/v1/whoami").ok();
    let providers = detail
        .into_iter()
        .flat_map(|d| d.usage_by_provider.keys().map(String::as_str));
    let names = view::org_names(client, providers.chain([run.org_id.as_str()]));
    print_run(run, detail, &names, me.as_ref());
}

/// A page of a run's usage reports, report by report, then the run's cumulative figures.
fn print_usage(usage: &RunUsage) {
    for r in &usage.reports {
        println!(
            "{}  seq {:<5}  {}..{}  {}  ({})",
            r.provider_id,
            r.seq,
            r.from,
            r.to,
            flop(r.flop),
            r.method
        );
    }
    println!(
        "cumulative {} (lower {}, upper {})",
        flop(usage.cumulative_flop),
        flop(usage.cumulative_lower_flop),
        flop(usage.cumulative_upper_flop)
    );
}

fn print_milestone(m: &MilestoneView) {
    println!(
        "milestone report {}  run {}  tranche {}  {}",
        m.id, m.run_id, m.tranche, m.status
    );
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
    let json = args.client.json;
    match args.command {
        IncidentCommand::File {
            category,
            summary,
            run,
            occurred_at,
        } => {
            let i: IncidentView = client.post(
                "/v1/incidents",
                &NewIncident {
                    category,
                    summary,
                    run_id: run,
                    occurred_at,
                    details: None,
                },
                &[],
            )?;
            show(json, &i, print_incident)
        }
        IncidentCommand::List { overdue } => {
            let list: Vec<IncidentView> = client.get(if overdue {
                "/v1/incidents?overdue=true"
            } else {
                "/v1/incidents"
            })?;
            show(json, &list, |list| list.iter().for_each(print_incident))
        }
        IncidentCommand::FollowUp {
            id,
            text,
            keep_open,
        } => {
            let i: IncidentView = client.post(
                &format!("/v1/incidents/{id}/follow-up"),
                &FollowUp {
                    text,
                    close: !keep_open,
                },
                &[],
            )?;
            show(json, &i, print_incident)
        }
    }
}

/// An incident with its deadlines: when it was reported against when it was due, and when
/// its follow-up is (or was) due.
fn print_incident(i: &IncidentView) {
    let run = match &i.run_id {
        Some(id) if !id.is_empty() => format!("  run {id}"),
        _ => String::new(),
    };
    println!("{}  {}  {}{run}  {}", i.id, i.category, i.status, i.summary);
    println!(
        "  reported {} (due {}{})",
        i.reported_at,
        i.report_due,
        if i.reported_late { ", LATE" } else { "" }
    );
    match i.followed_up_at.as_deref() {
        None | Some("") => println!(
            "  follow-up due {}{}",
            i.follow_up_due,
            if i.overdue { "  OVERDUE" } else { "" }
        ),
        Some(at) => println!("  followed up {at} (due {})", i.follow_up_due),
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
    let json = args.client.json;
    match args.command {
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
            let answer: KycAnswer = client.post(
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
            )?;
            show(json, &answer, |a| {
                println!(
                    "recorded {} for customer {}{}",
                    a.id,
                    a.customer,
                    if a.flag.is_some() {
                        ": its unpermitted compute over all providers reaches the permit threshold"
                    } else {
                        ""
                    }
                );
            })
        }
        KycCommand::Flags => {
            let flags: KycFlags = client.get("/v1/kyc/flags")?;
            show(json, &flags, print_kyc_flags)
        }
    }
}

fn print_kyc_flags(flags: &KycFlags) {
    if flags.flags.is_empty() {
        println!("no customer's unpermitted compute reaches the permit threshold");
    }
    for flag in &flags.flags {
        let providers: Vec<String> = flag
            .providers
            .iter()
            .map(|(provider, f)| format!("{provider} {}", format_flop(f.get())))
            .collect();
        println!(
            "{}  {}{}  ({})",
            flag.customer,
            format_flop(flag.total.get()),
            if flag.split {
                "  SPLIT RUN SUSPECTED"
            } else {
                "  unpermitted"
            },
            providers.join(", ")
        );
    }
}
