//! Permitted runs as they train: the run, its usage by provider and report by report, the
//! reasons given for transitions, and milestone reports.
//!
//! `ProviderUsage`, `RunUsage`, `UsageReportView` and `UsageCursor` keep their fields in
//! alphabetical order: the order these bodies had when the server built them as JSON maps,
//! so their bytes did not change.

use std::collections::BTreeMap;

use runpermit_compute::Flop;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::foreign::{
    FigureSchema, FlopSchema, MilestoneStatusSchema, RunActionSchema, RunStatusSchema,
};

/// A run as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    /// The run id (the permit's `sub`).
    pub id: String,
    /// Its permit.
    pub permit_id: String,
    /// The holding organization.
    pub org_id: String,
    /// active, milestone_due, paused, suspended, revoked, terminated or completed.
    #[schema(value_type = RunStatusSchema)]
    pub status: String,
    /// Why it has this status.
    pub reason: String,
    /// Since when (RFC 3339).
    pub status_since: String,
    /// Whether the permit is in good standing (only `active`).
    pub in_good_standing: bool,
    /// The highest tranche released (1 for the first).
    pub tranche: i64,
    /// The cumulative FLOP the run may reach now (the released tranche's end).
    #[schema(value_type = FigureSchema)]
    pub released_flop: f64,
    /// The permit's whole budget.
    #[schema(value_type = FigureSchema)]
    pub budget_flop: f64,
    /// Metered cumulative FLOP, summed over providers: the central estimate.
    #[schema(value_type = FigureSchema)]
    pub cumulative_flop: f64,
    /// The sum of the providers' lower bounds.
    #[schema(value_type = FigureSchema)]
    pub cumulative_lower_flop: f64,
    /// The sum of the providers' upper bounds.
    #[schema(value_type = FigureSchema)]
    pub cumulative_upper_flop: f64,
    /// Which of the three the policy judges tranches on: `central`, `lower` or `upper`.
    pub tranche_figure: String,
    /// That figure as a percentage of the released tranche.
    #[schema(value_type = FigureSchema)]
    pub tranche_percent: f64,
    /// The utilization measured by tensor-pipe activity (DCGM) at the permit's declared
    /// precision, a fraction; absent when no such report was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_utilization: Option<f64>,
    /// The highest tranche alert raised (0, 80, 100).
    pub alerted_percent: i64,
    /// A pause or suspension is under appeal.
    pub appeal_pending: bool,
    /// What the run's status allows next, whoever may take it (reviewers, its developer,
    /// its evaluators).
    #[schema(value_type = Vec<RunActionSchema>)]
    pub allowed_actions: Vec<String>,
    /// What the caller may do to it now: the allowed actions its role, organization and
    /// assignment permit.
    #[schema(value_type = Vec<RunActionSchema>)]
    pub your_actions: Vec<String>,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// `GET /v1/runs/{id}`: the run with its usage by provider and its milestone reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunDetail {
    /// The run.
    #[serde(flatten)]
    pub run: RunView,
    /// Cumulative usage by provider id.
    pub usage_by_provider: BTreeMap<String, ProviderUsage>,
    /// The run's milestone reports, oldest first.
    pub milestones: Vec<MilestoneView>,
    /// How the run's compute is counted, from its signed permit: the declared precision,
    /// utilization and range, parameters per token. Absent for permits signed before claim-set
    /// version 3 (their compute counts at the chips' highest peaks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub accounting: Option<runpermit_compute::AccountingBasis>,
    /// What the authority noticed about the run, oldest first.
    pub flags: Vec<RunFlagView>,
}

/// Something the authority noticed about a run, raised once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunFlagView {
    /// `usage_before_permit`, `usage_after_expiry`, `upper_bound_past_tranche`,
    /// `utilization_above_declared`, `operation_count_gap` or `evaluation_threshold_crossed`.
    pub kind: String,
    /// What it is about within the run (`permit`, `tranche 2`, a milestone id).
    pub subject: String,
    /// When it was raised (RFC 3339).
    pub raised_at: String,
    /// In words, with the figures.
    pub message: String,
    /// The figures.
    pub details: Value,
}

/// One provider's cumulative usage of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProviderUsage {
    /// Metered FLOP, summed over its reports.
    #[schema(value_type = FigureSchema)]
    pub flop: f64,
    /// The sum of its reports' lower bounds.
    #[schema(value_type = FigureSchema)]
    pub flop_lower: f64,
    /// The sum of its reports' upper bounds.
    #[schema(value_type = FigureSchema)]
    pub flop_upper: f64,
    /// Start of its first reported interval (unix seconds).
    pub from: i64,
    /// Its highest report sequence number.
    pub max_seq: i64,
    /// Sequence numbers up to `max_seq` that have not arrived.
    pub missing_reports: i64,
    /// Reports stored.
    pub reports: i64,
    /// End of its last reported interval (unix seconds).
    pub through: i64,
}

