//! The durable usage-report queue: signed usage reports on their way to the authority,
//! kept in a directory so that they survive `kill -9` and restarts.
//!
//! - `journal.log`: append-only, one record a line, `<crc32 hex> <json>\n`, the checksum
//!   over the JSON. Records: a signed report (`report`), its acknowledgement (`ack`), its
//!   dead-lettering (`dead`) and, written by [`UsageQueue::compact`] only, the highest `seq`
//!   ever assigned to a run and the compute of its compacted reports (`mark`), so that
//!   numbering and the run's metered total continue after compaction, and the recent source
//!   keys (`source`).
//! - A report may carry a *source key* ([`UsageQueue::enqueue_once`]): the identity of what
//!   it was made from (a spool file's name and content digest). The key is written in the
//!   same record as the report, so a crash can never leave one without the other: a source
//!   seen again, after a crash between enqueueing and removing it, is recognised and not
//!   reported twice. Compaction keeps the keys of the last [`SOURCE_RETENTION_SECONDS`]
//!   (by the reports' `iat`).
//! - `dead-letters.log`: reports the authority refused for good, same line format.
//!
//! Every append is `fsync`ed before the call returns (and the directory when a file is
//! created), so what [`UsageQueue::enqueue`] or [`UsageQueue::ack`] returned is never lost. A
//! crash can tear only the last line: [`UsageQueue::open`] drops a torn or badly checksummed
//! last line (and cuts the file back to the last good record); a bad line anywhere else is
//! [`QueueError::Corrupt`], never skipped silently.
//!
//! `seq` is assigned by the queue, from 1, per run; one queue serves one provider (the
//! authority numbers reports per provider and run). Resending a report is harmless: the
//! authority treats a repeated (provider, run, seq) as the same report.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runpermit_permit::{ReportError, SigningKey, UsageReportClaims, sign_usage_report};
use serde::{Deserialize, Serialize};

/// The journal's file name in the queue's directory.
pub const JOURNAL_FILE: &str = "journal.log";
/// The dead letters' file name in the queue's directory.
pub const DEAD_LETTER_FILE: &str = "dead-letters.log";
/// The temporary file [`UsageQueue::compact`] writes before renaming it over the journal.
const COMPACT_FILE: &str = "journal.log.tmp";
/// How long compaction keeps source keys: a week before the newest one (by the reports'
/// `iat`). A source seen again later than that is taken as new.
pub const SOURCE_RETENTION_SECONDS: i64 = 7 * 86_400;

/// Why the queue cannot do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// A file of the queue cannot be read or written.
    #[error("usage queue {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A record other than the last is damaged: not a torn write, so not dropped.
    #[error("usage queue {}: line {line} is damaged: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The report cannot be signed (its claims are unsound).
    #[error(transparent)]
    Report(#[from] ReportError),
    /// An earlier write failed and could not be undone; reopen the queue.
    #[error("usage queue {}: an earlier write failed and could not be undone; reopen", path.display())]
    Poisoned {
        /// The journal.
        path: PathBuf,
    },
}

/// Why the authority did not take a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying later (unreachable, timeout, 5xx).
    #[error("transient: {0}")]
    Transient(String),
    /// Refused for good (bad signature, unsound claims): dead-lettered, not retried.
    #[error("rejected: {0}")]
    Rejected(String),
}

/// A report not yet acknowledged by the authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReport {
    /// The run (the report's `sub`).
    pub run_id: String,
    /// Its sequence number.
    pub seq: u64,
    /// The signed report (compact JWS).
    pub token: String,
}

/// A report the authority refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// The run.
    pub run_id: String,
    /// Its sequence number.
    pub seq: u64,
    /// The signed report.
    pub token: String,
    /// Why the authority refused it.
    pub reason: String,
}

/// What one [`UsageQueue::ship`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShipOutcome {
    /// Reports the authority acknowledged (now acked in the journal).
    pub delivered: usize,
    /// Reports the authority refused for good (now in the dead letters).
    pub dead_lettered: usize,
    /// Reports still pending.
    pub pending: usize,
    /// When to try again, after a transient failure or while backing off; `None` when
    /// nothing is left to send.
    pub retry_at: Option<Instant>,
}

