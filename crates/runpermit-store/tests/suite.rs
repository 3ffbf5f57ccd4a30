//! One suite, both databases: every test in `suite!` is written once against `&dyn Store` and
//! runs on SQLite (a fresh file per test) always, and on PostgreSQL (a fresh schema per test)
//! when `RUNPERMIT_TEST_DATABASE_URL` is set, such as
//! `RUNPERMIT_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test`. Under `CI` the
//! variable is required: the PostgreSQL tests fail rather than skip without it.

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use runpermit_store::prelude::*;
use runpermit_store::{
    Application, AuditEvent, Deployment, Idempotency, Incident, Ingested, KycReport, KycTotal,
    LogBatch, LogState, MAX_LOG_ENTRY_BYTES, Member, Milestone, Organization, Permit, PgStore,
    ProviderKey, ProviderUsage, QueuedLogEntry, Receipt, Review, Run, SequencedEntry, SigningKey,
    SqliteStore, Store, StoreError, Token, UsageRecord, Write, open,
};
use sqlx::Connection as _;

const ENV: &str = "RUNPERMIT_TEST_DATABASE_URL";

// ---------------------------------------------------------------------------------------------
// Harness

/// One test's database: the store under test and raw access to the same database.
#[derive(Clone)]
struct Db {
    store: Arc<dyn Store>,
    backend: Backend,
    url: String,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Db {
    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Runs one raw SQL statement, bypassing the store.
    async fn raw(&self, sql: &'static str) -> Result<u64, String> {
        let done = match &self.backend {
            Backend::Sqlite(s) => sqlx::query(sql)
                .execute(s.pool())
                .await
                .map(|d| d.rows_affected()),
            Backend::Postgres(s) => sqlx::query(sql)
                .execute(s.pool())
                .await
                .map(|d| d.rows_affected()),
        };
        done.map_err(|e| e.to_string())
    }

    /// A second, independent store on the same database (its own connections).
    async fn reopen(&self) -> Arc<dyn Store> {
        open(&self.url).await.expect("reopen the test database")
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `test` on a migrated SQLite database in a fresh file (in a directory that does not
/// exist yet, so `open` must create it), removed afterwards.
async fn run_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir: PathBuf = std::env::temp_dir().join(format!("runpermit-store-{}", unique_name()));
    let url = format!("sqlite://{}", dir.join("nested/store.db").display());
    let sqlite = SqliteStore::connect(&url).await.expect("open SQLite");
    sqlite.migrate().await.expect("migrate SQLite");
    let db = Db {
        store: Arc::new(sqlite.clone()),
        backend: Backend::Sqlite(sqlite.clone()),
        url,
    };
    let outcome = tokio::spawn(test(db)).await;
    sqlite.pool().close().await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs `test` on a migrated PostgreSQL schema of its own, dropped afterwards; or skips, saying
/// so once per test binary, when `RUNPERMIT_TEST_DATABASE_URL` is unset.
async fn run_postgres<F, Fut>(test: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(base) = std::env::var(ENV).ok().filter(|v| !v.is_empty()) else {
        // As with the Epoch AI data: missing in CI is a failure, elsewhere a skip.
        if std::env::var_os("CI").is_some() {
            panic!(
                "{ENV} is unset under CI: the PostgreSQL half of this suite must run there \
                 (set it to a database URL such as postgres://postgres@127.0.0.1:5432/test)"
            );
        }
        static SAID: Once = Once::new();
        SAID.call_once(|| {
            // Straight to stderr: libtest captures `eprintln!` of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "runpermit-store: PostgreSQL tests skipped; set {ENV}=postgres://postgres@127.0.0.1:5432/test to run them"
            );
        });
        return;
    };
    let schema = format!("t_{}", unique_name());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("{ENV}: cannot connect: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&mut admin)
        .await
        .expect("create the test schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={schema}");
    let pg = PgStore::connect(&url).await.expect("open PostgreSQL");
    pg.migrate().await.expect("migrate PostgreSQL");
    let db = Db {
        store: Arc::new(pg.clone()),
        backend: Backend::Postgres(pg.clone()),
        url,
    };
    let outcome = tokio::spawn(test(db)).await;
    pg.pool().close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut admin)
        .await
        .expect("drop the test schema");
    let _ = admin.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// For each `async fn NAME(db: Db)` listed, a test `sqlite::NAME` and a test `postgres::NAME`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run_sqlite(crate::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::run_postgres(crate::$name).await;
                }
            )*
        }
    };
}

