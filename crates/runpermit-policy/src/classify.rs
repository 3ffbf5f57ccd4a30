//! Where a plan stands under a policy ([`classify`]: the figure, the tier, whether the
//! estimate is credible, what is missing) and what a permit for it allows
//! ([`permit_terms`], [`tranche_schedule`]).

use runpermit_compute::{AccountingBasis, Estimate, FieldError, Flop};
use serde::{Deserialize, Serialize};

use crate::plan::RunPlan;
use crate::policy::{Decision, Policy, Tier};

/// Most tranches a schedule has; the last one absorbs whatever a finer schedule would have
/// cut further.
pub const MAX_TRANCHES: usize = 64;

/// Where a plan stands under a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The tier's id.
    pub tier: String,
    /// What happens to the application: the tier's decision, or `review` where the
    /// estimate is not credible enough for an exemption or an automatic permit
    /// (`review_reasons`).
    pub decision: Decision,
    /// Distinct approvals needed (for `deny`: to grant the run on appeal); at least 1 for
    /// a review.
    pub approvals_required: u32,
    /// The requirements the plan does not meet: fields absent, commitments not true, a
    /// security level too low. Submission is refused while this is not empty.
    pub missing: Vec<FieldError>,
    /// The policy's version.
    pub policy_version: String,
    /// The figure the tier was chosen by: the highest credible estimate of cumulative
    /// compute ([`Estimate::highest_flop`]: the higher of the methods' central figures, plus
    /// the base model).
    pub flop: Flop,
    /// This run's own share of `flop`, without the base model: what the permit's budget is
    /// computed from.
    #[serde(default)]
    pub run_flop: Flop,
    /// The declared cluster's envelope for this run: accelerators × duration × peak at the
    /// declared precision, at 100% utilization (absent without `[compute]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_flop: Option<Flop>,
    /// Whether the biological-data thresholds applied.
    pub biological_sequence_data: bool,
    /// Why the estimate is not credible as declared: the methods disagree beyond the
    /// policy's factor, operation counting exceeds the cluster's envelope, or the figure is
    /// implausibly small for a cluster whose envelope reaches a higher tier. An exempt or
    /// auto_permit tier then goes to review instead; reviewers see these reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub review_reasons: Vec<String>,
    /// The figure the tier was chosen on: `flop` plus the organization's other permits
    /// within the policy's aggregation window ([`PriorCompute`]); `flop` itself for a plan
    /// whose own figure is exempt, or when there are none.
    #[serde(default)]
    pub tiered_flop: Flop,
    /// Things a reviewer should know: the estimate's range or the cluster's envelope
    /// reaching another tier, the biological-data thresholds, aggregation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What the authority already permitted that a new application adds to: the
/// application-side twin of split-run detection at providers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriorCompute {
    /// The compute of the applicant organization's other permits issued within the policy's
    /// aggregation window: live ones at their budget (or their usage, if higher), finished
    /// ones at their usage.
    pub window_flop: Flop,
    /// Those permits' ids.
    pub window_permits: Vec<String>,
    /// The cumulative compute of the plan's base model as this authority knows it: the
    /// metered usage of the organization's earlier runs of that name, plus their own base
    /// models. Zero when unknown.
    pub lineage_flop: Flop,
    /// Those runs' ids.
    pub lineage_runs: Vec<String>,
}

