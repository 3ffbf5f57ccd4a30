//! The admission check for one request under an access grant, pure (no IO, no clock).
//!
//! The checks run in a fixed order and the first failure decides, as the gate's do:
//!
//! 1. the grant: present, a JWS of `typ` `runpermit-access+jwt` signed by a pinned key, with
//!    a version-1 claim set (`grant_missing`, `grant_malformed`, `grant_unknown_key`,
//!    `grant_bad_signature`);
//! 2. its time window, with the configured clock skew (`grant_not_yet_valid`,
//!    `grant_expired`);
//! 3. the model: the request names the served model, and the grant is for this gateway's
//!    developer, model and checkpoint (`model_not_served`, `grant_wrong_model`);
//! 4. the tier: one this proxy serves, and one the grant includes (`tier_not_served`,
//!    `tier_too_low`);
//! 5. the log proof: a `c2sp.org/tlog-proof@v1` bundle, verifying under the pinned log key,
//!    carrying the `access_granted` entry whose `token` is exactly this grant
//!    (`proof_missing`, `proof_malformed`, `proof_wrong_log`, `proof_invalid`,
//!    `proof_wrong_grant`);
//! 6. the status list: held and fresh (`status_list_missing`, `status_list_stale`);
//! 7. the grant's standing on it (`grant_suspended`, `grant_revoked`);
//! 8. the quotas, against the grant's totals so far (`quota_exhausted`);
//! 9. the rate, GCRA (`rate_limited`, with when to retry).
//!
//! Identity and integrity come before anything the grant's claims drive; the cheap, local
//! mismatches (model, tier) before the proof; the proof before standing, so that a grant
//! never logged is refused as such even while the status list is unavailable; quotas and
//! rate last, as only they depend on this gateway's own counts.

use std::fmt;

use runpermit_gate::{Freshness, StatusListCache};
use runpermit_log::{CheckpointError, LogEntry, ProofBundle, ProofError};
use runpermit_permit::{
    AccessGrantClaims, AccessTier, Jwks, PermitStatus, Rate, VerifyError,
    check_access_grant_validity, utc, verify_access_grant_signature,
};

use crate::config::Served;
use crate::decision::{AccessDecision, Code};

/// What the gateway trusts: the authority's keys and the public log's verifier key.
#[derive(Debug, Clone)]
pub struct Anchors {
    /// The authority's JWKS.
    pub jwks: Jwks,
    /// The log's verifier key (C2SP note format).
    pub log_vkey: String,
}

/// One request, as the check sees it.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// The grant (compact JWS) presented; empty when none was.
    pub grant: &'a str,
    /// The grant's proof bundle (the bundle's text, decoded); empty when none was presented.
    pub proof: &'a str,
    /// The model the request names, if it names one.
    pub model: Option<&'a str>,
    /// The tier the request needs.
    pub tier: AccessTier,
}

/// A grant's use so far at this gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantUsage {
    /// Requests admitted.
    pub requests: u64,
    /// Tokens charged (prompt and completion together).
    pub tokens: u64,
    /// The GCRA theoretical arrival time (unix nanoseconds); 0 for a grant never used.
    pub tat_ns: i64,
}

