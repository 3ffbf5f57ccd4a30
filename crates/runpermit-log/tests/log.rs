//! A whole log through the public API: building it incrementally, proofs from it, and
//! `verify_log` against every kind of tampering, each reported with its exact index.

mod common;

use common::{MemLog, NAME, key, sample, sample_bytes};
use runpermit_log::{
    Checkpoint, EntryError, LogKey, LogState, ProofBundle, VerifyError, decode, entries_tile,
    inclusion_proof, needed_paths, parse_entries_tile, sign_checkpoint, tree_hash, verify_log,
    verify_log_visiting,
};

fn verify(
    log: &MemLog,
    previous: Option<&LogState>,
    note: &str,
) -> Result<runpermit_log::VerifySummary, VerifyError<common::NotFound>> {
    verify_log(
        &log.key.verifier_key(),
        previous,
        note,
        &log.fetcher(),
        &mut |_, _| {},
    )
}

fn state(log: &MemLog) -> LogState {
    LogState {
        size: log.size(),
        root_hash: log.root,
    }
}

/// Rewrites bundle `path`'s entries with `change`.
fn edit_bundle(log: &mut MemLog, path: &str, change: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let mut entries = parse_entries_tile(&log.files[path]).unwrap();
    change(&mut entries);
    let refs: Vec<&[u8]> = entries.iter().map(Vec::as_slice).collect();
    log.files.insert(path.into(), entries_tile(&refs));
}

#[test]
fn an_honest_log_verifies_from_scratch_and_incrementally() {
    let mut log = MemLog::of(700, 37);
    assert_eq!(
        log.root,
        tree_hash(
            &log.entries
                .iter()
                .map(|e| runpermit_log::leaf_hash(e))
                .collect::<Vec<_>>()
        )
    );
    let note = log.checkpoint();
    let mut calls = Vec::new();
    let summary = verify_log(
        &log.key.verifier_key(),
        None,
        &note,
        &log.fetcher(),
        &mut |done, total| calls.push((done, total)),
    )
    .unwrap();
    assert_eq!(summary.new_entries, 700);
    assert_eq!(summary.previous_size, 0);
    assert_eq!(summary.state(), state(&log));
    assert_eq!(
        summary.entries_by_type.len(),
        runpermit_log::LogEntry::TYPES.len()
    );
    // Entries cycle through the 12 types: indexes 2, 14, …, 698 are permits.
    assert_eq!(summary.entries_by_type["permit_issued"], 59);
    assert_eq!(calls, [(256, 700), (512, 700), (700, 700)]);

    // The log grows; the auditor continues from its state and fetches only what it needs.
    let before = state(&log);
    log.append((700..1000).map(sample_bytes).collect());
    let fetcher = log.fetcher();
    let summary = verify_log(
        &log.key.verifier_key(),
        Some(&before),
        &log.checkpoint(),
        &fetcher,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!((summary.previous_size, summary.new_entries), (700, 300));
    assert_eq!(summary.entries_by_type.values().sum::<u64>(), 300);
    let expected: Vec<String> = needed_paths(700, 1000)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(*fetcher.asked.borrow(), expected);
    assert_eq!(
        expected,
        [
            "tile/1/000.p/3",
            "tile/0/002",
            "tile/entries/002",
            "tile/0/003.p/232",
            "tile/entries/003.p/232"
        ]
    );

    // Nothing new: nothing fetched.
    let now = state(&log);
    let summary = verify(&log, Some(&now), &log.checkpoint()).unwrap();
    assert_eq!(summary.new_entries, 0);
}

/// An auditor folding the log as it verifies sees every new entry once, in index order, with
/// its time: from scratch and from a saved state.
#[test]
fn verify_log_visiting_hands_over_each_new_entry_in_order() {
    let mut log = MemLog::of(300, 11);
    let mut seen = Vec::new();
    verify_log_visiting(
        &log.key.verifier_key(),
        None,
        &log.checkpoint(),
        &log.fetcher(),
        &mut |_, _| {},
        &mut |index, entry, at| seen.push((index, entry.clone(), at)),
    )
    .unwrap();
    let expected: Vec<_> = log
        .entries
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let (entry, at) = decode(bytes).unwrap();
            (i as u64, entry, at)
        })
        .collect();
    assert_eq!(seen, expected);

    let before = state(&log);
    log.append((300..520).map(sample_bytes).collect());
    let mut indexes = Vec::new();
    verify_log_visiting(
        &log.key.verifier_key(),
        Some(&before),
        &log.checkpoint(),
        &log.fetcher(),
        &mut |_, _| {},
        &mut |index, _, _| indexes.push(index),
    )
    .unwrap();
    assert_eq!(indexes, (300..520).collect::<Vec<u64>>());
}

