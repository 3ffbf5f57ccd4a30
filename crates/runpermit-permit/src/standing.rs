//! What the public log says about each permit's standing, and whether a status list agrees.
//!
//! The status list is the authority's signed statement of which permits are not in good
//! standing; the transparency log is the public record of every decision behind it. The two
//! must agree: a permit the log shows revoked, paused or on milestone hold must be on the
//! list. [`LogStanding`] folds the log's entries, in index order, into each permit's standing
//! by these rules (the entry types of `docs/log.md`):
//!
//! - `permit_issued`: the permit exists, in good standing, with tranche 1 released (the end
//!   of its first tranche, read from the token once it verifies with the authority's JWKS);
//! - `run_revoked` (a revocation or a termination) and `run_completed`: **final**; the permit
//!   is never in good standing again, and a list must show it `revoked` until it expires;
//! - `run_paused` (a pause, a suspension, or a milestone falling due): not in good standing
//!   until a later `run_resumed`;
//! - `tranche_released`: the run may compute up to its `flop`;
//! - `usage_summary`: the run's cumulative compute; once it has reached the end of the
//!   released tranche the run is on **milestone hold** until a later `tranche_released`
//!   reaches beyond it (the authority pauses such a run itself; this catches a tranche end
//!   moved in the database instead);
//! - every other entry, and a run entry about a permit the log never issued (a gate admits
//!   nothing under such a permit), changes nothing.
//!
//! [`check_status_list`] compares a verified list with the standing (what `runpermit log
//! verify` reports); [`reconcile`] adds to a list being built what the log requires (what the
//! authority does before signing one, so that no edit of its database can take a permit off
//! the list that its own log holds).
//!
//! Pure: no IO, no clock. The standing serializes, so an auditor keeps it between runs with
//! the log state and folds only new entries.

use std::collections::BTreeMap;
use std::fmt;

use runpermit_compute::Flop;
use runpermit_log::LogEntry;
use serde::{Deserialize, Serialize};

use crate::error::utc;
use crate::jwks::Jwks;
use crate::status::{PermitStatus, StatusEntry, StatusListClaims};
use crate::verify::verify_permit_signature;

/// How old (by its entries' `at`) a verdict must be at a list's `iat` before
/// [`check_status_list`] judges it, in what `runpermit log verify` passes: a list signed a
/// moment before a change, or by a process whose clock is a little behind, is not drift.
pub const SETTLE_SECONDS: i64 = 30;

/// A log entry, as the standing refers to it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRef {
    /// Its index in the log.
    pub index: u64,
    /// Its `at` (unix seconds).
    pub at: i64,
}

/// How a final entry ended the permit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// `run_revoked`: revoked or terminated.
    Revoked,
    /// `run_completed`.
    Completed,
}

/// One permit as the log tells it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LoggedPermit {
    /// Its run.
    pub run_id: String,
    /// Its expiry (unix seconds): after it, no list needs to name it.
    pub exp: i64,
    /// Its `permit_issued` entry.
    pub issued: LogRef,
    /// The cumulative FLOP released, and the entry that released it: tranche 1 at issuance
    /// (`None` when the token did not verify with the JWKS given, until a tranche is
    /// released), then each `tranche_released`.
    pub released: Option<(Flop, LogRef)>,
    /// The latest `usage_summary`.
    pub usage: Option<(Flop, LogRef)>,
    /// The latest `run_paused` not followed by a `run_resumed`, with its reason.
    pub paused: Option<(LogRef, String)>,
    /// The latest `run_resumed`.
    pub resumed: Option<LogRef>,
    /// The final entry, with its reason.
    pub ended: Option<(Ending, LogRef, String)>,
}

/// Why the log says a permit is not in good standing.
#[derive(Clone, Debug, PartialEq)]
pub enum Hold {
    /// Revoked, terminated or completed: for good.
    Final(Ending),
    /// Paused (or suspended, or a milestone due) by a `run_paused`.
    Paused,
    /// Usage reached the released tranche's end.
    MilestoneHold {
        /// The run's cumulative FLOP per its latest `usage_summary`.
        used: Flop,
        /// The end of the released tranche.
        released: Flop,
    },
}

