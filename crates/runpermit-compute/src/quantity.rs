//! FLOP counts and FLOP/s rates as types that cannot hold NaN, infinity or negatives.
//!
//! A [`Flop`] is a number of operations (a count); a [`FlopRate`] is operations per second.
//! They are distinct types so that a rate can never be compared with a threshold on a count.
//! Every operation counts the same whatever its precision, and a multiply-add is 2 FLOP.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string or number is not a valid quantity.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantityError {
    /// The value is NaN.
    #[error("not a number")]
    NotANumber,
    /// The value is infinite or too large to represent.
    #[error("too large (the value is infinite or overflows a 64-bit float)")]
    Infinite,
    /// The value is below zero.
    #[error("must not be negative (got {0})")]
    Negative(f64),
    /// The text does not follow the accepted forms.
    #[error(
        "cannot read {input:?}: expected a number with an optional SI prefix and unit, such as {example}"
    )]
    Syntax {
        /// What was given.
        input: String,
        /// Accepted forms, for the message.
        example: &'static str,
    },
    /// A rate was given where a count was expected, or the reverse.
    #[error("{input:?} is {found}, but {expected} was expected")]
    WrongUnit {
        /// What was given.
        input: String,
        /// What the unit says it is.
        found: &'static str,
        /// What the caller wanted.
        expected: &'static str,
    },
}

const FLOP_EXAMPLE: &str = "3.8e25, 3.8e25 FLOP, 38 YFLOP or 3.8x10^25";
const RATE_EXAMPLE: &str = "9.89e14 FLOP/s, 989 TFLOP/s or 989 TFLOPS";

fn check(value: f64) -> Result<f64, QuantityError> {
    if value.is_nan() {
        Err(QuantityError::NotANumber)
    } else if value.is_infinite() {
        Err(QuantityError::Infinite)
    } else if value < 0.0 {
        Err(QuantityError::Negative(value))
    } else {
        // Normalise -0.0 so that equality and display behave.
        Ok(value + 0.0)
    }
}

/// A count of floating-point operations: finite and never negative.
#[derive(Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Flop(f64);

impl Flop {
    /// No operations.
    pub const ZERO: Flop = Flop(0.0);

    /// The largest count there is (the largest finite `f64`).
    pub const MAX: Flop = Flop(f64::MAX);

    /// A FLOP count, or why `value` cannot be one.
    pub fn new(value: f64) -> Result<Self, QuantityError> {
        check(value).map(Flop)
    }

    /// The count as a float.
    pub fn get(self) -> f64 {
        self.0
    }

    /// The sum, or an error when it overflows.
    pub fn checked_add(self, other: Flop) -> Result<Flop, QuantityError> {
        Flop::new(self.0 + other.0)
    }

    /// The sum, or [`Flop::MAX`] when it overflows: for figures that must never come out
    /// lower than their parts.
    pub fn saturating_add(self, other: Flop) -> Flop {
        self.checked_add(other).unwrap_or(Flop::MAX)
    }

    /// The count multiplied by a non-negative factor, or an error when it overflows.
    pub fn checked_mul(self, factor: f64) -> Result<Flop, QuantityError> {
        Flop::new(self.0 * factor)
    }

    /// `self / other` (infinite when `other` is zero and `self` is not).
    pub fn ratio(self, other: Flop) -> f64 {
        self.0 / other.0
    }

    /// The count with an SI prefix, e.g. `37.9 YFLOP`.
    pub fn si(self) -> String {
        si(self.0, "FLOP")
    }
}

impl fmt::Debug for Flop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flop({:e})", self.0)
    }
}

/// As [`crate::format_flop`] writes it (`3.79e25 FLOP`), unless a precision is given.
impl fmt::Display for Flop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match f.precision() {
            Some(digits) => write!(f, "{:.*e} FLOP", digits, self.0),
            None => f.write_str(&crate::format_flop(self.0)),
        }
    }
}

impl FromStr for Flop {
    type Err = QuantityError;

    /// Reads `3.8e25`, `3.8e25 FLOP`, `38 YFLOP`, `3.8x10^25` or `10^25`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse(s, FLOP_EXAMPLE)? {
            (value, Unit::Count | Unit::None) => Flop::new(value),
            (_, Unit::Rate) => Err(QuantityError::WrongUnit {
                input: s.to_owned(),
                found: "a rate (FLOP/s)",
                expected: "a count of operations (FLOP)",
            }),
        }
    }
}

/// A rate of floating-point operations per second: finite and never negative.
#[derive(Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct FlopRate(f64);

impl FlopRate {
    /// A rate, or why `value` cannot be one.
    pub fn new(value: f64) -> Result<Self, QuantityError> {
        check(value).map(FlopRate)
    }

