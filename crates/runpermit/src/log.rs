//! `runpermit log verify` and `runpermit log proof`: auditing the public transparency log.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use runpermit_log::{LogState, TileFetcher, TilePath, verify_log};
use serde::{Deserialize, Serialize};

use crate::client::print_json;
use crate::usage::UsageError;

/// `runpermit log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Verify the log: the checkpoint's signature against the pinned key, consistency with the
    /// last verified state, and every new entry and tile, recomputed.
    Verify {
        /// The authority's base URL (the log is under URL/log/).
        #[arg(long, value_name = "URL", env = "RUNPERMIT_SERVER")]
        url: String,
        /// The log's verifier key (name+hash+base64), obtained out of band: `runpermit init`
        /// prints it. Not needed when --state holds it.
        #[arg(long, value_name = "VKEY")]
        vkey: Option<String>,
        /// Where to keep what was verified, so that the next run proves consistency and
        /// verifies only new entries.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an inclusion proof (c2sp.org/tlog-proof@v1) for an entry or a permit.
    Proof {
        /// The authority's base URL.
        #[arg(
            long,
            value_name = "URL",
            env = "RUNPERMIT_SERVER",
            default_value = "http://127.0.0.1:8080"
        )]
        url: String,
        /// The entry's index.
        #[arg(long, conflicts_with = "permit", required_unless_present = "permit")]
        index: Option<u64>,
        /// A permit id: its `permit_issued` entry (needs a token allowed to read the permit).
        #[arg(long)]
        permit: Option<String>,
        /// API token, for --permit.
        #[arg(long, env = "RUNPERMIT_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Write the proof to this file instead of printing it.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// What `--state` keeps between runs.
#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    url: String,
    vkey: String,
    #[serde(flatten)]
    log: LogState,
}

struct HttpTiles {
    base: String,
    agent: ureq::Agent,
}

impl TileFetcher for HttpTiles {
    type Error = String;

    fn tile(&self, path: &TilePath) -> Result<Vec<u8>, String> {
        let url = format!("{}/log/{path}", self.base);
        let mut response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        response
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| format!("GET {url}: {e}"))
    }
}

fn get_text(agent: &ureq::Agent, url: &str) -> Result<String> {
    let mut response = agent
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading {url}"))?;
    if status != 200 {
        return Err(anyhow!("GET {url}: HTTP {status}: {}", body.trim()));
    }
    Ok(body)
}

/// Runs `runpermit log`.
pub fn run(args: LogArgs) -> Result<()> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into();
    match args.command {
        LogCommand::Verify {
            url,
            vkey,
            state,
            json,
        } => verify(&agent, &url, vkey, state, json),
        LogCommand::Proof {
            url,
            index,
            permit,
            token,
            output,
        } => {
            let base = url.trim_end_matches('/');
            let text = match (index, permit) {
                (Some(i), _) => get_text(&agent, &format!("{base}/v1/log/proofs/{i}"))?,
                (None, Some(id)) => {
                    let token = token.ok_or_else(|| {
                        UsageError("--permit needs --token or RUNPERMIT_TOKEN".into())
                    })?;
                    let mut response = agent
                        .get(&format!("{base}/v1/permits/{id}"))
                        .header("Authorization", &format!("Bearer {token}"))
                        .call()
                        .with_context(|| format!("GET {base}/v1/permits/{id}"))?;
                    let body: serde_json::Value =
                        serde_json::from_str(&response.body_mut().read_to_string()?)
                            .context("the authority's answer is not JSON")?;
                    body.get("proof")
                        .and_then(serde_json::Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            anyhow!(
                                "permit {id} has no proof yet: {}",
                                body.get("message").or(body.get("status")).unwrap_or(&body)
                            )
                        })?
                }
                (None, None) => {
                    return Err(UsageError("give --index N or --permit ID".into()).into());
                }
            };
            match output {
                Some(file) => std::fs::write(&file, &text)
                    .with_context(|| format!("writing {}", file.display())),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
    }
}

fn verify(
    agent: &ureq::Agent,
    url: &str,
    vkey: Option<String>,
    state: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let base = url.trim_end_matches('/').to_owned();
    let saved: Option<SavedState> = match &state {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| UsageError(format!("--state {}: {e}", path.display())))?,
            )
        }
        _ => None,
    };
    let vkey = match (vkey, &saved) {
        (Some(v), Some(s)) if v.trim() != s.vkey => {
            return Err(UsageError(format!(
                "--vkey differs from the key pinned in the state file ({}); a log's key does not change",
                s.vkey
            ))
            .into());
        }
        (Some(v), _) => v.trim().to_owned(),
        (None, Some(s)) => s.vkey.clone(),
        (None, None) => {
            return Err(UsageError(
                "pin the log's key with --vkey (printed by `runpermit init`; compare with URL/log/vkey out of band)".into(),
            )
            .into());
        }
    };
    let note = get_text(agent, &format!("{base}/log/checkpoint"))?;
    let fetcher = HttpTiles {
        base: base.clone(),
        agent: agent.clone(),
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} entries ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message("verifying");
    let summary = verify_log(
        &vkey,
        saved.as_ref().map(|s| &s.log),
        &note,
        &fetcher,
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    let summary = summary.map_err(|e| anyhow!("LOG VERIFICATION FAILED: {e}"))?;
    if let Some(path) = &state {
        let next = SavedState {
            url: base.clone(),
            vkey: vkey.clone(),
            log: summary.state(),
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&next)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        return print_json(&serde_json::to_value(&summary)?);
    }
    println!(
        "log {} verified: {} entries ({} new since {}), root {}",
        summary.checkpoint.origin,
        summary.checkpoint.size,
        summary.new_entries,
        summary.previous_size,
        summary.checkpoint.root_hash
    );
    for (kind, n) in &summary.entries_by_type {
        println!("  {kind}: {n}");
    }
    Ok(())
}