suite!(
    migrate_twice_and_ping,
    organizations_members_and_tokens,
    authenticate_refuses_revoked_and_expired_tokens,
    revoke_token_twice_is_a_conflict,
    duplicate_token_hash,
    applications_newest_first_and_filtered,
    update_application_is_optimistic,
    concurrent_updates_of_one_application,
    reviews_oldest_first,
    permits_issue_only_from_intent,
    one_receipt_per_application,
    signing_keys_retire_once,
    deployment_is_written_once,
    concurrent_first_starts_record_one_deployment,
    idempotency_records,
    concurrent_reservations_have_one_winner,
    batch_is_all_or_nothing,
    missing_references_are_invalid,
    invalid_writes_are_refused_before_the_database,
    audit_order_paging_and_subject,
    audit_rows_cannot_be_updated_or_deleted,
    concurrent_audit_writers_keep_seq_order,
    concurrent_migrations,
    data_survives_reopening,
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
    provider_keys_insert_read_and_revoke_once,
    runs_insert_read_and_order,
    update_run_is_optimistic_and_leaves_usage_alone,
    set_run_summarized_and_runs_to_summarize,
    runs_not_in_good_standing_filters,
    ingest_usage_stores_duplicates_and_conflicts,
    ingest_usage_sums_per_run_across_providers,
    ingest_usage_with_an_unknown_run_rolls_back,
    ingest_usage_refuses_invalid_records,
    concurrent_ingest_keeps_exact_sums,
    ingest_usage_large_batches,
    usage_reports_page_in_provider_seq_order,
    usage_reports_cannot_be_updated_or_deleted,
    milestones_are_decided_once,
    incidents_follow_up_until_closed,
    kyc_totals_window_and_grouping,
    oversight_batch_is_all_or_nothing,
    oversight_writes_are_validated,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

fn org(id: &str, kind: &str, at: i64) -> Organization {
    Organization {
        id: id.into(),
        name: format!("{id} name"),
        kind: kind.into(),
        created_at: at,
    }
}

fn member(id: &str, org_id: &str, role: &str, at: i64) -> Member {
    Member {
        id: id.into(),
        org_id: org_id.into(),
        name: format!("{id} name"),
        role: role.into(),
        created_at: at,
    }
}

fn hash(n: u64) -> String {
    format!("{n:064x}")
}

fn token(id: &str, member_id: &str, n: u64, expires_at: Option<i64>) -> Token {
    Token {
        id: id.into(),
        member_id: member_id.into(),
        hash: hash(n),
        label: format!("{id} label"),
        created_at: 1_000,
        expires_at,
        revoked_at: None,
    }
}

fn application(id: &str, org_id: &str, created_by: &str, at: i64) -> Application {
    Application {
        id: id.into(),
        org_id: org_id.into(),
        created_by: created_by.into(),
        status: "draft".into(),
        tier: "standard".into(),
        decision: "pending".into(),
        approvals_required: 1,
        plan_json: r#"{"model":{"parameters":4.05e11}}"#.into(),
        plan_digest: "sha256:00".into(),
        estimate_json: r#"{"flop":3.8e25}"#.into(),
        policy_version: "policy/1".into(),
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

fn review(id: &str, application_id: &str, at: i64) -> Review {
    Review {
        id: id.into(),
        application_id: application_id.into(),
        reviewer_id: "m_rev".into(),
        reviewer_org_id: "o_auth".into(),
        decision: "approve".into(),
        reason: format!("{id} reason"),
        conditions_json: r#"["SL4"]"#.into(),
        evaluators_json: r#"["o_aisi"]"#.into(),
        policy_version: "policy/1".into(),
        created_at: at,
    }
}

fn permit(id: &str, application_id: &str, at: i64) -> Permit {
    Permit {
        id: id.into(),
        application_id: application_id.into(),
        run_id: format!("run_{id}"),
        org_id: "o_dev".into(),
        status: "intent".into(),
        claims_json: r#"{"budget":1e26}"#.into(),
        token: None,
        kid: "k1".into(),
        policy_version: "policy/1".into(),
        created_at: at,
        issued_at: None,
    }
}

fn audit(action: &str, subject: &str, at: i64) -> AuditEvent {
    AuditEvent {
        seq: 0,
        at,
        actor_member_id: Some("m_admin".into()),
        actor_org_id: Some("o_auth".into()),
        action: action.into(),
        subject: subject.into(),
        reason: Some(format!("{action} because")),
        details_json: r#"{"n":1}"#.into(),
    }
}

/// An authority with an admin and a reviewer, and a developer with an applicant.
async fn seed(store: &dyn Store) {
    store
        .commit(vec![
            Write::InsertOrganization(org("o_auth", "authority", 10)),
            Write::InsertOrganization(org("o_dev", "developer", 20)),
            Write::InsertMember(member("m_admin", "o_auth", "admin", 30)),
            Write::InsertMember(member("m_rev", "o_auth", "reviewer", 40)),
            Write::InsertMember(member("m_app", "o_dev", "applicant", 50)),
        ])
        .await
        .expect("seed");
}

/// `seed` plus one application `app_1` of `o_dev`.
async fn seed_application(store: &dyn Store) {
    seed(store).await;
    store
        .commit(vec![Write::InsertApplication(application(
            "app_1", "o_dev", "m_app", 100,
        ))])
        .await
        .expect("seed application");
}

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

#[track_caller]
fn expect_err(result: Result<(), StoreError>) -> StoreError {
    match result {
        Ok(()) => panic!("expected an error, got Ok"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

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

async fn organizations_members_and_tokens(db: Db) {
    let store = db.store();
    seed(store).await;
    assert_eq!(
        store.organization("o_dev").await.unwrap(),
        Some(org("o_dev", "developer", 20))
    );
    assert_eq!(store.organization("nope").await.unwrap(), None);
    let orgs = store.organizations().await.unwrap();
    assert_eq!(
        orgs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["o_auth", "o_dev"]
    );
    assert_eq!(
        store.member("m_rev").await.unwrap(),
        Some(member("m_rev", "o_auth", "reviewer", 40))
    );
    assert_eq!(store.member("nope").await.unwrap(), None);
    let members = store.members("o_auth").await.unwrap();
    assert_eq!(
        members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["m_admin", "m_rev"]
    );
    assert!(store.members("nope").await.unwrap().is_empty());

    let mut t2 = token("tok_2", "m_admin", 2, Some(9_000));
    t2.created_at = 2_000;
    store
        .commit(vec![
            Write::InsertToken(t2.clone()),
            Write::InsertToken(token("tok_1", "m_admin", 1, None)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.tokens("m_admin").await.unwrap(),
        [token("tok_1", "m_admin", 1, None), t2.clone()]
    );
    assert!(store.tokens("m_rev").await.unwrap().is_empty());
    assert_eq!(store.token("tok_2").await.unwrap(), Some(t2));
    assert_eq!(store.token("nope").await.unwrap(), None);
    assert_eq!(store.organization_count().await.unwrap(), 2);
}

async fn authenticate_refuses_revoked_and_expired_tokens(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![
            Write::InsertToken(token("tok_forever", "m_app", 1, None)),
            Write::InsertToken(token("tok_expiring", "m_app", 2, Some(5_000))),
            Write::InsertToken(token("tok_revoked", "m_app", 3, None)),
        ])
        .await
        .unwrap();
    store
        .commit(vec![Write::RevokeToken {
            id: "tok_revoked".into(),
            at: 2_000,
        }])
        .await
        .unwrap();

    let principal = store
        .authenticate(&hash(1), 1_000_000)
        .await
        .unwrap()
        .expect("a valid token authenticates");
    assert_eq!(principal.member, member("m_app", "o_dev", "applicant", 50));
    assert_eq!(principal.org, org("o_dev", "developer", 20));
    assert_eq!(principal.token, token("tok_forever", "m_app", 1, None));

    assert!(store.authenticate(&hash(2), 4_999).await.unwrap().is_some());
    assert!(
        store.authenticate(&hash(2), 5_000).await.unwrap().is_none(),
        "expires_at is the first instant the token is refused"
    );
    assert!(store.authenticate(&hash(3), 1_500).await.unwrap().is_none());
    assert_eq!(
        store
            .token("tok_revoked")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(2_000)
    );
    assert!(store.authenticate(&hash(99), 0).await.unwrap().is_none());
}

async fn revoke_token_twice_is_a_conflict(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![Write::InsertToken(token("tok_1", "m_app", 1, None))])
        .await
        .unwrap();
    let revoke = |at| Write::RevokeToken {
        id: "tok_1".into(),
        at,
    };
    store.commit(vec![revoke(10)]).await.unwrap();
    let e = expect_err(store.commit(vec![revoke(20)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("already revoked")),
        "{e}"
    );
    assert_eq!(
        store.token("tok_1").await.unwrap().unwrap().revoked_at,
        Some(10)
    );
    let e = expect_err(
        store
            .commit(vec![Write::RevokeToken {
                id: "nope".into(),
                at: 1,
            }])
            .await,
    );
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
}

async fn duplicate_token_hash(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![Write::InsertToken(token("tok_1", "m_app", 7, None))])
        .await
        .unwrap();
    let e = expect_err(
        store
            .commit(vec![Write::InsertToken(token("tok_2", "m_admin", 7, None))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("hash")),
        "a repeated hash is a Duplicate that names the hash: {e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertToken(token("tok_1", "m_admin", 8, None))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("token id \"tok_1\"")),
        "a repeated id is a Duplicate that names the id: {e}"
    );
    assert!(store.tokens("m_admin").await.unwrap().is_empty());
    let e = expect_err(
        store
            .commit(vec![Write::InsertOrganization(org(
                "o_dev",
                "developer",
                1,
            ))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("o_dev")),
        "{e}"
    );
}

async fn applications_newest_first_and_filtered(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![
            Write::InsertOrganization(org("o_dev2", "developer", 60)),
            Write::InsertMember(member("m_app2", "o_dev2", "applicant", 70)),
            Write::InsertApplication(application("app_a", "o_dev", "m_app", 100)),
            Write::InsertApplication(application("app_c", "o_dev", "m_app", 300)),
            Write::InsertApplication(application("app_b", "o_dev2", "m_app2", 200)),
        ])
        .await
        .unwrap();
    let ids = |apps: Vec<Application>| apps.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.applications(None).await.unwrap()),
        ["app_c", "app_b", "app_a"]
    );
    assert_eq!(
        ids(store.applications(Some("o_dev")).await.unwrap()),
        ["app_c", "app_a"]
    );
    assert_eq!(
        ids(store.applications(Some("o_dev2")).await.unwrap()),
        ["app_b"]
    );
    assert!(store.applications(Some("nope")).await.unwrap().is_empty());
    assert_eq!(
        store.application("app_b").await.unwrap(),
        Some(application("app_b", "o_dev2", "m_app2", 200))
    );
    assert_eq!(store.application("nope").await.unwrap(), None);
}

async fn update_application_is_optimistic(db: Db) {
    let store = db.store();
    seed_application(store).await;
    let read = store.application("app_1").await.unwrap().unwrap();
    assert_eq!(read.version, 1);

    let mut submitted = read.clone();
    submitted.status = "submitted".into();
    submitted.tier = "full".into();
    submitted.decision = "none".into();
    submitted.approvals_required = 2;
    submitted.plan_json = r#"{"v":2}"#.into();
    submitted.plan_digest = "sha256:02".into();
    submitted.estimate_json = r#"{"flop":2e26}"#.into();
    submitted.policy_version = "policy/2".into();
    submitted.updated_at = 500;
    // Immutable columns are ignored.
    submitted.org_id = "o_auth".into();
    submitted.created_by = "m_admin".into();
    submitted.created_at = 1;
    store
        .commit(vec![Write::UpdateApplication {
            application: submitted.clone(),
            expected_version: 1,
        }])
        .await
        .unwrap();
    let stored = store.application("app_1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        Application {
            org_id: "o_dev".into(),
            created_by: "m_app".into(),
            created_at: 100,
            version: 2,
            ..submitted.clone()
        }
    );

    // A second writer that also read version 1 loses.
    let mut stale = read.clone();
    stale.status = "withdrawn".into();
    let e = expect_err(
        store
            .commit(vec![Write::UpdateApplication {
                application: stale,
                expected_version: 1,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("expected version 1") && m.contains("stored version 2")),
        "{e}"
    );
    assert_eq!(store.application("app_1").await.unwrap().unwrap(), stored);

    let e = expect_err(
        store
            .commit(vec![Write::UpdateApplication {
                application: application("nope", "o_dev", "m_app", 1),
                expected_version: 1,
            }])
            .await,
    );
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
}

async fn concurrent_updates_of_one_application(db: Db) {
    seed_application(db.store()).await;
    let other = db.reopen().await;
    let read = db.store().application("app_1").await.unwrap().unwrap();
    let update = |status: &str| {
        let mut a = read.clone();
        a.status = status.into();
        vec![
            Write::UpdateApplication {
                application: a,
                expected_version: read.version,
            },
            Write::InsertAudit(audit("application.update", "application/app_1", 1)),
        ]
    };
    let (first, second) = tokio::join!(
        db.store().commit(update("submitted")),
        other.commit(update("withdrawn"))
    );
    let conflicts = [&first, &second]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
        .count();
    assert!(
        first.is_ok() != second.is_ok() && conflicts == 1,
        "exactly one of two concurrent updates wins: {first:?} {second:?}"
    );
    let stored = db.store().application("app_1").await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    let winner = if first.is_ok() {
        "submitted"
    } else {
        "withdrawn"
    };
    assert_eq!(stored.status, winner);
    assert_eq!(
        db.store().audit(None, 0, 10).await.unwrap().len(),
        1,
        "the loser's audit event was rolled back with it"
    );
}

async fn reviews_oldest_first(db: Db) {
    let store = db.store();
    seed_application(store).await;
    let mut deny = review("rev_b", "app_1", 200);
    deny.decision = "deny".into();
    store
        .commit(vec![
            Write::InsertReview(deny.clone()),
            Write::InsertReview(review("rev_a", "app_1", 100)),
            Write::InsertReview(review("rev_c", "app_1", 200)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.reviews("app_1").await.unwrap(),
        [
            review("rev_a", "app_1", 100),
            deny,
            review("rev_c", "app_1", 200)
        ]
    );
    assert!(store.reviews("nope").await.unwrap().is_empty());
}

async fn permits_issue_only_from_intent(db: Db) {
    let store = db.store();
    seed_application(store).await;
    store
        .commit(vec![
            Write::InsertPermit(permit("p_2", "app_1", 200)),
            Write::InsertPermit(permit("p_1", "app_1", 100)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.permit("p_1").await.unwrap(),
        Some(permit("p_1", "app_1", 100))
    );
    assert_eq!(store.permit("nope").await.unwrap(), None);

    let issue = |id: &str, token: &str, at| Write::IssuePermit {
        id: id.into(),
        token: token.into(),
        issued_at: at,
    };
    store
        .commit(vec![issue("p_1", "eyJ.a.b", 150)])
        .await
        .unwrap();
    let pending: Vec<String> = store
        .pending_permits()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(pending, ["p_2"], "only intents are pending");
    let issued = store.permit("p_1").await.unwrap().unwrap();
    assert_eq!(
        issued,
        Permit {
            status: "issued".into(),
            token: Some("eyJ.a.b".into()),
            issued_at: Some(150),
            ..permit("p_1", "app_1", 100)
        }
    );
    let e = expect_err(store.commit(vec![issue("p_1", "eyJ.c.d", 160)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("issued")),
        "{e}"
    );
    assert_eq!(store.permit("p_1").await.unwrap().unwrap(), issued);
    let e = expect_err(store.commit(vec![issue("nope", "eyJ.c.d", 160)]).await);
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");

    let ids: Vec<String> = store
        .permits_for_application("app_1")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["p_1", "p_2"]);
    assert!(
        store
            .permits_for_application("nope")
            .await
            .unwrap()
            .is_empty()
    );

    // An issued permit can be inserted directly when it carries its token.
    let mut direct = permit("p_3", "app_1", 300);
    direct.status = "issued".into();
    direct.token = Some("eyJ.e.f".into());
    direct.issued_at = Some(300);
    store
        .commit(vec![Write::InsertPermit(direct.clone())])
        .await
        .unwrap();
    assert_eq!(store.permit("p_3").await.unwrap(), Some(direct));
}

async fn one_receipt_per_application(db: Db) {
    let store = db.store();
    seed_application(store).await;
    assert_eq!(store.receipt_for_application("app_1").await.unwrap(), None);
    let receipt = Receipt {
        id: "rcpt_1".into(),
        application_id: "app_1".into(),
        org_id: "o_dev".into(),
        token: "eyJ.r.s".into(),
        created_at: 123,
    };
    store
        .commit(vec![Write::InsertReceipt(receipt.clone())])
        .await
        .unwrap();
    assert_eq!(
        store.receipt_for_application("app_1").await.unwrap(),
        Some(receipt.clone())
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertReceipt(Receipt {
                id: "rcpt_2".into(),
                ..receipt
            })])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("already has an exemption receipt")),
        "{e}"
    );
}

async fn signing_keys_retire_once(db: Db) {
    let store = db.store();
    let key = |kid: &str, byte: u8, at| SigningKey {
        kid: kid.into(),
        public_key: vec![byte; 32],
        created_at: at,
        retired_at: None,
    };
    store
        .commit(vec![
            Write::InsertSigningKey(key("k2", 0xff, 20)),
            Write::InsertSigningKey(key("k1", 0x00, 10)),
        ])
        .await
        .unwrap();
    let retire = |at| Write::RetireSigningKey {
        kid: "k1".into(),
        at,
    };
    store.commit(vec![retire(30)]).await.unwrap();
    assert_eq!(
        store.signing_keys().await.unwrap(),
        [
            SigningKey {
                retired_at: Some(30),
                ..key("k1", 0x00, 10)
            },
            key("k2", 0xff, 20)
        ]
    );
    let e = expect_err(store.commit(vec![retire(40)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("already retired")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::RetireSigningKey {
                kid: "nope".into(),
                at: 1,
            }])
            .await,
    );
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
    let e = expect_err(
        store
            .commit(vec![Write::InsertSigningKey(key("k1", 1, 50))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("k1")),
        "{e}"
    );
}

fn deployment(origin: &str, key: &str, at: i64) -> Deployment {
    Deployment {
        log_origin: origin.into(),
        log_vkey: format!("{origin}+0123abcd+{key}"),
        created_at: at,
    }
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

async fn batch_is_all_or_nothing(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![Write::InsertToken(token("tok_1", "m_app", 1, None))])
        .await
        .unwrap();
    let before = store.audit(None, 0, 100).await.unwrap();

    // Every kind of write, then one that violates a constraint.
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertOrganization(org("o_new", "provider", 1)),
                Write::InsertMember(member("m_new", "o_new", "provider_operator", 1)),
                Write::InsertToken(token("tok_new", "m_new", 2, None)),
                Write::RevokeToken {
                    id: "tok_1".into(),
                    at: 5,
                },
                Write::InsertApplication(application("app_new", "o_new", "m_new", 1)),
                Write::UpdateApplication {
                    application: application("app_new", "o_new", "m_new", 1),
                    expected_version: 1,
                },
                Write::InsertReview(review("rev_new", "app_new", 1)),
                Write::InsertPermit(permit("p_new", "app_new", 1)),
                Write::IssuePermit {
                    id: "p_new".into(),
                    token: "eyJ".into(),
                    issued_at: 2,
                },
                Write::InsertReceipt(Receipt {
                    id: "rcpt_new".into(),
                    application_id: "app_new".into(),
                    org_id: "o_new".into(),
                    token: "eyJ".into(),
                    created_at: 1,
                }),
                Write::InsertSigningKey(SigningKey {
                    kid: "k_new".into(),
                    public_key: vec![1; 32],
                    created_at: 1,
                    retired_at: None,
                }),
                Write::RetireSigningKey {
                    kid: "k_new".into(),
                    at: 2,
                },
                Write::InsertAudit(audit("organization.create", "organization/o_new", 1)),
                Write::ReserveIdempotency(Idempotency {
                    principal_id: "m_new".into(),
                    key: "k".into(),
                    method_path: "POST /v1/x".into(),
                    request_hash: "h".into(),
                    status: Idempotency::RESERVED,
                    response_json: String::new(),
                    created_at: 1,
                }),
                Write::AnswerIdempotency {
                    principal_id: "m_new".into(),
                    key: "k".into(),
                    reserved_at: 1,
                    status: 200,
                    response_json: "null".into(),
                },
                // The hash of tok_1: a unique violation at the very end.
                Write::InsertToken(token("tok_dup", "m_new", 1, None)),
            ])
            .await,
    );
    assert!(matches!(e, StoreError::Duplicate(_)), "{e}");

    assert_eq!(store.organization("o_new").await.unwrap(), None);
    assert_eq!(store.organization_count().await.unwrap(), 2);
    assert_eq!(store.member("m_new").await.unwrap(), None);
    assert_eq!(store.token("tok_new").await.unwrap(), None);
    assert_eq!(
        store.token("tok_1").await.unwrap().unwrap().revoked_at,
        None
    );
    assert_eq!(store.application("app_new").await.unwrap(), None);
    assert!(store.reviews("app_new").await.unwrap().is_empty());
    assert_eq!(store.permit("p_new").await.unwrap(), None);
    assert_eq!(
        store.receipt_for_application("app_new").await.unwrap(),
        None
    );
    assert!(store.signing_keys().await.unwrap().is_empty());
    assert_eq!(store.audit(None, 0, 100).await.unwrap(), before);
    assert_eq!(store.idempotency("m_new", "k").await.unwrap(), None);

    // The store is still usable, and the same batch without the bad write commits.
    store
        .commit(vec![
            Write::InsertOrganization(org("o_new", "provider", 1)),
            Write::InsertAudit(audit("organization.create", "organization/o_new", 1)),
        ])
        .await
        .unwrap();
    assert_eq!(store.organization_count().await.unwrap(), 3);
    assert_eq!(
        store.audit(None, 0, 100).await.unwrap().len(),
        before.len() + 1
    );
}

async fn missing_references_are_invalid(db: Db) {
    let store = db.store();
    seed_application(store).await;
    let cases = vec![
        (
            Write::InsertMember(member("m_x", "o_missing", "admin", 1)),
            "org_id \"o_missing\"",
        ),
        (
            Write::InsertToken(token("tok_x", "m_missing", 5, None)),
            "member_id \"m_missing\"",
        ),
        (
            Write::InsertApplication(application("app_x", "o_missing", "m_app", 1)),
            "org_id \"o_missing\"",
        ),
        (
            Write::InsertReview(review("rev_x", "app_missing", 1)),
            "application_id \"app_missing\"",
        ),
        (
            Write::InsertPermit(permit("p_x", "app_missing", 1)),
            "application_id \"app_missing\"",
        ),
        (
            Write::InsertReceipt(Receipt {
                id: "rcpt_x".into(),
                application_id: "app_missing".into(),
                org_id: "o_dev".into(),
                token: "eyJ".into(),
                created_at: 1,
            }),
            "application_id \"app_missing\"",
        ),
    ];
    for (write, names) in cases {
        let described = write.describe();
        let e = expect_err(
            store
                .commit(vec![Write::InsertAudit(audit("x", "x/1", 1)), write])
                .await,
        );
        assert!(
            matches!(e, StoreError::Invalid(ref m) if m.contains(names)),
            "{described}: {e}"
        );
    }
    assert!(store.audit(None, 0, 100).await.unwrap().is_empty());
}

async fn invalid_writes_are_refused_before_the_database(db: Db) {
    let store = db.store();
    seed(store).await;
    let mut bad_token = token("tok_x", "m_app", 1, None);
    bad_token.hash = "NOT-HEX".into();
    let mut bad_permit = permit("p_x", "app_x", 1);
    bad_permit.token = Some("eyJ".into());
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertOrganization(org("o_x", "government", 1)),
                Write::InsertMember(member("m_x", "o_dev", "boss", 1)),
                Write::InsertToken(bad_token),
                Write::InsertPermit(bad_permit),
                Write::InsertAudit(AuditEvent {
                    details_json: "{not json".into(),
                    ..audit("a", "s", 1)
                }),
            ])
            .await,
    );
    let StoreError::Invalid(message) = e else {
        panic!("expected Invalid, got {e}");
    };
    for needle in [
        "writes[0] (InsertOrganization o_x) kind: must be one of authority, developer, provider, evaluator (got \"government\")",
        "writes[1] (InsertMember m_x) role: must be one of",
        "writes[2] (InsertToken tok_x) hash: must be the lowercase hex SHA-256",
        "writes[3] (InsertPermit p_x) token, issued_at: must both be None for an intent",
        "writes[4] (InsertAudit a s) details_json: must be JSON text",
    ] {
        assert!(message.contains(needle), "missing {needle:?} in {message}");
    }
    assert_eq!(store.organization("o_x").await.unwrap(), None);
    let e = store.audit(None, 0, 0).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    store
        .commit(Vec::new())
        .await
        .expect("an empty batch is a no-op");
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

// ---------------------------------------------------------------------------------------------
// The transparency log

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

// ---------------------------------------------------------------------------------------------
// Following runs: provider keys, runs, usage, milestones, incidents, KYC

/// 2^50 FLOP: sums of small multiples are exact in any order, so sums can be compared exactly.
const UNIT: f64 = 1_125_899_906_842_624.0;

fn run(id: &str, permit_id: &str, at: i64) -> Run {
    Run {
        id: id.into(),
        permit_id: permit_id.into(),
        org_id: "o_dev".into(),
        status: "active".into(),
        reason: String::new(),
        status_since: at,
        tranche: 1,
        released_flop: 64.0 * UNIT,
        budget_flop: 256.0 * UNIT,
        cumulative_flop: 0.0,
        cumulative_upper_flop: 0.0,
        summarized_flop: 0.0,
        alerted_percent: 0,
        appeal_pending: false,
        permit_exp_s: 2_000_000_000,
        version: 1,
        created_at: at,
        updated_at: at,
    }
}

/// `seed_application`, a provider `o_prov`, permits `p_1`, `p_2` and their runs `run_1`
/// (created at 300) and `run_2` (at 400).
async fn seed_runs(store: &dyn Store) {
    seed_application(store).await;
    store
        .commit(vec![
            Write::InsertOrganization(org("o_prov", "provider", 60)),
            Write::InsertPermit(permit("p_1", "app_1", 200)),
            Write::InsertPermit(permit("p_2", "app_1", 210)),
            Write::InsertRun(run("run_1", "p_1", 300)),
            Write::InsertRun(run("run_2", "p_2", 400)),
        ])
        .await
        .expect("seed runs");
}

/// A hex digest standing for the SHA-256 of `token` (the store only compares digests).
fn digest_of(token: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in token.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}").repeat(4)
}

