//! The physically plausible range of every number a run is described by.
//!
//! A figure outside its range is refused by name, never computed with: a run cannot be argued
//! below a threshold with `epochs = 1e-300`, nor scoped to 2^63 accelerators. The upper ends
//! lie far beyond any run that exists or is planned (the largest runs of 2025 have ~2·10^12
//! parameters, ~4·10^13 tokens, ~2·10^5 accelerators and ~5·10^26 FLOP), so that no real run
//! hits them; the lower ends refuse what cannot describe a training run at all. Within these
//! ranges no product of the estimator overflows an `f64`.
//!
//! The estimator ([`estimate`](crate::estimate)) and the run plan (`runpermit-policy`) check
//! the same ranges; `docs/run-plan.md` and `docs/estimate.md` list them.

use std::fmt;

/// A closed range `[min, max]` of plausible values of one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plausible {
    /// The smallest plausible value.
    pub min: f64,
    /// The largest plausible value.
    pub max: f64,
    /// What the value counts, for messages (`parameters`, `hours`); may be empty.
    pub unit: &'static str,
    /// An example of the accepted form, for messages; may be empty.
    pub hint: &'static str,
}

/// Total or active parameters of a model: 1 to 10^15.
pub const PARAMETERS: Plausible = Plausible {
    min: 1.0,
    max: 1e15,
    unit: "parameters",
    hint: "",
};

/// Training tokens (one pass), or tokens a generator produces: 1 to 10^17.
pub const TOKENS: Plausible = Plausible {
    min: 1.0,
    max: 1e17,
    unit: "tokens",
    hint: "",
};

/// Passes over the data: 0.001 to 10^4.
pub const EPOCHS: Plausible = Plausible {
    min: 0.001,
    max: 1e4,
    unit: "passes over the data",
    hint: "",
};

/// Training examples (documents, sequences), for information: 1 to 10^17.
pub const EXAMPLES: Plausible = Plausible {
    min: 1.0,
    max: 1e17,
    unit: "examples",
    hint: "",
};

/// Accelerators of a cluster or a job: 1 to 10^7.
pub const ACCELERATORS: Plausible = Plausible {
    min: 1.0,
    max: 1e7,
    unit: "accelerators",
    hint: "",
};

/// Wall-clock training time in hours (the estimator's unit): 0.1 (6 minutes) to 87,600
/// (ten years).
pub const HOURS: Plausible = Plausible {
    min: 0.1,
    max: 87_600.0,
    unit: "hours",
    hint: "",
};

/// Wall-clock training time in days (the run plan's unit): 0.01 (about 15 minutes) to
/// 3,650 (ten years). Inside [`HOURS`] once multiplied by 24.
pub const DURATION_DAYS: Plausible = Plausible {
    min: 0.01,
    max: 3650.0,
    unit: "days",
    hint: "",
};

/// Model FLOP utilization: 0.01 to 1.
pub const UTILIZATION: Plausible = Plausible {
    min: 0.01,
    max: 1.0,
    unit: "",
    hint: "a fraction such as 0.38 for 38%",
};

/// A declared FLOP figure (additional compute, a base model's lineage, a milestone): 1 to
/// 10^32 FLOP. Leave a figure out rather than write 0.
pub const FLOP: Plausible = Plausible {
    min: 1.0,
    max: 1e32,
    unit: "FLOP",
    hint: "",
};

/// A usage report's sequence number: 1 to 10^9 (a report a second for thirty years).
pub const REPORT_SEQ: Plausible = Plausible {
    min: 1.0,
    max: 1e9,
    unit: "",
    hint: "reports are numbered 1, 2, 3, … per provider and run",
};

/// The interval one usage report covers, in seconds: 1 to 31 days (2,678,400 s). Gates
/// report every few minutes; a month is the longest a scheduler's accounting period runs.
pub const REPORT_INTERVAL_SECONDS: Plausible = Plausible {
    min: 1.0,
    max: 2_678_400.0,
    unit: "seconds",
    hint: "",
};

