//! The run plan: what a lab submits when it applies for a training run (schema
//! `runpermit.plan/v1`, documented field by field in `docs/run-plan.md`).
//!
//! The schema only asks for what every run must say (what model, how much data) and checks
//! shapes, units and ranges (every number within its physically plausible range,
//! `runpermit_compute::limits`). Everything else (cluster, providers, schedule, safeguards,
//! release plan, responsibility profile) is optional here and demanded per tier by the
//! authority's policy (`Tier::required_fields`), so that a small exempt run can apply with
//! little.

use std::fmt;
use std::str::FromStr;

use runpermit_compute::{
    Estimate, EstimateInput, FieldError, Flop, HardwareInput, HardwareTable, Precision, Regime,
    SyntheticData,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::timestamp::Timestamp;

mod count;
mod parse;

pub use parse::{Format, ParseError};

/// Version tag of the run plan's shape; `schema` must carry it.
pub const PLAN_SCHEMA: &str = "runpermit.plan/v1";

/// A training run's plan, as the applicant wrote it.
///
/// Field order here is the order of the canonical JSON that [`RunPlan::digest`] hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPlan {
    /// [`PLAN_SCHEMA`].
    pub schema: String,
    /// The run's name and description.
    pub run: RunInfo,
    /// The model being trained.
    pub model: Model,
    /// The training data.
    pub data: Data,
    /// The cluster (hardware method). Required by tier, not by the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute: Option<ComputePlan>,
    /// Compute providers and their clusters that will run it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderAllocation>,
    /// When the run starts and ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// For fine-tunes: the model this run continues, with its lineage's compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model: Option<BaseModel>,
    /// Security, evaluation and shutdown commitments.
    #[serde(default, skip_serializing_if = "Safeguards::is_empty")]
    pub safeguards: Safeguards,
    /// What happens to the model after training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Release>,
    /// The developer's safety framework and practices.
    #[serde(default, skip_serializing_if = "Responsibility::is_empty")]
    pub responsibility: Responsibility,
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// Short name of the run, unique within the applicant's organization by convention.
    pub name: String,
    /// What the run is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Architecture family.
    pub architecture_family: ArchitectureFamily,
    /// Total parameters (a count: `405e9` or `"405B"`).
    #[serde(deserialize_with = "count::required")]
    pub parameters: f64,
    /// Parameters active per token; required for `moe_transformer`.
    #[serde(
        default,
        deserialize_with = "count::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub active_parameters: Option<f64>,
    /// What the model takes and produces.
    pub modality: Vec<Modality>,
    /// The training data is mostly biological sequence data (lower tier thresholds).
    #[serde(default)]
    pub biological_sequence_data: bool,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// Tokens in the training data, one pass.
    #[serde(deserialize_with = "count::required")]
    pub tokens: f64,
    /// Passes over the data (default 1; 0.001 to 10^4).
    #[serde(default = "one")]
    pub epochs: f64,
    /// Training examples (documents, sequences), for information.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<u64>,
    /// Active parameters of a model generating synthetic data for this run.
    #[serde(
        default,
        deserialize_with = "count::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub synthetic_generator_parameters: Option<f64>,
    /// Tokens that model generates.
    #[serde(
        default,
        deserialize_with = "count::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub synthetic_tokens: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// `[compute]`: the cluster, for the hardware method and the permit's accelerator cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputePlan {
    /// Accelerator name or alias from the hardware table (`H100 SXM`).
    pub accelerator: String,
    /// Number of accelerators (1 to 10^7); the permit's maximum.
    pub accelerators: u64,
    /// Wall-clock training time in days (0.01 to 3650).
    pub duration_days: f64,
    /// Expected model FLOP utilization, a fraction from 0.01 to 1.
    pub expected_utilization: f64,
    /// Low end of the utilization range (give both ends or neither).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_low: Option<f64>,
    /// High end of the utilization range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_high: Option<f64>,
    /// Training precision (default bf16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
    /// Further compute attributed to the run (RL rollouts, ...), in FLOP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_flop: Option<Flop>,
}

/// `[[providers]]`: one compute provider and the clusters it will use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderAllocation {
    /// The provider's organization id at the authority.
    pub provider: String,
    /// Cluster names at that provider.
    pub clusters: Vec<String>,
}

/// `[schedule]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// When training starts (RFC 3339 date or date-time).
    pub start: Timestamp,
    /// When training ends at the latest.
    pub end: Timestamp,
}

