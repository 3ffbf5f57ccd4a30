//! Usage reports: what a provider metered for one run over one interval, signed with the
//! provider's Ed25519 key as a compact JWS (`typ` `runpermit-usage+jwt`).
//!
//! The authority sums reports over providers into the run's cumulative compute. `seq` is
//! monotonic per (provider, run): the authority detects gaps and treats a repeated `seq` as
//! the same report (idempotent) or, with different content, as an error.

use runpermit_compute::{FieldError, Flop};
use runpermit_permit::{Jwks, SigningKey, VerifyError, sign_jws, verify_jws};
use serde::{Deserialize, Serialize};

use crate::meter::{MeterMethod, Metered};

/// The header `typ` of a usage report.
pub const USAGE_TYP: &str = "runpermit-usage+jwt";

/// The claims of a usage report. Unknown fields are refused; a change of fields makes a new
/// `typ`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UsageReportClaims {
    /// The reporting provider: its organization id at the authority.
    pub iss: String,
    /// The run the usage belongs to (the permit's `sub`).
    pub sub: String,
    /// The permit the run's jobs ran under (its `jti`).
    pub permit_id: String,
    /// The cluster.
    pub cluster: String,
    /// Sequence number, from 1, increasing by one per report of this provider for this run.
    pub seq: u64,
    /// Interval start (unix seconds, inclusive).
    pub from: i64,
    /// Interval end (unix seconds, exclusive); later than `from`.
    pub to: i64,
    /// When the report was signed (unix seconds).
    pub iat: i64,
    /// Accelerator-seconds in the interval, by accelerator id.
    pub accelerator_seconds: std::collections::BTreeMap<String, f64>,
    /// How `flop` was metered.
    pub method: MeterMethod,
    /// The metered compute in the interval.
    pub flop: Flop,
    /// Its lower bound.
    pub flop_lower: Flop,
    /// Its upper bound.
    pub flop_upper: Flop,
}

impl UsageReportClaims {
    /// A report of `metered` compute by `provider` for run `run_id` under `permit_id`.
    #[allow(clippy::too_many_arguments, reason = "one argument per claim")]
    pub fn new(
        provider: &str,
        run_id: &str,
        permit_id: &str,
        cluster: &str,
        seq: u64,
        (from, to): (i64, i64),
        iat: i64,
        metered: Metered,
    ) -> UsageReportClaims {
        UsageReportClaims {
            iss: provider.to_owned(),
            sub: run_id.to_owned(),
            permit_id: permit_id.to_owned(),
            cluster: cluster.to_owned(),
            seq,
            from,
            to,
            iat,
            accelerator_seconds: metered.accelerator_seconds,
            method: metered.method,
            flop: metered.flop,
            flop_lower: metered.lower,
            flop_upper: metered.upper,
        }
    }

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
            ("sub", &self.sub),
            ("permit_id", &self.permit_id),
            ("cluster", &self.cluster),
        ] {
            if value.trim().is_empty() {
                push(field, "must not be empty".into());
            }
        }
        if self.seq == 0 {
            push("seq", "starts at 1".into());
        }
        if self.to <= self.from {
            push(
                "to",
                format!("must be later than from ({} ≤ {})", self.to, self.from),
            );
        }
        for (id, s) in &self.accelerator_seconds {
            if !(s.is_finite() && *s >= 0.0) {
                push(
                    &format!("accelerator_seconds.{id}"),
                    format!("must be finite and ≥ 0 (got {s})"),
                );
            }
        }
        if !(self.flop_lower <= self.flop && self.flop <= self.flop_upper) {
            push(
                "flop",
                format!(
                    "must lie within its bounds ({} ≤ {} ≤ {})",
                    self.flop_lower, self.flop, self.flop_upper
                ),
            );
        }
        errors
    }
}

/// Why a usage report is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReportError {
    /// The JWS does not verify against the provider's keys.
    #[error("usage report: {0}")]
    Verify(#[from] VerifyError),
    /// The claims are unsound.
    #[error("usage report: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

/// Signs a report with the provider's key. Refuses unsound claims, so that nothing unsound is
/// ever signed.
pub fn sign_usage_report(
    claims: &UsageReportClaims,
    key: &SigningKey,
) -> Result<String, ReportError> {
    let problems = claims.problems();
    if !problems.is_empty() {
        return Err(ReportError::Invalid(problems));
    }
    Ok(sign_jws(USAGE_TYP, claims, key))
}

/// Verifies a report against the provider's published keys.
pub fn verify_usage_report(
    token: &str,
    provider_keys: &Jwks,
) -> Result<UsageReportClaims, ReportError> {
    let (_, claims): (_, UsageReportClaims) = verify_jws(token, USAGE_TYP, provider_keys)?;
    let problems = claims.problems();
    if problems.is_empty() {
        Ok(claims)
    } else {
        Err(ReportError::Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::scheduler_accounting;
    use runpermit_compute::HardwareTable;

    fn report(seq: u64) -> UsageReportClaims {
        let chip = HardwareTable::builtin().lookup("H100 SXM").unwrap();
        let metered = scheduler_accounting(chip, 8.0 * 3600.0).unwrap();
        UsageReportClaims::new(
            "org-cloud",
            "run_1",
            "pmt_1",
            "us-east-1",
            seq,
            (1_000, 4_600),
            4_601,
            metered,
        )
    }

    #[test]
    fn signed_reports_verify_with_the_providers_key_only() {
        let key = SigningKey::generate();
        let token = sign_usage_report(&report(1), &key).unwrap();
        let keys = Jwks::from_keys(&[key.public()]);
        assert_eq!(verify_usage_report(&token, &keys).unwrap(), report(1));
        let other = Jwks::from_keys(&[SigningKey::generate().public()]);
        assert!(matches!(
            verify_usage_report(&token, &other),
            Err(ReportError::Verify(_))
        ));
        // Another type of token with the same claims is not a usage report.
        let retyped = sign_jws("runpermit-permit+jwt", &report(1), &key);
        assert!(verify_usage_report(&retyped, &keys).is_err());
    }

    #[test]
    fn unsound_reports_are_not_signed() {
        let mut bad = report(0);
        bad.to = bad.from;
        bad.iss.clear();
        let err = sign_usage_report(&bad, &SigningKey::generate()).unwrap_err();
        let text = err.to_string();
        for field in ["seq", "to", "iss"] {
            assert!(text.contains(field), "{text}");
        }
    }
}