impl Classification {
    /// The plan meets every requirement of its tier.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Classifies a validated plan with its estimate.
///
/// 1. **The figure**: the highest credible estimate of cumulative compute
///    ([`Estimate::highest_flop`]): the higher of operation counting and the hardware method
///    at the plan's expected utilization (central figures), plus the base model. Neither
///    method's inputs can argue the figure below what the other's inputs say. The
///    utilization range does not move it (the applicant chooses the range), and the
///    envelope at 100% utilization is an upper bound, shown, not a figure (no run reaches
///    it).
/// 2. **The tier**: the last one whose threshold the figure reaches (the biological-data
///    thresholds when `model.biological_sequence_data` is true).
/// 3. **Credibility**: when operation counting and the hardware method differ by more than
///    `estimate.disagreement_factor`, or operation counting (even 10% lower) exceeds the
///    cluster's envelope, or the figure is below `estimate.min_utilization` of an envelope
///    that reaches a higher tier, the inputs contradict each other. The reasons are listed in
///    `review_reasons`, and a tier that would exempt or permit automatically goes to review
///    (at least one approval) instead. A tier whose decision is exempt then also requires
///    what the first permitting tier above it requires, since an approval issues a permit.
/// 4. **What is missing** for the tier (or that permitting tier).
///
/// When the estimate's range or the cluster's envelope reaches into a neighbouring tier, a
/// note says so (and `permit_terms` keeps the budget below the next tier's threshold).
pub fn classify(policy: &Policy, plan: &RunPlan, estimate: &Estimate) -> Classification {
    classify_with_prior(policy, plan, estimate, &PriorCompute::default())
}

/// How much the base model's compute as the authority knows it exceeds what the plan
/// declares (zero when the plan declares at least that much).
fn undeclared_lineage(estimate: &Estimate, prior: &PriorCompute) -> Flop {
    Flop::new(prior.lineage_flop.get() - estimate.base_model_flop.get()).unwrap_or(Flop::ZERO)
}

/// The figures a plan is tiered by, on top of what the authority already permitted.
struct Figures {
    /// How much more the base model used here than the plan declares.
    undeclared: Flop,
    /// The plan's highest credible figure, with the base model as known.
    flop: Flop,
    /// `flop` plus the organization's permits in the window, unless `flop` alone is exempt.
    tiered_flop: Flop,
    /// The tier of `flop` alone.
    own_index: usize,
    /// The tier of `tiered_flop`.
    index: usize,
}

fn figures(policy: &Policy, plan: &RunPlan, estimate: &Estimate, prior: &PriorCompute) -> Figures {
    let bio = plan.model.biological_sequence_data;
    let undeclared = undeclared_lineage(estimate, prior);
    let flop = estimate.highest_flop().saturating_add(undeclared);
    let own_index = policy.tier_index(flop, bio);
    // A plan below every permit threshold is not aggregated: a lab's small experiments stay
    // exempt beside its large runs (many exempt shares of one run are what split-run
    // detection at providers finds).
    let exempt_alone = policy
        .tiers
        .get(own_index)
        .is_some_and(|t| t.decision == Decision::Exempt);
    let tiered_flop = if exempt_alone {
        flop
    } else {
        flop.saturating_add(prior.window_flop)
    };
    Figures {
        undeclared,
        flop,
        tiered_flop,
        own_index,
        index: policy.tier_index(tiered_flop, bio),
    }
}

/// [`classify`], on top of what the authority already permitted:
///
/// 5. **Lineage**: a base model whose earlier runs at this authority used more than the plan
///    declares counts at that figure, and the plan goes to review with the difference shown.
/// 6. **Aggregation**: unless the figure alone is exempt, the tier is chosen on the figure
///    plus the organization's other permits within `aggregation.window_days` (`tiered_flop`),
///    so that one run split into several applications lands in the tier of the whole; a note
///    names the permits when they move the tier.
pub fn classify_with_prior(
    policy: &Policy,
    plan: &RunPlan,
    estimate: &Estimate,
    prior: &PriorCompute,
) -> Classification {
    let bio = plan.model.biological_sequence_data;
    let Figures {
        undeclared,
        flop,
        tiered_flop,
        own_index,
        index,
    } = figures(policy, plan, estimate, prior);
    let run_flop = estimate.highest_run_flop();
    let envelope_flop = estimate.envelope_flop();
    let Some(tier) = policy.tiers.get(index) else {
        // A checked policy has at least one tier; an unchecked empty one exempts nothing.
        return Classification {
            tier: String::new(),
            decision: Decision::Deny,
            approvals_required: 0,
            missing: Vec::new(),
            policy_version: policy.version.clone(),
            flop,
            run_flop,
            envelope_flop,
            biological_sequence_data: bio,
            review_reasons: Vec::new(),
            tiered_flop,
            notes: vec!["the policy has no tiers".to_owned()],
        };
    };
    let mut review_reasons = credibility(policy, estimate, index, bio);
    if undeclared > Flop::ZERO {
        review_reasons.push(format!(
            "the plan declares its base model {:?} at {}, but its runs at this authority ({}) used {}: the base model counts at {} more",
            plan.base_model.as_ref().map_or("", |b| b.name.as_str()),
            estimate.base_model_flop,
            prior.lineage_runs.join(", "),
            prior.lineage_flop,
            undeclared
        ));
    }
    let escalated = !review_reasons.is_empty()
        && matches!(tier.decision, Decision::Exempt | Decision::AutoPermit);
    let (decision, approvals_required) = if escalated {
        (Decision::Review, tier.approvals.max(1))
    } else {
        (tier.decision, tier.approvals)
    };
    // An approval issues a permit: an exempt tier sent to review must meet the requirements
    // of the first tier above it that permits.
    let (requirements, why) = match policy.tiers[index + 1..]
        .iter()
        .find(|t| t.decision != Decision::Exempt)
    {
        Some(permitting) if escalated && tier.decision == Decision::Exempt => (
            permitting,
            format!(
                "required for review: the estimate is not credible enough for an exemption, and an approval grants a permit, which needs what tier {:?} requires (policy {}); or make the plan's figures agree",
                permitting.id, policy.version
            ),
        ),
        _ => (
            tier,
            format!(
                "required for tier {:?} ({}) by policy {}",
                tier.id, tier.decision, policy.version
            ),
        ),
    };
    let missing = missing_requirements(policy, plan, requirements, &why);

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
            "the estimate's high end {} reaches tier {:?} (from {}); the tier is set by the highest credible figure {}, and the permit's budget stops at {}",
            estimate.high,
            next.id,
            next.threshold(bio),
            flop,
            next.threshold(bio)
        ));
    }
    if index > 0 && estimate.low < tier.threshold(bio) {
        notes.push(format!(
            "the estimate's low end {} lies below tier {:?}'s threshold {}; the tier is set by the highest credible figure {}",
            estimate.low,
            tier.id,
            tier.threshold(bio),
            flop
        ));
    }
    if let Some(envelope) = envelope_flop {
        let cumulative = envelope
            .checked_add(estimate.base_model_flop)
            .unwrap_or(envelope);
        let reached = policy.tier_index(cumulative, bio);
        if reached > index {
            let top = &policy.tiers[reached];
            notes.push(format!(
                "the cluster's envelope {} (accelerators × duration × peak at 100% utilization{}) reaches tier {:?} (from {}); the tier is set by the highest credible figure {}",
                cumulative,
                if estimate.base_model_flop > Flop::ZERO {
                    ", plus the base model"
                } else {
                    ""
                },
                top.id,
                top.threshold(bio),
                flop
            ));
        }
    }

    if index > own_index {
        notes.push(format!(
            "aggregation: with the organization's {} other permit(s) of the last {} days ({}: {}), the total {} reaches tier {:?} (from {}); alone this plan's {} would be tier {:?}",
            prior.window_permits.len(),
            policy.aggregation.window_days,
            prior.window_permits.join(", "),
            prior.window_flop,
            tiered_flop,
            tier.id,
            tier.threshold(bio),
            flop,
            policy.tiers[own_index].id
        ));
    }

    Classification {
        tier: tier.id.clone(),
        decision,
        approvals_required,
        missing,
        policy_version: policy.version.clone(),
        flop,
        run_flop,
        envelope_flop,
        biological_sequence_data: bio,
        review_reasons,
        tiered_flop,
        notes,
    }
}

