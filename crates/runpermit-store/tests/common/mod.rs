//! The harness and shared fixtures of the store's test files. One suite, both databases:
//! every test listed in a file's `suite!` is written once against `&dyn Store` and runs on
//! SQLite (a fresh file per test) always, and on PostgreSQL (a fresh schema per test)
//! when `RUNPERMIT_TEST_DATABASE_URL` is set, such as
//! `RUNPERMIT_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test`. Under `CI` the
//! variable is required: the PostgreSQL tests fail rather than skip without it.

#![allow(dead_code, reason = "each test file uses some of the shared fixtures")]

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{SystemTime, UNIX_EPOCH};

use runpermit_store::prelude::*;
use runpermit_store::{
    Application, AuditEvent, Member, Organization, Permit, PgStore, Review, Run, SqliteStore,
    StoreError, Token, UsageRecord, Write, open,
};
use sqlx::Connection as _;

pub const ENV: &str = "RUNPERMIT_TEST_DATABASE_URL";

/// One test's database: the store under test and raw access to the same database.
#[derive(Clone)]
pub struct Db {
    pub store: Arc<dyn Store>,
    pub backend: Backend,
    pub url: String,
}

#[derive(Clone)]
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Db {
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Runs one raw SQL statement, bypassing the store.
    pub async fn raw(&self, sql: &'static str) -> Result<u64, String> {
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
    pub async fn reopen(&self) -> Arc<dyn Store> {
        open(&self.url).await.expect("reopen the test database")
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

pub fn unique_name() -> String {
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
pub async fn run_sqlite<F, Fut>(test: F)
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
pub async fn run_postgres<F, Fut>(test: F)
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

/// For each `async fn NAME(db: Db)` listed (at the root of the test file), a test `sqlite::NAME` and a test `postgres::NAME`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::common::run_sqlite(crate::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::common::run_postgres(crate::$name).await;
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Fixtures shared by several test files

pub fn org(id: &str, kind: &str, at: i64) -> Organization {
    Organization {
        id: id.into(),
        name: format!("{id} name"),
        kind: kind.parse().expect("an organization kind"),
        created_at: at,
    }
}

pub fn member(id: &str, org_id: &str, role: &str, at: i64) -> Member {
    Member {
        id: id.into(),
        org_id: org_id.into(),
        name: format!("{id} name"),
        role: role.parse().expect("a role"),
        created_at: at,
    }
}

pub fn hash(n: u64) -> String {
    format!("{n:064x}")
}

pub fn token(id: &str, member_id: &str, n: u64, expires_at: Option<i64>) -> Token {
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

pub fn application(id: &str, org_id: &str, created_by: &str, at: i64) -> Application {
    Application {
        id: id.into(),
        org_id: org_id.into(),
        created_by: created_by.into(),
        status: "draft".parse().expect("a status"),
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

pub fn review(id: &str, application_id: &str, at: i64) -> Review {
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

pub fn permit(id: &str, application_id: &str, at: i64) -> Permit {
    Permit {
        id: id.into(),
        application_id: application_id.into(),
        run_id: format!("run_{id}"),
        org_id: "o_dev".into(),
        status: "intent".parse().expect("a status"),
        claims_json: r#"{"budget":1e26}"#.into(),
        token: None,
        kid: "k1".into(),
        policy_version: "policy/1".into(),
        created_at: at,
        issued_at: None,
    }
}

pub fn audit(action: &str, subject: &str, at: i64) -> AuditEvent {
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
pub async fn seed(store: &dyn Store) {
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
pub async fn seed_application(store: &dyn Store) {
    seed(store).await;
    store
        .commit(vec![Write::InsertApplication(application(
            "app_1", "o_dev", "m_app", 100,
        ))])
        .await
        .expect("seed application");
}

#[track_caller]
pub fn expect_err(result: Result<(), StoreError>) -> StoreError {
    match result {
        Ok(()) => panic!("expected an error, got Ok"),
        Err(e) => e,
    }
}

/// 2^50 FLOP: sums of small multiples are exact in any order, so sums can be compared exactly.
pub const UNIT: f64 = 1_125_899_906_842_624.0;

pub fn run(id: &str, permit_id: &str, at: i64) -> Run {
    Run {
        id: id.into(),
        permit_id: permit_id.into(),
        org_id: "o_dev".into(),
        status: "active".parse().expect("a status"),
        reason: String::new(),
        status_since: at,
        tranche: 1,
        released_flop: 64.0 * UNIT,
        budget_flop: 256.0 * UNIT,
        cumulative_flop: 0.0,
        cumulative_upper_flop: 0.0,
        cumulative_lower_flop: 0.0,
        measured_flop: 0.0,
        measured_capacity_flop: 0.0,
        first_usage_s: None,
        last_usage_s: None,
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
pub async fn seed_runs(store: &dyn Store) {
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
pub fn digest_of(token: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in token.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}").repeat(4)
}

/// Report `seq` of `provider` about `run_id`: `units` × [`UNIT`] FLOP, half that as the lower
/// bound and twice as the upper, received at `10_000 + seq`.
pub fn usage(provider: &str, run_id: &str, seq: i64, units: f64) -> UsageRecord {
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
        capacity_flop: 0.0,
        digest: digest_of(&token),
        token,
        received_at: 10_000 + seq,
    }
}

pub(crate) use suite;
