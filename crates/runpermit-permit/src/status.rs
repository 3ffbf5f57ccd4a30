//! The signed status list: which permits are not in good standing, signed by the authority,
//! versioned and short-lived, like a certificate revocation list. These doc comments are its
//! specification.
//!
//! A status list is a compact JWS made with runpermit-permit's [`sign_jws`]: header
//! `{"alg":"EdDSA","typ":"runpermit-status+jwt","kid":…}` ([`STATUS_TYP`]), signed by a key of
//! the authority's published JWKS (the same keys that sign permits; `typ` keeps the two token
//! kinds apart), and whose payload is exactly the fields of [`StatusListClaims`]: unknown
//! fields are refused. Times are integer unix seconds.
//!
//! The list names only permits that are *not* in good standing; a permit that it does not
//! name is in good standing as of the list's `iat`. A gate holds the newest list it has
//! verified (runpermit-gate's `StatusListCache`), never goes back to an older version, and
//! fails closed for jobs that need a permit once the list is past its `exp` plus a grace
//! period.
//!
//! Compatibility: adding, removing or changing the meaning of a field makes a new token type
//! (a new `typ`), so that an old gate refuses a list it cannot read instead of misreading it.

use std::collections::HashSet;
use std::fmt;

use runpermit_compute::FieldError;
use serde::{Deserialize, Serialize};

use crate::error::{VerifyError, utc};
use crate::jwks::Jwks;
use crate::jws::{sign_jws, verify_jws};
use crate::keys::SigningKey;

/// The header `typ` of a status list token.
pub const STATUS_TYP: &str = "runpermit-status+jwt";

/// The claims of a status list token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StatusListClaims {
    /// Issuer: the authority, as its base URL or name (the `iss` of its permits).
    pub iss: String,
    /// Issued at: when the authority signed this list (unix seconds, ≥ 0). The list states
    /// the standing of every permit as of this time.
    pub iat: i64,
    /// Expiry: `iat` plus the policy's status TTL (`status_ttl_seconds`). After this time
    /// (and the gate's grace period) the list no longer shows that a permit is in good
    /// standing, and a gate refuses jobs that need a permit until it has a newer list.
    /// Always later than `iat`.
    pub exp: i64,
    /// The list's version: increases by at least one with every list the authority signs,
    /// whether or not the entries changed. A gate never accepts a lower version than the one
    /// it holds (a replayed old list could hide a revocation), nor the same version with
    /// other content (the authority would be showing two lists).
    pub version: u64,
    /// The permits not in good standing, each at most once, in any order. Empty when every
    /// permit is in good standing.
    pub entries: Vec<StatusEntry>,
}

/// One permit that is not in good standing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StatusEntry {
    /// The permit's id (its JWT `jti`, the `permit_id` of its `permit_issued` log entry).
    pub permit_id: String,
    /// Why the permit is not in good standing.
    pub status: PermitStatus,
    /// The authority's reason, in words, shown to the job owner (may be empty).
    pub reason: String,
    /// Since when the permit has had this status (unix seconds); not later than the list's
    /// `iat`.
    pub since: i64,
}

/// A standing other than good. Every one of them refuses new jobs under the permit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum PermitStatus {
    /// `suspended`: the authority suspended the permit (for example during an incident
    /// investigation); it may be reinstated.
    Suspended,
    /// `revoked`: the permit is revoked for good; the run must stop.
    Revoked,
    /// `milestone_hold`: the run reached the end of a tranche and its milestone evaluation
    /// has not been accepted yet; the next tranche is not released.
    MilestoneHold,
    /// `paused`: the run is paused (by the authority, or at the holder's request).
    Paused,
}

impl PermitStatus {
    /// Every status, in the order above.
    pub const ALL: [PermitStatus; 4] = [
        PermitStatus::Suspended,
        PermitStatus::Revoked,
        PermitStatus::MilestoneHold,
        PermitStatus::Paused,
    ];

    /// The value written in the list (`suspended`, `milestone_hold`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            PermitStatus::Suspended => "suspended",
            PermitStatus::Revoked => "revoked",
            PermitStatus::MilestoneHold => "milestone_hold",
            PermitStatus::Paused => "paused",
        }
    }
}

