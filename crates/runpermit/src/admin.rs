//! `runpermit org`, `runpermit token`, `runpermit whoami`: identity administration.

use anyhow::Result;
use clap::{Args, Subcommand};
use runpermit_api::identity::{NewToken, Revocation};
use runpermit_api::usage::NewReportingKey;
use serde_json::{Value, json};

use crate::client::{Client, ClientArgs};
use crate::output::print_json;
use crate::view::{items, text};

/// `runpermit org`.
#[derive(Debug, Args)]
pub struct OrgArgs {
    #[command(subcommand)]
    command: OrgCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organization (authority admins).
    Create {
        /// Display name.
        name: String,
        /// authority, developer, provider or evaluator.
        #[arg(long)]
        kind: String,
        /// A stable, unique handle people choose (such as northwind-cloud) that becomes the
        /// organization's id: a plan's providers, a gate's provider_id and URLs may name it
        /// before anyone has read a generated id. Without it the id is generated.
        #[arg(long, value_name = "HANDLE")]
        handle: Option<String>,
    },
    /// List organizations.
    List,
    /// Show an organization.
    Show {
        /// Organization id.
        id: String,
    },
    /// Add a member to an organization.
    AddMember {
        /// Organization id.
        org: String,
        /// Person or service name.
        #[arg(long)]
        name: String,
        /// admin, reviewer, auditor (authority); applicant (developer);
        /// provider_operator (provider); evaluator (evaluator).
        #[arg(long)]
        role: String,
    },
    /// List an organization's members.
    Members {
        /// Organization id.
        org: String,
    },
    /// Register a reporting key: the public half of a provider gate's `reporting_key`, or of
    /// a developer's access gateway's (only the public key is sent).
    AddReportingKey {
        /// Provider or developer organization id.
        org: String,
        /// The gate's reporting key: PKCS#8 PEM private key, or a public JWK (JSON).
        #[arg(long, value_name = "FILE")]
        key: std::path::PathBuf,
    },
    /// List an organization's reporting keys.
    ReportingKeys {
        /// Provider or developer organization id.
        org: String,
    },
}

/// The public JWK of a reporting key file: a PKCS#8 PEM private key (the gate's
/// `reporting_key`) or a public JWK.
fn reporting_jwk(path: &std::path::Path) -> Result<runpermit_permit::Jwk> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --key {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let jwk: runpermit_permit::Jwk = serde_json::from_str(&text).map_err(|e| {
            crate::args::ArgError(format!("--key {}: not a JWK: {e}", path.display()))
        })?;
        return Ok(jwk);
    }
    let key = runpermit_permit::SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        crate::args::ArgError(format!(
            "--key {}: neither a JWK nor a PKCS#8 PEM Ed25519 key: {e}",
            path.display()
        ))
    })?;
    Ok(key.public().to_jwk())
}

/// Runs `runpermit org`.
pub fn org(args: OrgArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let out = match args.command {
        OrgCommand::Create { name, kind, handle } => {
            let mut body = json!({"name": name, "kind": kind});
            if let Some(handle) = handle {
                body["handle"] = json!(handle);
            }
            client.post("/v1/orgs", &body, &[])?
        }
        OrgCommand::List => client.get("/v1/orgs")?,
        OrgCommand::Show { id } => client.get(&format!("/v1/orgs/{id}"))?,
        OrgCommand::AddMember { org, name, role } => client.post(
            &format!("/v1/orgs/{org}/members"),
            &json!({"name": name, "role": role}),
            &[],
        )?,
        OrgCommand::Members { org } => client.get(&format!("/v1/orgs/{org}/members"))?,
        OrgCommand::AddReportingKey { org, key } => client.post(
            &format!("/v1/orgs/{org}/reporting-keys"),
            &NewReportingKey {
                jwk: reporting_jwk(&key)?,
            },
            &[],
        )?,
        OrgCommand::ReportingKeys { org } => {
            client.get(&format!("/v1/orgs/{org}/reporting-keys"))?
        }
    };
    if args.client.json {
        return print_json(&out);
    }
    for row in items(&out) {
        if row.get("jwk").is_some() {
            println!(
                "{}  reporting key of {}{}",
                text(row, "kid"),
                text(row, "org_id"),
                if row.get("revoked_at").is_some() {
                    "  (revoked)"
                } else {
                    ""
                }
            );
        } else if row.get("role").is_some() {
            println!(
                "{}  {:<18}  {}  (org {})",
                text(row, "id"),
                text(row, "role"),
                text(row, "name"),
                text(row, "org_id")
            );
        } else {
            println!(
                "{}  {:<10}  {}",
                text(row, "id"),
                text(row, "kind"),
                text(row, "name")
            );
        }
    }
    Ok(())
}

/// `runpermit token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create an API token for a member; the secret is printed once.
    Create {
        /// Member id.
        #[arg(long)]
        member: String,
        /// What it is for.
        #[arg(long, default_value = "")]
        label: String,
        /// Lifetime in days, at most the policy's maximum (365 by default) and never beyond
        /// the expiry of the token in use (default: the longest allowed).
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List a member's tokens (never their secrets).
    List {
        /// Member id.
        #[arg(long)]
        member: String,
    },
    /// Revoke a token.
    Revoke {
        /// Token id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs `runpermit token`.
pub fn token(args: TokenArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let out = match args.command {
        TokenCommand::Create {
            member,
            label,
            expires_in_days,
        } => client.post(
            &format!("/v1/members/{member}/tokens"),
            &NewToken {
                label,
                expires_in_days: expires_in_days.map(i64::from),
            },
            &[],
        )?,
        TokenCommand::List { member } => client.get(&format!("/v1/members/{member}/tokens"))?,
        TokenCommand::Revoke { id, reason } => client.post(
            &format!("/v1/tokens/{id}/revoke"),
            &Revocation { reason },
            &[],
        )?,
    };
    if args.client.json {
        return print_json(&out);
    }
    if let Some(secret) = out.get("secret").and_then(Value::as_str) {
        println!(
            "token {} for member {} (shown once):",
            text(&out, "id"),
            text(&out, "member_id")
        );
        println!("{secret}");
        return Ok(());
    }
    for t in items(&out) {
        let state = if !text(t, "revoked_at").is_empty() {
            format!("revoked {}", text(t, "revoked_at"))
        } else if !text(t, "expires_at").is_empty() {
            format!("expires {}", text(t, "expires_at"))
        } else {
            "active".to_owned()
        };
        println!("{}  {:<12}  {state}", text(t, "id"), text(t, "label"));
    }
    Ok(())
}

/// `runpermit whoami`.
#[derive(Debug, Args)]
pub struct WhoamiArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `runpermit whoami`.
pub fn whoami(args: WhoamiArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let me = client.get("/v1/whoami")?;
    if args.client.json {
        return print_json(&me);
    }
    println!(
        "{} ({}), {} of {} ({}, {})",
        text(&me, "member_name"),
        text(&me, "member_id"),
        text(&me, "role"),
        text(&me, "org_name"),
        text(&me, "org_kind"),
        text(&me, "org_id")
    );
    let expires = text(&me, "token_expires_at");
    println!(
        "token {} ({})",
        text(&me, "token_id"),
        if expires.is_empty() {
            "never expires".to_owned()
        } else {
            format!("expires {expires}")
        }
    );
    Ok(())
}
