//! What the witness answers to an `add-checkpoint` request, in two pure steps:
//!
//! 1. [`verify_submission`], independent of state: the origin must be a log the witness is
//!    configured for (404), the note must carry a valid signature by one of that log's keys
//!    and no line by one of its keys that fails to verify (403), the old size must not
//!    exceed the checkpoint's size (400).
//! 2. [`check_against`], against the latest checkpoint cosigned for that log (read and
//!    written in one transaction by the caller): the old size must be its size (409), and
//!    the checkpoint must extend it (422: a bad proof, a proof from size 0, the same size
//!    with another root, a size-0 checkpoint without the empty tree's root).
//!
//! The order of the checks is the order of C2SP `tlog-witness`.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use runpermit_log::{
    CheckpointError, EMPTY_ROOT, Hash, MAX_LOG_SIZE, VerifierKey, verify_checkpoint,
    verify_consistency,
};

use crate::request::AddCheckpoint;

/// Why a submission was not cosigned: each maps to one HTTP status, and displays as one
/// short line for the response body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the request is not in the `add-checkpoint` format, or the checkpoint note is
    /// malformed.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// 404: the witness is not configured for this origin.
    #[error("unknown log: this witness is not configured for origin {0:?}")]
    UnknownLog(String),
    /// 403: no valid signature by a trusted key of the log, or a line by one of its keys
    /// that does not verify.
    #[error("{0}")]
    Forbidden(String),
    /// 400: the old size is larger than the checkpoint's.
    #[error("old size {old} is larger than the checkpoint's size {size}")]
    OldTooLarge {
        /// The request's old size.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// 409: the old size is not the size of the latest checkpoint cosigned for the log. The
    /// body is that size and a newline (`text/x.tlog.size`).
    #[error("{stored}")]
    Conflict {
        /// The size the witness holds (0 when it never cosigned for the log).
        stored: u64,
    },
    /// 422: the checkpoint is not consistent with what the witness holds, or not a valid
    /// tree head.
    #[error("inconsistent: {0}")]
    Inconsistent(String),
}

impl Refusal {
    /// The HTTP status code C2SP `tlog-witness` gives this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldTooLarge { .. } => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownLog(_) => 404,
            Refusal::Conflict { .. } => 409,
            Refusal::Inconsistent(_) => 422,
        }
    }
}

/// The logs a witness cosigns for: their trusted verifier keys, by origin (a log's origin
/// is its key's name; several keys may share one, while a log rotates its key).
#[derive(Clone, Default)]
pub struct TrustedLogs {
    by_origin: BTreeMap<String, Vec<VerifierKey>>,
}

impl TrustedLogs {
    /// The logs of these keys.
    pub fn new(keys: impl IntoIterator<Item = VerifierKey>) -> TrustedLogs {
        let mut by_origin: BTreeMap<String, Vec<VerifierKey>> = BTreeMap::new();
        for key in keys {
            let keys = by_origin.entry(key.name().to_owned()).or_default();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        TrustedLogs { by_origin }
    }

    /// The origins, in order.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.by_origin.keys().map(String::as_str)
    }

    /// The trusted keys of `origin`, if the witness knows it.
    pub fn keys(&self, origin: &str) -> Option<&[VerifierKey]> {
        self.by_origin.get(origin).map(Vec::as_slice)
    }
}

impl fmt::Debug for TrustedLogs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.by_origin.iter().map(|(o, k)| (o, k.len())))
            .finish()
    }
}

/// A submission whose log signature verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// The request's old size.
    pub old: u64,
    /// The request's consistency proof.
    pub proof: Vec<runpermit_log::Hash>,
    /// The verified checkpoint.
    pub checkpoint: runpermit_log::Checkpoint,
    /// The checkpoint body and the signature lines of the log's trusted keys (other lines,
    /// such as other witnesses' cosignatures, dropped): what the witness keeps and serves
    /// with its own cosignature appended.
    pub log_note: String,
}

/// The latest checkpoint a witness cosigned for a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogState {
    /// Its size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

