//! One deployment, one log key and one set of permit keys (issue 11, finding 7): authorities
//! with their own data directories on one database, on a shared SQLite file and (with
//! `RUNPERMIT_TEST_DATABASE_URL`) on PostgreSQL. The first start records its keys; a process
//! with other keys is refused with a message saying how to share them; a process with the
//! same keys starts; two first starts at once record one deployment; rotation still works,
//! is recorded, and retires the old key for every process.

mod common;

use std::path::{Path, PathBuf};

use runpermit_authority::domain::clock::FixedClock;
use runpermit_authority::setup::bootstrap::{prepare, rotate_key};
use runpermit_authority::setup::{BootstrapError, Setup};
use runpermit_authority::testing::T0_MS;

/// A directory of its own for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "runpermit-deployment-{name}-{}",
            runpermit_authority::domain::ids::new_id("t")
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An authority process's settings: its own data directory, the shared database.
fn setup(data_dir: PathBuf, database_url: &str) -> Setup {
    Setup {
        data_dir,
        database_url: Some(database_url.to_owned()),
        signing_key: None,
        log_key: None,
        log_origin: None,
    }
}

fn clock() -> FixedClock {
    FixedClock::at_ms(T0_MS)
}

/// Copies the key files of one data directory into another.
fn copy_keys(from: &Path, to: &Path) {
    let keys = to.join("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    for name in [
        "permit-signing.pem",
        "log-signing.pem",
        "log-signing.origin",
    ] {
        std::fs::copy(from.join("keys").join(name), keys.join(name)).expect("copying a key");
    }
}

fn refusal(result: Result<impl std::fmt::Debug, BootstrapError>) -> String {
    match result {
        Err(e @ BootstrapError::Deployment { .. }) => e.to_string(),
        other => panic!("expected a refusal naming the deployment's keys, got {other:?}"),
    }
}

/// Every refusal says how to share the keys.
fn says_how_to_share(message: &str, data_dir: &Path) {
    for needle in [
        "log-signing.pem",
        "permit-signing.pem",
        "--signing-key",
        "--log-key",
        &data_dir.join("keys").display().to_string(),
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
}

async fn second_process_with_other_keys_is_refused(database_url: &str) {
    let scratch = Scratch::new("other-keys");
    let (a, b) = (scratch.path("a"), scratch.path("b"));
    let first = prepare(&setup(a.clone(), database_url), &clock())
        .await
        .expect("the first start records the deployment");
    assert!(first.recorded_deployment);
    let vkey = first.log_key.verifier_key();
    let recorded = first.store.deployment().await.unwrap().expect("recorded");
    assert_eq!(recorded.log_vkey, vkey);
    assert_eq!(recorded.log_origin, first.log_key.name());
    let keys = first.store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid, first.signer.kid());

    // A second data directory with no keys: refused, and no key file is created (it would be
    // a second key).
    let message = refusal(prepare(&setup(b.clone(), database_url), &clock()).await);
    assert!(
        message.contains(&vkey),
        "names the recorded log key: {message}"
    );
    says_how_to_share(&message, &b);
    assert!(!b.join("keys/log-signing.pem").exists());
    assert!(!b.join("keys/permit-signing.pem").exists());

    // Keys of its own (a deployment of its own, pointed at this database): refused, naming
    // both log keys.
    let c = scratch.path("c");
    let elsewhere = format!("sqlite://{}", scratch.path("elsewhere.db").display());
    let other = prepare(&setup(c.clone(), &elsewhere), &clock())
        .await
        .expect("another deployment on another database");
    let message = refusal(prepare(&setup(c.clone(), database_url), &clock()).await);
    assert!(
        message.contains(&vkey) && message.contains(&other.log_key.verifier_key()),
        "{message}"
    );
    says_how_to_share(&message, &c);

    // The deployment's log key but a permit key of its own: refused, naming the kids.
    let d = scratch.path("d");
    copy_keys(&a, &d);
    std::fs::copy(
        c.join("keys/permit-signing.pem"),
        d.join("keys/permit-signing.pem"),
    )
    .expect("copy");
    let message = refusal(prepare(&setup(d.clone(), database_url), &clock()).await);
    assert!(
        message.contains(other.signer.kid())
            && message.contains(first.signer.kid())
            && message.contains("not one of this deployment's"),
        "{message}"
    );
    says_how_to_share(&message, &d);

    // Nothing changed: one log key, one permit key.
    assert_eq!(
        first.store.deployment().await.unwrap().expect("recorded"),
        recorded
    );
    assert_eq!(first.store.signing_keys().await.unwrap(), keys);

    // The deployment's key files, copied: starts, and records nothing new.
    let e = scratch.path("e");
    copy_keys(&a, &e);
    let same = prepare(&setup(e, database_url), &clock())
        .await
        .expect("the same keys start");
    assert!(!same.recorded_deployment);
    assert_eq!(same.log_key.verifier_key(), vkey);
    assert_eq!(same.signer.kid(), first.signer.kid());
    // Or pointed at with --signing-key and --log-key.
    let pointed = Setup {
        signing_key: Some(a.join("keys/permit-signing.pem")),
        log_key: Some(a.join("keys/log-signing.pem")),
        ..setup(scratch.path("f"), database_url)
    };
    prepare(&pointed, &clock())
        .await
        .expect("key paths pointing at the deployment's files");
    // And the first process restarts as before.
    prepare(&setup(a, database_url), &clock())
        .await
        .expect("a restart");
    assert_eq!(first.store.signing_keys().await.unwrap(), keys);
}

