//! The deployment's own records on both databases: migrations, health, the deployment's
//! identity, the audit trail and idempotency records; and `open` with the SQLite specifics.

mod common;

use common::{
    Backend, Db, ENV, application, audit, expect_err, seed, seed_application, unique_name,
};
use runpermit_store::{
    AuditEvent, Deployment, Idempotency, SigningKey, SqliteStore, StoreError, Write, open,
};

common::suite!(
    migrate_twice_and_ping,
    deployment_is_written_once,
    concurrent_first_starts_record_one_deployment,
    idempotency_records,
    concurrent_reservations_have_one_winner,
    audit_order_paging_and_subject,
    audit_rows_cannot_be_updated_or_deleted,
    concurrent_audit_writers_keep_seq_order,
    concurrent_migrations,
    data_survives_reopening,
);

fn deployment(origin: &str, key: &str, at: i64) -> Deployment {
    Deployment {
        log_origin: origin.into(),
        log_vkey: format!("{origin}+0123abcd+{key}"),
        created_at: at,
    }
}

fn reservation(principal_id: &str, key: &str, at: i64) -> Idempotency {
    Idempotency {
        principal_id: principal_id.into(),
        key: key.into(),
        method_path: "POST /v1/applications".into(),
        request_hash: "sha256:aa".into(),
        status: Idempotency::RESERVED,
        response_json: String::new(),
        created_at: at,
    }
}

fn answer(key: &str, reserved_at: i64) -> Write {
    Write::AnswerIdempotency {
        principal_id: "m_app".into(),
        key: key.into(),
        reserved_at,
        status: 201,
        response_json: r#"{"id":"app_1"}"#.into(),
    }
}

async fn migrate_twice_and_ping(db: Db) {
    let store = db.store();
    // Already migrated once by the harness.
    store.migrate().await.expect("second migrate");
    store.migrate().await.expect("third migrate");
    store.ping().await.expect("ping");
    assert_eq!(store.organization_count().await.unwrap(), 0);
    seed(store).await;
    store.migrate().await.expect("migrate with data");
    assert_eq!(store.organization_count().await.unwrap(), 2);
}

async fn deployment_is_written_once(db: Db) {
    let store = db.store();
    assert_eq!(store.deployment().await.unwrap(), None);
    let first = deployment("authority.example/log", "AAAA", 10);
    let signing_key = |kid: &str| SigningKey {
        kid: kid.into(),
        public_key: vec![7; 32],
        created_at: 10,
        retired_at: None,
    };
    // Recorded with the first permit-signing key, in one batch.
    store
        .commit(vec![
            Write::InsertDeployment(first.clone()),
            Write::InsertSigningKey(signing_key("k1")),
        ])
        .await
        .unwrap();
    assert_eq!(store.deployment().await.unwrap(), Some(first.clone()));

    // A second deployment is refused, and nothing of its batch is written.
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertSigningKey(signing_key("k2")),
                Write::InsertDeployment(deployment("other.example/log", "BBBB", 20)),
            ])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("deployment is already recorded")),
        "{e}"
    );
    assert_eq!(store.signing_keys().await.unwrap(), [signing_key("k1")]);
    assert_eq!(store.deployment().await.unwrap(), Some(first.clone()));

    // The row cannot be edited or removed behind the store's back.
    for sql in [
        "UPDATE deployment SET log_vkey = 'x'",
        "DELETE FROM deployment",
    ] {
        let e = db.raw(sql).await.expect_err(sql);
        assert!(e.contains("deployment is written once"), "{sql}: {e}");
    }
    if db.is_postgres() {
        let e = db.raw("TRUNCATE deployment").await.expect_err("TRUNCATE");
        assert!(e.contains("deployment is written once"), "{e}");
    }
    // Nor can a second row be inserted with another id.
    assert!(
        db.raw("INSERT INTO deployment (id, log_origin, log_vkey, created_at) VALUES (2, 'o', 'o+h+k', 1)")
            .await
            .is_err()
    );
    assert_eq!(store.deployment().await.unwrap(), Some(first));

    // Validated before the database: an empty origin, a vkey of another log.
    let e = expect_err(
        store
            .commit(vec![Write::InsertDeployment(Deployment {
                log_origin: String::new(),
                log_vkey: "a.example/log+0123abcd+AAAA".into(),
                created_at: 1,
            })])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("log_origin")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertDeployment(Deployment {
                log_origin: "a.example/log".into(),
                log_vkey: "b.example/log+0123abcd+AAAA".into(),
                created_at: 1,
            })])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("log_vkey")),
        "{e}"
    );
}