/// Step 1: the checks that do not depend on the witness's state (404, 403, 400).
pub fn verify_submission(
    request: &AddCheckpoint,
    logs: &TrustedLogs,
) -> Result<Submission, Refusal> {
    let origin = request.origin();
    let keys = logs
        .keys(origin)
        .ok_or_else(|| Refusal::UnknownLog(origin.to_owned()))?;
    let mut verified = None;
    for key in keys {
        match verify_checkpoint(&request.note, &key.to_string()) {
            Ok(checkpoint) => verified = Some(checkpoint),
            Err(CheckpointError::NotSignedByKey { .. }) => {}
            Err(CheckpointError::BadSignature) => {
                return Err(Refusal::Forbidden(format!(
                    "the signature by log key {}+{:08x} does not verify",
                    key.name(),
                    key.key_id()
                )));
            }
            Err(CheckpointError::Malformed(m)) => return Err(Refusal::Malformed(m)),
            Err(other) => return Err(Refusal::Malformed(other.to_string())),
        }
    }
    let checkpoint = verified.ok_or_else(|| {
        Refusal::Forbidden(format!(
            "no valid signature by a trusted key of log {origin:?}"
        ))
    })?;
    if checkpoint.size > MAX_LOG_SIZE {
        return Err(Refusal::Malformed(format!(
            "a tree size of {} is beyond the 2^62 entries a log may hold",
            checkpoint.size
        )));
    }
    if request.old > checkpoint.size {
        return Err(Refusal::OldTooLarge {
            old: request.old,
            size: checkpoint.size,
        });
    }
    let body = checkpoint.body();
    let mut log_note = format!("{body}\n");
    let trusted_lines: Vec<(&str, &VerifierKey)> = signature_lines(&request.note, body.len())
        .filter_map(|line| keys.iter().find(|k| line_is_by(line, k)).map(|k| (line, k)))
        .collect();
    for &(line, key) in &trusted_lines {
        // Signed-note verification checks one line per key and skips any later line by the
        // same key; C2SP requires every line by a known key to verify, so each is checked
        // on its own when there are several.
        if trusted_lines.len() > 1
            && verify_checkpoint(&format!("{body}\n{line}"), &key.to_string()).is_err()
        {
            return Err(Refusal::Forbidden(format!(
                "a signature line by log key {}+{:08x} does not verify",
                key.name(),
                key.key_id()
            )));
        }
        if !log_note.contains(line) {
            log_note.push_str(line);
        }
    }
    Ok(Submission {
        old: request.old,
        proof: request.proof.clone(),
        checkpoint,
        log_note,
    })
}

/// The signature lines (each with its newline) of a verified note whose body is `body_len`
/// bytes long.
fn signature_lines(note: &str, body_len: usize) -> impl Iterator<Item = &str> {
    note.get(body_len + 1..)
        .unwrap_or_default()
        .split_inclusive('\n')
}

/// Whether a signature line `— <name> <base64>` carries `key`'s name and key id.
fn line_is_by(line: &str, key: &VerifierKey) -> bool {
    let Some((name, b64)) = line
        .strip_prefix("— ")
        .and_then(|l| l.trim_end_matches('\n').split_once(' '))
    else {
        return false;
    };
    let id = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .ok()
        .and_then(|raw| raw.first_chunk::<4>().map(|id| u32::from_be_bytes(*id)));
    name == key.name() && id == Some(key.key_id())
}

/// Step 2: the checks against the latest cosigned checkpoint `stored` (`None`: never
/// cosigned for this log) (409, 422). `Ok` means the witness may record and cosign it.
pub fn check_against(submission: &Submission, stored: Option<&LogState>) -> Result<(), Refusal> {
    let stored_size = stored.map_or(0, |s| s.size);
    let (old, new) = (submission.old, &submission.checkpoint);
    if old != stored_size {
        return Err(Refusal::Conflict {
            stored: stored_size,
        });
    }
    if new.size == 0 && new.root_hash != EMPTY_ROOT {
        return Err(Refusal::Inconsistent(
            "a checkpoint of size 0 must have the empty tree's root hash".into(),
        ));
    }
    let Some(stored) = stored.filter(|_| old > 0) else {
        if !submission.proof.is_empty() {
            return Err(Refusal::Inconsistent(
                "the consistency proof from size 0 must be empty".into(),
            ));
        }
        return Ok(());
    };
    if old == new.size && new.root_hash != stored.root {
        return Err(Refusal::Inconsistent(format!(
            "the checkpoint has size {old}, the size already cosigned, but root {} instead of {}",
            new.root_hash, stored.root
        )));
    }
    verify_consistency(
        old,
        new.size,
        &stored.root,
        &new.root_hash,
        &submission.proof,
    )
    .map_err(|_| {
        Refusal::Inconsistent(format!(
            "the consistency proof does not show the cosigned tree of size {old} to be a \
             prefix of the checkpoint's tree of size {}",
            new.size
        ))
    })
}

#[cfg(test)]
mod tests {
    use runpermit_log::{
        Checkpoint, LogKey, append, consistency_proof, leaf_hash, sign_checkpoint,
    };

    use super::*;
    use crate::request::parse;

    const ORIGIN: &str = "log.example/a";

    struct Log {
        key: LogKey,
        stored: Vec<Hash>,
        size: u64,
        root: Hash,
    }

    impl Log {
        fn new(seed: u8) -> Log {
            Log {
                key: LogKey::from_seed(ORIGIN, &[seed; 32]).unwrap(),
                stored: Vec::new(),
                size: 0,
                root: EMPTY_ROOT,
            }
        }
        fn grow(&mut self, n: u64, tag: &str) {
            let leaves: Vec<Hash> = (0..n)
                .map(|i| leaf_hash(format!("{tag}{}", self.size + i).as_bytes()))
                .collect();
            let a = append(self.size, &leaves, &self.stored).unwrap();
            self.stored.extend(a.hashes);
            (self.size, self.root) = (a.size, a.root);
        }
        fn note(&self) -> String {
            let cp = Checkpoint {
                origin: ORIGIN.into(),
                size: self.size,
                root_hash: self.root,
            };
            sign_checkpoint(&cp, &self.key).unwrap()
        }
        fn request(&self, old: u64) -> String {
            let proof = if old == 0 {
                Vec::new()
            } else {
                consistency_proof(old, self.size, &self.stored).unwrap()
            };
            let lines: String = proof.iter().map(|h| format!("{h}\n")).collect();
            format!("old {old}\n{lines}\n{}", self.note())
        }
        fn state(&self) -> LogState {
            LogState {
                size: self.size,
                root: self.root,
            }
        }
    }