async fn first_starts_at_once_record_one_deployment(database_url: &str) {
    let scratch = Scratch::new("race");
    let (a, b) = (scratch.path("a"), scratch.path("b"));
    let (sa, sb) = (
        setup(a.clone(), database_url),
        setup(b.clone(), database_url),
    );
    let (clock_a, clock_b) = (clock(), clock());
    let (ra, rb) = tokio::join!(prepare(&sa, &clock_a), prepare(&sb, &clock_b));
    let (winner, loser) = match (ra, rb) {
        (Ok(w), Err(l)) => (w, (l, b)),
        (Err(l), Ok(w)) => (w, (l, a)),
        (ra, rb) => panic!("exactly one of two first starts wins: {ra:?} {rb:?}"),
    };
    let (error, loser_dir) = loser;
    let message = refusal(Err::<(), _>(error));
    says_how_to_share(&message, &loser_dir);
    let recorded = winner.store.deployment().await.unwrap().expect("recorded");
    assert_eq!(recorded.log_vkey, winner.log_key.verifier_key());
    let kids: Vec<String> = winner
        .store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    assert_eq!(kids, [winner.signer.kid()], "only the winner's permit key");
}

async fn rotation_is_recorded_and_retires_the_key_everywhere(database_url: &str) {
    let scratch = Scratch::new("rotate");
    let (a, b) = (scratch.path("a"), scratch.path("b"));
    let first = prepare(&setup(a.clone(), database_url), &clock())
        .await
        .expect("first start");
    // A second process shares the keys, as the refusal says to.
    copy_keys(&a, &b);
    prepare(&setup(b.clone(), database_url), &clock())
        .await
        .expect("shared keys");

    let rotation = rotate_key(&setup(a.clone(), database_url), &clock())
        .await
        .expect("rotation");
    assert_eq!(rotation.retired_kid, first.signer.kid());
    assert!(rotation.retired_path.is_file());
    let keys = first.store.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let retired = keys.iter().find(|k| k.kid == rotation.retired_kid).unwrap();
    let current = keys.iter().find(|k| k.kid == rotation.new_kid).unwrap();
    assert_eq!(retired.retired_at, Some(T0_MS));
    assert_eq!(current.retired_at, None);
    let subject = format!("key/{}", rotation.new_kid);
    let audit = first.store.audit(Some(&subject), 0, 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].action, "key.rotate");

    // The rotating process restarts with the new key; the log key is unchanged.
    let restarted = prepare(&setup(a.clone(), database_url), &clock())
        .await
        .expect("restart after rotation");
    assert_eq!(restarted.signer.kid(), rotation.new_kid);
    assert_eq!(
        restarted.log_key.verifier_key(),
        first.log_key.verifier_key()
    );

    // The other process, restarted with the retired key file, is refused and told where the
    // new key is; rotating from the retired key is refused too.
    let message = refusal(prepare(&setup(b.clone(), database_url), &clock()).await);
    assert!(
        message.contains("retired") && message.contains(&rotation.new_kid),
        "{message}"
    );
    assert!(message.contains("key rotate"), "{message}");
    let message = refusal(rotate_key(&setup(b.clone(), database_url), &clock()).await);
    assert!(message.contains("retired"), "{message}");
    assert_eq!(first.store.signing_keys().await.unwrap().len(), 2);
    // With the new key file copied, it starts.
    copy_keys(&a, &b);
    prepare(&setup(b, database_url), &clock())
        .await
        .expect("the new key copied");

    // A second rotation works as the first.
    let again = rotate_key(&setup(a, database_url), &clock())
        .await
        .expect("second rotation");
    assert_eq!(again.retired_kid, rotation.new_kid);
    let current: Vec<_> = first
        .store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| k.kid)
        .collect();
    assert_eq!(current, [again.new_kid]);
}

