//! Access-usage ingestion: a batch of developers' signed access-usage reports (what their
//! access gateways served under each grant) is verified, checked against the grants, and
//! stored durably all or nothing, raising each grant's sums in the same transaction.
//!
//! As for compute usage (`runs::ingestion`), and with its signature checks
//! (`runs::signatures`): each report is authenticated by its signature with a registered
//! reporting key, whose organization must be the report's `iss`; then `iss` must be the
//! grant's developer and `model_id` the grant's model. A grant's standing does not matter:
//! a report says what was served, and what a suspended grant was still served is evidence.

use std::sync::Arc;

use runpermit_permit::{AccessUsageClaims, verify_access_usage};
use runpermit_store::{AccessUsageRecord, Ingested};

use crate::domain::Authority;
use crate::domain::error::{DomainError, Refusal, RefusalKind, refuse_whole_batch, report_refusal};
use crate::domain::ids::sha256_hex;
use crate::domain::runs::signatures;
use crate::domain::usage_batch::{IngestAnswer, ReportResult, WITHHELD, fresh_result};

/// Most reports one `POST /v1/access-usage` may carry (a gateway ships what it rolled since
/// its last acknowledgement: one report per grant and interval).
pub const MAX_ACCESS_REPORTS_PER_REQUEST: usize = 1000;

/// How far a report's times may lie ahead of the authority's clock.
const MAX_SKEW_S: i64 = 300;

/// Verifies a batch of signed access-usage reports from `source` and stores it durably, all
/// or nothing. `Ok` means every report is stored (or was already).
pub async fn ingest(
    state: &Authority,
    tokens: Vec<String>,
    source: Option<&str>,
) -> Result<IngestAnswer, DomainError> {
    if tokens.is_empty() {
        return Err(DomainError::field(
            "reports",
            "must hold at least one signed access-usage report",
        ));
    }
    if tokens.len() > MAX_ACCESS_REPORTS_PER_REQUEST {
        return Err(DomainError::field(
            "reports",
            format!(
                "at most {MAX_ACCESS_REPORTS_PER_REQUEST} reports per request (got {}); send \
                 several requests",
                tokens.len()
            ),
        ));
    }
    let now = state.clock.now_ms();
    let keys = signatures::before_verifying(state, &tokens, source, now).await?;
    let tokens = Arc::new(tokens);
    let verified = signatures::verify_with(
        state,
        Arc::clone(&tokens),
        &keys,
        source,
        now,
        verify_access_usage,
    )
    .await?;

    let mut results: Vec<ReportResult> = Vec::with_capacity(tokens.len());
    let mut gravest = RefusalKind::Invalid;
    let mut records = Vec::new();
    let mut record_index = Vec::new();
    for (index, (outcome, kid)) in verified.into_iter().zip(&keys.kids).enumerate() {
        let mut r = fresh_result(index);
        let Some(outcome) = outcome else {
            r.status = WITHHELD.into();
            results.push(r);
            continue;
        };
        let judged = match outcome {
            Ok(claims) => {
                r.grant_id = Some(claims.grant_id.clone());
                r.seq = Some(claims.seq);
                let signer = kid.as_ref().and_then(|k| keys.org_of.get(k));
                judge(state, &claims, signer, now / 1000)
                    .await?
                    .map(|()| claims)
            }
            Err(e) => Err(report_refusal(e)),
        };
        match judged {
            Ok(claims) => {
                record_index.push(results.len());
                records.push(record(&claims, &tokens[index], now)?);
            }
            Err((kind, error)) => {
                r.status = "refused".into();
                r.error = Some(error);
                gravest = gravest.max(kind);
            }
        }
        results.push(r);
    }
    let mut results = refuse_whole_batch(results, gravest)?;

    let outcomes = state.store.ingest_access_usage(records).await?;
    let mut conflicts = 0;
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
            }
            Ingested::Duplicate => r.status = "duplicate".into(),
            Ingested::Withheld => r.status = WITHHELD.into(),
            Ingested::Conflict { stored_digest } => {
                conflicts += 1;
                r.status = "refused".into();
                r.error = Some(format!(
                    "seq {} for grant {} was already stored with other content (sha256 \
                     {stored_digest}): a sequence number names one report forever",
                    r.seq.unwrap_or(0),
                    r.grant_id.as_deref().unwrap_or("")
                ));
            }
        }
    }
    let answer = IngestAnswer {
        stored: results.iter().filter(|r| r.status == "stored").count(),
        duplicates: results.iter().filter(|r| r.status == "duplicate").count(),
        refused: conflicts,
        results,
    };
    metrics::counter!("runpermit_access_usage_reports_total", "outcome" => "stored")
        .increment(answer.stored as u64);
    if conflicts > 0 {
        return Err(DomainError::Refused(Box::new(Refusal {
            reason: RefusalKind::Conflict,
            answer,
        })));
    }
    Ok(answer)
}

/// Why a verified report is refused, if it is: its signer is not its `iss`, its grant is
/// unknown or not the signer's, its model is not the grant's, or its times are in the future.
async fn judge(
    state: &Authority,
    claims: &AccessUsageClaims,
    signer: Option<&String>,
    now_s: i64,
) -> Result<Result<(), (RefusalKind, String)>, DomainError> {
    if signer != Some(&claims.iss) {
        return Ok(Err((
            RefusalKind::Unauthenticated,
            format!(
                "iss {:?} is not the organization that registered the signing key ({})",
                claims.iss,
                signer.map_or("none", String::as_str)
            ),
        )));
    }
    // An unknown grant and another developer's are refused alike: a developer learns nothing
    // of others' grants.
    let Some(grant) = state
        .store
        .grant(&claims.grant_id)
        .await?
        .filter(|g| g.developer_org_id == claims.iss)
    else {
        return Ok(Err((
            RefusalKind::Invalid,
            format!(
                "grant_id: no grant {:?} to a model of {}",
                claims.grant_id, claims.iss
            ),
        )));
    };
    if grant.model_id != claims.model_id {
        return Ok(Err((
            RefusalKind::Invalid,
            format!(
                "model_id: grant {} is for model {}, not {}",
                grant.id, grant.model_id, claims.model_id
            ),
        )));
    }
    for (field, at) in [("to", claims.to), ("iat", claims.iat)] {
        if at > now_s.saturating_add(MAX_SKEW_S) {
            return Ok(Err((
                RefusalKind::Invalid,
                format!(
                    "{field}: {} is in the future (the authority's clock reads {}); check the \
                     gateway's clock",
                    runpermit_permit::utc(at),
                    runpermit_permit::utc(now_s)
                ),
            )));
        }
    }
    Ok(Ok(()))
}

fn record(
    claims: &AccessUsageClaims,
    token: &str,
    now: i64,
) -> Result<AccessUsageRecord, DomainError> {
    // Every count is at most 10^13 (the claims' bounds): each fits an i64.
    let count = |field: &str, n: u64| {
        i64::try_from(n).map_err(|_| DomainError::field(field.to_owned(), "too large"))
    };
    Ok(AccessUsageRecord {
        iss: claims.iss.clone(),
        grant_id: claims.grant_id.clone(),
        seq: count("seq", claims.seq)?,
        model_id: claims.model_id.clone(),
        from_s: claims.from,
        to_s: claims.to,
        requests: count("requests", claims.requests)?,
        prompt_tokens: count("prompt_tokens", claims.prompt_tokens)?,
        completion_tokens: count("completion_tokens", claims.completion_tokens)?,
        refused: count("refused", claims.refused)?,
        digest: sha256_hex(token.as_bytes()),
        token: token.to_owned(),
        received_at: now,
    })
}