impl fmt::Display for PermitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StatusListClaims {
    /// A list issued at `iat` that expires `ttl_seconds` later.
    pub fn new(
        iss: impl Into<String>,
        iat: i64,
        ttl_seconds: i64,
        version: u64,
        entries: Vec<StatusEntry>,
    ) -> StatusListClaims {
        StatusListClaims {
            iss: iss.into(),
            iat,
            exp: iat.saturating_add(ttl_seconds),
            version,
            entries,
        }
    }

    /// Everything wrong with these claims, each named by its field (`entries[2].permit_id`),
    /// all at once; empty when the list is sound. [`verify_status_list`] (and a gate's cache)
    /// refuse a list with problems, so a signer checks first.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut push = |field: String, message: String| {
            errors.push(FieldError {
                field,
                message,
                suggestions: Vec::new(),
            });
        };
        if !is_id(&self.iss) {
            push(
                "iss".into(),
                "must name the authority (its base URL or name), without surrounding spaces".into(),
            );
        }
        if self.iat < 0 {
            push(
                "iat".into(),
                format!("must be unix seconds, 0 or more; got {}", self.iat),
            );
        }
        if self.exp <= self.iat {
            push(
                "exp".into(),
                format!(
                    "must be later than iat ({}, unix {}); got {} (unix {})",
                    utc(self.iat),
                    self.iat,
                    utc(self.exp),
                    self.exp
                ),
            );
        }
        let mut seen = HashSet::new();
        for (i, entry) in self.entries.iter().enumerate() {
            if !is_id(&entry.permit_id) {
                push(
                    format!("entries[{i}].permit_id"),
                    "must be a permit id (a JWT jti), without surrounding spaces".into(),
                );
            } else if !seen.insert(entry.permit_id.as_str()) {
                push(
                    format!("entries[{i}].permit_id"),
                    format!(
                        "{:?} is listed twice: a permit has one status",
                        entry.permit_id
                    ),
                );
            }
            if entry.since > self.iat {
                push(
                    format!("entries[{i}].since"),
                    format!(
                        "must not be later than the list's iat ({}); got {}",
                        self.iat, entry.since
                    ),
                );
            }
        }
        errors
    }
}

/// Signs `claims` as a status list token (`typ` [`STATUS_TYP`]) with the authority's `key`.
///
/// Does not check the claims: call [`StatusListClaims::problems`] first, since every
/// verifier refuses a list that has any.
pub fn sign_status_list(claims: &StatusListClaims, key: &SigningKey) -> String {
    sign_jws(STATUS_TYP, claims, key)
}

/// Verifies a status list token against the authority's `jwks`: the JWS (structure, `alg`,
/// `typ` = [`STATUS_TYP`], `kid` in `jwks`, signature), then the claims' shape (unknown
/// fields refused) and [`problems`](StatusListClaims::problems). Does not look at the time:
/// how fresh the list is, is the holder's business (runpermit-gate's `StatusListCache`).
pub fn verify_status_list(token: &str, jwks: &Jwks) -> Result<StatusListClaims, StatusListError> {
    let (_, claims) = verify_jws::<StatusListClaims>(token.trim(), STATUS_TYP, jwks)?;
    let problems = claims.problems();
    if problems.is_empty() {
        Ok(claims)
    } else {
        Err(StatusListError::Invalid(problems))
    }
}

/// Why a status list token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusListError {
    /// The token does not verify: malformed, wrong `typ`, unknown key, bad signature, or
    /// claims of the wrong shape (see [`VerifyError`]).
    #[error("status list refused: {0}")]
    Verify(#[from] VerifyError),
    /// The claims verify but are not a sound list (see [`StatusListClaims::problems`]).
    #[error("status list refused: {}", fields(.0))]
    Invalid(Vec<FieldError>),
}

