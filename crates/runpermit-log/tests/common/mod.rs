//! A small in-memory log built with the crate's public API, as the sequencer will use it:
//! append a batch, publish the changed tiles and bundles, sign a checkpoint.

#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use runpermit_compute::Flop;
use runpermit_log::{
    Checkpoint, DecisionKind, Hash, LogEntry, LogKey, TileFetcher, TilePath, append, changed_tiles,
    encode, entries_tile, leaf_hash, sign_checkpoint, tile_bytes,
};

pub const NAME: &str = "log.example.org/runpermit";
pub const T0: i64 = 1_767_225_600;

/// The log key used in tests (fixed seed).
pub fn key() -> LogKey {
    LogKey::from_seed(NAME, &[42; 32]).unwrap()
}

/// Entry `i` of a test log: every type in turn.
pub fn sample(i: u64) -> LogEntry {
    let flop = |v: f64| Flop::new(v).unwrap();
    let (app, run, permit) = (format!("app_{i}"), format!("run_{i}"), format!("pmt_{i}"));
    let digest = format!("sha256:{:064x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15);
    match i % 12 {
        0 => LogEntry::ApplicationSubmitted {
            application_id: app,
            org_id: format!("org_{}", i % 7),
            plan_digest: digest,
            tier: "full-review".into(),
            estimated_flop: flop(1e25 + i as f64 * 1e22),
            policy_version: "2026-01".into(),
        },
        1 => LogEntry::Decision {
            application_id: app,
            decision: DecisionKind::ALL[(i as usize / 10) % 6],
            tier: "standard".into(),
            policy_version: "2026-01".into(),
            reason: i.is_multiple_of(3).then(|| format!("reason {i}")),
        },
        2 => LogEntry::PermitIssued {
            permit_id: permit,
            application_id: app,
            run_id: run,
            holder_org_id: "org_lab".into(),
            token: format!("eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJwbXRf{i}In0.c2ln"),
            flop_budget: flop(4e25),
            nbf: T0,
            exp: T0 + 86_400 * 180,
            policy_version: "2026-01".into(),
        },
        3 => LogEntry::TrancheReleased {
            permit_id: permit,
            run_id: run,
            tranche: (i % 5) as u32 + 1,
            flop: flop(2.5e24 * (i % 5 + 1) as f64),
        },
        4 => LogEntry::RunPaused {
            permit_id: permit,
            run_id: run,
            reason: "milestone due".into(),
        },
        5 => LogEntry::RunResumed {
            permit_id: permit,
            run_id: run,
            reason: "evaluation accepted".into(),
        },
        6 => LogEntry::RunRevoked {
            permit_id: permit,
            run_id: run,
            reason: "incident \"inc_1\"".into(),
        },
        7 => LogEntry::RunCompleted {
            permit_id: permit,
            run_id: run,
            reason: String::new(),
        },
        8 => LogEntry::UsageSummary {
            run_id: run,
            cumulative_flop: flop(1.234e24 + i as f64),
            providers: 2,
            through: T0 + i as i64,
        },
        9 => LogEntry::ModelRegistered {
            run_id: run,
            model_name: format!("model-{i}"),
            checkpoint_digest: digest,
        },
        10 => LogEntry::AccessGranted {
            grant_id: format!("grt_{i}"),
            model_id: format!("mdl_{i}"),
            grantee_org_id: "org_institute".into(),
            tier: "api_sampling".into(),
            token: format!("eyJh.eyJ{i}.c2ln"),
        },
        _ => LogEntry::AccessChanged {
            grant_id: format!("grt_{i}"),
            status: "revoked".into(),
            reason: format!("grant {i} revoked"),
        },
    }
}

pub fn sample_bytes(i: u64) -> Vec<u8> {
    encode(&sample(i), T0 + i as i64).unwrap()
}

/// A log in memory, published as a map from C2SP path to bytes.
pub struct MemLog {
    pub key: LogKey,
    pub entries: Vec<Vec<u8>>,
    pub stored: Vec<Hash>,
    pub files: BTreeMap<String, Vec<u8>>,
    pub root: Hash,
}

impl MemLog {
    pub fn new() -> MemLog {
        MemLog::with_key(key())
    }

    pub fn with_key(key: LogKey) -> MemLog {
        MemLog {
            key,
            entries: Vec::new(),
            stored: Vec::new(),
            files: BTreeMap::new(),
            root: runpermit_log::EMPTY_ROOT,
        }
    }

    /// A log of entries `sample(0..n)`, appended in batches of `batch`.
    pub fn of(n: u64, batch: u64) -> MemLog {
        let mut log = MemLog::new();
        let mut i = 0;
        while i < n {
            let end = (i + batch).min(n);
            log.append((i..end).map(sample_bytes).collect());
            i = end;
        }
        log
    }

    pub fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Appends a batch, publishes the changed tiles and bundles, and returns the signed
    /// checkpoint (also published as `checkpoint`).
    pub fn append(&mut self, batch: Vec<Vec<u8>>) -> String {
        let old = self.size();
        let leaves: Vec<Hash> = batch.iter().map(|e| leaf_hash(e)).collect();
        let appended = append(old, &leaves, &self.stored).unwrap();
        self.entries.extend(batch);
        for tile in changed_tiles(old, appended.size) {
            let bytes = tile_bytes(&tile, &appended.over(&self.stored)).unwrap();
            self.files.insert(tile.path(), bytes);
            if tile.level() == 0 {
                let start = (tile.index() * 256) as usize;
                let end = start + usize::from(tile.width());
                let entries: Vec<&[u8]> =
                    self.entries[start..end].iter().map(Vec::as_slice).collect();
                self.files
                    .insert(tile.entries_path(), entries_tile(&entries));
            }
        }
        self.stored.extend(appended.hashes);
        self.root = appended.root;
        let note = self.checkpoint();
        self.files
            .insert("checkpoint".into(), note.clone().into_bytes());
        note
    }

    pub fn checkpoint(&self) -> String {
        sign_checkpoint(
            &Checkpoint {
                origin: self.key.name().into(),
                size: self.size(),
                root_hash: self.root,
            },
            &self.key,
        )
        .unwrap()
    }

    pub fn fetcher(&self) -> MemFetcher<'_> {
        MemFetcher {
            files: &self.files,
            asked: RefCell::new(Vec::new()),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct NotFound(pub String);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "404 {}", self.0)
    }
}

impl std::error::Error for NotFound {}

/// Serves a [`MemLog`]'s files and records what was asked.
pub struct MemFetcher<'a> {
    pub files: &'a BTreeMap<String, Vec<u8>>,
    pub asked: RefCell<Vec<String>>,
}

impl TileFetcher for MemFetcher<'_> {
    type Error = NotFound;

    fn tile(&self, path: &TilePath) -> Result<Vec<u8>, NotFound> {
        let path = path.to_string();
        self.asked.borrow_mut().push(path.clone());
        self.files.get(&path).cloned().ok_or(NotFound(path))
    }
}