/// Report `seq` of `provider` about `run_id`: `units` × [`UNIT`] FLOP, half that as the lower
/// bound and twice as the upper, received at `10_000 + seq`.
fn usage(provider: &str, run_id: &str, seq: i64, units: f64) -> UsageRecord {
    let token = format!("eyJ.{provider}.{run_id}.{seq}.{units}");
    UsageRecord {
        provider_id: provider.into(),
        run_id: run_id.into(),
        seq,
        permit_id: run_id.replace("run", "p"),
        cluster: "c1".into(),
        from_s: 1_700_000_000 + seq * 3_600,
        to_s: 1_700_000_000 + (seq + 1) * 3_600,
        flop: units * UNIT,
        flop_lower: units * UNIT / 2.0,
        flop_upper: units * UNIT * 2.0,
        method: "counters".into(),
        accelerator_seconds_json: r#"{"H100":3600}"#.into(),
        digest: digest_of(&token),
        token,
        received_at: 10_000 + seq,
    }
}

fn stored(previous_max_seq: i64) -> Ingested {
    Ingested::Stored { previous_max_seq }
}

fn milestone(id: &str, run_id: &str, at: i64) -> Milestone {
    Milestone {
        id: id.into(),
        run_id: run_id.into(),
        tranche: 2,
        status: "submitted".into(),
        checkpoint_digest: format!("sha256:{id}"),
        cumulative_flop: 60.0 * UNIT,
        evals_json: r#"{"cyber":0.1}"#.into(),
        submitted_by: "m_app".into(),
        submitted_at: at,
        decided_by: None,
        decided_org: None,
        decided_at: None,
        reason: None,
    }
}

