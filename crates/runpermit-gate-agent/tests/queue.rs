//! The durable usage-report queue: reports survive reopening, torn writes and `kill -9`;
//! shipping to a local authority (real Ed25519 signatures, checked with
//! `verify_usage_report`) delivers each exactly once, in order, with backoff.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runpermit_compute::HardwareTable;
use runpermit_gate::scheduler_accounting;
use runpermit_gate_agent::queue::{DEAD_LETTER_FILE, JOURNAL_FILE};
use runpermit_gate_agent::{Backoff, QueueError, SendError, UsageQueue};
use runpermit_permit::{Jwks, SigningKey, UsageReportClaims, verify_usage_report};

const PROVIDER: &str = "org-cloud";

/// A sound report for `run` (the queue assigns `seq`).
fn claims(run: &str, hour: i64) -> UsageReportClaims {
    let chip = HardwareTable::builtin().lookup("H100 SXM").unwrap();
    let metered = scheduler_accounting(chip, 8.0 * 3600.0, None).unwrap();
    let from = 1_767_225_600 + hour * 3600;
    UsageReportClaims::new(
        PROVIDER,
        run,
        "pmt_1",
        "us-east-1",
        0,
        (from, from + 3600),
        from + 3601,
        metered,
    )
}

/// (run, seq) of the pending reports.
fn ids(queue: &UsageQueue) -> Vec<(String, u64)> {
    queue
        .pending()
        .into_iter()
        .map(|p| (p.run_id, p.seq))
        .collect()
}

fn pair(run: &str, seq: u64) -> (String, u64) {
    (run.to_owned(), seq)
}

/// The local authority: verifies each report against the provider's public key and records
/// (run, seq) of what it accepted, in arrival order.
struct Authority {
    keys: Jwks,
    accepted: Vec<(String, u64)>,
}

impl Authority {
    fn new(key: &SigningKey) -> Authority {
        Authority {
            keys: Jwks::from_keys(&[key.public()]),
            accepted: Vec::new(),
        }
    }

    fn receive(&mut self, token: &str) -> Result<(), SendError> {
        let claims = verify_usage_report(token, &self.keys)
            .map_err(|e| SendError::Rejected(e.to_string()))?;
        assert_eq!(claims.iss, PROVIDER);
        self.accepted.push((claims.sub, claims.seq));
        Ok(())
    }
}

#[test]
fn enqueued_reports_survive_reopening_and_numbering_continues() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert!(queue.pending().is_empty());
    assert_eq!(queue.enqueue(claims("run_a", 0), &key).unwrap(), 1);
    assert_eq!(queue.enqueue(claims("run_b", 0), &key).unwrap(), 1);
    assert_eq!(queue.enqueue(claims("run_a", 1), &key).unwrap(), 2);
    let before = queue.pending();
    drop(queue);

    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert_eq!(queue.pending(), before);
    assert_eq!(
        ids(&queue),
        [pair("run_a", 1), pair("run_b", 1), pair("run_a", 2)]
    );
    // Each token is the signed report with the queue's seq.
    let keys = Jwks::from_keys(&[key.public()]);
    for p in queue.pending() {
        let c = verify_usage_report(&p.token, &keys).unwrap();
        assert_eq!((c.sub, c.seq), (p.run_id, p.seq));
    }
    assert_eq!(queue.enqueue(claims("run_a", 2), &key).unwrap(), 3);
    assert_eq!(queue.enqueue(claims("run_b", 1), &key).unwrap(), 2);
    assert_eq!(queue.last_seq("run_a"), 3);
    assert_eq!(queue.last_seq("run_c"), 0);
}

#[test]
fn unsound_claims_are_refused_and_use_no_seq() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    let mut bad = claims("run_a", 0);
    bad.to = bad.from;
    assert!(matches!(
        queue.enqueue(bad, &key),
        Err(QueueError::Report(_))
    ));
    assert!(queue.pending().is_empty());
    assert_eq!(queue.enqueue(claims("run_a", 0), &key).unwrap(), 1);
}