/// `[base_model]`, for fine-tunes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseModel {
    /// The base model's name.
    pub name: String,
    /// Cumulative compute of the base model's whole lineage.
    pub cumulative_flop: Flop,
}

/// `[safeguards]`. Every field is optional in the schema; tiers demand them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Safeguards {
    /// Security level protecting the weights (RAND SL1–SL5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights_security_level: Option<SecurityLevel>,
    /// The incident response plan (text or a URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_response: Option<String>,
    /// The developer can stop the run and all copies of the model completely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_shutdown_capability: Option<bool>,
    /// Planned affordances of the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affordances: Vec<Affordance>,
    /// Evaluations at compute milestones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_plan: Option<EvaluationPlan>,
}

impl Safeguards {
    /// Nothing declared.
    pub fn is_empty(&self) -> bool {
        *self == Safeguards::default()
    }
}

/// `[safeguards.evaluation_plan]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationPlan {
    /// What is evaluated, by whom, and what result pauses the run.
    pub description: String,
    /// Evaluation points, by cumulative compute, in increasing order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub milestones: Vec<Milestone>,
}

/// One evaluation point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milestone {
    /// This run's own compute (as the providers meter it, from zero; a base model's
    /// compute not included) at which the evaluations run.
    pub at_flop: Flop,
    /// Names of the evaluations.
    pub evaluations: Vec<String>,
}

/// `[release]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// How the model will be made available.
    pub plan: ReleasePlan,
}

/// `[responsibility]`: the developer's responsibility profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responsibility {
    /// Public URL of the developer's safety framework.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_framework_url: Option<String>,
    /// SHA-256 of the framework document at that URL (64 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_framework_sha256: Option<String>,
    /// Declared practices (red-teaming, staged release, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub practices: Vec<String>,
}

impl Responsibility {
    /// Nothing declared.
    pub fn is_empty(&self) -> bool {
        *self == Responsibility::default()
    }
}

/// Defines a closed set of snake_case names with `as_str`, `Display`, `FromStr` and `ALL`.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in plans and JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let known: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        format!("unknown value {s:?}: expected one of {}", known.join(", "))
                    })
            }
        }
    };
}

names! {
    /// `model.architecture_family`.
    ArchitectureFamily {
        /// Every parameter is used for every token.
        DenseTransformer = "dense_transformer",
        /// Mixture of experts: `active_parameters` per token.
        MoeTransformer = "moe_transformer",
        /// Anything else; operation counting then is a rough guide.
        Other = "other",
    }
}

names! {
    /// One entry of `model.modality`.
    Modality {
        /// Natural language.
        Text = "text",
        /// Images.
        Image = "image",
        /// Audio and speech.
        Audio = "audio",
        /// Video.
        Video = "video",
        /// Source code.
        Code = "code",
        /// DNA, RNA or protein sequences.
        BiologicalSequence = "biological_sequence",
        /// Anything else.
        Other = "other",
    }
}

names! {
    /// Weights security level (RAND, *Securing AI Model Weights*, 2024): SL1 stops amateur
    /// attempts, SL5 the most capable state actors. Ordered: `SL1 < SL5`.
    SecurityLevel {
        /// Amateur attempts.
        Sl1 = "SL1",
        /// Professional opportunistic efforts.
        Sl2 = "SL2",
        /// Cybercrime syndicates and insider threats.
        Sl3 = "SL3",
        /// Standard operations by leading cyber-capable institutions.
        Sl4 = "SL4",
        /// Top-priority operations by the most capable nation states.
        Sl5 = "SL5",
    }
}

names! {
    /// One entry of `safeguards.affordances`: what the deployed model will be able to do.
    Affordance {
        /// Calls tools and functions.
        ToolUse = "tool_use",
        /// Reaches the internet.
        InternetAccess = "internet_access",
        /// Runs code it writes.
        CodeExecution = "code_execution",
        /// Operates a computer's interface.
        ComputerUse = "computer_use",
        /// Acts as an agent over long horizons without a person approving each step.
        AutonomousAgents = "autonomous_agents",
        /// Anything else (describe it in the evaluation plan).
        Other = "other",
        /// None: text (or other media) in, text out. Alone in the list.
        None = "none",
    }
}

names! {
    /// `release.plan`.
    ReleasePlan {
        /// Internal use only.
        Closed = "closed",
        /// Available through an API; weights stay with the developer.
        Api = "api",
        /// Weights published.
        OpenWeights = "open_weights",
    }
}

