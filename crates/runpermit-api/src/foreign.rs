//! Schemas of the types other crates define and the API carries: quantities (`Flop`,
//! `FlopRate`), the closed sets of names of `runpermit-types`, field errors, JWKs, the
//! estimator's input and answer, split-run flags, and the documents too large to mirror here
//! (run plans, the policy, permit claims).
//!
//! The orphan rule keeps `ToSchema` off those types here, so each has a stand-in: a unit type
//! whose hand-written schema names the real one (`FlopSchema` is the component `Flop`), or,
//! for structs, a mirror with the same serde shape that derives its schema
//! (`EstimateSchema` is the component `Estimate`). Fields name them with
//! `#[schema(value_type = …)]`. The mirrors are never built: the tests serialize the real
//! types and check the values against these schemas ([`crate::check`]), so a field added
//! there and not here fails them.

use runpermit_compute::{Flop, FlopRate, Precision};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

/// Declares a unit stand-in type whose component is named `$name`, with the schema `$schema`.
macro_rules! stand_in {
    ($(#[$meta:meta])* $ty:ident => $name:literal, $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty;

        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}
pub(crate) use stand_in;

/// A non-negative number: what `Flop` and `FlopRate` serialize to.
fn non_negative(description: &str) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0.0))
            .description(Some(description))
            .build(),
    ))
}

stand_in!(
    /// `runpermit_compute::Flop`.
    FlopSchema => "Flop",
    non_negative(
        "A count of floating-point operations: a finite number, never negative. Requests may \
         also give it as text that runpermit reads (\"3.8e25\")."
    )
);

stand_in!(
    /// `runpermit_compute::FlopRate`.
    FlopRateSchema => "FlopRate",
    non_negative("Floating-point operations per second: a finite number, never negative.")
);

stand_in!(
    /// A figure the server reads back from its store (`f64`).
    FigureSchema => "Figure",
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::Array(vec![Type::Number, Type::Null]))
            .description(Some(
                "A number the authority stored. null only when the stored value is not a finite \
                 number, which only a hand edit of its database can make (JSON has no infinity).",
            ))
            .build(),
    ))
);

/// A string schema whose values are `names`.
pub(crate) fn names(description: &str, names: impl IntoIterator<Item = String>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some(description))
        .into()
}

/// A text body.
pub(crate) fn text(description: &str) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .build(),
    ))
}

/// The wire names of a closed set, as serde writes them.
fn wire_names<T: serde::Serialize>(all: &[T]) -> Vec<String> {
    all.iter()
        .filter_map(|v| match serde_json::to_value(v) {
            Ok(serde_json::Value::String(s)) => Some(s),
            _ => None,
        })
        .collect()
}

/// Declares the stand-ins of `runpermit-types`' closed sets of names.
macro_rules! name_sets {
    ($($ty:ident => $name:literal: $real:ty, $description:literal;)+) => {
        $(
            stand_in!(
                #[doc = concat!("`", stringify!($real), "`: ", $description)]
                $ty => $name,
                names($description, wire_names(<$real>::ALL))
            );
        )+
    };
}

name_sets! {
    OrgKindSchema => "OrgKind": runpermit_types::OrgKind, "An organization's kind.";
    RoleSchema => "Role": runpermit_types::Role, "A member's role; it must fit the organization's kind.";
    ApplicationStatusSchema => "ApplicationStatus": runpermit_types::ApplicationStatus, "Where an application stands.";
    ReviewDecisionSchema => "ReviewDecision": runpermit_types::ReviewDecision, "What a reviewer decides.";
    RunStatusSchema => "RunStatus": runpermit_types::RunStatus, "Where a permitted run stands; only `active` is in good standing.";
    RunActionSchema => "RunAction": runpermit_types::RunAction, "Something done to a run.";
    MilestoneStatusSchema => "MilestoneStatus": runpermit_types::MilestoneStatus, "Where a milestone report stands.";
    IncidentStatusSchema => "IncidentStatus": runpermit_types::IncidentStatus, "Whether an incident is open.";
}