fn incident(id: &str, org_id: &str, at: i64) -> Incident {
    Incident {
        id: id.into(),
        org_id: org_id.into(),
        reported_by: "m_app".into(),
        run_id: Some("run_1".into()),
        category: "model_weights_exfiltration".into(),
        summary: format!("{id} summary"),
        details_json: r#"{"hosts":2}"#.into(),
        occurred_at: at - 50,
        reported_at: at,
        follow_up_due: at + 1_000,
        followed_up_at: None,
        follow_up: None,
        status: "open".into(),
    }
}

fn kyc(id: &str, provider_id: &str, customer: &str, to_s: i64, jobs: i64) -> KycReport {
    KycReport {
        id: id.into(),
        provider_id: provider_id.into(),
        customer: customer.into(),
        from_s: to_s - 86_400,
        to_s,
        jobs,
        accelerator_seconds: jobs as f64 * 1_024.0,
        flop: jobs as f64 * UNIT,
        received_at: to_s * 1_000 + 5,
    }
}

async fn provider_keys_insert_read_and_revoke_once(db: Db) {
    let store = db.store();
    seed(store).await;
    let key = |kid: &str, org_id: &str, at| ProviderKey {
        kid: kid.into(),
        org_id: org_id.into(),
        public_key: vec![at as u8; 32],
        created_at: at,
        revoked_at: None,
    };
    store
        .commit(vec![
            Write::InsertOrganization(org("o_prov", "provider", 60)),
            Write::InsertProviderKey(key("pk_b", "o_prov", 20)),
            Write::InsertProviderKey(key("pk_a", "o_prov", 20)),
            Write::InsertProviderKey(key("pk_0", "o_dev", 10)),
            Write::InsertProviderKey(key("pk_c", "o_prov", 5)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.provider_key("pk_a").await.unwrap(),
        Some(key("pk_a", "o_prov", 20))
    );
    assert_eq!(store.provider_key("nope").await.unwrap(), None);
    assert_eq!(
        store.provider_keys("o_prov").await.unwrap(),
        [
            key("pk_c", "o_prov", 5),
            key("pk_a", "o_prov", 20),
            key("pk_b", "o_prov", 20)
        ]
    );
    assert!(store.provider_keys("o_auth").await.unwrap().is_empty());

    let revoke = |kid: &str, at| Write::RevokeProviderKey {
        kid: kid.into(),
        at,
    };
    store.commit(vec![revoke("pk_a", 30)]).await.unwrap();
    assert_eq!(
        store.all_provider_keys().await.unwrap(),
        [
            key("pk_c", "o_prov", 5),
            key("pk_0", "o_dev", 10),
            ProviderKey {
                revoked_at: Some(30),
                ..key("pk_a", "o_prov", 20)
            },
            key("pk_b", "o_prov", 20)
        ]
    );
    let e = expect_err(store.commit(vec![revoke("pk_a", 40)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("\"pk_a\" is already revoked (at 30)")),
        "{e}"
    );
    let e = expect_err(store.commit(vec![revoke("nope", 40)]).await);
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("nope")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertProviderKey(key("pk_b", "o_prov", 50))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "provider key kid \"pk_b\" already exists"),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertProviderKey(key("pk_x", "o_missing", 50))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("org_id \"o_missing\" names no organization")),
        "{e}"
    );
    assert_eq!(store.all_provider_keys().await.unwrap().len(), 4);
}

async fn runs_insert_read_and_order(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .commit(vec![
            Write::InsertOrganization(org("o_dev2", "developer", 70)),
            Write::InsertPermit(permit("p_3", "app_1", 220)),
            Write::InsertRun(Run {
                org_id: "o_dev2".into(),
                ..run("run_3", "p_3", 400)
            }),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.run("run_1").await.unwrap(),
        Some(run("run_1", "p_1", 300))
    );
    assert_eq!(store.run("nope").await.unwrap(), None);
    assert_eq!(
        store.run_by_permit("p_2").await.unwrap(),
        Some(run("run_2", "p_2", 400))
    );
    assert_eq!(store.run_by_permit("p_nope").await.unwrap(), None);
    let ids = |runs: Vec<Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.runs(None).await.unwrap()),
        ["run_3", "run_2", "run_1"]
    );
    assert_eq!(
        ids(store.runs(Some("o_dev")).await.unwrap()),
        ["run_2", "run_1"]
    );
    assert_eq!(ids(store.runs(Some("o_dev2")).await.unwrap()), ["run_3"]);
    assert!(store.runs(Some("o_auth")).await.unwrap().is_empty());

    let stored = store.run("run_3").await.unwrap().unwrap();
    assert_eq!(stored.org_id, "o_dev2");
    assert!(!stored.appeal_pending);

    let e = expect_err(
        store
            .commit(vec![Write::InsertRun(run("run_9", "p_1", 500))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "run \"run_9\": permit \"p_1\" already has a run"),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertPermit(permit("p_4", "app_1", 230)),
                Write::InsertRun(run("run_1", "p_4", 500)),
            ])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "run id \"run_1\" already exists"),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertRun(run("run_9", "p_missing", 500))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("permit_id \"p_missing\" names no permit")),
        "{e}"
    );
}