/// A permit that the log says is not in good standing.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict<'a> {
    /// The permit's id.
    pub permit_id: &'a str,
    /// What the log says about it.
    pub permit: &'a LoggedPermit,
    /// Why it is not in good standing.
    pub hold: Hold,
    /// The entry that decides it.
    pub entry: LogRef,
    /// That entry's type.
    pub entry_type: &'static str,
    /// The entry's reason (for run entries), in words.
    pub reason: String,
    /// Since when (unix seconds) the log has said so: the latest `at` of the entries it
    /// follows from.
    pub since: i64,
}

impl Verdict<'_> {
    /// The status a list should show: `revoked` for a final entry, `paused` for a pause,
    /// `milestone_hold` for usage at the tranche's end.
    pub fn status(&self) -> PermitStatus {
        match self.hold {
            Hold::Final(_) => PermitStatus::Revoked,
            Hold::Paused => PermitStatus::Paused,
            Hold::MilestoneHold { .. } => PermitStatus::MilestoneHold,
        }
    }

    /// What the log says, in words, naming the entry.
    pub fn describe(&self) -> String {
        let what = match &self.hold {
            Hold::Final(Ending::Revoked) => "revoked for good".to_owned(),
            Hold::Final(Ending::Completed) => "completed: no further work, for good".to_owned(),
            Hold::Paused => "paused until a run_resumed".to_owned(),
            Hold::MilestoneHold { used, released } => format!(
                "on milestone hold: usage {used} reached the released {released}, and no later \
                 tranche_released"
            ),
        };
        format!(
            "the log's entry {} ({}, {}) says it is {what}",
            self.entry.index,
            self.entry_type,
            utc(self.entry.at)
        )
    }
}

/// Every permit the log has issued (and not yet pruned), with what the log says about it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct LogStanding {
    /// Permits by id.
    pub permits: BTreeMap<String, LoggedPermit>,
    /// Permit ids by run id (`usage_summary` names only the run).
    pub runs: BTreeMap<String, String>,
}

impl LogStanding {
    /// Folds the entry at `index` (with its `at`) into the standing. Entries must come in
    /// index order, each once. `jwks` verifies the tokens of `permit_issued` entries, to read
    /// tranche 1's end; a token that does not verify leaves it unknown (and usage unjudged
    /// until a tranche is released).
    pub fn apply(&mut self, index: u64, entry: &LogEntry, at: i64, jwks: &Jwks) {
        let here = LogRef { index, at };
        match entry {
            LogEntry::PermitIssued {
                permit_id,
                run_id,
                token,
                exp,
                ..
            } => {
                if self.permits.contains_key(permit_id) {
                    return;
                }
                let first = verify_permit_signature(token, jwks)
                    .ok()
                    .filter(|c| c.jti == *permit_id && c.sub == *run_id)
                    .map(|c| c.tranches.first().map_or(c.flop_budget, |t| t.flop));
                self.runs.insert(run_id.clone(), permit_id.clone());
                self.permits.insert(
                    permit_id.clone(),
                    LoggedPermit {
                        run_id: run_id.clone(),
                        exp: *exp,
                        issued: here,
                        released: first.map(|f| (f, here)),
                        usage: None,
                        paused: None,
                        resumed: None,
                        ended: None,
                    },
                );
            }
            LogEntry::RunPaused {
                permit_id, reason, ..
            } => {
                if let Some(p) = self.open(permit_id) {
                    p.paused = Some((here, reason.clone()));
                }
            }
            LogEntry::RunResumed { permit_id, .. } => {
                if let Some(p) = self.open(permit_id) {
                    p.paused = None;
                    p.resumed = Some(here);
                }
            }
            LogEntry::RunRevoked {
                permit_id, reason, ..
            } => {
                if let Some(p) = self.open(permit_id) {
                    p.ended = Some((Ending::Revoked, here, reason.clone()));
                }
            }
            LogEntry::RunCompleted {
                permit_id, reason, ..
            } => {
                if let Some(p) = self.open(permit_id) {
                    p.ended = Some((Ending::Completed, here, reason.clone()));
                }
            }
            LogEntry::TrancheReleased {
                permit_id, flop, ..
            } => {
                if let Some(p) = self.open(permit_id) {
                    p.released = Some((*flop, here));
                }
            }
            LogEntry::UsageSummary {
                run_id,
                cumulative_flop,
                ..
            } => {
                if let Some(permit_id) = self.runs.get(run_id).cloned()
                    && let Some(p) = self.permits.get_mut(&permit_id)
                {
                    p.usage = Some((*cumulative_flop, here));
                }
            }
            LogEntry::ApplicationSubmitted { .. }
            | LogEntry::Decision { .. }
            | LogEntry::ModelRegistered { .. }
            // Access grants have their own standing (runpermit-permit's `access`); permits'
            // standing does not depend on them.
            | LogEntry::AccessGranted { .. }
            | LogEntry::AccessChanged { .. } => {}
        }
    }

