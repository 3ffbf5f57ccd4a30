//! Throughput of the transparency log's storage: queues `N` entries (in batches of 1,000,
//! as many decisions' batches would), then sequences them in batches of up to 4,096 the way
//! the sequencer does (`log_queue`, `sequence_log` with the tlog stored hashes they add), and
//! prints entries per second for each phase. Hashes are stand-ins: this measures the store.
//!
//! `cargo run --release -p runpermit-store --example sequencing_bench -- URL [N]`, where URL is a
//! fresh database: `sqlite:///tmp/bench.db` or `postgres://postgres@127.0.0.1:5432/bench`.

use std::time::Instant;

use runpermit_store::{LogBatch, SequencedEntry, StoreError, Write};

const QUEUE_BATCH: usize = 1_000;
const SEQUENCE_BATCH: i64 = 4_096;
const ENTRY_BYTES: usize = 400;

fn stored_hash_count(n: i64) -> i64 {
    2 * n - i64::from(n.count_ones())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), StoreError> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "sqlite:///tmp/runpermit-log-bench.db".to_owned());
    let n: usize = args
        .next()
        .map_or(100_000, |n| n.parse().expect("N: a number"));
    let store = runpermit_store::open(&url).await?;
    store.migrate().await?;
    let mut size = store.log_state().await?.map_or(0, |s| s.size);

    let started = Instant::now();
    let mut queued = 0;
    while queued < n {
        let writes = (queued..n.min(queued + QUEUE_BATCH))
            .map(|i| {
                let mut entry = format!("{{\"n\":{i},\"pad\":\"").into_bytes();
                entry.resize(ENTRY_BYTES - 2, b'x');
                entry.extend_from_slice(b"\"}");
                Write::QueueLogEntry {
                    subject: format!("permit/per_{}", i % 50_000),
                    entry,
                    at: i as i64,
                }
            })
            .collect::<Vec<_>>();
        queued += writes.len();
        store.commit(writes).await?;
    }
    let queue_secs = started.elapsed().as_secs_f64();
    println!(
        "queued     {n} entries in {queue_secs:.2} s: {:.0} entries/s",
        n as f64 / queue_secs
    );

    let started = Instant::now();
    let (mut sequenced, mut batches) = (0, 0);
    loop {
        let queue = store.log_queue(SEQUENCE_BATCH).await?;
        if queue.is_empty() {
            break;
        }
        let new_size = size + queue.len() as i64;
        let batch = LogBatch {
            expected_size: size,
            hashes: (stored_hash_count(size)..stored_hash_count(new_size))
                .map(|i| (i, [i.to_be_bytes(); 4].concat()))
                .collect(),
            entries: queue
                .into_iter()
                .enumerate()
                .map(|(i, q)| SequencedEntry {
                    queue_id: q.id,
                    index: size + i as i64,
                    subject: q.subject,
                    entry: q.entry,
                })
                .collect(),
            size: new_size,
            root: vec![0; 32],
            checkpoint: format!("bench\n{new_size}\n"),
            at: new_size,
        };
        sequenced += batch.entries.len();
        batches += 1;
        store.sequence_log(batch).await?;
        size = new_size;
    }
    let sequence_secs = started.elapsed().as_secs_f64();
    println!(
        "sequenced  {sequenced} entries in {batches} batches in {sequence_secs:.2} s: {:.0} entries/s",
        sequenced as f64 / sequence_secs
    );
    let started = Instant::now();
    let indexes: Vec<i64> = (0..stored_hash_count(size).min(100_000)).collect();
    let hashes = store.log_hashes(&indexes).await?;
    println!(
        "read       {} hashes in {:.3} s",
        hashes.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
