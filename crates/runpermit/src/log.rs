//! `runpermit log verify` and `runpermit log proof`: auditing the public transparency log.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Subcommand};
use runpermit_log::{
    LogState, Sighting, TileFetcher, TilePath, VerifySummary, WitnessPolicy, verify_log_visiting,
};
use runpermit_permit::Jwks;
use runpermit_permit::{
    LogStanding, SETTLE_SECONDS, StatusListClaims, check_status_list, verify_status_list,
};
use serde::{Deserialize, Serialize};

mod gossip;

use crate::args::ArgError;
use crate::client::{base_url, transport_error};
use crate::output::print_json;
use crate::permit::{load_jwks, load_witness_policy};

/// `runpermit log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Verify the log: the checkpoint's signature against the pinned key, consistency with the
    /// last verified state, and every new entry and tile, recomputed. Then check the
    /// authority's signed status list against the log: every permit the log says is revoked,
    /// completed, paused or on milestone hold must be on it (revoked and completed ones as
    /// revoked). Fails (exit 1) naming each permit and log entry where they disagree.
    Verify {
        /// The authority's base URL (the log is under URL/log/).
        #[arg(long, value_name = "URL", env = "RUNPERMIT_SERVER")]
        url: String,
        /// The log's verifier key (name+hash+base64), obtained out of band: `runpermit init`
        /// prints it. Not needed when --state holds it.
        #[arg(long, value_name = "VKEY")]
        vkey: Option<String>,
        /// Where to keep what was verified (the tree, and what the log says about each
        /// permit's standing), so that the next run proves consistency and verifies only new
        /// entries.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// The status list to check: a file (such as the list a gate holds) or a URL
        /// [default: URL/v1/status-list, fetched before the log's checkpoint].
        #[arg(long, value_name = "FILE|URL", conflicts_with = "no_status_list")]
        status_list: Option<String>,
        /// The authority's JWKS, a file or URL, to verify the status list and read permits
        /// [default: URL/.well-known/jwks.json].
        #[arg(long, value_name = "FILE|URL", conflicts_with = "no_status_list")]
        jwks: Option<String>,
        /// Verify the log only (for a log served without the authority's API).
        #[arg(long)]
        no_status_list: bool,
        /// A witness policy file (docs/log.md, "Witness policies"): the log's checkpoint must
        /// be cosigned by a quorum of its witnesses, else exit 1 naming those still needed
        /// (the state is then not advanced).
        #[arg(long, value_name = "FILE")]
        witness_policy: Option<PathBuf>,
        /// Another view of this log to compare with (repeatable): a witness's monitoring
        /// prefix (URL/<sha256 hex of the origin>/checkpoint is fetched) or another copy's
        /// checkpoint URL ending in /checkpoint (such as https://mirror.example/log/checkpoint).
        /// An inconsistent checkpoint is a fork: exit 1, printing both checkpoints. With
        /// --state, the largest checkpoint seen is kept and compared on later runs.
        #[arg(long, value_name = "URL")]
        peer: Vec<String>,
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
        /// Print `{"index", "proof"}` (and `"output"`, the file written) as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `--state` keeps between runs.
#[derive(Debug, Serialize, Deserialize)]
struct SavedState {
    url: String,
    vkey: String,
    #[serde(flatten)]
    log: LogState,
    /// What the first `size` entries say about each permit's standing (absent in state files
    /// written before it was kept: then the whole log is read once more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    standing: Option<LogStanding>,
    /// The largest checkpoint seen from any source (the log, --peer, earlier runs), when
    /// larger than the verified tree: compared again on later runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    largest_seen: Option<Sighting>,
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

/// What to check when the log's server cannot be reached.
const LOG_HINT: &str = "is --url (or RUNPERMIT_SERVER) the authority's base URL, and is it up?";

fn get_text(agent: &ureq::Agent, url: &str) -> Result<String> {
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| transport_error("GET", url, e, LOG_HINT))?;
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
            status_list,
            jwks,
            no_status_list,
            witness_policy,
            peer,
            json,
        } => {
            let base = base_url("--url", &url)?;
            let status = (!no_status_list).then(|| StatusSource {
                list: status_list.unwrap_or_else(|| format!("{base}/v1/status-list")),
                jwks: jwks.unwrap_or_else(|| format!("{base}/.well-known/jwks.json")),
            });
            let policy = witness_policy
                .as_deref()
                .map(|p| load_witness_policy(p, "--witness-policy"))
                .transpose()?;
            let also = Also {
                policy: policy.as_ref(),
                peers: &peer,
            };
            verify(&agent, &base, vkey, state, status, also, json)
        }
        LogCommand::Proof {
            url,
            index,
            permit,
            token,
            output,
            json,
        } => {
            let base = base_url("--url", &url)?;
            let text = match (index, permit) {
                (Some(i), _) => get_text(&agent, &format!("{base}/v1/log/proofs/{i}"))?,
                (None, Some(id)) => {
                    let token = token.ok_or_else(|| {
                        ArgError("--permit needs --token or RUNPERMIT_TOKEN".into())
                    })?;
                    let url = format!("{base}/v1/permits/{id}");
                    let mut response = agent
                        .get(&url)
                        .header("Authorization", &format!("Bearer {token}"))
                        .call()
                        .map_err(|e| transport_error("GET", &url, e, LOG_HINT))?;
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
                    return Err(ArgError("give --index N or --permit ID".into()).into());
                }
            };
            if let Some(file) = &output {
                std::fs::write(file, &text)
                    .with_context(|| format!("writing {}", file.display()))?;
            }
            if json {
                let bundle = runpermit_log::ProofBundle::parse(&text)
                    .map_err(|e| anyhow!("the authority's proof does not parse: {e}"))?;
                let mut out = serde_json::json!({"index": bundle.index, "proof": text});
                if let Some(file) = &output {
                    out["output"] = serde_json::json!(file);
                }
                return print_json(&out);
            }
            if output.is_none() {
                print!("{text}");
            }
            Ok(())
        }
    }
}

