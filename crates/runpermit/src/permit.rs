//! `runpermit permit get` and `runpermit permit verify` (offline).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use runpermit_log::WitnessPolicy;
use runpermit_permit::{EXEMPTION_TYP, Jwks, PERMIT_TYP, verify_exemption, verify_permit};
use serde_json::Value;

use crate::args::ArgError;
use crate::client::{Client, ClientArgs};
use crate::output::print_json;

/// `runpermit permit`.
#[derive(Debug, Args)]
pub struct PermitArgs {
    #[command(subcommand)]
    command: PermitCommand,
}

#[derive(Debug, Subcommand)]
enum PermitCommand {
    /// Fetch a permit (by permit id, or by application id for its permit or exemption receipt).
    Get {
        /// pmt_… or app_….
        id: String,
        /// Write the signed token to this file instead of printing it.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also write the permit's log inclusion proof (c2sp.org/tlog-proof@v1) to this file.
        #[arg(long, value_name = "FILE")]
        proof: Option<PathBuf>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Verify a permit or exemption receipt offline against the authority's public keys.
    Verify {
        /// File holding the compact JWS.
        token: PathBuf,
        /// JWKS: a file, or an https:// or http:// URL such as
        /// http://127.0.0.1:8080/.well-known/jwks.json.
        #[arg(long, value_name = "FILE|URL")]
        jwks: String,
        /// Verify as of this time (RFC 3339) instead of now.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Tolerated clock skew in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 60)]
        leeway: i64,
        /// The permit's log inclusion proof (from `permit get --proof`): checks that this
        /// exact permit is in the public log. Needs --log-vkey.
        #[arg(long, value_name = "FILE", requires = "log_vkey")]
        proof: Option<PathBuf>,
        /// The log's verifier key (name+hash+base64), pinned out of band.
        #[arg(long, value_name = "VKEY")]
        log_vkey: Option<String>,
        /// A witness policy file (docs/log.md, "Witness policies"): the proof's checkpoint
        /// must also be cosigned by a quorum of its witnesses. Needs --proof.
        #[arg(long, value_name = "FILE", requires = "proof")]
        witness_policy: Option<PathBuf>,
        /// Print the verified claims as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `runpermit permit`.
pub fn run(args: PermitArgs) -> Result<()> {
    match args.command {
        PermitCommand::Get {
            id,
            output,
            proof,
            client,
        } => get(&id, output, proof, &client),
        PermitCommand::Verify {
            token,
            jwks,
            at,
            leeway,
            proof,
            log_vkey,
            witness_policy,
            json,
        } => {
            let policy = witness_policy
                .as_deref()
                .map(|p| load_witness_policy(p, "--witness-policy"))
                .transpose()?;
            let logged = match (proof, log_vkey) {
                (Some(p), Some(v)) => Some(check_logged(&token, &p, &v, policy.as_ref())?),
                _ => None,
            };
            verify(&token, &jwks, at.as_deref(), leeway, json)?;
            if let (Some((index, size, witnessed)), false) = (logged, json) {
                println!("  public log:       entry {index}, under a checkpoint of {size} entries");
                if let Some(names) = witnessed {
                    println!("  witnessed by:     {}", names.join(", "));
                }
            }
            Ok(())
        }
    }
}

/// Reads a witness policy file named by `flag`; a problem is a usage error naming the file
/// and line.
pub(crate) fn load_witness_policy(path: &Path, flag: &str) -> Result<WitnessPolicy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {flag} {}", path.display()))?;
    Ok(WitnessPolicy::parse(&text)
        .map_err(|e| ArgError(format!("{flag} {}: {e}", path.display())))?)
}

/// The verified log position and witnesses: entry index, checkpoint size, and the policy
/// witnesses that cosigned (when a policy was given).
type Logged = (u64, u64, Option<Vec<String>>);

/// Checks that `proof` proves the permit in `token_path` is in the log signed by `vkey`, and
/// that its checkpoint meets `policy`'s quorum when one is given.
fn check_logged(
    token_path: &PathBuf,
    proof: &PathBuf,
    vkey: &str,
    policy: Option<&WitnessPolicy>,
) -> Result<Logged> {
    let token = std::fs::read_to_string(token_path)
        .with_context(|| format!("reading {}", token_path.display()))?;
    let text =
        std::fs::read_to_string(proof).with_context(|| format!("reading {}", proof.display()))?;
    let bundle = runpermit_log::ProofBundle::parse(&text)
        .map_err(|e| ArgError(format!("--proof {}: {e}", proof.display())))?;
    let proved = bundle
        .verify_entry(vkey.trim())
        .map_err(|e| anyhow::anyhow!("INVALID: the log proof does not verify: {e}"))?;
    match proved.entry {
        runpermit_log::LogEntry::PermitIssued { token: logged, .. } if logged == token.trim() => {
            let witnessed = policy
                .map(|p| {
                    p.verify_checkpoint(&bundle.checkpoint, vkey.trim())
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "INVALID: the log proof is not witnessed as the policy requires: {e}. \
                                 Once the witnesses have cosigned, fetch the proof again \
                                 (`runpermit permit get ID --proof FILE`)"
                            )
                        })
                        .map(|w| w.cosigned_by.into_iter().map(|c| c.name).collect())
                })
                .transpose()?;
            Ok((proved.index, proved.checkpoint.size, witnessed))
        }
        runpermit_log::LogEntry::PermitIssued { permit_id, .. } => {
            bail!("INVALID: the log proof is for another permit ({permit_id})")
        }
        other => bail!(
            "INVALID: the log proof is for an entry of type {}, not a permit",
            other.type_name()
        ),
    }
}

