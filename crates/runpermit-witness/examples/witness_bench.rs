//! How many `add-checkpoint` requests per second a witness answers, durably (SQLite WAL,
//! `synchronous=FULL`: each answer follows an fsync'd commit), over loopback HTTP with
//! keep-alive, for real growing trees: each request appends entries to its log, signs the
//! new checkpoint and sends the real consistency proof from the previous one.
//!
//! ```text
//! cargo run --release -p runpermit-witness --example witness_bench -- [REQUESTS] [LOGS] [ENTRIES]
//! ```
//!
//! REQUESTS per run (default 2000), LOGS concurrent logs in the second run (default 4, one
//! client thread each), ENTRIES appended per request (default 16). The database lives in a
//! temporary folder (on the file system of the system's temporary directory).

use std::sync::Arc;
use std::time::{Duration, Instant};

use runpermit_log::{
    Checkpoint, CosignerKey, EMPTY_ROOT, Hash, LogKey, VerifierKey, append, consistency_proof,
    leaf_hash, sign_checkpoint,
};
use runpermit_witness::{Store, SystemClock, TrustedLogs, Witness};

struct Log {
    key: LogKey,
    stored: Vec<Hash>,
    size: u64,
    root: Hash,
}

impl Log {
    fn new(i: u8) -> Log {
        Log {
            key: LogKey::from_seed(&format!("bench.example/log{i}"), &[i; 32]).unwrap(),
            stored: Vec::new(),
            size: 0,
            root: EMPTY_ROOT,
        }
    }

    /// Appends `n` entries and returns the request from the previous size.
    fn next_request(&mut self, n: u64) -> String {
        let old = self.size;
        let leaves: Vec<Hash> = (old..old + n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect();
        let a = append(old, &leaves, &self.stored).unwrap();
        self.stored.extend(a.hashes);
        (self.size, self.root) = (a.size, a.root);
        let proof = if old == 0 {
            Vec::new()
        } else {
            consistency_proof(old, self.size, &self.stored).unwrap()
        };
        let checkpoint = Checkpoint {
            origin: self.key.name().to_owned(),
            size: self.size,
            root_hash: self.root,
        };
        let lines: String = proof.iter().map(|h| format!("{h}\n")).collect();
        format!(
            "old {old}\n{lines}\n{}",
            sign_checkpoint(&checkpoint, &self.key).unwrap()
        )
    }
}

/// Runs `requests` requests on `log` against `base`; returns each request's latency.
fn drive(base: &str, mut log: Log, requests: usize, entries: u64) -> Vec<Duration> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{base}/add-checkpoint");
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        let body = log.next_request(entries);
        let start = Instant::now();
        let mut response = agent.post(&url).send(&body).unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        latencies.push(start.elapsed());
        assert_eq!(response.status().as_u16(), 200, "{text}");
    }
    latencies
}

fn report(what: &str, wall: Duration, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{what}: {} requests in {:.2} s = {:.0} req/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        wall.as_secs_f64(),
        latencies.len() as f64 / wall.as_secs_f64(),
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let requests = args.next().unwrap_or(2000);
    let logs = args.next().unwrap_or(4).max(1);
    let entries = args.next().unwrap_or(16) as u64;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("witness.db");
    let vkeys: Vec<VerifierKey> = (0..=logs as u8)
        .map(|i| VerifierKey::parse(&Log::new(i).key.verifier_key()).unwrap())
        .collect();

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let store = Store::open(&db).await.unwrap();
            let key = CosignerKey::from_seed("bench.example/witness", &[42; 32]).unwrap();
            let witness = Witness::new(key, TrustedLogs::new(vkeys), store, Arc::new(SystemClock));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            runpermit_witness::serve(Arc::new(witness), listener, std::future::pending())
                .await
                .unwrap();
        });
    });
    let base = format!("http://{}", rx.recv().unwrap());
    println!(
        "witness on {base}, SQLite WAL synchronous=FULL in {}; {entries} entries appended per request",
        dir.path().display()
    );

    let start = Instant::now();
    let latencies = drive(&base, Log::new(0), requests, entries);
    report("sequential, 1 log", start.elapsed(), latencies);

    let start = Instant::now();
    let threads: Vec<_> = (1..=logs)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || drive(&base, Log::new(i as u8), requests / logs, entries))
        })
        .collect();
    let latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    report(
        &format!("concurrent, {logs} logs"),
        start.elapsed(),
        latencies,
    );
}
