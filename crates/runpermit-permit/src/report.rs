//! Usage reports: what a provider metered for one run over one interval, signed with the
//! provider's Ed25519 key as a compact JWS (`typ` `runpermit-usage+jwt`).
//!
//! The authority sums reports over providers into the run's cumulative compute. `seq` is
//! monotonic per (provider, run): the authority detects gaps and treats a repeated `seq` as
//! the same report (idempotent) or, with different content, as an error.
//!
//! What the figures mean, method by method, is runpermit-gate's metering (`meter.rs`); this
//! module is the format: [`MeterMethod`] and [`Metered`] are what a report carries.

use std::collections::BTreeMap;

use runpermit_compute::accounting::{declared_peak, highest_peak, over_time};
use runpermit_compute::{AccountingBasis, FieldError, Flop, HardwareTable, limits, text};
use serde::{Deserialize, Serialize};

use crate::error::VerifyError;
use crate::jwks::Jwks;
use crate::jws::{sign_jws, verify_jws};
use crate::keys::SigningKey;

/// How a figure was metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterMethod {
    /// Allocated accelerator-seconds × the peak at the declared precision × the declared
    /// utilization.
    SchedulerAccounting,
    /// DCGM tensor-pipe activity × the peak at the declared precision.
    DcgmTensorActivity,
    /// NVML busy time × the peak at the declared precision × the declared utilization.
    NvmlUtilization,
}

impl MeterMethod {
    /// The name in reports and the API (`scheduler_accounting`).
    pub fn as_str(self) -> &'static str {
        match self {
            MeterMethod::SchedulerAccounting => "scheduler_accounting",
            MeterMethod::DcgmTensorActivity => "dcgm_tensor_activity",
            MeterMethod::NvmlUtilization => "nvml_utilization",
        }
    }
}

