//! A training run's compute estimate: operation counting and the hardware method, their
//! ranges, their agreement, and the regulatory thresholds the run crosses.
//!
//! [`estimate`] is the one entry point. It validates every field, collects all errors at once
//! (each naming its field), and never reads a clock or a file.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hardware::{HardwareTable, Precision};
use crate::limits::{self, Plausible};
use crate::quantity::{Flop, FlopRate, QuantityError};
use crate::regimes::{AppliesTo, Limit, Regime};

/// Version tag of the JSON shape of [`Estimate`]; bumped on any incompatible change.
pub const ESTIMATE_SCHEMA: &str = "runpermit.estimate/v1";

/// Relative uncertainty of operation counting. 6·N·D leaves out attention over the context
/// and counts embedding parameters as if they did matrix work; at frontier scale both are a
/// few percent. Published figures agree with it within 10% (see the Epoch AI validation test).
pub const OPERATION_COUNT_UNCERTAINTY: f64 = 0.10;

/// Utilization assumed when none is declared, and its range: large dense training runs
/// report model FLOP utilization of roughly 30–50% (Llama 3.1: 38–43%; PaLM: 46%).
pub const DEFAULT_UTILIZATION: f64 = 0.4;
/// Low end of the assumed utilization range.
pub const DEFAULT_UTILIZATION_LOW: f64 = 0.3;
/// High end of the assumed utilization range.
pub const DEFAULT_UTILIZATION_HIGH: f64 = 0.5;

/// When the two methods' central figures differ by more than this factor, a warning says so.
pub const DISAGREEMENT_FACTOR: f64 = 2.0;

/// What is known about a run. Operation counting needs `parameters` (or
/// `active_parameters`) and `tokens`; the hardware method needs `hardware`. Give either or
/// both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimateInput {
    /// Total parameters N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<f64>,
    /// Parameters active per token (mixture-of-experts); defaults to `parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_parameters: Option<f64>,
    /// Tokens in the training data (one pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<f64>,
    /// Passes over the data; defaults to 1. Tokens seen = tokens × epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<f64>,
    /// Synthetic data generated for this run by a model: 2 · N(generator) · tokens generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic_data: Option<SyntheticData>,
    /// Any further compute the developer attributes to the run (e.g. RL rollouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_flop: Option<Flop>,
    /// The cluster, for the hardware method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareInput>,
    /// Cumulative compute of the base model this run fine-tunes (its whole lineage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_flop: Option<Flop>,
    /// Whether the training data is mostly biological sequence data.
    #[serde(default)]
    pub biological_sequence_data: bool,
}

/// Synthetic data generation counted into the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticData {
    /// Active parameters of the generating model.
    pub generator_parameters: f64,
    /// Tokens it generated.
    pub tokens_generated: f64,
}

/// The cluster a run trains on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareInput {
    /// Accelerator name or alias from the hardware table.
    pub accelerator: String,
    /// Number of accelerators.
    pub count: u64,
    /// Wall-clock training time in hours.
    pub hours: f64,
    /// Expected model FLOP utilization, 0 < u ≤ 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
    /// Low end of the utilization range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_low: Option<f64>,
    /// High end of the utilization range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_high: Option<f64>,
    /// Precision the run computes in; defaults to bf16 (or the chip's best 16-bit format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
}

pub use runpermit_types::{FieldError, InvalidInput};

/// Which methods produced the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// 6·N·D and its extra terms.
    OperationCounting,
    /// Accelerators × peak × time × utilization.
    Hardware,
    /// Both; the central figure is operation counting's.
    Both,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::OperationCounting => "operation counting",
            Method::Hardware => "hardware",
            Method::Both => "operation counting and hardware",
        })
    }
}

/// The result. All FLOP figures are cumulative (base model included) unless named `run_`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// [`ESTIMATE_SCHEMA`].
    pub schema: String,
    /// Central estimate of cumulative training compute.
    pub flop: Flop,
    /// Low end of the range.
    pub low: Flop,
    /// High end of the range.
    pub high: Flop,
    /// This run's own central estimate, without the base model.
    pub run_flop: Flop,
    /// The base model's cumulative compute (zero when none).
    pub base_model_flop: Flop,
    /// Which methods ran.
    pub method: Method,
    /// Operation counting, when its inputs were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_counting: Option<OperationCounting>,
    /// The hardware method, when its inputs were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareMethod>,
    /// Every threshold that concerns this run, crossed or not.
    pub thresholds: Vec<ThresholdStatus>,
    /// Assumptions made and disagreements found.
    pub warnings: Vec<String>,
}