stand_in!(
    /// `runpermit_compute::Precision`.
    PrecisionSchema => "Precision",
    names(
        "A numeric precision whose peak rate the hardware table lists.",
        wire_names(&Precision::ALL)
    )
);

/// `runpermit_types::FieldError`: one invalid input.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = FieldError)]
pub struct FieldErrorSchema {
    /// Dotted path of the field (`hardware.utilization`, `providers[1].id`); empty for the
    /// input as a whole.
    pub field: String,
    /// What is wrong and what is accepted.
    pub message: String,
    /// For an unknown name: the closest known names.
    #[serde(default)]
    pub suggestions: Vec<String>,
}

/// `runpermit_permit::Jwk`: an Ed25519 public key (RFC 8037).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = Jwk)]
pub struct JwkSchema {
    /// Key type: always `OKP`.
    pub kty: String,
    /// Curve: always `Ed25519`.
    pub crv: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    /// The RFC 7638 SHA-256 thumbprint of `{crv, kty, x}`, base64url.
    pub kid: String,
    /// Intended use: `sig` when present.
    #[serde(rename = "use", default)]
    pub use_: Option<String>,
    /// Algorithm: `EdDSA` (or RFC 9864's `Ed25519`) when present.
    #[serde(default)]
    pub alg: Option<String>,
}

/// `runpermit_permit::Jwks`: a JSON Web Key Set.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = Jwks)]
pub struct JwksSchema {
    /// The keys, each with a distinct `kid`.
    pub keys: Vec<JwkSchema>,
}

/// `runpermit_policy::SplitRunFlag`: a customer whose unpermitted compute, summed over
/// providers, reaches the permit threshold.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = SplitRunFlag)]
pub struct SplitRunFlagSchema {
    /// The customer's registry id.
    pub customer: String,
    /// Combined unpermitted compute.
    #[schema(value_type = FlopSchema)]
    pub total: Flop,
    /// The threshold it reaches.
    #[schema(value_type = FlopSchema)]
    pub threshold: Flop,
    /// Each provider's share: `[provider id, FLOP]` pairs, by provider id.
    #[schema(value_type = Vec<ProviderShareSchema>)]
    pub providers: Vec<(String, Flop)>,
    /// True when no single provider saw enough to need a permit: the signature of a run
    /// split across providers to stay under the threshold.
    pub split: bool,
}

stand_in!(
    /// One provider's share in a `SplitRunFlag`: a `[provider id, FLOP]` pair.
    ProviderShareSchema => "ProviderShare",
    ArrayBuilder::new()
        .prefix_items([
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("The provider's organization id."))
                .build(),
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(0.0))
                .description(Some("Its unpermitted compute (FLOP)."))
                .build(),
        ])
        .items(utoipa::openapi::schema::ArrayItems::False)
        .min_items(Some(2))
        .description(Some("A provider's share: `[provider id, FLOP]`."))
        .into()
);

/// A JSON object whose fields are documented elsewhere.
pub(crate) fn document(description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .description(Some(description))
        .into()
}

stand_in!(
    /// `runpermit_policy::RunPlan`, as JSON.
    RunPlanSchema => "RunPlan",
    document(
        "A run plan (schema `runpermit.plan/v1`, runpermit-policy's `RunPlan`): model, data, \
         compute, providers and clusters, safeguards. docs/run-plan.md describes every field; \
         unknown fields are refused with their path."
    )
);

stand_in!(
    /// `runpermit_policy::Policy`, as JSON.
    PolicySchema => "Policy",
    document(
        "The authority's policy (runpermit-policy's `Policy`): tiers by cumulative compute \
         with their decisions and requirements, tranches, permit terms, oversight, incident \
         categories, tokens. docs/policy.md describes every field."
    )
);