#[test]
fn logs_of_many_shapes_verify() {
    // One log, with a checkpoint after each batch; the tiles of every size stay published.
    let sizes = [
        1u64, 255, 256, 257, 300, 513, 65_536, 65_546, 65_556, 70_000,
    ];
    let mut log = MemLog::new();
    let mut notes = Vec::new();
    for &size in &sizes {
        log.append((log.size()..size).map(sample_bytes).collect());
        notes.push((size, log.checkpoint()));
    }
    for (previous, new) in [
        (0u64, 1u64),
        (0, 255),
        (255, 256),
        (256, 257),
        (1, 513),
        (300, 513),
        (65_536, 65_546),
        (65_546, 65_556),
        (65_556, 70_000),
        (65_500, 65_546),
    ] {
        let note = &notes.iter().find(|(s, _)| *s == new).unwrap().1;
        let prev = (previous > 0).then(|| LogState {
            size: previous,
            root_hash: runpermit_log::root(previous, &log.stored).unwrap(),
        });
        let summary = verify(&log, prev.as_ref(), note)
            .unwrap_or_else(|e| panic!("{new} from {previous}: {e}"));
        assert_eq!(summary.new_entries, new - previous);
    }

    // Crossing 65,536 entries completes a level-1 tile: altered hashes at levels 1 and 2 are
    // found there too.
    let note = &notes.iter().find(|(s, _)| *s == 65_546).unwrap().1;
    let prev = LogState {
        size: 65_500,
        root_hash: runpermit_log::root(65_500, &log.stored).unwrap(),
    };
    for (path, position, tree_level) in [("tile/1/000", 255u16, 8u8), ("tile/2/000.p/1", 0, 16)] {
        let saved = log.files[path].clone();
        log.files.get_mut(path).unwrap()[usize::from(position) * 32] ^= 1;
        let err = verify(&log, Some(&prev), note).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::TileMismatch { path: ref found, position: p, tree_level: l, .. }
                    if found == path && p == position && l == tree_level
            ),
            "{path}: {err}"
        );
        log.files.insert(path.into(), saved);
    }
    verify(&log, Some(&prev), note).unwrap();
}

#[test]
fn a_changed_entry_is_found_by_index() {
    let mut log = MemLog::of(600, 600);
    let note = log.checkpoint();
    // Another valid, canonical entry in place of entry 300: only the tree catches it.
    let forged = sample_bytes(3100);
    assert!(decode(&forged).is_ok());
    edit_bundle(&mut log, "tile/entries/001", |e| e[300 - 256] = forged);
    let err = verify(&log, None, &note).unwrap_err();
    assert!(
        matches!(err, VerifyError::EntryChanged { index: 300 }),
        "{err}"
    );
    assert_eq!(err.index(), Some(300));
    assert!(
        err.to_string().starts_with("entry 300 was changed"),
        "{err}"
    );
}

#[test]
fn a_changed_entry_in_the_last_partial_bundle_is_found() {
    let mut log = MemLog::of(600, 50);
    let note = log.checkpoint();
    edit_bundle(&mut log, "tile/entries/002.p/88", |e| {
        e[87] = sample_bytes(1);
    });
    let err = verify(&log, None, &note).unwrap_err();
    assert!(
        matches!(err, VerifyError::EntryChanged { index: 599 }),
        "{err}"
    );
}

#[test]
fn a_dropped_entry_is_found_by_index() {
    let mut log = MemLog::of(600, 600);
    let note = log.checkpoint();
    edit_bundle(&mut log, "tile/entries/000", |e| {
        e.remove(17);
    });
    let err = verify(&log, None, &note).unwrap_err();
    assert!(
        matches!(err, VerifyError::EntryDropped { index: 17, ref path } if path == "tile/entries/000"),
        "{err}"
    );
    // Dropping the last entry of a bundle.
    let mut log = MemLog::of(600, 600);
    edit_bundle(&mut log, "tile/entries/001", |e| {
        e.pop();
    });
    let err = verify(&log, None, &note).unwrap_err();
    assert!(
        matches!(err, VerifyError::EntryDropped { index: 511, .. }),
        "{err}"
    );
}

