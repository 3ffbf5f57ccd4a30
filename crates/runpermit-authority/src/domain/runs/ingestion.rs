//! Usage ingestion: a batch of providers' signed usage reports is verified, judged against the
//! run's signed permit, and stored durably all or nothing; then each run it touched is
//! re-evaluated against its released tranche ([`super::transitions::evaluate_run`]).
//!
//! Why usage and transitions are two steps: a batch is made durable (and the runs' cumulative
//! figures raised) in one transaction, and only then is each affected run re-evaluated, with a
//! compare-and-set on the run's version. A crash in between loses nothing: the supervisor
//! ([`super::supervision`]) re-evaluates every run at start and on every tick.

use std::collections::HashMap;
use std::sync::Arc;

use runpermit_permit::PermitClaims;
use runpermit_permit::UsageReportClaims;
use runpermit_store::{Ingested, Run, UsageRecord};

use super::signatures;
use super::transitions::evaluate_run;
use crate::domain::Authority;
use crate::domain::error::{
    DomainError, Refusal, RefusalKind, field_errors, refuse_whole_batch, report_refusal,
};
use crate::domain::ids::sha256_hex;
use crate::domain::permits::signed_permit;
use crate::domain::usage_batch::{
    IngestAnswer, MAX_REPORTS_PER_REQUEST, ReportResult, WITHHELD, fresh_result,
};

/// How far a report's times may lie ahead of the authority's clock: the clock skew tolerated
/// between a gate and the authority.
const MAX_SKEW_S: i64 = 300;

struct RunScope {
    run: Run,
    permit: PermitClaims,
}

async fn run_scope(state: &Authority, run_id: &str) -> Result<Option<RunScope>, DomainError> {
    let Some(run) = state.store.run(run_id).await? else {
        return Ok(None);
    };
    // A permit decided but not yet signed authorizes nothing yet: no gate can hold it.
    Ok(signed_permit(state, &run)
        .await?
        .map(|permit| RunScope { run, permit }))
}

