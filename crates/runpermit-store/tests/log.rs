//! The transparency log on both databases: the queue, sequencing, and reading it back.

mod common;

use common::{Backend, Db, application, audit, expect_err, seed};
use runpermit_store::{
    Cosignature, LogBatch, LogState, MAX_LOG_ENTRY_BYTES, QueuedLogEntry, SequencedEntry, Store,
    StoreError, Write,
};

common::suite!(
    log_queue_is_atomic_with_its_batch,
    log_queue_order_and_limit,
    sequence_log_appends_entries_hashes_and_state,
    sequence_log_conflicts,
    sequence_log_refuses_invalid_batches,
    log_hashes_in_the_order_asked,
    log_entries_ranges,
    log_index_is_the_latest_of_its_subject,
    log_rows_cannot_be_updated_or_deleted,
    log_lease_has_one_holder,
    concurrent_sequencers_never_fork,
    first_log_state_is_compare_and_set,
    sequence_log_chunks_large_batches,
    checkpoints_by_size_and_their_cosignatures,
);

fn queue(subject: &str, entry: &[u8], at: i64) -> Write {
    Write::QueueLogEntry {
        subject: subject.into(),
        entry: entry.to_vec(),
        at,
    }
}

/// tlog's `StoredHashCount(n)`: the stored hashes of a tree of `n` entries.
fn stored_hash_count(n: i64) -> i64 {
    2 * n - i64::from(n.count_ones())
}

/// A stand-in for the hash at stored index `i` (the store does not compute hashes).
fn fake_hash(i: i64) -> Vec<u8> {
    let mut hash = vec![0xab; 32];
    hash[..8].copy_from_slice(&i.to_be_bytes());
    hash
}

/// The batch a sequencer would store for `queued` on a tree of `size` entries.
fn log_batch(size: i64, queued: &[QueuedLogEntry], at: i64) -> LogBatch {
    let new_size = size + queued.len() as i64;
    LogBatch {
        expected_size: size,
        entries: queued
            .iter()
            .enumerate()
            .map(|(i, q)| SequencedEntry {
                queue_id: q.id,
                index: size + i as i64,
                subject: q.subject.clone(),
                entry: q.entry.clone(),
            })
            .collect(),
        hashes: (stored_hash_count(size)..stored_hash_count(new_size))
            .map(|i| (i, fake_hash(i)))
            .collect(),
        size: new_size,
        root: fake_hash(-new_size),
        checkpoint: format!("runpermit.example/log\n{new_size}\nroot\n"),
        at,
    }
}

/// Queues `n` entries `e{i}` of subject `s/{i % subjects}` in one batch.
async fn queue_many(store: &dyn Store, n: usize, subjects: usize) -> Vec<QueuedLogEntry> {
    let writes = (0..n)
        .map(|i| {
            queue(
                &format!("s/{}", i % subjects),
                format!("e{i}").as_bytes(),
                i as i64,
            )
        })
        .collect();
    store.commit(writes).await.expect("queue entries");
    store.log_queue(n as i64 + 1).await.unwrap()
}