stand_in!(
    /// `runpermit_permit::PermitClaims`, as JSON.
    PermitClaimsSchema => "PermitClaims",
    document(
        "A permit's claims (runpermit-permit's `PermitClaims`, version 2): issuer, run (`sub`), \
         holder, validity, compute budget and tranches, providers and clusters, evaluators, \
         conditions. docs/permits.md describes every claim."
    )
);

/// `runpermit_compute::EstimateInput`: what is known about a run. Operation counting needs
/// `parameters` (or `active_parameters`) and `tokens`; the hardware method needs `hardware`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = EstimateInput)]
pub struct EstimateInputSchema {
    /// Total parameters N.
    pub parameters: Option<f64>,
    /// Parameters active per token (mixture-of-experts); defaults to `parameters`.
    pub active_parameters: Option<f64>,
    /// Tokens in the training data (one pass).
    pub tokens: Option<f64>,
    /// Passes over the data; defaults to 1.
    pub epochs: Option<f64>,
    /// Synthetic data generated for this run by a model.
    pub synthetic_data: Option<SyntheticDataSchema>,
    /// Any further compute the developer attributes to the run (e.g. RL rollouts).
    #[schema(value_type = Option<FlopSchema>)]
    pub additional_flop: Option<Flop>,
    /// The cluster, for the hardware method.
    pub hardware: Option<HardwareInputSchema>,
    /// Cumulative compute of the base model this run fine-tunes (its whole lineage).
    #[schema(value_type = Option<FlopSchema>)]
    pub base_model_flop: Option<Flop>,
    /// Whether the training data is mostly biological sequence data.
    #[serde(default)]
    pub biological_sequence_data: bool,
}

/// `runpermit_compute::SyntheticData`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SyntheticData)]
pub struct SyntheticDataSchema {
    /// Active parameters of the generating model.
    pub generator_parameters: f64,
    /// Tokens it generated.
    pub tokens_generated: f64,
}

/// `runpermit_compute::HardwareInput`: the cluster a run trains on.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = HardwareInput)]
pub struct HardwareInputSchema {
    /// Accelerator name or alias from the hardware table.
    pub accelerator: String,
    /// Number of accelerators.
    pub count: u64,
    /// Wall-clock training time in hours.
    pub hours: f64,
    /// Expected model FLOP utilization, 0 < u ≤ 1.
    pub utilization: Option<f64>,
    /// Low end of the utilization range.
    pub utilization_low: Option<f64>,
    /// High end of the utilization range.
    pub utilization_high: Option<f64>,
    /// Precision the run computes in; defaults to bf16 (or the chip's best 16-bit format).
    #[schema(value_type = Option<PrecisionSchema>)]
    pub precision: Option<Precision>,
}

/// `runpermit_compute::Estimate` (schema `runpermit.estimate/v1`, docs/estimate.md). All
/// FLOP figures are cumulative (base model included) unless named `run_`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = Estimate)]
pub struct EstimateSchema {
    /// `runpermit.estimate/v1`.
    pub schema: String,
    /// Central estimate of cumulative training compute.
    #[schema(value_type = FlopSchema)]
    pub flop: Flop,
    /// Low end of the range.
    #[schema(value_type = FlopSchema)]
    pub low: Flop,
    /// High end of the range.
    #[schema(value_type = FlopSchema)]
    pub high: Flop,
    /// This run's own central estimate, without the base model.
    #[schema(value_type = FlopSchema)]
    pub run_flop: Flop,
    /// The base model's cumulative compute (zero when none).
    #[schema(value_type = FlopSchema)]
    pub base_model_flop: Flop,
    /// Which methods ran.
    pub method: MethodSchema,
    /// Operation counting, when its inputs were given.
    pub operation_counting: Option<OperationCountingSchema>,
    /// The hardware method, when its inputs were given.
    pub hardware: Option<HardwareMethodSchema>,
    /// Every threshold that concerns this run, crossed or not.
    pub thresholds: Vec<ThresholdStatusSchema>,
    /// Assumptions made and disagreements found.
    pub warnings: Vec<String>,
}