/// Verifies a batch of signed usage reports from `source` (the client's address as the limits
/// count it, when known) and stores it durably, all or nothing, then re-evaluates the runs it
/// touched. `Ok` means every report is stored (or was already).
pub async fn ingest(
    state: &Authority,
    tokens: Vec<String>,
    source: Option<&str>,
) -> Result<IngestAnswer, DomainError> {
    if tokens.is_empty() {
        return Err(DomainError::field(
            "reports",
            "must hold at least one signed usage report",
        ));
    }
    if tokens.len() > MAX_REPORTS_PER_REQUEST {
        return Err(DomainError::field(
            "reports",
            format!(
                "at most {MAX_REPORTS_PER_REQUEST} reports per request (got {}); send several requests",
                tokens.len()
            ),
        ));
    }
    // Cheap checks before any signature work, then the signatures (`signatures.rs`).
    let now = state.clock.now_ms();
    let keys = signatures::before_verifying(state, &tokens, source, now).await?;
    let tokens = Arc::new(tokens);
    let verified = signatures::verify(state, Arc::clone(&tokens), &keys, source, now).await?;
    let signatures::Keys { kids, org_of, .. } = keys;

    let mut results: Vec<ReportResult> = Vec::with_capacity(tokens.len());
    let mut gravest = RefusalKind::Invalid;
    let mut refuse = |r: &mut ReportResult, kind: RefusalKind, error: String| {
        r.status = "refused".into();
        r.error = Some(error);
        gravest = gravest.max(kind);
    };
    let mut scopes: HashMap<String, Option<RunScope>> = HashMap::new();
    let mut provider_orgs: HashMap<String, bool> = HashMap::new();
    let mut records = Vec::new();
    let mut record_index = Vec::new();
    for (index, (outcome, kid)) in verified.into_iter().zip(&kids).enumerate() {
        let mut r = fresh_result(index);
        let Some(outcome) = outcome else {
            // Not verified: another report's signature failed first.
            r.status = WITHHELD.into();
            results.push(r);
            continue;
        };
        let claims = match outcome {
            Ok(claims) => claims,
            Err(e) => {
                let (kind, error) = report_refusal(e);
                refuse(&mut r, kind, error);
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
                RefusalKind::Unauthenticated,
                format!(
                    "iss {:?} is not the organization that registered the signing key ({})",
                    claims.iss,
                    signer_org.map_or("none", String::as_str)
                ),
            );
            results.push(r);
            continue;
        }
        // Developers register reporting keys too (for access-usage reports): only a compute
        // provider's key signs compute usage, whatever a permit's providers list names.
        if !provider_orgs.contains_key(&claims.iss) {
            let is_provider = state
                .store
                .organization(&claims.iss)
                .await?
                .is_some_and(|o| o.kind == runpermit_types::OrgKind::Provider);
            provider_orgs.insert(claims.iss.clone(), is_provider);
        }
        if provider_orgs.get(&claims.iss) != Some(&true) {
            refuse(
                &mut r,
                RefusalKind::Unauthenticated,
                format!(
                    "iss {:?} is not a compute provider: only a provider's reporting key signs \
                     compute usage reports",
                    claims.iss
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
                RefusalKind::Invalid,
                format!("sub: no permitted run {:?} at this authority", claims.sub),
            );
            results.push(r);
            continue;
        };
        if scope.run.permit_id != claims.permit_id {
            refuse(
                &mut r,
                RefusalKind::Invalid,
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
                    RefusalKind::Invalid,
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
                    RefusalKind::Invalid,
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
            refuse(&mut r, RefusalKind::Invalid, error);
            results.push(r);
            continue;
        }
        let below = claims.below_basis(scope.permit.accounting.as_ref());
        if !below.is_empty() {
            refuse(&mut r, RefusalKind::Invalid, field_errors(&below));
            results.push(r);
            continue;
        }
        record_index.push(results.len());
        records.push(record(&claims, &scope.permit, &tokens[index], now)?);
        results.push(r);
    }
    let mut results = refuse_whole_batch(results, gravest)?;

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
        return Err(DomainError::Refused(Box::new(Refusal {
            reason: RefusalKind::Conflict,
            answer,
        })));
    }
    Ok(answer)
}

/// Why a report's times cannot be true of work under `permit` (refused as invalid): an
/// interval that ends before the permit was issued or valid (no gate meters work under a
/// permit that did not exist), or that ends, or was signed, in the future. `now_s` is the
/// authority's clock. An interval that only *starts* before the permit was valid, or ends
/// after it expired, is stored and counted like any other: it is evidence, and the run is
/// flagged for its reviewers (`flags.rs`).
fn implausible_times(
    report: &UsageReportClaims,
    permit: &PermitClaims,
    now_s: i64,
) -> Option<String> {
    let utc = runpermit_permit::utc;
    let start = permit.iat.max(permit.nbf);
    if report.to <= start.saturating_sub(MAX_SKEW_S) {
        return Some(format!(
            "to: the interval ends at {}, before permit {} was issued and valid ({}): no \
             gate meters work under a permit before it exists",
            utc(report.to),
            permit.jti,
            utc(start)
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

/// What the report's accelerator-seconds compute at full utilization at the permit's declared
/// precision (at each chip's highest peak without a basis).
fn capacity(claims: &UsageReportClaims, permit: &PermitClaims) -> f64 {
    let table = runpermit_compute::HardwareTable::builtin();
    claims
        .accelerator_seconds
        .iter()
        .filter_map(|(id, seconds)| {
            let chip = table.lookup(id).ok()?;
            runpermit_compute::accounting::capacity(chip, *seconds, permit.accounting.as_ref()).ok()
        })
        .map(|f| f.get())
        .sum()
}

fn record(
    claims: &UsageReportClaims,
    permit: &PermitClaims,
    token: &str,
    now: i64,
) -> Result<UsageRecord, DomainError> {
    Ok(UsageRecord {
        provider_id: claims.iss.clone(),
        run_id: claims.sub.clone(),
        seq: i64::try_from(claims.seq).map_err(|_| DomainError::field("seq", "too large"))?,
        permit_id: claims.permit_id.clone(),
        cluster: claims.cluster.clone(),
        from_s: claims.from,
        to_s: claims.to,
        flop: claims.flop.get(),
        flop_lower: claims.flop_lower.get(),
        flop_upper: claims.flop_upper.get(),
        method: claims.method.as_str().to_owned(),
        accelerator_seconds_json: serde_json::to_string(&claims.accelerator_seconds)
            .map_err(|e| DomainError::Internal(e.to_string()))?,
        capacity_flop: capacity(claims, permit),
        digest: sha256_hex(token.as_bytes()),
        token: token.to_owned(),
        received_at: now,
    })
}
