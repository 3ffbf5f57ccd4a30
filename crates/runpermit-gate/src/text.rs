//! Small text helpers for messages.

/// `unix` seconds as RFC 3339 UTC: the permit crate's clock-free formatter.
pub(crate) use runpermit_permit::utc;

/// Whether `s` is usable as an identifier: not empty, no surrounding whitespace, no
/// control characters.
pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty() && s.trim() == s && !s.chars().any(char::is_control)
}

/// A duration in seconds, in words, to two units at most: `45 s`, `5 min`, `2 min 5 s`,
/// `3 h`, `1 h 5 min`, `2 d 4 h`.
pub(crate) fn duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (major, major_unit, minor, minor_unit) = match s {
        0..60 => return format!("{s} s"),
        60..3600 => (s / 60, "min", s % 60, "s"),
        3600..86_400 => (s / 3600, "h", s % 3600 / 60, "min"),
        _ => (s / 86_400, "d", s % 86_400 / 3600, "h"),
    };
    if minor == 0 {
        format!("{major} {major_unit}")
    } else {
        format!("{major} {major_unit} {minor} {minor_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_seconds_as_rfc3339() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
        let _ = utc(i64::MAX);
        let _ = utc(i64::MIN);
    }

    #[test]
    fn ids_and_durations() {
        assert!(is_id("org-cloud"));
        assert!(!is_id(""));
        assert!(!is_id(" x"));
        assert!(!is_id("a\nb"));
        assert_eq!(duration(-5), "0 s");
        assert_eq!(duration(45), "45 s");
        assert_eq!(duration(60), "1 min");
        assert_eq!(duration(125), "2 min 5 s");
        assert_eq!(duration(3600), "1 h");
        assert_eq!(duration(3900), "1 h 5 min");
        assert_eq!(duration(2 * 86_400 + 4 * 3600 + 7), "2 d 4 h");
    }
}