/// Why the estimate's inputs contradict each other: the methods disagree beyond the policy's
/// factor, operation counting exceeds what the declared cluster can do at all, or the figure
/// is implausibly small for a cluster that could reach a higher tier than tier `index`.
fn credibility(policy: &Policy, estimate: &Estimate, index: usize, bio: bool) -> Vec<String> {
    let mut reasons = Vec::new();
    let (Some(ops), Some(hw)) = (&estimate.operation_counting, &estimate.hardware) else {
        return reasons;
    };
    let factor = policy.estimate.disagreement_factor;
    if let Some(ratio) = estimate.method_ratio()
        && (ratio.is_nan() || ratio > factor)
    {
        reasons.push(format!(
            "operation counting ({}) and the hardware method at {:.0}% utilization ({}) disagree by {:.1}x, more than policy {}'s factor of {factor}: the tier is set by the higher figure, and reviewers judge which inputs are right",
            ops.flop,
            hw.utilization * 100.0,
            hw.flop,
            ratio,
            policy.version
        ));
    }
    if ops.low > hw.ceiling_flop {
        reasons.push(format!(
            "operation counting ({}, at least {} within its uncertainty) exceeds the cluster's envelope of {} (accelerators × duration × peak at 100% utilization): the declared accelerators, duration or precision cannot do this run's work",
            ops.flop, ops.low, hw.ceiling_flop
        ));
    }
    let envelope = hw
        .ceiling_flop
        .checked_add(estimate.base_model_flop)
        .unwrap_or(hw.ceiling_flop);
    let floor = policy.estimate.min_utilization;
    let run = estimate.highest_run_flop();
    if let Some(next) = policy.tiers.get(index + 1)
        && envelope >= next.threshold(bio)
        && run.get() < floor * hw.ceiling_flop.get()
    {
        reasons.push(format!(
            "the plan's figure {} is {:.0}% of its cluster's envelope {} (accelerators × duration × peak at 100% utilization), below the {:.0}% that policy {} finds credible, and the envelope reaches tier {:?} (from {}): the declared utilization, epochs or tokens may be understated",
            run,
            run.ratio(hw.ceiling_flop) * 100.0,
            hw.ceiling_flop,
            floor * 100.0,
            policy.version,
            next.id,
            next.threshold(bio)
        ));
    }
    reasons
}