    /// The rate in FLOP/s.
    pub fn get(self) -> f64 {
        self.0
    }

    /// The operations done at this rate in `seconds`.
    pub fn over_seconds(self, seconds: f64) -> Result<Flop, QuantityError> {
        Flop::new(self.0 * seconds)
    }

    /// The rate multiplied by a non-negative factor (for example an accelerator count).
    pub fn checked_mul(self, factor: f64) -> Result<FlopRate, QuantityError> {
        FlopRate::new(self.0 * factor)
    }

    /// The rate with an SI prefix, e.g. `989 TFLOP/s`.
    pub fn si(self) -> String {
        si(self.0, "FLOP/s")
    }
}

impl fmt::Debug for FlopRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FlopRate({:e})", self.0)
    }
}

/// As [`crate::format_flop_rate`] writes it (`9.89e14 FLOP/s`), unless a precision is given.
impl fmt::Display for FlopRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match f.precision() {
            Some(digits) => write!(f, "{:.*e} FLOP/s", digits, self.0),
            None => f.write_str(&crate::format_flop_rate(self.0)),
        }
    }
}

impl FromStr for FlopRate {
    type Err = QuantityError;

    /// Reads `9.89e14 FLOP/s`, `989 TFLOP/s`, `989 TFLOPS` or a bare number of FLOP/s.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse(s, RATE_EXAMPLE)? {
            (value, Unit::Rate | Unit::None) => FlopRate::new(value),
            (_, Unit::Count) => Err(QuantityError::WrongUnit {
                input: s.to_owned(),
                found: "a count (FLOP)",
                expected: "a rate (FLOP/s)",
            }),
        }
    }
}

macro_rules! serde_as_number_or_text {
    ($ty:ident) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_f64(self.0)
            }
        }

        /// Accepts a JSON/TOML number or a string in any form that `FromStr` reads.
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Number(f64),
                    Text(String),
                }
                let parsed = match Raw::deserialize(deserializer)? {
                    Raw::Number(n) => $ty::new(n),
                    Raw::Text(t) => t.parse(),
                };
                parsed.map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_number_or_text!(Flop);
serde_as_number_or_text!(FlopRate);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    None,
    Count,
    Rate,
}

const SI_PREFIXES: [(char, f64); 11] = [
    ('k', 1e3),
    ('K', 1e3),
    ('M', 1e6),
    ('G', 1e9),
    ('T', 1e12),
    ('P', 1e15),
    ('E', 1e18),
    ('Z', 1e21),
    ('Y', 1e24),
    ('R', 1e27),
    ('Q', 1e30),
];

/// Splits `text` into a value (SI prefix applied) and the unit it names.
fn parse(text: &str, example: &'static str) -> Result<(f64, Unit), QuantityError> {
    let syntax = || QuantityError::Syntax {
        input: text.to_owned(),
        example,
    };
    let trimmed = text.trim();
    // "FLOPs" (lower-case s) is used for both counts and rates: refuse to guess.
    if trimmed.ends_with("FLOPs") || trimmed.ends_with("flops") {
        return Err(syntax());
    }
    let (number, unit) = if let Some(rest) = strip_suffix_ci(trimmed, "flop/s") {
        (rest, Unit::Rate)
    } else if let Some(rest) = trimmed.strip_suffix("FLOPS") {
        (rest, Unit::Rate)
    } else if let Some(rest) = strip_suffix_ci(trimmed, "flop") {
        (rest, Unit::Count)
    } else {
        (trimmed, Unit::None)
    };
    let number = number.trim_end();
    // An SI prefix is only read when a unit follows it ("38 YFLOP"), so that a bare
    // "38Y" is not silently taken as 3.8e25.
    let (number, scale) = match number.chars().last() {
        Some(last) if unit != Unit::None => match SI_PREFIXES.iter().find(|(p, _)| *p == last) {
            Some((_, scale)) => (number[..number.len() - 1].trim_end(), *scale),
            None => (number, 1.0),
        },
        _ => (number, 1.0),
    };
    let value = parse_number(number).ok_or_else(syntax)?;
    let scaled = value * scale;
    check(scaled)?;
    Ok((scaled, unit))
}

fn strip_suffix_ci<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = text.len().checked_sub(suffix.len())?;
    let tail = text.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &text[..cut])
}

/// A decimal or scientific number, or `M x 10^E` / `M×10^E` / `M*10^E` / `10^E`.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Some((mantissa, exponent)) = text.split_once("10^") {
        let mantissa = mantissa.trim_end();
        let mantissa = if mantissa.is_empty() {
            1.0
        } else {
            let m = mantissa.strip_suffix(['x', 'X', '*', '×'])?.trim_end();
            plain_number(m)?
        };
        let exponent: i32 = exponent.trim().parse().ok()?;
        return Some(mantissa * 10f64.powi(exponent));
    }
    plain_number(text)
}