/// `GET /v1/runs/{id}/usage`: a page of a run's usage reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RunUsage {
    /// Cumulative usage by provider id.
    pub by_provider: BTreeMap<String, ProviderUsage>,
    /// Metered cumulative FLOP, summed over providers: the central estimate.
    #[schema(value_type = FigureSchema)]
    pub cumulative_flop: f64,
    /// The sum of the providers' lower bounds.
    #[schema(value_type = FigureSchema)]
    pub cumulative_lower_flop: f64,
    /// The sum of the providers' upper bounds.
    #[schema(value_type = FigureSchema)]
    pub cumulative_upper_flop: f64,
    /// Where the next page starts (pass both as query parameters); null on the last page.
    pub next: Option<UsageCursor>,
    /// The reports, by provider and sequence number.
    pub reports: Vec<UsageReportView>,
    /// The run.
    pub run_id: String,
}

/// Where a page of usage reports ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageCursor {
    /// The last report's provider.
    pub after_provider: String,
    /// The last report's sequence number.
    pub after_seq: i64,
}

/// One stored usage report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageReportView {
    /// Accelerator-seconds by accelerator id, as reported.
    #[schema(value_type = BTreeMap<String, f64>)]
    pub accelerator_seconds: Value,
    /// The cluster it ran on.
    pub cluster: String,
    /// The FLOP estimate for the interval.
    #[schema(value_type = FigureSchema)]
    pub flop: f64,
    /// Its lower bound.
    #[schema(value_type = FigureSchema)]
    pub flop_lower: f64,
    /// Its upper bound.
    #[schema(value_type = FigureSchema)]
    pub flop_upper: f64,
    /// Interval start (unix seconds).
    pub from: i64,
    /// How the provider measured.
    pub method: String,
    /// The reporting provider.
    pub provider_id: String,
    /// When the authority received it (RFC 3339).
    pub received_at: String,
    /// The provider's report number for this run.
    pub seq: i64,
    /// Interval end (unix seconds).
    pub to: i64,
    /// The signed report, as received (compact JWS).
    pub token: String,
}

/// `GET /v1/runs/{id}/usage` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Page after this provider id (with `after_seq`).
    pub after_provider: Option<String>,
    /// Page after this sequence number of `after_provider`.
    pub after_seq: Option<i64>,
    /// Reports per page (1 to 1000; default 100).
    pub limit: Option<i64>,
}

/// Body of a run transition, and of a milestone's acceptance or rejection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// Why: audited, logged publicly, shown on the status list to gates and job owners.
    pub reason: String,
}

/// `POST /v1/runs/{id}/milestones` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMilestone {
    /// `sha256:<64 hex>` of the checkpoint evaluated.
    pub checkpoint_digest: String,
    /// Cumulative FLOP at the checkpoint; default: the run's metered cumulative now.
    #[serde(default)]
    #[schema(value_type = Option<FlopSchema>)]
    pub cumulative_flop: Option<Flop>,
    /// Training tokens processed up to the checkpoint: 6 × the permit's parameters per token ×
    /// tokens (operation counting) is set beside the metered figure for the evaluator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<f64>,
    /// The evaluation results (any JSON object; the evaluation plan says what). Optional when
    /// `inspect_logs` are given; its key `inspect` is reserved for their extracted results.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub evals: Value,
    /// Inspect (`inspect_ai`) `.eval` log files, base64 (standard alphabet), at most 8 MiB
    /// each: the authority extracts each file's digest, task, model and scores itself and
    /// adds them to the report's evaluation results under `inspect`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inspect_logs: Vec<String>,
}

/// A milestone report as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MilestoneView {
    /// Id.
    pub id: String,
    /// The run.
    pub run_id: String,
    /// The tranche whose end this milestone is.
    pub tranche: i64,
    /// submitted, accepted or rejected.
    #[schema(value_type = MilestoneStatusSchema)]
    pub status: String,
    /// `sha256:<hex>` of the checkpoint evaluated.
    pub checkpoint_digest: String,
    /// Cumulative FLOP at the checkpoint.
    #[schema(value_type = FigureSchema)]
    pub cumulative_flop: f64,
    /// Training tokens processed up to the checkpoint, as reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<f64>,
    /// The run's metered central figure when the report was submitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FigureSchema>)]
    pub metered_flop: Option<f64>,
    /// Operation counting: 6 × the permit's parameters per token × `tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<FigureSchema>)]
    pub operation_count_flop: Option<f64>,
    /// How far operation counting and the metered figure lie apart, as a factor ≥ 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_count_factor: Option<f64>,
    /// The evaluation results, as submitted; under `inspect`, the results the authority
    /// extracted from the report's Inspect logs (`digest`, `task`, `model`, `status`,
    /// `scores[]` with each scorer's `metrics`).
    pub evals: Value,
    /// Who submitted it.
    pub submitted_by: String,
    /// When (RFC 3339).
    pub submitted_at: String,
    /// The evaluator who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// The evaluator's organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_org: Option<String>,
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
