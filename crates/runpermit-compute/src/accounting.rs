//! Training compute from metered accelerator time, counted the way regulators and Epoch AI
//! count it: the **hardware method** (accelerator-time × the chip's peak at the precision the
//! run trains in × its utilization), with a central estimate and honest bounds for each
//! metering source, and **operation counting** (6·N·D) to set beside it at milestones.
//!
//! What the holder declared in its plan (precision, expected utilization and its range, the
//! parameters per token) is the [`AccountingBasis`]; the permit carries it, so a gate meters
//! with nothing from the authority but the permit.
//!
//! | source | central | lower | upper |
//! |---|---|---|---|
//! | allocated time (scheduler accounting, spool records) | time × peak(precision) × utilization | at `utilization_low` | time × the chip's highest dense peak |
//! | busy time (NVML GPU utilization) | busy time × peak(precision) × utilization | at `utilization_low` | busy time × the highest peak |
//! | tensor-pipe activity (DCGM) | active time × peak(precision) | central × [`TENSOR_ACTIVITY_LOWER`] | active time × the highest peak × [`TENSOR_ACTIVITY_UPPER`], at most time × the highest peak |
//!
//! Without a declared basis (permits signed before claim-set version 3, or a permit the gate
//! does not hold) every figure is counted at its most: central = upper, lower 0.
//!
//! Pure: no IO, no clock.

use serde::{Deserialize, Serialize};

use crate::estimate::{
    DEFAULT_UTILIZATION, DEFAULT_UTILIZATION_HIGH, DEFAULT_UTILIZATION_LOW, Estimate,
};
use crate::hardware::{Accelerator, Precision};
use crate::limits;
use crate::quantity::Flop;
use runpermit_types::field::{FieldError, Problems};

/// DCGM's tensor-pipe activity counts a cycle as active whether its pipes are full or not,
/// and the peak assumes the boost clock that power capping takes away: the work done in the
/// active cycles may be as little as this fraction of the central figure.
pub const TENSOR_ACTIVITY_LOWER: f64 = 0.5;

/// Arithmetic outside the tensor pipes (normalisation, activations, optimizer steps) is not in
/// the tensor-pipe activity: the upper bound allows this much more than the active cycles can
/// compute at the chip's highest peak (never more than the whole time at that peak).
pub const TENSOR_ACTIVITY_UPPER: f64 = 1.1;

/// What the holder declared that metering counts with: the precision the run trains in, its
/// expected model FLOP utilization with a range, and the parameters active per token (for the
/// 6·N·D cross-check). Carried by the permit (claim `accounting`, claim-set version 3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountingBasis {
    /// The training precision (`bf16`): its peak is the central figure's rate.
    pub precision: Precision,
    /// Expected model FLOP utilization, a fraction from 0.01 to 1.
    pub utilization: f64,
    /// Low end of its range: the lower bound of metered compute.
    pub utilization_low: f64,
    /// High end of its range: measured utilization above it is flagged.
    pub utilization_high: f64,
    /// Parameters active per token (all parameters for a dense model), for 6·N·D; absent when
    /// the plan did not state them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<f64>,
}

impl AccountingBasis {
    /// The basis of a plan's estimate: its hardware method's precision and utilization range
    /// when the plan gave hardware, else bf16 at the default utilization (0.4, 0.3–0.5); and
    /// `parameters` (active parameters per token) when known.
    pub fn of_estimate(estimate: &Estimate, parameters: Option<f64>) -> AccountingBasis {
        match &estimate.hardware {
            Some(h) => AccountingBasis {
                precision: h.precision,
                utilization: h.utilization,
                utilization_low: h.utilization_low,
                utilization_high: h.utilization_high,
                parameters,
            },
            None => AccountingBasis {
                parameters,
                ..AccountingBasis::assumed(Precision::Bf16)
            },
        }
    }

    /// `precision` at the estimator's assumed utilization (0.4, 0.3–0.5), without parameters.
    pub fn assumed(precision: Precision) -> AccountingBasis {
        AccountingBasis {
            precision,
            utilization: DEFAULT_UTILIZATION,
            utilization_low: DEFAULT_UTILIZATION_LOW,
            utilization_high: DEFAULT_UTILIZATION_HIGH,
            parameters: None,
        }
    }

    /// Everything wrong with the basis, fields named under `prefix` (`accounting`).
    pub fn problems(&self, prefix: &str) -> Vec<FieldError> {
        let mut p = Problems::default();
        let field = |name: &str| format!("{prefix}.{name}");
        for (name, value) in [
            ("utilization", self.utilization),
            ("utilization_low", self.utilization_low),
            ("utilization_high", self.utilization_high),
        ] {
            if let Err(problem) = limits::UTILIZATION.check(value) {
                p.push(field(name), problem);
            }
        }
        if !(self.utilization_low <= self.utilization && self.utilization <= self.utilization_high)
        {
            p.push(
                field("utilization"),
                format!(
                    "must lie within utilization_low ..= utilization_high ({} ≤ {} ≤ {})",
                    limits::number(self.utilization_low),
                    limits::number(self.utilization),
                    limits::number(self.utilization_high)
                ),
            );
        }
        if let Some(n) = self.parameters
            && let Err(problem) = limits::PARAMETERS.check(n)
        {
            p.push(field("parameters"), problem);
        }
        p.into_vec()
    }
}

