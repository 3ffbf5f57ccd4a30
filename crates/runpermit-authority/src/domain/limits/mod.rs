//! Rate limits, the way Let's Encrypt's Boulder names them: every limit has a name, a default
//! bucket (`burst` at once, refilled at `count` per `period`) and per-id overrides, all set in
//! the `[limits]` section of `runpermit serve`'s configuration (docs/operations.md).
//!
//! A refused request answers 429 with `Retry-After` and the limit's name, spends nothing, and
//! is counted in `/metrics` as `runpermit_rate_limited_total{limit}`. Several limits checked
//! for one request ([`Limits::admit`]) are all spent or none is.
//!
//! Buckets live in this process's memory (a GCRA time per key, [`gcra`]), read the
//! authority's injected clock, and forget keys whose bucket has refilled. Processes sharing a
//! database keep their own buckets: behind a load balancer over `n` processes a client may get
//! up to `n` times a limit.

pub mod address;
mod gcra;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize};

use crate::domain::error::DomainError;

/// A named limit: what it counts, and per what.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Requests that read (GET) from one source address.
    ReadsPerAddress,
    /// Requests that write (POST, PUT), public or not, from one source address: checked before
    /// anything else, the token included.
    WritesPerAddress,
    /// Authenticated writes made with one API token.
    WritesPerToken,
    /// Authenticated writes made by the members of one organization.
    WritesPerOrg,
    /// Applications created or submitted (`POST /v1/applications`, `…/submit`) with one token.
    ApplicationsPerToken,
    /// Applications created or submitted by the members of one organization.
    ApplicationsPerOrg,
    /// API tokens created (`POST /v1/members/{id}/tokens`) with one token.
    TokensPerToken,
    /// API tokens created by the members of one organization.
    TokensPerOrg,
    /// Usage reports posted to `POST /v1/usage` from one source address (each report is one
    /// cell: the signature checks are the work).
    UsageReportsPerAddress,
    /// Usage reports whose signature failed to verify, per reporting key (`kid`) and source
    /// address: once the bucket is empty, batches with that `kid` from that address are
    /// refused before any verification. Per address too, so that a forger who learned a
    /// provider's `kid` cannot stop the provider's own gate from reporting.
    UsageFailedVerificationsPerKid,
}

impl Limit {
    /// Every limit, in documentation order.
    pub const ALL: &'static [Limit] = &[
        Limit::ReadsPerAddress,
        Limit::WritesPerAddress,
        Limit::WritesPerToken,
        Limit::WritesPerOrg,
        Limit::ApplicationsPerToken,
        Limit::ApplicationsPerOrg,
        Limit::TokensPerToken,
        Limit::TokensPerOrg,
        Limit::UsageReportsPerAddress,
        Limit::UsageFailedVerificationsPerKid,
    ];

    /// The name in configuration, answers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::ReadsPerAddress => "reads_per_address",
            Limit::WritesPerAddress => "writes_per_address",
            Limit::WritesPerToken => "writes_per_token",
            Limit::WritesPerOrg => "writes_per_org",
            Limit::ApplicationsPerToken => "applications_per_token",
            Limit::ApplicationsPerOrg => "applications_per_org",
            Limit::TokensPerToken => "tokens_per_token",
            Limit::TokensPerOrg => "tokens_per_org",
            Limit::UsageReportsPerAddress => "usage_reports_per_address",
            Limit::UsageFailedVerificationsPerKid => "usage_failed_verifications_per_kid",
        }
    }

    /// What the limit is kept per: the kind of id its overrides name.
    pub fn per(self) -> Per {
        match self {
            Limit::ReadsPerAddress | Limit::WritesPerAddress | Limit::UsageReportsPerAddress => {
                Per::Address
            }
            Limit::WritesPerToken | Limit::ApplicationsPerToken | Limit::TokensPerToken => {
                Per::Token
            }
            Limit::WritesPerOrg | Limit::ApplicationsPerOrg | Limit::TokensPerOrg => {
                Per::Organization
            }
            Limit::UsageFailedVerificationsPerKid => Per::ReportingKey,
        }
    }

    /// The built-in bucket: far above what a lab, a provider's gates or a reviewer do in normal
    /// operation, far below what a script run against the authority does.
    pub fn default_rate(self) -> Rate {
        let (burst, count, period_s) = match self {
            Limit::ReadsPerAddress => (6000, 6000, 60),
            Limit::WritesPerAddress => (1200, 1200, 60),
            Limit::WritesPerToken => (600, 600, 60),
            Limit::WritesPerOrg => (1200, 1200, 60),
            Limit::ApplicationsPerToken => (60, 60, 3600),
            Limit::ApplicationsPerOrg => (200, 200, 3600),
            Limit::TokensPerToken => (30, 30, 3600),
            Limit::TokensPerOrg => (100, 100, 3600),
            Limit::UsageReportsPerAddress => (20_000, 20_000, 60),
            Limit::UsageFailedVerificationsPerKid => (20, 20, 60),
        };
        Rate {
            burst,
            count,
            period_s,
        }
    }

    /// The smallest burst the limit accepts: a whole `POST /v1/usage` batch must fit.
    fn min_burst(self) -> u32 {
        match self {
            Limit::UsageReportsPerAddress => {
                u32::try_from(crate::domain::usage_batch::MAX_REPORTS_PER_REQUEST)
                    .unwrap_or(u32::MAX)
            }
            _ => 1,
        }
    }
}

