//! The gateway's durable per-grant state: what each grant has used (requests, tokens, rate
//! state), its activity in the current report interval, and the signed access-usage reports
//! not yet acknowledged by the authority.
//!
//! One JSON file, `ledger.json` in the state folder, replaced atomically on every change:
//! written to `ledger.json.tmp`, `fsync`ed, renamed over `ledger.json`, and the folder
//! `fsync`ed. A crash leaves the old file or the new one, never a mix; what a method returned
//! `Ok` for is on disk. A report is added in the same write that empties its interval, so
//! it is queued exactly once. Admission is persisted before the request is forwarded, so
//! a restart never forgets a request that reached the model.
//!
//! (The gate agent's `UsageQueue` journal is built around compute usage reports — FLOP
//! totals per run, source keys of spool files — and signs them itself; making it generic
//! would change it well beyond a small edit. A gateway's state is small, one entry per grant,
//! so a whole-file atomic replacement is simpler and as durable.)

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use runpermit_permit::{
    AccessGrantClaims, AccessUsageClaims, ReportError, SigningKey, sign_access_usage,
};
use serde::{Deserialize, Serialize};

use crate::check::GrantUsage;

/// The ledger's file name in the state folder.
pub const LEDGER_FILE: &str = "ledger.json";

/// The longest interval a report may cover (31 days).
const MAX_REPORT_SECONDS: i64 = 2_678_400;

/// Why the ledger cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A file cannot be read or written.
    #[error("gateway ledger {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The ledger file is not valid.
    #[error("gateway ledger {}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A report could not be signed.
    #[error(transparent)]
    Report(#[from] ReportError),
}

/// A signed access-usage report not yet acknowledged by the authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingReport {
    /// The grant.
    pub grant_id: String,
    /// Its sequence number.
    pub seq: u64,
    /// The signed report (compact JWS).
    pub token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Interval {
    from: i64,
    every: i64,
    requests: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    refused: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantState {
    model_id: String,
    requests: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    tat_ns: i64,
    last_seq: u64,
    interval: Option<Interval>,
}

/// A report the authority refused for good: kept, with why, never sent again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// The report.
    pub report: PendingReport,
    /// The authority's answer.
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    grants: BTreeMap<String, GrantState>,
    pending: Vec<PendingReport>,
    /// Reports the authority refused for good (absent in ledgers written before).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dead_letters: Vec<DeadLetter>,
}