impl Estimate {
    /// This run's own compute by the **highest** central figure of the methods that ran:
    /// operation counting and the hardware method at the expected utilization. What a
    /// policy classifies and budgets by, so that understating one method's inputs (epochs,
    /// tokens; or utilization, duration) does not lower the figure while the other method's
    /// inputs say more. Computed from the per-method figures, so estimates stored before
    /// this rule give the same answer.
    pub fn highest_run_flop(&self) -> Flop {
        let ops = self.operation_counting.as_ref().map(|o| o.flop);
        let hw = self.hardware.as_ref().map(|h| h.flop);
        match (ops, hw) {
            (Some(o), Some(h)) => {
                if h > o {
                    h
                } else {
                    o
                }
            }
            (Some(f), None) | (None, Some(f)) => f,
            (None, None) => self.run_flop,
        }
    }

    /// [`Estimate::highest_run_flop`] plus the base model's compute: the cumulative figure
    /// a policy's tiers compare. Saturates at the largest `f64` (never lower).
    pub fn highest_flop(&self) -> Flop {
        self.highest_run_flop().saturating_add(self.base_model_flop)
    }

    /// How far the two methods' central figures lie apart, as a factor ≥ 1 (infinite when
    /// one is zero), when both ran.
    pub fn method_ratio(&self) -> Option<f64> {
        let o = self.operation_counting.as_ref()?.flop.get();
        let h = self.hardware.as_ref()?.flop.get();
        Some(o.max(h) / o.min(h))
    }

    /// The cluster's envelope for this run: accelerators × duration × peak at the declared
    /// precision, at 100% utilization ([`HardwareMethod::ceiling_flop`]), when hardware was
    /// given. No credible figure of this run's own compute lies above it.
    pub fn envelope_flop(&self) -> Option<Flop> {
        self.hardware.as_ref().map(|h| h.ceiling_flop)
    }
}

/// The operation-counting figure and its terms (all for this run only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationCounting {
    /// Sum of the terms.
    pub flop: Flop,
    /// `flop` × (1 − [`OPERATION_COUNT_UNCERTAINTY`]).
    pub low: Flop,
    /// `flop` × (1 + [`OPERATION_COUNT_UNCERTAINTY`]).
    pub high: Flop,
    /// 6 · active parameters · tokens · epochs.
    pub training_flop: Flop,
    /// 2 · generator parameters · tokens generated.
    pub synthetic_data_flop: Flop,
    /// As declared.
    pub additional_flop: Flop,
    /// Parameters used per token.
    pub active_parameters: f64,
    /// Tokens × epochs.
    pub tokens_seen: f64,
    /// The formula with its numbers, for people.
    pub formula: String,
}

/// The hardware-method figure (this run only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardwareMethod {
    /// At the central utilization.
    pub flop: Flop,
    /// At the low utilization.
    pub low: Flop,
    /// At the high utilization.
    pub high: Flop,
    /// At 100% utilization: what the cluster could do at most in this time.
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
    pub precision: Precision,
    /// Peak dense FLOP/s of one accelerator at `precision`.
    pub peak_flop_per_second: FlopRate,
    /// Peak of the whole cluster at the chip's fastest precision (for cluster thresholds).
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

/// How a run stands against one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdStatus {
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

