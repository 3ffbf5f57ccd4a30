//! Asking witnesses to cosign the log's checkpoints (C2SP `tlog-witness`).
//!
//! After each sequencing round (and on a timer, to retry), every witness of the log's policy
//! that has a URL is sent the latest checkpoint with a consistency proof from the size it last
//! cosigned: `POST <url>/add-checkpoint`. What it returns is verified against its key before
//! it is stored ([`runpermit_store::LogStore::record_cosignature`]); the published checkpoint
//! ([`crate::domain::log::published_checkpoint`]) is the latest one whose cosignatures meet the
//! policy's quorum.
//!
//! - A witness that is down or refuses does not stop the log: it is retried with a growing
//!   pause (up to a minute), its lag is in `/metrics`, and the log keeps publishing the last
//!   checkpoint that met the quorum.
//! - `409 Conflict` names the size the witness holds; the next request starts from there
//!   (this is also how a witness that lost its answer to a crash is caught up). A size larger
//!   than this log's is a sign that someone showed the witness another history under this
//!   log's key: it is reported as an error and counted (`outcome="ahead"`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use runpermit_log::{PolicyWitness, add_signature_lines, consistency_proof, verify_cosignatures};

use crate::domain::Authority;
use crate::domain::error::DomainError;
use crate::domain::log::with_stored_hashes;
use runpermit_store::LogState;

/// How long one request to a witness may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest pause before retrying a witness that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the loop wakes without a new checkpoint (to retry and refresh the gauges).
const TICK: Duration = Duration::from_secs(1);

/// What the loop remembers about one witness between rounds.
#[derive(Debug, Default)]
struct WitnessMemory {
    /// Failures in a row, and when to try again.
    failures: u32,
    retry_at: Option<Instant>,
    /// Since when it has been behind the latest checkpoint.
    behind_since: Option<Instant>,
}

/// Why a submission failed, for the log and the `outcome` label.
#[derive(Debug)]
pub struct Failure {
    /// `unreachable`, `refused`, `ahead` (the witness holds a larger tree), `bad_answer`, or
    /// `internal`.
    pub outcome: &'static str,
    /// What happened, naming the witness.
    pub message: String,
}

impl Failure {
    fn new(outcome: &'static str, message: String) -> Failure {
        Failure { outcome, message }
    }
}

impl From<runpermit_store::StoreError> for Failure {
    fn from(e: runpermit_store::StoreError) -> Failure {
        Failure::new("internal", e.to_string())
    }
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Failure {
        Failure::new("internal", e.to_string())
    }
}

/// Sends `current` (the latest checkpoint) to `witness` and stores its cosignature; `old` is
/// the size it last cosigned. Follows a `409` to the size the witness names.
async fn submit(
    state: &Authority,
    agent: &ureq::Agent,
    witness: &PolicyWitness,
    url: &str,
    mut old: u64,
    current: &LogState,
) -> Result<(), Failure> {
    let store = state.store.as_ref();
    let size = u64::try_from(current.size).map_err(|e| Failure::new("internal", e.to_string()))?;
    let note = &current.checkpoint;
    for _ in 0..3 {
        if old > size {
            return Err(Failure::new(
                "ahead",
                format!(
                    "witness {} has cosigned a tree of {old} entries but this log holds {size}: \
                     either this database is behind the one the witness saw, or someone showed \
                     the witness another history under this log's key",
                    witness.name
                ),
            ));
        }
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            with_stored_hashes(store, |reader| consistency_proof(old, size, reader)).await?
        };
        let mut body = format!("old {old}\n");
        for hash in &proof {
            body.push_str(&STANDARD.encode(hash.0));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let (status, answer) = post(agent, url, body).await.map_err(|e| {
            Failure::new(
                "unreachable",
                format!("witness {} at {url}: {e}", witness.name),
            )
        })?;
        match status {
            200 => {
                let lines: Vec<String> = answer
                    .split_inclusive('\n')
                    .filter(|l| l.starts_with("— "))
                    .map(str::to_owned)
                    .collect();
                let mut stored = false;
                for line in lines {
                    let cosigned = add_signature_lines(note, std::slice::from_ref(&line));
                    let verified =
                        verify_cosignatures(&cosigned, std::slice::from_ref(&witness.verifier));
                    if matches!(verified.as_deref(), Ok([_])) {
                        store
                            .record_cosignature(
                                &witness.name,
                                current.size,
                                &line,
                                state.clock.now_ms(),
                            )
                            .await?;
                        stored = true;
                        break;
                    }
                }
                return if stored {
                    Ok(())
                } else {
                    Err(Failure::new(
                        "bad_answer",
                        format!(
                            "witness {} answered 200 without a cosignature that verifies under \
                             its key {}",
                            witness.name, witness.verifier
                        ),
                    ))
                };
            }
            409 => {
                let held = answer.trim().parse::<u64>().map_err(|_| {
                    Failure::new(
                        "bad_answer",
                        format!(
                            "witness {} answered 409 without a tree size: {:?}",
                            witness.name,
                            first_line(&answer)
                        ),
                    )
                })?;
                if held == old {
                    return Err(Failure::new(
                        "bad_answer",
                        format!(
                            "witness {} answered 409 naming the size it was sent ({old})",
                            witness.name
                        ),
                    ));
                }
                old = held;
            }
            _ => {
                return Err(Failure::new(
                    "refused",
                    format!(
                        "witness {} refused the checkpoint of size {size} (from {old}): {status} {}",
                        witness.name,
                        first_line(&answer)
                    ),
                ));
            }
        }
    }
    Err(Failure::new(
        "refused",
        format!(
            "witness {} kept answering 409 with other sizes",
            witness.name
        ),
    ))
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or("").trim();
    let end = line.char_indices().nth(200).map_or(line.len(), |(i, _)| i);
    &line[..end]
}

