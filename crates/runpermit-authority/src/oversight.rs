//! Oversight during training, as the authority runs it: usage ingestion, tranche watching,
//! run transitions, and the supervisor that keeps derived state true after a crash.
//!
//! The rules are pure and live in `runpermit-policy`'s `oversight` module (`run_next`,
//! `tranche_progress`, `next_tranche`); this module applies them to stored runs.
//!
//! Why usage and transitions are two steps: a batch of usage reports is made durable (and
//! the runs' cumulative figures raised) in one transaction, and only then is each affected
//! run re-evaluated against its released tranche, with a compare-and-set on the run's
//! version. A crash in between loses nothing: the [`supervise`] loop re-evaluates every
//! run at start and on every tick, so a run whose usage reached its tranche's end becomes
//! `milestone_due` whichever process notices first, exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use runpermit_compute::{FieldError, Flop};
use runpermit_log::LogEntry;
use runpermit_permit::{Jwks, PermitClaims, PermitRequest, PublicKey, verify_permit_signature};
use runpermit_permit::{PermitStatus, StatusEntry, UsageReportClaims};
use runpermit_policy::{
    OVERRUN_CATEGORY, RunAction, RunStatus, next_tranche, run_next, tranche_progress,
};
use runpermit_store::{Incident, Ingested, Run, UsageRecord, Write};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::event;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ids::{new_id, sha256_hex};
use crate::state::AppState;
use crate::tlog;

mod signatures;

/// Most reports one `POST /v1/usage` may carry.
pub const MAX_REPORTS_PER_REQUEST: usize = 5000;

/// Largest usage report accepted, in bytes (a report is about 800 bytes).
pub const MAX_REPORT_BYTES: usize = 16 * 1024;

/// How long the provider keys held in memory are trusted before they are read again (a key
/// registered or revoked through another process is seen within this time; an unknown
/// `kid` is looked up at once).
const PROVIDER_KEYS_TTL: Duration = Duration::from_secs(5);

/// The status of a sound report not stored because another of its batch was refused.
const WITHHELD: &str = "withheld";

/// How far a report's times may lie ahead of the authority's clock, or its interval start
/// before the permit's `nbf`: the clock skew tolerated between a gate and the authority.
const MAX_SKEW_S: i64 = 300;

/// How many times a run transition is retried when the run changed meanwhile.
const CAS_ATTEMPTS: usize = 8;

/// The registered providers' reporting keys, held in memory.
#[derive(Default)]
pub struct ProviderKeys {
    inner: RwLock<Option<KeySet>>,
}

struct KeySet {
    jwks: Jwks,
    org_of: HashMap<String, String>,
    loaded: std::time::Instant,
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKeys").finish_non_exhaustive()
    }
}

impl ProviderKeys {
    /// Forgets what is held, so that the next use reads the store (after a key is
    /// registered or revoked here).
    pub fn invalidate(&self) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn load(state: &AppState) -> Result<KeySet, ApiError> {
        let mut keys = Vec::new();
        let mut org_of = HashMap::new();
        for k in state.store.all_provider_keys().await? {
            if k.revoked_at.is_some() {
                continue;
            }
            let key = PublicKey::from_bytes(&k.public_key)
                .map_err(|e| ApiError::Internal(format!("stored reporting key {}: {e}", k.kid)))?;
            org_of.insert(key.kid().to_owned(), k.org_id.clone());
            keys.push(key);
        }
        Ok(KeySet {
            jwks: Jwks::from_keys(&keys),
            org_of,
            loaded: std::time::Instant::now(),
        })
    }

    /// The keys now: from memory while fresh and knowing every kid in `kids`, else from
    /// the store.
    async fn current(
        &self,
        state: &AppState,
        kids: &[Option<String>],
    ) -> Result<(Jwks, HashMap<String, String>), ApiError> {
        {
            let held = self.inner.read().unwrap_or_else(|e| e.into_inner());
            if let Some(set) = held.as_ref()
                && set.loaded.elapsed() < PROVIDER_KEYS_TTL
                && kids.iter().flatten().all(|k| set.org_of.contains_key(k))
            {
                return Ok((set.jwks.clone(), set.org_of.clone()));
            }
        }
        let set = Self::load(state).await?;
        let out = (set.jwks.clone(), set.org_of.clone());
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Some(set);
        Ok(out)
    }
}