fn plain_number(text: &str) -> Option<f64> {
    // Rust's parser accepts "inf" and "NaN"; those are not quantities.
    if !text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'))
    {
        return None;
    }
    text.replace('_', "").parse().ok()
}

/// `value` with the largest SI prefix that keeps the mantissa at or above 1.
fn si(value: f64, unit: &str) -> String {
    let prefixes = [
        ("Q", 1e30),
        ("R", 1e27),
        ("Y", 1e24),
        ("Z", 1e21),
        ("E", 1e18),
        ("P", 1e15),
        ("T", 1e12),
        ("G", 1e9),
        ("M", 1e6),
        ("k", 1e3),
    ];
    for (prefix, scale) in prefixes {
        if value >= scale {
            return format!("{} {prefix}{unit}", three_digits(value / scale));
        }
    }
    format!("{} {unit}", three_digits(value))
}

/// Three significant digits without trailing zeros: 37.9, 989, 1.5.
pub(crate) fn three_digits(value: f64) -> String {
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_forms() {
        for text in [
            "3.8e25",
            "3.8e25 FLOP",
            "38 YFLOP",
            "38YFLOP",
            "3.8x10^25",
            "3.8 × 10^25",
            " 3.8E25 flop ",
        ] {
            let flop: Flop = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(
                (flop.get() / 3.8e25 - 1.0).abs() < 1e-12,
                "{text} -> {flop}"
            );
        }
        assert_eq!("10^26".parse::<Flop>().unwrap().get(), 1e26);
        assert_eq!("989 TFLOP/s".parse::<FlopRate>().unwrap().get(), 989e12);
        assert_eq!("989 TFLOPS".parse::<FlopRate>().unwrap().get(), 989e12);
    }

    #[test]
    fn refuses_what_is_not_a_quantity() {
        for text in [
            "",
            "NaN",
            "inf",
            "-1",
            "-1e25 FLOP",
            "1e999",
            "abc",
            "38 XFLOP",
            "38Y",
        ] {
            assert!(text.parse::<Flop>().is_err(), "{text:?} was accepted");
        }
        assert!(Flop::new(f64::NAN).is_err());
        assert!(Flop::new(f64::INFINITY).is_err());
        assert!(matches!(Flop::new(-1.0), Err(QuantityError::Negative(_))));
        assert_eq!(Flop::new(-0.0).unwrap().to_string(), "0 FLOP");
    }

    #[test]
    fn a_rate_is_not_a_count() {
        let err = "989 TFLOP/s".parse::<Flop>().unwrap_err();
        assert!(err.to_string().contains("rate"), "{err}");
        assert!("1e25 FLOP".parse::<FlopRate>().is_err());
        let ambiguous = "1e25 FLOPs".parse::<Flop>().unwrap_err();
        assert!(matches!(ambiguous, QuantityError::Syntax { .. }));
    }

    #[test]
    fn displays_scientific_and_si() {
        let flop = Flop::new(3.7908e25).unwrap();
        assert_eq!(flop.to_string(), "3.79e25 FLOP");
        assert_eq!(format!("{flop:.1}"), "3.8e25 FLOP");
        assert_eq!(flop.si(), "37.9 YFLOP");
        assert_eq!(FlopRate::new(9.894e14).unwrap().si(), "989 TFLOP/s");
        assert_eq!(Flop::new(1e26).unwrap().si(), "100 YFLOP");
        // Display output reads back to the same value at its precision.
        let back: Flop = flop.to_string().parse().unwrap();
        assert!((back.get() / 3.79e25 - 1.0).abs() < 1e-12);
    }

    #[test]
    fn overflow_is_an_error_not_infinity() {
        let big = Flop::new(f64::MAX).unwrap();
        assert_eq!(big.checked_add(big), Err(QuantityError::Infinite));
        let rate = FlopRate::new(1e300).unwrap();
        assert!(rate.over_seconds(1e300).is_err());
    }

    #[test]
    fn serde_accepts_numbers_and_text() {
        let from_number: Flop = serde_json::from_str("3.8e25").unwrap();
        let from_text: Flop = serde_json::from_str("\"38 YFLOP\"").unwrap();
        assert!((from_number.get() - from_text.get()).abs() < 1e12);
        assert!(serde_json::from_str::<Flop>("-5").is_err());
        assert_eq!(serde_json::to_string(&from_number).unwrap(), "3.8e+25");
    }
}