/// Exponential backoff with jitter, without clocks or sleeping: the caller passes the time.
///
/// Attempt `n` (from 0) waits a delay drawn uniformly from `[c/2, c]` with
/// `c = min(max, base · 2ⁿ)` ("equal jitter"): while the ceiling doubles a delay is never
/// shorter than the one before; none exceeds `max`, none is shorter than `max / 2` once
/// capped.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
    retry_at: Option<Instant>,
}

impl Backoff {
    /// A backoff from `base` up to `max`, jitter seeded from the clock and the process id.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Backoff::with_seed(base, max, nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// A backoff with a fixed jitter seed (reproducible delays, for tests).
    pub fn with_seed(base: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
            rng: seed,
            retry_at: None,
        }
    }

    /// Failed attempts since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The upper bound of the next delay: `min(max, base · 2^attempt)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next try after one more failure; counts the failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = match spread.checked_add(1) {
            Some(n) => self.next_random() % n,
            None => self.next_random(),
        };
        self.attempt = self.attempt.saturating_add(1);
        half + Duration::from_nanos(jitter)
    }

    /// Back to the first attempt (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.retry_at = None;
    }

    /// When the next try is due, if backing off.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Whether a try is due at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| now >= at)
    }

    /// splitmix64.
    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One journal record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    /// A signed report, and the key of what it was made from, if any.
    Report {
        run: String,
        seq: u64,
        token: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        src: Option<String>,
    },
    /// The authority acknowledged it.
    Ack { run: String, seq: u64 },
    /// The authority refused it for good; it is in the dead letters.
    Dead { run: String, seq: u64 },
    /// The highest seq ever assigned to the run, and the FLOP of its reports no longer in
    /// the journal (kept across compaction).
    Mark {
        run: String,
        seq: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flop: Option<f64>,
    },
    /// A source key already reported, signed at `at` (kept across compaction).
    Source { src: String, at: i64 },
}

/// The claims of a token this queue signed, read without verifying (for its `flop` and
/// `iat`); `None` if it cannot be read.
fn token_claims(token: &str) -> Option<UsageReportClaims> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `<crc32 hex> <json>\n`.
fn encode_line(json: &str) -> Vec<u8> {
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes())).into_bytes()
}

/// The JSON of a line whose checksum holds.
fn decode_line(line: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(line).map_err(|e| e.to_string())?;
    let (crc, json) = text
        .split_once(' ')
        .ok_or_else(|| "no checksum".to_owned())?;
    if crc.len() != 8 {
        return Err("no checksum".into());
    }
    let crc = u32::from_str_radix(crc, 16).map_err(|e| format!("checksum: {e}"))?;
    if crc32fast::hash(json.as_bytes()) != crc {
        return Err("checksum mismatch".into());
    }
    Ok(json)
}

/// The lines of `bytes` that end in `\n`, and the length they span.
fn complete_lines(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(end) = bytes[start..].iter().position(|b| *b == b'\n') {
        lines.push(&bytes[start..start + end]);
        start += end + 1;
    }
    (lines, start)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QueueError + '_ {
    move |source| QueueError::Io {
        path: path.to_owned(),
        source,
    }
}

/// `fsync` of a directory, so that a created or renamed entry in it is durable.
fn sync_dir(dir: &Path) -> Result<(), QueueError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// The durable usage-report queue over one directory; see the module documentation.
#[derive(Debug)]
pub struct UsageQueue {
    dir: PathBuf,
    journal_path: PathBuf,
    journal: File,
    /// The journal's length up to the last good record.
    len: u64,
    /// Unacknowledged reports, in journal order.
    pending: Vec<PendingReport>,
    /// The highest seq assigned per run.
    last_seq: HashMap<String, u64>,
    /// FLOP of every report ever enqueued, per run.
    metered: HashMap<String, f64>,
    /// Source keys already reported, with the `iat` of their report.
    sources: HashMap<String, i64>,
    poisoned: bool,
}

