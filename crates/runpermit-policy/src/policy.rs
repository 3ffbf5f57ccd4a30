//! The authority's policy: a versioned TOML file (`data/default-policy.toml`, documented in
//! `docs/policy.md`) with tiers by estimated compute, each tier's decision and requirements,
//! the credibility of estimates, the tranche schedule and the permit's terms. Applying it to a
//! plan is `classify.rs`'s.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use runpermit_compute::{FieldError, Flop, builtin_regimes};
use serde::{Deserialize, Serialize};

use crate::plan::{BOOLEAN_FIELDS, OPTIONAL_FIELDS, SecurityLevel};

/// The policy that ships with runpermit.
pub const BUILTIN_POLICY_TOML: &str = include_str!("../data/default-policy.toml");

/// A policy file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Version printed on every classification and permit (`2026.1`).
    pub version: String,
    /// Display name.
    pub name: String,
    /// What the policy is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Ids of the regulatory presets (runpermit-compute's `regimes.toml`) it follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regimes: Vec<String>,
    /// Tiers in increasing order of threshold (`[[tier]]` in the file).
    #[serde(rename = "tier")]
    pub tiers: Vec<Tier>,
    /// How the budget is released.
    pub tranches: TranchePolicy,
    /// The permit's terms.
    pub permit: PermitPolicy,
    /// How the estimate's methods are weighed against each other (`[estimate]`; defaults
    /// when absent).
    #[serde(default)]
    pub estimate: EstimatePolicy,
    /// How runs are followed while they train (`[oversight]`; defaults when absent).
    #[serde(default)]
    pub oversight: crate::oversight::OversightPolicy,
    /// How structured access to registered models is decided (`[access]`; defaults when
    /// absent).
    #[serde(default)]
    pub access: crate::access::AccessPolicy,
    /// Incident categories and their deadlines (`[[incident_category]]`; the defaults of
    /// [`default_incident_categories`](crate::oversight::default_incident_categories) when
    /// absent).
    #[serde(
        rename = "incident_category",
        default = "crate::oversight::default_incident_categories"
    )]
    pub incident_categories: Vec<crate::oversight::IncidentCategory>,
    /// API tokens' lifetimes (`[tokens]`; defaults when absent).
    #[serde(default)]
    pub tokens: TokenPolicy,
    /// What an application is tiered on besides its own plan (`[aggregation]`; defaults when
    /// absent).
    #[serde(default)]
    pub aggregation: AggregationPolicy,
}

/// One tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Stable identifier (`standard`).
    pub id: String,
    /// What the tier means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The tier starts at this cumulative compute.
    pub min_flop: Flop,
    /// The threshold for runs on mostly biological sequence data; `min_flop` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bio_min_flop: Option<Flop>,
    /// What happens to a complete application in this tier.
    pub decision: Decision,
    /// Distinct reviewers from outside the applicant's organization who must approve.
    #[serde(default)]
    pub approvals: u32,
    /// Plan fields that must be present (paths from [`OPTIONAL_FIELDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_fields: Vec<String>,
    /// Yes/no commitments that must be true (paths from [`BOOLEAN_FIELDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_true: Vec<String>,
    /// Lowest acceptable `safeguards.weights_security_level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_weights_security_level: Option<SecurityLevel>,
}

impl Tier {
    /// The tier's threshold for a run with or without mostly biological data.
    pub fn threshold(&self, biological_sequence_data: bool) -> Flop {
        match self.bio_min_flop {
            Some(bio) if biological_sequence_data => bio,
            _ => self.min_flop,
        }
    }
}

/// `[tranches]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranchePolicy {
    /// Each tranche ends this many times further than the previous one (4.0).
    pub milestone_factor: f64,
    /// Where the first tranche ends.
    pub first_tranche_flop: Flop,
}

