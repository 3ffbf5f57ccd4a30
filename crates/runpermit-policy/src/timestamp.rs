//! RFC 3339 dates and date-times, read by hand into unix seconds (no clock, no time zone
//! database: only `Z` and numeric offsets).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The forms [`parse_timestamp`] accepts, for error messages.
pub const TIMESTAMP_FORMS: &str = "an RFC 3339 date (2026-03-01, midnight UTC) or date-time with offset (2026-03-01T09:30:00Z, 2026-03-01T09:30:00+01:00)";

/// The key under which the `toml` crate hands a native date-time to serde.
const TOML_DATETIME_KEY: &str = "$__toml_private_datetime";

/// A date or date-time as written in a run plan. It keeps its text (so that a plan's digest
/// covers what the applicant wrote); [`Timestamp::unix`] reads it.
///
/// Accepts a string in JSON or TOML, and TOML's native dates (`start = 2026-03-01`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timestamp(pub String);

impl Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z, or what is wrong with the text.
    pub fn unix(&self) -> Result<i64, String> {
        parse_timestamp(&self.0)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;

        impl<'de> Visitor<'de> for TimestampVisitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(TIMESTAMP_FORMS)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Ok(Timestamp(v.to_owned()))
            }

            /// TOML hands its native date-times to serde as a one-entry map whose value is
            /// the date-time's text.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Timestamp, A::Error> {
                if map.next_key::<String>()?.as_deref() != Some(TOML_DATETIME_KEY) {
                    return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
                }
                let text: String = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
                }
                Ok(Timestamp(text))
            }
        }

        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// Reads an RFC 3339 date (`2026-03-01`: midnight UTC at the start of that day) or date-time
/// with a `Z` or `±HH:MM` offset (`2026-03-01T09:30:00Z`; `t` or a space may separate date
/// and time; fractions of a second are dropped) into unix seconds. A date-time without an
/// offset is refused: the time it names depends on a time zone that is not given.
pub fn parse_timestamp(text: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("{why} in {text:?}: expected {TIMESTAMP_FORMS}");
    let b = text.as_bytes();
    if b.len() < 10 {
        return Err(bad("too short"));
    }
    let year = digits(b, 0, 4).ok_or_else(|| bad("bad year"))?;
    if b[4] != b'-' || b[7] != b'-' {
        return Err(bad("the date must be YYYY-MM-DD"));
    }
    let month = digits(b, 5, 2).ok_or_else(|| bad("bad month"))?;
    let day = digits(b, 8, 2).ok_or_else(|| bad("bad day"))?;
    if !(1..=12).contains(&month) {
        return Err(bad("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(bad("day out of range"));
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Ok(days * 86_400);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 19 {
        return Err(bad("the time must follow as THH:MM:SS"));
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad("the time must be HH:MM:SS"));
    }
    let hour = digits(b, 11, 2).ok_or_else(|| bad("bad hour"))?;
    let minute = digits(b, 14, 2).ok_or_else(|| bad("bad minute"))?;
    let second = digits(b, 17, 2).ok_or_else(|| bad("bad second"))?;
    // 60 is a leap second, which RFC 3339 allows.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("time out of range"));
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(bad("digits must follow the decimal point"));
        }
    }
    let offset = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let oh = digits(b, i + 1, 2).ok_or_else(|| bad("bad offset hour"))?;
            let om = digits(b, i + 4, 2).ok_or_else(|| bad("bad offset minute"))?;
            if oh > 23 || om > 59 {
                return Err(bad("offset out of range"));
            }
            let seconds = oh * 3600 + om * 60;
            if *sign == b'+' { seconds } else { -seconds }
        }
        [] => return Err(bad("a date-time needs an offset (Z or +HH:MM)")),
        _ => return Err(bad("unexpected text after the time")),
    };
    Ok(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let slice = b.get(at..at + n)?;
    slice.iter().try_fold(0i64, |acc, c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_date_times() {
        assert_eq!(parse_timestamp("1970-01-01"), Ok(0));
        assert_eq!(parse_timestamp("2026-03-01"), Ok(1_772_323_200));
        assert_eq!(parse_timestamp("2026-03-01T00:00:00Z"), Ok(1_772_323_200));
        assert_eq!(
            parse_timestamp("2026-03-01T01:00:00+01:00"),
            Ok(1_772_323_200)
        );
        assert_eq!(
            parse_timestamp("2026-02-28 23:00:00.123-01:00"),
            Ok(1_772_323_200)
        );
        assert_eq!(parse_timestamp("2000-02-29T12:00:00z"), Ok(951_825_600));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59Z"), Ok(-1));
    }

    #[test]
    fn refused_forms_say_why() {
        for (text, why) in [
            ("2026/03/01", "YYYY-MM-DD"),
            ("2026-02-30", "day out of range"),
            ("2025-02-29", "day out of range"),
            ("2026-13-01", "month out of range"),
            ("2026-03-01T10:00:00", "offset"),
            ("2026-03-01T24:00:00Z", "time out of range"),
            ("2026-03-01T10:00:00Zjunk", "unexpected text"),
            ("2026-03-01T10:00", "THH:MM:SS"),
            ("2026", "too short"),
            ("next tuesday", "bad year"),
        ] {
            let err = parse_timestamp(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