async fn log_queue_is_atomic_with_its_batch(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![
            Write::InsertApplication(application("app_1", "o_dev", "m_app", 100)),
            queue("application/app_1", b"submitted", 100),
            Write::InsertAudit(audit("application.submit", "application/app_1", 100)),
        ])
        .await
        .unwrap();
    let queued = store.log_queue(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].subject, "application/app_1");
    assert_eq!(queued[0].entry, b"submitted");
    assert_eq!(queued[0].created_at, 100);

    // A later write fails: the queued entry goes with the rest of the batch.
    let e = expect_err(
        store
            .commit(vec![
                queue("application/app_2", b"submitted", 200),
                Write::InsertApplication(application("app_2", "o_nope", "m_app", 200)),
            ])
            .await,
    );
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    // An earlier write fails: likewise.
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertApplication(application("app_1", "o_dev", "m_app", 300)),
                queue("application/app_1", b"again", 300),
            ])
            .await,
    );
    assert!(matches!(e, StoreError::Duplicate(_)), "{e}");
    assert_eq!(store.log_queue(10).await.unwrap(), queued);

    // Validation: subject and entry size.
    let too_big = vec![1; MAX_LOG_ENTRY_BYTES];
    let e = expect_err(
        store
            .commit(vec![
                queue("", b"x", 1),
                queue("s", b"", 1),
                queue("s", &too_big, 1),
            ])
            .await,
    );
    let StoreError::Invalid(message) = e else {
        panic!("expected Invalid, got {e}");
    };
    assert!(
        message.contains("writes[0] (QueueLogEntry ) subject: must not be empty"),
        "{message}"
    );
    assert!(
        message.contains("writes[1] (QueueLogEntry s) entry: must hold 1 to 65535 bytes (got 0)"),
        "{message}"
    );
    assert!(message.contains("(got 65536)"), "{message}");
    store
        .commit(vec![queue("s", &too_big[1..], 1)])
        .await
        .expect("the largest entry is accepted");
    assert_eq!(store.log_queue(10).await.unwrap().len(), 2);

    // Entries queue in the order written, runs of them and single ones alike.
    store
        .commit(vec![
            queue("s", b"a", 2),
            queue("s", b"b", 2),
            Write::InsertAudit(audit("x", "s", 2)),
            queue("s", b"c", 2),
            Write::InsertAudit(audit("y", "s", 2)),
            queue("s", b"d", 2),
            queue("s", b"e", 2),
            queue("s", b"f", 2),
        ])
        .await
        .unwrap();
    let queued = store.log_queue(10).await.unwrap();
    let entries: Vec<&[u8]> = queued[2..].iter().map(|q| q.entry.as_slice()).collect();
    assert_eq!(entries, [b"a", b"b", b"c", b"d", b"e", b"f"]);
}