/// `[permit]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermitPolicy {
    /// How long a permit lasts from its start.
    pub validity_days: u32,
    /// How long after the plan's `schedule.end` a permit may still last.
    #[serde(default)]
    pub schedule_grace_days: u32,
    /// Clock difference a gate tolerates when checking validity.
    pub clock_skew_seconds: u32,
    /// Budget = the run's own central estimate × this (≥ 1).
    pub budget_headroom: f64,
    /// Providers report usage at least this often.
    pub reporting_interval_seconds: u32,
    /// A status list older than this is stale: gates fail closed for new large jobs.
    pub status_ttl_seconds: u32,
}

/// `[estimate]`: how the figure a plan is classified by is judged credible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimatePolicy {
    /// When operation counting and the hardware method (at the expected utilization) differ
    /// by more than this factor, the application goes to review instead of being exempted
    /// or permitted automatically (1 to 10; default 2).
    #[serde(default = "default_disagreement_factor")]
    pub disagreement_factor: f64,
    /// The lowest utilization of its own cluster that a run is credibly planned at: when
    /// the figure a plan is classified by lies below this fraction of the cluster's envelope
    /// (accelerators × duration × peak) while the envelope reaches a higher tier, the
    /// application goes to review (0 to 1; 0 turns the check off; default 0.15).
    #[serde(default = "default_min_utilization")]
    pub min_utilization: f64,
}

fn default_disagreement_factor() -> f64 {
    2.0
}

fn default_min_utilization() -> f64 {
    0.15
}

impl Default for EstimatePolicy {
    fn default() -> Self {
        EstimatePolicy {
            disagreement_factor: default_disagreement_factor(),
            min_utilization: default_min_utilization(),
        }
    }
}

/// `[aggregation]`: an application is tiered on the compute of the organization's other
/// permits within a window as well as its own, so that one run split into several
/// applications lands in the tier of the whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregationPolicy {
    /// The window, in days before the application, over which the organization's permits
    /// count (1 to 3650; default 90, the window of split-run detection at providers).
    #[serde(default = "default_aggregation_days")]
    pub window_days: u32,
}

fn default_aggregation_days() -> u32 {
    90
}

impl Default for AggregationPolicy {
    fn default() -> Self {
        AggregationPolicy {
            window_days: default_aggregation_days(),
        }
    }
}

/// `[tokens]`: how long API tokens live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenPolicy {
    /// The longest lifetime of a new API token, in days, and the lifetime of one created
    /// without `expires_in_days` (1 to [`TokenPolicy::LIMIT_DAYS`]; default 365). A token is
    /// never created to outlive the token that creates it either.
    #[serde(default = "default_token_max_days")]
    pub max_lifetime_days: u32,
}

impl TokenPolicy {
    /// The highest `max_lifetime_days` a policy may set: ten years.
    pub const LIMIT_DAYS: u32 = 3650;
}

fn default_token_max_days() -> u32 {
    365
}

impl Default for TokenPolicy {
    fn default() -> Self {
        TokenPolicy {
            max_lifetime_days: default_token_max_days(),
        }
    }
}

/// What the policy does with an application in a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// No permit needed: an exemption receipt, no review.
    Exempt,
    /// Notify tier: the permit is issued once the plan is complete, with no approvals.
    AutoPermit,
    /// Reviewers decide; `approvals` distinct reviewers, none from the applicant's
    /// organization, must approve.
    Review,
    /// Denied by default; the applicant may appeal.
    Deny,
}

impl Decision {
    /// Every decision.
    pub const ALL: [Decision; 4] = [
        Decision::Exempt,
        Decision::AutoPermit,
        Decision::Review,
        Decision::Deny,
    ];

    /// The snake_case name used in files and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Exempt => "exempt",
            Decision::AutoPermit => "auto_permit",
            Decision::Review => "review",
            Decision::Deny => "deny",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Decision::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| {
                format!("unknown decision {s:?}: expected exempt, auto_permit, review or deny")
            })
    }
}