/// Estimates a run's compute from `input`, using `table` for accelerators and `regimes` for
/// thresholds. Returns every invalid field at once.
pub fn estimate(
    input: &EstimateInput,
    table: &HardwareTable,
    regimes: &[Regime],
) -> Result<Estimate, InvalidInput> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let ops = operation_counting(input, &mut errors);
    let hw = input
        .hardware
        .as_ref()
        .and_then(|h| hardware_method(h, table, &mut errors, &mut warnings));
    if let Some(base) = input.base_model_flop {
        plausible(
            &mut errors,
            "base_model_flop",
            limits::FLOP,
            Some(base.get()),
        );
    }
    if input.hardware.is_none() && !has_operation_inputs(input) && errors.is_empty() {
        errors.push(FieldError {
            field: String::new(),
            message: "nothing to estimate from: give parameters and tokens (operation counting) \
                      and/or hardware with accelerator, count and hours (hardware method)"
                .to_owned(),
            suggestions: Vec::new(),
        });
    }
    if !errors.is_empty() {
        return Err(InvalidInput { errors });
    }

    let base = input.base_model_flop.unwrap_or(Flop::ZERO);
    let (method, run_central, run_low, run_high) = match (&ops, &hw) {
        (Some(o), Some(h)) => {
            let ratio = o.flop.get().max(h.flop.get()) / o.flop.get().min(h.flop.get());
            if ratio > DISAGREEMENT_FACTOR {
                warnings.push(format!(
                    "operation counting ({}) and the hardware method ({}) disagree by {:.1}x; \
                     check parameters, tokens and epochs against accelerators, hours and utilization",
                    o.flop, h.flop, ratio
                ));
            }
            let low = if o.low < h.low { o.low } else { h.low };
            let high = if o.high > h.high { o.high } else { h.high };
            (Method::Both, o.flop, low, high)
        }
        (Some(o), None) => (Method::OperationCounting, o.flop, o.low, o.high),
        (None, Some(h)) => (Method::Hardware, h.flop, h.low, h.high),
        (None, None) => unreachable!("an input without methods was refused above"),
    };
    let cumulative = |run: Flop, field: &str| {
        run.checked_add(base).map_err(|e| InvalidInput {
            errors: vec![FieldError {
                field: field.to_owned(),
                message: format!("cumulative compute is {e}"),
                suggestions: Vec::new(),
            }],
        })
    };
    let flop = cumulative(run_central, "base_model_flop")?;
    let low = cumulative(run_low, "base_model_flop")?;
    let high = cumulative(run_high, "base_model_flop")?;
    let thresholds = threshold_statuses(
        regimes,
        input.biological_sequence_data,
        (flop, low, high),
        hw.as_ref().map(|h| h.cluster_max_flop_per_second),
    );
    Ok(Estimate {
        schema: ESTIMATE_SCHEMA.to_owned(),
        flop,
        low,
        high,
        run_flop: run_central,
        base_model_flop: base,
        method,
        operation_counting: ops,
        hardware: hw,
        thresholds,
        warnings,
    })
}

fn has_operation_inputs(input: &EstimateInput) -> bool {
    input.parameters.is_some()
        || input.active_parameters.is_some()
        || input.tokens.is_some()
        || input.epochs.is_some()
        || input.synthetic_data.is_some()
        || input.additional_flop.is_some()
}

fn field_error(errors: &mut Vec<FieldError>, field: &str, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.to_owned(),
        message: message.into(),
        suggestions: Vec::new(),
    });
}

/// A value in its plausible `range`, or an error naming `field`.
fn plausible(
    errors: &mut Vec<FieldError>,
    field: &str,
    range: Plausible,
    value: Option<f64>,
) -> Option<f64> {
    range
        .check(value?)
        .map_err(|message| field_error(errors, field, message))
        .ok()
}

