//! Log throughput and proof latency, in memory (no storage, no network):
//!
//! - appends at 10^6 entries: encoding, tree hashing, tile building and checkpoint signing,
//!   in sequencer-like batches;
//! - inclusion proof generation and verification at 10^6 entries, and a full proof bundle
//!   check (signature included);
//! - the same tree math at 10^8 entries, simulated with a hash reader that answers every
//!   stored hash of a tree of identical entries;
//! - `verify_log` of 10^5 entries (an auditor's first sync).
//!
//! Run: `cargo run --release -p runpermit-log --example log_bench`. It prints figures and
//! asserts nothing about time.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Instant;

use runpermit_compute::Flop;
use runpermit_log::{
    Checkpoint, Hash, HashReader, LogEntry, LogKey, ProofBundle, TileFetcher, TilePath, append,
    changed_tiles, encode, entries_tile, inclusion_proof, leaf_hash, node_hash, root,
    sign_checkpoint, tile_bytes, verify_inclusion, verify_log,
};

const NAME: &str = "log.example.org/runpermit";
const T0: i64 = 1_767_225_600;

fn entry(i: u64) -> LogEntry {
    match i % 4 {
        0 => LogEntry::UsageSummary {
            run_id: format!("run_{}", i % 1000),
            cumulative_flop: Flop::new(1e24 + i as f64 * 1e18).unwrap(),
            providers: 3,
            through: T0 + i as i64,
        },
        1 => LogEntry::TrancheReleased {
            permit_id: format!("pmt_{}", i % 1000),
            run_id: format!("run_{}", i % 1000),
            tranche: (i % 8) as u32 + 1,
            flop: Flop::new(2.5e24).unwrap(),
        },
        2 => LogEntry::PermitIssued {
            permit_id: format!("pmt_{i}"),
            application_id: format!("app_{i}"),
            run_id: format!("run_{i}"),
            holder_org_id: "org_lab".into(),
            token: format!(
                "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJqdGkiOiJwbXRf{i}In0.{}",
                "s".repeat(86)
            ),
            flop_budget: Flop::new(4e25).unwrap(),
            nbf: T0,
            exp: T0 + 86_400 * 180,
            policy_version: "2026-01".into(),
        },
        _ => LogEntry::RunPaused {
            permit_id: format!("pmt_{}", i % 1000),
            run_id: format!("run_{}", i % 1000),
            reason: "milestone 3 evaluation due".into(),
        },
    }
}

/// xorshift64*: reproducible indexes without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn per_second(n: u64, secs: f64) -> String {
    format!("{:>12.0}/s", n as f64 / secs)
}