/// Why a policy file is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// Not TOML, a wrong type, a missing or an unknown key.
    #[error("policy{}: {}{message}", line.map(|l| format!(" line {l}")).unwrap_or_default(), if field.is_empty() { String::new() } else { format!("{field}: ") })]
    Parse {
        /// Dotted path of the key (`tier[1].min_flop`); empty for syntax errors.
        field: String,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// Readable, but inconsistent: every problem, each naming its key.
    #[error("policy: {}", join(.0))]
    Invalid(Vec<FieldError>),
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Policy {
    /// The default policy compiled into this build (`data/default-policy.toml`).
    pub fn builtin() -> &'static Policy {
        static POLICY: OnceLock<Policy> = OnceLock::new();
        POLICY.get_or_init(|| {
            // Part of the source tree and parsed by a unit test: failure is a build defect.
            Policy::from_toml(BUILTIN_POLICY_TOML).unwrap_or_else(|e| panic!("built-in {e}"))
        })
    }

    /// Reads and checks a policy file. Unknown keys are refused; a readable file is then
    /// checked as a whole and every inconsistency reported at once.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let parse_error = |field: String, e: toml::de::Error| PolicyError::Parse {
            field,
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().trim_end().to_owned(),
        };
        let de = toml::Deserializer::parse(text).map_err(|e| parse_error(String::new(), e))?;
        let policy: Policy = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            parse_error(field, e.into_inner())
        })?;
        policy.check().map_err(PolicyError::Invalid)?;
        Ok(policy)
    }

    /// The tier with this id.
    pub fn tier(&self, id: &str) -> Option<&Tier> {
        self.tiers.iter().find(|t| t.id == id)
    }

    /// The position of the tier that `flop` of cumulative compute falls in: the last one
    /// whose threshold (for biological data where it applies) `flop` reaches.
    pub fn tier_index(&self, flop: Flop, biological_sequence_data: bool) -> usize {
        self.tiers
            .iter()
            .rposition(|t| flop >= t.threshold(biological_sequence_data))
            .unwrap_or(0)
    }

    fn check(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut push = |field: String, message: String| {
            errors.push(FieldError {
                field,
                message,
                suggestions: Vec::new(),
            })
        };
        if self.version.trim().is_empty() {
            push(
                "version".into(),
                "must not be empty (such as \"2026.1\")".into(),
            );
        }
        if self.name.trim().is_empty() {
            push("name".into(), "must not be empty".into());
        }
        let known: Vec<&str> = builtin_regimes().iter().map(|r| r.id.as_str()).collect();
        let mut seen = BTreeSet::new();
        for (i, r) in self.regimes.iter().enumerate() {
            if !known.contains(&r.as_str()) {
                push(
                    format!("regimes[{i}]"),
                    format!("unknown regime {r:?}: expected one of {}", known.join(", ")),
                );
            } else if !seen.insert(r) {
                push(format!("regimes[{i}]"), format!("{r:?} is listed twice"));
            }
        }

        if self.tiers.is_empty() {
            push(
                "tier".into(),
                "at least one [[tier]] is needed, the first with min_flop = 0".into(),
            );
        }
        let mut ids = BTreeSet::new();
        for (i, t) in self.tiers.iter().enumerate() {
            let at = format!("tier[{i}]");
            if t.id.is_empty() || t.id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                push(
                    format!("{at}.id"),
                    format!("must be a non-empty id without spaces (got {:?})", t.id),
                );
            } else if !ids.insert(t.id.as_str()) {
                push(format!("{at}.id"), format!("{:?} is used twice", t.id));
            }
            if i == 0 {
                if t.min_flop != Flop::ZERO {
                    push(
                        format!("{at}.min_flop"),
                        format!(
                            "the first tier must start at 0 so that every run has a tier (got {})",
                            t.min_flop
                        ),
                    );
                }
                if t.bio_min_flop.is_some_and(|b| b != Flop::ZERO) {
                    push(
                        format!("{at}.bio_min_flop"),
                        "the first tier must start at 0 (or leave bio_min_flop out)".into(),
                    );
                }
            } else {
                let prev = &self.tiers[i - 1];
                if t.min_flop <= prev.min_flop {
                    push(
                        format!("{at}.min_flop"),
                        format!(
                            "tiers must be in increasing order: {} is not above tier {:?}'s {}",
                            t.min_flop, prev.id, prev.min_flop
                        ),
                    );
                }
                if t.threshold(true) <= prev.threshold(true) {
                    push(
                        format!("{at}.bio_min_flop"),
                        format!(
                            "biological-data thresholds must increase too: {} is not above tier {:?}'s {}",
                            t.threshold(true),
                            prev.id,
                            prev.threshold(true)
                        ),
                    );
                }
            }
            if let Some(bio) = t.bio_min_flop
                && bio > t.min_flop
            {
                push(
                    format!("{at}.bio_min_flop"),
                    format!(
                        "lowers the threshold for biological data: must not exceed min_flop {} (got {bio})",
                        t.min_flop
                    ),
                );
            }
            let approvals_ok = match t.decision {
                Decision::Exempt | Decision::AutoPermit => t.approvals == 0,
                Decision::Review | Decision::Deny => (1..=2).contains(&t.approvals),
            };
            if !approvals_ok {
                let expected = match t.decision {
                    Decision::Exempt | Decision::AutoPermit => "0",
                    Decision::Review => "1 or 2",
                    Decision::Deny => "1 or 2 (the approvals that grant the run on appeal)",
                };
                push(
                    format!("{at}.approvals"),
                    format!(
                        "must be {expected} for decision {} (got {})",
                        t.decision, t.approvals
                    ),
                );
            }
            let mut fields = BTreeSet::new();
            for (j, f) in t.required_fields.iter().enumerate() {
                if !OPTIONAL_FIELDS.contains(&f.as_str()) {
                    push(
                        format!("{at}.required_fields[{j}]"),
                        format!(
                            "{f:?} is not an optional run plan field; known: {}",
                            OPTIONAL_FIELDS.join(", ")
                        ),
                    );
                } else if !fields.insert(f) {
                    push(
                        format!("{at}.required_fields[{j}]"),
                        format!("{f:?} is listed twice"),
                    );
                }
            }
            for (j, f) in t.required_true.iter().enumerate() {
                if !BOOLEAN_FIELDS.contains(&f.as_str()) {
                    push(
                        format!("{at}.required_true[{j}]"),
                        format!(
                            "{f:?} is not a yes/no run plan field; known: {}",
                            BOOLEAN_FIELDS.join(", ")
                        ),
                    );
                }
            }
        }

        let tr = &self.tranches;
        if !(tr.milestone_factor.is_finite() && tr.milestone_factor > 1.0) {
            push(
                "tranches.milestone_factor".into(),
                format!(
                    "must be a number above 1, such as 4.0 for a milestone at every 4x (got {})",
                    tr.milestone_factor
                ),
            );
        }
        if tr.first_tranche_flop == Flop::ZERO {
            push(
                "tranches.first_tranche_flop".into(),
                "must be positive, such as 1e25".into(),
            );
        }

        let p = &self.permit;
        if p.validity_days == 0 {
            push("permit.validity_days".into(), "must be at least 1".into());
        }
        if !(p.budget_headroom.is_finite() && (1.0..=10.0).contains(&p.budget_headroom)) {
            push(
                "permit.budget_headroom".into(),
                format!(
                    "must be a factor from 1 to 10, such as 1.1 for 10% above the estimate (got {})",
                    p.budget_headroom
                ),
            );
        }
        if p.reporting_interval_seconds == 0 {
            push(
                "permit.reporting_interval_seconds".into(),
                "must be at least 1".into(),
            );
        }
        if p.status_ttl_seconds == 0 {
            push(
                "permit.status_ttl_seconds".into(),
                "must be at least 1".into(),
            );
        }

        let factor = self.estimate.disagreement_factor;
        if !(factor.is_finite() && (1.0..=10.0).contains(&factor)) {
            push(
                "estimate.disagreement_factor".into(),
                format!(
                    "must be a factor from 1 to 10, such as 2 for methods more than twice apart (got {factor})"
                ),
            );
        }
        let floor = self.estimate.min_utilization;
        if !(floor.is_finite() && (0.0..=1.0).contains(&floor)) {
            push(
                "estimate.min_utilization".into(),
                format!(
                    "must be a fraction from 0 to 1, such as 0.15 for 15% of the cluster's peak (got {floor})"
                ),
            );
        }

        let days = self.tokens.max_lifetime_days;
        if !(1..=TokenPolicy::LIMIT_DAYS).contains(&days) {
            push(
                "tokens.max_lifetime_days".into(),
                format!(
                    "must be from 1 to {} days, such as 365 (got {days})",
                    TokenPolicy::LIMIT_DAYS
                ),
            );
        }

        let days = self.aggregation.window_days;
        if !(1..=3650).contains(&days) {
            push(
                "aggregation.window_days".into(),
                format!("must be from 1 to 3650 days, such as 90 (got {days})"),
            );
        }

        for (field, message) in self.access.problems() {
            push(field, message);
        }

        let o = &self.oversight;
        let mut previous = 0;
        for (i, pct) in o.alert_percents.iter().enumerate() {
            if !(1..=100).contains(pct) || *pct <= previous {
                push(
                    format!("oversight.alert_percents[{i}]"),
                    format!("must be a percentage from 1 to 100, above the one before (got {pct})"),
                );
            }
            previous = *pct;
        }
        if !(o.overrun_tolerance.is_finite() && (0.0..=1.0).contains(&o.overrun_tolerance)) {
            push(
                "oversight.overrun_tolerance".into(),
                format!(
                    "must be a fraction from 0 to 1, such as 0.05 for 5% (got {})",
                    o.overrun_tolerance
                ),
            );
        }
        for (field, value) in [
            (
                "oversight.utilization_flag_margin",
                o.utilization_flag_margin,
            ),
            (
                "oversight.operation_count_tolerance",
                o.operation_count_tolerance,
            ),
        ] {
            if !(value.is_finite() && (0.0..=10.0).contains(&value)) {
                push(
                    field.into(),
                    format!("must be a fraction from 0 to 10, such as 0.5 for 50% (got {value})"),
                );
            }
        }
        if o.usage_summary_interval_seconds == 0 {
            push(
                "oversight.usage_summary_interval_seconds".into(),
                "must be at least 1".into(),
            );
        }
        if o.split_run_window_days == 0 {
            push(
                "oversight.split_run_window_days".into(),
                "must be at least 1".into(),
            );
        }
        let mut evaluators = BTreeSet::new();
        for (i, e) in o.evaluators.iter().enumerate() {
            if e.is_empty() || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
                push(
                    format!("oversight.evaluators[{i}]"),
                    format!(
                        "must be an evaluator organization's id without spaces, such as \"org_01…\" (got {e:?})"
                    ),
                );
            } else if !evaluators.insert(e.as_str()) {
                push(
                    format!("oversight.evaluators[{i}]"),
                    format!("{e:?} is listed twice"),
                );
            }
        }
        for (i, t) in o.evaluation_threshold.iter().enumerate() {
            for (field, message) in t.problems(&format!("oversight.evaluation_threshold[{i}]")) {
                push(field, message);
            }
        }
        let mut ids = BTreeSet::new();
        for (i, c) in self.incident_categories.iter().enumerate() {
            let at = format!("incident_category[{i}]");
            if c.id.trim().is_empty() || c.id.chars().any(|ch| ch.is_whitespace()) {
                push(
                    format!("{at}.id"),
                    "must be a word such as weights_stolen".into(),
                );
            } else if !ids.insert(c.id.as_str()) {
                push(format!("{at}.id"), format!("{:?} is listed twice", c.id));
            }
            if c.report_within_hours == 0 {
                push(
                    format!("{at}.report_within_hours"),
                    "must be at least 1".into(),
                );
            }
            if c.follow_up_within_hours == 0 {
                push(
                    format!("{at}.follow_up_within_hours"),
                    "must be at least 1".into(),
                );
            }
        }
        if !ids.contains(crate::oversight::OVERRUN_CATEGORY) {
            push(
                "incident_category".into(),
                format!(
                    "must include {:?}: the authority opens such incidents by itself",
                    crate::oversight::OVERRUN_CATEGORY
                ),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