/// The decision for `request` at `now_ms` (unix milliseconds), in the order the module
/// documentation gives. `usage` gives the grant's use so far by grant id. On `allowed`, the
/// decision carries the grant's next rate state, which the caller stores with the admitted
/// request.
pub fn check(
    served: &Served,
    anchors: &Anchors,
    status: &StatusListCache,
    request: &AccessRequest<'_>,
    usage: impl FnOnce(&str) -> GrantUsage,
    now_ms: i64,
) -> AccessDecision {
    let now = now_ms.div_euclid(1000);
    let token = request.grant.trim();
    if token.is_empty() {
        return AccessDecision::new(
            Code::GrantMissing,
            "no access grant: send it as `Authorization: Bearer <grant>`, with its log proof \
             base64-encoded in `X-Runpermit-Grant-Proof`"
                .to_owned(),
        );
    }
    let claims = match verify_access_grant_signature(token, &anchors.jwks)
        .and_then(|c| check_access_grant_validity(&c, now, served.clock_skew_seconds).map(|()| c))
    {
        Ok(claims) => claims,
        Err(e) => {
            let (code, message) = grant_refusal(e, served);
            return AccessDecision::new(code, message);
        }
    };
    let refuse = |code: Code, message: String| AccessDecision::new(code, message).about(&claims);

    // 3. The model.
    if let Some(model) = request.model
        && model != served.served_model
        && model != served.model_id
    {
        return refuse(
            Code::ModelNotServed,
            format!(
                "this gateway serves model {:?} only, not {model:?}: send `\"model\": {:?}`",
                served.served_model, served.served_model
            ),
        );
    }
    if claims.model.model_id != served.model_id
        || claims.model.checkpoint_digest != served.checkpoint_digest
        || claims.developer != served.developer_id
    {
        return refuse(
            Code::GrantWrongModel,
            format!(
                "grant {} is for model {} ({}, checkpoint {}) of developer {}; this gateway serves \
                 model {} (checkpoint {}) of developer {}. Use the grant at the gateway of the \
                 model it names, or apply for access to this one",
                claims.jti,
                claims.model.model_id,
                claims.model.name,
                claims.model.checkpoint_digest,
                claims.developer,
                served.model_id,
                served.checkpoint_digest,
                served.developer_id
            ),
        );
    }

    // 4. The tier.
    if request.tier > AccessTier::Logprobs {
        return refuse(
            Code::TierNotServed,
            format!(
                "this gateway is a sampling proxy: it serves the api_sampling and logprobs tiers \
                 only, not {}. Fine-tuning, activations and weights go through the developer's \
                 own channels for them",
                request.tier
            ),
        );
    }
    if !claims.allows(request.tier) {
        return refuse(
            Code::TierTooLow,
            format!(
                "grant {} is at tier {}, and this request needs {} (it asks for logprobs or \
                 top_logprobs). Leave those out, or apply for a {} grant",
                claims.jti, claims.tier, request.tier, request.tier
            ),
        );
    }

    // 5. The log proof.
    if let Err((code, message)) = check_proof(request.proof, token, &claims, &anchors.log_vkey) {
        return refuse(code, message);
    }

    // 6. and 7. The status list and the grant's standing on it.
    match status.freshness(now) {
        Freshness::Fresh => {}
        Freshness::Missing => {
            return refuse(
                Code::StatusListMissing,
                "this gateway holds no verified status list yet, so it cannot tell whether the \
                 grant is suspended or revoked: it refuses until one arrives from the authority. \
                 Try again in a minute"
                    .to_owned(),
            );
        }
        Freshness::Stale { age } => {
            return refuse(
                Code::StatusListStale,
                format!(
                    "this gateway's status list is {age} s old, past its expiry and grace: it \
                     refuses until a fresh one arrives from the authority. Try again later"
                ),
            );
        }
    }
    if let Some(entry) = status.status_of(&claims.jti) {
        let why = if entry.reason.is_empty() {
            String::new()
        } else {
            format!(" ({})", entry.reason)
        };
        let code = match entry.status {
            PermitStatus::Suspended => Code::GrantSuspended,
            _ => Code::GrantRevoked,
        };
        return refuse(
            code,
            format!(
                "grant {} is {} since {}{why}: the authority's status list says so. Ask the \
                 authority about it",
                claims.jti,
                entry.status,
                utc(entry.since)
            ),
        );
    }

    // 8. The quotas.
    let used = usage(&claims.jti);
    let exhausted = |what: &str, used: u64, quota: u64| {
        let mut d = refuse(
            Code::QuotaExhausted,
            format!(
                "grant {} has used {used} of its {quota} {what}: the quota covers the grant's whole \
                 validity (until {}) and does not refill. Ask the authority for a new grant",
                claims.jti,
                utc(claims.exp)
            ),
        );
        d.retry_at = Some(claims.exp);
        d
    };
    if let Some(quota) = claims.quotas.requests
        && used.requests >= quota
    {
        return exhausted("requests", used.requests, quota);
    }
    if let Some(quota) = claims.quotas.tokens
        && used.tokens >= quota
    {
        return exhausted("tokens", used.tokens, quota);
    }

    // 9. The rate.
    match gcra(claims.rate, used.tat_ns, now_ms) {
        Ok(next) => {
            let mut d = AccessDecision::new(
                Code::Allowed,
                format!(
                    "grant {} allows {} requests to model {}",
                    claims.jti, request.tier, served.model_id
                ),
            )
            .about(&claims);
            d.next_tat_ns = Some(next);
            d
        }
        Err(retry_ns) => {
            let retry_at = retry_ns.div_euclid(1_000_000_000)
                + i64::from(retry_ns.rem_euclid(1_000_000_000) != 0);
            let mut d = refuse(
                Code::RateLimited,
                format!(
                    "grant {} allows {} requests per {} s (bursts of {}); this one is over. \
                     Retry at {} (unix {retry_at})",
                    claims.jti,
                    claims.rate.count,
                    claims.rate.period_seconds,
                    claims.rate.burst,
                    utc(retry_at)
                ),
            );
            d.retry_at = Some(retry_at);
            d
        }
    }
}

