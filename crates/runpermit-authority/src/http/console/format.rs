//! How the console writes times and quantities: times in UTC with the relative time beside
//! them, FLOP and counts with the formatters of `runpermit-compute`, and a permit's accounting
//! basis in words (the desk's run page and the public permit page say it alike).

use maud::{Markup, html};
use runpermit_compute::AccountingBasis;

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

/// The number of a FLOP figure alone, for a compact range: `8.40e24`.
pub fn flop_number(value: f64) -> String {
    runpermit_compute::format_flop_number(value)
}

/// A count as model cards write it: `405B`, `15.6T`.
pub fn count(value: f64) -> String {
    runpermit_compute::format_count(value)
}

/// A fraction as a whole percentage: `38%`.
pub fn fraction(value: f64) -> String {
    format!("{:.0}%", value * 100.0)
}

/// How a permit counts compute, in a sentence without its full stop: `Compute is counted at
/// bf16 with 38% utilization (35–43%), 405B parameters per token`; a permit without a basis
/// (signed before claim-set version 3) counts every accelerator-second at the chips' highest
/// peak.
pub fn accounting_basis(basis: Option<&AccountingBasis>) -> String {
    let Some(b) = basis else {
        return "Compute is counted at the chips' highest peak (the permit declares no \
                precision or utilization)"
            .to_owned();
    };
    let parameters = match b.parameters {
        Some(n) => format!("{} parameters per token", count(n)),
        None => "parameters per token not declared".to_owned(),
    };
    format!(
        "Compute is counted at {} with {} utilization ({:.0}–{}), {parameters}",
        b.precision,
        fraction(b.utilization),
        b.utilization_low * 100.0,
        fraction(b.utilization_high),
    )
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
        assert_eq!(flop_number(8.4e24), "8.40e24");
        assert_eq!(count(4.05e11), "405B");
        assert_eq!(fraction(0.38), "38%");
    }

    #[test]
    fn the_accounting_basis_reads_as_a_sentence() {
        let mut basis = AccountingBasis {
            precision: runpermit_compute::Precision::Bf16,
            utilization: 0.38,
            utilization_low: 0.35,
            utilization_high: 0.43,
            parameters: Some(405e9),
        };
        assert_eq!(
            accounting_basis(Some(&basis)),
            "Compute is counted at bf16 with 38% utilization (35–43%), 405B parameters per token"
        );
        basis.parameters = None;
        assert!(accounting_basis(Some(&basis)).ends_with("parameters per token not declared"));
        assert!(accounting_basis(None).contains("counted at the chips' highest peak"));
    }
}
