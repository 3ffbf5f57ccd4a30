//! Usage errors (exit code 2) and the value parsers that name the accepted forms.

use std::fmt;

use runpermit_compute::{Flop, Precision, parse_count};

/// The command line is wrong; the message names the flag and what it accepts.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A positive count such as `405e9`, `405B` or `15.6T`.
pub fn count(text: &str) -> Result<f64, String> {
    match parse_count(text) {
        Some(v) if v > 0.0 => Ok(v),
        _ => Err("expected a positive number such as 405e9, 405B or 15.6T".to_owned()),
    }
}

/// A positive decimal such as `2` or `1.5`.
pub fn positive(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("expected a positive number such as 2 or 1.5".to_owned()),
    }
}

/// A FLOP count such as `3.8e25`, `38 YFLOP` or `3.8e25 FLOP`.
pub fn flop(text: &str) -> Result<Flop, String> {
    text.parse::<Flop>().map_err(|e| e.to_string())
}

/// A utilization: `0.38` or `38%`, in (0, 1].
pub fn fraction(text: &str) -> Result<f64, String> {
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
        assert!(fraction("1.2").is_err());
        assert!(fraction_range("0.5-0.3").is_err());
        assert!(count("-5").is_err());
        assert!(positive("0").is_err());
    }
}