async fn log_queue_order_and_limit(db: Db) {
    let store = db.store();
    assert!(store.log_queue(10).await.unwrap().is_empty());
    store
        .commit(vec![queue("s/b", b"1", 50), queue("s/a", b"2", 10)])
        .await
        .unwrap();
    store.commit(vec![queue("s/a", b"3", 5)]).await.unwrap();
    store
        .commit(vec![queue("s/c", b"4", 1), queue("s/c", b"5", 1)])
        .await
        .unwrap();
    let all = store.log_queue(100).await.unwrap();
    let entries: Vec<&[u8]> = all.iter().map(|q| q.entry.as_slice()).collect();
    assert_eq!(
        entries,
        [b"1", b"2", b"3", b"4", b"5"],
        "id order, not created_at"
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(store.log_queue(3).await.unwrap(), all[..3]);
    assert_eq!(store.log_queue(1).await.unwrap(), all[..1]);
    for limit in [0, -1] {
        let e = store.log_queue(limit).await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    }
}

async fn sequence_log_appends_entries_hashes_and_state(db: Db) {
    let store = db.store();
    assert_eq!(store.log_state().await.unwrap(), None);
    assert!(store.log_entries(0, 10).await.unwrap().is_empty());

    // The first, empty checkpoint.
    store.sequence_log(log_batch(0, &[], 10)).await.unwrap();
    let empty = store.log_state().await.unwrap().unwrap();
    assert_eq!(empty.size, 0);
    assert_eq!(empty.updated_at, 10);

    let queued = queue_many(store, 5, 2).await;
    store
        .sequence_log(log_batch(0, &queued[..3], 20))
        .await
        .unwrap();
    assert_eq!(
        store.log_state().await.unwrap().unwrap(),
        LogState {
            size: 3,
            root: fake_hash(-3),
            checkpoint: "runpermit.example/log\n3\nroot\n".into(),
            updated_at: 20,
        }
    );
    assert_eq!(store.log_queue(10).await.unwrap(), queued[3..]);
    assert_eq!(
        store.log_entries(0, 3).await.unwrap(),
        [b"e0".to_vec(), b"e1".to_vec(), b"e2".to_vec()]
    );
    let indexes: Vec<i64> = (0..stored_hash_count(3)).collect();
    assert_eq!(
        store.log_hashes(&indexes).await.unwrap(),
        indexes.iter().map(|&i| fake_hash(i)).collect::<Vec<_>>()
    );

    store
        .sequence_log(log_batch(3, &queued[3..], 30))
        .await
        .unwrap();
    assert_eq!(store.log_state().await.unwrap().unwrap().size, 5);
    assert!(store.log_queue(10).await.unwrap().is_empty());
    assert_eq!(store.log_entries(0, 5).await.unwrap().len(), 5);
    assert_eq!(
        store.log_hashes(&[stored_hash_count(5) - 1]).await.unwrap(),
        [fake_hash(stored_hash_count(5) - 1)]
    );

    // Re-signing: an empty batch at the stored size.
    let mut resign = log_batch(5, &[], 40);
    resign.checkpoint = "re-signed".into();
    store.sequence_log(resign).await.unwrap();
    let state = store.log_state().await.unwrap().unwrap();
    assert_eq!((state.size, state.checkpoint.as_str()), (5, "re-signed"));
    assert_eq!(state.updated_at, 40);

    // Queue ids are never reused, even with the queue emptied.
    store.commit(vec![queue("s/0", b"e5", 50)]).await.unwrap();
    let next = store.log_queue(10).await.unwrap();
    assert!(next[0].id > queued[4].id, "{next:?} after {queued:?}");
    store.sequence_log(log_batch(5, &next, 50)).await.unwrap();
    assert_eq!(store.log_entries(5, 6).await.unwrap(), [b"e5".to_vec()]);
}

async fn sequence_log_conflicts(db: Db) {
    let store = db.store();
    let queued = queue_many(store, 20, 3).await;

    // No state yet: only expected_size 0 fits.
    let e = expect_err(store.sequence_log(log_batch(3, &queued[..1], 1)).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("tree of size 3") && m.contains("stored size is 0")),
        "{e}"
    );
    store
        .sequence_log(log_batch(0, &queued[4..5], 2))
        .await
        .unwrap();
    let state = store.log_state().await.unwrap();
    let queue_before = store.log_queue(100).await.unwrap();
    assert_eq!(queue_before.len(), 19);

    // A stale expected_size, and one ahead of the log.
    for size in [0, 7] {
        let e = expect_err(store.sequence_log(log_batch(size, &queued[..1], 3)).await);
        assert!(
            matches!(e, StoreError::Conflict(ref m) if m.contains("stored size is 1")),
            "{e}"
        );
    }
    // A queue row already taken, in a run of consecutive ids (deleted by range) and among
    // scattered ids (deleted by list); and an id never queued.
    let taken = queued[4].id;
    let cases: [(&str, Vec<QueuedLogEntry>); 3] = [
        ("range", queued[..12].to_vec()),
        (
            "list",
            vec![queued[0].clone(), queued[4].clone(), queued[9].clone()],
        ),
        (
            "never queued",
            vec![QueuedLogEntry {
                id: queued[19].id + 1_000,
                ..queued[0].clone()
            }],
        ),
    ];
    for (case, entries) in cases {
        let e = expect_err(store.sequence_log(log_batch(1, &entries, 4)).await);
        let missing = if case == "never queued" {
            entries[0].id
        } else {
            taken
        };
        assert!(
            matches!(e, StoreError::Conflict(ref m)
                if m.contains(&format!("queued entry {missing} is no longer queued"))),
            "{case}: {e}"
        );
    }
    // Nothing of the refused batches remains.
    assert_eq!(store.log_state().await.unwrap(), state);
    assert_eq!(store.log_queue(100).await.unwrap(), queue_before);
    assert_eq!(store.log_entries(0, 100).await.unwrap().len(), 1);
    let e = store.log_hashes(&[stored_hash_count(1)]).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
    // And the log goes on from there.
    store
        .sequence_log(log_batch(1, &queue_before, 5))
        .await
        .unwrap();
    assert_eq!(store.log_state().await.unwrap().unwrap().size, 20);
}