/// What a limit keeps a bucket per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Per {
    /// A source address (an IPv6 /64).
    Address,
    /// An API token, by its id.
    Token,
    /// An organization, by its id.
    Organization,
    /// A provider's usage-reporting key and the source address using it; overrides name the
    /// `kid` (see [`kid_from`]).
    ReportingKey,
}

impl fmt::Display for Per {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Per::Address => "address",
            Per::Token => "token",
            Per::Organization => "organization",
            Per::ReportingKey => "reporting key",
        })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token bucket: `burst` cells at once, refilled at `count` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Cells a full bucket holds: how many requests may come at once.
    pub burst: u32,
    /// Cells that come back per `period`.
    pub count: u32,
    /// The period in seconds; written `"30s"`, `"1m"`, `"1h"` or `"1d"` in configuration.
    #[serde(rename = "period", deserialize_with = "period")]
    pub period_s: u64,
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {}", self.count, period_text(self.period_s))?;
        if self.burst != self.count {
            write!(f, " (burst {})", self.burst)?;
        }
        Ok(())
    }
}

/// The longest period a limit may have: a week.
const MAX_PERIOD_S: u64 = 7 * 86_400;

fn period<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = String::deserialize(d)?;
    parse_period(&text).map_err(serde::de::Error::custom)
}

/// `"90s"`, `"1m"`, `"3h"`, `"1d"` in seconds.
fn parse_period(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.len().saturating_sub(1);
    let (number, unit) = (text.get(..split).unwrap_or(""), text.get(split..));
    let scale = match unit {
        Some("s") => 1,
        Some("m") => 60,
        Some("h") => 3600,
        Some("d") => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if scale > 0 && n > 0 && n.saturating_mul(scale) <= MAX_PERIOD_S => Ok(n * scale),
        _ => Err(format!(
            "period {text:?}: expected a whole number of seconds, minutes, hours or days such as \
             \"30s\", \"1m\", \"1h\" or \"1d\", from 1s to 7d"
        )),
    }
}

fn period_text(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The `[limits]` section of the authority's configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Buckets replacing the built-in ones, by limit name.
    #[serde(default)]
    pub defaults: BTreeMap<Limit, Rate>,
    /// Buckets for particular ids (an organization, a token, an address, a `kid`).
    #[serde(default)]
    pub overrides: Vec<Override>,
    /// Reverse proxies (IP addresses or CIDR ranges) whose `X-Forwarded-For` header names the
    /// client; from anyone else the TCP peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// A bucket for some ids of one limit (`[[limits.overrides]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The limit.
    pub limit: Limit,
    /// The ids it applies to: organization ids (`org_…`), token ids (`tok_…`), addresses
    /// (IPv4, or an IPv6 address standing for its /64) or `kid`s, as the limit counts.
    pub ids: Vec<String>,
    /// See [`Rate::burst`].
    pub burst: u32,
    /// See [`Rate::count`].
    pub count: u32,
    /// See [`Rate::period_s`].
    #[serde(deserialize_with = "period")]
    pub period: u64,
    /// Why: a ticket, a name.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Between a `kid` and a source address in the ids of
/// [`Limit::UsageFailedVerificationsPerKid`].
const FROM: &str = " from ";

/// The id under which [`Limit::UsageFailedVerificationsPerKid`] counts `kid`'s failures from
/// `address` (`kid` alone when the address is unknown).
pub fn kid_from(kid: &str, address: Option<&str>) -> String {
    match address {
        Some(address) => format!("{kid}{FROM}{address}"),
        None => kid.to_owned(),
    }
}

/// Keys held before a sweep drops the ones whose bucket has refilled.
const SWEEP_AT_LEAST: usize = 4096;

/// The least time between two sweeps, in microseconds: a sweep walks every key.
const SWEEP_EVERY_US: i64 = 1_000_000;

/// The limits in force and their buckets.
pub struct Limits {
    rates: BTreeMap<Limit, Rate>,
    overrides: HashMap<(Limit, String), Rate>,
    trusted_proxies: Vec<address::IpRange>,
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    /// The TAT (unix microseconds) of each (limit, id) whose bucket is not full.
    tat: HashMap<(Limit, String), i64>,
    /// When the last sweep ran (unix microseconds).
    swept_at: i64,
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("rates", &self.rates)
            .field("overrides", &self.overrides.len())
            .finish_non_exhaustive()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::new(LimitsConfig::default())
            .unwrap_or_else(|_| unreachable!("the defaults are valid"))
    }
}