/// A metered amount of compute with its bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metered {
    /// The method.
    pub method: MeterMethod,
    /// Accelerator-seconds by accelerator id (runpermit-compute's table).
    pub accelerator_seconds: BTreeMap<String, f64>,
    /// The central estimate.
    pub flop: Flop,
    /// Lower bound.
    pub lower: Flop,
    /// Upper bound.
    pub upper: Flop,
}

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
    pub accelerator_seconds: BTreeMap<String, f64>,
    /// How `flop` was metered.
    pub method: MeterMethod,
    /// The central estimate of the compute in the interval, counted with the permit's
    /// accounting basis (runpermit-gate's `meter.rs`).
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
        ] {
            if let Some(problem) = text::id_problem(value) {
                push(field, problem);
            }
        }
        if let Some(problem) = text::text_problem(&self.cluster, text::MAX_NAME_CHARS, false) {
            push("cluster", problem);
        }
        if let Err(problem) = limits::REPORT_SEQ.check_count(self.seq) {
            push("seq", problem);
        }
        // i128: `to - from` of two arbitrary i64 cannot overflow there.
        let interval = i128::from(self.to) - i128::from(self.from);
        if interval <= 0 {
            push(
                "to",
                format!("must be later than from ({} ≤ {})", self.to, self.from),
            );
        } else if let Err(problem) = limits::REPORT_INTERVAL_SECONDS.check(interval as f64) {
            push("to", format!("to − from {problem}"));
        }
        // The physical bound: no chip computes faster than its highest dense peak, and no
        // interval holds more accelerator-seconds than the largest cluster can give it.
        let table = HardwareTable::builtin();
        let most_seconds = (interval.max(0) as f64) * limits::ACCELERATORS.max;
        let mut physical_max = 0.0_f64;
        for (id, s) in &self.accelerator_seconds {
            let field = format!("accelerator_seconds.{id}");
            let chip = match text::id_problem(id) {
                Some(problem) => {
                    push("accelerator_seconds", format!("accelerator id {problem}"));
                    continue;
                }
                None => match table.lookup(id) {
                    Ok(chip) => chip,
                    Err(unknown) => {
                        push(&field, format!("{unknown}"));
                        continue;
                    }
                },
            };
            if !(s.is_finite() && *s >= 0.0) {
                push(&field, format!("must be finite and ≥ 0 (got {s})"));
            } else if *s > most_seconds {
                push(
                    &field,
                    format!(
                        "{} accelerator-seconds in {interval} s is more than {} accelerators \
                         running the whole interval",
                        limits::number(*s),
                        limits::number(limits::ACCELERATORS.max)
                    ),
                );
            } else if let Some((_, peak)) = chip.max_peak() {
                physical_max += s * peak.get();
            }
        }
        // A relative tolerance for the rounding of `seconds × peak` summed in another order.
        if self.flop_upper.get() > physical_max * (1.0 + 1e-9) {
            push(
                "flop_upper",
                format!(
                    "{} FLOP is more than the accelerator-seconds reported can compute at the \
                     chips' highest peak ({} FLOP)",
                    limits::number(self.flop_upper.get()),
                    limits::number(physical_max)
                ),
            );
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

impl UsageReportClaims {
    /// Where the report counts less than the permit's accounting `basis` allows: a provider
    /// may count more (a gate without the permit counts at the highest peak), never less.
    ///
    /// - scheduler accounting is a function of the accelerator-seconds and the basis, so its
    ///   central figure may not lie below what the basis gives (its lower bound may: a gate
    ///   that does not hold the permit counts from 0 to the highest peak, which is true if
    ///   uninformative);
    /// - NVML counts busy time as accounting counts allocated time, so its central figure may
    ///   not lie below its upper bound × (peak at the declared precision × utilization) /
    ///   the highest peak;
    /// - DCGM measures utilization: only the general bounds apply ([`Self::problems`]).
    ///
    /// Each problem names its field (`flop`). A relative tolerance of 10⁻⁹
    /// covers the rounding of sums taken in another order.
    pub fn below_basis(&self, basis: Option<&AccountingBasis>) -> Vec<FieldError> {
        let table = HardwareTable::builtin();
        let chips: Vec<_> = self
            .accelerator_seconds
            .iter()
            .filter_map(|(id, s)| table.lookup(id).ok().map(|chip| (chip, *s)))
            .collect();
        let at_least = |value: Flop, least: f64| value.get() >= least * (1.0 - 1e-9);
        let mut errors = Vec::new();
        let mut push = |least: f64, what: &str| {
            errors.push(FieldError::new(
                "flop",
                format!(
                    "{} FLOP is less than {what} under the permit's accounting basis ({} FLOP)",
                    limits::number(self.flop.get()),
                    limits::number(least)
                ),
            ));
        };
        match self.method {
            MeterMethod::SchedulerAccounting => {
                let mut central = 0.0;
                for (chip, seconds) in &chips {
                    let Ok(f) = over_time(chip, *seconds, basis) else {
                        return errors;
                    };
                    central += f.central.get();
                }
                if !at_least(self.flop, central) {
                    push(central, "the accelerator-seconds reported count");
                }
            }
            MeterMethod::NvmlUtilization => {
                if let [(chip, _)] = chips.as_slice()
                    && let (Ok(peak), Ok(highest)) =
                        (declared_peak(chip, basis), highest_peak(chip))
                {
                    let utilization = basis.map_or(1.0, |b| b.utilization);
                    let least = self.flop_upper.get() * peak * utilization / highest;
                    if !at_least(self.flop, least) {
                        push(least, "the busy time its upper bound stands for counts");
                    }
                }
            }
            MeterMethod::DcgmTensorActivity => {}
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

/// A report's claims, which can say everything wrong with them.
pub(crate) trait SoundClaims: Serialize + serde::de::DeserializeOwned {
    /// Everything wrong, each naming its field; empty when sound.
    fn problems(&self) -> Vec<FieldError>;
}

impl SoundClaims for UsageReportClaims {
    fn problems(&self) -> Vec<FieldError> {
        UsageReportClaims::problems(self)
    }
}

/// Signs `claims` as a JWS of `typ` with `key`, refusing unsound claims, so that nothing
/// unsound is ever signed.
pub(crate) fn sign_sound<T: SoundClaims>(
    typ: &str,
    claims: &T,
    key: &SigningKey,
) -> Result<String, ReportError> {
    let problems = claims.problems();
    if !problems.is_empty() {
        return Err(ReportError::Invalid(problems));
    }
    Ok(sign_jws(typ, claims, key))
}

/// Verifies a JWS of `typ` against `keys` and that its claims are sound.
pub(crate) fn verify_sound<T: SoundClaims>(
    token: &str,
    typ: &str,
    keys: &Jwks,
) -> Result<T, ReportError> {
    let (_, claims): (_, T) = verify_jws(token, typ, keys)?;
    let problems = claims.problems();
    if problems.is_empty() {
        Ok(claims)
    } else {
        Err(ReportError::Invalid(problems))
    }
}

/// Signs a report with the provider's key. Refuses unsound claims, so that nothing unsound is
/// ever signed.
pub fn sign_usage_report(
    claims: &UsageReportClaims,
    key: &SigningKey,
) -> Result<String, ReportError> {
    sign_sound(USAGE_TYP, claims, key)
}

/// Verifies a report against the provider's published keys.
pub fn verify_usage_report(
    token: &str,
    provider_keys: &Jwks,
) -> Result<UsageReportClaims, ReportError> {
    verify_sound(token, USAGE_TYP, provider_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight hours of one H100 SXM by scheduler accounting: seconds × its highest peak.
    fn eight_hours() -> Metered {
        let chip = HardwareTable::builtin().lookup("H100 SXM").unwrap();
        let seconds = 8.0 * 3600.0;
        let upper = Flop::new(seconds * chip.max_peak().unwrap().1.get()).unwrap();
        Metered {
            method: MeterMethod::SchedulerAccounting,
            accelerator_seconds: BTreeMap::from([(chip.id.clone(), seconds)]),
            flop: upper,
            lower: Flop::ZERO,
            upper,
        }
    }

    fn report(seq: u64) -> UsageReportClaims {
        let metered = eight_hours();
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
        let retyped = sign_jws(crate::claims::PERMIT_TYP, &report(1), &key);
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

    fn fields(claims: &UsageReportClaims) -> Vec<String> {
        claims.problems().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn reports_may_count_more_than_the_basis_never_less() {
        let basis = AccountingBasis::assumed(runpermit_compute::Precision::Bf16);
        let chip = HardwareTable::builtin().lookup("H100 SXM").unwrap();
        let seconds = 8.0 * 3600.0;
        let figures = over_time(chip, seconds, Some(&basis)).unwrap();
        let mut r = report(1);
        (r.flop_lower, r.flop, r.flop_upper) = (figures.lower, figures.central, figures.upper);
        assert!(r.problems().is_empty());
        assert!(r.below_basis(Some(&basis)).is_empty());
        // At the highest peak with a zero floor (a gate without the permit): more, accepted.
        assert!(report(1).below_basis(Some(&basis)).is_empty());
        // Counted at 30% when 40% is declared: refused, naming `flop`.
        r.flop = figures.lower;
        let problems = r.below_basis(Some(&basis));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "flop");
        assert!(problems[0].message.contains("less than"), "{problems:?}");
        // Without a basis the central figure is the upper bound.
        assert_eq!(r.below_basis(None).len(), 1);
        assert!(report(1).below_basis(None).is_empty());

        // NVML: the central figure must be what the busy time behind the upper bound counts.
        let busy = over_time(chip, 3600.0, Some(&basis)).unwrap();
        let mut n = report(1);
        n.method = MeterMethod::NvmlUtilization;
        (n.flop_lower, n.flop, n.flop_upper) = (busy.lower, busy.central, busy.upper);
        assert!(n.below_basis(Some(&basis)).is_empty());
        n.flop = busy.lower;
        assert_eq!(n.below_basis(Some(&basis))[0].field, "flop");

        // DCGM measures utilization: within its bounds, any figure.
        let mut d = report(1);
        d.method = MeterMethod::DcgmTensorActivity;
        d.flop = Flop::new(1e20).unwrap();
        d.flop_lower = Flop::ZERO;
        assert!(d.below_basis(Some(&basis)).is_empty());
    }

    #[test]
    fn implausible_reports_are_refused_by_field() {
        assert_eq!(fields(&report(1)), Vec::<String>::new());

        let mut r = report(1);
        r.seq = (1 << 63) - 1;
        assert_eq!(fields(&r), ["seq"]);

        let mut r = report(1);
        (r.from, r.to) = (i64::MIN, i64::MAX);
        assert_eq!(fields(&r), ["to"], "no overflow on the interval");
        let mut r = report(1);
        r.to = r.from + 40 * 86_400;
        assert!(
            r.problems()[0].message.contains("2.6784e6 seconds"),
            "{:?}",
            r.problems()
        );

        // One accelerator-second cannot compute 1e24 FLOP.
        let mut r = report(1);
        r.accelerator_seconds = BTreeMap::from([("nvidia-h100-sxm".to_owned(), 1.0)]);
        r.flop_upper = Flop::new(1e24).unwrap();
        assert_eq!(fields(&r), ["flop_upper"]);
        // Nor 1e308, and no sum of such reports can overflow.
        r.flop = Flop::new(1e308).unwrap();
        r.flop_upper = r.flop;
        assert_eq!(fields(&r), ["flop_upper"]);

        // More accelerator-seconds than 10^7 accelerators give an interval.
        let mut r = report(1);
        r.accelerator_seconds = BTreeMap::from([("nvidia-h100-sxm".to_owned(), 1e12)]);
        assert_eq!(
            fields(&r),
            ["accelerator_seconds.nvidia-h100-sxm", "flop_upper"]
        );

        let mut r = report(1);
        let seconds = r.accelerator_seconds.values().sum::<f64>();
        r.accelerator_seconds = BTreeMap::from([("../../etc/passwd".to_owned(), seconds)]);
        let problems = r.problems();
        assert_eq!(problems[0].field, "accelerator_seconds");
        assert!(
            problems[0].message.contains("path separators"),
            "{problems:?}"
        );
        r.accelerator_seconds = BTreeMap::from([("warp-drive-9000".to_owned(), seconds)]);
        assert!(r.problems()[0].message.contains("unknown accelerator"));

        let mut r = report(1);
        r.cluster = "us-east\u{202E}1".to_owned();
        r.sub = "run\u{0}1".to_owned();
        assert_eq!(fields(&r), ["sub", "cluster"]);
    }
}