#[test]
fn a_torn_last_record_is_dropped_and_the_earlier_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let journal = dir.path().join(JOURNAL_FILE);
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    for hour in 0..3 {
        queue.enqueue(claims("run_a", hour), &key).unwrap();
    }
    drop(queue);
    let full = std::fs::read(&journal).unwrap();

    // Cut mid-record: the last report is half written.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    file.set_len(full.len() as u64 - 40).unwrap();
    drop(file);
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert_eq!(ids(&queue), [pair("run_a", 1), pair("run_a", 2)]);
    // The file was cut back to the last good record, so appending after it is clean.
    let seq = queue.enqueue(claims("run_a", 2), &key).unwrap();
    assert_eq!(seq, 3);
    drop(queue);
    let queue = UsageQueue::open(dir.path()).unwrap();
    assert_eq!(
        ids(&queue),
        [pair("run_a", 1), pair("run_a", 2), pair("run_a", 3)]
    );
    drop(queue);

    // A complete last line whose checksum fails (a torn page) is dropped too.
    let mut bytes = std::fs::read(&journal).unwrap();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x01;
    std::fs::write(&journal, &bytes).unwrap();
    let queue = UsageQueue::open(dir.path()).unwrap();
    assert_eq!(ids(&queue), [pair("run_a", 1), pair("run_a", 2)]);
    drop(queue);

    // Damage anywhere else is not a torn write: refused, not skipped.
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[30] ^= 0x01;
    std::fs::write(&journal, &bytes).unwrap();
    let err = UsageQueue::open(dir.path()).unwrap_err();
    assert!(matches!(err, QueueError::Corrupt { line: 1, .. }), "{err}");
}

#[test]
fn acks_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    for hour in 0..3 {
        queue.enqueue(claims("run_a", hour), &key).unwrap();
    }
    assert!(queue.ack("run_a", 2).unwrap());
    assert!(!queue.ack("run_a", 2).unwrap(), "a second ack is a no-op");
    assert!(
        !queue.ack("run_z", 1).unwrap(),
        "an unknown report is not pending"
    );
    drop(queue);
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert_eq!(ids(&queue), [pair("run_a", 1), pair("run_a", 3)]);
    assert_eq!(queue.enqueue(claims("run_a", 3), &key).unwrap(), 4);
}

#[test]
fn backoff_grows_with_jitter_and_is_capped() {
    let base = Duration::from_millis(100);
    let max = Duration::from_secs(5);
    let mut backoff = Backoff::with_seed(base, max, 7);
    let mut delays = Vec::new();
    for n in 0..20 {
        let ceiling = backoff.ceiling();
        assert_eq!(ceiling, (base * 2u32.pow(n.min(10))).min(max));
        let d = backoff.next_delay();
        assert!(
            d >= ceiling / 2 && d <= ceiling,
            "{d:?} not in [{ceiling:?}/2, {ceiling:?}]"
        );
        delays.push(d);
    }
    assert_eq!(backoff.attempt(), 20);
    // Growing while the ceiling doubles (up to 3.2 s < 5 s), within [max/2, max] after.
    assert!(delays[..7].windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
    assert!(delays[7..].iter().all(|d| *d >= max / 2), "{delays:?}");
    assert!(delays.iter().all(|d| *d <= max));
    assert!(delays[0] < Duration::from_millis(101));
    assert!(delays[19] >= max / 2);
    // Jitter: the capped delays are not all the same.
    let capped: BTreeSet<_> = delays[10..].iter().collect();
    assert!(capped.len() > 1, "{delays:?}");
    // Same seed, same delays; a reset starts over.
    let mut again = Backoff::with_seed(base, max, 7);
    assert_eq!(again.next_delay(), delays[0]);
    again.reset();
    assert_eq!(again.attempt(), 0);
    assert_eq!(again.ceiling(), base);
}

#[test]
fn a_flaky_authority_gets_every_report_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    let mut expected = Vec::new();
    for hour in 0..3 {
        for run in ["run_a", "run_b"] {
            let seq = queue.enqueue(claims(run, hour), &key).unwrap();
            expected.push(pair(run, seq));
        }
    }
    let mut authority = Authority::new(&key);
    let mut calls = 0;
    let mut backoff = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(60), 42);
    let t0 = Instant::now();

    let mut send = |token: &str| {
        calls += 1;
        if calls <= 2 {
            return Err(SendError::Transient("connection refused".into()));
        }
        authority.receive(token)
    };
    // First failure: nothing delivered, a retry scheduled.
    let first = queue.ship(&mut send, &mut backoff, t0).unwrap();
    assert_eq!((first.delivered, first.pending), (0, 6));
    let at1 = first.retry_at.unwrap();
    let d1 = at1 - t0;
    assert!(d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1));
    // Before the retry is due nothing is sent.
    let early = queue.ship(&mut send, &mut backoff, t0).unwrap();
    assert_eq!((early.delivered, early.retry_at), (0, Some(at1)));
    // Second failure: a longer wait.
    let second = queue.ship(&mut send, &mut backoff, at1).unwrap();
    let at2 = second.retry_at.unwrap();
    let d2 = at2 - at1;
    assert!(
        d2 >= d1 && d2 <= Duration::from_secs(2),
        "{d1:?} then {d2:?}"
    );
    assert_eq!(backoff.attempt(), 2);
    // Then everything flows, and the backoff is reset.
    let third = queue.ship(&mut send, &mut backoff, at2).unwrap();
    assert_eq!(
        (third.delivered, third.pending, third.retry_at),
        (6, 0, None)
    );
    assert_eq!(calls, 8);
    assert_eq!(backoff.attempt(), 0);
    assert_eq!(authority.accepted, expected);

    // Nothing is resent, now or after a restart.
    let again = queue
        .ship(|t| authority.receive(t), &mut backoff, at2)
        .unwrap();
    assert_eq!(again.delivered, 0);
    drop(queue);
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert!(queue.pending().is_empty());
    queue
        .ship(|t| authority.receive(t), &mut backoff, at2)
        .unwrap();
    assert_eq!(authority.accepted, expected);
}