fn fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Whether `s` is usable as an identifier: not empty, no surrounding whitespace, no
/// control characters (the rule runpermit-gate applies to its configuration's ids).
fn is_id(s: &str) -> bool {
    !s.is_empty() && s.trim() == s && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::PERMIT_TYP;

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const TTL: i64 = 3600;

    fn entry(permit_id: &str, status: PermitStatus) -> StatusEntry {
        StatusEntry {
            permit_id: permit_id.into(),
            status,
            reason: format!("{status} by the authority"),
            since: NOW - 60,
        }
    }

    fn list(version: u64, entries: Vec<StatusEntry>) -> StatusListClaims {
        StatusListClaims::new("https://authority.example", NOW, TTL, version, entries)
    }

    fn setup() -> (SigningKey, Jwks) {
        let key = SigningKey::from_seed(&[7; 32]);
        let jwks = Jwks::from_keys(&[key.public()]);
        (key, jwks)
    }

    #[test]
    fn signs_and_verifies() {
        let (key, jwks) = setup();
        let claims = list(3, vec![entry("pmt_1", PermitStatus::Revoked)]);
        assert_eq!(claims.exp, NOW + TTL);
        let token = sign_status_list(&claims, &key);
        assert_eq!(verify_status_list(&token, &jwks), Ok(claims.clone()));
        assert_eq!(verify_status_list(&format!("{token}\n"), &jwks), Ok(claims));
    }

    #[test]
    fn json_shape_is_stable() {
        let claims = list(
            9,
            vec![StatusEntry {
                permit_id: "pmt_1".into(),
                status: PermitStatus::MilestoneHold,
                reason: "milestone 2 evaluation due".into(),
                since: NOW - 5,
            }],
        );
        assert_eq!(
            serde_json::to_value(&claims).unwrap(),
            serde_json::json!({
                "iss": "https://authority.example",
                "iat": NOW,
                "exp": NOW + TTL,
                "version": 9,
                "entries": [{
                    "permit_id": "pmt_1",
                    "status": "milestone_hold",
                    "reason": "milestone 2 evaluation due",
                    "since": NOW - 5,
                }],
            })
        );
        for status in PermitStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, serde_json::json!(status.as_str()));
            assert_eq!(
                serde_json::from_value::<PermitStatus>(json).unwrap(),
                status
            );
        }
    }

    #[test]
    fn other_tokens_keys_and_tampering_are_refused() {
        let (key, jwks) = setup();
        let claims = list(1, vec![]);
        // A permit-typed token with the same payload is not a status list.
        let as_permit = sign_jws(PERMIT_TYP, &claims, &key);
        assert!(matches!(
            verify_status_list(&as_permit, &jwks),
            Err(StatusListError::Verify(VerifyError::WrongType { .. }))
        ));
        // Signed by a key the gate does not pin.
        let stranger = SigningKey::from_seed(&[8; 32]);
        let token = sign_status_list(&claims, &stranger);
        assert_eq!(
            verify_status_list(&token, &jwks),
            Err(StatusListError::Verify(VerifyError::UnknownKey(
                stranger.kid().into()
            )))
        );
        // An entry removed from the payload, signature kept.
        let real = sign_status_list(&list(1, vec![entry("pmt_1", PermitStatus::Revoked)]), &key);
        let forged = sign_status_list(&claims, &key);
        let [h, _, s]: [&str; 3] = real.split('.').collect::<Vec<_>>().try_into().unwrap();
        let p = forged.split('.').nth(1).unwrap();
        assert_eq!(
            verify_status_list(&format!("{h}.{p}.{s}"), &jwks),
            Err(StatusListError::Verify(VerifyError::BadSignature))
        );
    }

    #[test]
    fn unknown_fields_and_unsound_lists_are_refused() {
        let (key, jwks) = setup();
        let mut json = serde_json::to_value(list(1, vec![])).unwrap();
        json["ttl"] = 60.into();
        let token = sign_jws(STATUS_TYP, &json, &key);
        match verify_status_list(&token, &jwks) {
            Err(StatusListError::Verify(VerifyError::Claims(m))) => {
                assert!(m.contains("unknown field `ttl`"), "{m}");
            }
            other => panic!("{other:?}"),
        }

        let mut bad = list(
            1,
            vec![
                entry("pmt_1", PermitStatus::Revoked),
                entry("pmt_1", PermitStatus::Paused),
                entry(" ", PermitStatus::Paused),
            ],
        );
        bad.exp = bad.iat;
        bad.iss = String::new();
        bad.entries[0].since = NOW + 1;
        let token = sign_status_list(&bad, &key);
        let Err(StatusListError::Invalid(errors)) = verify_status_list(&token, &jwks) else {
            panic!("expected Invalid");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "iss",
                "exp",
                "entries[0].since",
                "entries[1].permit_id",
                "entries[2].permit_id"
            ]
        );
        assert!(errors[3].message.contains("listed twice"));
        let text = StatusListError::Invalid(errors).to_string();
        assert!(
            text.starts_with("status list refused: iss: must name"),
            "{text}"
        );
    }
}
