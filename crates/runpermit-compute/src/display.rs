//! How compute figures are written for people: one formatter for every text output, so that a
//! figure reads the same in an estimate, an application, a permit and a run
//! (`2.18e26 FLOP`, never `2.1810799999999998e+26` or `2.18108e26`). Machine-readable output
//! (JSON) keeps full precision and never goes through here.

use crate::quantity::three_digits;

/// Significant digits of every figure written for people.
pub const SIGNIFICANT_DIGITS: usize = 3;

/// A count of operations for people: `2.18e26 FLOP`.
pub fn format_flop(value: f64) -> String {
    format!("{} FLOP", format_flop_number(value))
}

/// The number alone, for a column headed FLOP: `2.18e26`; zero is `0`.
pub fn format_flop_number(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    format!("{:.*e}", SIGNIFICANT_DIGITS - 1, value)
}

/// A rate for people: `9.89e14 FLOP/s`.
pub fn format_flop_rate(value: f64) -> String {
    format!("{} FLOP/s", format_flop_number(value))
}

/// A count as model cards write it (what `parse_count` reads), three significant digits:
/// `405B`, `15.6T`, `70k`, `8`.
pub fn format_count(value: f64) -> String {
    [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(scale, _)| value >= *scale)
        .map_or_else(
            || three_digits(value),
            |(scale, suffix)| format!("{}{suffix}", three_digits(value / scale)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Flop, FlopRate};

    #[test]
    fn three_significant_digits_in_scientific_notation() {
        assert_eq!(format_flop(2.181_079_999_999_999_8e26), "2.18e26 FLOP");
        assert_eq!(format_flop(4.999_999_999_999_999e24), "5.00e24 FLOP");
        assert_eq!(format_flop(9.996e25), "1.00e26 FLOP");
        assert_eq!(format_flop(1e25), "1.00e25 FLOP");
        assert_eq!(format_flop(0.0), "0 FLOP");
        assert_eq!(format_flop(-0.0), "0 FLOP");
        assert_eq!(format_flop_number(3.79e25), "3.79e25");
        assert_eq!(format_flop_rate(1e20), "1.00e20 FLOP/s");
    }

    #[test]
    fn counts_read_as_model_cards_write_them() {
        for (value, text) in [
            (405e9, "405B"),
            (15.6e12, "15.6T"),
            (2e12, "2T"),
            (70e3, "70k"),
            (1.5e6, "1.5M"),
            (8.0, "8"),
        ] {
            assert_eq!(format_count(value), text);
            assert_eq!(crate::parse_count(text), Some(value), "{text} reads back");
        }
    }

    #[test]
    fn quantities_display_the_same_way() {
        let flop = Flop::new(2.181_08e26).expect("a count");
        assert_eq!(flop.to_string(), format_flop(flop.get()));
        let rate = FlopRate::new(9.89e14).expect("a rate");
        assert_eq!(rate.to_string(), format_flop_rate(rate.get()));
    }
}
