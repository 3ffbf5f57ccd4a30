//! Access-usage reports: what an access enforcement point (the developer's gateway) served
//! under one access grant over one interval, signed with the developer's reporting key as a
//! compact JWS (`typ` [`ACCESS_USAGE_TYP`]).
//!
//! The authority sums them per grant. `seq` is monotonic per (`iss`, `grant_id`), from 1: the
//! authority detects gaps and treats a repeated `seq` as the same report (idempotent) or, with
//! different content, as an error — as for compute usage reports.

use runpermit_compute::{FieldError, limits, text};
use serde::{Deserialize, Serialize};

use crate::jwks::Jwks;
use crate::keys::SigningKey;
use crate::report::{ReportError, SoundClaims, sign_sound, verify_sound};

/// The header `typ` of an access-usage report.
pub const ACCESS_USAGE_TYP: &str = "runpermit-access-usage+jwt";

/// The most requests or tokens one report may carry: 10^13 (the largest token quota a grant
/// may set); more in one interval is a counting error.
pub const ACCESS_USAGE_MAX_COUNT: u64 = 10_000_000_000_000;

/// The claims of an access-usage report. Unknown fields are refused; a change of fields makes
/// a new `typ`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AccessUsageClaims {
    /// The reporting developer: the organization id (at the authority) running the gateway.
    pub iss: String,
    /// The access grant the usage was under (its `jti`).
    pub grant_id: String,
    /// The model served (the grant's `model.model_id`).
    pub model_id: String,
    /// Sequence number, from 1, increasing by one per report of this developer for this grant.
    pub seq: u64,
    /// Interval start (unix seconds, inclusive).
    pub from: i64,
    /// Interval end (unix seconds, exclusive); later than `from`, by at most 31 days.
    pub to: i64,
    /// When the report was signed (unix seconds); not before `to`.
    pub iat: i64,
    /// Requests admitted and forwarded to the model in the interval.
    pub requests: u64,
    /// Input tokens of those requests, as the model's usage fields counted them.
    pub prompt_tokens: u64,
    /// Output tokens of those requests, as the model's usage fields counted them.
    pub completion_tokens: u64,
    /// Requests under the grant the gateway refused in the interval (tier, quota, rate,
    /// standing).
    pub refused: u64,
}

impl AccessUsageClaims {
    /// Everything wrong with these claims, each naming its field, all at once.
    pub fn problems(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut push = |field: &str, message: String| {
            errors.push(FieldError {
                field: field.to_owned(),
                message,
                suggestions: Vec::new(),
            });
        };
        for (field, value) in [
            ("iss", &self.iss),
            ("grant_id", &self.grant_id),
            ("model_id", &self.model_id),
        ] {
            if let Some(problem) = text::id_problem(value) {
                push(field, problem);
            }
        }
        if let Err(problem) = limits::REPORT_SEQ.check_count(self.seq) {
            push("seq", problem);
        }
        let interval = i128::from(self.to) - i128::from(self.from);
        if interval <= 0 {
            push(
                "to",
                format!("must be later than from ({} ≤ {})", self.to, self.from),
            );
        } else if let Err(problem) = limits::REPORT_INTERVAL_SECONDS.check(interval as f64) {
            push("to", format!("to − from {problem}"));
        }
        if self.iat < self.to {
            push(
                "iat",
                format!(
                    "a report is signed after its interval ends (iat {} < to {})",
                    self.iat, self.to
                ),
            );
        }
        for (field, value) in [
            ("requests", self.requests),
            ("prompt_tokens", self.prompt_tokens),
            ("completion_tokens", self.completion_tokens),
            ("refused", self.refused),
        ] {
            if value > ACCESS_USAGE_MAX_COUNT {
                push(
                    field,
                    format!("{value} is more than one report may carry ({ACCESS_USAGE_MAX_COUNT})"),
                );
            }
        }
        if self.requests == 0 && (self.prompt_tokens > 0 || self.completion_tokens > 0) {
            push(
                "requests",
                "tokens were counted but no request: tokens belong to the requests that used them"
                    .to_owned(),
            );
        }
        if self.requests == 0 && self.refused == 0 {
            push(
                "requests",
                "an empty report: a report is written only for an interval with activity"
                    .to_owned(),
            );
        }
        errors
    }
}

/// Signs an access-usage report with the developer's reporting key. Refuses unsound claims,
/// so that nothing unsound is ever signed.
pub fn sign_access_usage(
    claims: &AccessUsageClaims,
    key: &SigningKey,
) -> Result<String, ReportError> {
    sign_sound(ACCESS_USAGE_TYP, claims, key)
}

/// Verifies an access-usage report against the developer's keys: signature, `typ`, claims of
/// the right shape, and sound claims.
pub fn verify_access_usage(
    token: &str,
    developer_keys: &Jwks,
) -> Result<AccessUsageClaims, ReportError> {
    verify_sound(token, ACCESS_USAGE_TYP, developer_keys)
}

impl SoundClaims for AccessUsageClaims {
    fn problems(&self) -> Vec<FieldError> {
        AccessUsageClaims::problems(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jws::sign_jws;
    use crate::report::USAGE_TYP;

    const NOW: i64 = 1_767_225_600;

    fn claims() -> AccessUsageClaims {
        AccessUsageClaims {
            iss: "org_dev".into(),
            grant_id: "agr_1".into(),
            model_id: "mdl_1".into(),
            seq: 1,
            from: NOW - 3600,
            to: NOW,
            iat: NOW,
            requests: 3,
            prompt_tokens: 30,
            completion_tokens: 12,
            refused: 1,
        }
    }

    #[test]
    fn round_trip_and_typ() {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let token = sign_access_usage(&claims(), &key).unwrap();
        assert_eq!(verify_access_usage(&token, &jwks).unwrap(), claims());
        // Another key, or another typ, is refused.
        let other = Jwks::from_keys(&[SigningKey::generate().public()]);
        assert!(matches!(
            verify_access_usage(&token, &other),
            Err(ReportError::Verify(_))
        ));
        let as_usage = sign_jws(USAGE_TYP, &claims(), &key);
        assert!(matches!(
            verify_access_usage(&as_usage, &jwks),
            Err(ReportError::Verify(_))
        ));
    }

    #[test]
    fn unsound_reports_are_refused_by_field() {
        let key = SigningKey::generate();
        let fields = |c: AccessUsageClaims| -> Vec<String> {
            match sign_access_usage(&c, &key) {
                Err(ReportError::Invalid(p)) => p.into_iter().map(|e| e.field).collect(),
                other => panic!("expected Invalid, got {other:?}"),
            }
        };
        assert_eq!(fields(AccessUsageClaims { seq: 0, ..claims() }), ["seq"]);
        assert_eq!(
            fields(AccessUsageClaims {
                to: NOW - 3600,
                ..claims()
            }),
            ["to"]
        );
        assert_eq!(
            fields(AccessUsageClaims {
                iat: NOW - 1,
                ..claims()
            }),
            ["iat"]
        );
        assert_eq!(
            fields(AccessUsageClaims {
                grant_id: String::new(),
                ..claims()
            }),
            ["grant_id"]
        );
        assert_eq!(
            fields(AccessUsageClaims {
                completion_tokens: ACCESS_USAGE_MAX_COUNT + 1,
                ..claims()
            }),
            ["completion_tokens"]
        );
        assert_eq!(
            fields(AccessUsageClaims {
                requests: 0,
                refused: 0,
                ..claims()
            }),
            ["requests", "requests"]
        );
    }
}