/// Two processes starting at once on an empty database: exactly one records its keys, the
/// other is told the deployment exists and reads the winner's.
async fn concurrent_first_starts_record_one_deployment(db: Db) {
    let other = db.reopen().await;
    let mine = deployment("one.example/log", "AAAA", 1);
    let theirs = deployment("two.example/log", "BBBB", 1);
    let key = |kid: &str, byte: u8| SigningKey {
        kid: kid.into(),
        public_key: vec![byte; 32],
        created_at: 1,
        retired_at: None,
    };
    let (a, b) = tokio::join!(
        db.store().commit(vec![
            Write::InsertDeployment(mine.clone()),
            Write::InsertSigningKey(key("k-one", 1)),
        ]),
        other.commit(vec![
            Write::InsertDeployment(theirs.clone()),
            Write::InsertSigningKey(key("k-two", 2)),
        ])
    );
    assert!(
        a.is_ok() != b.is_ok(),
        "exactly one first start wins: {a:?} {b:?}"
    );
    let loser = if a.is_ok() { &b } else { &a };
    assert!(
        matches!(loser, Err(StoreError::Duplicate(m)) if m.contains("deployment")),
        "{loser:?}"
    );
    let (winner, kid) = if a.is_ok() {
        (mine, "k-one")
    } else {
        (theirs, "k-two")
    };
    for store in [db.store(), other.as_ref()] {
        assert_eq!(store.deployment().await.unwrap(), Some(winner.clone()));
        let kids: Vec<String> = store
            .signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids, [kid], "only the winner's permit key is recorded");
    }
}

