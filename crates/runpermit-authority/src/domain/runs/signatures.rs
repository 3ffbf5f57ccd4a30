//! Signature work on a batch of usage reports, and the cheap checks that come first, so that
//! nobody can make the authority verify signatures for nothing: every report within its
//! size, every `kid` registered, no `kid` whose failed verifications from this address used
//! up their bucket ([`Limit::UsageFailedVerificationsPerKid`]); then verification, which
//! stops at the first bad signature, since the batch is lost then anyway.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use runpermit_permit::{Jwks, VerifyError};
use runpermit_permit::{ReportError, UsageReportClaims, verify_usage_report};

use crate::domain::Authority;
use crate::domain::error::DomainError;
use crate::domain::error::{Refusal, RefusalKind};
use crate::domain::limits::{Limit, kid_from};
use crate::domain::usage_batch::{IngestAnswer, MAX_REPORT_BYTES, ReportResult, WITHHELD};

/// One report's verification: `None` when it was not verified because another report's
/// signature failed first.
pub(crate) type Verified<T = UsageReportClaims> = Option<Result<T, ReportError>>;

/// What the cheap checks found: each report's `kid`, the registered keys, and the
/// organization that registered each `kid`.
pub(crate) struct Keys {
    pub(crate) kids: Vec<Option<String>>,
    pub(crate) jwks: Jwks,
    pub(crate) org_of: HashMap<String, String>,
}

/// The cheap checks on a batch from `source` at `now`: the batch refused whole when a report
/// is too large or names an unknown `kid`, 429 when a `kid`'s failure bucket is empty.
pub(crate) async fn before_verifying(
    state: &Authority,
    tokens: &[String],
    source: Option<&str>,
    now: i64,
) -> Result<Keys, DomainError> {
    let kids: Vec<Option<String>> = tokens
        .iter()
        .map(|t| {
            (t.len() <= MAX_REPORT_BYTES)
                .then(|| header_kid(t))
                .flatten()
        })
        .collect();
    let (jwks, org_of) = state.provider_keys.current(state, &kids).await?;
    if let Some(refused) = unverifiable(tokens, &kids, &org_of) {
        return Err(DomainError::Refused(Box::new(refused)));
    }
    let mut batch_kids: Vec<&str> = kids.iter().flatten().map(String::as_str).collect();
    batch_kids.sort_unstable();
    batch_kids.dedup();
    for kid in &batch_kids {
        let id = kid_from(kid, source);
        state
            .limits
            .peek(now, Limit::UsageFailedVerificationsPerKid, &id, 1)?;
    }
    Ok(Keys { kids, jwks, org_of })
}

/// Verifies the reports, spread over the cores, and counts each bad signature against its
/// `kid`'s bucket of failed verifications from `source`.
pub(super) async fn verify(
    state: &Authority,
    tokens: Arc<Vec<String>>,
    keys: &Keys,
    source: Option<&str>,
    now: i64,
) -> Result<Vec<Verified>, DomainError> {
    verify_with(state, tokens, keys, source, now, verify_usage_report).await
}

/// [`verify`] with another kind of signed report (`check` verifies one against the keys).
pub(crate) async fn verify_with<T: Send + 'static>(
    state: &Authority,
    tokens: Arc<Vec<String>>,
    keys: &Keys,
    source: Option<&str>,
    now: i64,
    check: fn(&str, &Jwks) -> Result<T, ReportError>,
) -> Result<Vec<Verified<T>>, DomainError> {
    let jwks = keys.jwks.clone();
    let verified = tokio::task::spawn_blocking(move || verify_all(&tokens, &jwks, check))
        .await
        .map_err(|e| DomainError::Internal(format!("verifying usage reports: {e}")))?;
    charge_failures(state, now, &verified, &keys.kids, source);
    Ok(verified)
}