/// `POST <prefix>/add-checkpoint` with `body`, on a blocking thread (ureq is synchronous).
async fn post(agent: &ureq::Agent, prefix: &str, body: String) -> Result<(u16, String), String> {
    let agent = agent.clone();
    let url = format!("{}/add-checkpoint", prefix.trim_end_matches('/'));
    tokio::task::spawn_blocking(move || {
        let mut response = agent
            .post(&url)
            .content_type("text/plain; charset=utf-8")
            .send(body.as_bytes())
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok((status, text))
    })
    .await
    .map_err(|e| format!("the request task failed: {e}"))?
}

/// The HTTP client witnesses are asked with: statuses are answers, not errors.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// Sets `witness`'s lag gauges: `cosigned` is the largest size it cosigned (`None`: none),
/// `size` the latest checkpoint's; how long it has been behind is kept in `m`.
fn report_lag(
    witness: &str,
    size: i64,
    cosigned: Option<i64>,
    m: &mut WitnessMemory,
    now: Instant,
) {
    let behind_for = if cosigned == Some(size) {
        m.behind_since = None;
        Duration::ZERO
    } else {
        now.duration_since(*m.behind_since.get_or_insert(now))
    };
    let name = witness.to_owned();
    metrics::gauge!("runpermit_witness_lag_entries", "witness" => name.clone())
        .set((size - cosigned.unwrap_or(0)).max(0) as f64);
    metrics::gauge!("runpermit_witness_cosigned_size", "witness" => name.clone())
        .set(cosigned.unwrap_or(0) as f64);
    metrics::gauge!("runpermit_witness_lag_seconds", "witness" => name)
        .set(behind_for.as_secs_f64());
}

/// One round: every witness with a URL that is due and behind the latest checkpoint is sent
/// it, concurrently. Returns how many new cosignatures were stored.
async fn round(
    state: &Authority,
    agent: &ureq::Agent,
    memory: &mut HashMap<String, WitnessMemory>,
) -> Result<usize, DomainError> {
    let Some(policy) = &state.log.witnesses else {
        return Ok(0);
    };
    let store = state.store.as_ref();
    let Some(current) = store.log_state().await? else {
        return Ok(0);
    };
    let progress: HashMap<String, i64> = store
        .witness_progress()
        .await?
        .into_iter()
        .map(|c| (c.witness, c.size))
        .collect();
    let now = Instant::now();
    let mut due = Vec::new();
    for witness in policy.witnesses() {
        let cosigned = progress.get(&witness.name).copied();
        let m = memory.entry(witness.name.clone()).or_default();
        report_lag(&witness.name, current.size, cosigned, m, now);
        if cosigned == Some(current.size) {
            continue;
        }
        let Some(url) = &witness.url else { continue };
        if m.retry_at.is_some_and(|t| t > now) {
            continue;
        }
        let from = u64::try_from(cosigned.unwrap_or(0)).unwrap_or(0);
        due.push((witness.clone(), url.clone(), from));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (witness, url, from) in due {
        let (state, agent, current) = (state.clone(), agent.clone(), current.clone());
        tasks.spawn(async move {
            let result = submit(&state, &agent, &witness, &url, from, &current).await;
            (witness, result)
        });
    }
    let mut cosigned = 0;
    while let Some(joined) = tasks.join_next().await {
        let (witness, result) = joined.map_err(|e| DomainError::Internal(e.to_string()))?;
        let m = memory.entry(witness.name.clone()).or_default();
        let outcome = match result {
            Ok(()) => {
                cosigned += 1;
                report_lag(&witness.name, current.size, Some(current.size), m, now);
                m.failures = 0;
                m.retry_at = None;
                "cosigned"
            }
            Err(failure) => {
                m.failures = m.failures.saturating_add(1);
                let pause = Duration::from_millis(250)
                    .saturating_mul(2u32.saturating_pow(m.failures.min(10)))
                    .min(MAX_BACKOFF);
                m.retry_at = Some(Instant::now() + pause);
                if failure.outcome == "ahead" {
                    tracing::error!(witness = %witness.name, "{}", failure.message);
                } else {
                    tracing::warn!(
                        witness = %witness.name,
                        retry_in_ms = pause.as_millis() as u64,
                        "{}",
                        failure.message
                    );
                }
                failure.outcome
            }
        };
        metrics::counter!(
            "runpermit_witness_requests_total",
            "witness" => witness.name.clone(),
            "outcome" => outcome
        )
        .increment(1);
    }
    Ok(cosigned)
}

/// Asks the witnesses until `shutdown` resolves: after every new checkpoint, and every
/// second for those that are behind and due a retry. Does nothing for an unwitnessed log.
pub async fn run_witnessing(state: Authority, shutdown: impl std::future::Future<Output = ()>) {
    if state.log.witnesses.is_none() {
        return shutdown.await;
    }
    tokio::pin!(shutdown);
    let agent = agent(REQUEST_TIMEOUT);
    let mut memory = HashMap::new();
    loop {
        let sequenced = state.log.sequenced.notified();
        tokio::pin!(sequenced);
        sequenced.as_mut().enable();
        if let Err(e) = round(&state, &agent, &mut memory).await {
            tracing::error!(error = %e, "asking the witnesses failed; retrying");
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = &mut sequenced => {}
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Runs one round now (for tests and the benchmark): the number of new cosignatures.
pub async fn witness_once(state: &Authority) -> Result<usize, DomainError> {
    round(state, &agent(REQUEST_TIMEOUT), &mut HashMap::new()).await
}