async fn sequence_log_refuses_invalid_batches(db: Db) {
    let store = db.store();
    let queued = queue_many(store, 4, 1).await;
    let good = log_batch(0, &queued, 1);

    let mut gap = good.clone();
    gap.entries[2].index = 3;
    let mut late_start = log_batch(0, &queued, 1);
    for e in &mut late_start.entries {
        e.index += 1;
    }
    let mut swapped = good.clone();
    swapped.entries.swap(0, 1);
    let mut wrong_size = good.clone();
    wrong_size.size = 5;
    let mut missing_hash = good.clone();
    missing_hash.hashes.pop();
    let mut misplaced_hash = good.clone();
    misplaced_hash.hashes[0].0 = 100;
    let mut twice = good.clone();
    twice.entries[1].queue_id = twice.entries[0].queue_id;
    let mut empty_entry = good.clone();
    empty_entry.entries[3].entry.clear();
    let mut no_checkpoint = good.clone();
    no_checkpoint.checkpoint.clear();
    let mut negative = log_batch(0, &[], 1);
    negative.expected_size = -1;
    negative.size = -1;

    for (case, batch, says) in [
        ("gap", gap, "entries[2].index: must be 2"),
        ("late start", late_start, "entries[0].index: must be 0"),
        ("swapped", swapped, "entries[0].index: must be 0"),
        (
            "wrong size",
            wrong_size,
            "size: must be expected_size + entries.len()",
        ),
        (
            "missing hash",
            missing_hash,
            "hashes: must hold the 7 stored hashes",
        ),
        (
            "misplaced hash",
            misplaced_hash,
            "hashes[0]: index must be 0",
        ),
        ("twice", twice, "appears more than once"),
        (
            "empty entry",
            empty_entry,
            "entries[3].entry: must hold 1 to",
        ),
        (
            "no checkpoint",
            no_checkpoint,
            "checkpoint: must not be empty",
        ),
        ("negative", negative, "expected_size: must be 0 to"),
    ] {
        let e = expect_err(store.sequence_log(batch).await);
        assert!(
            matches!(e, StoreError::Invalid(ref m) if m.contains(says)),
            "{case}: {e}"
        );
    }
    assert_eq!(store.log_state().await.unwrap(), None);
    assert_eq!(store.log_queue(10).await.unwrap(), queued);
    store.sequence_log(good).await.unwrap();
}

async fn log_hashes_in_the_order_asked(db: Db) {
    let store = db.store();
    let queued = queue_many(store, 5, 1).await;
    store.sequence_log(log_batch(0, &queued, 1)).await.unwrap();
    let count = stored_hash_count(5);
    assert_eq!(count, 8);
    assert_eq!(
        store.log_hashes(&[3, 0, 3, 7, 0]).await.unwrap(),
        [3, 0, 3, 7, 0].map(fake_hash)
    );
    assert!(store.log_hashes(&[]).await.unwrap().is_empty());
    for (asked, first_missing) in [
        (vec![1, 8, 9], 8),
        (vec![9, 1, 8], 9),
        (vec![-1], -1),
        (vec![2, 2, 100], 100),
    ] {
        let e = store.log_hashes(&asked).await.unwrap_err();
        assert!(
            matches!(e, StoreError::NotFound(ref m) if m == &format!("log hash {first_missing}")),
            "{asked:?}: {e}"
        );
    }
}

async fn log_entries_ranges(db: Db) {
    let store = db.store();
    let queued = queue_many(store, 6, 2).await;
    store.sequence_log(log_batch(0, &queued, 1)).await.unwrap();
    let all: Vec<Vec<u8>> = (0..6).map(|i| format!("e{i}").into_bytes()).collect();
    assert_eq!(store.log_entries(0, 6).await.unwrap(), all);
    assert_eq!(store.log_entries(2, 4).await.unwrap(), all[2..4]);
    assert_eq!(store.log_entries(5, 6).await.unwrap(), all[5..]);
    assert_eq!(
        store.log_entries(4, 100).await.unwrap(),
        all[4..],
        "only those stored"
    );
    assert!(store.log_entries(3, 3).await.unwrap().is_empty());
    assert!(store.log_entries(6, 10).await.unwrap().is_empty());
    for (start, end) in [(3, 2), (-1, 2)] {
        let e = store.log_entries(start, end).await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid(_)), "{start}..{end}: {e}");
    }
}