/// The batch refused whole before any signature is checked, when a report is larger than
/// [`MAX_REPORT_BYTES`] (invalid) or names a `kid` that no provider has registered (unauthenticated); the
/// other reports come back withheld. A report without a readable `kid` is left to
/// verification, which refuses it before any signature work.
fn unverifiable(
    tokens: &[String],
    kids: &[Option<String>],
    org_of: &HashMap<String, String>,
) -> Option<Refusal> {
    let mut gravest = RefusalKind::Invalid;
    let mut results = Vec::with_capacity(tokens.len());
    for (index, (token, kid)) in tokens.iter().zip(kids).enumerate() {
        let error = match kid {
            _ if token.len() > MAX_REPORT_BYTES => Some((
                RefusalKind::Invalid,
                format!(
                    "the report is {} bytes, more than the {MAX_REPORT_BYTES} accepted",
                    token.len()
                ),
            )),
            Some(kid) if !org_of.contains_key(kid) => Some((
                RefusalKind::Unauthenticated,
                format!(
                    "no registered reporting key has kid {kid:?}: the provider (or, for \
                     access-usage reports, the developer) registers its key with \
                     POST /v1/orgs/{{id}}/reporting-keys (runpermit org add-reporting-key)"
                ),
            )),
            _ => None,
        };
        if let Some((kind, _)) = error {
            gravest = gravest.max(kind);
        }
        results.push(ReportResult {
            index,
            status: if error.is_some() { "refused" } else { WITHHELD }.into(),
            provider_id: None,
            run_id: None,
            grant_id: None,
            seq: None,
            gap: None,
            late: false,
            error: error.map(|(_, e)| e),
        });
    }
    let refused = results.iter().filter(|r| r.error.is_some()).count();
    (refused > 0).then_some(Refusal {
        reason: gravest,
        answer: IngestAnswer {
            stored: 0,
            duplicates: 0,
            refused,
            results,
        },
    })
}

/// Counts each failed signature against its `kid`'s bucket of failed verifications from
/// `source`.
fn charge_failures<T>(
    state: &Authority,
    now: i64,
    verified: &[Verified<T>],
    kids: &[Option<String>],
    source: Option<&str>,
) {
    let mut failures: BTreeMap<&str, u32> = BTreeMap::new();
    for (outcome, kid) in verified.iter().zip(kids) {
        if let (Some(Err(e)), Some(kid)) = (outcome, kid)
            && bad_signature(e)
        {
            *failures.entry(kid).or_default() += 1;
        }
    }
    for (kid, n) in failures {
        tracing::warn!(
            kid,
            source,
            failures = n,
            "usage reports whose signature does not verify"
        );
        metrics::counter!("runpermit_usage_reports_total", "outcome" => "bad_signature")
            .increment(u64::from(n));
        let id = kid_from(kid, source);
        state
            .limits
            .charge(now, Limit::UsageFailedVerificationsPerKid, &id, n);
    }
}

/// A signature was checked and did not verify: the work a forger makes the authority do.
fn bad_signature(e: &ReportError) -> bool {
    matches!(e, ReportError::Verify(VerifyError::BadSignature))
}

/// Each report's verification, in order, until a signature fails: the reports not verified
/// by then are `None`.
fn verify_all<T: Send>(
    tokens: &[String],
    jwks: &Jwks,
    check: fn(&str, &Jwks) -> Result<T, ReportError>,
) -> Vec<Verified<T>> {
    let failed = AtomicBool::new(false);
    let verify_part = |part: &[String]| {
        part.iter()
            .map(|t| {
                if failed.load(Ordering::Relaxed) {
                    return None;
                }
                let outcome = check(t, jwks);
                if let Err(e) = &outcome
                    && bad_signature(e)
                {
                    failed.store(true, Ordering::Relaxed);
                }
                Some(outcome)
            })
            .collect::<Vec<_>>()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || tokens.len() < 64 {
        return verify_part(tokens);
    }
    let chunk = tokens.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .chunks(chunk)
            .map(|part| s.spawn(|| verify_part(part)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// The `kid` in a compact JWS's header, if it can be read.
fn header_kid(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    value.get("kid")?.as_str().map(str::to_owned)
}