/// `POST /v1/usage` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageBatch {
    /// Signed usage reports (compact JWS, `typ` `runpermit-usage+jwt`).
    pub reports: Vec<String>,
}

/// What became of one report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportResult {
    /// The report's position in the request.
    pub index: usize,
    /// `stored`, `duplicate` (the same report was already stored: nothing changed),
    /// `refused`, or `withheld` (not stored because another report of the batch was refused:
    /// it was judged sound, or not judged at all once the batch was lost; send it again
    /// without the refused one).
    pub status: String,
    /// The reporting provider, when the report could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The run, when the report could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The sequence number, when the report could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Sequence numbers of this provider for this run that have not arrived, when this
    /// report skipped some (`[first, last]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<[u64; 2]>,
    /// The report arrived after a later one of the same provider and run.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub late: bool,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The answer to `POST /v1/usage`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IngestAnswer {
    /// Reports newly stored.
    pub stored: usize,
    /// Reports already stored before (resent).
    pub duplicates: usize,
    /// Reports refused (then nothing of the batch is stored).
    pub refused: usize,
    /// One result per report, in request order.
    pub results: Vec<ReportResult>,
}

/// Why a batch was refused: the HTTP status to answer with and the answer.
#[derive(Debug)]
pub struct Refused {
    /// 401 (signature or key), 409 (same seq, other content), 422 (invalid, unknown run,
    /// provider not allowed).
    pub status: u16,
    /// The per-report results.
    pub answer: IngestAnswer,
}

struct RunScope {
    run: Run,
    permit: PermitClaims,
}

async fn run_scope(state: &AppState, run_id: &str) -> Result<Option<RunScope>, ApiError> {
    let Some(run) = state.store.run(run_id).await? else {
        return Ok(None);
    };
    // A permit decided but not yet signed authorizes nothing yet: no gate can hold it.
    Ok(signed_permit(state, &run)
        .await?
        .map(|permit| RunScope { run, permit }))
}

/// The claims of the permit `run` runs under, read from the signed permit and verified with
/// the authority's own keys: what was signed and logged is what decides, never a copy of it
/// in the database that a write could change. `None` while the permit is decided but not yet
/// signed.
pub(crate) async fn signed_permit(
    state: &AppState,
    run: &Run,
) -> Result<Option<PermitClaims>, ApiError> {
    let permit = state
        .store
        .permit(&run.permit_id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("run {}'s permit is not stored", run.id)))?;
    let Some(token) = permit.token.as_deref() else {
        return Ok(None);
    };
    let keys = crate::routes::permits::verifying_keys(state, None).await?;
    let claims = verify_permit_signature(token, &keys).map_err(|e| {
        ApiError::Internal(format!("stored permit {} does not verify: {e}", permit.id))
    })?;
    if claims.jti != run.permit_id || claims.sub != run.id {
        return Err(ApiError::Internal(format!(
            "stored permit {} is signed for run {} as {}, not for run {}",
            permit.id, claims.sub, claims.jti, run.id
        )));
    }
    Ok(Some(claims))
}