async fn log_index_is_the_latest_of_its_subject(db: Db) {
    let store = db.store();
    // Subjects s/0, s/1, s/2, s/0, s/1 at indexes 0..5.
    let queued = queue_many(store, 5, 3).await;
    assert_eq!(
        store.log_index("s/0").await.unwrap(),
        None,
        "queued is not logged"
    );
    store
        .sequence_log(log_batch(0, &queued[..4], 1))
        .await
        .unwrap();
    assert_eq!(store.log_index("s/0").await.unwrap(), Some(3));
    assert_eq!(store.log_index("s/1").await.unwrap(), Some(1));
    assert_eq!(store.log_index("s/2").await.unwrap(), Some(2));
    assert_eq!(store.log_index("s/9").await.unwrap(), None);
    store
        .sequence_log(log_batch(4, &queued[4..], 2))
        .await
        .unwrap();
    assert_eq!(store.log_index("s/1").await.unwrap(), Some(4));
}

async fn log_rows_cannot_be_updated_or_deleted(db: Db) {
    let store = db.store();
    let queued = queue_many(store, 3, 1).await;
    store
        .sequence_log(log_batch(0, &queued[..2], 1))
        .await
        .unwrap();
    for (sql, table) in [
        ("UPDATE log_entries SET entry = entry", "log_entries"),
        ("UPDATE log_entries SET idx = idx + 10", "log_entries"),
        ("DELETE FROM log_entries", "log_entries"),
        ("DELETE FROM log_entries WHERE idx = 1", "log_entries"),
        ("UPDATE log_hashes SET hash = hash", "log_hashes"),
        ("DELETE FROM log_hashes", "log_hashes"),
    ] {
        let e = db.raw(sql).await.expect_err(sql);
        assert!(e.contains(&format!("{table} is append-only")), "{sql}: {e}");
    }
    if db.is_postgres() {
        for table in ["log_entries", "log_hashes"] {
            let sql = if table == "log_entries" {
                "TRUNCATE log_entries"
            } else {
                "TRUNCATE log_hashes"
            };
            let e = db.raw(sql).await.expect_err(sql);
            assert!(e.contains(&format!("{table} is append-only")), "{sql}: {e}");
        }
    }
    // Queued entries are immutable too (the sequencer only deletes them).
    let e = db
        .raw("UPDATE log_queue SET created_at = 0")
        .await
        .expect_err("UPDATE on log_queue must fail");
    assert!(e.contains("immutable"), "{e}");
    assert_eq!(store.log_queue(10).await.unwrap(), queued[2..]);
    assert_eq!(
        store.log_entries(0, 10).await.unwrap(),
        [b"e0".to_vec(), b"e1".to_vec()]
    );
    assert_eq!(
        store.log_hashes(&[0, 1, 2]).await.unwrap(),
        [0, 1, 2].map(fake_hash)
    );
}