async fn rotation_needs_a_deployment(database_url: &str) {
    let scratch = Scratch::new("rotate-empty");
    let message = refusal(rotate_key(&setup(scratch.path("a"), database_url), &clock()).await);
    assert!(message.contains("runpermit init"), "{message}");
    assert!(!scratch.path("a/keys/permit-signing.pem").exists());
}

/// A database written before the deployment record existed: the first start after the
/// upgrade records the keys already in use, and refuses a log key that did not sign the
/// stored checkpoint.
#[tokio::test]
async fn a_database_from_before_the_record_is_adopted() {
    let scratch = Scratch::new("adopt");
    let a = scratch.path("a");
    let first = prepare(&setup(a.clone(), &sqlite_url(&scratch)), &clock())
        .await
        .expect("first start");
    // What an older version left: keys and a signed checkpoint, but no deployment row (built
    // here in a second database with the same keys: the row cannot be deleted).
    let older = format!("sqlite://{}", scratch.path("older.db").display());
    let store = runpermit_store::open(&older).await.unwrap();
    store.migrate().await.unwrap();
    store
        .commit(vec![runpermit_store::Write::InsertSigningKey(
            runpermit_store::SigningKey {
                kid: first.signer.kid().to_owned(),
                public_key: first.signer.public().as_bytes().to_vec(),
                created_at: T0_MS,
                retired_at: None,
            },
        )])
        .await
        .unwrap();
    let note = runpermit_log::sign_checkpoint(
        &runpermit_log::Checkpoint {
            origin: first.log_key.name().to_owned(),
            size: 0,
            root_hash: runpermit_log::EMPTY_ROOT,
        },
        &first.log_key,
    )
    .unwrap();
    store
        .sequence_log(runpermit_store::LogBatch {
            expected_size: 0,
            entries: Vec::new(),
            hashes: Vec::new(),
            size: 0,
            root: runpermit_log::EMPTY_ROOT.0.to_vec(),
            checkpoint: note,
            at: T0_MS,
        })
        .await
        .unwrap();

    // Another log key (same origin, same permit key): its checkpoint says otherwise.
    let b = scratch.path("b");
    let fresh = format!("sqlite://{}", scratch.path("fresh.db").display());
    prepare(&setup(b.clone(), &fresh), &clock())
        .await
        .expect("keys of its own");
    std::fs::copy(
        a.join("keys/permit-signing.pem"),
        b.join("keys/permit-signing.pem"),
    )
    .expect("copy");
    let message = refusal(prepare(&setup(b, &older), &clock()).await);
    assert!(message.contains("stored checkpoint"), "{message}");
    assert_eq!(store.deployment().await.unwrap(), None);

    // The keys in use: adopted.
    let c = scratch.path("c");
    copy_keys(&a, &c);
    let adopted = prepare(&setup(c, &older), &clock()).await.expect("adopted");
    assert!(adopted.recorded_deployment);
    assert_eq!(
        store.deployment().await.unwrap().map(|d| d.log_vkey),
        Some(first.log_key.verifier_key())
    );
}

fn sqlite_url(scratch: &Scratch) -> String {
    format!("sqlite://{}", scratch.path("shared.db").display())
}

#[tokio::test]
async fn other_keys_are_refused_on_a_shared_sqlite_file() {
    let db = Scratch::new("db");
    second_process_with_other_keys_is_refused(&sqlite_url(&db)).await;
}

#[tokio::test]
async fn other_keys_are_refused_on_postgresql() {
    if let Some(db) = common::PgSchema::create("deploy_keys") {
        second_process_with_other_keys_is_refused(&db.url).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_starts_at_once_on_sqlite() {
    for _ in 0..4 {
        let db = Scratch::new("db");
        first_starts_at_once_record_one_deployment(&sqlite_url(&db)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_starts_at_once_on_postgresql() {
    for _ in 0..4 {
        let Some(db) = common::PgSchema::create("deploy_race") else {
            return;
        };
        first_starts_at_once_record_one_deployment(&db.url).await;
    }
}

#[tokio::test]
async fn rotation_on_sqlite() {
    let db = Scratch::new("db");
    rotation_is_recorded_and_retires_the_key_everywhere(&sqlite_url(&db)).await;
    let db = Scratch::new("db");
    rotation_needs_a_deployment(&sqlite_url(&db)).await;
}

#[tokio::test]
async fn rotation_on_postgresql() {
    if let Some(db) = common::PgSchema::create("deploy_rotate") {
        rotation_is_recorded_and_retires_the_key_everywhere(&db.url).await;
    }
    if let Some(db) = common::PgSchema::create("deploy_rotate_empty") {
        rotation_needs_a_deployment(&db.url).await;
    }
}