fn operation_counting(
    input: &EstimateInput,
    errors: &mut Vec<FieldError>,
) -> Option<OperationCounting> {
    if !has_operation_inputs(input) {
        return None;
    }
    let before = errors.len();
    let total = plausible(errors, "parameters", limits::PARAMETERS, input.parameters);
    let active = plausible(
        errors,
        "active_parameters",
        limits::PARAMETERS,
        input.active_parameters,
    );
    let tokens = plausible(errors, "tokens", limits::TOKENS, input.tokens);
    let epochs = plausible(errors, "epochs", limits::EPOCHS, input.epochs).unwrap_or(1.0);
    if let (Some(t), Some(a)) = (total, active)
        && a > t
    {
        field_error(
            errors,
            "active_parameters",
            format!("{a:e} active parameters exceed the {t:e} total parameters"),
        );
    }
    if input.parameters.is_none() && input.active_parameters.is_none() {
        field_error(
            errors,
            "parameters",
            "required for operation counting (with tokens)",
        );
    }
    if input.tokens.is_none() {
        field_error(
            errors,
            "tokens",
            "required for operation counting (with parameters)",
        );
    }
    let synthetic = input.synthetic_data.as_ref().map(|s| {
        let n = plausible(
            errors,
            "synthetic_data.generator_parameters",
            limits::PARAMETERS,
            Some(s.generator_parameters),
        );
        let t = plausible(
            errors,
            "synthetic_data.tokens_generated",
            limits::TOKENS,
            Some(s.tokens_generated),
        );
        n.zip(t).map(|(n, t)| 2.0 * n * t)
    });
    if let Some(f) = input.additional_flop {
        plausible(errors, "additional_flop", limits::FLOP, Some(f.get()));
    }
    if errors.len() > before {
        return None;
    }
    let n = active.or(total)?;
    let d = tokens?;
    let tokens_seen = d * epochs;
    let mut overflow = |field: &str, r: Result<Flop, QuantityError>| match r {
        Ok(f) => Some(f),
        Err(e) => {
            field_error(errors, field, format!("the result is {e}"));
            None
        }
    };
    let training = overflow("tokens", Flop::new(6.0 * n * tokens_seen))?;
    let synthetic_flop = overflow(
        "synthetic_data",
        Flop::new(synthetic.flatten().unwrap_or(0.0)),
    )?;
    let additional = input.additional_flop.unwrap_or(Flop::ZERO);
    let flop = overflow(
        "additional_flop",
        training
            .checked_add(synthetic_flop)
            .and_then(|f| f.checked_add(additional)),
    )?;
    let mut formula = format!("6 × {n:e} parameters × {d:e} tokens");
    if epochs != 1.0 {
        formula.push_str(&format!(" × {epochs} epochs"));
    }
    if synthetic_flop > Flop::ZERO {
        formula.push_str(&format!(" + {synthetic_flop} synthetic data generation"));
    }
    if additional > Flop::ZERO {
        formula.push_str(&format!(" + {additional} additional"));
    }
    Some(OperationCounting {
        flop,
        low: overflow(
            "tokens",
            flop.checked_mul(1.0 - OPERATION_COUNT_UNCERTAINTY),
        )?,
        high: overflow(
            "tokens",
            flop.checked_mul(1.0 + OPERATION_COUNT_UNCERTAINTY),
        )?,
        training_flop: training,
        synthetic_data_flop: synthetic_flop,
        additional_flop: additional,
        active_parameters: n,
        tokens_seen,
        formula,
    })
}

fn utilization(errors: &mut Vec<FieldError>, field: &str, value: Option<f64>) -> Option<f64> {
    plausible(errors, field, limits::UTILIZATION, value)
}