async fn update_run_is_optimistic_and_leaves_usage_alone(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    let read = store.run("run_1").await.unwrap().unwrap();
    // Usage arrives after the read: it must survive the update.
    store
        .ingest_usage(vec![
            usage("prov_a", "run_1", 1, 3.0),
            usage("prov_a", "run_1", 2, 5.0),
        ])
        .await
        .unwrap();

    let mut changed = read.clone();
    changed.status = "suspended".into();
    changed.reason = "milestone overdue".into();
    changed.status_since = 900;
    changed.tranche = 2;
    changed.released_flop = 128.0 * UNIT;
    changed.alerted_percent = 90;
    changed.appeal_pending = true;
    changed.updated_at = 901;
    // Ignored: identity, usage figures, budget, expiry, version.
    changed.permit_id = "p_2".into();
    changed.org_id = "o_auth".into();
    changed.budget_flop = 1.0;
    changed.cumulative_flop = 1.0;
    changed.cumulative_upper_flop = 1.0;
    changed.summarized_flop = 1.0;
    changed.permit_exp_s = 1;
    changed.version = 77;
    changed.created_at = 1;
    store
        .commit(vec![Write::UpdateRun {
            run: changed.clone(),
            expected_version: 1,
        }])
        .await
        .unwrap();
    let expected = Run {
        status: "suspended".into(),
        reason: "milestone overdue".into(),
        status_since: 900,
        tranche: 2,
        released_flop: 128.0 * UNIT,
        alerted_percent: 90,
        appeal_pending: true,
        updated_at: 901,
        version: 2,
        cumulative_flop: 8.0 * UNIT,
        cumulative_upper_flop: 16.0 * UNIT,
        ..run("run_1", "p_1", 300)
    };
    assert_eq!(store.run("run_1").await.unwrap().unwrap(), expected);

    // A writer that also read version 1 loses, and changes nothing.
    let e = expect_err(
        store
            .commit(vec![Write::UpdateRun {
                run: Run {
                    status: "revoked".into(),
                    ..read.clone()
                },
                expected_version: 1,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("\"run_1\"") && m.contains("expected version 1, stored version 2")),
        "{e}"
    );
    assert_eq!(store.run("run_1").await.unwrap().unwrap(), expected);
    // Ingestion does not bump the version: version 2 is still current.
    store
        .ingest_usage(vec![usage("prov_a", "run_1", 3, 1.0)])
        .await
        .unwrap();
    store
        .commit(vec![Write::UpdateRun {
            run: Run {
                status: "active".into(),
                appeal_pending: false,
                ..expected.clone()
            },
            expected_version: 2,
        }])
        .await
        .unwrap();
    let now = store.run("run_1").await.unwrap().unwrap();
    assert_eq!(
        (
            now.status.as_str(),
            now.appeal_pending,
            now.version,
            now.cumulative_flop
        ),
        ("active", false, 3, 9.0 * UNIT)
    );

    let e = expect_err(
        store
            .commit(vec![Write::UpdateRun {
                run: run("run_nope", "p_1", 1),
                expected_version: 1,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("run_nope")),
        "{e}"
    );
}

async fn set_run_summarized_and_runs_to_summarize(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    assert!(store.runs_to_summarize().await.unwrap().is_empty());
    store
        .ingest_usage(vec![usage("prov_a", "run_2", 1, 3.0)])
        .await
        .unwrap();
    let due = store.runs_to_summarize().await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (
            due[0].id.as_str(),
            due[0].cumulative_flop,
            due[0].summarized_flop
        ),
        ("run_2", 3.0 * UNIT, 0.0)
    );
    store
        .commit(vec![Write::SetRunSummarized {
            id: "run_2".into(),
            flop: 3.0 * UNIT,
            expected_flop: 0.0,
            at: 20_000,
        }])
        .await
        .unwrap();
    // A second summariser that read the same state loses.
    let e = expect_err(
        store
            .commit(vec![Write::SetRunSummarized {
                id: "run_2".into(),
                flop: 3.0 * UNIT,
                expected_flop: 0.0,
                at: 20_001,
            }])
            .await,
    );
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    let stored = store.run("run_2").await.unwrap().unwrap();
    assert_eq!(
        (stored.summarized_flop, stored.updated_at, stored.version),
        (3.0 * UNIT, 20_000, 1)
    );
    assert!(store.runs_to_summarize().await.unwrap().is_empty());
    store
        .ingest_usage(vec![
            usage("prov_a", "run_2", 2, 1.0),
            usage("prov_a", "run_1", 1, 1.0),
        ])
        .await
        .unwrap();
    let due: Vec<String> = store
        .runs_to_summarize()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(due, ["run_1", "run_2"]);
    let e = expect_err(
        store
            .commit(vec![Write::SetRunSummarized {
                id: "run_nope".into(),
                flop: 1.0,
                expected_flop: 0.0,
                at: 1,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("run_nope")),
        "{e}"
    );
}

async fn runs_not_in_good_standing_filters(db: Db) {
    let store = db.store();
    seed_application(store).await;
    let mut writes = Vec::new();
    for (id, status, exp) in [
        ("r_active", "active", 5_000),
        ("r_suspended", "suspended", 5_000),
        ("r_paused_old", "paused", 1_000),
        ("r_revoked", "revoked", 3_000),
        ("r_due", "milestone_due", 4_000),
    ] {
        let permit_id = format!("p_{id}");
        writes.push(Write::InsertPermit(permit(&permit_id, "app_1", 1)));
        writes.push(Write::InsertRun(Run {
            status: status.into(),
            permit_exp_s: exp,
            ..run(id, &permit_id, 10)
        }));
    }
    store.commit(writes).await.unwrap();
    let ids = |runs: Vec<Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.runs_not_in_good_standing(0).await.unwrap()),
        ["r_due", "r_paused_old", "r_revoked", "r_suspended"]
    );
    assert_eq!(
        ids(store.runs_not_in_good_standing(2_000).await.unwrap()),
        ["r_due", "r_revoked", "r_suspended"]
    );
    // Strictly later than the bound.
    assert_eq!(
        ids(store.runs_not_in_good_standing(4_000).await.unwrap()),
        ["r_suspended"]
    );
    assert!(
        store
            .runs_not_in_good_standing(5_000)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn ingest_usage_stores_duplicates_and_conflicts(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    assert_eq!(store.ingest_usage(Vec::new()).await.unwrap(), []);

    // 1, 2, then 4 (a gap), then 3 (late).
    let first = vec![
        usage("prov_a", "run_1", 1, 1.0),
        usage("prov_a", "run_1", 2, 2.0),
        usage("prov_a", "run_1", 4, 4.0),
        usage("prov_a", "run_1", 3, 8.0),
    ];
    assert_eq!(
        store.ingest_usage(first.clone()).await.unwrap(),
        [stored(0), stored(1), stored(2), stored(4)]
    );
    let r = store.run("run_1").await.unwrap().unwrap();
    assert_eq!(
        (
            r.cumulative_flop,
            r.cumulative_upper_flop,
            r.updated_at,
            r.version
        ),
        (15.0 * UNIT, 30.0 * UNIT, 10_004, 1)
    );

    // A retry, a different report under a stored key, a new one, and the same key twice more
    // within the batch.
    let mut forged = usage("prov_a", "run_1", 2, 2.0);
    forged.token = "eyJ.forged".into();
    forged.digest = digest_of("eyJ.forged");
    let mut forged_new = usage("prov_a", "run_1", 6, 1.0);
    forged_new.token = "eyJ.other".into();
    forged_new.digest = digest_of("eyJ.other");
    let second = vec![
        usage("prov_a", "run_1", 2, 2.0),
        forged,
        usage("prov_a", "run_1", 6, 1.0),
        usage("prov_a", "run_1", 6, 1.0),
        forged_new,
        usage("prov_a", "run_1", 5, 16.0),
    ];
    assert_eq!(
        store.ingest_usage(second).await.unwrap(),
        [
            Ingested::Duplicate,
            Ingested::Conflict {
                stored_digest: first[1].digest.clone()
            },
            Ingested::Withheld,
            Ingested::Duplicate,
            Ingested::Conflict {
                stored_digest: usage("prov_a", "run_1", 6, 1.0).digest
            },
            Ingested::Withheld,
        ]
    );
    // All or nothing: with a conflict in the batch, nothing of it is written.
    assert_eq!(store.run("run_1").await.unwrap().unwrap(), r);
    assert_eq!(
        store.usage_reports("run_1", None, 100).await.unwrap().len(),
        4
    );
    // Sent again without the conflicting reports, the new ones are stored.
    let third = vec![
        usage("prov_a", "run_1", 6, 1.0),
        usage("prov_a", "run_1", 6, 1.0),
        usage("prov_a", "run_1", 5, 16.0),
    ];
    assert_eq!(
        store.ingest_usage(third).await.unwrap(),
        [stored(4), Ingested::Duplicate, stored(6)]
    );
    let r = store.run("run_1").await.unwrap().unwrap();
    assert_eq!(
        (r.cumulative_flop, r.cumulative_upper_flop, r.updated_at),
        (32.0 * UNIT, 64.0 * UNIT, 10_006)
    );
    // All duplicates: nothing changes, not even updated_at.
    assert_eq!(
        store.ingest_usage(first.clone()).await.unwrap(),
        [const { Ingested::Duplicate }; 4]
    );
    assert_eq!(store.run("run_1").await.unwrap().unwrap(), r);
    // What is stored is the first report of each key.
    let reports = store.usage_reports("run_1", None, 100).await.unwrap();
    assert_eq!(
        reports.iter().map(|u| u.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(reports[1], first[1]);
    assert_eq!(reports[5], usage("prov_a", "run_1", 6, 1.0));
    assert_eq!(
        store.usage_by_provider("run_1").await.unwrap(),
        [ProviderUsage {
            provider_id: "prov_a".into(),
            reports: 6,
            max_seq: 6,
            flop: 32.0 * UNIT,
            flop_lower: 16.0 * UNIT,
            flop_upper: 64.0 * UNIT,
            first_from_s: 1_700_000_000 + 3_600,
            last_to_s: 1_700_000_000 + 7 * 3_600,
            last_received_at: 10_006,
        }]
    );
    // updated_at only moves forward.
    let mut early = usage("prov_a", "run_1", 9, 1.0);
    early.received_at = 5;
    assert_eq!(store.ingest_usage(vec![early]).await.unwrap(), [stored(6)]);
    let r = store.run("run_1").await.unwrap().unwrap();
    assert_eq!((r.cumulative_flop, r.updated_at), (33.0 * UNIT, 10_006));
}

async fn ingest_usage_sums_per_run_across_providers(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    let outcomes = store
        .ingest_usage(vec![
            usage("prov_b", "run_1", 1, 1.0),
            usage("prov_a", "run_1", 1, 2.0),
            usage("prov_a", "run_2", 1, 4.0),
            usage("prov_b", "run_1", 2, 8.0),
            usage("prov_a", "run_2", 3, 16.0),
            usage("prov_a", "run_1", 2, 32.0),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            stored(0),
            stored(0),
            stored(0),
            stored(1),
            stored(1),
            stored(1)
        ]
    );
    let outcomes = store
        .ingest_usage(vec![
            usage("prov_b", "run_2", 1, 64.0),
            usage("prov_a", "run_2", 2, 128.0),
            usage("prov_b", "run_1", 5, 256.0),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, [stored(0), stored(3), stored(2)]);
    let one = store.run("run_1").await.unwrap().unwrap();
    let two = store.run("run_2").await.unwrap().unwrap();
    assert_eq!(
        (
            one.cumulative_flop,
            one.cumulative_upper_flop,
            one.updated_at
        ),
        (299.0 * UNIT, 598.0 * UNIT, 10_005)
    );
    assert_eq!(
        (
            two.cumulative_flop,
            two.cumulative_upper_flop,
            two.updated_at
        ),
        (212.0 * UNIT, 424.0 * UNIT, 10_003)
    );
    let by_provider = store.usage_by_provider("run_1").await.unwrap();
    assert_eq!(
        by_provider
            .iter()
            .map(|p| (p.provider_id.as_str(), p.reports, p.max_seq, p.flop))
            .collect::<Vec<_>>(),
        [
            ("prov_a", 2, 2, 34.0 * UNIT),
            ("prov_b", 3, 5, 265.0 * UNIT)
        ]
    );
    assert_eq!(
        by_provider[1],
        ProviderUsage {
            provider_id: "prov_b".into(),
            reports: 3,
            max_seq: 5,
            flop: 265.0 * UNIT,
            flop_lower: 132.5 * UNIT,
            flop_upper: 530.0 * UNIT,
            first_from_s: 1_700_000_000 + 3_600,
            last_to_s: 1_700_000_000 + 6 * 3_600,
            last_received_at: 10_005,
        }
    );
    assert_eq!(
        store
            .usage_by_provider("run_2")
            .await
            .unwrap()
            .iter()
            .map(|p| (p.provider_id.as_str(), p.reports, p.max_seq, p.flop))
            .collect::<Vec<_>>(),
        [
            ("prov_a", 3, 3, 148.0 * UNIT),
            ("prov_b", 1, 1, 64.0 * UNIT)
        ]
    );
    assert!(
        store
            .usage_by_provider("run_nope")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn ingest_usage_with_an_unknown_run_rolls_back(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .ingest_usage(vec![usage("prov_a", "run_1", 1, 1.0)])
        .await
        .unwrap();
    let before = (
        store.run("run_1").await.unwrap(),
        store.run("run_2").await.unwrap(),
    );
    let e = store
        .ingest_usage(vec![
            usage("prov_a", "run_1", 2, 1.0),
            usage("prov_a", "run_2", 1, 1.0),
            usage("prov_a", "run_zz", 7, 1.0),
            usage("prov_a", "run_1", 3, 1.0),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("run \"run_zz\"") && m.contains("usage report 7 of provider \"prov_a\"")),
        "{e}"
    );
    assert_eq!(
        (
            store.run("run_1").await.unwrap(),
            store.run("run_2").await.unwrap()
        ),
        before
    );
    assert_eq!(
        store.usage_reports("run_1", None, 10).await.unwrap().len(),
        1
    );
    assert!(
        store
            .usage_reports("run_2", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The same batch without the unknown run goes through.
    assert_eq!(
        store
            .ingest_usage(vec![
                usage("prov_a", "run_1", 2, 1.0),
                usage("prov_a", "run_2", 1, 1.0),
            ])
            .await
            .unwrap(),
        [stored(1), stored(0)]
    );
}

async fn ingest_usage_refuses_invalid_records(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    let good = usage("prov_a", "run_1", 1, 1.0);
    let bad = vec![
        good.clone(),
        UsageRecord {
            provider_id: String::new(),
            seq: 0,
            to_s: good.from_s,
            ..good.clone()
        },
        UsageRecord {
            flop: f64::NAN,
            flop_lower: -1.0,
            flop_upper: f64::INFINITY,
            ..usage("prov_a", "run_1", 2, 1.0)
        },
        UsageRecord {
            flop: 3.0 * UNIT,
            digest: good.digest.to_uppercase(),
            accelerator_seconds_json: "{".into(),
            run_id: String::new(),
            permit_id: String::new(),
            ..usage("prov_a", "run_1", 3, 1.0)
        },
    ];
    let e = store.ingest_usage(bad).await.unwrap_err();
    let StoreError::Invalid(message) = e else {
        panic!("expected Invalid, got {e}");
    };
    for needle in [
        "records[1] (provider \"\" run \"run_1\" seq 0) provider_id: must not be empty",
        "records[1] (provider \"\" run \"run_1\" seq 0) seq: must be 1 or more (got 0)",
        "records[1] (provider \"\" run \"run_1\" seq 0) to_s: must be after from_s",
        "records[2] (provider \"prov_a\" run \"run_1\" seq 2) flop: must be a finite number of FLOP",
        "records[2] (provider \"prov_a\" run \"run_1\" seq 2) flop_lower: must be a finite number of FLOP, 0 or more (got -1)",
        "records[2] (provider \"prov_a\" run \"run_1\" seq 2) flop_upper: must be a finite number of FLOP",
        "records[3] (provider \"prov_a\" run \"\" seq 3) run_id: must not be empty",
        "records[3] (provider \"prov_a\" run \"\" seq 3) permit_id: must not be empty",
        "records[3] (provider \"prov_a\" run \"\" seq 3) flop: must lie within flop_lower..=flop_upper",
        "records[3] (provider \"prov_a\" run \"\" seq 3) accelerator_seconds_json: must be JSON text",
        "records[3] (provider \"prov_a\" run \"\" seq 3) digest: must be the lowercase hex SHA-256 of the token",
    ] {
        assert!(message.contains(needle), "missing {needle:?} in {message}");
    }
    assert!(!message.contains("records[0]"), "{message}");
    assert_eq!(message.matches("; ").count(), 12, "{message}");
    assert!(
        store
            .usage_reports("run_1", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.run("run_1").await.unwrap().unwrap().cumulative_flop,
        0.0
    );
}

async fn concurrent_ingest_keeps_exact_sums(db: Db) {
    const TASKS: usize = 4;
    const BATCHES: i64 = 5;
    const OWN: i64 = 40;
    const SHARED: i64 = 20;
    seed_runs(db.store()).await;
    let other = db.reopen().await;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = if task % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let provider = format!("prov_{task}");
            let mut outcomes = Vec::new();
            for batch in 0..BATCHES {
                // Reports of its own, and the same shared reports as every other task, each
                // batch on both runs.
                let mut records = Vec::new();
                for seq in batch * OWN + 1..=(batch + 1) * OWN {
                    records.push(usage(&provider, "run_1", seq, (seq % 7 + 1) as f64));
                }
                for seq in batch * SHARED + 1..=(batch + 1) * SHARED {
                    records.push(usage("prov_shared", "run_1", seq, 3.0));
                    records.push(usage("prov_shared", "run_2", seq, 5.0));
                }
                let result = store.ingest_usage(records.clone()).await.unwrap();
                outcomes.extend(records.into_iter().zip(result));
            }
            outcomes
        }));
    }
    let mut shared_stored = 0;
    for task in tasks {
        for (record, outcome) in task.await.unwrap() {
            match outcome {
                Ingested::Stored { previous_max_seq } => {
                    // Every batch extends what is stored, whoever stores it.
                    assert_eq!(previous_max_seq, record.seq - 1, "{record:?}");
                    if record.provider_id == "prov_shared" {
                        shared_stored += 1;
                    }
                }
                Ingested::Duplicate => assert_eq!(record.provider_id, "prov_shared"),
                Ingested::Conflict { .. } | Ingested::Withheld => {
                    panic!("no conflict expected: {record:?}")
                }
            }
        }
    }
    assert_eq!(
        shared_stored,
        2 * BATCHES * SHARED,
        "each shared report stored once"
    );
    let own: f64 = (1..=BATCHES * OWN).map(|seq| (seq % 7 + 1) as f64).sum();
    let one = db.store().run("run_1").await.unwrap().unwrap();
    let two = db.store().run("run_2").await.unwrap().unwrap();
    let shared = (BATCHES * SHARED) as f64;
    assert_eq!(
        one.cumulative_flop,
        (TASKS as f64 * own + 3.0 * shared) * UNIT
    );
    assert_eq!(
        one.cumulative_upper_flop,
        2.0 * (TASKS as f64 * own + 3.0 * shared) * UNIT
    );
    assert_eq!(two.cumulative_flop, 5.0 * shared * UNIT);
    assert_eq!(one.version, 1);
    let by_provider = db.store().usage_by_provider("run_1").await.unwrap();
    assert_eq!(by_provider.len(), TASKS + 1);
    assert!(
        by_provider.iter().all(|p| p.reports == p.max_seq
            && p.reports
                == if p.provider_id == "prov_shared" {
                    BATCHES * SHARED
                } else {
                    BATCHES * OWN
                }),
        "{by_provider:?}"
    );
}

async fn ingest_usage_large_batches(db: Db) {
    // Longer than one statement (1,024 rows) and than one lookup list: every chunking path.
    const N: i64 = 2_500;
    let store = db.store();
    seed_runs(store).await;
    let records: Vec<UsageRecord> = (1..=N)
        .map(|seq| usage("prov_a", "run_1", seq, 1.0))
        .collect();
    let outcomes = store.ingest_usage(records.clone()).await.unwrap();
    assert!(
        outcomes
            .iter()
            .zip(1..)
            .all(|(o, seq)| *o == stored(seq - 1)),
        "{:?}",
        &outcomes[..3]
    );
    // Again, with new reports after every stored one: lookups of 2,500 stored keys.
    let again: Vec<UsageRecord> = records
        .iter()
        .cloned()
        .flat_map(|r| {
            let seq = r.seq + N;
            [r, usage("prov_a", "run_1", seq, 1.0)]
        })
        .collect();
    let outcomes = store.ingest_usage(again).await.unwrap();
    assert_eq!(outcomes.len(), 2 * N as usize);
    for (i, outcome) in outcomes.iter().enumerate() {
        let expected = if i % 2 == 0 {
            Ingested::Duplicate
        } else if i == 1 {
            stored(N)
        } else {
            stored(N + i as i64 / 2)
        };
        assert_eq!(*outcome, expected, "outcome {i}");
    }
    let r = store.run("run_1").await.unwrap().unwrap();
    assert_eq!(r.cumulative_flop, 2.0 * N as f64 * UNIT);
    assert_eq!(
        store.usage_by_provider("run_1").await.unwrap()[0].reports,
        2 * N
    );
}

async fn usage_reports_page_in_provider_seq_order(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .ingest_usage(vec![
            usage("prov_b", "run_1", 2, 1.0),
            usage("prov_a", "run_1", 10, 1.0),
            usage("prov_b", "run_1", 1, 1.0),
            usage("prov_a", "run_1", 9, 1.0),
            usage("prov_c", "run_1", 1, 1.0),
            usage("prov_a", "run_2", 1, 1.0),
        ])
        .await
        .unwrap();
    let keys = |page: &[UsageRecord]| {
        page.iter()
            .map(|u| (u.provider_id.clone(), u.seq))
            .collect::<Vec<_>>()
    };
    let key = |p: &str, seq| (p.to_owned(), seq);
    let page = store.usage_reports("run_1", None, 2).await.unwrap();
    assert_eq!(keys(&page), [key("prov_a", 9), key("prov_a", 10)]);
    assert_eq!(page[0], usage("prov_a", "run_1", 9, 1.0));
    let page = store
        .usage_reports("run_1", Some(key("prov_a", 10)), 2)
        .await
        .unwrap();
    assert_eq!(keys(&page), [key("prov_b", 1), key("prov_b", 2)]);
    let page = store
        .usage_reports("run_1", Some(key("prov_b", 1)), 10)
        .await
        .unwrap();
    assert_eq!(keys(&page), [key("prov_b", 2), key("prov_c", 1)]);
    assert!(
        store
            .usage_reports("run_1", Some(key("prov_c", 1)), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        keys(&store.usage_reports("run_2", None, 10).await.unwrap()),
        [key("prov_a", 1)]
    );
    let e = store.usage_reports("run_1", None, 0).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
}

async fn usage_reports_cannot_be_updated_or_deleted(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .ingest_usage(vec![usage("prov_a", "run_1", 1, 1.0)])
        .await
        .unwrap();
    let e = db
        .raw("UPDATE usage_reports SET flop = 0")
        .await
        .expect_err("UPDATE on usage_reports must fail");
    assert!(e.contains("append-only"), "{e}");
    let e = db
        .raw("DELETE FROM usage_reports")
        .await
        .expect_err("DELETE on usage_reports must fail");
    assert!(e.contains("append-only"), "{e}");
    if db.is_postgres() {
        let e = db
            .raw("TRUNCATE usage_reports")
            .await
            .expect_err("TRUNCATE on usage_reports must fail");
        assert!(e.contains("append-only"), "{e}");
    }
    assert_eq!(
        store.usage_reports("run_1", None, 10).await.unwrap(),
        [usage("prov_a", "run_1", 1, 1.0)]
    );
}

async fn milestones_are_decided_once(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .commit(vec![
            Write::InsertMilestone(milestone("ms_b", "run_1", 200)),
            Write::InsertMilestone(milestone("ms_a", "run_1", 200)),
            Write::InsertMilestone(milestone("ms_0", "run_1", 100)),
            Write::InsertMilestone(milestone("ms_x", "run_2", 50)),
        ])
        .await
        .unwrap();
    let ids = |ms: Vec<Milestone>| ms.into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.milestones("run_1").await.unwrap()),
        ["ms_0", "ms_a", "ms_b"]
    );
    assert_eq!(ids(store.milestones("run_2").await.unwrap()), ["ms_x"]);
    assert_eq!(
        store.milestone("ms_a").await.unwrap(),
        Some(milestone("ms_a", "run_1", 200))
    );
    assert_eq!(store.milestone("nope").await.unwrap(), None);

    let decide = |id: &str, status: &str, at| Write::DecideMilestone {
        id: id.into(),
        status: status.into(),
        decided_by: "m_rev".into(),
        decided_org: "o_auth".into(),
        decided_at: at,
        reason: format!("{status} at {at}"),
    };
    store
        .commit(vec![decide("ms_a", "accepted", 300)])
        .await
        .unwrap();
    let decided = Milestone {
        status: "accepted".into(),
        decided_by: Some("m_rev".into()),
        decided_org: Some("o_auth".into()),
        decided_at: Some(300),
        reason: Some("accepted at 300".into()),
        ..milestone("ms_a", "run_1", 200)
    };
    assert_eq!(
        store.milestone("ms_a").await.unwrap(),
        Some(decided.clone())
    );
    let e = expect_err(store.commit(vec![decide("ms_a", "rejected", 400)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("\"ms_a\" is already decided (\"accepted\")")),
        "{e}"
    );
    assert_eq!(store.milestone("ms_a").await.unwrap(), Some(decided));
    store
        .commit(vec![decide("ms_b", "rejected", 410)])
        .await
        .unwrap();
    assert_eq!(
        store.milestone("ms_b").await.unwrap().unwrap().status,
        "rejected"
    );
    let e = expect_err(store.commit(vec![decide("nope", "accepted", 1)]).await);
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("nope")),
        "{e}"
    );
    let e = expect_err(store.commit(vec![decide("ms_0", "submitted", 1)]).await);
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("status: must be one of accepted, rejected (got \"submitted\")")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertMilestone(milestone(
                "ms_y", "run_nope", 1,
            ))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("run_id \"run_nope\" names no run")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertMilestone(milestone("ms_0", "run_1", 1))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "milestone id \"ms_0\" already exists"),
        "{e}"
    );
}

async fn incidents_follow_up_until_closed(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .commit(vec![
            Write::InsertIncident(incident("inc_1", "o_dev", 500)),
            Write::InsertIncident(Incident {
                run_id: None,
                ..incident("inc_2", "o_prov", 700)
            }),
            Write::InsertIncident(incident("inc_3", "o_dev", 600)),
        ])
        .await
        .unwrap();
    let ids = |all: Vec<Incident>| all.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.incidents(None).await.unwrap()),
        ["inc_2", "inc_3", "inc_1"]
    );
    assert_eq!(
        ids(store.incidents(Some("o_dev")).await.unwrap()),
        ["inc_3", "inc_1"]
    );
    assert!(store.incidents(Some("o_auth")).await.unwrap().is_empty());
    assert_eq!(
        store.incident("inc_2").await.unwrap(),
        Some(Incident {
            run_id: None,
            ..incident("inc_2", "o_prov", 700)
        })
    );
    assert_eq!(store.incident("nope").await.unwrap(), None);

    let follow_up = |at, text: &str, close| Write::FollowUpIncident {
        id: "inc_1".into(),
        at,
        text: text.into(),
        close,
    };
    store
        .commit(vec![follow_up(800, "contained", false)])
        .await
        .unwrap();
    assert_eq!(
        store.incident("inc_1").await.unwrap().unwrap(),
        Incident {
            followed_up_at: Some(800),
            follow_up: Some("contained".into()),
            ..incident("inc_1", "o_dev", 500)
        }
    );
    store
        .commit(vec![follow_up(900, "root cause fixed", true)])
        .await
        .unwrap();
    let closed = Incident {
        followed_up_at: Some(900),
        follow_up: Some("root cause fixed".into()),
        status: "closed".into(),
        ..incident("inc_1", "o_dev", 500)
    };
    assert_eq!(store.incident("inc_1").await.unwrap().unwrap(), closed);
    let e = expect_err(store.commit(vec![follow_up(950, "again", false)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("\"inc_1\" is closed")),
        "{e}"
    );
    assert_eq!(store.incident("inc_1").await.unwrap().unwrap(), closed);
    let e = expect_err(
        store
            .commit(vec![Write::FollowUpIncident {
                id: "nope".into(),
                at: 1,
                text: "x".into(),
                close: true,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("nope")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertIncident(incident("inc_9", "o_nope", 1))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("org_id \"o_nope\" names no organization")),
        "{e}"
    );
}

async fn kyc_totals_window_and_grouping(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![
            Write::InsertOrganization(org("o_prov", "provider", 60)),
            Write::InsertOrganization(org("o_prov2", "provider", 61)),
            Write::InsertKycReport(kyc("k1", "o_prov", "LEI-B", 1_000, 1)),
            Write::InsertKycReport(kyc("k2", "o_prov", "LEI-B", 2_000, 2)),
            Write::InsertKycReport(kyc("k3", "o_prov2", "LEI-B", 3_000, 4)),
            Write::InsertKycReport(kyc("k4", "o_prov", "LEI-A", 3_000, 8)),
            Write::InsertKycReport(kyc("k5", "o_prov", "LEI-A", 500, 16)),
            Write::InsertKycReport(kyc("k6", "o_prov", "LEI-B", 4_000, 32)),
        ])
        .await
        .unwrap();
    let total = |customer: &str, provider_id: &str, reports, jobs: i64| KycTotal {
        customer: customer.into(),
        provider_id: provider_id.into(),
        reports,
        jobs,
        accelerator_seconds: jobs as f64 * 1_024.0,
        flop: jobs as f64 * UNIT,
    };
    assert_eq!(
        store.kyc_totals(0).await.unwrap(),
        [
            total("LEI-A", "o_prov", 2, 24),
            total("LEI-B", "o_prov", 3, 35),
            total("LEI-B", "o_prov2", 1, 4)
        ]
    );
    // Periods ending after `since_s` only: k1 (to_s 1,000) and k5 are out.
    assert_eq!(
        store.kyc_totals(1_000).await.unwrap(),
        [
            total("LEI-A", "o_prov", 1, 8),
            total("LEI-B", "o_prov", 2, 34),
            total("LEI-B", "o_prov2", 1, 4)
        ]
    );
    assert_eq!(
        store.kyc_totals(3_000).await.unwrap(),
        [total("LEI-B", "o_prov", 1, 32)]
    );
    assert!(store.kyc_totals(4_000).await.unwrap().is_empty());
    let e = expect_err(
        store
            .commit(vec![Write::InsertKycReport(kyc(
                "k9", "o_nope", "LEI-A", 1, 1,
            ))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("provider_id \"o_nope\" names no organization")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertKycReport(kyc(
                "k1", "o_prov", "LEI-A", 1, 1,
            ))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "KYC report id \"k1\" already exists"),
        "{e}"
    );
}

async fn oversight_batch_is_all_or_nothing(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .commit(vec![
            Write::InsertProviderKey(ProviderKey {
                kid: "pk_1".into(),
                org_id: "o_prov".into(),
                public_key: vec![1; 32],
                created_at: 1,
                revoked_at: None,
            }),
            Write::InsertMilestone(milestone("ms_1", "run_1", 1)),
            Write::InsertIncident(incident("inc_1", "o_dev", 1)),
        ])
        .await
        .unwrap();
    let runs_before = store.runs(None).await.unwrap();
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertPermit(permit("p_9", "app_1", 1)),
                Write::InsertRun(run("run_9", "p_9", 1)),
                Write::UpdateRun {
                    run: Run {
                        status: "paused".into(),
                        ..run("run_1", "p_1", 1)
                    },
                    expected_version: 1,
                },
                Write::SetRunSummarized {
                    id: "run_2".into(),
                    flop: 5.0,
                    expected_flop: 0.0,
                    at: 7,
                },
                Write::InsertProviderKey(ProviderKey {
                    kid: "pk_2".into(),
                    org_id: "o_prov".into(),
                    public_key: vec![2; 32],
                    created_at: 2,
                    revoked_at: None,
                }),
                Write::RevokeProviderKey {
                    kid: "pk_1".into(),
                    at: 3,
                },
                Write::InsertMilestone(milestone("ms_2", "run_9", 1)),
                Write::DecideMilestone {
                    id: "ms_1".into(),
                    status: "accepted".into(),
                    decided_by: "m_rev".into(),
                    decided_org: "o_auth".into(),
                    decided_at: 4,
                    reason: "ok".into(),
                },
                Write::InsertIncident(incident("inc_2", "o_dev", 2)),
                Write::FollowUpIncident {
                    id: "inc_1".into(),
                    at: 5,
                    text: "done".into(),
                    close: true,
                },
                Write::InsertKycReport(kyc("k1", "o_prov", "LEI-A", 1_000, 1)),
                Write::InsertAudit(audit("run.update", "run/run_1", 6)),
                // Already decided within this batch: a conflict at the very end.
                Write::DecideMilestone {
                    id: "ms_1".into(),
                    status: "rejected".into(),
                    decided_by: "m_rev".into(),
                    decided_org: "o_auth".into(),
                    decided_at: 8,
                    reason: "no".into(),
                },
            ])
            .await,
    );
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    assert_eq!(store.runs(None).await.unwrap(), runs_before);
    assert_eq!(store.permit("p_9").await.unwrap(), None);
    assert_eq!(store.all_provider_keys().await.unwrap().len(), 1);
    assert_eq!(
        store
            .provider_key("pk_1")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );
    assert_eq!(
        store.milestones("run_1").await.unwrap(),
        [milestone("ms_1", "run_1", 1)]
    );
    assert_eq!(
        store.incidents(None).await.unwrap(),
        [incident("inc_1", "o_dev", 1)]
    );
    assert!(store.kyc_totals(0).await.unwrap().is_empty());
    assert!(store.audit(None, 0, 10).await.unwrap().is_empty());
}

async fn oversight_writes_are_validated(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertProviderKey(ProviderKey {
                    kid: String::new(),
                    org_id: "o_prov".into(),
                    public_key: vec![0; 33],
                    created_at: 1,
                    revoked_at: None,
                }),
                Write::InsertRun(Run {
                    status: "running".into(),
                    tranche: 0,
                    released_flop: -1.0,
                    budget_flop: f64::INFINITY,
                    alerted_percent: 101,
                    ..run("run_x", "p_x", 1)
                }),
                // UpdateRun writes the run's state, never its usage figures or permit: those
                // are not checked (a run whose stored usage is broken can still be held).
                Write::UpdateRun {
                    run: Run {
                        cumulative_flop: f64::NAN,
                        released_flop: f64::NAN,
                        ..run("run_1", "", 1)
                    },
                    expected_version: -1,
                },
                Write::SetRunSummarized {
                    id: "run_1".into(),
                    flop: -2.0,
                    expected_flop: 0.0,
                    at: 1,
                },
                Write::InsertMilestone(Milestone {
                    status: "submitted".into(),
                    decided_by: Some("m_rev".into()),
                    evals_json: "nope".into(),
                    tranche: 0,
                    ..milestone("ms_x", "run_1", 1)
                }),
                Write::InsertIncident(Incident {
                    category: String::new(),
                    status: "pending".into(),
                    follow_up: Some("x".into()),
                    ..incident("inc_x", "o_dev", 1)
                }),
                Write::FollowUpIncident {
                    id: "inc_x".into(),
                    at: 1,
                    text: String::new(),
                    close: false,
                },
                Write::InsertKycReport(KycReport {
                    customer: String::new(),
                    jobs: -1,
                    accelerator_seconds: f64::NAN,
                    ..kyc("k_x", "o_prov", "LEI-A", 1_000, 1)
                }),
                Write::RevokeProviderKey {
                    kid: String::new(),
                    at: 1,
                },
            ])
            .await,
    );
    let StoreError::Invalid(message) = e else {
        panic!("expected Invalid, got {e}");
    };
    for needle in [
        "writes[0] (InsertProviderKey ) kid: must not be empty",
        "writes[0] (InsertProviderKey ) public_key: must be the 32 raw bytes of an Ed25519 public key (got 33 bytes)",
        "writes[1] (InsertRun run_x) status: must be one of active, milestone_due, paused, suspended, revoked, terminated, completed (got \"running\")",
        "writes[1] (InsertRun run_x) tranche: must be 1 or more (got 0)",
        "writes[1] (InsertRun run_x) released_flop: must be a finite number of FLOP, 0 or more (got -1)",
        "writes[1] (InsertRun run_x) budget_flop: must be a finite number of FLOP",
        "writes[1] (InsertRun run_x) alerted_percent: must be 0 to 100 (got 101)",
        "writes[2] (UpdateRun run_1) released_flop: must be a finite number of FLOP",
        "writes[2] (UpdateRun run_1) expected_version: must be 0 or more (got -1)",
        "writes[3] (SetRunSummarized run_1) flop: must be a finite number of FLOP",
        "writes[4] (InsertMilestone ms_x) tranche: must be 1 or more",
        "writes[4] (InsertMilestone ms_x) evals_json: must be JSON text",
        "writes[4] (InsertMilestone ms_x) decided_by, decided_org, decided_at, reason: must all be None for a submitted milestone",
        "writes[5] (InsertIncident inc_x) category: must not be empty",
        "writes[5] (InsertIncident inc_x) status: must be one of open, closed (got \"pending\")",
        "writes[5] (InsertIncident inc_x) followed_up_at, follow_up: must both be set or both be None",
        "writes[6] (FollowUpIncident inc_x) text: must not be empty",
        "writes[7] (InsertKycReport k_x) customer: must not be empty",
        "writes[7] (InsertKycReport k_x) jobs: must be 0 or more (got -1)",
        "writes[7] (InsertKycReport k_x) accelerator_seconds: must be finite and 0 or more",
        "writes[8] (RevokeProviderKey ) kid: must not be empty",
    ] {
        assert!(message.contains(needle), "missing {needle:?} in {message}");
    }
    for unchecked in [
        "(UpdateRun run_1) permit_id",
        "(UpdateRun run_1) cumulative_flop",
    ] {
        assert!(!message.contains(unchecked), "{unchecked:?} in {message}");
    }
    assert_eq!(store.run("run_x").await.unwrap(), None);
}
