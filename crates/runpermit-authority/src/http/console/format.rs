//! How the console writes times and quantities: times in UTC with the relative time beside
//! them, FLOP with the one formatter of `runpermit-compute`.

use maud::{Markup, html};

/// `2026-12-04 14:05 UTC` for unix milliseconds.
pub fn utc(ms: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// How long from `now_ms` to `ms`, in words: `in 3 hours`, `5 minutes ago`, `just now`.
pub fn relative(ms: i64, now_ms: i64) -> String {
    let delta = ms.saturating_sub(now_ms);
    let seconds = delta.unsigned_abs() / 1000;
    if seconds < 45 {
        return "just now".to_owned();
    }
    let (n, unit) = match seconds {
        s if s < 90 * 60 => (s.div_ceil(60).max(1), "minute"),
        s if s < 36 * 3600 => ((s + 1800) / 3600, "hour"),
        s if s < 60 * 86_400 => ((s + 43_200) / 86_400, "day"),
        s if s < 730 * 86_400 => ((s + 15 * 86_400) / (30 * 86_400), "month"),
        s => ((s + 182 * 86_400) / (365 * 86_400), "year"),
    };
    let unit = if n == 1 {
        unit.to_owned()
    } else {
        format!("{unit}s")
    };
    if delta > 0 {
        format!("in {n} {unit}")
    } else {
        format!("{n} {unit} ago")
    }
}

/// A time as people read it in the console: UTC, with the relative time beside it and the
/// exact instant in the `datetime` attribute.
pub fn when(ms: i64, now_ms: i64) -> Markup {
    html! {
        time datetime=(crate::domain::audit::rfc3339(ms)) { (utc(ms)) }
        " "
        span.relative { "(" (relative(ms, now_ms)) ")" }
    }
}

/// A time given in unix seconds (as in permits and log entries).
pub fn when_s(s: i64, now_ms: i64) -> Markup {
    when(s.saturating_mul(1000), now_ms)
}

/// FLOP, three significant digits: `2.18e26 FLOP`.
pub fn flop(value: f64) -> String {
    runpermit_compute::format_flop(value)
}

/// A share as a percentage with one decimal: `42.5%`.
pub fn percent(part: f64, whole: f64) -> String {
    if whole > 0.0 {
        format!("{:.1}%", part / whole * 100.0)
    } else {
        "–".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn times_are_utc_to_the_minute() {
        // 2026-01-02T03:04:05.678Z
        assert_eq!(utc(1_767_323_045_678), "2026-01-02 03:04 UTC");
    }

    #[test]
    fn relative_times_read_naturally_both_ways() {
        let now = 1_767_323_045_678;
        assert_eq!(relative(now, now), "just now");
        assert_eq!(relative(now - 30_000, now), "just now");
        assert_eq!(relative(now - 60_000, now), "1 minute ago");
        assert_eq!(relative(now + 5 * 60_000, now), "in 5 minutes");
        assert_eq!(relative(now - 3 * HOUR, now), "3 hours ago");
        assert_eq!(relative(now + 3 * 24 * HOUR, now), "in 3 days");
        assert_eq!(relative(now - 90 * 24 * HOUR, now), "3 months ago");
        assert_eq!(relative(now + 3 * 365 * 24 * HOUR, now), "in 3 years");
    }

    #[test]
    fn when_names_the_instant_and_escapes_nothing_it_should_not() {
        let now = 1_767_323_045_678;
        let html = when(now - 2 * HOUR, now).into_string();
        assert!(
            html.contains("datetime=\"2026-01-02T01:04:05.678Z\""),
            "{html}"
        );
        assert!(html.contains("2026-01-02 01:04 UTC"), "{html}");
        assert!(html.contains("(2 hours ago)"), "{html}");
    }

    #[test]
    fn flop_and_percent_use_one_formatter() {
        assert_eq!(flop(2.18e26), runpermit_compute::format_flop(2.18e26));
        assert_eq!(percent(1.0, 8.0), "12.5%");
        assert_eq!(percent(1.0, 0.0), "–");
    }
}
