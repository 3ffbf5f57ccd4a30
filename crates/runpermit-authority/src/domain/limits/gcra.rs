//! The generic cell rate algorithm (GCRA), as Boulder's `ratelimits` uses it: a token bucket
//! kept as one number per key, its *theoretical arrival time* (TAT). A full bucket has a TAT
//! at or before now; each cell spent moves it one emission interval (`period / count`) later;
//! a spend is allowed while the TAT stays within `burst` intervals of now.
//!
//! Pure: time is an argument, in microseconds.

use super::Rate;

impl Rate {
    /// Microseconds for one cell to come back: `period / count`, at least 1.
    fn emission_us(&self) -> i64 {
        let period_us = i64::try_from(self.period_s)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000);
        (period_us / i64::from(self.count.max(1))).max(1)
    }

    /// How far ahead of now the TAT may be: `burst` emission intervals.
    fn tolerance_us(&self) -> i64 {
        self.emission_us().saturating_mul(i64::from(self.burst))
    }
}

/// Spends `cost` cells at `now` from a bucket at `tat` (`None`: never used, full). `Ok` holds
/// the new TAT; `Err` the microseconds to wait until `cost` cells are there (a `cost` above
/// `burst` never is: callers keep costs within the burst).
pub(crate) fn spend(rate: &Rate, tat: Option<i64>, cost: u32, now: i64) -> Result<i64, i64> {
    let base = tat.map_or(now, |t| t.max(now));
    let new = base.saturating_add(rate.emission_us().saturating_mul(i64::from(cost)));
    let over = new.saturating_sub(now).saturating_sub(rate.tolerance_us());
    if over <= 0 { Ok(new) } else { Err(over) }
}

/// Takes `cost` cells that have already been used (failures counted after the fact): the new
/// TAT, which leaves the bucket empty at worst, never in debt, so a burst of failures blocks
/// a key for one emission interval rather than for as long as the burst was large.
pub(crate) fn charge(rate: &Rate, tat: Option<i64>, cost: u32, now: i64) -> i64 {
    let base = tat.map_or(now, |t| t.max(now));
    base.saturating_add(rate.emission_us().saturating_mul(i64::from(cost)))
        .min(now.saturating_add(rate.tolerance_us()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn rate(burst: u32, count: u32, period_s: u64) -> Rate {
        Rate {
            burst,
            count,
            period_s,
        }
    }

    #[test]
    fn a_full_bucket_gives_its_burst_then_one_cell_per_interval() {
        let r = rate(3, 60, 60); // a cell a second, three at once
        let now = 1_000 * S;
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(spend(&r, tat, 1, now).expect("within the burst"));
        }
        assert_eq!(
            spend(&r, tat, 1, now),
            Err(S),
            "the fourth waits one interval"
        );
        assert_eq!(spend(&r, tat, 1, now + S), Ok(now + 4 * S));
        // Unused time refills up to the burst, never beyond it.
        assert!(spend(&r, tat, 3, now + 100 * S).is_ok());
        assert!(spend(&r, tat, 4, now + 100 * S).is_err());
    }

    #[test]
    fn a_refused_spend_takes_nothing_and_says_how_long_to_wait() {
        let r = rate(10, 10, 3600); // ten an hour
        let now = 5 * S;
        let tat = spend(&r, None, 10, now).expect("the whole burst");
        assert_eq!(spend(&r, Some(tat), 1, now), Err(360 * S));
        assert_eq!(spend(&r, Some(tat), 2, now), Err(720 * S));
        assert_eq!(spend(&r, Some(tat), 1, now + 360 * S), Ok(tat + 360 * S));
    }

    #[test]
    fn costs_count_as_that_many_cells() {
        let r = rate(5000, 5000, 60);
        let now = 0;
        let tat = spend(&r, None, 4999, now).expect("fits");
        assert!(spend(&r, Some(tat), 2, now).is_err());
        assert!(spend(&r, Some(tat), 1, now).is_ok());
    }

    #[test]
    fn charged_failures_empty_the_bucket_but_never_overdraw_it() {
        let r = rate(20, 20, 60); // an interval of 3 s
        let now = 100 * S;
        let tat = charge(&r, None, 5000, now);
        assert_eq!(tat, now + 60 * S, "empty, not 5000 cells in debt");
        assert_eq!(spend(&r, Some(tat), 1, now), Err(3 * S));
        assert!(spend(&r, Some(tat), 1, now + 3 * S).is_ok());
    }

    #[test]
    fn extreme_rates_and_times_do_not_overflow() {
        let r = rate(u32::MAX, 1, u64::MAX);
        assert!(spend(&r, Some(i64::MAX), u32::MAX, i64::MAX).is_ok());
        assert_eq!(charge(&r, None, u32::MAX, i64::MAX), i64::MAX);
        let fast = rate(1, u32::MAX, 1);
        assert_eq!(
            spend(&fast, None, 1, 0),
            Ok(1),
            "at least a microsecond a cell"
        );
    }
}