async fn log_lease_has_one_holder(db: Db) {
    let store = db.store();
    let other = db.reopen().await;
    assert!(
        store.take_log_lease("a", 100, 200).await.unwrap(),
        "free at first"
    );
    assert!(
        !other.take_log_lease("b", 150, 250).await.unwrap(),
        "a holds it"
    );
    assert!(
        store.take_log_lease("a", 190, 300).await.unwrap(),
        "a renews"
    );
    assert!(
        !other.take_log_lease("b", 250, 350).await.unwrap(),
        "renewed"
    );
    assert!(
        !other.take_log_lease("b", 300, 400).await.unwrap(),
        "held through `until`"
    );
    assert!(
        other.take_log_lease("b", 301, 400).await.unwrap(),
        "expired: b takes it"
    );
    assert!(
        !store.take_log_lease("a", 302, 500).await.unwrap(),
        "now b holds it"
    );
    assert!(
        other.take_log_lease("b", 399, 500).await.unwrap(),
        "b renews"
    );
    let e = store.take_log_lease("", 1_000, 2_000).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");

    // Racing for an expired lease: exactly one wins.
    for round in 0..5_i64 {
        let now = 1_000 * (round + 1);
        let (holder_x, holder_y) = (format!("x{round}"), format!("y{round}"));
        let (x, y) = tokio::join!(
            store.take_log_lease(&holder_x, now, now + 10),
            other.take_log_lease(&holder_y, now, now + 10)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(x != y, "round {round}: exactly one holder ({x}, {y})");
    }
}

async fn concurrent_sequencers_never_fork(db: Db) {
    let other = db.reopen().await;
    queue_many(db.store(), 40, 4).await;
    let mut size = 0;
    for round in 0..5 {
        let queued = db.store().log_queue(8).await.unwrap();
        // Disjoint queue rows: only the size check (before there is a state row: the
        // compare-and-set of the first state) keeps the two from forking the tree.
        let (mine, theirs) = queued.split_at(4);
        let (a, b) = tokio::join!(
            db.store().sequence_log(log_batch(size, mine, round)),
            other.sequence_log(log_batch(size, theirs, round))
        );
        let conflicts = [&a, &b]
            .iter()
            .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
            .count();
        assert!(
            a.is_ok() != b.is_ok() && conflicts == 1,
            "round {round}: exactly one of two sequencers wins: {a:?} {b:?}"
        );
        let winner = if a.is_ok() { mine } else { theirs };
        size += 4;
        let state = db.store().log_state().await.unwrap().unwrap();
        assert_eq!(state.size, size);
        let stored = db.store().log_entries(size - 4, size).await.unwrap();
        let expected: Vec<Vec<u8>> = winner.iter().map(|q| q.entry.clone()).collect();
        assert_eq!(stored, expected, "round {round}");

        // The same queue rows, from the same size: one wins.
        let queued = db.store().log_queue(3).await.unwrap();
        let (a, b) = tokio::join!(
            db.store().sequence_log(log_batch(size, &queued, round)),
            other.sequence_log(log_batch(size, &queued, round))
        );
        assert!(
            a.is_ok() != b.is_ok()
                && matches!(
                    (&a, &b),
                    (Err(StoreError::Conflict(_)), _) | (_, Err(StoreError::Conflict(_)))
                ),
            "round {round}: exactly one of two sequencers wins: {a:?} {b:?}"
        );
        size += 3;
    }
    assert_eq!(db.store().log_entries(0, 100).await.unwrap().len(), 35);
    let hashes: Vec<i64> = (0..stored_hash_count(35)).collect();
    assert_eq!(
        db.store().log_hashes(&hashes).await.unwrap().len(),
        hashes.len()
    );
    assert_eq!(db.store().log_queue(100).await.unwrap().len(), 5);
}

async fn first_log_state_is_compare_and_set(db: Db) {
    // Before the first state row exists there is no row to lock: a sequencer that read "no
    // state" must still lose to one that stores the first state meanwhile.
    let Backend::Postgres(pg) = &db.backend else {
        // SQLite: `BEGIN IMMEDIATE` serializes whole transactions; nothing to interleave.
        return;
    };
    let queued = queue_many(db.store(), 2, 1).await;
    let mut other = pg.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO log_state (id, size, root, checkpoint, updated_at) VALUES (1, 4, '\\x00', 'c', 1)",
    )
    .execute(&mut *other)
    .await
    .unwrap();
    let store = db.store.clone();
    let batch = log_batch(0, &queued, 2);
    let racing = tokio::spawn(async move { store.sequence_log(batch).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !racing.is_finished(),
        "waits for the uncommitted first state"
    );
    other.commit().await.unwrap();
    let e = expect_err(racing.await.unwrap());
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    assert_eq!(db.store().log_state().await.unwrap().unwrap().size, 4);
    assert_eq!(db.store().log_queue(10).await.unwrap(), queued);
}

async fn sequence_log_chunks_large_batches(db: Db) {
    const N: usize = 21_050;
    let store = db.store();
    let queued = queue_many(store, N, 1_000).await;
    assert_eq!(queued.len(), N);
    assert!(
        queued
            .iter()
            .enumerate()
            .all(|(i, q)| q.entry == format!("e{i}").as_bytes() && q.created_at == i as i64),
        "queued in one batch, in the order written"
    );
    // First every 7th of the first 350: the ids left there are scattered (taken by `IN`
    // lists), the rest one run (taken by range).
    let (first, rest): (Vec<_>, Vec<_>) = queued
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| *i < 350 && i % 7 == 0);
    let first: Vec<QueuedLogEntry> = first.into_iter().map(|(_, q)| q).collect();
    let rest: Vec<QueuedLogEntry> = rest.into_iter().map(|(_, q)| q).collect();
    store.sequence_log(log_batch(0, &first, 1)).await.unwrap();
    let batch = log_batch(50, &rest, 2);
    assert_eq!(batch.entries.len(), 21_000);
    assert!(batch.hashes.len() > 40_000, "{}", batch.hashes.len());
    store.sequence_log(batch).await.unwrap();

    assert_eq!(store.log_state().await.unwrap().unwrap().size, N as i64);
    assert!(store.log_queue(10).await.unwrap().is_empty());
    let entries = store.log_entries(0, N as i64).await.unwrap();
    let expected: Vec<Vec<u8>> = first.iter().chain(&rest).map(|q| q.entry.clone()).collect();
    assert_eq!(entries, expected);
    let indexes: Vec<i64> = (0..stored_hash_count(N as i64)).rev().collect();
    let hashes = store.log_hashes(&indexes).await.unwrap();
    assert!(
        hashes
            .iter()
            .zip(&indexes)
            .all(|(h, &i)| *h == fake_hash(i)),
        "every hash, in the order asked"
    );
    assert_eq!(
        store
            .log_index(&rest.last().unwrap().subject)
            .await
            .unwrap(),
        Some(N as i64 - 1)
    );
}

