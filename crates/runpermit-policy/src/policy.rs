//! The authority's policy: a versioned TOML file (`data/default-policy.toml`, documented in
//! `docs/policy.md`) with tiers by estimated compute, each tier's decision and requirements,
//! the tranche schedule and the permit's terms.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use runpermit_compute::{Estimate, FieldError, Flop, builtin_regimes};
use serde::{Deserialize, Serialize};

use crate::plan::{BOOLEAN_FIELDS, OPTIONAL_FIELDS, RunPlan, SecurityLevel};

/// The policy that ships with runpermit.
pub const BUILTIN_POLICY_TOML: &str = include_str!("../data/default-policy.toml");

/// Most tranches a schedule has; the last one absorbs whatever a finer schedule would have
/// cut further.
pub const MAX_TRANCHES: usize = 64;

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
    /// How runs are followed while they train (`[oversight]`; defaults when absent).
    #[serde(default)]
    pub oversight: crate::oversight::OversightPolicy,
    /// Incident categories and their deadlines (`[[incident_category]]`; the defaults of
    /// [`default_incident_categories`](crate::oversight::default_incident_categories) when
    /// absent).
    #[serde(
        rename = "incident_category",
        default = "crate::oversight::default_incident_categories"
    )]
    pub incident_categories: Vec<crate::oversight::IncidentCategory>,
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

/// Where a plan stands under a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The tier's id.
    pub tier: String,
    /// The tier's decision.
    pub decision: Decision,
    /// Distinct approvals needed (for `deny`: to grant the run on appeal).
    pub approvals_required: u32,
    /// The tier's requirements the plan does not meet: fields absent, commitments not
    /// true, a security level too low. Submission is refused while this is not empty.
    pub missing: Vec<FieldError>,
    /// The policy's version.
    pub policy_version: String,
    /// The figure the tier was chosen by: the estimate's central cumulative compute.
    pub flop: Flop,
    /// Whether the biological-data thresholds applied.
    pub biological_sequence_data: bool,
    /// Things a reviewer should know: the estimate's range reaching another tier, the
    /// biological-data thresholds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Classification {
    /// The plan meets every requirement of its tier.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Classifies a validated plan with its estimate: the tier by the estimate's central figure
/// of cumulative compute (`estimate.flop`, base model included), with the biological-data
/// thresholds when `model.biological_sequence_data` is true; then the tier's requirements.
///
/// The range is not used to pick the tier; when it reaches into a neighbouring tier, a note
/// says so (and `permit_terms` keeps the budget below the next tier's threshold).
pub fn classify(policy: &Policy, plan: &RunPlan, estimate: &Estimate) -> Classification {
    let bio = plan.model.biological_sequence_data;
    let index = policy.tier_index(estimate.flop, bio);
    let Some(tier) = policy.tiers.get(index) else {
        // A checked policy has at least one tier; an unchecked empty one exempts nothing.
        return Classification {
            tier: String::new(),
            decision: Decision::Deny,
            approvals_required: 0,
            missing: Vec::new(),
            policy_version: policy.version.clone(),
            flop: estimate.flop,
            biological_sequence_data: bio,
            notes: vec!["the policy has no tiers".to_owned()],
        };
    };
    let why = format!(
        "required for tier {:?} ({}) by policy {}",
        tier.id, tier.decision, policy.version
    );
    let mut missing: Vec<FieldError> = Vec::new();
    let mut push = |field: &str, message: String| {
        if !missing.iter().any(|m| m.field == field) {
            missing.push(FieldError {
                field: field.to_owned(),
                message,
                suggestions: Vec::new(),
            });
        }
    };
    for f in &tier.required_fields {
        if plan.has_field(f) != Some(true) {
            push(f, why.clone());
        }
    }
    for f in &tier.required_true {
        if plan.is_true(f) != Some(true) {
            push(
                f,
                format!(
                    "must be true for tier {:?} by policy {}",
                    tier.id, policy.version
                ),
            );
        }
    }
    if let Some(min) = tier.min_weights_security_level {
        let field = "safeguards.weights_security_level";
        match plan.safeguards.weights_security_level {
            Some(level) if level >= min => {}
            Some(level) => {
                missing.retain(|m| m.field != field);
                missing.push(FieldError {
                    field: field.to_owned(),
                    message: format!(
                        "{level} is below the {min} that tier {:?} requires (policy {})",
                        tier.id, policy.version
                    ),
                    suggestions: Vec::new(),
                });
            }
            None => {
                let message = format!("{min} or higher {why}");
                match missing.iter_mut().find(|m| m.field == field) {
                    Some(listed) => listed.message = message,
                    None => missing.push(FieldError {
                        field: field.to_owned(),
                        message,
                        suggestions: Vec::new(),
                    }),
                }
            }
        }
    }

    let mut notes = Vec::new();
    if bio && tier.threshold(true) != tier.min_flop {
        notes.push(format!(
            "biological sequence data: tier {:?} starts at {} instead of {}",
            tier.id,
            tier.threshold(true),
            tier.min_flop
        ));
    }
    if let Some(next) = policy.tiers.get(index + 1)
        && estimate.high >= next.threshold(bio)
    {
        notes.push(format!(
            "the estimate's high end {} reaches tier {:?} (from {}); the tier is set by the central figure {}, and the permit's budget stops at {}",
            estimate.high,
            next.id,
            next.threshold(bio),
            estimate.flop,
            next.threshold(bio)
        ));
    }
    if index > 0 && estimate.low < tier.threshold(bio) {
        notes.push(format!(
            "the estimate's low end {} lies below tier {:?}'s threshold {}; the tier is set by the central figure {}",
            estimate.low,
            tier.id,
            tier.threshold(bio),
            estimate.flop
        ));
    }

    Classification {
        tier: tier.id.clone(),
        decision: tier.decision,
        approvals_required: tier.approvals,
        missing,
        policy_version: policy.version.clone(),
        flop: estimate.flop,
        biological_sequence_data: bio,
        notes,
    }
}