/// Where the status list to check comes from.
struct StatusSource {
    /// A file or URL.
    list: String,
    /// The JWKS, a file or URL.
    jwks: String,
}

/// Permits expired this long are forgotten by the saved standing.
const FORGET_EXPIRED_SECONDS: i64 = 30 * 86_400;

/// The status list and the keys that verify it and the log's permits.
struct FetchedList {
    claims: StatusListClaims,
    jwks: Jwks,
    source: String,
}

fn fetch_status_list(agent: &ureq::Agent, source: &StatusSource) -> Result<FetchedList> {
    let jwks = load_jwks(&source.jwks)?;
    let token = if source.list.starts_with("http://") || source.list.starts_with("https://") {
        get_text(agent, &source.list)?
    } else {
        std::fs::read_to_string(&source.list)
            .with_context(|| format!("reading --status-list {}", source.list))?
    };
    let claims = verify_status_list(token.trim(), &jwks).map_err(|e| {
        anyhow!(
            "STATUS LIST REFUSED: {} with the keys of {}: {e}",
            source.list,
            source.jwks
        )
    })?;
    Ok(FetchedList {
        claims,
        jwks,
        source: source.list.clone(),
    })
}

/// The checks beyond the log itself: a witness policy and peers to gossip with.
struct Also<'a> {
    policy: Option<&'a WitnessPolicy>,
    peers: &'a [String],
}

/// What `--json` prints: the log's summary, and the status list's check when there was one.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    summary: &'a VerifySummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_list: Option<ListReport>,
    /// With --witness-policy: the policy witnesses that cosigned the checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    witnessed_by: Option<Vec<String>>,
}

#[derive(Serialize)]
struct ListReport {
    source: String,
    version: u64,
    iat: i64,
    /// Permits the log says are not in good standing (not expired at `iat`).
    held_by_log: usize,
    agrees: bool,
}