#[test]
fn an_inserted_entry_is_found_by_index() {
    let mut log = MemLog::of(600, 600);
    let note = log.checkpoint();
    edit_bundle(&mut log, "tile/entries/001", |e| {
        e.insert(3, sample_bytes(9999))
    });
    let err = verify(&log, None, &note).unwrap_err();
    assert!(
        matches!(err, VerifyError::EntryInserted { index: 259, .. }),
        "{err}"
    );
}

#[test]
fn reordered_entries_are_found_by_index() {
    let mut log = MemLog::of(600, 600);
    let note = log.checkpoint();
    edit_bundle(&mut log, "tile/entries/002.p/88", |e| e.swap(10, 11));
    let err = verify(&log, None, &note).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::EntriesReordered {
                index: 522,
                original_index: 523
            }
        ),
        "{err}"
    );
}

#[test]
fn a_changed_tile_is_found() {
    for (path, position, node, tree_level) in [
        ("tile/0/001", 5u16, 261u64, 0u8),
        ("tile/0/002.p/88", 87, 599, 0),
        ("tile/1/000.p/2", 1, 1, 8),
    ] {
        let mut log = MemLog::of(600, 100);
        let note = log.checkpoint();
        let tile = log.files.get_mut(path).unwrap();
        tile[usize::from(position) * 32 + 7] ^= 0x40;
        let err = verify(&log, None, &note).unwrap_err();
        match &err {
            VerifyError::TileMismatch {
                path: p,
                position: pos,
                node: n,
                tree_level: l,
            } => assert_eq!(
                (p.as_str(), *pos, *n, *l),
                (path, position, node, tree_level)
            ),
            other => panic!("{path}: {other}"),
        }
    }
}

#[test]
fn an_entry_changed_with_its_tile_is_caught_one_level_up() {
    let mut log = MemLog::of(600, 600);
    let note = log.checkpoint();
    let forged = sample_bytes(7777);
    edit_bundle(&mut log, "tile/entries/000", |e| e[9] = forged.clone());
    let tile = log.files.get_mut("tile/0/000").unwrap();
    tile[9 * 32..10 * 32].copy_from_slice(&runpermit_log::leaf_hash(&forged).0);
    let err = verify(&log, None, &note).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::TileAltered { ref path, first_entry: 0, end_entry: 256 } if path == "tile/0/000"
        ),
        "{err}"
    );
}

#[test]
fn malformed_tiles_and_bundles_are_refused() {
    let mut log = MemLog::of(300, 300);
    let note = log.checkpoint();
    log.files.get_mut("tile/0/000").unwrap().pop();
    let err = verify(&log, None, &note).unwrap_err();
    assert!(
        matches!(err, VerifyError::MalformedTile { len: 8191, .. }),
        "{err}"
    );

    let mut log = MemLog::of(300, 300);
    log.files.get_mut("tile/entries/000").unwrap().pop();
    let err = verify(&log, None, &note).unwrap_err();
    assert!(matches!(err, VerifyError::MalformedBundle { .. }), "{err}");

    let mut log = MemLog::of(300, 300);
    log.files.remove("tile/entries/001.p/44");
    let err = verify(&log, None, &note).unwrap_err();
    assert!(
        matches!(err, VerifyError::Fetch { ref path, .. } if path == "tile/entries/001.p/44"),
        "{err}"
    );
    assert!(
        err.to_string().contains("404 tile/entries/001.p/44"),
        "{err}"
    );
}

#[test]
fn a_logged_entry_that_does_not_decode_is_reported_by_index() {
    let mut log = MemLog::of(100, 100);
    let mut bad = sample_bytes(100);
    bad.push(b' ');
    log.append(vec![bad]);
    log.append((101..120).map(sample_bytes).collect());
    let err = verify(&log, None, &log.checkpoint()).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::InvalidEntry {
                index: 100,
                source: EntryError::NonCanonical { .. }
            }
        ),
        "{err}"
    );
}

#[test]
fn a_wrong_root_is_a_root_mismatch() {
    let log = MemLog::of(300, 300);
    let lie = sign_checkpoint(
        &Checkpoint {
            origin: NAME.into(),
            size: 300,
            root_hash: runpermit_log::leaf_hash(b"lie"),
        },
        &log.key,
    )
    .unwrap();
    let err = verify(&log, None, &lie).unwrap_err();
    assert!(
        matches!(err, VerifyError::RootMismatch { size: 300, .. }),
        "{err}"
    );
}