fn main() {
    let key = LogKey::from_seed(NAME, &[42; 32]).unwrap();
    let vkey = key.verifier_key();
    println!("runpermit-log benchmark (in memory, one thread)\n");

    // 1. Appends at 10^6 entries.
    const N: u64 = 1_000_000;
    const BATCH: u64 = 1_000;
    let t = Instant::now();
    let entries: Vec<Vec<u8>> = (0..N)
        .map(|i| encode(&entry(i), T0 + i as i64).unwrap())
        .collect();
    let encode_s = t.elapsed().as_secs_f64();
    let bytes: usize = entries.iter().map(Vec::len).sum();

    let mut stored: Vec<Hash> = Vec::new();
    let mut tiles: HashMap<String, Vec<u8>> = HashMap::new();
    let mut note = String::new();
    let (mut tree_s, mut tile_s, mut sign_s) = (0.0, 0.0, 0.0);
    let t_all = Instant::now();
    let mut size = 0u64;
    while size < N {
        let batch = &entries[size as usize..(size + BATCH) as usize];
        let t = Instant::now();
        let leaves: Vec<Hash> = batch.iter().map(|e| leaf_hash(e)).collect();
        let appended = append(size, &leaves, &stored).unwrap();
        tree_s += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for tile in changed_tiles(size, appended.size) {
            tiles.insert(
                tile.path(),
                tile_bytes(&tile, &appended.over(&stored)).unwrap(),
            );
            if tile.level() == 0 {
                let from = (tile.index() * 256) as usize;
                let end = from + usize::from(tile.width());
                let refs: Vec<&[u8]> = entries[from..end].iter().map(Vec::as_slice).collect();
                tiles.insert(tile.entries_path(), entries_tile(&refs));
            }
        }
        tile_s += t.elapsed().as_secs_f64();
        stored.extend(appended.hashes);
        size = appended.size;
        let t = Instant::now();
        note = sign_checkpoint(
            &Checkpoint {
                origin: NAME.into(),
                size,
                root_hash: appended.root,
            },
            &key,
        )
        .unwrap();
        sign_s += t.elapsed().as_secs_f64();
    }
    let all_s = t_all.elapsed().as_secs_f64();
    println!(
        "appends, 10^6 entries (average {} bytes), batches of {BATCH}:",
        bytes / N as usize
    );
    println!(
        "  encode (canonical JSON)             {}",
        per_second(N, encode_s)
    );
    println!(
        "  leaf hashes + stored hashes + root  {}",
        per_second(N, tree_s)
    );
    println!(
        "  tiles + entry bundles               {}",
        per_second(N, tile_s)
    );
    println!(
        "  checkpoint signing                  {:>10.1} µs per batch",
        sign_s / (N / BATCH) as f64 * 1e6
    );
    println!(
        "  all but encoding                    {}  ({} stored hashes, {} tile files)",
        per_second(N, all_s),
        stored.len(),
        tiles.len()
    );
    println!(
        "  end to end (encode included)        {}",
        per_second(N, all_s + encode_s)
    );

    // 2. Proofs at 10^6 entries.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    const PROOFS: u64 = 100_000;
    let root_hash = root(N, &stored).unwrap();
    let picks: Vec<u64> = (0..PROOFS).map(|_| rng.below(N)).collect();
    let t = Instant::now();
    let proofs: Vec<Vec<Hash>> = picks
        .iter()
        .map(|&i| inclusion_proof(i, N, &stored).unwrap())
        .collect();
    let gen_s = t.elapsed().as_secs_f64();
    let leaves: Vec<Hash> = picks
        .iter()
        .map(|&i| leaf_hash(&entries[i as usize]))
        .collect();
    let t = Instant::now();
    for ((i, proof), leaf) in picks.iter().zip(&proofs).zip(&leaves) {
        verify_inclusion(leaf, *i, N, proof, &root_hash).unwrap();
    }
    let ver_s = t.elapsed().as_secs_f64();
    let bundles: Vec<String> = picks[..1000]
        .iter()
        .zip(&proofs)
        .map(|(&i, proof)| {
            // A bundle as a permit carries it.
            ProofBundle {
                index: i,
                entry: Some(entries[i as usize].clone()),
                proof: proof.clone(),
                checkpoint: note.clone(),
            }
            .to_string()
        })
        .collect();
    let t = Instant::now();
    for text in &bundles {
        ProofBundle::parse(text)
            .unwrap()
            .verify_entry(&vkey)
            .unwrap();
    }
    let bundle_s = t.elapsed().as_secs_f64();
    println!(
        "\ninclusion proofs, 10^6 entries ({PROOFS} random indexes, {} hashes each):",
        proofs[0].len()
    );
    println!(
        "  generate (from stored hashes)       {:>10.2} µs",
        gen_s / PROOFS as f64 * 1e6
    );
    println!(
        "  verify                              {:>10.2} µs",
        ver_s / PROOFS as f64 * 1e6
    );
    println!(
        "  proof bundle: parse + signature + proof + decode entry {:>6.1} µs",
        bundle_s / 1000.0 * 1e6
    );

    // 3. Tree math at 10^8 entries, simulated.
    let synthetic = Identical::new();
    const BIG: u64 = 100_000_000;
    let big_root = root(BIG, &synthetic).unwrap();
    let t = Instant::now();
    let big: Vec<(u64, Vec<Hash>)> = (0..PROOFS)
        .map(|_| {
            let i = rng.below(BIG);
            (i, inclusion_proof(i, BIG, &synthetic).unwrap())
        })
        .collect();
    let gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (i, proof) in &big {
        verify_inclusion(&synthetic.leaf(), *i, BIG, proof, &big_root).unwrap();
    }
    let ver_s = t.elapsed().as_secs_f64();
    println!(
        "\ninclusion proofs, 10^8 entries, simulated ({} hashes each):",
        big[0].1.len()
    );
    println!(
        "  generate                            {:>10.2} µs",
        gen_s / PROOFS as f64 * 1e6
    );
    println!(
        "  verify                              {:>10.2} µs",
        ver_s / PROOFS as f64 * 1e6
    );

    // 4. An auditor's first sync of 10^5 entries, from memory.
    const AUDIT: u64 = 100_000;
    let mut small_stored: Vec<Hash> = Vec::new();
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let leaves: Vec<Hash> = entries[..AUDIT as usize]
        .iter()
        .map(|e| leaf_hash(e))
        .collect();
    let appended = append(0, &leaves, &small_stored).unwrap();
    for tile in changed_tiles(0, AUDIT) {
        files.insert(
            tile.path(),
            tile_bytes(&tile, &appended.over(&small_stored)).unwrap(),
        );
        if tile.level() == 0 {
            let from = (tile.index() * 256) as usize;
            let refs: Vec<&[u8]> = entries[from..from + usize::from(tile.width())]
                .iter()
                .map(Vec::as_slice)
                .collect();
            files.insert(tile.entries_path(), entries_tile(&refs));
        }
    }
    small_stored.extend(appended.hashes);
    let small_note = sign_checkpoint(
        &Checkpoint {
            origin: NAME.into(),
            size: AUDIT,
            root_hash: appended.root,
        },
        &key,
    )
    .unwrap();
    let t = Instant::now();
    let summary = verify_log(&vkey, None, &small_note, &Files(&files), &mut |_, _| {}).unwrap();
    let audit_s = t.elapsed().as_secs_f64();
    assert_eq!(summary.new_entries, AUDIT);
    println!(
        "\nverify_log from scratch, 10^5 entries: {:.2} s ({})",
        audit_s,
        per_second(AUDIT, audit_s).trim()
    );
}