#[test]
fn a_lost_acknowledgement_means_a_harmless_resend() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    queue.enqueue(claims("run_a", 0), &key).unwrap();
    let mut authority = Authority::new(&key);
    let mut backoff = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(60), 1);
    let t0 = Instant::now();
    // The authority takes the report but its answer is lost.
    let out = queue
        .ship(
            |t| {
                authority.receive(t)?;
                Err(SendError::Transient("timeout".into()))
            },
            &mut backoff,
            t0,
        )
        .unwrap();
    assert_eq!(out.pending, 1);
    let out = queue
        .ship(
            |t| authority.receive(t),
            &mut backoff,
            out.retry_at.unwrap(),
        )
        .unwrap();
    assert_eq!(out.delivered, 1);
    // Same (run, seq) twice: the authority's idempotence makes it one report.
    assert_eq!(authority.accepted, [pair("run_a", 1), pair("run_a", 1)]);
    let distinct: BTreeSet<_> = authority.accepted.iter().collect();
    assert_eq!(distinct.len(), 1);
}

#[test]
fn a_rejected_report_goes_to_the_dead_letters_and_the_rest_flow() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let stranger = SigningKey::generate();
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    queue.enqueue(claims("run_a", 0), &key).unwrap();
    // Signed with a key the authority does not know: a bad signature, for good.
    queue.enqueue(claims("run_a", 1), &stranger).unwrap();
    queue.enqueue(claims("run_a", 2), &key).unwrap();
    let mut authority = Authority::new(&key);
    let mut backoff = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(60), 3);
    let out = queue
        .ship(|t| authority.receive(t), &mut backoff, Instant::now())
        .unwrap();
    assert_eq!(
        (out.delivered, out.dead_lettered, out.pending, out.retry_at),
        (2, 1, 0, None)
    );
    assert_eq!(authority.accepted, [pair("run_a", 1), pair("run_a", 3)]);
    let letters = queue.dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].run_id.as_str(), letters[0].seq), ("run_a", 2));
    assert!(
        letters[0].reason.contains("usage report"),
        "{}",
        letters[0].reason
    );
    assert!(dir.path().join(DEAD_LETTER_FILE).exists());
    // Not retried, across a restart either.
    drop(queue);
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert!(queue.pending().is_empty());
    assert_eq!(queue.dead_letters().unwrap(), letters);
    assert_eq!(queue.enqueue(claims("run_a", 3), &key).unwrap(), 4);
}