async fn checkpoints_by_size_and_their_cosignatures(db: Db) {
    let store = db.store();
    assert_eq!(store.log_checkpoint(0).await.unwrap(), None);
    store.sequence_log(log_batch(0, &[], 10)).await.unwrap();
    let queued = queue_many(store, 4, 2).await;
    store
        .sequence_log(log_batch(0, &queued[..3], 20))
        .await
        .unwrap();
    // Every sequenced size keeps its checkpoint; a re-signed one keeps the first.
    let mut resign = log_batch(3, &[], 25);
    resign.checkpoint = "re-signed".into();
    store.sequence_log(resign).await.unwrap();
    store
        .sequence_log(log_batch(3, &queued[3..], 30))
        .await
        .unwrap();
    assert_eq!(
        store.log_checkpoint(0).await.unwrap().as_deref(),
        Some("runpermit.example/log\n0\nroot\n")
    );
    assert_eq!(
        store.log_checkpoint(3).await.unwrap().as_deref(),
        Some("runpermit.example/log\n3\nroot\n")
    );
    assert_eq!(store.log_checkpoint(2).await.unwrap(), None);

    assert!(store.witness_progress().await.unwrap().is_empty());
    assert!(store.cosigned_sizes(10).await.unwrap().is_empty());
    store
        .record_cosignature("w1", 3, "— w1 AAAA\n", 31)
        .await
        .unwrap();
    store
        .record_cosignature("w2", 3, "— w2 BBBB\n", 32)
        .await
        .unwrap();
    store
        .record_cosignature("w1", 4, "— w1 CCCC\n", 33)
        .await
        .unwrap();
    // The same witness on the same size again: the newer line replaces the older.
    store
        .record_cosignature("w2", 3, "— w2 DDDD\n", 34)
        .await
        .unwrap();
    let w = |witness: &str, size: i64, signature: &str, cosigned_at: i64| Cosignature {
        witness: witness.into(),
        size,
        signature: signature.into(),
        cosigned_at,
    };
    assert_eq!(
        store.log_cosignatures(3).await.unwrap(),
        [w("w1", 3, "— w1 AAAA\n", 31), w("w2", 3, "— w2 DDDD\n", 34)]
    );
    assert_eq!(
        store.witness_progress().await.unwrap(),
        [w("w1", 4, "— w1 CCCC\n", 33), w("w2", 3, "— w2 DDDD\n", 34)]
    );
    assert_eq!(store.cosigned_sizes(10).await.unwrap(), [4, 3]);
    assert_eq!(store.cosigned_sizes(1).await.unwrap(), [4]);
    let e = expect_err(store.record_cosignature("w1", 2, "— w1 EEEE\n", 35).await);
    assert!(
        matches!(&e, StoreError::Invalid(m) if m.contains("no checkpoint of size 2")),
        "{e}"
    );
    let e = expect_err(store.record_cosignature("", 3, "x", 35).await);
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    assert!(matches!(
        store.cosigned_sizes(0).await,
        Err(StoreError::Invalid(_))
    ));
}