/// A central estimate with its bounds: `lower ≤ central ≤ upper`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// The central estimate.
    pub central: Flop,
    /// The lower bound.
    pub lower: Flop,
    /// The upper bound.
    pub upper: Flop,
}

/// Why a measurement cannot be counted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountingError {
    /// A duration is negative or not finite, or active time exceeds the time measured.
    #[error("{0}")]
    Invalid(String),
    /// The chip has no peak figure at all.
    #[error("{0} has no peak in the hardware table")]
    NoPeak(String),
    /// A figure does not fit a FLOP count.
    #[error("metered compute is too large: {0}")]
    Overflow(String),
}

fn flop(value: f64) -> Result<Flop, AccountingError> {
    Flop::new(value).map_err(|e| AccountingError::Overflow(e.to_string()))
}

fn seconds_ok(what: &str, seconds: f64) -> Result<(), AccountingError> {
    if seconds.is_finite() && seconds >= 0.0 {
        Ok(())
    } else {
        Err(AccountingError::Invalid(format!(
            "{what} must be a finite number ≥ 0 (got {seconds})"
        )))
    }
}

/// The chip's highest dense peak in FLOP/s, at any precision.
pub fn highest_peak(chip: &Accelerator) -> Result<f64, AccountingError> {
    chip.max_peak()
        .map(|(_, r)| r.get())
        .ok_or_else(|| AccountingError::NoPeak(chip.name.clone()))
}

/// The peak the central figure counts at: the chip's peak at the declared precision; the
/// highest peak without a basis, or when the chip has no figure at that precision (it cannot
/// then be the precision the work ran in, so nothing smaller is assumed).
pub fn declared_peak(
    chip: &Accelerator,
    basis: Option<&AccountingBasis>,
) -> Result<f64, AccountingError> {
    match basis.and_then(|b| chip.peak(b.precision)) {
        Some(rate) => Ok(rate.get()),
        None => highest_peak(chip),
    }
}

/// Figures for `seconds` of accelerator time during which the chip may have computed (the
/// allocation, by scheduler accounting; or NVML's busy time): at the declared precision and
/// utilization, the lower bound at the low utilization, the upper bound at the highest peak.
pub fn over_time(
    chip: &Accelerator,
    seconds: f64,
    basis: Option<&AccountingBasis>,
) -> Result<Figures, AccountingError> {
    seconds_ok("accelerator-seconds", seconds)?;
    let upper = flop(seconds * highest_peak(chip)?)?;
    let Some(b) = basis else {
        return Ok(Figures {
            central: upper,
            lower: Flop::ZERO,
            upper,
        });
    };
    let peak = declared_peak(chip, basis)?;
    Ok(Figures {
        central: flop(seconds * peak * b.utilization)?,
        lower: flop(seconds * peak * b.utilization_low)?,
        upper,
    })
}

/// Figures for tensor-pipe activity: `active_seconds` (Σ activity × interval) out of
/// `seconds` measured. See the module table for the bounds.
pub fn tensor_activity(
    chip: &Accelerator,
    active_seconds: f64,
    seconds: f64,
    basis: Option<&AccountingBasis>,
) -> Result<Figures, AccountingError> {
    seconds_ok("accelerator-seconds", seconds)?;
    seconds_ok("active seconds", active_seconds)?;
    if active_seconds > seconds * (1.0 + 1e-12) {
        return Err(AccountingError::Invalid(format!(
            "active seconds ({active_seconds}) exceed the seconds measured ({seconds})"
        )));
    }
    let highest = highest_peak(chip)?;
    let central = flop(active_seconds * declared_peak(chip, basis)?)?;
    let upper = flop((active_seconds * highest * TENSOR_ACTIVITY_UPPER).min(seconds * highest))?;
    Ok(Figures {
        central,
        lower: flop(central.get() * TENSOR_ACTIVITY_LOWER)?,
        // The cap at the whole time can fall below the central figure only by rounding.
        upper: if upper < central { central } else { upper },
    })
}

/// What `seconds` of the chip can compute at the declared precision at full utilization: the
/// denominator of a measured utilization.
pub fn capacity(
    chip: &Accelerator,
    seconds: f64,
    basis: Option<&AccountingBasis>,
) -> Result<Flop, AccountingError> {
    seconds_ok("accelerator-seconds", seconds)?;
    flop(seconds * declared_peak(chip, basis)?)
}