#[test]
fn compaction_keeps_exactly_the_unacknowledged_and_the_numbering() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let journal = dir.path().join(JOURNAL_FILE);
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    for hour in 0..6 {
        queue.enqueue(claims("run_a", hour), &key).unwrap();
    }
    queue.enqueue(claims("run_b", 0), &key).unwrap();
    for seq in [1, 3, 5] {
        queue.ack("run_a", seq).unwrap();
    }
    queue.ack("run_b", 1).unwrap();
    let before = queue.pending();
    let size = std::fs::metadata(&journal).unwrap().len();
    queue.compact().unwrap();
    assert!(std::fs::metadata(&journal).unwrap().len() < size);
    assert_eq!(queue.pending(), before);
    assert_eq!(
        ids(&queue),
        [pair("run_a", 2), pair("run_a", 4), pair("run_a", 6)]
    );
    // Two marks (run_a, run_b) and the three unacknowledged reports.
    let text = std::fs::read_to_string(&journal).unwrap();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert_eq!(text.matches("\"report\"").count(), 3);
    // Appending after compaction works; numbering continues even for a fully acked run.
    assert_eq!(queue.enqueue(claims("run_a", 6), &key).unwrap(), 7);
    drop(queue);
    // A compaction that died before its rename leaves a temporary file: ignored.
    std::fs::write(dir.path().join("journal.log.tmp"), b"half").unwrap();
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert!(!dir.path().join("journal.log.tmp").exists());
    assert_eq!(
        ids(&queue),
        [
            pair("run_a", 2),
            pair("run_a", 4),
            pair("run_a", 6),
            pair("run_a", 7)
        ]
    );
    assert_eq!(queue.enqueue(claims("run_b", 1), &key).unwrap(), 2);
    for (run, seq) in ids(&queue) {
        queue.ack(&run, seq).unwrap();
    }
    queue.compact().unwrap();
    drop(queue);
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert!(queue.pending().is_empty());
    assert_eq!(queue.enqueue(claims("run_a", 7), &key).unwrap(), 8);
    assert_eq!(queue.enqueue(claims("run_b", 2), &key).unwrap(), 3);
}

const CHILD_DIR: &str = "RUNPERMIT_QUEUE_CHILD_DIR";
const CHILD_SEED: &str = "RUNPERMIT_QUEUE_CHILD_SEED";

/// The child of [`kill_9_loses_nothing_that_was_enqueued`]: with [`CHILD_DIR`] set, enqueues
/// reports for two runs in a loop (acking every third) and prints `enqueued RUN SEQ` and
/// `acked RUN SEQ` after each call returns, until killed. A no-op otherwise.
#[test]
fn queue_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let seed: u8 = std::env::var(CHILD_SEED).unwrap().parse().unwrap();
    let key = SigningKey::from_seed(&[seed; 32]);
    let mut queue = UsageQueue::open(&dir).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let run = if i.is_multiple_of(2) {
            "run_a"
        } else {
            "run_b"
        };
        let seq = queue.enqueue(claims(run, i as i64), &key).unwrap();
        std::io::Write::write_fmt(&mut out, format_args!("enqueued {run} {seq}\n")).unwrap();
        if seq.is_multiple_of(3) {
            queue.ack(run, seq).unwrap();
            std::io::Write::write_fmt(&mut out, format_args!("acked {run} {seq}\n")).unwrap();
        }
        std::io::Write::flush(&mut out).unwrap();
    }
}

