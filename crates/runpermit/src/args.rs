//! Command-line argument errors (exit status 2) and the value parsers of flags, each naming
//! the forms it accepts.
//!
//! The numeric flags that use these parsers are declared with `allow_hyphen_values`, so that
//! `--params -5` reaches the parser and is refused for what it is ("must be positive")
//! instead of being taken for an unknown flag.

use std::fmt;

use runpermit_compute::{Flop, Precision, parse_count};

/// The command line is wrong; the message names the flag and what it accepts.
#[derive(Debug)]
pub struct ArgError(pub String);

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgError {}

/// A value that is another flag: the flag before it was given no value.
fn flag_instead_of_value(text: &str) -> Result<(), String> {
    if text.starts_with("--") {
        return Err(format!("needs a value; found the flag {text}"));
    }
    Ok(())
}

const COUNT_FORMS: &str = "such as 405e9, 405B or 15.6T (suffixes k, M, B or G, T)";

/// A positive count such as `405e9`, `405B` or `15.6T`.
pub fn count(text: &str) -> Result<f64, String> {
    flag_instead_of_value(text)?;
    match parse_count(text) {
        Some(v) if v > 0.0 => Ok(v),
        Some(_) => Err(format!("must be positive, {COUNT_FORMS}")),
        None => Err(format!("expected a positive number {COUNT_FORMS}")),
    }
}

/// A positive whole number, with the same suffixes as [`count`]: `16384`, `16k`, `1.5M`.
pub fn whole(text: &str) -> Result<u64, String> {
    const FORMS: &str = "such as 16384, 16k or 1.5M (suffixes k, M, B or G, T)";
    flag_instead_of_value(text)?;
    let value = parse_count(text).ok_or_else(|| format!("expected a whole number {FORMS}"))?;
    if value <= 0.0 {
        return Err(format!("must be positive, {FORMS}"));
    }
    if value.fract() != 0.0 {
        return Err(format!("must be a whole number, {FORMS}"));
    }
    // 2^53: every whole number up to it is exact in f64, and no count here comes close.
    if value > 9_007_199_254_740_992.0 {
        return Err(format!("is too large; {FORMS}"));
    }
    // A whole number below 2^53 converts exactly.
    Ok(value as u64)
}

/// A positive decimal such as `2` or `1.5`.
pub fn positive(text: &str) -> Result<f64, String> {
    flag_instead_of_value(text)?;
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(v) if v.is_finite() => Err("must be positive, such as 2 or 1.5".to_owned()),
        _ => Err("expected a positive number such as 2 or 1.5".to_owned()),
    }
}

/// A FLOP count such as `3.8e25`, `38 YFLOP` or `3.8e25 FLOP`.
pub fn flop(text: &str) -> Result<Flop, String> {
    flag_instead_of_value(text)?;
    text.parse::<Flop>().map_err(|e| e.to_string())
}

/// A utilization: `0.38` or `38%`, in (0, 1].
pub fn fraction(text: &str) -> Result<f64, String> {
    flag_instead_of_value(text)?;
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    };
    match value {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err("expected a utilization in (0, 1] such as 0.38 or 38%".to_owned()),
    }
}

/// A utilization range `LOW-HIGH` or `LOW..HIGH`, e.g. `0.3-0.45` or `30%..45%`.
pub fn fraction_range(text: &str) -> Result<(f64, f64), String> {
    flag_instead_of_value(text)?;
    let expected = "expected a utilization range LOW-HIGH such as 0.3-0.45 or 30%..45%";
    let (low, high) = text
        .split_once("..")
        .or_else(|| text.split_once('-'))
        .ok_or_else(|| expected.to_owned())?;
    let (low, high) = (
        fraction(low).map_err(|_| expected.to_owned())?,
        fraction(high).map_err(|_| expected.to_owned())?,
    );
    if low > high {
        return Err(format!("the low end {low} is above the high end {high}"));
    }
    Ok((low, high))
}

/// A precision name.
pub fn precision(text: &str) -> Result<Precision, String> {
    text.parse::<Precision>().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_accept_the_documented_forms() {
        assert_eq!(count("405B"), Ok(405e9));
        assert_eq!(fraction("38%"), Ok(0.38));
        assert_eq!(fraction_range("0.3-0.45"), Ok((0.3, 0.45)));
        assert_eq!(fraction_range("30%..45%"), Ok((0.3, 0.45)));
        assert_eq!(whole("16384"), Ok(16384));
        assert_eq!(whole("1k"), Ok(1000));
        assert_eq!(whole("1.5M"), Ok(1_500_000));
        assert!(fraction("1.2").is_err());
        assert!(fraction_range("0.5-0.3").is_err());
        assert!(positive("0").is_err());
    }

    #[test]
    fn refusals_name_the_problem() {
        assert!(count("-5").unwrap_err().starts_with("must be positive"));
        assert!(count("0").unwrap_err().starts_with("must be positive"));
        assert!(
            count("lots")
                .unwrap_err()
                .starts_with("expected a positive number")
        );
        assert!(whole("-5").unwrap_err().starts_with("must be positive"));
        assert!(
            whole("1.5")
                .unwrap_err()
                .starts_with("must be a whole number")
        );
        assert!(whole("1e300").unwrap_err().starts_with("is too large"));
        assert!(positive("-2").unwrap_err().starts_with("must be positive"));
        assert_eq!(
            count("--tokens").unwrap_err(),
            "needs a value; found the flag --tokens"
        );
    }
}
