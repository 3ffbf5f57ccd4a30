//! The run plan, the authority's policy and the application lifecycle.
//!
//! - [`RunPlan`]: what a lab submits (schema `runpermit.plan/v1`, TOML or JSON), its
//!   validation ([`RunPlan::validate`]: every problem at once, named by dotted path), its
//!   compute estimate ([`RunPlan::estimate_input`], [`RunPlan::estimate`]) and its digest
//!   ([`RunPlan::digest`]: SHA-256 of the canonical JSON).
//! - [`Policy`]: the authority's versioned policy file (`data/default-policy.toml`,
//!   [`Policy::builtin`]): tiers by compute, each with a [`Decision`] and requirements, and
//!   how credible an estimate must be ([`EstimatePolicy`]); [`classify`] (by the highest
//!   credible estimate), [`tranche_schedule`] and [`permit_terms`].
//! - [`workflow`]: the application's [`Status`] machine ([`next`]) and the
//!   separation-of-duties rule for approvals ([`approval_outcome`]).
//! - [`inspect`]: Inspect (`inspect_ai`) `.eval` logs parsed from their bytes
//!   ([`inspect::parse_eval_log`]) and the policy's evaluation thresholds on their results.
//! - [`oversight`]: a permitted run's [`RunStatus`] machine ([`run_next`]), tranche
//!   progress and alerts ([`tranche_progress`]), incident categories and split-run
//!   detection ([`split_runs`]).
//!
//! This crate does no IO and reads no clock: the default policy is compiled in, and time is
//! passed in as unix seconds.

pub mod access;
mod classify;
pub mod inspect;
pub mod oversight;
mod plan;
mod policy;
mod timestamp;
mod validate;
pub mod workflow;

pub use classify::{
    Classification, MAX_TRANCHES, PermitTerms, PriorCompute, classify, classify_with_prior,
    permit_terms, permit_terms_with_prior, tranche_schedule,
};
pub use oversight::{
    IncidentCategory, InvalidRunTransition, OVERRUN_CATEGORY, OversightPolicy, RunAction, RunActor,
    RunStatus, SplitRunFlag, TrancheProgress, UnpermittedUse, UsageFigure, UsageFigures,
    next_tranche, operation_count_gap, run_next, split_runs, tranche_progress,
    utilization_above_declared,
};
pub use plan::{
    Affordance, ArchitectureFamily, BOOLEAN_FIELDS, BaseModel, ComputePlan, Data, EvaluationPlan,
    Format, Milestone, Modality, Model, OPTIONAL_FIELDS, PLAN_SCHEMA, ParseError,
    ProviderAllocation, Release, ReleasePlan, Responsibility, RunInfo, RunPlan, Safeguards,
    Schedule, SecurityLevel,
};
pub use policy::{
    AggregationPolicy, BUILTIN_POLICY_TOML, Decision, EstimatePolicy, PermitPolicy, Policy,
    PolicyError, Tier, TokenPolicy, TranchePolicy,
};
pub use timestamp::{TIMESTAMP_FORMS, Timestamp, parse_timestamp};
pub use validate::{MAX_NAME_CHARS, MAX_TEXT_CHARS};
pub use workflow::{
    Action, Approval, ApprovalOutcome, InvalidTransition, Lifecycle, Status, UnknownName,
    after_submit, approval_outcome, next,
};

#[cfg(test)]
mod tests;
