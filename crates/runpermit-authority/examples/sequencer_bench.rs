//! Benchmark of the transparency log as the authority runs it: durable appends through the
//! sequencer (tree math, checkpoint signing and the store's transaction included), the time
//! from an append to its inclusion, and inclusion proofs served from the store.
//!
//! ```sh
//! cargo run --release -p runpermit-authority --example sequencer_bench -- sqlite:///tmp/bench.db 1000000 [INTERVAL_MS]
//! cargo run --release -p runpermit-authority --example sequencer_bench -- 'postgres://postgres@127.0.0.1/test?options=-c%20search_path%3Dbench' 1000000
//! ```
//!
//! The database must be empty (a new SQLite file, or a new PostgreSQL schema). Prints figures;
//! asserts nothing about time.

use std::time::{Duration, Instant};

use runpermit_authority::domain::log as tlog;
use runpermit_authority::testing::TestAuthority;
use runpermit_log::{DecisionKind, LogEntry, ProofBundle};

fn entry(i: u64) -> LogEntry {
    LogEntry::Decision {
        application_id: format!("app_{i:032x}"),
        decision: DecisionKind::Approved,
        tier: "standard".into(),
        policy_version: "2026.1".into(),
        reason: Some("the tier's permit is issued once the plan is complete".into()),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "sqlite::memory:".into());
    let n: u64 = args
        .next()
        .map(|s| s.parse().expect("N"))
        .unwrap_or(1_000_000);
    // The sequencing interval of `runpermit serve` by default.
    let interval_ms: u64 = args
        .next()
        .map(|s| s.parse().expect("interval in ms"))
        .unwrap_or(100);
    let authority =
        TestAuthority::with_interval(Some(&url), Duration::from_millis(interval_ms)).await;
    let state = authority.state.clone();
    let store = state.store.clone();
    println!("database: {}", url.split('?').next().unwrap_or(&url));

    // 1. Queue n entries, 1000 per transaction, as decisions would.
    let started = Instant::now();
    let mut i = 0;
    while i < n {
        let mut writes = Vec::with_capacity(1000);
        for _ in 0..1000.min(n - i) {
            writes.push(
                tlog::queue(&format!("application/{i}"), &entry(i), 1_796_083_200_000)
                    .expect("encode"),
            );
            i += 1;
        }
        store.commit(writes).await.expect("queue");
    }
    let queued = started.elapsed();
    println!(
        "queued {n} entries in {:.1} s: {:.0} entries/s",
        queued.as_secs_f64(),
        n as f64 / queued.as_secs_f64()
    );

    // 2. Sequence them all: durable appends through the sequencer.
    let started = Instant::now();
    let mut done = 0;
    while done < n as usize {
        done += tlog::sequence_once(&state).await.expect("sequence");
    }
    let sequenced = started.elapsed();
    println!(
        "sequenced {n} entries in {:.1} s: {:.0} durable appends/s (batches of {})",
        sequenced.as_secs_f64(),
        n as f64 / sequenced.as_secs_f64(),
        tlog::BATCH_LIMIT
    );
    println!(
        "queue + sequence: {:.0} entries/s end to end",
        n as f64 / (queued + sequenced).as_secs_f64()
    );

    // 3. Append-to-inclusion latency with a background sequencer at the default interval.
    let background = tokio::spawn(tlog::run_sequencer(
        state.authority.clone(),
        std::future::pending(),
    ));
    let mut latencies = Vec::new();
    for k in 0..50u64 {
        let subject = format!("latency/{k}");
        let started = Instant::now();
        store
            .commit(vec![
                tlog::queue(&subject, &entry(n + k), 1_796_083_200_000).expect("encode"),
            ])
            .await
            .expect("queue");
        while store.log_index(&subject).await.expect("index").is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    background.abort();
    latencies.sort();
    println!(
        "append → inclusion at a {} ms interval: median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        state.log.interval.as_millis(),
        latencies[25].as_secs_f64() * 1e3,
        latencies[45].as_secs_f64() * 1e3,
        latencies[49].as_secs_f64() * 1e3
    );

    // 4. Inclusion proofs served from the store at this size, and their verification.
    let size = store
        .log_state()
        .await
        .expect("state")
        .expect("a tree")
        .size;
    let mut built = Duration::ZERO;
    let mut verified = Duration::ZERO;
    let samples = 1000;
    for k in 0..samples {
        let index = (k * 7919 * 104_729) % size;
        let t = Instant::now();
        let bundle = tlog::proof_bundle(&state, index).await.expect("proof");
        built += t.elapsed();
        let text = bundle.to_string();
        let t = Instant::now();
        ProofBundle::parse(&text)
            .expect("parse")
            .verify_entry(&state.log.vkey)
            .expect("verify");
        verified += t.elapsed();
    }
    println!(
        "inclusion proof at {size} entries: {:.0} µs to build from the store (reads included), {:.0} µs to parse and verify (signature included)",
        built.as_secs_f64() * 1e6 / samples as f64,
        verified.as_secs_f64() * 1e6 / samples as f64
    );
}
