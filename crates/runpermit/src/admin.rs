//! `runpermit org`, `runpermit token`, `runpermit whoami`: identity administration.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, ClientArgs, print_json};

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
    /// Register a provider's usage-reporting key: the public half of the gate's
    /// `reporting_key` (only the public key is sent).
    AddReportingKey {
        /// Provider organization id.
        org: String,
        /// The gate's reporting key: PKCS#8 PEM private key, or a public JWK (JSON).
        #[arg(long, value_name = "FILE")]
        key: std::path::PathBuf,
    },
    /// List a provider's reporting keys.
    ReportingKeys {
        /// Provider organization id.
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
            crate::usage::UsageError(format!("--key {}: not a JWK: {e}", path.display()))
        })?;
        return Ok(jwk);
    }
    let key = runpermit_permit::SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        crate::usage::UsageError(format!(
            "--key {}: neither a JWK nor a PKCS#8 PEM Ed25519 key: {e}",
            path.display()
        ))
    })?;
    Ok(key.public().to_jwk())
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Runs `runpermit org`.
pub fn org(args: OrgArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let out = match args.command {
        OrgCommand::Create { name, kind } => {
            client.post("/v1/orgs", &json!({"name": name, "kind": kind}), &[])?
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
            &json!({"jwk": reporting_jwk(&key)?}),
            &[],
        )?,
        OrgCommand::ReportingKeys { org } => {
            client.get(&format!("/v1/orgs/{org}/reporting-keys"))?
        }
    };
    if args.client.json {
        return print_json(&out);
    }
    let rows: Vec<&Value> = match out.as_array() {
        Some(list) => list.iter().collect(),
        None => vec![&out],
    };
    for row in rows {
        if row.get("jwk").is_some() {
            println!(
                "{}  reporting key of {}{}",
                s(row, "kid"),
                s(row, "org_id"),
                if row.get("revoked_at").is_some() {
                    "  (revoked)"
                } else {
                    ""
                }
            );
        } else if row.get("role").is_some() {
            println!(
                "{}  {:<18}  {}  (org {})",
                s(row, "id"),
                s(row, "role"),
                s(row, "name"),
                s(row, "org_id")
            );
        } else {
            println!(
                "{}  {:<10}  {}",
                s(row, "id"),
                s(row, "kind"),
                s(row, "name")
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
            &json!({"label": label, "expires_in_days": expires_in_days}),
            &[],
        )?,
        TokenCommand::List { member } => client.get(&format!("/v1/members/{member}/tokens"))?,
        TokenCommand::Revoke { id, reason } => client.post(
            &format!("/v1/tokens/{id}/revoke"),
            &json!({"reason": reason}),
            &[],
        )?,
    };
    if args.client.json {
        return print_json(&out);
    }
    if let Some(secret) = out.get("secret").and_then(Value::as_str) {
        println!(
            "token {} for member {} (shown once):",
            s(&out, "id"),
            s(&out, "member_id")
        );
        println!("{secret}");
        return Ok(());
    }
    let rows: Vec<&Value> = match out.as_array() {
        Some(list) => list.iter().collect(),
        None => vec![&out],
    };
    for t in rows {
        let state = if !s(t, "revoked_at").is_empty() {
            format!("revoked {}", s(t, "revoked_at"))
        } else if !s(t, "expires_at").is_empty() {
            format!("expires {}", s(t, "expires_at"))
        } else {
            "active".to_owned()
        };
        println!("{}  {:<12}  {state}", s(t, "id"), s(t, "label"));
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
        s(&me, "member_name"),
        s(&me, "member_id"),
        s(&me, "role"),
        s(&me, "org_name"),
        s(&me, "org_kind"),
        s(&me, "org_id")
    );
    let expires = s(&me, "token_expires_at");
    println!(
        "token {} ({})",
        s(&me, "token_id"),
        if expires.is_empty() {
            "never expires".to_owned()
        } else {
            format!("expires {expires}")
        }
    );
    Ok(())
}