    /// A permit that has not ended: later run entries change nothing once one has.
    fn open(&mut self, permit_id: &str) -> Option<&mut LoggedPermit> {
        self.permits
            .get_mut(permit_id)
            .filter(|p| p.ended.is_none())
    }

    /// Forgets permits that expired at or before `before` (unix seconds): no list needs to
    /// name them, and a gate admits nothing under them.
    pub fn prune_expired(&mut self, before: i64) {
        self.permits.retain(|_, p| p.exp > before);
        let permits = &self.permits;
        self.runs
            .retain(|_, permit_id| permits.contains_key(permit_id));
    }

    /// What the log says about `permit_id`, if it issued it.
    pub fn permit(&self, permit_id: &str) -> Option<&LoggedPermit> {
        self.permits.get(permit_id)
    }

    /// The permit's verdict, if the log says it is not in good standing.
    pub fn verdict<'a>(&'a self, permit_id: &'a str) -> Option<Verdict<'a>> {
        let permit = self.permits.get(permit_id)?;
        verdict(permit_id, permit)
    }

    /// Every permit the log says is not in good standing, in permit id order.
    pub fn holds(&self) -> impl Iterator<Item = Verdict<'_>> {
        self.permits.iter().filter_map(|(id, p)| verdict(id, p))
    }
}

fn verdict<'a>(permit_id: &'a str, permit: &'a LoggedPermit) -> Option<Verdict<'a>> {
    let make = |hold, entry: LogRef, entry_type, reason: &str, since| Verdict {
        permit_id,
        permit,
        hold,
        entry,
        entry_type,
        reason: reason.to_owned(),
        since,
    };
    if let Some((ending, entry, reason)) = &permit.ended {
        let entry_type = match ending {
            Ending::Revoked => "run_revoked",
            Ending::Completed => "run_completed",
        };
        return Some(make(
            Hold::Final(*ending),
            *entry,
            entry_type,
            reason,
            entry.at,
        ));
    }
    if let Some((entry, reason)) = &permit.paused {
        return Some(make(Hold::Paused, *entry, "run_paused", reason, entry.at));
    }
    let ((used, usage), (released, release)) = (permit.usage?, permit.released?);
    if used.get() < released.get() {
        return None;
    }
    // It became so with the latest of the summary, the release and a resumption.
    let since = [
        Some(usage.at),
        Some(release.at),
        permit.resumed.map(|r| r.at),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(usage.at);
    Some(make(
        Hold::MilestoneHold { used, released },
        usage,
        "usage_summary",
        &format!("usage {used} reached the end of the released tranche ({released})"),
        since,
    ))
}

/// A permit the log says is not in good standing that a status list shows otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusDrift {
    /// The permit.
    pub permit_id: String,
    /// Its run.
    pub run_id: String,
    /// What the log says, naming the entry ([`Verdict::describe`]).
    pub log_says: String,
    /// The entry that decides it.
    pub entry: LogRef,
    /// What the list shows: `None` when it does not name the permit (good standing).
    pub listed: Option<PermitStatus>,
    /// The list's version and `iat`.
    pub list_version: u64,
    /// The list's `iat`.
    pub list_iat: i64,
}

