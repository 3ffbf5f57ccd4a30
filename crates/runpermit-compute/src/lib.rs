//! Compute accounting for AI training runs.
//!
//! - [`Flop`] and [`FlopRate`]: quantities that cannot be NaN, infinite or negative.
//! - [`estimate`]: operation counting (6·N·D with active parameters, epochs, synthetic data
//!   and a base model's lineage) and the hardware method (accelerators × peak × time ×
//!   utilization), with ranges, a disagreement warning and the regulatory thresholds crossed.
//! - [`HardwareTable`]: peak dense FLOP/s per precision, from `data/hardware.toml`.
//! - [`Regime`]: regulatory thresholds, from `data/regimes.toml`.
//! - [`limits`]: the physically plausible range of every input; a figure outside is refused
//!   by name.
//! - [`text`]: text hygiene for names, identifiers and free text from outside.
//! - [`accounting`]: metered accelerator time to training compute at the declared precision
//!   and utilization, a central estimate with bounds per metering source, and 6·N·D.
//! - [`format_flop`]: how every figure is written for people (`2.18e26 FLOP`).
//!
//! This crate does no IO and reads no clock: the data files are compiled in, and every
//! function takes what it needs as arguments.

pub mod accounting;
mod display;
mod estimate;
mod hardware;
pub mod limits;
mod quantity;
mod regimes;
pub use runpermit_types::text;

pub use accounting::{AccountingBasis, AccountingError, Figures};
pub use display::{
    SIGNIFICANT_DIGITS, format_count, format_flop, format_flop_number, format_flop_rate,
};
pub use estimate::{
    DEFAULT_UTILIZATION, DEFAULT_UTILIZATION_HIGH, DEFAULT_UTILIZATION_LOW, DISAGREEMENT_FACTOR,
    ESTIMATE_SCHEMA, Estimate, EstimateInput, FieldError, HardwareInput, HardwareMethod,
    InvalidInput, Method, OPERATION_COUNT_UNCERTAINTY, OperationCounting, SyntheticData,
    ThresholdStatus, estimate,
};
pub use hardware::{
    Accelerator, BUILTIN_HARDWARE_TOML, HardwareTable, Precision, TableError, UnknownAccelerator,
    UnknownPrecision,
};
pub use quantity::{Flop, FlopRate, QuantityError};
pub use regimes::{
    AppliesTo, BUILTIN_REGIMES_TOML, Limit, Regime, RegimeError, Threshold, builtin_regimes,
    regimes_from_toml,
};

/// Parses a count written as `405e9`, `405B`, `15.6T`, `1.5M`, `70k` or `3.8x10^25`.
/// The suffixes are the ones model cards use: k (10^3), M (10^6), B (10^9), T (10^12).
pub fn parse_count(text: &str) -> Option<f64> {
    let t = text.trim();
    let (number, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('B' | 'G') => (&t[..t.len() - 1], 1e9),
        Some('T') => (&t[..t.len() - 1], 1e12),
        _ => (t, 1.0),
    };
    let value = quantity::parse_number(number)? * scale;
    value.is_finite().then_some(value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_with_model_card_suffixes() {
        assert_eq!(super::parse_count("405e9"), Some(405e9));
        assert_eq!(super::parse_count("405B"), Some(405e9));
        assert_eq!(super::parse_count("15.6T"), Some(15.6e12));
        assert_eq!(super::parse_count("70k"), Some(70e3));
        assert_eq!(super::parse_count("1e999"), None);
        assert_eq!(super::parse_count("12x"), None);
        assert_eq!(super::parse_count("inf"), None);
    }
}