fn get(id: &str, output: Option<PathBuf>, proof: Option<PathBuf>, args: &ClientArgs) -> Result<()> {
    let client = Client::new(args)?;
    let path = if id.starts_with("app_") {
        format!("/v1/applications/{id}/permit")
    } else {
        format!("/v1/permits/{id}")
    };
    let permit = client.get(&path)?;
    if args.json {
        return print_json(&permit);
    }
    if let Some(file) = &proof {
        let text = permit.get("proof").and_then(Value::as_str).ok_or_else(|| {
            anyhow::anyhow!(
                "{id} has no log proof yet (status {})",
                permit.get("status").and_then(Value::as_str).unwrap_or("?")
            )
        })?;
        std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    let Some(token) = permit.get("token").and_then(Value::as_str) else {
        bail!(
            "permit {} is not yet public (status {}); try again shortly",
            permit.get("id").and_then(Value::as_str).unwrap_or(id),
            permit.get("status").and_then(Value::as_str).unwrap_or("?")
        );
    };
    match output {
        Some(file) => {
            std::fs::write(&file, format!("{token}\n"))
                .with_context(|| format!("writing {}", file.display()))?;
            eprintln!(
                "wrote {} {} to {}",
                permit
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("permit"),
                permit.get("id").and_then(Value::as_str).unwrap_or(id),
                file.display()
            );
        }
        None => println!("{token}"),
    }
    Ok(())
}

pub(crate) fn load_jwks(source: &str) -> Result<Jwks> {
    let text = if source.starts_with("https://") || source.starts_with("http://") {
        ureq::get(source)
            .call()
            .map_err(|e| {
                crate::client::transport_error(
                    "GET",
                    source,
                    e,
                    "is the --jwks URL right, and is its server up?",
                )
            })?
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading {source}"))?
    } else {
        std::fs::read_to_string(source).with_context(|| format!("reading --jwks {source}"))?
    };
    Jwks::from_json(&text).map_err(|e| ArgError(format!("--jwks {source}: {e}")).into())
}

fn parse_time(text: &str) -> Result<i64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            ArgError(format!(
                "--at {text:?}: expected RFC 3339 such as 2026-12-01T00:00:00Z ({e})"
            ))
        })?;
    Ok(t.unix_timestamp())
}

fn verify(
    token_path: &PathBuf,
    jwks: &str,
    at: Option<&str>,
    leeway: i64,
    json: bool,
) -> Result<()> {
    let token = std::fs::read_to_string(token_path)
        .with_context(|| format!("reading {}", token_path.display()))?;
    let token = token.trim();
    let jwks = load_jwks(jwks)?;
    let now = match at {
        Some(t) => parse_time(t)?,
        None => crate::now_unix(),
    };
    let typ = header_typ(token);
    if typ.as_deref() == Some(EXEMPTION_TYP) {
        let claims = verify_exemption(token, &jwks)
            .map_err(|e| anyhow::anyhow!("INVALID exemption receipt: {e}"))?;
        if json {
            return print_json(&serde_json::to_value(&claims)?);
        }
        println!(
            "VALID exemption receipt {} for application {}",
            claims.jti, claims.application_id
        );
        println!(
            "  holder:   {} ({})",
            claims.holder.name, claims.holder.org_id
        );
        println!("  estimate: {}", claims.estimated_flop);
        println!(
            "  policy:   {} (tier {})",
            claims.policy_version, claims.tier
        );
        return Ok(());
    }
    if typ.as_deref() != Some(PERMIT_TYP) && typ.is_some() {
        bail!("INVALID: token type {typ:?} is neither a permit nor an exemption receipt");
    }
    let claims = verify_permit(token, &jwks, now, leeway)
        .map_err(|e| anyhow::anyhow!("INVALID permit: {e}"))?;
    if json {
        return print_json(&serde_json::to_value(&claims)?);
    }
    println!("VALID permit {} for run {}", claims.jti, claims.sub);
    println!(
        "  holder:           {} ({})",
        claims.holder.name, claims.holder.org_id
    );
    println!("  issuer:           {}", claims.iss);
    println!(
        "  valid:            {} to {}",
        runpermit_permit::utc(claims.nbf),
        runpermit_permit::utc(claims.exp)
    );
    println!("  FLOP budget:      {}", claims.flop_budget);
    let tranches: Vec<String> = claims.tranches.iter().map(|t| t.flop.to_string()).collect();
    println!("  tranches:         {}", tranches.join(", "));
    println!("  max accelerators: {}", claims.max_accelerators);
    for p in &claims.providers {
        let clusters = if p.clusters.is_empty() {
            "any cluster".to_owned()
        } else {
            p.clusters.join(", ")
        };
        println!("  provider:         {} ({clusters})", p.provider);
    }
    if claims.evaluators().is_empty() {
        println!("  evaluators:       none (no tranche after the first can be released)");
    }
    for e in claims.evaluators() {
        println!("  evaluator:        {e}");
    }
    println!(
        "  policy:           {} (tier {})",
        claims.policy_version, claims.tier
    );
    for c in &claims.conditions {
        println!("  condition:        {c}");
    }
    Ok(())
}

/// The `typ` of a compact JWS header, without verifying anything.
fn header_typ(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.get("typ")?.as_str().map(str::to_owned)
}