impl fmt::Display for StatusDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shows = match self.listed {
            None => "does not list it (so shows it in good standing)".to_owned(),
            Some(s) => format!("shows it as {s}, which a later resumption could lift"),
        };
        write!(
            f,
            "permit {} (run {}): {}, but the status list (version {}, issued {}) {shows}",
            self.permit_id,
            self.run_id,
            self.log_says,
            self.list_version,
            utc(self.list_iat)
        )
    }
}

/// Compares a verified status list with what the log says: every permit the log says is
/// not in good standing and that has not expired by the list's `iat` must be on the list,
/// as `revoked` when the log's entry is final (any status otherwise). Returns each
/// disagreement, in permit id order; empty when the list agrees.
///
/// A verdict younger than `settle_seconds` at the list's `iat` (by its entries' `at`) is not
/// judged: the list may have been signed just before the change, or by a process whose clock
/// is a little behind. Fetch the list *before* the log's checkpoint, so that every change the
/// list reflects is in the log being compared (an authority lists a permit its sequenced log
/// holds; see [`reconcile`]).
pub fn check_status_list(
    standing: &LogStanding,
    list: &StatusListClaims,
    settle_seconds: i64,
) -> Vec<StatusDrift> {
    let mut drift = Vec::new();
    for verdict in standing.holds() {
        if verdict.permit.exp <= list.iat || verdict.since > list.iat - settle_seconds {
            continue;
        }
        let listed = list
            .entries
            .iter()
            .find(|e| e.permit_id == verdict.permit_id)
            .map(|e| e.status);
        let agrees = match (&verdict.hold, listed) {
            (_, None) => false,
            (Hold::Final(_), Some(s)) => s == PermitStatus::Revoked,
            (_, Some(_)) => true,
        };
        if !agrees {
            drift.push(StatusDrift {
                permit_id: verdict.permit_id.to_owned(),
                run_id: verdict.permit.run_id.clone(),
                log_says: verdict.describe(),
                entry: verdict.entry,
                listed,
                list_version: list.version,
                list_iat: list.iat,
            });
        }
    }
    drift
}

/// A change [`reconcile`] made to a list being built: the database said less than the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Correction {
    /// The permit.
    pub permit_id: String,
    /// What the list would have shown: `None` when it did not name the permit.
    pub was: Option<PermitStatus>,
    /// What it shows now.
    pub now: PermitStatus,
    /// What the log says, naming the entry.
    pub log_says: String,
}

/// Makes the entries of a status list being built at `iat` agree with the log: adds every
/// permit the log says is not in good standing whose expiry is after `min_exp` and that the
/// entries do not name, and shows as `revoked` every permit whose log entry is final. Entries
/// the log agrees with are kept as they are (the database's status is more precise than a
/// `run_paused`). Returns what was changed: each one means the database contradicts the log.
pub fn reconcile(
    entries: &mut Vec<StatusEntry>,
    standing: &LogStanding,
    iat: i64,
    min_exp: i64,
) -> Vec<Correction> {
    let mut corrections = Vec::new();
    for verdict in standing.holds() {
        if verdict.permit.exp <= min_exp {
            continue;
        }
        let wanted = verdict.status();
        let reason = match verdict.hold {
            Hold::Final(Ending::Completed) => format!("completed: {}", verdict.reason),
            _ => verdict.reason.clone(),
        };
        let since = verdict.since.min(iat);
        match entries
            .iter_mut()
            .find(|e| e.permit_id == verdict.permit_id)
        {
            Some(e) if wanted == PermitStatus::Revoked && e.status != PermitStatus::Revoked => {
                corrections.push(Correction {
                    permit_id: e.permit_id.clone(),
                    was: Some(e.status),
                    now: wanted,
                    log_says: verdict.describe(),
                });
                e.status = wanted;
                e.reason = reason;
                e.since = since;
            }
            Some(_) => {}
            None => {
                corrections.push(Correction {
                    permit_id: verdict.permit_id.to_owned(),
                    was: None,
                    now: wanted,
                    log_says: verdict.describe(),
                });
                entries.push(StatusEntry {
                    permit_id: verdict.permit_id.to_owned(),
                    status: wanted,
                    reason,
                    since,
                });
            }
        }
    }
    corrections
}

#[cfg(test)]
mod tests;