/// The generic cell rate algorithm on `rate`: with the grant's theoretical arrival time `tat`
/// (unix ns), a request at `now_ms` is admitted when `max(tat, now) − now ≤ τ`, and then
/// `tat` becomes `max(tat, now) + T`, where T = period / count and τ = (burst − 1)·T.
/// `Ok(new tat)`, or `Err(the earliest time, unix ns, a request is admitted)`.
pub fn gcra(rate: Rate, tat_ns: i64, now_ms: i64) -> Result<i64, i64> {
    let now = i128::from(now_ms) * 1_000_000;
    let t =
        (i128::from(rate.period_seconds) * 1_000_000_000 / i128::from(rate.count.max(1))).max(1);
    let tau = i128::from(rate.burst.max(1) - 1) * t;
    let tat = i128::from(tat_ns).max(now);
    let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    if tat - now > tau {
        Err(clamp(tat - tau))
    } else {
        Ok(clamp(tat + t))
    }
}

/// Checks that `proof` proves, under the pinned log key, the `access_granted` entry whose
/// token is exactly `token` (as the gate's check of a permit's proof).
pub(crate) fn check_proof(
    proof: &str,
    token: &str,
    claims: &AccessGrantClaims,
    log_vkey: &str,
) -> Result<(), (Code, String)> {
    let fetch = format!(
        "the authority serves grant {}'s proof bundle; send it base64-encoded in \
         X-Runpermit-Grant-Proof",
        claims.jti
    );
    if proof.trim().is_empty() {
        return Err((
            Code::ProofMissing,
            format!(
                "grant {} comes without its log proof: a grant is served only with proof that it \
                 is in the public log ({fetch})",
                claims.jti
            ),
        ));
    }
    let malformed = |e: &dyn fmt::Display| {
        (
            Code::ProofMalformed,
            format!(
                "the grant's log proof cannot be read ({e}): send the c2sp.org/tlog-proof@v1 \
                 bundle as the authority serves it ({fetch})"
            ),
        )
    };
    let bundle = ProofBundle::parse(proof).map_err(|e| malformed(&e))?;
    let proved = bundle.verify_entry(log_vkey).map_err(|e| match e {
        ProofError::Malformed(_) | ProofError::NoEntry | ProofError::Entry(_) => malformed(&e),
        ProofError::Checkpoint(
            CheckpointError::NotSignedByKey { .. } | CheckpointError::OriginMismatch { .. },
        ) => (
            Code::ProofWrongLog,
            format!(
                "the grant's log proof is not from the log this gateway trusts ({e}): send the \
                 proof from the grant's authority ({fetch})"
            ),
        ),
        ProofError::Checkpoint(
            CheckpointError::BadSignature | CheckpointError::Malformed(_) | CheckpointError::Key(_),
        )
        | ProofError::Invalid { .. }
        | ProofError::WrongEntry => (
            Code::ProofInvalid,
            format!(
                "the grant's log proof does not verify ({e}): it was altered or damaged. Fetch it \
                 again ({fetch})"
            ),
        ),
    })?;
    match proved.entry {
        LogEntry::AccessGranted { token: logged, .. } if logged == token => Ok(()),
        LogEntry::AccessGranted { grant_id, .. } => Err((
            Code::ProofWrongGrant,
            format!(
                "the log proof is for grant {grant_id}, not for this grant ({}): send this \
                 grant's own proof ({fetch})",
                claims.jti
            ),
        )),
        other => Err((
            Code::ProofWrongGrant,
            format!(
                "the log proof is for a {} entry, not for this grant's access_granted entry: \
                 send this grant's own proof ({fetch})",
                other.type_name()
            ),
        )),
    }
}

fn grant_refusal(e: VerifyError, served: &Served) -> (Code, String) {
    match e {
        VerifyError::UnknownKey(kid) => (
            Code::GrantUnknownKey,
            format!(
                "the grant is signed by key {kid:?}, which this gateway does not trust: it comes \
                 from another authority, or the authority has new keys and the gateway's operator \
                 must update the pinned JWKS"
            ),
        ),
        VerifyError::BadSignature => (
            Code::GrantBadSignature,
            "the grant's signature does not verify: the token was altered or forged. Send it \
             exactly as the authority issued it"
                .to_owned(),
        ),
        e @ (VerifyError::NotYetValid { .. } | VerifyError::IssuedInFuture { .. }) => (
            Code::GrantNotYetValid,
            format!(
                "{e}; this gateway tolerates {} s of clock skew. Use the grant once it is valid",
                served.clock_skew_seconds
            ),
        ),
        e @ VerifyError::Expired { .. } => (
            Code::GrantExpired,
            format!("{e}. Apply for access again to continue"),
        ),
        e @ (VerifyError::Malformed(_)
        | VerifyError::UnsupportedAlgorithm(_)
        | VerifyError::WrongType { .. }
        | VerifyError::Claims(_)) => (
            Code::GrantMalformed,
            format!(
                "the bearer token is not a runpermit access grant ({e}). Send the grant exactly \
                 as the authority issued it"
            ),
        ),
    }
}
