//! `[access]`: how the authority decides structured access to registered models (docs/access.md):
//! how many reviewers approve each tier, from which tier the model's developer must consent,
//! and the pre-deployment evaluation access granted automatically at each milestone report.

use serde::{Deserialize, Serialize};

/// The access tiers, shallowest first (the names of runpermit-permit's `AccessTier`).
pub const ACCESS_TIERS: [&str; 5] = [
    "api_sampling",
    "logprobs",
    "finetune",
    "activations",
    "weights",
];

/// The rank of `tier` among [`ACCESS_TIERS`] (0 for `api_sampling`), or `None` when it is no
/// tier.
pub fn tier_rank(tier: &str) -> Option<usize> {
    ACCESS_TIERS.iter().position(|t| *t == tier)
}

/// `[access]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicy {
    /// Reviewer approvals an application for `api_sampling` needs (default 1).
    #[serde(default = "one")]
    pub approvals: u32,
    /// Tiers from this one up need `deeper_approvals` instead (default `logprobs`).
    #[serde(default = "logprobs")]
    pub deeper_from: String,
    /// Approvals a tier from `deeper_from` up needs (default 2).
    #[serde(default = "two")]
    pub deeper_approvals: u32,
    /// From this tier up the model's developer must consent; below it the developer may
    /// object, and the authority decides (default `logprobs`).
    #[serde(default = "logprobs")]
    pub developer_consent_from: String,
    /// The longest grant, in days (default 365).
    #[serde(default = "year")]
    pub max_grant_days: u32,
    /// The rate every grant allows: at most `rate_count` requests per `rate_period_seconds`,
    /// with bursts of `rate_burst` (defaults 600 per 60 s, bursts of 20).
    #[serde(default = "default_burst")]
    pub rate_burst: u64,
    /// See `rate_burst`.
    #[serde(default = "default_count")]
    pub rate_count: u64,
    /// See `rate_burst`.
    #[serde(default = "minute")]
    pub rate_period_seconds: u64,
    /// Grantees report their use this often (default 86,400 s).
    #[serde(default = "day_seconds")]
    pub usage_report_interval_seconds: u64,
    /// Days the developer may review a publication before it appears (default 30).
    #[serde(default = "thirty")]
    pub publication_review_days: u64,
    /// Hours within which a grantee reports an incident (default 72).
    #[serde(default = "seventy_two")]
    pub incident_report_hours: u64,
    /// Evaluator organizations (ids at the authority) that get an `api_sampling` grant to each
    /// checkpoint a milestone report names, for the evaluation window, without applying
    /// (default none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluators: Vec<String>,
    /// How long an evaluation grant lasts, in days (default 30).
    #[serde(default = "thirty_days")]
    pub evaluation_window_days: u32,
    /// The tokens an evaluation grant allows (default 10^8).
    #[serde(default = "hundred_million")]
    pub evaluation_tokens: u64,
}

fn one() -> u32 {
    1
}
fn two() -> u32 {
    2
}
fn logprobs() -> String {
    "logprobs".to_owned()
}
fn year() -> u32 {
    365
}
fn default_burst() -> u64 {
    20
}
fn default_count() -> u64 {
    600
}
fn minute() -> u64 {
    60
}
fn day_seconds() -> u64 {
    86_400
}
fn thirty() -> u64 {
    30
}
fn seventy_two() -> u64 {
    72
}
fn thirty_days() -> u32 {
    30
}
fn hundred_million() -> u64 {
    100_000_000
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy {
            approvals: one(),
            deeper_from: logprobs(),
            deeper_approvals: two(),
            developer_consent_from: logprobs(),
            max_grant_days: year(),
            rate_burst: default_burst(),
            rate_count: default_count(),
            rate_period_seconds: minute(),
            usage_report_interval_seconds: day_seconds(),
            publication_review_days: thirty(),
            incident_report_hours: seventy_two(),
            evaluators: Vec::new(),
            evaluation_window_days: thirty_days(),
            evaluation_tokens: hundred_million(),
        }
    }
}

impl AccessPolicy {
    /// The reviewer approvals an application for `tier` needs.
    pub fn approvals_for(&self, tier: &str) -> u32 {
        match (tier_rank(tier), tier_rank(&self.deeper_from)) {
            (Some(t), Some(from)) if t >= from => self.deeper_approvals,
            _ => self.approvals,
        }
    }

    /// Whether an application for `tier` needs the model developer's consent.
    pub fn consent_required(&self, tier: &str) -> bool {
        match (tier_rank(tier), tier_rank(&self.developer_consent_from)) {
            (Some(t), Some(from)) => t >= from,
            _ => true,
        }
    }

    /// Every problem, named under `access.`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push =
            |field: &str, message: String| out.push((format!("access.{field}"), message));
        for (field, value) in [
            ("deeper_from", &self.deeper_from),
            ("developer_consent_from", &self.developer_consent_from),
        ] {
            if tier_rank(value).is_none() {
                push(
                    field,
                    format!("must be one of {} (got {value:?})", ACCESS_TIERS.join(", ")),
                );
            }
        }
        for (field, value) in [
            ("approvals", self.approvals),
            ("deeper_approvals", self.deeper_approvals),
        ] {
            if !(1..=10).contains(&value) {
                push(field, format!("must be from 1 to 10 (got {value})"));
            }
        }
        if !(1..=731).contains(&self.max_grant_days) {
            push(
                "max_grant_days",
                format!("must be from 1 to 731 days (got {})", self.max_grant_days),
            );
        }
        if !(1..=self.max_grant_days.max(1)).contains(&self.evaluation_window_days) {
            push(
                "evaluation_window_days",
                format!(
                    "must be from 1 to max_grant_days ({}) (got {})",
                    self.max_grant_days, self.evaluation_window_days
                ),
            );
        }
        if !(1..=86_400).contains(&self.rate_period_seconds) {
            push(
                "rate_period_seconds",
                format!("must be from 1 to 86400 (got {})", self.rate_period_seconds),
            );
        }
        for (field, value) in [
            ("rate_burst", self.rate_burst),
            ("rate_count", self.rate_count),
            ("evaluation_tokens", self.evaluation_tokens),
        ] {
            if value == 0 {
                push(field, "must be at least 1".to_owned());
            }
        }
        for (i, e) in self.evaluators.iter().enumerate() {
            if let Some(problem) = runpermit_types::text::id_problem(e) {
                push(&format!("evaluators[{i}]"), problem);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeper_tiers_need_more_review_and_consent() {
        let p = AccessPolicy::default();
        assert_eq!(p.approvals_for("api_sampling"), 1);
        assert_eq!(p.approvals_for("logprobs"), 2);
        assert_eq!(p.approvals_for("weights"), 2);
        assert!(!p.consent_required("api_sampling"));
        assert!(p.consent_required("finetune"));
        assert!(p.problems().is_empty());
        let bad = AccessPolicy {
            deeper_from: "root".into(),
            approvals: 0,
            evaluators: vec!["a b".into()],
            ..AccessPolicy::default()
        };
        let fields: Vec<String> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(
            fields,
            [
                "access.deeper_from",
                "access.approvals",
                "access.evaluators[0]"
            ]
        );
    }
}
