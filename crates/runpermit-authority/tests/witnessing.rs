//! The authority's witness client against real witnesses (`runpermit-witness` on loopback
//! HTTP, SQLite state): cosignatures are asked for, verified and stored; the published
//! checkpoint and proof bundles carry the latest checkpoint that meets the quorum; a witness
//! that is down only lags; one that lost its answer is caught up through its 409; and a
//! second history under the same log key is refused.

use std::sync::Arc;
use std::time::Duration;

use runpermit_authority::domain::log::{self as tlog, LogService};
use runpermit_authority::domain::witnessing::witness_once;
use runpermit_authority::testing::TestAuthority;
use runpermit_log::{
    CosignerKey, DecisionKind, LogEntry, LogKey, ProofBundle, VerifierKey, WitnessPolicy,
};
use runpermit_witness::{SystemClock, TrustedLogs, Witness};

const ORIGIN: &str = "authority.test/log";

fn log_key() -> LogKey {
    LogKey::from_seed(ORIGIN, &[9; 32]).expect("log key")
}

/// A witness on a loopback port, with its state in `dir`.
struct LocalWitness {
    url: String,
    vkey: String,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LocalWitness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn witness(name: &str, seed: u8) -> LocalWitness {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = runpermit_witness::Store::open(&dir.path().join("witness.db"))
        .await
        .expect("witness store");
    let key = CosignerKey::from_seed(name, &[seed; 32]).expect("witness key");
    let logs = TrustedLogs::new([VerifierKey::parse(&log_key().verifier_key()).expect("vkey")]);
    let witness = Arc::new(Witness::new(key, logs, store, Arc::new(SystemClock)));
    let vkey = witness.verifier_key();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = runpermit_witness::serve(witness, listener, std::future::pending()).await;
    });
    LocalWitness {
        url,
        vkey,
        _dir: dir,
        task,
    }
}

/// A policy naming this log and `witnesses` (name, vkey, url), quorum 2 of them.
fn policy(witnesses: &[(&str, &str, &str)]) -> WitnessPolicy {
    policy_of(witnesses, 2)
}

/// A policy naming this log and `witnesses`, quorum `k` of them.
fn policy_of(witnesses: &[(&str, &str, &str)], k: usize) -> WitnessPolicy {
    let mut text = format!("log {}\n", log_key().verifier_key());
    for (name, vkey, url) in witnesses {
        text.push_str(&format!("witness {name} {vkey} {url}\n"));
    }
    let names: Vec<&str> = witnesses.iter().map(|w| w.0).collect();
    text.push_str(&format!("group q {k} {}\nquorum q\n", names.join(" ")));
    WitnessPolicy::parse(&text).expect("policy")
}

/// An authority with its own SQLite file in `dir` (in-memory databases of one process are
/// shared), signing with the test log key and asking `policy`'s witnesses.
async fn authority(dir: &tempfile::TempDir, policy: WitnessPolicy) -> TestAuthority {
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("authority.db").display()
    );
    TestAuthority::with_log(
        Some(&url),
        LogService::new(log_key(), Duration::from_millis(20)).with_witnesses(Some(policy)),
    )
    .await
}

/// Queues `n` decision entries (marked `tag`) and sequences them; returns the new size.
async fn append(a: &TestAuthority, tag: &str, n: usize) -> u64 {
    let writes = (0..n)
        .map(|i| {
            let entry = LogEntry::Decision {
                application_id: format!("app_{tag}_{i}"),
                decision: DecisionKind::Approved,
                tier: "standard".into(),
                policy_version: "2026.1".into(),
                reason: None,
            };
            tlog::queue(&format!("application/{tag}{i}"), &entry, 1_796_083_200_000)
                .expect("encode")
        })
        .collect();
    a.state.store.commit(writes).await.expect("queue");
    // The first round only signs the empty tree; go on until the queue is empty.
    loop {
        let n = tlog::sequence_once(&a.state).await.expect("sequence");
        let queued = a.state.store.log_queue(1).await.expect("queue");
        if n == 0 && queued.is_empty() {
            break;
        }
    }
    let state = a.state.store.log_state().await.expect("state");
    state.map_or(0, |s| s.size as u64)
}

async fn published(a: &TestAuthority) -> tlog::Published {
    tlog::published_checkpoint(&a.state)
        .await
        .expect("published")
        .expect("a checkpoint")
}

#[tokio::test]
async fn witnesses_cosign_and_the_quorum_checkpoint_is_published() {
    let (w1, w2, w3) = (
        witness("w1.test/w", 1).await,
        witness("w2.test/w", 2).await,
        witness("w3.test/w", 3).await,
    );
    let policy = policy(&[
        ("w1", &w1.vkey, &w1.url),
        ("w2", &w2.vkey, &w2.url),
        ("w3", &w3.vkey, &w3.url),
    ]);
    let dir = tempfile::tempdir().expect("dir");
    let a = authority(&dir, policy.clone()).await;
    let vkey = log_key().verifier_key();

    let size = append(&a, "a", 5).await;
    assert_eq!(witness_once(&a.state).await.expect("round"), 3);
    let p = published(&a).await;
    assert!(p.witnessed);
    assert_eq!(p.size as u64, size);
    let witnessed = policy
        .verify_checkpoint(&p.checkpoint, &vkey)
        .expect("quorum");
    assert_eq!(witnessed.cosigned_by.len(), 3);

    // The next checkpoint is asked for from the size each witness cosigned (a real
    // consistency proof), and a proof bundle carries it.
    let size = append(&a, "b", 7).await;
    assert_eq!(witness_once(&a.state).await.expect("round"), 3);
    assert_eq!(published(&a).await.size as u64, size);
    let bundle = tlog::proof_bundle(&a.state, 8).await.expect("bundle");
    let text = bundle.to_string();
    let parsed = ProofBundle::parse(&text).expect("parse");
    parsed.verify_entry(&vkey).expect("inclusion");
    policy
        .verify_checkpoint(&parsed.checkpoint, &vkey)
        .expect("the bundle's checkpoint meets the quorum");
    // Nothing new: nobody is asked again.
    assert_eq!(witness_once(&a.state).await.expect("round"), 0);
    let progress = a.state.store.witness_progress().await.expect("progress");
    assert!(
        progress.iter().all(|c| c.size as u64 == size),
        "{progress:?}"
    );
}