impl Plausible {
    /// Whether `value` lies in the range (never for NaN).
    pub fn contains(&self, value: f64) -> bool {
        value >= self.min && value <= self.max
    }

    /// Why `got` is refused: `must be between 0.001 and 10000 passes over the data (got
    /// 1e-300)`.
    pub fn message(&self, got: impl fmt::Display) -> String {
        let mut text = format!(
            "must be between {} and {}",
            number(self.min),
            number(self.max)
        );
        if !self.unit.is_empty() {
            text.push(' ');
            text.push_str(self.unit);
        }
        if !self.hint.is_empty() {
            text.push_str(", ");
            text.push_str(self.hint);
        }
        format!("{text} (got {got})")
    }

    /// `value` when it lies in the range, else the message for it.
    pub fn check(&self, value: f64) -> Result<f64, String> {
        if self.contains(value) {
            Ok(value)
        } else {
            Err(self.message(number(value)))
        }
    }

    /// `value` when it lies in the range, else the message for it (counts printed in full).
    pub fn check_count(&self, value: u64) -> Result<u64, String> {
        // u64 → f64 rounds only above 2^53, far beyond every range.
        if self.contains(value as f64) {
            Ok(value)
        } else {
            Err(self.message(value))
        }
    }
}

/// A number as people read it: plain between 0.001 and 10^6 (`0.38`, `16384`), otherwise
/// in scientific notation (`1e-300`, `1e15`, `5e-324`), never hundreds of digits.
pub fn number(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || !value.is_finite() || (1e-3..1e6).contains(&magnitude) {
        format!("{value}")
    } else {
        format!("{value:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_refuse_the_edges_of_f64_by_value() {
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            1e308,
            f64::MIN_POSITIVE,
            5e-324,
            0.0,
            -0.0,
            -1.0,
        ] {
            for range in [PARAMETERS, TOKENS, EPOCHS, HOURS, UTILIZATION, FLOP] {
                assert!(range.check(bad).is_err(), "{bad:e} in {range:?}");
            }
        }
        assert_eq!(
            EPOCHS.check(1e-300).unwrap_err(),
            "must be between 0.001 and 10000 passes over the data (got 1e-300)"
        );
        assert_eq!(
            UTILIZATION.check(-0.0).unwrap_err(),
            "must be between 0.01 and 1, a fraction such as 0.38 for 38% (got -0)"
        );
        assert_eq!(
            ACCELERATORS.check_count(1 << 63).unwrap_err(),
            "must be between 1 and 1e7 accelerators (got 9223372036854775808)"
        );
        assert_eq!(ACCELERATORS.check_count(10_000_000), Ok(10_000_000));
        assert_eq!(
            EPOCHS.check(f64::NAN).unwrap_err().rsplit(' ').next(),
            Some("NaN)")
        );
    }

    #[test]
    fn the_plan_duration_lies_inside_the_estimators() {
        assert!(HOURS.contains(DURATION_DAYS.min * 24.0));
        assert!(HOURS.contains(DURATION_DAYS.max * 24.0));
    }

    #[test]
    fn within_the_ranges_nothing_overflows() {
        let training = 6.0 * PARAMETERS.max * TOKENS.max * EPOCHS.max;
        let synthetic = 2.0 * PARAMETERS.max * TOKENS.max;
        let total = training + synthetic + FLOP.max + FLOP.max;
        assert!(total.is_finite() && total < 1e40);
        // 10^7 accelerators of 10^17 FLOP/s (far beyond any chip) for ten years.
        assert!((ACCELERATORS.max * 1e17 * HOURS.max * 3600.0).is_finite());
    }

    #[test]
    fn numbers_print_briefly() {
        assert_eq!(number(0.38), "0.38");
        assert_eq!(number(16384.0), "16384");
        assert_eq!(number(1e15), "1e15");
        assert_eq!(number(1e-300), "1e-300");
        assert_eq!(number(-0.0), "-0");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
