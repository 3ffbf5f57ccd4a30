//! Log entries, version 1: what the authority appends, and its canonical encoding.
//!
//! Each entry is one JSON object: a common envelope `{"v": 1, "type": "<type>", "at":
//! <unix seconds>}` plus the fields of its type, written in canonical form (RFC 8785 JSON
//! Canonicalization Scheme: members sorted by key, no whitespace, integers in plain digits,
//! other numbers as ECMAScript prints them; see `docs/log.md`). Every field is always
//! present; an absent optional value is `null`. Confidential application content is never
//! logged, only its digest.
//!
//! [`decode`] refuses unknown versions, types and fields, and any bytes that are not
//! exactly the canonical encoding of what they decode to, so an entry that was re-encoded
//! or altered but still parses is caught.
//!
//! Compatibility: adding, removing or changing the meaning of a field makes a new version.

use runpermit_compute::{FieldError, Flop};

use crate::error::EntryError;

use crate::jcs::{self, Value};

mod decode;
pub use decode::decode;

/// The entry format version this crate writes and reads: the envelope's `v`.
pub const ENTRY_VERSION: u32 = 1;

/// The longest encoded entry: 65,534 bytes. Entry bundles prefix each entry with a
/// big-endian `u16` length; entries stay strictly below its 65,535 maximum.
pub const MAX_ENTRY_BYTES: usize = 65_534;

/// The largest integer an entry holds (2^53 − 1): every integer is exact in any JSON
/// reader (RFC 7493 I-JSON).
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// A review decision on an application (the `decision` field of a `decision` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DecisionKind {
    /// `approved`: the run may proceed; a permit follows.
    Approved,
    /// `denied`: the run may not proceed.
    Denied,
    /// `exempt`: below every threshold; an exemption receipt follows, no permit.
    Exempt,
    /// `changes_requested`: the lab must revise the plan.
    ChangesRequested,
    /// `withdrawn`: the lab withdrew the application.
    Withdrawn,
    /// `appealed`: the lab appealed a denial.
    Appealed,
}

impl DecisionKind {
    /// Every decision, in the order above.
    pub const ALL: [DecisionKind; 6] = [
        DecisionKind::Approved,
        DecisionKind::Denied,
        DecisionKind::Exempt,
        DecisionKind::ChangesRequested,
        DecisionKind::Withdrawn,
        DecisionKind::Appealed,
    ];

    /// The value written in the entry (`approved`, `changes_requested`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Approved => "approved",
            DecisionKind::Denied => "denied",
            DecisionKind::Exempt => "exempt",
            DecisionKind::ChangesRequested => "changes_requested",
            DecisionKind::Withdrawn => "withdrawn",
            DecisionKind::Appealed => "appealed",
        }
    }

    /// The decision written as `text`, if any.
    pub fn parse(text: &str) -> Option<DecisionKind> {
        DecisionKind::ALL.into_iter().find(|d| d.as_str() == text)
    }
}