#[tokio::test]
async fn a_witness_that_is_down_lags_and_without_quorum_the_last_witnessed_checkpoint_stays() {
    let (w1, w2) = (witness("w1.test/w", 1).await, witness("w2.test/w", 2).await);
    // w3 listens nowhere.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let w3_vkey = CosignerKey::from_seed("w3.test/w", &[3; 32])
        .expect("key")
        .verifier_key();
    let policy = policy(&[
        ("w1", &w1.vkey, &w1.url),
        ("w2", &w2.vkey, &w2.url),
        ("w3", &w3_vkey, &closed),
    ]);
    let dir = tempfile::tempdir().expect("dir");
    let a = authority(&dir, policy.clone()).await;
    let first = append(&a, "a", 3).await;
    assert_eq!(witness_once(&a.state).await.expect("round"), 2);
    let p = published(&a).await;
    assert!(p.witnessed, "two of three make the quorum");
    assert_eq!(p.size as u64, first);

    // w2 goes down too: new entries are logged, but the published checkpoint stays the last
    // one with a quorum; a bundle for a new entry comes against the latest checkpoint,
    // which does not meet the quorum (a verifier requiring it refuses, naming w2 and w3).
    drop(w2);
    append(&a, "b", 4).await;
    assert_eq!(witness_once(&a.state).await.expect("round"), 1);
    let p = published(&a).await;
    assert_eq!(p.size as u64, first);
    assert!(p.witnessed);
    let bundle = tlog::proof_bundle(&a.state, first as i64)
        .await
        .expect("bundle");
    let err = policy
        .verify_checkpoint(&bundle.checkpoint, &log_key().verifier_key())
        .expect_err("no quorum");
    let message = err.to_string();
    assert!(
        message.contains("w2") && message.contains("w3"),
        "{message}"
    );

    // The quorum stays lost for longer than the sizes searched (w1 alone cosigns 70 more
    // checkpoints): the last witnessed checkpoint is still the one published.
    for i in 0..70 {
        append(&a, &format!("c{i}"), 1).await;
        assert_eq!(witness_once(&a.state).await.expect("round"), 1);
    }
    let p = published(&a).await;
    assert_eq!((p.size as u64, p.witnessed), (first, true));
    policy
        .verify_checkpoint(&p.checkpoint, &log_key().verifier_key())
        .expect("still the witnessed one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_ahead_of_what_was_stored_is_caught_up_through_its_409() {
    let w1 = witness("w1.test/w", 1).await;
    let policy = policy_of(&[("w1", &w1.vkey, &w1.url)], 1);
    let dir = tempfile::tempdir().expect("dir");
    let a = authority(&dir, policy).await;
    append(&a, "a", 3).await;
    // The witness cosigns size 3 but the authority never stores the answer (as if it
    // crashed after sending): hand the checkpoint to the witness directly.
    let state = a
        .state
        .store
        .log_state()
        .await
        .expect("state")
        .expect("some");
    let agent = runpermit_authority::domain::witnessing::agent(Duration::from_secs(5));
    let body = format!("old 0\n\n{}", state.checkpoint);
    let mut answer = agent
        .post(&format!("{}/add-checkpoint", w1.url))
        .send(body.as_bytes())
        .expect("post");
    assert_eq!(answer.status().as_u16(), 200);
    let _ = answer.body_mut().read_to_string();
    // The client starts from 0, is told 3, and gets its cosignature from there.
    append(&a, "b", 2).await;
    assert_eq!(witness_once(&a.state).await.expect("round"), 1);
    assert!(published(&a).await.witnessed);
}

#[tokio::test]
async fn witnesses_refuse_a_second_history_under_the_same_log_key() {
    let (w1, w2) = (witness("w1.test/w", 1).await, witness("w2.test/w", 2).await);
    let policy = policy(&[("w1", &w1.vkey, &w1.url), ("w2", &w2.vkey, &w2.url)]);
    let (honest_dir, forked_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let honest = authority(&honest_dir, policy.clone()).await;
    append(&honest, "public", 6).await;
    assert_eq!(witness_once(&honest.state).await.expect("round"), 2);

    // Another database, the same log key: a history shown to someone else.
    let forked = authority(&forked_dir, policy.clone()).await;
    for n in [4, 5] {
        append(&forked, &format!("private{n}"), n).await;
        assert_eq!(witness_once(&forked.state).await.expect("round"), 0);
    }
    let p = published(&forked).await;
    assert!(!p.witnessed);
    let bundle = tlog::proof_bundle(&forked.state, 0).await.expect("bundle");
    let err = policy
        .verify_checkpoint(&bundle.checkpoint, &log_key().verifier_key())
        .expect_err("the fork has no cosignatures");
    assert!(err.to_string().contains("w1"), "{err}");
    // The honest log is still witnessed after the attempt.
    append(&honest, "more", 1).await;
    assert_eq!(witness_once(&honest.state).await.expect("round"), 2);
}