/// The requirements of `tier` that `plan` does not meet, each with `why` (or a more specific
/// message).
fn missing_requirements(
    policy: &Policy,
    plan: &RunPlan,
    tier: &Tier,
    why: &str,
) -> Vec<FieldError> {
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
            push(f, why.to_owned());
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
    missing
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
    /// How the run's compute is counted: the plan's precision and utilization range (the
    /// estimate's defaults when it gave no hardware) and its parameters per token.
    pub accounting: AccountingBasis,
}

/// The terms of a permit for a classified plan at time `now` (unix seconds).
///
/// Budget: the run's own highest credible figure ([`Estimate::highest_run_flop`], the
/// figure [`classify`] uses) × `budget_headroom`, capped so that the lineage's cumulative
/// compute (base model + budget) does not pass the next tier's threshold. The caller
/// decides whether a permit is issued at all (the classification's decision and
/// completeness).
pub fn permit_terms(policy: &Policy, plan: &RunPlan, estimate: &Estimate, now: i64) -> PermitTerms {
    permit_terms_with_prior(policy, plan, estimate, &PriorCompute::default(), now)
}

/// [`permit_terms`] on top of what the authority already permitted (see
/// [`classify_with_prior`]): the budget is capped so that the base model (as known), this run
/// and the organization's other permits within the window do not together pass the next
/// tier's threshold.
pub fn permit_terms_with_prior(
    policy: &Policy,
    plan: &RunPlan,
    estimate: &Estimate,
    prior: &PriorCompute,
    now: i64,
) -> PermitTerms {
    let bio = plan.model.biological_sequence_data;
    let Figures {
        undeclared, index, ..
    } = figures(policy, plan, estimate, prior);
    let headroom = policy.permit.budget_headroom;
    let run = estimate.highest_run_flop();
    let mut budget = run.checked_mul(headroom).unwrap_or(run);
    if let Some(next) = policy.tiers.get(index + 1) {
        let before = estimate.base_model_flop.get() + undeclared.get() + prior.window_flop.get();
        let room = Flop::new(next.threshold(bio).get() - before).unwrap_or(Flop::ZERO);
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
        accounting: AccountingBasis::of_estimate(estimate, Some(plan.active_parameters())),
    }
}
