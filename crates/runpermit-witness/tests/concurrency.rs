//! Many clients at once, over real HTTP: some extend the log, some extend a fork of it that
//! the same log key signs (a split view). Whatever the interleaving, the witness never
//! cosigns two checkpoints that are not consistent with each other, and the size it holds
//! never goes down. Checked with real consistency proofs over everything it cosigned.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use common::{TestLog, add, agent, get, start, start_on, witness_key};
use runpermit_log::{
    add_signature_lines, consistency_proof, verify_consistency, verify_cosignatures,
};
use sha2::{Digest as _, Sha256};

const ORIGIN: &str = "log.example.org/runpermit";

/// One client's checkpoint: a snapshot of the real log or of the fork.
struct Candidate {
    log: TestLog,
    branch: &'static str,
}

/// The candidates: the log at 10 is cosigned first; then the real log at 11..=40 and a
/// fork that shares its first 10 entries at 11..=40 (the same sizes, other roots).
fn candidates() -> (TestLog, Vec<Candidate>) {
    let mut base = TestLog::new(ORIGIN, 1);
    base.grow(10);
    let mut out = Vec::new();
    for branch in ["real", "fork"] {
        let mut log = base.branch(branch);
        for _ in 11..=40 {
            log.grow(1);
            out.push(Candidate {
                log: log.branch(branch),
                branch,
            });
        }
    }
    (base, out)
}

/// Each client tries until it gets a cosignature or a final refusal: from old 10, and
/// after a 409 from the size the witness names (with a proof from its own tree).
fn race(bases: &[String], candidates: Vec<Candidate>) -> Vec<(Candidate, String)> {
    let barrier = Arc::new(Barrier::new(candidates.len() + 1));
    let cosigned = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    // A monitor polling the served checkpoint: its size must never go down.
    let monitor = {
        let base = bases[0].clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let agent = agent();
            let path = format!("{base}/{}/checkpoint", hex::encode(Sha256::digest(ORIGIN)));
            let mut sizes = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let (status, note) = get(&agent, &path);
                assert_eq!(status, 200);
                sizes.push(note.lines().nth(1).unwrap().parse::<u64>().unwrap());
            }
            sizes
        })
    };
    let clients: Vec<_> = candidates
        .into_iter()
        .enumerate()
        .map(|(i, candidate)| {
            let base = bases[i % bases.len()].clone();
            let barrier = barrier.clone();
            let cosigned = cosigned.clone();
            std::thread::spawn(move || {
                let agent = agent();
                barrier.wait();
                let mut old = 10;
                loop {
                    let (status, _, body) = add(&agent, &base, &candidate.log.request(old));
                    match status {
                        200 => {
                            cosigned.lock().unwrap().push((candidate, body));
                            return;
                        }
                        409 => old = body.trim_end().parse().unwrap(),
                        400 | 422 => return,
                        other => panic!("unexpected {other}: {body}"),
                    }
                    if old > candidate.log.size {
                        return;
                    }
                }
            })
        })
        .collect();
    barrier.wait();
    for client in clients {
        client.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let sizes = monitor.join().unwrap();
    assert!(
        sizes.windows(2).all(|w| w[0] <= w[1]),
        "the served size went down: {sizes:?}"
    );
    Arc::into_inner(cosigned).unwrap().into_inner().unwrap()
}

fn check_all_consistent(cosigned: &[(Candidate, String)]) {
    assert!(!cosigned.is_empty());
    for (a, line) in cosigned {
        let note = add_signature_lines(&a.log.note(), std::slice::from_ref(line));
        assert_eq!(
            verify_cosignatures(&note, &[witness_key().verifier()])
                .unwrap()
                .len(),
            1
        );
    }
    for (a, _) in cosigned {
        for (b, _) in cosigned {
            if a.log.size > b.log.size {
                continue;
            }
            let proof = consistency_proof(a.log.size, b.log.size, &b.log.stored).unwrap();
            verify_consistency(a.log.size, b.log.size, &a.log.root, &b.log.root, &proof)
                .unwrap_or_else(|e| {
                    panic!(
                        "cosigned {} at {} and {} at {}, which are inconsistent: {e}",
                        a.branch, a.log.size, b.branch, b.log.size
                    )
                });
        }
    }
    let branches: std::collections::BTreeSet<&str> =
        cosigned.iter().map(|(c, _)| c.branch).collect();
    assert_eq!(branches.len(), 1, "both branches were cosigned");
}

#[test]
fn concurrent_submissions_never_get_inconsistent_checkpoints_cosigned() {
    let dir = tempfile::tempdir().unwrap();
    let (base_log, candidates) = candidates();
    let base = start(dir.path(), &[base_log.vkey()]);
    let agent = agent();
    assert_eq!(add(&agent, &base, &base_log.request(0)).0, 200);
    let cosigned = race(std::slice::from_ref(&base), candidates);
    check_all_consistent(&cosigned);
    // The witness holds the largest size it cosigned.
    let largest = cosigned.iter().map(|(c, _)| c.log.size).max().unwrap();
    let (_, served) = get(
        &agent,
        &format!("{base}/{}/checkpoint", hex::encode(Sha256::digest(ORIGIN))),
    );
    assert_eq!(served.lines().nth(1).unwrap(), largest.to_string());
}

#[test]
fn two_witness_processes_on_one_database_are_serialized_too() {
    // Two witnesses on one file stand for two processes: each has its own in-process queue,
    // so only SQLite's write lock (BEGIN IMMEDIATE) keeps them apart.
    let dir = tempfile::tempdir().unwrap();
    let (base_log, candidates) = candidates();
    let db = dir.path().join("shared.db");
    let a = start_on(db.clone(), &[base_log.vkey()]);
    let b = start_on(db, &[base_log.vkey()]);
    assert_eq!(add(&agent(), &a, &base_log.request(0)).0, 200);
    let cosigned = race(&[a, b], candidates);
    check_all_consistent(&cosigned);
}
