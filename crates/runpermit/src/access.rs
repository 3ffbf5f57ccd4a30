//! `runpermit access`: structured access to registered models. Researchers apply, the model's
//! developer answers, reviewers decide and change a grant's standing (through the authority's
//! API); a developer runs the enforcement point in front of its model API (`gateway`), and
//! scripts ask it for a decision (`check`). docs/access.md.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use runpermit_access::{AccessRequest, GatewayConfig, gateway};
use runpermit_api::access::{
    AccessRequestView, AccessReview, Consent, GrantView, NewAccessRequest,
};
use runpermit_api::runs::Reason;
use runpermit_permit::AccessTier;
use serde_json::Value;

use crate::args::ArgError;
use crate::client::{Client, ClientArgs};
use crate::output::print_json;
use crate::view;

/// `runpermit access`.
#[derive(Debug, Args)]
pub struct AccessArgs {
    #[command(subcommand)]
    command: AccessCommand,
}

#[derive(Debug, Subcommand)]
enum AccessCommand {
    /// Apply for access to a registered model (a researcher's organization).
    Apply(WithClient<ApplyArgs>),
    /// List the applications your organization made or received (authority staff: all).
    Requests(WithClient<Nothing>),
    /// Show one application.
    Request(WithClient<Id>),
    /// Answer an application for your model: consent or object (the model's developer).
    Consent(WithClient<ConsentArgs>),
    /// Approve or deny an application (a reviewer).
    Review(WithClient<ReviewArgs>),
    /// List grants: your organization's and those to its models.
    Grants(WithClient<Nothing>),
    /// Show a grant; write its token and log proof for the gateway.
    Grant(WithClient<GrantArgs>),
    /// Suspend a grant (a reviewer).
    Suspend(WithClient<Change>),
    /// Reinstate a suspended grant (a reviewer).
    Reinstate(WithClient<Change>),
    /// Revoke a grant for good (a reviewer).
    Revoke(WithClient<Change>),
    /// Run the enforcement point in front of an OpenAI-compatible model API.
    Gateway {
        /// The gateway's configuration (examples/access-gateway.toml).
        #[arg(long, value_name = "FILE", env = "RUNPERMIT_ACCESS_CONFIG")]
        config: PathBuf,
    },
    /// Decide a request as the gateway would, without serving or recording it. Exit 0
    /// allowed, 1 refused, 2 on a usage error.
    Check {
        /// The gateway's configuration.
        #[arg(long, value_name = "FILE", env = "RUNPERMIT_ACCESS_CONFIG")]
        config: PathBuf,
        /// The grant (compact JWS) file.
        #[arg(long, value_name = "FILE")]
        grant: PathBuf,
        /// The grant's log proof bundle file.
        #[arg(long, value_name = "FILE")]
        proof: PathBuf,
        /// The tier the request needs.
        #[arg(long, default_value = "api_sampling")]
        tier: String,
        /// Use this status list token instead of fetching one from the authority.
        #[arg(long, value_name = "FILE")]
        status_list: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// A subcommand's own flags with the client's.
#[derive(Debug, Args)]
struct WithClient<T: Args> {
    #[command(flatten)]
    args: T,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
struct Nothing {}

#[derive(Debug, Args)]
struct Id {
    /// The id.
    id: String,
}

#[derive(Debug, Args)]
struct ApplyArgs {
    /// The registered model (mdl_…).
    #[arg(long)]
    model: String,
    /// api_sampling, logprobs, finetune, activations or weights.
    #[arg(long, default_value = "api_sampling")]
    tier: String,
    /// What the access is for.
    #[arg(long)]
    purpose: String,
    /// The research plan: its file (hashed here) or `sha256:<hex>`.
    #[arg(long, value_name = "FILE|DIGEST")]
    research_plan: String,
    /// The access agreement accepted: its file (hashed here) or `sha256:<hex>`.
    #[arg(long, value_name = "FILE|DIGEST")]
    agreement: String,
    /// Tokens over the grant's validity.
    #[arg(long)]
    tokens: Option<u64>,
    /// Requests over the grant's validity.
    #[arg(long)]
    requests: Option<u64>,
    /// Days of access.
    #[arg(long, default_value_t = 90)]
    days: u32,
}

#[derive(Debug, Args)]
struct ConsentArgs {
    /// The application (acr_…).
    id: String,
    /// Object instead of consenting.
    #[arg(long)]
    object: bool,
    /// Why.
    #[arg(long)]
    reason: String,
}

#[derive(Debug, Args)]
struct ReviewArgs {
    /// The application (acr_…).
    id: String,
    /// Deny instead of approving.
    #[arg(long)]
    deny: bool,
    /// Why.
    #[arg(long)]
    reason: String,
}

#[derive(Debug, Args)]
struct GrantArgs {
    /// The grant (grt_…).
    id: String,
    /// Write the token here.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Write the log proof bundle here.
    #[arg(long, value_name = "FILE")]
    proof: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct Change {
    /// The grant (grt_…).
    id: String,
    /// Why: audited and logged publicly.
    #[arg(long)]
    reason: String,
}

/// A file's `sha256:` digest, or the argument itself when it is already one.
fn digest_of(arg: &str, flag: &str) -> Result<String> {
    if arg.starts_with("sha256:") {
        return Ok(arg.to_owned());
    }
    let bytes = std::fs::read(arg).map_err(|e| ArgError(format!("{flag} {arg}: {e}")))?;
    use sha2::Digest as _;
    Ok(format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(bytes))
    ))
}

fn print_request(r: &AccessRequestView) {
    println!(
        "{}  {}  {} of {} (by {})",
        r.id, r.status, r.tier, r.model_id, r.org_id
    );
    let consent = match r.consent.as_deref() {
        None | Some("") if r.consent_required => "required, not yet given".to_owned(),
        None | Some("") => "not required; no answer".to_owned(),
        Some(c) => format!("{c}: {}", view::opt(&r.consent_reason)),
    };
    println!("  consent     {consent}");
    println!("  approvals   {} of {}", r.approvals, r.approvals_needed);
    if let Some(grant) = r.grant_id.as_deref().filter(|id| !id.is_empty()) {
        println!("  grant       {grant}");
    }
}

fn print_grant(g: &GrantView) {
    println!(
        "{}  {}  {} of {} for {} (until {})",
        g.id, g.status, g.tier, g.model_id, g.org_id, g.expires_at
    );
    if !g.reason.is_empty() {
        println!("  reason      {}", g.reason);
    }
}

/// Runs `runpermit access`.
pub fn run(args: AccessArgs) -> Result<u8> {
    match args.command {
        AccessCommand::Gateway { config } => {
            crate::serve::init_logging();
            let config = GatewayConfig::load(&config).map_err(|e| ArgError(e.to_string()))?;
            let gw = gateway::Gateway::open(config, gateway::system_clock()).map_err(ArgError)?;
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime
                .block_on(gateway::serve(
                    Arc::new(gw),
                    crate::serve::shutdown_signal(),
                ))
                .context("serving the access gateway")?;
            Ok(0)
        }
        AccessCommand::Check {
            config,
            grant,
            proof,
            tier,
            status_list,
            json,
        } => {
            let tier: AccessTier = tier.parse().map_err(ArgError)?;
            let read = |path: &PathBuf, what: &str| {
                std::fs::read_to_string(path)
                    .map_err(|e| ArgError(format!("reading the {what} {}: {e}", path.display())))
            };
            let (grant, proof) = (read(&grant, "grant")?, read(&proof, "proof")?);
            let config = GatewayConfig::load(&config).map_err(|e| ArgError(e.to_string()))?;
            let gw = gateway::Gateway::open(config, gateway::system_clock()).map_err(ArgError)?;
            match status_list {
                Some(path) => {
                    gw.accept_status_token(&read(&path, "status list")?)
                        .map_err(ArgError)?;
                }
                None => {
                    if let Err(e) = gw.refresh_status() {
                        eprintln!("warning: the status list was not refreshed: {e}");
                    }
                }
            }
            let decision = gw.decide(&AccessRequest {
                grant: grant.trim(),
                proof: &proof,
                model: None,
                tier,
            });
            if json {
                print_json(&serde_json::to_value(&decision)?)?;
            } else {
                println!("{}: {}", decision.code.as_str(), decision.message);
            }
            Ok(if decision.allowed() { 0 } else { 1 })
        }
        AccessCommand::Apply(WithClient { args: a, client }) => {
            // Only the quotas given are sent.
            let quotas: serde_json::Map<String, Value> =
                [("tokens", a.tokens), ("requests", a.requests)]
                    .into_iter()
                    .filter_map(|(name, n)| Some((name.to_owned(), Value::from(n?))))
                    .collect();
            let body = NewAccessRequest {
                model_id: a.model,
                tier: a.tier,
                purpose: a.purpose,
                research_plan_digest: digest_of(&a.research_plan, "--research-plan")?,
                agreement_digest: digest_of(&a.agreement, "--agreement")?,
                quotas: Value::Object(quotas),
                days: a.days,
            };
            let c = Client::new(&client)?;
            let r: AccessRequestView = c.post("/v1/access-requests", &body, &[])?;
            show(client.json, &r, print_request)
        }
        AccessCommand::Requests(WithClient { client, .. }) => {
            let c = Client::new(&client)?;
            let list: Vec<AccessRequestView> = c.get("/v1/access-requests")?;
            show(client.json, &list, |list| {
                list.iter().for_each(print_request)
            })
        }
        AccessCommand::Request(WithClient { args, client }) => {
            let c = Client::new(&client)?;
            let r: AccessRequestView = c.get(&format!("/v1/access-requests/{}", args.id))?;
            show(client.json, &r, print_request)
        }
        AccessCommand::Consent(WithClient { args, client }) => {
            let c = Client::new(&client)?;
            let out: AccessRequestView = c.post(
                &format!("/v1/access-requests/{}/consent", args.id),
                &Consent {
                    consent: !args.object,
                    reason: args.reason,
                },
                &[],
            )?;
            show(client.json, &out, print_request)
        }
        AccessCommand::Review(WithClient { args, client }) => {
            let c = Client::new(&client)?;
            let out: AccessRequestView = c.post(
                &format!("/v1/access-requests/{}/review", args.id),
                &AccessReview {
                    approve: !args.deny,
                    reason: args.reason,
                },
                &[],
            )?;
            show(client.json, &out, print_request)
        }
        AccessCommand::Grants(WithClient { client, .. }) => {
            let c = Client::new(&client)?;
            let list: Vec<GrantView> = c.get("/v1/grants")?;
            show(client.json, &list, |list| list.iter().for_each(print_grant))
        }
        AccessCommand::Grant(WithClient { args, client }) => {
            let c = Client::new(&client)?;
            let g: GrantView = c.get(&format!("/v1/grants/{}", args.id))?;
            for (path, field, value) in [
                (&args.output, "token", &g.token),
                (&args.proof, "proof", &g.proof),
            ] {
                if let Some(path) = path {
                    let value = value.as_deref().ok_or_else(|| {
                        ArgError(format!(
                            "grant {} has no {field} yet: it is {} (a grant is served once it \
                             is in the public log; try again in a moment)",
                            args.id, g.status
                        ))
                    })?;
                    std::fs::write(path, value)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
            show(client.json, &g, print_grant)
        }
        AccessCommand::Suspend(w) => change(w, "suspend"),
        AccessCommand::Reinstate(w) => change(w, "reinstate"),
        AccessCommand::Revoke(w) => change(w, "revoke"),
    }
}

fn change(w: WithClient<Change>, action: &str) -> Result<u8> {
    let c = Client::new(&w.client)?;
    let out: GrantView = c.post(
        &format!("/v1/grants/{}/{action}", w.args.id),
        &Reason {
            reason: w.args.reason,
        },
        &[],
    )?;
    show(w.client.json, &out, print_grant)
}

/// Shows an answer (`view::show`); the exit status of every client subcommand is 0.
fn show<T: serde::Serialize + ?Sized>(json: bool, answer: &T, text: impl FnOnce(&T)) -> Result<u8> {
    view::show(json, answer, text)?;
    Ok(0)
}