/// One logged event. The doc comment of each variant and field is the specification of the
/// entry type and field of the same (snake_case) name; see `docs/log.md` for examples.
///
/// Identifiers (`*_id`, `tier`, `policy_version`, `model_name`) are non-empty and contain
/// no control characters. Digests are `sha256:` and 64 lowercase hex digits. Times are unix
/// seconds between 0 and 2^53 − 1. FLOP are counts as `runpermit-compute` defines them.
#[derive(Clone, Debug, PartialEq)]
pub enum LogEntry {
    /// `application_submitted`: an application was submitted. Commits to the confidential
    /// run plan by digest; the public fields are in the clear.
    ApplicationSubmitted {
        /// The application's id at the authority.
        application_id: String,
        /// The applying organization's id.
        org_id: String,
        /// `sha256:<hex>` digest of the run plan's canonical JSON (`runpermit-policy`
        /// `digest`), so the lab can later prove what it submitted.
        plan_digest: String,
        /// The policy tier the estimate fell into.
        tier: String,
        /// The central compute estimate, in FLOP.
        estimated_flop: Flop,
        /// The policy version the application was classified under.
        policy_version: String,
    },
    /// `decision`: a decision on an application, by policy or by reviewers.
    Decision {
        /// The application decided on.
        application_id: String,
        /// What was decided.
        decision: DecisionKind,
        /// The application's policy tier.
        tier: String,
        /// The policy version the decision was made under.
        policy_version: String,
        /// The public reason, if one is given (`null` otherwise).
        reason: Option<String>,
    },
    /// `permit_issued`: a permit was signed. A permit is valid only with a proof that this
    /// entry is in the log.
    PermitIssued {
        /// The permit's id (its JWT `jti`).
        permit_id: String,
        /// The application it was granted on.
        application_id: String,
        /// The training run it authorizes (its JWT `sub`).
        run_id: String,
        /// The holding organization's id.
        holder_org_id: String,
        /// The permit itself: the compact JWS, three base64url parts joined by dots.
        token: String,
        /// The total FLOP budget.
        flop_budget: Flop,
        /// Valid from (unix seconds).
        nbf: i64,
        /// Valid until (unix seconds), later than `nbf`.
        exp: i64,
        /// The policy version the permit was decided under.
        policy_version: String,
    },
    /// `tranche_released`: the next slice of a permit's budget was released after a
    /// milestone evaluation.
    TrancheReleased {
        /// The permit.
        permit_id: String,
        /// Its run.
        run_id: String,
        /// The tranche released (1 for the first).
        tranche: u32,
        /// Cumulative FLOP up to which the run may now compute.
        flop: Flop,
    },
    /// `run_paused`: a run was paused (for example a milestone is due, or an incident).
    RunPaused {
        /// The permit.
        permit_id: String,
        /// The run.
        run_id: String,
        /// Why, in words.
        reason: String,
    },
    /// `run_resumed`: a paused run may continue.
    RunResumed {
        /// The permit.
        permit_id: String,
        /// The run.
        run_id: String,
        /// Why, in words.
        reason: String,
    },
    /// `run_revoked`: the permit was revoked; the run must stop for good.
    RunRevoked {
        /// The permit.
        permit_id: String,
        /// The run.
        run_id: String,
        /// Why, in words.
        reason: String,
    },
    /// `run_completed`: the run finished.
    RunCompleted {
        /// The permit.
        permit_id: String,
        /// The run.
        run_id: String,
        /// How it ended, in words.
        reason: String,
    },
    /// `usage_summary`: the run's cumulative metered compute across providers.
    UsageSummary {
        /// The run.
        run_id: String,
        /// Cumulative FLOP reported by all providers.
        cumulative_flop: Flop,
        /// How many providers reported.
        providers: u32,
        /// Usage is summed up to this time (unix seconds).
        through: i64,
    },
    /// `model_registered`: the run's resulting model was registered.
    ModelRegistered {
        /// The run that trained it.
        run_id: String,
        /// The model's public name.
        model_name: String,
        /// `sha256:<hex>` digest of the registered weights checkpoint.
        checkpoint_digest: String,
    },
    /// `access_granted`: a structured-access grant was signed. A grant is served only with a
    /// proof that this entry is in the log.
    AccessGranted {
        /// The grant's id (its JWT `jti`).
        grant_id: String,
        /// The registered model it grants access to.
        model_id: String,
        /// The grantee organization's id.
        grantee_org_id: String,
        /// The access tier (`api_sampling`, `logprobs`, `finetune`, `activations`, `weights`).
        tier: String,
        /// The grant itself: the compact JWS.
        token: String,
    },
    /// `access_changed`: a grant was suspended, reinstated or revoked.
    AccessChanged {
        /// The grant's id.
        grant_id: String,
        /// `suspended`, `reinstated` or `revoked` (final).
        status: String,
        /// Why, in words.
        reason: String,
    },
}

/// The access tiers an `access_granted` entry may name, shallowest first.
pub const ACCESS_TIERS: [&str; 5] = [
    "api_sampling",
    "logprobs",
    "finetune",
    "activations",
    "weights",
];

/// What an `access_changed` entry may say became of a grant.
pub const ACCESS_CHANGES: [&str; 3] = ["suspended", "reinstated", "revoked"];

impl LogEntry {
    /// Every entry type, as written in `type`.
    pub const TYPES: [&'static str; 12] = [
        "application_submitted",
        "decision",
        "permit_issued",
        "tranche_released",
        "run_paused",
        "run_resumed",
        "run_revoked",
        "run_completed",
        "usage_summary",
        "model_registered",
        "access_granted",
        "access_changed",
    ];

