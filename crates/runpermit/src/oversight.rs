//! `runpermit run`, `runpermit incident`, `runpermit kyc`: oversight of permitted runs as they
//! train, incident reports, and know-your-customer reports with split-run flags.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, ClientArgs, print_json};
use crate::usage::UsageError;

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
        #[arg(long, value_name = "FILE")]
        evals: PathBuf,
        /// Cumulative FLOP at the checkpoint [default: the run's metered cumulative].
        #[arg(long, value_name = "FLOP")]
        flop: Option<String>,
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

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Reads an evaluation results file: JSON, or TOML when it does not parse as JSON.
fn read_evals(path: &PathBuf) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --evals {}", path.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(v);
    }
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        UsageError(format!(
            "--evals {}: neither JSON nor TOML: {}",
            path.display(),
            e.message()
        ))
    })?;
    serde_json::to_value(table).context("converting the evaluation results")
}

fn print_run(run: &Value) {
    println!("run {}  ({})", s(run, "id"), s(run, "status"));
    println!("  permit      {}", s(run, "permit_id"));
    println!("  holder      {}", s(run, "org_id"));
    if !s(run, "reason").is_empty() {
        println!("  reason      {}", s(run, "reason"));
    }
    println!(
        "  tranche     {} released to {:e} FLOP (budget {:e})",
        run.get("tranche").and_then(Value::as_i64).unwrap_or(0),
        f(run, "released_flop"),
        f(run, "budget_flop")
    );
    println!(
        "  usage       {:e} FLOP ({:.1}% of the tranche; upper bound {:e})",
        f(run, "cumulative_flop"),
        f(run, "tranche_percent"),
        f(run, "cumulative_upper_flop")
    );
    if run.get("appeal_pending").and_then(Value::as_bool) == Some(true) {
        println!("  appeal      pending");
    }
    if let Some(by) = run.get("usage_by_provider").and_then(Value::as_object) {
        for (provider, u) in by {
            let missing = u
                .get("missing_reports")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            println!(
                "  provider    {provider}: {:e} FLOP in {} report(s){}",
                f(u, "flop"),
                u.get("reports").and_then(Value::as_i64).unwrap_or(0),
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
                s(m, "id"),
                m.get("tranche").and_then(Value::as_i64).unwrap_or(0),
                s(m, "status"),
                s(m, "checkpoint_digest")
            );
        }
    }
    if let Some(actions) = run.get("allowed_actions").and_then(Value::as_array) {
        let names: Vec<&str> = actions.iter().filter_map(Value::as_str).collect();
        println!("  next        {}", names.join(", "));
    }
}

/// Runs `runpermit run`.
pub fn run(args: RunArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let transition = |action: &str, t: Transition| {
        client.post(
            &format!("/v1/runs/{}/{action}", t.id),
            &json!({"reason": t.reason}),
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
            flop,
        } => {
            let evals = read_evals(&evals)?;
            let mut body = json!({"checkpoint_digest": checkpoint_digest, "evals": evals});
            if let Some(flop) = flop {
                let parsed: runpermit_compute::Flop = flop
                    .parse()
                    .map_err(|e| UsageError(format!("--flop {flop:?}: {e}")))?;
                body["cumulative_flop"] = json!(parsed);
            }
            client.post(&format!("/v1/runs/{id}/milestones"), &body, &[])?
        }
        RunCommand::Accept { milestone, reason } => client.post(
            &format!("/v1/milestones/{milestone}/accept"),
            &json!({"reason": reason}),
            &[],
        )?,
        RunCommand::Reject { milestone, reason } => client.post(
            &format!("/v1/milestones/{milestone}/reject"),
            &json!({"reason": reason}),
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
                s(r, "id"),
                s(r, "status"),
                f(r, "tranche_percent"),
                r.get("tranche").and_then(Value::as_i64).unwrap_or(0),
                s(r, "permit_id")
            );
        }
    } else if out.get("reports").is_some() {
        for r in out["reports"].as_array().into_iter().flatten() {
            println!(
                "{}  seq {:<5}  {}..{}  {:e} FLOP  ({})",
                s(r, "provider_id"),
                r.get("seq").and_then(Value::as_i64).unwrap_or(0),
                r.get("from").and_then(Value::as_i64).unwrap_or(0),
                r.get("to").and_then(Value::as_i64).unwrap_or(0),
                f(r, "flop"),
                s(r, "method")
            );
        }
        println!("cumulative {:e} FLOP", f(&out, "cumulative_flop"));
    } else if out.get("checkpoint_digest").is_some() {
        println!(
            "milestone report {}  run {}  tranche {}  {}",
            s(&out, "id"),
            s(&out, "run_id"),
            out.get("tranche").and_then(Value::as_i64).unwrap_or(0),
            s(&out, "status")
        );
    } else {
        print_run(&out);
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
            &json!({"category": category, "summary": summary, "run_id": run, "occurred_at": occurred_at}),
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
            &json!({"text": text, "close": !keep_open}),
            &[],
        )?,
    };
    if args.client.json {
        return print_json(&out);
    }
    let rows: Vec<&Value> = match out.as_array() {
        Some(list) => list.iter().collect(),
        None => vec![&out],
    };
    for i in rows {
        let flag = if i.get("overdue").and_then(Value::as_bool) == Some(true) {
            "  OVERDUE"
        } else {
            ""
        };
        println!(
            "{}  {:<20}  {:<6}  follow-up due {}{flag}  {}",
            s(i, "id"),
            s(i, "category"),
            s(i, "status"),
            s(i, "follow_up_due"),
            s(i, "summary")
        );
    }
    Ok(())
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
        /// How many jobs.
        #[arg(long, default_value_t = 1)]
        jobs: i64,
        /// Their accelerator-seconds.
        #[arg(long, value_name = "SECONDS")]
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
        .map_err(|e| UsageError(format!("--{flag} {text:?}: {e}")).into())
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
                .map_err(|e| UsageError(format!("--flop {flop:?}: {e}")))?;
            client.post(
                "/v1/kyc-reports",
                &json!({"customer": customer, "from": unix_time("from", &from)?,
                        "to": unix_time("to", &to)?, "jobs": jobs,
                        "accelerator_seconds": accelerator_seconds, "flop": parsed}),
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
                .filter_map(|p| Some(format!("{} {}", p.get(0)?.as_str()?, p.get(1)?)))
                .collect();
            println!(
                "{}  {} FLOP{}  ({})",
                s(flag, "customer"),
                flag.get("total").map(Value::to_string).unwrap_or_default(),
                if flag.get("split").and_then(Value::as_bool) == Some(true) {
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
            s(&out, "id"),
            s(&out, "customer"),
            if out.get("flag").is_some_and(|f| !f.is_null()) {
                ": its unpermitted compute over all providers reaches the permit threshold"
            } else {
                ""
            }
        );
    }
    Ok(())
}