/// The gateway's durable per-grant state; see the module documentation.
#[derive(Debug)]
pub struct Ledger {
    dir: PathBuf,
    state: State,
    key: SigningKey,
    developer_id: String,
    report_interval_seconds: i64,
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`. Reports are signed with `key` as
    /// `developer_id`, over intervals of at most `report_interval_seconds` (shorter when a
    /// grant's duties ask for it).
    pub fn open(
        dir: impl AsRef<Path>,
        key: SigningKey,
        developer_id: &str,
        report_interval_seconds: u64,
    ) -> Result<Ledger, LedgerError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(|source| LedgerError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(LEDGER_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LedgerError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(source) => return Err(LedgerError::Io { path, source }),
        };
        Ok(Ledger {
            dir,
            state,
            key,
            developer_id: developer_id.to_owned(),
            report_interval_seconds: i64::try_from(report_interval_seconds).unwrap_or(i64::MAX),
        })
    }

    /// The ledger file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(LEDGER_FILE)
    }

    /// What `grant_id` has used so far.
    pub fn usage(&self, grant_id: &str) -> GrantUsage {
        self.state
            .grants
            .get(grant_id)
            .map_or_else(GrantUsage::default, |g| GrantUsage {
                requests: g.requests,
                tokens: g.prompt_tokens.saturating_add(g.completion_tokens),
                tat_ns: g.tat_ns,
            })
    }

    /// Prompt and completion tokens charged to `grant_id` so far.
    pub fn tokens(&self, grant_id: &str) -> (u64, u64) {
        self.state
            .grants
            .get(grant_id)
            .map_or((0, 0), |g| (g.prompt_tokens, g.completion_tokens))
    }

    fn interval(g: &mut GrantState, every: i64, now: i64) -> &mut Interval {
        g.interval.get_or_insert_with(|| Interval {
            from: now,
            every,
            ..Interval::default()
        })
    }

    fn every(&self, claims: &AccessGrantClaims) -> i64 {
        let duty = i64::try_from(claims.duties.usage_report_interval_seconds).unwrap_or(i64::MAX);
        self.report_interval_seconds.min(duty).max(60)
    }

    /// Records an admitted request under `claims` at `now` (unix seconds), with the grant's
    /// new rate state, durably, before the request is forwarded.
    pub fn admit(
        &mut self,
        claims: &AccessGrantClaims,
        tat_ns: i64,
        now: i64,
    ) -> Result<(), LedgerError> {
        let every = self.every(claims);
        let g = self.state.grants.entry(claims.jti.clone()).or_default();
        g.model_id.clone_from(&claims.model.model_id);
        g.requests = g.requests.saturating_add(1);
        g.tat_ns = tat_ns;
        Self::interval(g, every, now).requests += 1;
        self.save()
    }

    /// Charges the tokens of an answered request to `claims`' grant.
    pub fn charge(
        &mut self,
        claims: &AccessGrantClaims,
        prompt_tokens: u64,
        completion_tokens: u64,
        now: i64,
    ) -> Result<(), LedgerError> {
        let every = self.every(claims);
        let g = self.state.grants.entry(claims.jti.clone()).or_default();
        g.prompt_tokens = g.prompt_tokens.saturating_add(prompt_tokens);
        g.completion_tokens = g.completion_tokens.saturating_add(completion_tokens);
        let i = Self::interval(g, every, now);
        i.prompt_tokens = i.prompt_tokens.saturating_add(prompt_tokens);
        i.completion_tokens = i.completion_tokens.saturating_add(completion_tokens);
        self.save()
    }

    /// Counts a refused request under a verified grant.
    pub fn refuse(&mut self, claims: &AccessGrantClaims, now: i64) -> Result<(), LedgerError> {
        let every = self.every(claims);
        let g = self.state.grants.entry(claims.jti.clone()).or_default();
        g.model_id.clone_from(&claims.model.model_id);
        Self::interval(g, every, now).refused += 1;
        self.save()
    }

    /// Closes every interval that has lasted its length by `now` (or every open one, with
    /// `all`, at shutdown): signs its report, queues it and starts afresh, in one durable
    /// write. Returns how many reports were queued.
    pub fn roll(&mut self, now: i64, all: bool) -> Result<usize, LedgerError> {
        let mut queued = 0;
        let mut next = self.state.clone();
        for (grant_id, g) in &mut next.grants {
            let Some(i) = &g.interval else { continue };
            let elapsed = now.saturating_sub(i.from);
            if !(all || (elapsed > 0 && elapsed >= i.every)) {
                continue;
            }
            // Closing everything (at shutdown), an interval opened within the current second
            // is reported as that whole second, rather than left out: what was served is
            // always reported.
            let to = if elapsed <= 0 {
                i.from.saturating_add(1)
            } else {
                now.min(i.from.saturating_add(MAX_REPORT_SECONDS))
            };
            let now = now.max(to);
            let claims = AccessUsageClaims {
                iss: self.developer_id.clone(),
                grant_id: grant_id.clone(),
                model_id: g.model_id.clone(),
                seq: g.last_seq + 1,
                from: i.from,
                to,
                iat: now,
                requests: i.requests,
                prompt_tokens: i.prompt_tokens,
                completion_tokens: i.completion_tokens,
                refused: i.refused,
            };
            let token = sign_access_usage(&claims, &self.key)?;
            g.last_seq += 1;
            g.interval = None;
            next.pending.push(PendingReport {
                grant_id: grant_id.clone(),
                seq: claims.seq,
                token,
            });
            queued += 1;
        }
        if queued > 0 {
            let before = std::mem::replace(&mut self.state, next);
            if let Err(e) = self.save() {
                self.state = before;
                return Err(e);
            }
        }
        Ok(queued)
    }

    /// The reports not yet acknowledged, oldest first.
    pub fn pending(&self) -> &[PendingReport] {
        &self.state.pending
    }

    /// The reports the authority refused for good, oldest first.
    pub fn dead_letters(&self) -> &[DeadLetter] {
        &self.state.dead_letters
    }

    /// Moves the reports `refused` ((`grant_id`, `seq`) → the authority's reason) from the
    /// queue to the dead letters, in one durable write: they are kept as evidence and never
    /// sent again, so that one report the authority refuses does not hold back the others.
    pub fn dead_letter(&mut self, refused: &[(String, u64, String)]) -> Result<usize, LedgerError> {
        let mut moved = 0;
        for (grant_id, seq, reason) in refused {
            if let Some(i) = self
                .state
                .pending
                .iter()
                .position(|p| &p.grant_id == grant_id && p.seq == *seq)
            {
                let report = self.state.pending.remove(i);
                self.state.dead_letters.push(DeadLetter {
                    report,
                    reason: reason.clone(),
                });
                moved += 1;
            }
        }
        if moved > 0 {
            self.save()?;
        }
        Ok(moved)
    }

    /// Drops the acknowledged report (`grant_id`, `seq`) from the queue.
    pub fn ack(&mut self, grant_id: &str, seq: u64) -> Result<bool, LedgerError> {
        let before = self.state.pending.len();
        self.state
            .pending
            .retain(|p| !(p.grant_id == grant_id && p.seq == seq));
        if self.state.pending.len() == before {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    fn save(&self) -> Result<(), LedgerError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{LEDGER_FILE}.tmp"));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LedgerError::Io { path, source }
        };
        let bytes = serde_json::to_vec(&self.state).expect("the ledger always serializes");
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_shutdown_an_interval_opened_this_second_is_reported_not_lost() {
        let dir =
            std::env::temp_dir().join(format!("runpermit-ledger-roll-{}", std::process::id()));
        let key = SigningKey::generate();
        let jwks = runpermit_permit::Jwks::from_keys(&[key.public()]);
        let mut ledger = Ledger::open(&dir, key, "org_lab", 3600).unwrap();
        ledger.state.grants.insert(
            "grt_1".into(),
            GrantState {
                model_id: "mdl_1".into(),
                requests: 2,
                interval: Some(Interval {
                    from: 1_000,
                    every: 3600,
                    requests: 2,
                    prompt_tokens: 20,
                    completion_tokens: 10,
                    refused: 0,
                }),
                ..GrantState::default()
            },
        );
        // Not yet due, and no time has passed: nothing, unless everything is closed.
        assert_eq!(ledger.roll(1_000, false).unwrap(), 0);
        assert_eq!(ledger.roll(1_000, true).unwrap(), 1);
        let report = runpermit_permit::verify_access_usage(&ledger.pending()[0].token, &jwks)
            .expect("a sound, signed report");
        assert_eq!(
            (
                report.from,
                report.to,
                report.requests,
                report.prompt_tokens
            ),
            (1_000, 1_001, 2, 20)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dead_letters_leave_the_queue_durably_and_are_kept() {
        let dir = std::env::temp_dir().join(format!("runpermit-ledger-{}", std::process::id()));
        let mut ledger = Ledger::open(&dir, SigningKey::generate(), "org_lab", 3600).unwrap();
        for seq in 1..=3 {
            ledger.state.pending.push(PendingReport {
                grant_id: "grt_1".into(),
                seq,
                token: format!("t{seq}"),
            });
        }
        ledger.save().unwrap();
        let moved = ledger
            .dead_letter(&[
                ("grt_1".into(), 2, "HTTP 409: conflict".into()),
                ("grt_1".into(), 9, "no such report".into()),
            ])
            .unwrap();
        assert_eq!(moved, 1);
        // Reopened: the queue holds the others, the dead letter is kept with its reason.
        let again = Ledger::open(&dir, SigningKey::generate(), "org_lab", 3600).unwrap();
        let seqs: Vec<u64> = again.pending().iter().map(|p| p.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(again.dead_letters().len(), 1);
        assert_eq!(again.dead_letters()[0].report.seq, 2);
        assert_eq!(again.dead_letters()[0].reason, "HTTP 409: conflict");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