#[test]
fn a_checkpoint_from_another_key_is_refused() {
    let log = MemLog::of(10, 10);
    let stranger = LogKey::from_seed(NAME, &[1; 32]).unwrap();
    let err = verify_log(
        &stranger.verifier_key(),
        None,
        &log.checkpoint(),
        &log.fetcher(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::Checkpoint(_)), "{err}");
    assert!(log.fetcher().asked.borrow().is_empty());
}

/// The same first 300 entries, then a history that differs at `at`.
fn forked_log(at: usize, n: u64) -> MemLog {
    let honest = MemLog::of(n, n);
    let mut entries = honest.entries.clone();
    entries[at] = sample_bytes(at as u64 + 5000);
    let mut log = MemLog::new();
    log.append(entries);
    log
}

#[test]
fn a_fork_is_detected() {
    let honest = MemLog::of(600, 600);
    let seen = MemLog::of(300, 300);
    let seen_state = state(&seen);
    verify(&honest, Some(&seen_state), &honest.checkpoint()).unwrap();

    // Same size, another root: a split view.
    let fork_300 = forked_log(5, 300);
    let err = verify(&fork_300, Some(&seen_state), &fork_300.checkpoint()).unwrap_err();
    assert!(
        matches!(err, VerifyError::Forked { size: 300, previous_size: 300, ref detail, .. } if detail == "same size, different root"),
        "{err}"
    );

    // A larger tree that rewrote entry 5 (an old entry) under a validly signed checkpoint.
    let fork_600 = forked_log(5, 600);
    let err = verify(&fork_600, Some(&seen_state), &fork_600.checkpoint()).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Forked {
                size: 600,
                previous_size: 300,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().starts_with("the log forked"), "{err}");

    // The same fork, rewriting an entry in the bundle the old tree ends in.
    let fork_600 = forked_log(299, 600);
    let err = verify(&fork_600, Some(&seen_state), &fork_600.checkpoint()).unwrap_err();
    assert!(matches!(err, VerifyError::Forked { .. }), "{err}");

    // An entry after the old tree changed: that is not a fork, and verifies.
    let later = forked_log(450, 600);
    verify(&later, Some(&seen_state), &later.checkpoint()).unwrap();
}

#[test]
fn an_older_checkpoint_is_a_rollback_or_a_fork() {
    let honest = MemLog::of(600, 600);
    let latest = state(&honest);
    let older = MemLog::of(300, 300);
    let err = verify(&honest, Some(&latest), &older.checkpoint()).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Rollback {
                size: 300,
                previous_size: 600
            }
        ),
        "{err}"
    );
    let fork = forked_log(5, 300);
    let err = verify(&honest, Some(&latest), &fork.checkpoint()).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Forked {
                size: 300,
                previous_size: 600,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn proof_bundles_from_the_log_verify_offline() {
    let log = MemLog::of(1000, 1000);
    let note = log.checkpoint();
    let vkey = log.key.verifier_key();
    for index in [0u64, 1, 255, 256, 511, 999] {
        let bundle = ProofBundle {
            index,
            entry: Some(log.entries[index as usize].clone()),
            proof: inclusion_proof(index, log.size(), &log.stored).unwrap(),
            checkpoint: note.clone(),
        };
        let text = bundle.to_string();
        let parsed = ProofBundle::parse(&text).unwrap();
        let proved = parsed.verify_entry(&vkey).unwrap();
        assert_eq!(proved.entry, sample(index));
        assert_eq!(proved.checkpoint.size, 1000);
        assert!(parsed.verify(&vkey, &sample_bytes(index + 1)).is_err());
    }
    let _ = key();
}

#[test]
fn the_examples_in_docs_log_md_are_real() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/log.md")).unwrap();
    let block = |start: &str| {
        let from = doc.find(start).unwrap() + start.len();
        doc[from..from + doc[from..].find("```").unwrap()].to_owned()
    };
    for line in block("```json\n").lines() {
        let (entry, _) = decode(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(line.contains(entry.type_name()));
    }
    let vkey = block("its **verifier key**:\n\n```\n");
    let vkey = vkey.trim();
    assert_eq!(vkey, key().verifier_key());
    let note = block("signature line:\n\n```\n");
    let cp = runpermit_log::verify_checkpoint(&note, vkey).unwrap();
    assert_eq!(cp.size, 3);
    let bundle = block("(file extension `.tlog-proof`):\n\n```\n");
    let proved = ProofBundle::parse(&bundle)
        .unwrap()
        .verify_entry(vkey)
        .unwrap();
    assert_eq!(proved.entry, sample(2));
}