    /// The entry's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            LogEntry::ApplicationSubmitted { .. } => "application_submitted",
            LogEntry::Decision { .. } => "decision",
            LogEntry::PermitIssued { .. } => "permit_issued",
            LogEntry::TrancheReleased { .. } => "tranche_released",
            LogEntry::RunPaused { .. } => "run_paused",
            LogEntry::RunResumed { .. } => "run_resumed",
            LogEntry::RunRevoked { .. } => "run_revoked",
            LogEntry::RunCompleted { .. } => "run_completed",
            LogEntry::UsageSummary { .. } => "usage_summary",
            LogEntry::ModelRegistered { .. } => "model_registered",
            LogEntry::AccessGranted { .. } => "access_granted",
            LogEntry::AccessChanged { .. } => "access_changed",
        }
    }

    /// The type-specific members, unsorted.
    fn members(&self) -> Vec<(&'static str, Value<'_>)> {
        use Value::{Float, Int, Null, Str};
        match self {
            LogEntry::ApplicationSubmitted {
                application_id,
                org_id,
                plan_digest,
                tier,
                estimated_flop,
                policy_version,
            } => vec![
                ("application_id", Str(application_id)),
                ("org_id", Str(org_id)),
                ("plan_digest", Str(plan_digest)),
                ("tier", Str(tier)),
                ("estimated_flop", Float(estimated_flop.get())),
                ("policy_version", Str(policy_version)),
            ],
            LogEntry::Decision {
                application_id,
                decision,
                tier,
                policy_version,
                reason,
            } => vec![
                ("application_id", Str(application_id)),
                ("decision", Str(decision.as_str())),
                ("tier", Str(tier)),
                ("policy_version", Str(policy_version)),
                ("reason", reason.as_deref().map_or(Null, Str)),
            ],
            LogEntry::PermitIssued {
                permit_id,
                application_id,
                run_id,
                holder_org_id,
                token,
                flop_budget,
                nbf,
                exp,
                policy_version,
            } => vec![
                ("permit_id", Str(permit_id)),
                ("application_id", Str(application_id)),
                ("run_id", Str(run_id)),
                ("holder_org_id", Str(holder_org_id)),
                ("token", Str(token)),
                ("flop_budget", Float(flop_budget.get())),
                ("nbf", Int(*nbf)),
                ("exp", Int(*exp)),
                ("policy_version", Str(policy_version)),
            ],
            LogEntry::TrancheReleased {
                permit_id,
                run_id,
                tranche,
                flop,
            } => vec![
                ("permit_id", Str(permit_id)),
                ("run_id", Str(run_id)),
                ("tranche", Int(i64::from(*tranche))),
                ("flop", Float(flop.get())),
            ],
            LogEntry::RunPaused {
                permit_id,
                run_id,
                reason,
            }
            | LogEntry::RunResumed {
                permit_id,
                run_id,
                reason,
            }
            | LogEntry::RunRevoked {
                permit_id,
                run_id,
                reason,
            }
            | LogEntry::RunCompleted {
                permit_id,
                run_id,
                reason,
            } => vec![
                ("permit_id", Str(permit_id)),
                ("run_id", Str(run_id)),
                ("reason", Str(reason)),
            ],
            LogEntry::UsageSummary {
                run_id,
                cumulative_flop,
                providers,
                through,
            } => vec![
                ("run_id", Str(run_id)),
                ("cumulative_flop", Float(cumulative_flop.get())),
                ("providers", Int(i64::from(*providers))),
                ("through", Int(*through)),
            ],
            LogEntry::ModelRegistered {
                run_id,
                model_name,
                checkpoint_digest,
            } => vec![
                ("run_id", Str(run_id)),
                ("model_name", Str(model_name)),
                ("checkpoint_digest", Str(checkpoint_digest)),
            ],
            LogEntry::AccessGranted {
                grant_id,
                model_id,
                grantee_org_id,
                tier,
                token,
            } => vec![
                ("grant_id", Str(grant_id)),
                ("model_id", Str(model_id)),
                ("grantee_org_id", Str(grantee_org_id)),
                ("tier", Str(tier)),
                ("token", Str(token)),
            ],
            LogEntry::AccessChanged {
                grant_id,
                status,
                reason,
            } => vec![
                ("grant_id", Str(grant_id)),
                ("status", Str(status)),
                ("reason", Str(reason)),
            ],
        }
    }

    /// Every value problem (not JSON types: those are the decoder's), each named by field.
    fn problems(&self, at: i64) -> Vec<FieldError> {
        let mut p = Problems::default();
        p.time("at", at);
        match self {
            LogEntry::ApplicationSubmitted {
                application_id,
                org_id,
                plan_digest,
                tier,
                policy_version,
                ..
            } => {
                p.id("application_id", application_id);
                p.id("org_id", org_id);
                p.digest("plan_digest", plan_digest);
                p.id("tier", tier);
                p.id("policy_version", policy_version);
            }
            LogEntry::Decision {
                application_id,
                tier,
                policy_version,
                ..
            } => {
                p.id("application_id", application_id);
                p.id("tier", tier);
                p.id("policy_version", policy_version);
            }
            LogEntry::PermitIssued {
                permit_id,
                application_id,
                run_id,
                holder_org_id,
                token,
                nbf,
                exp,
                policy_version,
                ..
            } => {
                p.id("permit_id", permit_id);
                p.id("application_id", application_id);
                p.id("run_id", run_id);
                p.id("holder_org_id", holder_org_id);
                p.token("token", token);
                p.time("nbf", *nbf);
                p.time("exp", *exp);
                if exp <= nbf {
                    p.push("exp", format!("must be later than nbf ({nbf}), got {exp}"));
                }
                p.id("policy_version", policy_version);
            }
            LogEntry::TrancheReleased {
                permit_id,
                run_id,
                tranche,
                ..
            } => {
                p.id("permit_id", permit_id);
                p.id("run_id", run_id);
                if *tranche == 0 {
                    p.push(
                        "tranche",
                        "must be 1 or more (1 is the first tranche)".into(),
                    );
                }
            }
            LogEntry::RunPaused {
                permit_id, run_id, ..
            }
            | LogEntry::RunResumed {
                permit_id, run_id, ..
            }
            | LogEntry::RunRevoked {
                permit_id, run_id, ..
            }
            | LogEntry::RunCompleted {
                permit_id, run_id, ..
            } => {
                p.id("permit_id", permit_id);
                p.id("run_id", run_id);
            }
            LogEntry::UsageSummary {
                run_id, through, ..
            } => {
                p.id("run_id", run_id);
                p.time("through", *through);
            }
            LogEntry::ModelRegistered {
                run_id,
                model_name,
                checkpoint_digest,
            } => {
                p.id("run_id", run_id);
                p.id("model_name", model_name);
                p.digest("checkpoint_digest", checkpoint_digest);
            }
            LogEntry::AccessGranted {
                grant_id,
                model_id,
                grantee_org_id,
                tier,
                token,
            } => {
                p.id("grant_id", grant_id);
                p.id("model_id", model_id);
                p.id("grantee_org_id", grantee_org_id);
                if !ACCESS_TIERS.contains(&tier.as_str()) {
                    p.push(
                        "tier",
                        format!("must be one of {} (got {tier:?})", ACCESS_TIERS.join(", ")),
                    );
                }
                p.token("token", token);
            }
            LogEntry::AccessChanged {
                grant_id,
                status,
                reason,
            } => {
                p.id("grant_id", grant_id);
                if !ACCESS_CHANGES.contains(&status.as_str()) {
                    p.push(
                        "status",
                        format!(
                            "must be one of {} (got {status:?})",
                            ACCESS_CHANGES.join(", ")
                        ),
                    );
                }
                p.id("reason", reason);
            }
        }
        p.0
    }
}

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn push(&mut self, field: &str, message: String) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message,
            suggestions: Vec::new(),
        });
    }

    fn id(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.push(field, "must not be empty".into());
        } else if value.chars().any(char::is_control) {
            self.push(field, "must not contain control characters".into());
        }
    }

    fn digest(&mut self, field: &str, value: &str) {
        let ok = value.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if !ok {
            self.push(
                field,
                format!("must be \"sha256:\" and 64 lowercase hex digits, got {value:?}"),
            );
        }
    }

    fn time(&mut self, field: &str, value: i64) {
        if !(0..=MAX_SAFE_INTEGER).contains(&value) {
            self.push(
                field,
                format!("must be unix seconds between 0 and 2^53-1, got {value}"),
            );
        }
    }

    fn token(&mut self, field: &str, value: &str) {
        let parts: Vec<&str> = value.split('.').collect();
        let ok = parts.len() == 3
            && parts.iter().all(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            self.push(
                field,
                "must be a compact JWS: three base64url parts joined by '.'".into(),
            );
        }
    }
}

/// The canonical encoding of `entry` appended at `at` (unix seconds): the bytes to log.
///
/// Refuses invalid field values (all at once) and encodings of more than
/// [`MAX_ENTRY_BYTES`].
pub fn encode(entry: &LogEntry, at: i64) -> Result<Vec<u8>, EntryError> {
    let problems = entry.problems(at);
    if !problems.is_empty() {
        return Err(EntryError::Invalid(problems));
    }
    let mut members = entry.members();
    members.push(("v", Value::Int(i64::from(ENTRY_VERSION))));
    members.push(("type", Value::Str(entry.type_name())));
    members.push(("at", Value::Int(at)));
    let bytes = jcs::write_object(&mut members);
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::TooLarge { size: bytes.len() });
    }
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests;