fn hardware_method(
    h: &HardwareInput,
    table: &HardwareTable,
    errors: &mut Vec<FieldError>,
    warnings: &mut Vec<String>,
) -> Option<HardwareMethod> {
    let before = errors.len();
    let accelerator = match table.lookup(&h.accelerator) {
        Ok(a) => Some(a),
        Err(e) => {
            errors.push(FieldError {
                field: "hardware.accelerator".to_owned(),
                message: e.to_string(),
                suggestions: e.suggestions,
            });
            None
        }
    };
    if let Err(message) = limits::ACCELERATORS.check_count(h.count) {
        field_error(errors, "hardware.count", message);
    }
    let hours = plausible(errors, "hardware.hours", limits::HOURS, Some(h.hours)).unwrap_or(0.0);
    let central = utilization(errors, "hardware.utilization", h.utilization);
    let low = utilization(errors, "hardware.utilization_low", h.utilization_low);
    let high = utilization(errors, "hardware.utilization_high", h.utilization_high);
    if h.utilization_low.is_some() != h.utilization_high.is_some() {
        field_error(
            errors,
            if h.utilization_low.is_some() {
                "hardware.utilization_high"
            } else {
                "hardware.utilization_low"
            },
            "give both ends of the utilization range, or neither",
        );
    }
    let (u, u_low, u_high) = match (central, low, high) {
        (Some(u), Some(l), Some(hi)) => (u, l, hi),
        (Some(u), None, None) => (u, u, u),
        (None, Some(l), Some(hi)) => (l.midpoint(hi), l, hi),
        (None, None, None) if errors.len() == before => {
            warnings.push(format!(
                "no utilization given: assumed {:.0}% (range {:.0}–{:.0}%), typical of large dense training runs",
                DEFAULT_UTILIZATION * 100.0,
                DEFAULT_UTILIZATION_LOW * 100.0,
                DEFAULT_UTILIZATION_HIGH * 100.0
            ));
            (
                DEFAULT_UTILIZATION,
                DEFAULT_UTILIZATION_LOW,
                DEFAULT_UTILIZATION_HIGH,
            )
        }
        _ => (0.0, 0.0, 0.0),
    };
    if u_low > u || u > u_high {
        field_error(
            errors,
            "hardware.utilization",
            format!(
                "{} lies outside the utilization range {}–{}",
                limits::number(u),
                limits::number(u_low),
                limits::number(u_high)
            ),
        );
    }
    let accelerator = accelerator?;
    let precision = match h.precision {
        Some(p) => {
            if accelerator.peak(p).is_none() {
                let known: Vec<&str> = accelerator.peak_flops.keys().map(|p| p.as_str()).collect();
                field_error(
                    errors,
                    "hardware.precision",
                    format!(
                        "{} has no {p} figure in the hardware table; it has: {}",
                        accelerator.name,
                        known.join(", ")
                    ),
                );
            }
            p
        }
        None => {
            let chosen = [
                Precision::Bf16,
                Precision::Fp16,
                Precision::Tf32,
                Precision::Fp32,
            ]
            .into_iter()
            .find(|p| accelerator.peak(*p).is_some())
            .or_else(|| accelerator.peak_flops.keys().next().copied())?;
            if chosen != Precision::Bf16 {
                warnings.push(format!(
                    "{} has no bf16 figure: used its {chosen} peak",
                    accelerator.name
                ));
            }
            chosen
        }
    };
    if errors.len() > before {
        return None;
    }
    let peak = accelerator.peak(precision)?;
    let count = h.count as f64;
    let seconds = hours * 3600.0;
    let mut overflow = |r: Result<Flop, QuantityError>| match r {
        Ok(f) => Some(f),
        Err(e) => {
            field_error(errors, "hardware", format!("the result is {e}"));
            None
        }
    };
    let ceiling = overflow(peak.over_seconds(seconds * count))?;
    let (_, max_peak) = accelerator.max_peak()?;
    let cluster_max = match max_peak.checked_mul(count) {
        Ok(r) => r,
        Err(e) => {
            field_error(errors, "hardware.count", format!("the cluster peak is {e}"));
            return None;
        }
    };
    Some(HardwareMethod {
        flop: overflow(ceiling.checked_mul(u))?,
        low: overflow(ceiling.checked_mul(u_low))?,
        high: overflow(ceiling.checked_mul(u_high))?,
        ceiling_flop: ceiling,
        accelerator_id: accelerator.id.clone(),
        accelerator: accelerator.name.clone(),
        count: h.count,
        hours,
        precision,
        peak_flop_per_second: peak,
        cluster_max_flop_per_second: cluster_max,
        utilization: u,
        utilization_low: u_low,
        utilization_high: u_high,
        source: accelerator.source_for(precision).to_owned(),
    })
}

fn threshold_statuses(
    regimes: &[Regime],
    biological: bool,
    (flop, low, high): (Flop, Flop, Flop),
    cluster: Option<FlopRate>,
) -> Vec<ThresholdStatus> {
    let mut out = Vec::new();
    for regime in regimes {
        for t in &regime.threshold {
            if t.applies_to == AppliesTo::BiologicalSequenceData && !biological {
                continue;
            }
            let (kind, limit, value, within_range) = match t.limit {
                Limit::TrainingCompute { flop: limit } => (
                    "training_compute",
                    limit.get(),
                    flop.get(),
                    low <= limit && limit <= high,
                ),
                Limit::ClusterCapacity { flop_per_second } => match cluster {
                    Some(c) => ("cluster_capacity", flop_per_second.get(), c.get(), false),
                    None => continue,
                },
            };
            let ratio = value / limit;
            out.push(ThresholdStatus {
                regime: regime.id.clone(),
                regime_name: regime.name.clone(),
                threshold: t.id.clone(),
                kind: kind.to_owned(),
                limit,
                value,
                crossed: value >= limit,
                within_range,
                ratio,
                orders_of_magnitude: ratio.log10(),
                consequence: t.consequence.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
