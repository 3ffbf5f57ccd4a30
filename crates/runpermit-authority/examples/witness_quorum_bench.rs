//! The delay from a new checkpoint to its quorum: three witnesses (`runpermit-witness`, each
//! with its own SQLite file, `synchronous=FULL`) on loopback HTTP, an authority on a SQLite
//! file asking them through its background witness client (`run_witnessing`, woken by each
//! sequencing round), and a 2-of-3 policy. Each round queues one entry, sequences it (the
//! checkpoint is signed and committed), then polls until the published checkpoint is that
//! one with a quorum of cosignatures.
//!
//! `cargo run --release -p runpermit-authority --example witness_quorum_bench -- [ROUNDS] [QUORUM]`
//! (default 300 rounds, quorum 2; 3 asks for all three).

use std::sync::Arc;
use std::time::{Duration, Instant};

use runpermit_authority::domain::log::{self as tlog, LogService};
use runpermit_authority::domain::witnessing::run_witnessing;
use runpermit_authority::testing::TestAuthority;
use runpermit_log::{CosignerKey, DecisionKind, LogEntry, LogKey, VerifierKey, WitnessPolicy};
use runpermit_witness::{SystemClock, TrustedLogs, Witness};

const ORIGIN: &str = "bench.example/log";

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(300, |s| s.parse().expect("ROUNDS"));
    let quorum: usize = args.next().map_or(2, |s| s.parse().expect("QUORUM"));
    let dir = tempfile::tempdir().expect("temp dir");
    let log_key = || LogKey::from_seed(ORIGIN, &[9; 32]).expect("log key");
    let vkey = log_key().verifier_key();

    let mut policy = format!("log {vkey}\n");
    for i in 1..=3u8 {
        let store = runpermit_witness::Store::open(&dir.path().join(format!("w{i}.db")))
            .await
            .expect("witness store");
        let key = CosignerKey::from_seed(&format!("w{i}.bench.example"), &[i; 32]).expect("key");
        let logs = TrustedLogs::new([VerifierKey::parse(&vkey).expect("vkey")]);
        let witness = Arc::new(Witness::new(key, logs, store, Arc::new(SystemClock)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        policy.push_str(&format!("witness w{i} {} {url}\n", witness.verifier_key()));
        tokio::spawn(async move {
            let _ = runpermit_witness::serve(witness, listener, std::future::pending()).await;
        });
    }
    policy.push_str(&format!("group q {quorum} w1 w2 w3\nquorum q\n"));
    let policy = WitnessPolicy::parse(&policy).expect("policy");

    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("authority.db").display()
    );
    let authority = TestAuthority::with_log(
        Some(&url),
        LogService::new(log_key(), Duration::from_millis(100)).with_witnesses(Some(policy)),
    )
    .await;
    let state = authority.state.authority.clone();
    tokio::spawn(run_witnessing(state.clone(), std::future::pending()));
    // The first checkpoint (the empty tree).
    tlog::sequence_once(&state).await.expect("sequence");

    let mut delays = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let entry = LogEntry::Decision {
            application_id: format!("app_{i:032x}"),
            decision: DecisionKind::Approved,
            tier: "standard".into(),
            policy_version: "2026.1".into(),
            reason: None,
        };
        state
            .store
            .commit(vec![
                tlog::queue(&format!("application/{i}"), &entry, 1_796_083_200_000)
                    .expect("encode"),
            ])
            .await
            .expect("queue");
        assert_eq!(tlog::sequence_once(&state).await.expect("sequence"), 1);
        let signed = Instant::now();
        let size = i as i64 + 1;
        loop {
            let p = tlog::published_checkpoint(&state)
                .await
                .expect("published")
                .expect("a checkpoint");
            if p.witnessed && p.size >= size {
                break;
            }
            assert!(
                signed.elapsed() < Duration::from_secs(30),
                "no quorum for size {size}"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        delays.push(signed.elapsed());
    }
    delays.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
    println!(
        "checkpoint -> {quorum}-of-3 quorum published, {rounds} checkpoints: p50 {:.2} ms, \
         p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(delays[delays.len() - 1])
    );
}