async fn idempotency_records(db: Db) {
    let store = db.store();
    seed(store).await;
    let reserved = reservation("m_app", "key-1", 77);
    assert_eq!(store.idempotency("m_app", "key-1").await.unwrap(), None);
    store
        .commit(vec![Write::ReserveIdempotency(reserved.clone())])
        .await
        .unwrap();
    let read = store.idempotency("m_app", "key-1").await.unwrap().unwrap();
    assert!(read.is_reserved());
    assert_eq!(read, reserved);
    assert_eq!(store.idempotency("m_admin", "key-1").await.unwrap(), None);

    // A second request with the key cannot reserve it, and its whole batch is refused.
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertApplication(application("app_2", "o_dev", "m_app", 78)),
                Write::ReserveIdempotency(reservation("m_app", "key-1", 78)),
            ])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("key-1")),
        "{e}"
    );
    assert_eq!(store.application("app_2").await.unwrap(), None);

    // Only the reservation made at 77 can be answered, once.
    let e = expect_err(store.commit(vec![answer("key-1", 76)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("took it over")),
        "{e}"
    );
    store
        .commit(vec![
            Write::InsertApplication(application("app_1", "o_dev", "m_app", 77)),
            answer("key-1", 77),
        ])
        .await
        .unwrap();
    let read = store.idempotency("m_app", "key-1").await.unwrap().unwrap();
    assert!(!read.is_reserved());
    assert_eq!(
        (read.status, read.response_json.as_str()),
        (201, r#"{"id":"app_1"}"#)
    );
    for write in [
        answer("key-1", 77),
        Write::ReleaseIdempotency {
            principal_id: "m_app".into(),
            key: "key-1".into(),
            reserved_at: 77,
        },
        Write::TakeOverIdempotency {
            principal_id: "m_app".into(),
            key: "key-1".into(),
            reserved_at: 77,
            at: 1000,
        },
    ] {
        let e = expect_err(store.commit(vec![write]).await);
        assert!(
            matches!(e, StoreError::Conflict(ref m) if m.contains("already has its answer")),
            "{e}"
        );
    }
    assert_eq!(
        store.idempotency("m_app", "key-1").await.unwrap(),
        Some(read)
    );
    let e = expect_err(store.commit(vec![answer("key-none", 77)]).await);
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");

    // A reservation taken over belongs to the new request: the old one can neither answer
    // nor release it.
    store
        .commit(vec![Write::ReserveIdempotency(reservation(
            "m_app", "key-2", 10,
        ))])
        .await
        .unwrap();
    store
        .commit(vec![Write::TakeOverIdempotency {
            principal_id: "m_app".into(),
            key: "key-2".into(),
            reserved_at: 10,
            at: 20,
        }])
        .await
        .unwrap();
    let e = expect_err(store.commit(vec![answer("key-2", 10)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("took it over")),
        "{e}"
    );
    let release = |at| Write::ReleaseIdempotency {
        principal_id: "m_app".into(),
        key: "key-2".into(),
        reserved_at: at,
    };
    expect_err(store.commit(vec![release(10)]).await);
    store.commit(vec![release(20)]).await.unwrap();
    assert_eq!(store.idempotency("m_app", "key-2").await.unwrap(), None);

    // The same key of another principal is another record.
    store
        .commit(vec![Write::ReserveIdempotency(reservation(
            "m_admin", "key-1", 77,
        ))])
        .await
        .unwrap();

    // Reservations and answers are checked before the database.
    let mut bad = reservation("m_app", "key-3", 1);
    bad.status = 201;
    bad.response_json = "{}".into();
    let e = expect_err(
        store
            .commit(vec![
                Write::ReserveIdempotency(bad),
                Write::AnswerIdempotency {
                    principal_id: "m_app".into(),
                    key: "key-3".into(),
                    reserved_at: 1,
                    status: 0,
                    response_json: "not json".into(),
                },
                Write::TakeOverIdempotency {
                    principal_id: "m_app".into(),
                    key: "key-3".into(),
                    reserved_at: 5,
                    at: 5,
                },
            ])
            .await,
    );
    let text = e.to_string();
    for part in [
        "status: must be 0",
        "response_json: must be empty",
        "status: must be an HTTP status",
        "at: must be later",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
}

/// Ten requests racing on one key, each through its own store (own connections): exactly
/// one reserves it, and a stale reservation is taken over by exactly one.
async fn concurrent_reservations_have_one_winner(db: Db) {
    seed(db.store()).await;
    let mut stores = Vec::new();
    for _ in 0..10 {
        stores.push(db.reopen().await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (i, store) in stores.iter().enumerate() {
        let store = store.clone();
        let at = 100 + i64::try_from(i).unwrap();
        tasks.spawn(async move {
            store
                .commit(vec![Write::ReserveIdempotency(reservation(
                    "m_app", "race", at,
                ))])
                .await
        });
    }
    let mut won = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Duplicate(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
    let reserved_at = db
        .store()
        .idempotency("m_app", "race")
        .await
        .unwrap()
        .unwrap()
        .created_at;
    for (i, store) in stores.iter().enumerate() {
        let store = store.clone();
        let at = 1000 + i64::try_from(i).unwrap();
        tasks.spawn(async move {
            store
                .commit(vec![Write::TakeOverIdempotency {
                    principal_id: "m_app".into(),
                    key: "race".into(),
                    reserved_at,
                    at,
                }])
                .await
        });
    }
    let mut won = 0;
    while let Some(result) = tasks.join_next().await {
        match result.unwrap() {
            Ok(()) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
}

async fn audit_order_paging_and_subject(db: Db) {
    let store = db.store();
    let subjects = ["application/a", "application/b", "permit/p"];
    for i in 0..9_i64 {
        let subject = subjects[(i % 3) as usize];
        store
            .commit(vec![Write::InsertAudit(AuditEvent {
                seq: 999, // ignored
                actor_member_id: None,
                actor_org_id: None,
                reason: None,
                ..audit(&format!("action.{i}"), subject, 1_000 + i)
            })])
            .await
            .unwrap();
    }
    // Two in one batch keep their batch order.
    store
        .commit(vec![
            Write::InsertAudit(audit("batch.first", "application/a", 2_000)),
            Write::InsertAudit(audit("batch.second", "application/a", 2_000)),
        ])
        .await
        .unwrap();

    let all = store.audit(None, 0, 100).await.unwrap();
    assert_eq!(all.len(), 11);
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "strictly increasing seq"
    );
    assert!(all[0].seq > 0);
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(&actions[..3], ["action.0", "action.1", "action.2"]);
    assert_eq!(&actions[9..], ["batch.first", "batch.second"]);
    assert_eq!(all[0].actor_member_id, None);
    assert_eq!(all[0].reason, None);
    assert_eq!(all[0].details_json, r#"{"n":1}"#);
    assert_eq!(all[9].actor_member_id.as_deref(), Some("m_admin"));
    assert_eq!(all[9].reason.as_deref(), Some("batch.first because"));

    // Paging with after_seq.
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store.audit(None, after, 4).await.unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(store.audit(None, all[10].seq, 10).await.unwrap().is_empty());

    // Subject filter, with paging.
    let a = store.audit(Some("application/a"), 0, 100).await.unwrap();
    assert_eq!(
        a.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        [
            "action.0",
            "action.3",
            "action.6",
            "batch.first",
            "batch.second"
        ]
    );
    let a_after = store
        .audit(Some("application/a"), a[1].seq, 2)
        .await
        .unwrap();
    assert_eq!(a_after, a[2..4]);
    assert!(store.audit(Some("nope"), 0, 10).await.unwrap().is_empty());
}

async fn audit_rows_cannot_be_updated_or_deleted(db: Db) {
    let store = db.store();
    store
        .commit(vec![Write::InsertAudit(audit("a", "s/1", 1))])
        .await
        .unwrap();
    let before = store.audit(None, 0, 10).await.unwrap();

    let update = db.raw("UPDATE audit_events SET action = 'forged'").await;
    let e = update.expect_err("UPDATE on audit_events must fail");
    assert!(e.contains("append-only"), "{e}");
    let delete = db.raw("DELETE FROM audit_events").await;
    let e = delete.expect_err("DELETE on audit_events must fail");
    assert!(e.contains("append-only"), "{e}");
    if db.is_postgres() {
        let truncate = db.raw("TRUNCATE audit_events").await;
        let e = truncate.expect_err("TRUNCATE on audit_events must fail");
        assert!(e.contains("append-only"), "{e}");
    }
    assert_eq!(store.audit(None, 0, 10).await.unwrap(), before);
    // Appending still works.
    db.raw(
        "INSERT INTO audit_events (at, action, subject, details_json) VALUES (2, 'b', 's/1', '{}')",
    )
    .await
    .expect("INSERT is allowed");
    assert_eq!(store.audit(None, 0, 10).await.unwrap().len(), 2);
}

async fn concurrent_audit_writers_keep_seq_order(db: Db) {
    let other = db.reopen().await;
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let store = if writer % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                store
                    .commit(vec![
                        Write::InsertAudit(audit(&format!("w{writer}.{i}.a"), "s/c", i)),
                        Write::InsertAudit(audit(&format!("w{writer}.{i}.b"), "s/c", i)),
                    ])
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = db.store().audit(Some("s/c"), 0, 1_000).await.unwrap();
    assert_eq!(all.len(), 80);
    for pair in all.chunks(2) {
        // One batch's events are adjacent: batches do not interleave.
        assert_eq!(pair[0].action.replace(".a", ".b"), pair[1].action);
        assert_eq!(pair[0].seq + 1, pair[1].seq);
    }
}

async fn concurrent_migrations(db: Db) {
    let (a, b) = (db.reopen().await, db.reopen().await);
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.expect("first concurrent migrate");
    rb.expect("second concurrent migrate");
    if !db.is_postgres() {
        // Two processes starting at once on a new SQLite file: sqlx takes no lock there, and
        // the store tries again after a collision.
        let dir = std::env::temp_dir().join(format!("runpermit-store-{}", unique_name()));
        let mut outcomes = Vec::new();
        for round in 0..4 {
            let url = format!(
                "sqlite://{}",
                dir.join(format!("fresh{round}.db")).display()
            );
            let (a, b) = (open(&url).await.unwrap(), open(&url).await.unwrap());
            let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
            outcomes.push((round, ra, rb, a.organization_count().await));
        }
        let _ = std::fs::remove_dir_all(&dir);
        for (round, ra, rb, count) in outcomes {
            ra.unwrap_or_else(|e| panic!("round {round}: first concurrent migrate: {e}"));
            rb.unwrap_or_else(|e| panic!("round {round}: second concurrent migrate: {e}"));
            assert_eq!(count.expect("count after migrating"), 0);
        }
        return;
    }

    // And on a schema that has never been migrated.
    let Backend::Postgres(pg) = &db.backend else {
        unreachable!()
    };
    let fresh = format!("t_{}", unique_name());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {fresh}")))
        .execute(pg.pool())
        .await
        .unwrap();
    let base = std::env::var(ENV).unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={fresh}");
    let (a, b) = (open(&url).await.unwrap(), open(&url).await.unwrap());
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    let outcome = (ra, rb, a.organization_count().await);
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {fresh} CASCADE")))
        .execute(pg.pool())
        .await
        .unwrap();
    outcome
        .0
        .expect("first concurrent migrate of a fresh schema");
    outcome
        .1
        .expect("second concurrent migrate of a fresh schema");
    assert_eq!(outcome.2.expect("count after migrating"), 0);
}

async fn data_survives_reopening(db: Db) {
    seed_application(db.store()).await;
    let reopened = db.reopen().await;
    reopened.migrate().await.unwrap();
    assert_eq!(reopened.organization_count().await.unwrap(), 2);
    assert!(reopened.application("app_1").await.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------------
// `open` and the SQLite specifics (not per backend)

#[tokio::test]
async fn open_refuses_unknown_urls_naming_the_accepted_forms() {
    for url in ["mysql://u:secret@h/db", "data.db", ""] {
        let Err(StoreError::Invalid(message)) = open(url).await else {
            panic!("{url:?} must be Invalid");
        };
        assert!(message.contains("sqlite://PATH"), "{message}");
        assert!(message.contains("sqlite::memory:"), "{message}");
        assert!(message.contains("postgres://"), "{message}");
        assert!(
            !message.contains("secret"),
            "the password must not be echoed: {message}"
        );
    }
}

#[tokio::test]
async fn in_memory_sqlite_is_one_database() {
    let store = open("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    seed(store.as_ref()).await;
    // Many reads and writes through the pool all see the same database.
    for i in 0..20 {
        store
            .commit(vec![Write::InsertAudit(audit("a", "s", i))])
            .await
            .unwrap();
        assert_eq!(store.organization_count().await.unwrap(), 2);
    }
    assert_eq!(store.audit(None, 0, 100).await.unwrap().len(), 20);
    // A second in-memory store is a different database.
    let other = open("sqlite::memory:").await.unwrap();
    other.migrate().await.unwrap();
    assert_eq!(other.organization_count().await.unwrap(), 0);
}

#[tokio::test]
async fn sqlite_file_is_created_in_wal_mode_with_foreign_keys() {
    let dir = std::env::temp_dir().join(format!("runpermit-store-{}", unique_name()));
    let path = dir.join("a/b/runpermit.db");
    let sqlite = SqliteStore::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(path.exists(), "the file and its directories are created");
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(sqlite.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(sqlite.pool())
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(sqlite.pool())
        .await
        .unwrap();
    assert!(busy > 0);
    sqlite.pool().close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