/// Operation counting for training: 6 × parameters (active per token) × tokens processed.
pub fn operation_count(parameters: f64, tokens: f64) -> Result<Flop, AccountingError> {
    flop(6.0 * parameters * tokens)
}

/// How far two figures lie apart, as a factor ≥ 1 (`max / min`); infinite when one is zero
/// and the other is not, 1 when both are.
pub fn disagreement(a: Flop, b: Flop) -> f64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    if hi == Flop::ZERO {
        1.0
    } else if lo == Flop::ZERO {
        f64::INFINITY
    } else {
        hi.get() / lo.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HardwareTable;

    fn chip(name: &str) -> &'static Accelerator {
        HardwareTable::builtin().lookup(name).unwrap()
    }

    fn bf16(u: f64, low: f64, high: f64) -> AccountingBasis {
        AccountingBasis {
            precision: Precision::Bf16,
            utilization: u,
            utilization_low: low,
            utilization_high: high,
            parameters: None,
        }
    }

    fn close(a: Flop, b: f64) -> bool {
        (a.get() / b - 1.0).abs() < 1e-9
    }

    #[test]
    fn allocated_time_counts_at_the_declared_precision_and_utilization() {
        // The case: a B200 run declared bf16 at 40% (30–50%).
        let b200 = chip("B200");
        let bf16_peak = b200.peak(Precision::Bf16).unwrap().get();
        let highest = highest_peak(b200).unwrap();
        assert!(highest > bf16_peak, "the B200's fp8 peak is its highest");
        let f = over_time(b200, 3600.0, Some(&bf16(0.4, 0.3, 0.5))).unwrap();
        assert!(close(f.central, 3600.0 * bf16_peak * 0.4));
        assert!(close(f.lower, 3600.0 * bf16_peak * 0.3));
        assert!(close(f.upper, 3600.0 * highest));
        // The old figure (the fp8 peak at full utilization) was this many times the central.
        assert!(f.upper.get() / f.central.get() > 4.9);
    }

    #[test]
    fn without_a_basis_everything_counts_at_its_most() {
        let h100 = chip("H100 SXM");
        let f = over_time(h100, 10.0, None).unwrap();
        assert_eq!(f.central, f.upper);
        assert_eq!(f.lower, Flop::ZERO);
        assert!(close(f.upper, 10.0 * 1.979e15));
        // A precision the chip has no figure for counts at its highest peak.
        let a100 = chip("A100 SXM");
        let fp8 = AccountingBasis {
            precision: Precision::Fp8,
            ..bf16(0.5, 0.4, 0.6)
        };
        assert_eq!(
            declared_peak(a100, Some(&fp8)).unwrap(),
            highest_peak(a100).unwrap()
        );
        assert!(over_time(h100, -1.0, None).is_err());
        assert!(over_time(h100, f64::NAN, None).is_err());
    }

    #[test]
    fn tensor_activity_bounds() {
        let h100 = chip("H100 SXM");
        let b = bf16(0.4, 0.3, 0.5);
        let f = tensor_activity(h100, 15.0, 30.0, Some(&b)).unwrap();
        assert!(close(f.central, 15.0 * 9.894e14));
        assert!(close(f.lower, 15.0 * 9.894e14 * TENSOR_ACTIVITY_LOWER));
        assert!(close(f.upper, 15.0 * 1.979e15 * TENSOR_ACTIVITY_UPPER));
        assert!(f.lower <= f.central && f.central <= f.upper);
        // Fully active: the upper bound is the whole time at the highest peak.
        let full = tensor_activity(h100, 30.0, 30.0, Some(&b)).unwrap();
        assert!(close(full.upper, 30.0 * 1.979e15));
        assert!(tensor_activity(h100, 31.0, 30.0, Some(&b)).is_err());
    }

    #[test]
    fn basis_problems_name_their_fields() {
        assert!(bf16(0.4, 0.3, 0.5).problems("accounting").is_empty());
        let bad = AccountingBasis {
            parameters: Some(-1.0),
            ..bf16(0.6, 0.3, 0.5)
        };
        let fields: Vec<String> = bad
            .problems("accounting")
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["accounting.utilization", "accounting.parameters"]);
        let fields: Vec<String> = bf16(2.0, 0.0, 2.0)
            .problems("a")
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            ["a.utilization", "a.utilization_low", "a.utilization_high"]
        );
    }

    #[test]
    fn operation_counting_and_disagreement() {
        assert!(close(operation_count(7e10, 1.4e12).unwrap(), 5.88e23));
        let (a, b) = (Flop::new(2.0).unwrap(), Flop::new(3.0).unwrap());
        assert_eq!(disagreement(a, b), 1.5);
        assert_eq!(disagreement(b, a), 1.5);
        assert_eq!(disagreement(Flop::ZERO, Flop::ZERO), 1.0);
        assert!(disagreement(Flop::ZERO, a).is_infinite());
    }
}