/// The cumulative ends of a permit's tranches for a budget of this run's own compute:
/// `first_tranche_flop`, then × `milestone_factor` while below the budget, and the budget
/// itself last. Budget 3e26 with 1e25 and 4 gives 1e25, 4e25, 1.6e26, 3e26; a budget at or
/// below the first end is one tranche; a zero budget has none. At most [`MAX_TRANCHES`].
pub fn tranche_schedule(policy: &Policy, budget: Flop) -> Vec<Flop> {
    if budget == Flop::ZERO {
        return Vec::new();
    }
    let factor = policy.tranches.milestone_factor;
    let mut ends = Vec::new();
    let mut end = policy.tranches.first_tranche_flop;
    while end < budget && end > Flop::ZERO && ends.len() < MAX_TRANCHES - 1 {
        ends.push(end);
        match end.checked_mul(factor) {
            Ok(next) if next > end => end = next,
            _ => break,
        }
    }
    ends.push(budget);
    ends
}

/// What a permit for this plan would allow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermitTerms {
    /// Providers and their clusters, from the plan.
    pub providers: Vec<(String, Vec<String>)>,
    /// `compute.accelerators` (0 when the plan has no compute section).
    pub max_accelerators: u64,
    /// This run's own compute allowance (what gates meter; the base model not included).
    pub flop_budget: Flop,
    /// Cumulative tranche ends, in this run's own compute; the last is `flop_budget`.
    pub tranches: Vec<Flop>,
    /// Not before (unix seconds): max(now, schedule start).
    pub nbf: i64,
    /// Expires (unix seconds): nbf + validity, but not beyond schedule end + grace, and
    /// never before `nbf` (`exp == nbf`: the schedule has passed; issue nothing).
    pub exp: i64,
    /// The policy's version.
    pub policy_version: String,
    /// Usage reports are due at least this often (seconds).
    pub reporting_interval_seconds: u32,
}

/// The terms of a permit for a classified plan at time `now` (unix seconds).
///
/// Budget: the run's own central estimate (`estimate.run_flop`) × `budget_headroom`,
/// capped so that the lineage's cumulative compute (base model + budget) does not pass the
/// next tier's threshold. The caller decides whether a permit is issued at all (the
/// classification's decision and completeness).
pub fn permit_terms(policy: &Policy, plan: &RunPlan, estimate: &Estimate, now: i64) -> PermitTerms {
    let bio = plan.model.biological_sequence_data;
    let index = policy.tier_index(estimate.flop, bio);
    let headroom = policy.permit.budget_headroom;
    let mut budget = estimate
        .run_flop
        .checked_mul(headroom)
        .unwrap_or(estimate.run_flop);
    if let Some(next) = policy.tiers.get(index + 1) {
        let room = Flop::new(next.threshold(bio).get() - estimate.base_model_flop.get())
            .unwrap_or(Flop::ZERO);
        if budget > room {
            budget = room;
        }
    }
    let tranches = tranche_schedule(policy, budget);

    let nbf = plan.start_unix().map_or(now, |start| start.max(now));
    let day = 86_400i64;
    let mut exp = nbf.saturating_add(i64::from(policy.permit.validity_days) * day);
    if let Some(end) = plan.end_unix() {
        exp = exp.min(end.saturating_add(i64::from(policy.permit.schedule_grace_days) * day));
    }
    PermitTerms {
        providers: plan
            .providers
            .iter()
            .map(|p| (p.provider.clone(), p.clusters.clone()))
            .collect(),
        max_accelerators: plan.compute.as_ref().map_or(0, |c| c.accelerators),
        flop_budget: budget,
        tranches,
        nbf,
        exp: exp.max(nbf),
        policy_version: policy.version.clone(),
        reporting_interval_seconds: policy.permit.reporting_interval_seconds,
    }
}