/// Verifies a batch of signed usage reports from `source` (the client's address as the limits
/// count it, when known) and stores it durably, all or nothing, then re-evaluates the runs it
/// touched. `Ok` means every report is stored (or was already).
pub async fn ingest(
    state: &AppState,
    tokens: Vec<String>,
    source: Option<&str>,
) -> Result<IngestAnswer, IngestError> {
    if tokens.is_empty() {
        return Err(IngestError::Api(ApiError::field(
            "reports",
            "must hold at least one signed usage report",
        )));
    }
    if tokens.len() > MAX_REPORTS_PER_REQUEST {
        return Err(IngestError::Api(ApiError::field(
            "reports",
            format!(
                "at most {MAX_REPORTS_PER_REQUEST} reports per request (got {}); send several requests",
                tokens.len()
            ),
        )));
    }
    // Cheap checks before any signature work, then the signatures (`signatures.rs`).
    let now = state.clock.now_ms();
    let keys = signatures::before_verifying(state, &tokens, source, now).await?;
    let tokens = Arc::new(tokens);
    let verified = signatures::verify(state, Arc::clone(&tokens), &keys, source, now).await?;
    let signatures::Keys { kids, org_of, .. } = keys;

    let mut results: Vec<ReportResult> = Vec::with_capacity(tokens.len());
    let mut refused_status = 0u16;
    let mut refuse = |r: &mut ReportResult, status: u16, error: String| {
        r.status = "refused".into();
        r.error = Some(error);
        if refused_status == 0 || status == 401 {
            refused_status = status;
        }
    };
    let mut scopes: HashMap<String, Option<RunScope>> = HashMap::new();
    let mut records = Vec::new();
    let mut record_index = Vec::new();
    for (index, (outcome, kid)) in verified.into_iter().zip(&kids).enumerate() {
        let mut r = ReportResult {
            index,
            status: "stored".into(),
            provider_id: None,
            run_id: None,
            seq: None,
            gap: None,
            late: false,
            error: None,
        };
        let Some(outcome) = outcome else {
            // Not verified: another report's signature failed first.
            r.status = WITHHELD.into();
            results.push(r);
            continue;
        };
        let claims = match outcome {
            Ok(claims) => claims,
            Err(runpermit_permit::ReportError::Invalid(errors)) => {
                refuse(&mut r, 422, field_errors(&errors));
                results.push(r);
                continue;
            }
            Err(runpermit_permit::ReportError::Verify(
                e @ (runpermit_permit::VerifyError::Malformed(_)
                | runpermit_permit::VerifyError::UnsupportedAlgorithm(_)
                | runpermit_permit::VerifyError::WrongType { .. }),
            )) => {
                refuse(&mut r, 422, e.to_string());
                results.push(r);
                continue;
            }
            Err(e) => {
                refuse(&mut r, 401, e.to_string());
                results.push(r);
                continue;
            }
        };
        r.provider_id = Some(claims.iss.clone());
        r.run_id = Some(claims.sub.clone());
        r.seq = Some(claims.seq);
        let signer_org = kid.as_ref().and_then(|k| org_of.get(k));
        if signer_org != Some(&claims.iss) {
            refuse(
                &mut r,
                401,
                format!(
                    "iss {:?} is not the organization that registered the signing key ({})",
                    claims.iss,
                    signer_org.map_or("none", String::as_str)
                ),
            );
            results.push(r);
            continue;
        }
        if !scopes.contains_key(&claims.sub) {
            let scope = run_scope(state, &claims.sub).await?;
            scopes.insert(claims.sub.clone(), scope);
        }
        let Some(scope) = scopes.get(&claims.sub).and_then(Option::as_ref) else {
            refuse(
                &mut r,
                422,
                format!("sub: no permitted run {:?} at this authority", claims.sub),
            );
            results.push(r);
            continue;
        };
        if scope.run.permit_id != claims.permit_id {
            refuse(
                &mut r,
                422,
                format!(
                    "permit_id: run {} runs under permit {}, not {}",
                    claims.sub, scope.run.permit_id, claims.permit_id
                ),
            );
            results.push(r);
            continue;
        }
        match scope
            .permit
            .providers
            .iter()
            .find(|p| p.provider == claims.iss)
        {
            None => {
                refuse(
                    &mut r,
                    422,
                    format!(
                        "iss: provider {} is not allowed for run {} (its permit names: {})",
                        claims.iss,
                        claims.sub,
                        scope
                            .permit
                            .providers
                            .iter()
                            .map(|p| p.provider.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                results.push(r);
                continue;
            }
            Some(p) if !p.allows_cluster(&claims.cluster) => {
                refuse(
                    &mut r,
                    422,
                    format!(
                        "cluster: {} is not one of provider {}'s clusters in the permit ({})",
                        claims.cluster,
                        claims.iss,
                        p.clusters.join(", ")
                    ),
                );
                results.push(r);
                continue;
            }
            Some(_) => {}
        }
        if let Some(error) = implausible_times(&claims, &scope.permit, now / 1000) {
            refuse(&mut r, 422, error);
            results.push(r);
            continue;
        }
        record_index.push(results.len());
        records.push(record(&claims, &tokens[index], now)?);
        results.push(r);
    }
    let refused = results.iter().filter(|r| r.status == "refused").count();
    if refused > 0 {
        for r in &mut results {
            if r.status == "stored" {
                r.status = WITHHELD.into();
            }
        }
        return Err(IngestError::Refused(Refused {
            status: refused_status,
            answer: IngestAnswer {
                stored: 0,
                duplicates: 0,
                refused,
                results,
            },
        }));
    }

    let outcomes = state.store.ingest_usage(records).await?;
    let mut conflicts = 0;
    let mut touched = Vec::new();
    for (outcome, i) in outcomes.into_iter().zip(record_index) {
        let r = &mut results[i];
        match outcome {
            Ingested::Stored { previous_max_seq } => {
                let seq = r.seq.unwrap_or(0);
                let previous = u64::try_from(previous_max_seq).unwrap_or(0);
                if seq > previous + 1 {
                    r.gap = Some([previous + 1, seq - 1]);
                }
                r.late = seq < previous;
                if let Some(run) = &r.run_id
                    && !touched.contains(run)
                {
                    touched.push(run.clone());
                }
            }
            Ingested::Duplicate => r.status = "duplicate".into(),
            Ingested::Withheld => r.status = WITHHELD.into(),
            Ingested::Conflict { stored_digest } => {
                conflicts += 1;
                r.status = "refused".into();
                r.error = Some(format!(
                    "seq {} of provider {} for run {} was already stored with other content \
                     (sha256 {stored_digest}): a sequence number names one report forever",
                    r.seq.unwrap_or(0),
                    r.provider_id.as_deref().unwrap_or(""),
                    r.run_id.as_deref().unwrap_or("")
                ));
            }
        }
    }
    for run in &touched {
        evaluate_run(state, run).await?;
    }
    metrics::counter!("runpermit_usage_reports_total", "outcome" => "stored")
        .increment(results.iter().filter(|r| r.status == "stored").count() as u64);
    let answer = IngestAnswer {
        stored: results.iter().filter(|r| r.status == "stored").count(),
        duplicates: results.iter().filter(|r| r.status == "duplicate").count(),
        refused: conflicts,
        results,
    };
    if conflicts > 0 {
        return Err(IngestError::Refused(Refused {
            status: 409,
            answer,
        }));
    }
    Ok(answer)
}

/// Why a batch was not ingested.
#[derive(Debug)]
pub enum IngestError {
    /// Some reports were refused; the per-report results say which and why.
    Refused(Refused),
    /// The request itself is wrong, or the authority failed.
    Api(ApiError),
}

impl From<ApiError> for IngestError {
    fn from(e: ApiError) -> Self {
        IngestError::Api(e)
    }
}

impl From<runpermit_store::StoreError> for IngestError {
    fn from(e: runpermit_store::StoreError) -> Self {
        IngestError::Api(e.into())
    }
}

/// Why a report's times cannot be true of work under `permit` (answered with 422): an
/// interval that starts before the permit was valid (no gate admits work before `nbf`), or
/// that ends, or was signed, in the future. `now_s` is the authority's clock.
fn implausible_times(
    report: &UsageReportClaims,
    permit: &PermitClaims,
    now_s: i64,
) -> Option<String> {
    let utc = runpermit_permit::utc;
    if report.from < permit.nbf.saturating_sub(MAX_SKEW_S) {
        return Some(format!(
            "from: the interval starts at {}, before permit {} was valid ({}): no gate admits \
             work before a permit's nbf",
            utc(report.from),
            permit.jti,
            utc(permit.nbf)
        ));
    }
    for (field, at) in [("to", report.to), ("iat", report.iat)] {
        if at > now_s.saturating_add(MAX_SKEW_S) {
            return Some(format!(
                "{field}: {} is in the future (the authority's clock reads {}); check the \
                 gate's clock",
                utc(at),
                utc(now_s)
            ));
        }
    }
    None
}

fn field_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

fn record(claims: &UsageReportClaims, token: &str, now: i64) -> Result<UsageRecord, ApiError> {
    Ok(UsageRecord {
        provider_id: claims.iss.clone(),
        run_id: claims.sub.clone(),
        seq: i64::try_from(claims.seq).map_err(|_| ApiError::field("seq", "too large"))?,
        permit_id: claims.permit_id.clone(),
        cluster: claims.cluster.clone(),
        from_s: claims.from,
        to_s: claims.to,
        flop: claims.flop.get(),
        flop_lower: claims.flop_lower.get(),
        flop_upper: claims.flop_upper.get(),
        method: serde_json::to_value(claims.method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        accelerator_seconds_json: serde_json::to_string(&claims.accelerator_seconds)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        digest: sha256_hex(token.as_bytes()),
        token: token.to_owned(),
        received_at: now,
    })
}

/// A stored released figure: one that is not a FLOP count (it cannot be, every figure is
/// checked on the way in) releases nothing.
fn released(value: f64) -> Flop {
    Flop::new(value).unwrap_or(Flop::ZERO)
}

/// A stored usage figure: one that is not a FLOP count counts as the most there is, so that
/// a broken figure holds a run rather than frees it.
fn used(value: f64) -> Flop {
    Flop::new(value).unwrap_or(Flop::MAX)
}

fn status_of(run: &Run) -> Result<RunStatus, ApiError> {
    run.status
        .parse()
        .map_err(|e| ApiError::Internal(format!("run {}: {e}", run.id)))
}

/// The run's tranche ends, from its permit's claims.
async fn tranche_ends(state: &AppState, run: &Run) -> Result<Vec<Flop>, ApiError> {
    let permit = signed_permit(state, run).await?.ok_or_else(|| {
        ApiError::Conflict(format!(
            "permit {} of run {} is decided but not yet signed",
            run.permit_id, run.id
        ))
    })?;
    Ok(permit.tranches.iter().map(|t| t.flop).collect())
}

/// The log entry that announces `run` entering `status` (None for changes the public log
/// does not record).
fn transition_entry(run: &Run, status: RunStatus, reason: &str) -> Option<LogEntry> {
    let permit_id = run.permit_id.clone();
    let run_id = run.id.clone();
    let reason = reason.to_owned();
    Some(match status {
        RunStatus::Active => LogEntry::RunResumed {
            permit_id,
            run_id,
            reason,
        },
        RunStatus::MilestoneDue | RunStatus::Paused => LogEntry::RunPaused {
            permit_id,
            run_id,
            reason,
        },
        RunStatus::Suspended => LogEntry::RunPaused {
            permit_id,
            run_id,
            reason: format!("suspended: {reason}"),
        },
        RunStatus::Revoked => LogEntry::RunRevoked {
            permit_id,
            run_id,
            reason,
        },
        RunStatus::Terminated => LogEntry::RunRevoked {
            permit_id,
            run_id,
            reason: format!("terminated: {reason}"),
        },
        RunStatus::Completed => LogEntry::RunCompleted {
            permit_id,
            run_id,
            reason,
        },
    })
}

/// A change to a run: the action, its reason, and writes that go with it in the same batch.
#[derive(Debug)]
pub struct Change<'a> {
    /// The action (checked against the run's status by `run_next`).
    pub action: RunAction,
    /// Why, in words (audited, logged, shown on the status list).
    pub reason: String,
    /// Who, if a person.
    pub caller: Option<&'a Caller>,
    /// More writes for the same transaction (a milestone decision, an incident).
    pub extra: Vec<Write>,
}

/// Applies `change` to the run `run_id` as one transaction: status (by `run_next`), tranche
/// release on an accepted milestone, audit event, public log entry. Retries when the run
/// changed meanwhile. Returns the run as stored.
pub async fn transition(
    state: &AppState,
    run_id: &str,
    change: Change<'_>,
) -> Result<Run, ApiError> {
    for _ in 0..CAS_ATTEMPTS {
        let run = state
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no run {run_id}")))?;
        let from = status_of(&run)?;
        let to = run_next(from, change.action).map_err(|e| ApiError::Conflict(e.to_string()))?;
        let now = state.clock.now_ms();
        let mut next = run.clone();
        let mut writes = Vec::new();
        let subject = format!("run/{}", run.id);
        let mut log_reason = change.reason.clone();
        match change.action {
            RunAction::AcceptMilestone => {
                let ends = tranche_ends(state, &run).await?;
                let (tranche, end) =
                    next_tranche(&ends, u32::try_from(run.tranche).unwrap_or(u32::MAX))
                        .ok_or_else(|| {
                            ApiError::Conflict(format!(
                                "run {} has used its permit's whole budget ({:e} FLOP): no tranche \
                                 is left to release; complete the run or apply for more compute",
                                run.id, run.budget_flop
                            ))
                        })?;
                next.tranche = i64::from(tranche);
                next.released_flop = end.get();
                next.alerted_percent = 0;
                writes.push(tlog::queue(
                    &subject,
                    &LogEntry::TrancheReleased {
                        permit_id: run.permit_id.clone(),
                        run_id: run.id.clone(),
                        tranche,
                        flop: end,
                    },
                    now,
                )?);
                log_reason = format!("milestone {} accepted: {}", run.tranche, change.reason);
            }
            RunAction::RejectMilestone => {
                log_reason = format!("milestone {} rejected: {}", run.tranche, change.reason);
            }
            _ => {}
        }
        match change.action {
            RunAction::Appeal => next.appeal_pending = true,
            RunAction::Resume | RunAction::Revoke | RunAction::Terminate => {
                next.appeal_pending = false;
            }
            _ => {}
        }
        if to != from {
            next.status = to.as_str().to_owned();
            next.reason = log_reason.clone();
            next.status_since = now;
            if let Some(entry) = transition_entry(&run, to, &log_reason) {
                writes.push(tlog::queue(&subject, &entry, now)?);
            }
        }
        next.updated_at = now;
        writes.push(event(
            change.caller,
            now,
            &format!("run.{}", change.action),
            &subject,
            Some(&change.reason),
            json!({"from": from, "to": to, "tranche": next.tranche, "released_flop": next.released_flop,
                   "cumulative_flop": run.cumulative_flop}),
        ));
        writes.push(Write::UpdateRun {
            run: next.clone(),
            expected_version: run.version,
        });
        writes.extend(change.extra.iter().cloned());
        match state.store.commit(writes).await {
            Ok(()) => {
                next.version = run.version + 1;
                tracing::info!(run = %run.id, action = %change.action, %from, %to, "run transition");
                metrics::counter!("runpermit_run_transitions_total", "to" => to.as_str())
                    .increment(1);
                return Ok(next);
            }
            Err(runpermit_store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!(
        "run {run_id} kept changing; try again"
    )))
}

/// Compares `run_id`'s cumulative usage with its released tranche and acts: alerts at the
/// policy's percentages (audited), `milestone_due` at the tranche's end (audited, logged, on
/// the status list), and an `overrun` incident beyond the tolerance. Idempotent: each
/// alert, transition and incident happens once per tranche.
pub async fn evaluate_run(state: &AppState, run_id: &str) -> Result<(), ApiError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(run) = state.store.run(run_id).await? else {
            return Ok(());
        };
        let status = status_of(&run)?;
        if status.is_final() {
            return Ok(());
        }
        let progress = tranche_progress(
            &state.policy.oversight,
            released(run.released_flop),
            used(run.cumulative_flop),
            u32::try_from(run.alerted_percent).unwrap_or(0),
        );
        let now = state.clock.now_ms();
        let subject = format!("run/{}", run.id);
        let overrun_open = match progress.overrun {
            Some(_) => has_overrun_incident(state, &run).await?,
            None => true,
        };
        let due = progress.reached_end && status == RunStatus::Active;
        if progress.new_alerts.is_empty() && !due && overrun_open {
            return Ok(());
        }
        let mut next = run.clone();
        let mut writes = Vec::new();
        for pct in &progress.new_alerts {
            tracing::warn!(run = %run.id, percent = pct, tranche = run.tranche, "tranche usage alert");
            writes.push(event(
                None,
                now,
                "run.alert",
                &subject,
                Some(&format!(
                    "usage reached {pct}% of tranche {} ({:e} of {:e} FLOP)",
                    run.tranche, run.cumulative_flop, run.released_flop
                )),
                json!({"percent": pct, "tranche": run.tranche, "cumulative_flop": run.cumulative_flop,
                       "released_flop": run.released_flop}),
            ));
        }
        next.alerted_percent = i64::from(progress.alerted);
        if due {
            let last = i64::try_from(tranche_ends(state, &run).await?.len()).unwrap_or(0);
            let reason = if run.tranche >= last {
                format!(
                    "the permit's whole budget is used ({:e} of {:e} FLOP): no further work is admitted",
                    run.cumulative_flop, run.budget_flop
                )
            } else {
                format!(
                    "milestone {} due: usage {:e} FLOP reached the end of tranche {} ({:e} FLOP); \
                     submit the milestone evaluation report",
                    run.tranche, run.cumulative_flop, run.tranche, run.released_flop
                )
            };
            next.status = RunStatus::MilestoneDue.as_str().to_owned();
            next.reason = reason.clone();
            next.status_since = now;
            writes.push(tlog::queue(
                &subject,
                &LogEntry::RunPaused {
                    permit_id: run.permit_id.clone(),
                    run_id: run.id.clone(),
                    reason: reason.clone(),
                },
                now,
            )?);
            writes.push(event(
                None,
                now,
                "run.reach_tranche_end",
                &subject,
                Some(&reason),
                json!({"from": status, "to": RunStatus::MilestoneDue, "tranche": run.tranche,
                       "cumulative_flop": run.cumulative_flop, "released_flop": run.released_flop}),
            ));
        }
        if let (Some(excess), false) = (progress.overrun, overrun_open) {
            let incident = overrun_incident(state, &run, excess, now);
            writes.push(event(
                None,
                now,
                "incident.open",
                &format!("incident/{}", incident.id),
                Some(&incident.summary),
                json!({"category": OVERRUN_CATEGORY, "run_id": run.id, "excess_flop": excess}),
            ));
            writes.push(Write::InsertIncident(incident));
        }
        next.updated_at = now;
        writes.push(Write::UpdateRun {
            run: next,
            expected_version: run.version,
        });
        match state.store.commit(writes).await {
            Ok(()) => {
                for pct in &progress.new_alerts {
                    metrics::counter!("runpermit_tranche_alerts_total", "percent" => pct.to_string())
                        .increment(1);
                }
                if due {
                    metrics::counter!("runpermit_run_transitions_total", "to" => "milestone_due")
                        .increment(1);
                }
                return Ok(());
            }
            Err(runpermit_store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!(
        "run {run_id} kept changing while it was evaluated"
    )))
}

async fn has_overrun_incident(state: &AppState, run: &Run) -> Result<bool, ApiError> {
    let marker = format!("tranche {}", run.tranche);
    Ok(state
        .store
        .incidents(Some(&run.org_id))
        .await?
        .iter()
        .any(|i| {
            i.category == OVERRUN_CATEGORY
                && i.run_id.as_deref() == Some(run.id.as_str())
                && i.details_json.contains(&marker)
        }))
}

fn overrun_incident(state: &AppState, run: &Run, excess: Flop, now: i64) -> Incident {
    let hours = state
        .policy
        .incident_category(OVERRUN_CATEGORY)
        .map_or(24, |c| c.follow_up_within_hours);
    Incident {
        id: new_id("inc"),
        org_id: run.org_id.clone(),
        reported_by: "authority".into(),
        run_id: Some(run.id.clone()),
        category: OVERRUN_CATEGORY.into(),
        summary: format!(
            "run {} used {:e} FLOP beyond its released tranche {} ({:e} FLOP), more than the \
             policy's tolerance of {}%",
            run.id,
            excess.get(),
            run.tranche,
            run.released_flop,
            state.policy.oversight.overrun_tolerance * 100.0
        ),
        details_json: json!({"marker": format!("tranche {}", run.tranche), "excess_flop": excess,
                             "cumulative_flop": run.cumulative_flop, "released_flop": run.released_flop})
        .to_string(),
        occurred_at: now,
        reported_at: now,
        follow_up_due: now + i64::from(hours) * 3_600_000,
        followed_up_at: None,
        follow_up: None,
        status: "open".into(),
    }
}

/// The run record created with a permit's issuance: active, first tranche released.
pub fn new_run(request: &PermitRequest, now: i64) -> Write {
    let first = request
        .tranches
        .first()
        .map_or(request.flop_budget, |t| t.flop);
    Write::InsertRun(Run {
        id: request.sub.clone(),
        permit_id: request.jti.clone(),
        org_id: request.holder.org_id.clone(),
        status: RunStatus::Active.as_str().to_owned(),
        reason: String::new(),
        status_since: now,
        tranche: 1,
        released_flop: first.get(),
        budget_flop: request.flop_budget.get(),
        cumulative_flop: 0.0,
        cumulative_upper_flop: 0.0,
        summarized_flop: 0.0,
        alerted_percent: 0,
        appeal_pending: false,
        permit_exp_s: request.exp,
        version: 1,
        created_at: now,
        updated_at: now,
    })
}

/// The status list's entries: every run not in good standing whose permit has not expired
/// (an expired permit admits nothing anyway).
pub async fn status_entries(state: &AppState) -> Result<Vec<StatusEntry>, ApiError> {
    let now_s = state.clock.now_s();
    let skew = i64::from(state.policy.permit.clock_skew_seconds);
    let runs = state.store.runs_not_in_good_standing(now_s - skew).await?;
    let mut entries = Vec::with_capacity(runs.len());
    for run in runs {
        let status = status_of(&run)?;
        let (listed, reason) = match status {
            RunStatus::Active => continue,
            RunStatus::MilestoneDue => (PermitStatus::MilestoneHold, run.reason.clone()),
            RunStatus::Paused => (PermitStatus::Paused, run.reason.clone()),
            RunStatus::Suspended => (PermitStatus::Suspended, run.reason.clone()),
            RunStatus::Revoked => (PermitStatus::Revoked, run.reason.clone()),
            RunStatus::Terminated => (PermitStatus::Revoked, format!("terminated: {}", run.reason)),
            RunStatus::Completed => (PermitStatus::Revoked, format!("completed: {}", run.reason)),
        };
        entries.push(StatusEntry {
            permit_id: run.permit_id,
            status: listed,
            reason,
            since: run.status_since.div_euclid(1000).min(now_s),
        });
    }
    Ok(entries)
}

/// Writes each run's cumulative usage to the public log when it changed since the last
/// summary (`usage_summary`), one batch per run.
pub async fn summarize_usage(state: &AppState) -> Result<usize, ApiError> {
    let mut written = 0;
    for run in state.store.runs_to_summarize().await? {
        // One run that cannot be summarised never holds up the others.
        match summarize_run(state, &run).await {
            Ok(true) => written += 1,
            Ok(false) => {}
            Err(e) => {
                metrics::counter!("runpermit_usage_summary_failures_total").increment(1);
                tracing::error!(run = %run.id, error = ?e, "summarising a run's usage failed");
            }
        }
    }
    Ok(written)
}

/// Writes `run`'s usage summary to the log; `false` when another process did it first.
async fn summarize_run(state: &AppState, run: &Run) -> Result<bool, ApiError> {
    let cumulative_flop = Flop::new(run.cumulative_flop)
        .map_err(|e| ApiError::Internal(format!("run {}: stored cumulative usage {e}", run.id)))?;
    let providers = state.store.usage_by_provider(&run.id).await?;
    let through = providers.iter().map(|p| p.last_to_s).max().unwrap_or(0);
    let now = state.clock.now_ms();
    let entry = LogEntry::UsageSummary {
        run_id: run.id.clone(),
        cumulative_flop,
        providers: u32::try_from(providers.len()).unwrap_or(u32::MAX),
        through,
    };
    let committed = state
        .store
        .commit(vec![
            tlog::queue(&format!("run/{}", run.id), &entry, now)?,
            Write::SetRunSummarized {
                id: run.id.clone(),
                flop: run.cumulative_flop,
                expected_flop: run.summarized_flop,
                at: now,
            },
        ])
        .await;
    match committed {
        Ok(()) => Ok(true),
        // Another process summarised this run first: its entry is the one logged.
        Err(runpermit_store::StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Re-evaluates every run that is not final (after a crash between ingestion and
/// evaluation, or a policy change). Returns how many were looked at.
pub async fn evaluate_all(state: &AppState) -> Result<usize, ApiError> {
    let mut n = 0;
    for run in state.store.runs(None).await? {
        if status_of(&run)?.is_final() {
            continue;
        }
        evaluate_run(state, &run.id).await?;
        n += 1;
    }
    Ok(n)
}

/// The supervisor: re-evaluates every run now and every `every`, and summarises usage
/// into the public log every `oversight.usage_summary_interval_seconds`. Runs until
/// `shutdown` completes; errors are logged and retried on the next tick.
pub async fn supervise(
    state: AppState,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let summary_every = Duration::from_secs(u64::from(
        state.policy.oversight.usage_summary_interval_seconds,
    ));
    let mut last_summary: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = evaluate_all(&state).await {
            tracing::warn!(error = ?e, "evaluating runs");
        }
        if last_summary.is_none_or(|t| t.elapsed() >= summary_every) {
            match summarize_usage(&state).await {
                Ok(n) if n > 0 => tracing::info!(runs = n, "usage summarised into the log"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "summarising usage"),
            }
            last_summary = Some(std::time::Instant::now());
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// Cumulative usage of a run by provider, as the API shows it.
pub fn by_provider(
    usage: &[runpermit_store::ProviderUsage],
) -> BTreeMap<String, serde_json::Value> {
    usage
        .iter()
        .map(|p| {
            (
                p.provider_id.clone(),
                json!({
                    "reports": p.reports,
                    "max_seq": p.max_seq,
                    "missing_reports": (p.max_seq - p.reports).max(0),
                    "flop": p.flop,
                    "flop_lower": p.flop_lower,
                    "flop_upper": p.flop_upper,
                    "from": p.first_from_s,
                    "through": p.last_to_s,
                }),
            )
        })
        .collect()
}