struct Files<'a>(&'a HashMap<String, Vec<u8>>);

impl TileFetcher for Files<'_> {
    type Error = String;
    fn tile(&self, path: &TilePath) -> Result<Vec<u8>, String> {
        let path = path.to_string();
        self.0.get(&path).cloned().ok_or(path)
    }
}

/// The stored hashes of a tree whose entries are all the same: the node at tree level `l`
/// is the same for every position, so any tree size can be answered in O(1) per hash.
struct Identical {
    levels: Vec<Hash>,
}

impl Identical {
    fn new() -> Identical {
        let mut levels = vec![leaf_hash(b"synthetic entry")];
        for l in 1..64 {
            let below = levels[l - 1];
            levels.push(node_hash(&below, &below));
        }
        Identical { levels }
    }

    fn leaf(&self) -> Hash {
        self.levels[0]
    }
}

impl HashReader for Identical {
    type Error = Infallible;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Infallible> {
        Ok(indexes.iter().map(|&i| self.levels[level_of(i)]).collect())
    }
}

/// The tree level of the node at stored index `i` (inverse of `stored_hash_index`).
fn level_of(index: u64) -> usize {
    // Stored hashes for entry n start at n + n/2 + n/4 + …; entry n adds
    // 1 + trailing_ones(n) hashes: the leaf, then one per completed level.
    let mut n = index / 2;
    let mut start = runpermit_log::stored_hash_index(0, n);
    while start > index {
        n -= 1;
        start = runpermit_log::stored_hash_index(0, n);
    }
    loop {
        let next = start + 1 + u64::from(n.trailing_ones());
        if next > index {
            return (index - start) as usize;
        }
        n += 1;
        start = next;
    }
}