#[test]
fn kill_9_loses_nothing_that_was_enqueued() {
    let dir = tempfile::tempdir().unwrap();
    let seed = 9u8;
    let keys = Jwks::from_keys(&[SigningKey::from_seed(&[seed; 32]).public()]);
    let mut enqueued = BTreeSet::new();
    let mut acked = BTreeSet::new();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "queue_child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_SEED, seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        let mut record = |line: &str| {
            let mut words = line.split(' ');
            let (what, run, seq) = (words.next(), words.next(), words.next());
            let Some(seq) = seq.and_then(|s| s.parse::<u64>().ok()) else {
                return false;
            };
            let id = pair(run.unwrap(), seq);
            match what {
                Some("enqueued") => enqueued.insert(id),
                Some("acked") => acked.insert(id),
                _ => return false,
            };
            true
        };
        // Let it write a while, then SIGKILL it mid-stream.
        for line in lines.by_ref() {
            if record(&line.unwrap()) {
                seen += 1;
            }
            if seen >= 60 + round * 7 {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        // What it printed before dying was acknowledged by the queue too.
        for line in lines {
            record(&line.unwrap());
        }

        let queue = UsageQueue::open(dir.path()).unwrap();
        let pending = ids(&queue);
        let pending_set: BTreeSet<_> = pending.iter().cloned().collect();
        assert_eq!(pending_set.len(), pending.len(), "no report twice");
        for id in &enqueued {
            assert!(
                pending_set.contains(id) || acked.contains(id) || id.1.is_multiple_of(3),
                "round {round}: {id:?} was enqueued but is lost"
            );
        }
        for id in &acked {
            assert!(!pending_set.contains(id), "{id:?} was acked but is pending");
        }
        // Per run: seqs 1..=last with no gap (the child never acks seqs not divisible by 3;
        // one killed between enqueue and print is there, unreported), numbering continuing.
        for run in ["run_a", "run_b"] {
            let last = queue.last_seq(run);
            let max_enqueued = enqueued
                .iter()
                .filter(|(r, _)| r == run)
                .map(|(_, s)| *s)
                .max()
                .unwrap_or(0);
            assert!(last >= max_enqueued, "{run}: {last} < {max_enqueued}");
            assert!(last <= max_enqueued + 1, "{run}: at most one unreported");
            for seq in (1..=last).filter(|s| !s.is_multiple_of(3)) {
                assert!(
                    pending_set.contains(&pair(run, seq)),
                    "{run} {seq} is missing"
                );
            }
        }
        // Every record verifies and carries its queue's (run, seq).
        for p in queue.pending() {
            let c = verify_usage_report(&p.token, &keys).unwrap();
            assert_eq!((c.sub, c.seq), (p.run_id, p.seq));
        }
    }
    assert!(enqueued.len() >= 100, "{}", enqueued.len());
}

#[test]
fn source_keys_and_metered_totals_survive_reopening_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let per_report = claims("run_a", 0).flop.get();
    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert_eq!(
        queue
            .enqueue_once(claims("run_a", 0), &key, "spool:a:1")
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        queue
            .enqueue_once(claims("run_a", 1), &key, "spool:a:1")
            .unwrap(),
        None,
        "a source is reported once"
    );
    assert_eq!(queue.enqueue(claims("run_a", 2), &key).unwrap(), 2);
    // A source signed more than SOURCE_RETENTION_SECONDS before the newest one.
    let mut old = claims("run_b", 0);
    old.iat -= runpermit_gate_agent::queue::SOURCE_RETENTION_SECONDS + 3600;
    queue.enqueue_once(old, &key, "spool:old:2").unwrap();
    drop(queue);

    let mut queue = UsageQueue::open(dir.path()).unwrap();
    assert!(queue.has_source("spool:a:1") && queue.has_source("spool:old:2"));
    assert_eq!(queue.metered("run_a").get(), 2.0 * per_report);
    queue.ack("run_a", 1).unwrap();
    queue.compact().unwrap();
    drop(queue);

    let queue = UsageQueue::open(dir.path()).unwrap();
    assert!(queue.has_source("spool:a:1"), "recent keys are kept");
    assert!(
        !queue.has_source("spool:old:2"),
        "keys past the retention are not"
    );
    assert_eq!(ids(&queue), [pair("run_a", 2), pair("run_b", 1)]);
    assert_eq!(queue.metered("run_a").get(), 2.0 * per_report);
    assert_eq!(queue.metered("run_b").get(), per_report);
    assert_eq!(queue.metered("run_c").get(), 0.0);
}