/// Paths a policy may list in `required_fields`: the plan fields that are optional in the
/// schema. A list counts as present when it has an entry; a section when it is given.
pub const OPTIONAL_FIELDS: &[&str] = &[
    "run.description",
    "model.active_parameters",
    "data.examples",
    "data.synthetic_tokens",
    "compute",
    "compute.utilization_low",
    "compute.utilization_high",
    "compute.precision",
    "compute.additional_flop",
    "providers",
    "schedule",
    "base_model",
    "safeguards.weights_security_level",
    "safeguards.incident_response",
    "safeguards.full_shutdown_capability",
    "safeguards.affordances",
    "safeguards.evaluation_plan",
    "safeguards.evaluation_plan.milestones",
    "release",
    "release.plan",
    "responsibility.safety_framework_url",
    "responsibility.safety_framework_sha256",
    "responsibility.practices",
];

/// Paths a policy may list in `required_true`: the plan's yes/no commitments.
pub const BOOLEAN_FIELDS: &[&str] = &["safeguards.full_shutdown_capability"];

impl RunPlan {
    /// The canonical JSON of the plan: `serde_json` of this struct, keys in struct order
    /// (the order of the fields as declared in this module, which is the order of
    /// `docs/run-plan.md`), absent optional fields left out, defaults filled in, no
    /// whitespace. The same plan written in TOML or JSON, in any key order, gives the same
    /// text. Adding an optional field to the schema does not change existing plans' text.
    pub fn canonical_json(&self) -> String {
        // Serializing plain structs of strings, numbers and lists cannot fail; f64 fields
        // that are NaN or infinite (refused by `validate`) become `null`.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `sha256:` and the lower-case hex SHA-256 of [`RunPlan::canonical_json`]: the
    /// commitment to the plan that goes into the public log.
    pub fn digest(&self) -> String {
        let hash = Sha256::digest(self.canonical_json().as_bytes());
        format!("sha256:{}", hex::encode(hash))
    }

    /// The parameters active per token: `active_parameters` for a mixture of experts, else all
    /// parameters (the N of 6·N·D).
    pub fn active_parameters(&self) -> f64 {
        self.moe_active_parameters()
            .unwrap_or(self.model.parameters)
    }

    fn moe_active_parameters(&self) -> Option<f64> {
        match self.model.architecture_family {
            ArchitectureFamily::DenseTransformer => None,
            _ => self.model.active_parameters,
        }
    }

    /// The compute estimator's input for this plan: operation counting from `model` and
    /// `data` (active parameters for mixture-of-experts, epochs, synthetic data), the
    /// hardware method from `compute` (hours = days × 24), the base model's lineage and the
    /// biological-data flag.
    pub fn estimate_input(&self) -> EstimateInput {
        let active = self.moe_active_parameters();
        let synthetic = match (
            self.data.synthetic_generator_parameters,
            self.data.synthetic_tokens,
        ) {
            (Some(generator_parameters), Some(tokens_generated)) => Some(SyntheticData {
                generator_parameters,
                tokens_generated,
            }),
            _ => None,
        };
        let hardware = self.compute.as_ref().map(|c| HardwareInput {
            accelerator: c.accelerator.clone(),
            count: c.accelerators,
            hours: c.duration_days * 24.0,
            utilization: Some(c.expected_utilization),
            utilization_low: c.utilization_low,
            utilization_high: c.utilization_high,
            precision: c.precision,
        });
        EstimateInput {
            parameters: Some(self.model.parameters),
            active_parameters: active,
            tokens: Some(self.data.tokens),
            epochs: Some(self.data.epochs),
            synthetic_data: synthetic,
            additional_flop: self.compute.as_ref().and_then(|c| c.additional_flop),
            hardware,
            base_model_flop: self.base_model.as_ref().map(|b| b.cumulative_flop),
            biological_sequence_data: self.model.biological_sequence_data,
        }
    }

    /// Validates the plan and estimates its compute with `table` and `regimes`. Every
    /// problem at once: the plan's own checks and the estimator's (an unknown accelerator,
    /// methods that cannot run), the estimator's field names translated to plan paths
    /// (`hardware.accelerator` → `compute.accelerator`).
    pub fn estimate(
        &self,
        table: &HardwareTable,
        regimes: &[Regime],
    ) -> Result<Estimate, Vec<FieldError>> {
        let mut errors = self.validate().err().unwrap_or_default();
        match runpermit_compute::estimate(&self.estimate_input(), table, regimes) {
            Ok(estimate) if errors.is_empty() => Ok(estimate),
            Ok(_) => Err(errors),
            Err(invalid) => {
                for mut e in invalid.errors {
                    e.field = plan_field(&e.field).to_owned();
                    if !errors.iter().any(|known| known.field == e.field) {
                        errors.push(e);
                    }
                }
                Err(errors)
            }
        }
    }

    /// Whether an optional field (one of [`OPTIONAL_FIELDS`]) is present: a section or
    /// value given, a list with at least one entry. `None` for a path that is not in
    /// [`OPTIONAL_FIELDS`].
    pub fn has_field(&self, path: &str) -> Option<bool> {
        let s = &self.safeguards;
        let r = &self.responsibility;
        let c = self.compute.as_ref();
        Some(match path {
            "run.description" => self.run.description.is_some(),
            "model.active_parameters" => self.model.active_parameters.is_some(),
            "data.examples" => self.data.examples.is_some(),
            "data.synthetic_tokens" => self.data.synthetic_tokens.is_some(),
            "compute" => c.is_some(),
            "compute.utilization_low" => c.is_some_and(|c| c.utilization_low.is_some()),
            "compute.utilization_high" => c.is_some_and(|c| c.utilization_high.is_some()),
            "compute.precision" => c.is_some_and(|c| c.precision.is_some()),
            "compute.additional_flop" => c.is_some_and(|c| c.additional_flop.is_some()),
            "providers" => !self.providers.is_empty(),
            "schedule" => self.schedule.is_some(),
            "base_model" => self.base_model.is_some(),
            "safeguards.weights_security_level" => s.weights_security_level.is_some(),
            "safeguards.incident_response" => s.incident_response.is_some(),
            "safeguards.full_shutdown_capability" => s.full_shutdown_capability.is_some(),
            "safeguards.affordances" => !s.affordances.is_empty(),
            "safeguards.evaluation_plan" => s.evaluation_plan.is_some(),
            "safeguards.evaluation_plan.milestones" => s
                .evaluation_plan
                .as_ref()
                .is_some_and(|e| !e.milestones.is_empty()),
            "release" | "release.plan" => self.release.is_some(),
            "responsibility.safety_framework_url" => r.safety_framework_url.is_some(),
            "responsibility.safety_framework_sha256" => r.safety_framework_sha256.is_some(),
            "responsibility.practices" => !r.practices.is_empty(),
            _ => return None,
        })
    }

    /// The value of a yes/no commitment (one of [`BOOLEAN_FIELDS`]): `Some(false)` when it
    /// is absent; `None` for a path that is not in [`BOOLEAN_FIELDS`].
    pub fn is_true(&self, path: &str) -> Option<bool> {
        match path {
            "safeguards.full_shutdown_capability" => {
                Some(self.safeguards.full_shutdown_capability == Some(true))
            }
            _ => None,
        }
    }

    /// The schedule's start in unix seconds, if it is given and readable.
    pub fn start_unix(&self) -> Option<i64> {
        self.schedule.as_ref().and_then(|s| s.start.unix().ok())
    }

    /// The schedule's end in unix seconds, if it is given and readable.
    pub fn end_unix(&self) -> Option<i64> {
        self.schedule.as_ref().and_then(|s| s.end.unix().ok())
    }
}

/// The plan path of a field of [`EstimateInput`].
fn plan_field(estimate_field: &str) -> &str {
    match estimate_field {
        "parameters" => "model.parameters",
        "active_parameters" => "model.active_parameters",
        "tokens" => "data.tokens",
        "epochs" => "data.epochs",
        "synthetic_data.generator_parameters" => "data.synthetic_generator_parameters",
        "synthetic_data.tokens_generated" | "synthetic_data" => "data.synthetic_tokens",
        "additional_flop" => "compute.additional_flop",
        "hardware" => "compute",
        "hardware.accelerator" => "compute.accelerator",
        "hardware.count" => "compute.accelerators",
        "hardware.hours" => "compute.duration_days",
        "hardware.utilization" => "compute.expected_utilization",
        "hardware.utilization_low" => "compute.utilization_low",
        "hardware.utilization_high" => "compute.utilization_high",
        "hardware.precision" => "compute.precision",
        "base_model_flop" => "base_model.cumulative_flop",
        other => other,
    }
}