    fn decide(body: &str, logs: &TrustedLogs, stored: Option<&LogState>) -> Result<(), Refusal> {
        let sub = verify_submission(&parse(body.as_bytes())?, logs)?;
        check_against(&sub, stored)
    }

    fn logs(log: &Log) -> TrustedLogs {
        TrustedLogs::new([VerifierKey::parse(&log.key.verifier_key()).unwrap()])
    }

    #[test]
    fn growing_log_is_accepted_and_each_refusal_has_its_status() {
        let mut log = Log::new(1);
        let trusted = logs(&log);
        log.grow(5, "e");
        assert_eq!(decide(&log.request(0), &trusted, None), Ok(()));
        let at5 = log.state();
        log.grow(7, "e");
        assert_eq!(decide(&log.request(5), &trusted, Some(&at5)), Ok(()));
        // 409: the witness holds 5, the client says 3 (or 0).
        let status = |r: Result<(), Refusal>| r.unwrap_err().status();
        assert_eq!(
            decide(&log.request(3), &trusted, Some(&at5)),
            Err(Refusal::Conflict { stored: 5 })
        );
        assert_eq!(status(decide(&log.request(0), &trusted, Some(&at5))), 409);
        // 400: old larger than the checkpoint.
        let body = log.request(5).replacen("old 5", "old 13", 1);
        assert_eq!(status(decide(&body, &trusted, Some(&at5))), 400);
        // 422: a proof that does not lead from the stored root.
        let other = LogState {
            size: 5,
            root: leaf_hash(b"fork"),
        };
        assert_eq!(status(decide(&log.request(5), &trusted, Some(&other))), 422);
        // 422: a proof sent from size 0.
        let body = log.request(5).replacen("old 5", "old 0", 1);
        assert_eq!(status(decide(&body, &trusted, None)), 422);
        // 422: same size, different root.
        let same = LogState {
            size: 12,
            root: leaf_hash(b"other"),
        };
        assert_eq!(status(decide(&log.request(12), &trusted, Some(&same))), 422);
        assert_eq!(
            decide(&log.request(12), &trusted, Some(&log.state())),
            Ok(())
        );
        // 404: another origin.
        let stranger = TrustedLogs::new([VerifierKey::parse(
            &LogKey::from_seed("log.example/b", &[1; 32])
                .unwrap()
                .verifier_key(),
        )
        .unwrap()]);
        assert_eq!(status(decide(&log.request(0), &stranger, None)), 404);
    }

    #[test]
    fn a_size_zero_checkpoint_needs_the_empty_root() {
        let log = Log::new(1);
        assert_eq!(decide(&log.request(0), &logs(&log), None), Ok(()));
        let forged = Checkpoint {
            origin: ORIGIN.into(),
            size: 0,
            root_hash: leaf_hash(b"x"),
        };
        let body = format!("old 0\n\n{}", sign_checkpoint(&forged, &log.key).unwrap());
        assert!(matches!(
            decide(&body, &logs(&log), None),
            Err(Refusal::Inconsistent(m)) if m.contains("empty tree")
        ));
    }

    #[test]
    fn signatures_by_other_keys_are_ignored_and_a_bad_trusted_one_is_forbidden() {
        let mut log = Log::new(1);
        log.grow(3, "e");
        let impostor = Log {
            key: LogKey::from_seed(ORIGIN, &[2; 32]).unwrap(),
            ..Log::new(2)
        };
        // Signed only by another key of the same name: 403.
        let mut forged = Log::new(2);
        forged.grow(3, "e");
        let err = decide(&forged.request(0), &logs(&log), None).unwrap_err();
        assert_eq!(err.status(), 403, "{err}");
        // A valid note with an extra line by an untrusted key verifies; the kept note drops
        // that line.
        let sig = impostor.note();
        let extra = sig
            .rsplit_once("\n\n")
            .unwrap()
            .1
            .replace(ORIGIN, "other.example/x");
        let body = format!("{}{extra}", log.request(0));
        let sub = verify_submission(&parse(body.as_bytes()).unwrap(), &logs(&log)).unwrap();
        assert_eq!(sub.log_note, log.note());
        // A trusted key's line that does not verify: 403 even beside a valid one.
        let note = log.note();
        let (text, line) = note.rsplit_once("\n\n").unwrap();
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(line.trim_end().rsplit_once(' ').unwrap().1)
            .unwrap();
        raw[10] ^= 1;
        let broken = format!(
            "— {ORIGIN} {}\n",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        let body = format!("old 0\n\n{text}\n\n{line}{broken}");
        let err = decide(&body, &logs(&log), None).unwrap_err();
        assert_eq!(err.status(), 403, "{err}");
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
}
