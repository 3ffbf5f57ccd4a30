//! `runpermit org`, `runpermit token`, `runpermit whoami`: identity administration.

use anyhow::Result;
use clap::{Args, Subcommand};
use runpermit_api::identity::{
    MemberView, NewToken, OrganizationView, Revocation, TokenView, WhoAmI,
};
use runpermit_api::usage::{NewReportingKey, ReportingKeyView};
use serde_json::json;

use crate::client::{Client, ClientArgs};
use crate::view::show;

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
    let json = args.client.json;
    match args.command {
        OrgCommand::Create { name, kind, handle } => {
            // The kind goes as written: the authority's answer names it if it is not one.
            let mut body = json!({"name": name, "kind": kind});
            if let Some(handle) = handle {
                body["handle"] = json!(handle);
            }
            let org: OrganizationView = client.post("/v1/orgs", &body, &[])?;
            show(json, &org, print_org)
        }
        OrgCommand::List => {
            let list: Vec<OrganizationView> = client.get("/v1/orgs")?;
            show(json, &list, |list| list.iter().for_each(print_org))
        }
        OrgCommand::Show { id } => {
            let org: OrganizationView = client.get(&format!("/v1/orgs/{id}"))?;
            show(json, &org, print_org)
        }
        OrgCommand::AddMember { org, name, role } => {
            // As for the kind: the authority names a role that is not one, or not the org's.
            let member: MemberView = client.post(
                &format!("/v1/orgs/{org}/members"),
                &json!({"name": name, "role": role}),
                &[],
            )?;
            show(json, &member, print_member)
        }
        OrgCommand::Members { org } => {
            let list: Vec<MemberView> = client.get(&format!("/v1/orgs/{org}/members"))?;
            show(json, &list, |list| list.iter().for_each(print_member))
        }
        OrgCommand::AddReportingKey { org, key } => {
            let key: ReportingKeyView = client.post(
                &format!("/v1/orgs/{org}/reporting-keys"),
                &NewReportingKey {
                    jwk: reporting_jwk(&key)?,
                },
                &[],
            )?;
            show(json, &key, print_reporting_key)
        }
        OrgCommand::ReportingKeys { org } => {
            let list: Vec<ReportingKeyView> =
                client.get(&format!("/v1/orgs/{org}/reporting-keys"))?;
            show(json, &list, |list| {
                list.iter().for_each(print_reporting_key)
            })
        }
    }
}

fn print_org(org: &OrganizationView) {
    println!("{}  {:<10}  {}", org.id, org.kind, org.name);
}

fn print_member(m: &MemberView) {
    println!("{}  {:<18}  {}  (org {})", m.id, m.role, m.name, m.org_id);
}

fn print_reporting_key(k: &ReportingKeyView) {
    println!(
        "{}  reporting key of {}{}",
        k.kid,
        k.org_id,
        if k.revoked_at.is_some() {
            "  (revoked)"
        } else {
            ""
        }
    );
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
    let json = args.client.json;
    match args.command {
        TokenCommand::Create {
            member,
            label,
            expires_in_days,
        } => {
            let t: TokenView = client.post(
                &format!("/v1/members/{member}/tokens"),
                &NewToken {
                    label,
                    expires_in_days: expires_in_days.map(i64::from),
                },
                &[],
            )?;
            show(json, &t, print_token)
        }
        TokenCommand::List { member } => {
            let list: Vec<TokenView> = client.get(&format!("/v1/members/{member}/tokens"))?;
            show(json, &list, |list| list.iter().for_each(print_token))
        }
        TokenCommand::Revoke { id, reason } => {
            let t: TokenView = client.post(
                &format!("/v1/tokens/{id}/revoke"),
                &Revocation { reason },
                &[],
            )?;
            show(json, &t, print_token)
        }
    }
}

/// A token: its secret when the answer carries it (once, at creation), else its state.
fn print_token(t: &TokenView) {
    if let Some(secret) = &t.secret {
        println!("token {} for member {} (shown once):", t.id, t.member_id);
        println!("{secret}");
        return;
    }
    let state = match (&t.revoked_at, &t.expires_at) {
        (Some(at), _) if !at.is_empty() => format!("revoked {at}"),
        (_, Some(at)) if !at.is_empty() => format!("expires {at}"),
        _ => "active".to_owned(),
    };
    println!("{}  {:<12}  {state}", t.id, t.label);
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
    let me: WhoAmI = client.get("/v1/whoami")?;
    show(args.client.json, &me, |me| {
        println!(
            "{} ({}), {} of {} ({}, {})",
            me.member_name, me.member_id, me.role, me.org_name, me.org_kind, me.org_id
        );
        println!(
            "token {} ({})",
            me.token_id,
            match me.token_expires_at.as_deref() {
                None | Some("") => "never expires".to_owned(),
                Some(at) => format!("expires {at}"),
            }
        );
    })
}