impl Limits {
    /// The limits `config` sets over the built-in ones; `Err` lists every problem, each
    /// naming its place in the `[limits]` section.
    pub fn new(config: LimitsConfig) -> Result<Limits, Vec<String>> {
        let mut problems = Vec::new();
        let mut rates: BTreeMap<Limit, Rate> =
            Limit::ALL.iter().map(|&l| (l, l.default_rate())).collect();
        for (&limit, &rate) in &config.defaults {
            check_rate(
                limit,
                &rate,
                &format!("limits.defaults.{limit}"),
                &mut problems,
            );
            rates.insert(limit, rate);
        }
        let mut overrides = HashMap::new();
        for (i, o) in config.overrides.iter().enumerate() {
            let at = format!("limits.overrides[{i}]");
            let rate = Rate {
                burst: o.burst,
                count: o.count,
                period_s: o.period,
            };
            check_rate(o.limit, &rate, &at, &mut problems);
            if o.ids.is_empty() {
                problems.push(format!("{at}.ids: name at least one {}", o.limit.per()));
            }
            for id in &o.ids {
                let key = match o.limit.per() {
                    Per::Address => match address::override_address(id) {
                        Ok(key) => key,
                        Err(e) => {
                            problems.push(format!("{at}.ids: {e}"));
                            continue;
                        }
                    },
                    _ => id.trim().to_owned(),
                };
                if overrides.insert((o.limit, key), rate).is_some() {
                    problems.push(format!(
                        "{at}.ids: {id:?} has another override of {} already",
                        o.limit
                    ));
                }
            }
        }
        let mut trusted_proxies = Vec::new();
        for (i, p) in config.trusted_proxies.iter().enumerate() {
            match p.parse() {
                Ok(range) => trusted_proxies.push(range),
                Err(e) => problems.push(format!("limits.trusted_proxies[{i}]: {e}")),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Limits {
            rates,
            overrides,
            trusted_proxies,
            buckets: Mutex::new(Buckets::default()),
        })
    }

    /// One line for the start-up report: what differs from the built-in limits.
    pub fn summary(&self) -> String {
        let changed = self
            .rates
            .iter()
            .filter(|(l, r)| l.default_rate() != **r)
            .count();
        if changed == 0 && self.overrides.is_empty() && self.trusted_proxies.is_empty() {
            return "built-in".to_owned();
        }
        format!(
            "{changed} default(s) changed, {} override id(s), {} trusted prox(ies)",
            self.overrides.len(),
            self.trusted_proxies.len()
        )
    }

    /// The bucket `limit` has for `id`: its override, else the limit's default.
    pub fn rate(&self, limit: Limit, id: &str) -> Rate {
        let named = match limit.per() {
            Per::ReportingKey => id.split(FROM).next().unwrap_or(id),
            _ => id,
        };
        self.overrides
            .get(&(limit, named.to_owned()))
            .or_else(|| self.rates.get(&limit))
            .copied()
            .unwrap_or_else(|| limit.default_rate())
    }

    /// Spends `cost` cells of each `(limit, id, cost)` at `now_ms`, all of them or, when any
    /// bucket lacks its cells, none: then 429 naming the limit that makes the caller wait
    /// longest.
    pub fn admit(&self, now_ms: i64, charges: &[(Limit, &str, u32)]) -> Result<(), DomainError> {
        let now = now_ms.saturating_mul(1000);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let mut spent = Vec::with_capacity(charges.len());
        let mut refusal: Option<(i64, Limit, &str)> = None;
        for &(limit, id, cost) in charges {
            let rate = self.rate(limit, id);
            let key = (limit, id.to_owned());
            let tat = buckets.tat.get(&key).copied();
            match gcra::spend(&rate, tat, cost, now) {
                Ok(new) => spent.push((key, new)),
                Err(wait) if refusal.is_none_or(|(w, _, _)| wait > w) => {
                    refusal = Some((wait, limit, id));
                }
                Err(_) => {}
            }
        }
        if let Some((wait, limit, id)) = refusal {
            drop(buckets);
            return Err(self.refusal(limit, id, wait));
        }
        buckets.tat.extend(spent);
        buckets.sweep(now);
        Ok(())
    }

    /// 429 when `limit`'s bucket for `id` does not hold `cost` cells now; spends nothing.
    pub fn peek(&self, now_ms: i64, limit: Limit, id: &str, cost: u32) -> Result<(), DomainError> {
        let now = now_ms.saturating_mul(1000);
        let tat = {
            let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            buckets.tat.get(&(limit, id.to_owned())).copied()
        };
        gcra::spend(&self.rate(limit, id), tat, cost, now)
            .map(drop)
            .map_err(|wait| self.refusal(limit, id, wait))
    }

    /// Takes `cost` cells already used (failures counted after the work), emptying the bucket
    /// at worst.
    pub fn charge(&self, now_ms: i64, limit: Limit, id: &str, cost: u32) {
        let now = now_ms.saturating_mul(1000);
        let rate = self.rate(limit, id);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let key = (limit, id.to_owned());
        let tat = gcra::charge(&rate, buckets.tat.get(&key).copied(), cost, now);
        buckets.tat.insert(key, tat);
        buckets.sweep(now);
    }

    fn refusal(&self, limit: Limit, id: &str, wait_us: i64) -> DomainError {
        metrics::counter!("runpermit_rate_limited_total", "limit" => limit.as_str()).increment(1);
        let retry_after_s = u64::try_from(wait_us)
            .unwrap_or(0)
            .div_ceil(1_000_000)
            .max(1);
        tracing::info!(%limit, id, retry_after_s, "rate limited");
        DomainError::RateLimited {
            limit: limit.as_str(),
            retry_after_s,
            message: format!(
                "rate limit {limit} reached for {} {id}: {}; retry in {retry_after_s} s",
                limit.per(),
                self.rate(limit, id)
            ),
        }
    }
}

impl Buckets {
    /// Drops the keys whose bucket has refilled (a TAT not after `now` is a full bucket, the
    /// same as no entry), when there are many, at most once a second.
    fn sweep(&mut self, now: i64) {
        if self.tat.len() < SWEEP_AT_LEAST || now.saturating_sub(self.swept_at) < SWEEP_EVERY_US {
            return;
        }
        self.tat.retain(|_, tat| *tat > now);
        self.swept_at = now;
    }
}

fn check_rate(limit: Limit, rate: &Rate, at: &str, problems: &mut Vec<String>) {
    if rate.burst < limit.min_burst() {
        problems.push(format!(
            "{at}.burst: must be at least {} (got {})",
            limit.min_burst(),
            rate.burst
        ));
    }
    if rate.count == 0 {
        problems.push(format!("{at}.count: must be at least 1"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> LimitsConfig {
        serde_json::from_str(text).expect("a limits section")
    }

    #[test]
    fn periods_are_written_with_a_unit() {
        assert_eq!(parse_period("30s"), Ok(30));
        assert_eq!(parse_period("1m"), Ok(60));
        assert_eq!(parse_period("3h"), Ok(10_800));
        assert_eq!(parse_period("7d"), Ok(604_800));
        for bad in ["", "m", "0s", "1", "1w", "-1m", "8d", "1.5h", "1 h", "ß"] {
            assert!(parse_period(bad).is_err(), "{bad:?}");
        }
        assert_eq!(period_text(3600), "1h");
        assert_eq!(period_text(90), "90s");
    }

    #[test]
    fn every_default_is_a_valid_bucket() {
        assert!(Limits::new(LimitsConfig::default()).is_ok());
        let names: Vec<&str> = Limit::ALL.iter().map(|l| l.as_str()).collect();
        for limit in Limit::ALL {
            let json = serde_json::to_value(limit).expect("a name");
            assert_eq!(json, limit.as_str());
        }
        assert_eq!(names.len(), 10);
    }

    #[test]
    fn overrides_apply_to_their_ids_only() {
        let limits = Limits::new(config(
            r#"{"overrides": [{"limit": "applications_per_org", "ids": ["org_big"],
                "burst": 5, "count": 5, "period": "1h", "comment": "ticket 7"}]}"#,
        ))
        .expect("valid");
        assert_eq!(limits.rate(Limit::ApplicationsPerOrg, "org_big").burst, 5);
        assert_eq!(
            limits.rate(Limit::ApplicationsPerOrg, "org_small"),
            Limit::ApplicationsPerOrg.default_rate()
        );
        assert_eq!(
            limits.rate(Limit::ApplicationsPerToken, "org_big"),
            Limit::ApplicationsPerToken.default_rate()
        );
        let limits = Limits::new(config(
            r#"{"overrides": [{"limit": "usage_failed_verifications_per_kid", "ids": ["kid1"],
                "burst": 1, "count": 1, "period": "1h"}]}"#,
        ))
        .expect("valid");
        let rate = |id: &str| limits.rate(Limit::UsageFailedVerificationsPerKid, id).burst;
        assert_eq!(
            rate(&kid_from("kid1", Some("192.0.2.1"))),
            1,
            "named by its kid"
        );
        assert_eq!(rate(&kid_from("kid1", None)), 1);
        assert_eq!(rate(&kid_from("kid2", Some("192.0.2.1"))), 20);
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let problems = Limits::new(config(
            r#"{"defaults": {"writes_per_org": {"burst": 0, "count": 0, "period": "1m"},
                             "usage_reports_per_address": {"burst": 10, "count": 10, "period": "1m"}},
                "overrides": [
                  {"limit": "writes_per_address", "ids": ["not-an-ip"], "burst": 1, "count": 1, "period": "1s"},
                  {"limit": "tokens_per_org", "ids": [], "burst": 1, "count": 1, "period": "1s"},
                  {"limit": "tokens_per_org", "ids": ["org_a", "org_a"], "burst": 1, "count": 1, "period": "1s"}],
                "trusted_proxies": ["10.0.0.0/33"]}"#,
        ))
        .expect_err("invalid");
        let text = problems.join("\n");
        for expected in [
            "limits.defaults.writes_per_org.burst",
            "limits.defaults.writes_per_org.count",
            "limits.defaults.usage_reports_per_address.burst: must be at least 5000",
            "limits.overrides[0].ids",
            "limits.overrides[1].ids: name at least one organization",
            "limits.overrides[2].ids: \"org_a\" has another override",
            "limits.trusted_proxies[0]",
        ] {
            assert!(text.contains(expected), "{expected} in:\n{text}");
        }
        let unknown = serde_json::from_str::<LimitsConfig>(
            r#"{"defaults": {"applications_per_lab": {"burst": 1, "count": 1, "period": "1m"}}}"#,
        )
        .expect_err("an unknown limit");
        assert!(
            unknown.to_string().contains("applications_per_org"),
            "{unknown}"
        );
    }

    #[test]
    fn a_batch_of_charges_is_spent_whole_or_not_at_all() {
        let limits = Limits::new(config(
            r#"{"defaults": {"writes_per_token": {"burst": 1, "count": 1, "period": "1h"},
                             "writes_per_org": {"burst": 2, "count": 2, "period": "1h"}}}"#,
        ))
        .expect("valid");
        let both = |token| [(Limit::WritesPerToken, token), (Limit::WritesPerOrg, "org")];
        let admit = |token| {
            let charges: Vec<_> = both(token).iter().map(|&(l, id)| (l, id, 1)).collect();
            limits.admit(0, &charges)
        };
        assert!(admit("tok_1").is_ok());
        let Err(DomainError::RateLimited { limit, .. }) = admit("tok_1") else {
            panic!("the token's bucket is empty");
        };
        assert_eq!(limit, "writes_per_token");
        // The refused request took nothing from the organization's bucket.
        assert!(admit("tok_2").is_ok());
        let Err(DomainError::RateLimited {
            limit,
            retry_after_s,
            message,
        }) = admit("tok_3")
        else {
            panic!("the organization's bucket is empty");
        };
        assert_eq!(limit, "writes_per_org");
        assert_eq!(retry_after_s, 1800, "{message}");
        assert!(message.contains("organization org"), "{message}");
    }

    #[test]
    fn refilled_buckets_are_forgotten() {
        let limits = Limits::default();
        for i in 0..SWEEP_AT_LEAST + 10 {
            limits
                .admit(
                    0,
                    &[(
                        Limit::WritesPerAddress,
                        &format!("10.0.{}.{}", i / 256, i % 256),
                        1,
                    )],
                )
                .expect("a fresh bucket");
        }
        let held = limits.buckets.lock().expect("lock").tat.len();
        assert!(held >= SWEEP_AT_LEAST, "nothing refilled yet: {held}");
        limits
            .admit(3_600_000, &[(Limit::WritesPerAddress, "10.9.9.9", 1)])
            .expect("a fresh bucket");
        let held = limits.buckets.lock().expect("lock").tat.len();
        assert!(
            held <= SWEEP_AT_LEAST,
            "an hour later the rest had refilled: {held}"
        );
    }
}