fn verify(
    agent: &ureq::Agent,
    base: &str,
    vkey: Option<String>,
    state: Option<PathBuf>,
    status: Option<StatusSource>,
    also: Also<'_>,
    json: bool,
) -> Result<()> {
    let policy = also.policy;
    let saved: Option<SavedState> = match &state {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| ArgError(format!("--state {}: {e}", path.display())))?,
            )
        }
        _ => None,
    };
    let vkey = match (vkey, &saved) {
        (Some(v), Some(s)) if v.trim() != s.vkey => {
            return Err(ArgError(format!(
                "--vkey differs from the key pinned in the state file ({}); a log's key does not change",
                s.vkey
            ))
            .into());
        }
        (Some(v), _) => v.trim().to_owned(),
        (None, Some(s)) => s.vkey.clone(),
        (None, None) => {
            return Err(ArgError(
                "pin the log's key with --vkey (printed by `runpermit init`; compare with URL/log/vkey out of band)".into(),
            )
            .into());
        }
    };
    // The list first, then the checkpoint: every change the list reflects is then in the log
    // being compared with it.
    let list = status
        .as_ref()
        .map(|s| fetch_status_list(agent, s))
        .transpose()?;
    let note = get_text(agent, &format!("{base}/log/checkpoint"))?;
    let fetcher = HttpTiles {
        base: base.to_owned(),
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
    let mut progress = |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let previous = saved.as_ref().map(|s| s.log);
    // The saved standing covers the saved size; new entries are folded into it. Without one
    // (an older state file, or a run with --no-status-list) the whole log is read once more.
    let saved_standing = saved.as_ref().and_then(|s| s.standing.clone());
    let rebuild = previous.is_some_and(|p| p.size > 0) && saved_standing.is_none();
    let mut folded = saved_standing.unwrap_or_default();
    let mut standing = None;
    let summary = verify_log_visiting(
        &vkey,
        previous.as_ref(),
        &note,
        &fetcher,
        &mut progress,
        &mut |index, entry, at| {
            if let Some(l) = &list {
                folded.apply(index, entry, at, &l.jwks);
            }
        },
    );
    let summary = summary.map_err(|e| anyhow!("LOG VERIFICATION FAILED: {e}"))?;
    // The tree verified; a policy also requires its witnesses, before the state moves on.
    let witnessed = policy
        .map(|p| {
            p.verify_checkpoint(&note, &vkey).map_err(|e| {
                bar.finish_and_clear();
                anyhow!(
                    "CHECKPOINT NOT WITNESSED: the log (size {}) verified, but {e}",
                    summary.checkpoint.size
                )
            })
        })
        .transpose()?;
    // Gossip: other views of this log, and the largest seen before, against the verified
    // tree; a fork stops here, before the state moves on.
    let seen = gossip::gossip(
        &gossip::Verified {
            agent,
            vkey: &vkey,
            note: &note,
            ours: Sighting {
                checkpoint: summary.checkpoint.clone(),
                source: format!("{base}/log/checkpoint"),
            },
            tiles: &fetcher,
        },
        also.peers,
        saved.as_ref().and_then(|s| s.largest_seen.clone()),
    )
    .inspect_err(|_| bar.finish_and_clear())?;
    let largest_seen = (seen.checkpoint.size > summary.checkpoint.size).then_some(seen);
    if list.is_some() {
        standing = Some(folded);
    }
    if rebuild && let Some(l) = &list {
        // A state file from before standings were kept: fold the whole log once, verified
        // against the same checkpoint that was just proved consistent with the state.
        bar.set_message("reading every entry once for the permits' standing");
        let mut fresh = LogStanding::default();
        verify_log_visiting(
            &vkey,
            None,
            &note,
            &fetcher,
            &mut progress,
            &mut |index, entry, at| fresh.apply(index, entry, at, &l.jwks),
        )
        .map_err(|e| anyhow!("LOG VERIFICATION FAILED: {e}"))?;
        standing = Some(fresh);
    }
    bar.finish_and_clear();
    if let Some(s) = standing.as_mut() {
        s.prune_expired(crate::now_unix() - FORGET_EXPIRED_SECONDS);
    }
    if let Some(path) = &state {
        let next = SavedState {
            url: base.to_owned(),
            vkey: vkey.clone(),
            log: summary.state(),
            // Kept only when it covers every verified entry.
            standing: standing.clone(),
            largest_seen: largest_seen.clone(),
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(&next)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    // The log verified (and the state is saved); now the list against it.
    let checked = match (&list, &standing) {
        (Some(l), Some(s)) => {
            let drift = check_status_list(s, &l.claims, SETTLE_SECONDS);
            let held = s.holds().filter(|v| v.permit.exp > l.claims.iat).count();
            Some((l, held, drift))
        }
        _ => None,
    };
    if let Some((l, _, drift)) = &checked
        && !drift.is_empty()
    {
        let lines: Vec<String> = drift.iter().map(|d| format!("  {d}")).collect();
        return Err(anyhow!(
            "STATUS LIST DISAGREES WITH THE LOG: the log (size {}) verified, but the status list \
             from {} shows {} permit(s) in better standing than the log allows:\n{}",
            summary.checkpoint.size,
            l.source,
            drift.len(),
            lines.join("\n")
        ));
    }
    let witnessed_by: Option<Vec<String>> =
        witnessed.map(|w| w.cosigned_by.into_iter().map(|c| c.name).collect());
    if json {
        let report = Report {
            summary: &summary,
            status_list: checked.map(|(l, held, _)| ListReport {
                source: l.source.clone(),
                version: l.claims.version,
                iat: l.claims.iat,
                held_by_log: held,
                agrees: true,
            }),
            witnessed_by: witnessed_by.clone(),
        };
        return print_json(&serde_json::to_value(&report)?);
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
    if let Some(names) = &witnessed_by {
        println!(
            "checkpoint cosigned by {} as the witness policy requires",
            names.join(", ")
        );
    }
    if let Some((l, held, _)) = checked {
        println!(
            "status list version {} (issued {}) agrees with the log: all {held} permit(s) the \
             log says are not in good standing are on it",
            l.claims.version,
            runpermit_permit::utc(l.claims.iat)
        );
    }
    Ok(())
}