impl UsageQueue {
    /// Opens (or creates) the queue in `dir`: replays the journal, drops a torn last record
    /// (cutting the file back to the last good one), removes a half-written compaction.
    pub fn open(dir: impl AsRef<Path>) -> Result<UsageQueue, QueueError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let tmp = dir.join(COMPACT_FILE);
        match std::fs::remove_file(&tmp) {
            Ok(()) => sync_dir(&dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&tmp)(e)),
        }
        let journal_path = dir.join(JOURNAL_FILE);
        let existed = journal_path.exists();
        let mut journal = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&journal_path)
            .map_err(io(&journal_path))?;
        if !existed {
            journal.sync_all().map_err(io(&journal_path))?;
            sync_dir(&dir)?;
        }
        let mut bytes = Vec::new();
        journal.read_to_end(&mut bytes).map_err(io(&journal_path))?;
        let (lines, mut good_len) = complete_lines(&bytes);
        let mut records = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let parsed = decode_line(line)
                .and_then(|json| serde_json::from_str::<Record>(json).map_err(|e| e.to_string()));
            match parsed {
                Ok(record) => records.push(record),
                // A torn write can only be the last line.
                Err(_) if i + 1 == lines.len() => good_len -= line.len() + 1,
                Err(message) => {
                    return Err(QueueError::Corrupt {
                        path: journal_path,
                        line: i + 1,
                        message,
                    });
                }
            }
        }
        if good_len < bytes.len() {
            tracing::warn!(path = %journal_path.display(), dropped = bytes.len() - good_len,
                "usage queue: dropping a torn last record");
            journal
                .set_len(good_len as u64)
                .and_then(|()| journal.sync_all())
                .map_err(io(&journal_path))?;
        }
        let mut queue = UsageQueue {
            dir,
            journal_path,
            journal,
            len: good_len as u64,
            pending: Vec::new(),
            last_seq: HashMap::new(),
            metered: HashMap::new(),
            sources: HashMap::new(),
            poisoned: false,
        };
        for record in records {
            queue.apply(record);
        }
        Ok(queue)
    }

    /// Applies a record to the in-memory state.
    fn apply(&mut self, record: Record) {
        match record {
            Record::Report {
                run,
                seq,
                token,
                src,
            } => {
                self.bump(&run, seq);
                let claims = token_claims(&token);
                if let Some(src) = src {
                    let at = claims.as_ref().map_or(0, |c| c.iat);
                    self.sources.insert(src, at);
                }
                if !self.is_pending(&run, seq) {
                    let flop = claims.map_or(0.0, |c| c.flop.get());
                    *self.metered.entry(run.clone()).or_default() += flop;
                    self.pending.push(PendingReport {
                        run_id: run,
                        seq,
                        token,
                    });
                }
            }
            Record::Ack { run, seq } | Record::Dead { run, seq } => {
                self.pending.retain(|p| !(p.run_id == run && p.seq == seq));
            }
            Record::Mark { run, seq, flop } => {
                self.bump(&run, seq);
                *self.metered.entry(run).or_default() += flop.unwrap_or(0.0);
            }
            Record::Source { src, at } => {
                self.sources.insert(src, at);
            }
        }
    }

    fn bump(&mut self, run: &str, seq: u64) {
        let last = self.last_seq.entry(run.to_owned()).or_default();
        *last = (*last).max(seq);
    }

    fn is_pending(&self, run_id: &str, seq: u64) -> bool {
        self.pending
            .iter()
            .any(|p| p.run_id == run_id && p.seq == seq)
    }

    fn check_poisoned(&self) -> Result<(), QueueError> {
        if self.poisoned {
            return Err(QueueError::Poisoned {
                path: self.journal_path.clone(),
            });
        }
        Ok(())
    }

    /// Appends a record and `fsync`s it; on failure cuts the file back (or poisons the
    /// queue when that fails too), so no half record is ever followed by another.
    fn append(&mut self, record: &Record) -> Result<(), QueueError> {
        self.check_poisoned()?;
        let json = serde_json::to_string(record).expect("records serialize");
        let line = encode_line(&json);
        let written = self
            .journal
            .write_all(&line)
            .and_then(|()| self.journal.sync_data());
        match written {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                if self
                    .journal
                    .set_len(self.len)
                    .and_then(|()| self.journal.sync_all())
                    .is_err()
                {
                    self.poisoned = true;
                }
                Err(io(&self.journal_path)(e))
            }
        }
    }

    /// Assigns the run's next `seq` to `claims` (from 1, continuing across restarts, never
    /// reused), signs them with `key` and appends the report durably; returns the `seq`.
    pub fn enqueue(
        &mut self,
        claims: UsageReportClaims,
        key: &SigningKey,
    ) -> Result<u64, QueueError> {
        self.enqueue_with(claims, key, None)
    }

    /// Like [`enqueue`](Self::enqueue), for a report made from the source `source` (a spool
    /// file's name and digest): the key is recorded in the same journal record, and a
    /// source already reported is not reported again (`Ok(None)`, nothing written).
    pub fn enqueue_once(
        &mut self,
        claims: UsageReportClaims,
        key: &SigningKey,
        source: &str,
    ) -> Result<Option<u64>, QueueError> {
        if self.has_source(source) {
            return Ok(None);
        }
        self.enqueue_with(claims, key, Some(source.to_owned()))
            .map(Some)
    }

    fn enqueue_with(
        &mut self,
        mut claims: UsageReportClaims,
        key: &SigningKey,
        src: Option<String>,
    ) -> Result<u64, QueueError> {
        self.check_poisoned()?;
        let seq = self.last_seq(&claims.sub) + 1;
        claims.seq = seq;
        let token = sign_usage_report(&claims, key)?;
        let record = Record::Report {
            run: claims.sub,
            seq,
            token,
            src,
        };
        self.append(&record)?;
        self.apply(record);
        Ok(seq)
    }

    /// Whether a report made from `source` was enqueued (within the retention of
    /// [`compact`](Self::compact)).
    pub fn has_source(&self, source: &str) -> bool {
        self.sources.contains_key(source)
    }

    /// The compute of every report ever enqueued for `run_id` (sent, pending or
    /// dead-lettered): what this provider metered for the run.
    pub fn metered(&self, run_id: &str) -> runpermit_compute::Flop {
        let total = self.metered.get(run_id).copied().unwrap_or(0.0);
        runpermit_compute::Flop::new(total).unwrap_or(runpermit_compute::Flop::ZERO)
    }

    /// [`metered`](Self::metered) for every run the queue has seen.
    pub fn metered_by_run(&self) -> std::collections::BTreeMap<String, runpermit_compute::Flop> {
        self.metered
            .keys()
            .map(|run| (run.clone(), self.metered(run)))
            .collect()
    }

    /// The journal's size in bytes (to decide when to [`compact`](Self::compact)).
    pub fn journal_bytes(&self) -> u64 {
        self.len
    }

    /// The unacknowledged reports, in the order they were enqueued.
    pub fn pending(&self) -> Vec<PendingReport> {
        self.pending.clone()
    }

    /// The highest `seq` assigned to `run_id` so far (0: none).
    pub fn last_seq(&self, run_id: &str) -> u64 {
        self.last_seq.get(run_id).copied().unwrap_or(0)
    }

    /// Records durably that the authority acknowledged report (`run_id`, `seq`); whether it
    /// was pending (acknowledging twice, or an unknown report, writes nothing).
    pub fn ack(&mut self, run_id: &str, seq: u64) -> Result<bool, QueueError> {
        if !self.is_pending(run_id, seq) {
            return Ok(false);
        }
        let record = Record::Ack {
            run: run_id.to_owned(),
            seq,
        };
        self.append(&record)?;
        self.apply(record);
        Ok(true)
    }

    /// Moves a pending report to the dead letters (durably, then marks it in the journal).
    /// A crash in between leaves it pending and dead-lettered; it is dead-lettered again.
    fn dead_letter(&mut self, report: &PendingReport, reason: &str) -> Result<(), QueueError> {
        let path = self.dir.join(DEAD_LETTER_FILE);
        let existed = path.exists();
        let letter = DeadLetter {
            run_id: report.run_id.clone(),
            seq: report.seq,
            token: report.token.clone(),
            reason: reason.to_owned(),
        };
        let json = serde_json::to_string(&letter).expect("dead letters serialize");
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(&encode_line(&json))?;
                f.sync_all()
            })
            .map_err(io(&path))?;
        if !existed {
            sync_dir(&self.dir)?;
        }
        tracing::error!(run = %report.run_id, seq = report.seq, %reason,
            "usage report rejected by the authority; moved to the dead letters");
        let record = Record::Dead {
            run: report.run_id.clone(),
            seq: report.seq,
        };
        self.append(&record)?;
        self.apply(record);
        Ok(())
    }

    /// The dead letters, oldest first (a damaged last line, torn by a crash, is skipped).
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let path = self.dir.join(DEAD_LETTER_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        let (lines, _) = complete_lines(&bytes);
        let mut letters = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let parsed = decode_line(line).and_then(|json| {
                serde_json::from_str::<DeadLetter>(json).map_err(|e| e.to_string())
            });
            match parsed {
                Ok(letter) => letters.push(letter),
                Err(_) if i + 1 == lines.len() => {}
                Err(message) => {
                    return Err(QueueError::Corrupt {
                        path,
                        line: i + 1,
                        message,
                    });
                }
            }
        }
        Ok(letters)
    }

    /// Rewrites the journal without acknowledged or dead-lettered reports, atomically (a
    /// temporary file, `fsync`, rename over the journal, `fsync` of the directory). Each
    /// run's highest `seq` and the compute of its dropped reports are kept as a `mark`, so
    /// numbering and [`metered`](Self::metered) continue; source keys of the last
    /// [`SOURCE_RETENTION_SECONDS`] are kept as `source` records.
    pub fn compact(&mut self) -> Result<(), QueueError> {
        self.check_poisoned()?;
        let mut pending_flop: HashMap<&str, f64> = HashMap::new();
        for p in &self.pending {
            let flop = token_claims(&p.token).map_or(0.0, |c| c.flop.get());
            *pending_flop.entry(p.run_id.as_str()).or_default() += flop;
        }
        let mut runs: Vec<_> = self.last_seq.iter().collect();
        runs.sort();
        let marks = runs.into_iter().map(|(run, seq)| {
            let total = self.metered.get(run).copied().unwrap_or(0.0);
            let dropped = (total - pending_flop.get(run.as_str()).copied().unwrap_or(0.0)).max(0.0);
            Record::Mark {
                run: run.clone(),
                seq: *seq,
                flop: (dropped > 0.0).then_some(dropped),
            }
        });
        let newest = self.sources.values().copied().max().unwrap_or(0);
        let mut kept: Vec<_> = self
            .sources
            .iter()
            .filter(|(_, at)| **at >= newest.saturating_sub(SOURCE_RETENTION_SECONDS))
            .collect();
        kept.sort();
        let sources = kept.into_iter().map(|(src, at)| Record::Source {
            src: src.clone(),
            at: *at,
        });
        let reports = self.pending.iter().map(|p| Record::Report {
            run: p.run_id.clone(),
            seq: p.seq,
            token: p.token.clone(),
            src: None,
        });
        let mut bytes = Vec::new();
        for record in marks.chain(sources).chain(reports) {
            bytes.extend(encode_line(
                &serde_json::to_string(&record).expect("records serialize"),
            ));
        }
        let tmp = self.dir.join(COMPACT_FILE);
        File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.journal_path).map_err(io(&self.journal_path))?;
        sync_dir(&self.dir)?;
        self.journal = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.journal_path)
            .map_err(io(&self.journal_path))?;
        self.len = bytes.len() as u64;
        let oldest = newest.saturating_sub(SOURCE_RETENTION_SECONDS);
        self.sources.retain(|_, at| *at >= oldest);
        Ok(())
    }

    /// Sends the pending reports in order through `send`, unless `backoff` says to wait
    /// until later than `now`. Each success is acked; a rejection dead-letters the report
    /// and goes on; the first transient failure stops and schedules the retry
    /// (`now + backoff.next_delay()`). A success resets the backoff.
    pub fn ship(
        &mut self,
        mut send: impl FnMut(&str) -> Result<(), SendError>,
        backoff: &mut Backoff,
        now: Instant,
    ) -> Result<ShipOutcome, QueueError> {
        let mut outcome = ShipOutcome::default();
        if !backoff.ready(now) {
            outcome.pending = self.pending.len();
            outcome.retry_at = backoff.retry_at();
            return Ok(outcome);
        }
        while let Some(report) = self.pending.first().cloned() {
            match send(&report.token) {
                Ok(()) => {
                    self.ack(&report.run_id, report.seq)?;
                    backoff.reset();
                    outcome.delivered += 1;
                }
                Err(SendError::Rejected(reason)) => {
                    self.dead_letter(&report, &reason)?;
                    outcome.dead_lettered += 1;
                }
                Err(SendError::Transient(reason)) => {
                    let delay = backoff.next_delay();
                    let at = now + delay;
                    backoff.retry_at = Some(at);
                    tracing::warn!(run = %report.run_id, seq = report.seq, %reason,
                        attempt = backoff.attempt(), ?delay,
                        "usage report not delivered; retrying later");
                    outcome.retry_at = Some(at);
                    break;
                }
            }
        }
        outcome.pending = self.pending.len();
        Ok(outcome)
    }
}