/// `runpermit_compute::Method`: which methods produced the estimate.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = EstimateMethod)]
pub enum MethodSchema {
    /// 6·N·D and its extra terms.
    OperationCounting,
    /// Accelerators × peak × time × utilization.
    Hardware,
    /// Both; the central figure is operation counting's.
    Both,
}

/// `runpermit_compute::OperationCounting`: the operation-counting figure and its terms (all
/// for this run only).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = OperationCounting)]
pub struct OperationCountingSchema {
    /// Sum of the terms.
    #[schema(value_type = FlopSchema)]
    pub flop: Flop,
    /// Low end.
    #[schema(value_type = FlopSchema)]
    pub low: Flop,
    /// High end.
    #[schema(value_type = FlopSchema)]
    pub high: Flop,
    /// 6 · active parameters · tokens · epochs.
    #[schema(value_type = FlopSchema)]
    pub training_flop: Flop,
    /// 2 · generator parameters · tokens generated.
    #[schema(value_type = FlopSchema)]
    pub synthetic_data_flop: Flop,
    /// As declared.
    #[schema(value_type = FlopSchema)]
    pub additional_flop: Flop,
    /// Parameters used per token.
    pub active_parameters: f64,
    /// Tokens × epochs.
    pub tokens_seen: f64,
    /// The formula with its numbers, for people.
    pub formula: String,
}

/// `runpermit_compute::HardwareMethod`: the hardware-method figure (this run only).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = HardwareMethod)]
pub struct HardwareMethodSchema {
    /// At the central utilization.
    #[schema(value_type = FlopSchema)]
    pub flop: Flop,
    /// At the low utilization.
    #[schema(value_type = FlopSchema)]
    pub low: Flop,
    /// At the high utilization.
    #[schema(value_type = FlopSchema)]
    pub high: Flop,
    /// At 100% utilization: what the cluster could do at most in this time.
    #[schema(value_type = FlopSchema)]
    pub ceiling_flop: Flop,
    /// Table id of the accelerator.
    pub accelerator_id: String,
    /// Canonical name of the accelerator.
    pub accelerator: String,
    /// Number of accelerators.
    pub count: u64,
    /// Training time in hours.
    pub hours: f64,
    /// Precision whose peak was used.
    #[schema(value_type = PrecisionSchema)]
    pub precision: Precision,
    /// Peak dense FLOP/s of one accelerator at `precision`.
    #[schema(value_type = FlopRateSchema)]
    pub peak_flop_per_second: FlopRate,
    /// Peak of the whole cluster at the chip's fastest precision (for cluster thresholds).
    #[schema(value_type = FlopRateSchema)]
    pub cluster_max_flop_per_second: FlopRate,
    /// Central utilization.
    pub utilization: f64,
    /// Low utilization.
    pub utilization_low: f64,
    /// High utilization.
    pub utilization_high: f64,
    /// Where the peak figure comes from.
    pub source: String,
}

/// `runpermit_compute::ThresholdStatus`: how a run stands against one threshold.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = ThresholdStatus)]
pub struct ThresholdStatusSchema {
    /// Regime id (`eu-ai-act`).
    pub regime: String,
    /// Regime display name.
    pub regime_name: String,
    /// Threshold id (`eu-ai-act-systemic-risk`).
    pub threshold: String,
    /// `training_compute` (FLOP) or `cluster_capacity` (FLOP/s).
    pub kind: String,
    /// The threshold value (FLOP or FLOP/s).
    pub limit: f64,
    /// The run's figure compared with it (FLOP or FLOP/s).
    pub value: f64,
    /// `value ≥ limit`.
    pub crossed: bool,
    /// The threshold lies inside the estimate's low–high range, so the verdict could flip.
    pub within_range: bool,
    /// `value / limit`.
    pub ratio: f64,
    /// log10(`ratio`): positive above the threshold, negative below.
    pub orders_of_magnitude: f64,
    /// What crossing it means.
    pub consequence: String,
}
