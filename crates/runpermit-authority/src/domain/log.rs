//! The authority's side of the public transparency log: queueing entries with the decisions
//! they record, the sequencer that integrates them into the Merkle tree, and reading stored
//! hashes for tiles and proofs.
//!
//! Why the order is safe:
//! 1. An entry is *queued* in the same transaction as the state change it records, so a
//!    decision is never acknowledged without its entry, and a failed change queues nothing.
//! 2. The sequencer holds a lease in the database (one sequencer at a time across processes),
//!    reads the queue, computes the new tree, and commits entries, hashes, the queue deletions
//!    and the signed checkpoint in one transaction that also checks the tree size it started
//!    from. A crash at any point leaves either the old tree with the entries still queued, or
//!    the new tree: never a lost entry, and never two trees from one size (a second sequencer
//!    that raced gets a conflict and retries from the stored state).
//! 3. Tiles, entry bundles and the checkpoint are derived from what is stored.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use runpermit_log::{
    Checkpoint, EMPTY_ROOT, Hash, HashReader, LogEntry, LogKey, MissingHash, ProofBundle,
    TreeError, WitnessPolicy, add_signature_lines, append, decode, encode, inclusion_proof,
    leaf_hash, sign_checkpoint,
};
use runpermit_permit::LogStanding;
use runpermit_permit::{Jwks, PublicKey};
use runpermit_store::{LogBatch, SequencedEntry, Store, StoreError, Write};

use crate::domain::Authority;
use crate::domain::error::DomainError;

/// Entries integrated per sequencing round, at most.
pub const BATCH_LIMIT: i64 = 4096;

/// The log's identity and the sequencer's settings.
pub struct LogService {
    /// The checkpoint-signing key; its name is the log's origin.
    pub key: LogKey,
    /// The verifier key, in C2SP `name+hash+base64` form, served at `/log/vkey`.
    pub vkey: String,
    /// Pause between sequencing rounds when the queue is empty.
    pub interval: Duration,
    /// This process's lease holder id.
    pub holder: String,
    /// What the sequenced log says about each permit's standing, folded as far as this
    /// process has read ([`log_standing`]).
    pub standing: tokio::sync::Mutex<FoldedStanding>,
    /// The witnesses asked to cosign each checkpoint and the quorum the published checkpoint
    /// needs; `None`: the log is not witnessed.
    pub witnesses: Option<WitnessPolicy>,
    /// Woken after each sequencing round that signed a new checkpoint.
    pub sequenced: tokio::sync::Notify,
    /// The size of the last checkpoint this process found to meet the witness quorum: what
    /// stays published when the quorum has failed for longer than the sizes searched.
    pub last_witnessed: std::sync::Mutex<Option<i64>>,
}

/// A [`LogStanding`] and how many entries it has folded.
#[derive(Debug, Default)]
pub struct FoldedStanding {
    /// Entries `0..size` are folded in.
    pub size: u64,
    /// The standing they give.
    pub standing: LogStanding,
}

impl std::fmt::Debug for LogService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogService")
            .field("vkey", &self.vkey)
            .field("interval", &self.interval)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

impl LogService {
    /// A log service signing with `key`, sequencing every `interval`.
    pub fn new(key: LogKey, interval: Duration) -> LogService {
        LogService {
            vkey: key.verifier_key(),
            key,
            interval,
            holder: crate::domain::ids::new_id("seq"),
            standing: tokio::sync::Mutex::new(FoldedStanding::default()),
            witnesses: None,
            sequenced: tokio::sync::Notify::new(),
            last_witnessed: std::sync::Mutex::new(None),
        }
    }

    /// The same service, asking the witnesses of `policy` to cosign and publishing the
    /// latest checkpoint that meets its quorum.
    pub fn with_witnesses(mut self, policy: Option<WitnessPolicy>) -> LogService {
        self.witnesses = policy;
        self
    }
}

/// The queue write for `entry`, about `subject` (`permit/pmt_…`), at `at_ms`.
pub fn queue(subject: &str, entry: &LogEntry, at_ms: i64) -> Result<Write, DomainError> {
    let bytes = encode(entry, at_ms.div_euclid(1000))
        .map_err(|e| DomainError::Internal(format!("encoding a log entry for {subject}: {e}")))?;
    Ok(Write::QueueLogEntry {
        subject: subject.to_owned(),
        entry: bytes,
        at: at_ms,
    })
}

/// A hash reader over hashes fetched ahead; it records what it lacked so that the caller can
/// fetch those and run the computation again.
pub(crate) struct Prefetched {
    hashes: HashMap<u64, Hash>,
    missing: RefCell<Vec<u64>>,
}

impl HashReader for Prefetched {
    type Error = MissingHash;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        let lacking: Vec<u64> = indexes
            .iter()
            .copied()
            .filter(|i| !self.hashes.contains_key(i))
            .collect();
        if let Some(first) = lacking.first() {
            let first = *first;
            self.missing.borrow_mut().extend(lacking);
            return Err(MissingHash(first));
        }
        Ok(indexes.iter().map(|i| self.hashes[i]).collect())
    }
}

fn internal(e: impl std::fmt::Display) -> DomainError {
    DomainError::Internal(e.to_string())
}

/// Runs a tree computation over stored hashes, fetching from the store whatever it asks for
/// (a few rounds at most: a proof or an append reads O(log n) hashes).
pub(crate) async fn with_stored_hashes<T>(
    store: &dyn Store,
    mut compute: impl FnMut(&Prefetched) -> Result<T, TreeError<MissingHash>>,
) -> Result<T, DomainError> {
    let mut hashes = HashMap::new();
    for _ in 0..16 {
        let reader = Prefetched {
            hashes: std::mem::take(&mut hashes),
            missing: RefCell::new(Vec::new()),
        };
        match compute(&reader) {
            Ok(v) => return Ok(v),
            Err(TreeError::Read(_)) => {
                let mut wanted = reader.missing.take();
                wanted.sort_unstable();
                wanted.dedup();
                let indexes: Vec<i64> = wanted
                    .iter()
                    .map(|&i| i64::try_from(i).map_err(internal))
                    .collect::<Result<_, _>>()?;
                let fetched = store.log_hashes(&indexes).await?;
                hashes = reader.hashes;
                for (i, bytes) in wanted.into_iter().zip(fetched) {
                    let hash: [u8; 32] = bytes.try_into().map_err(|_| {
                        DomainError::Internal(format!("stored hash {i} is not 32 bytes"))
                    })?;
                    hashes.insert(i, Hash(hash));
                }
            }
            Err(e) => return Err(internal(e)),
        }
    }
    Err(DomainError::Internal(
        "a tree computation kept asking for more hashes".into(),
    ))
}

/// One sequencing round: when this process holds the lease, integrates up to [`BATCH_LIMIT`]
/// queued entries. Returns how many were integrated (0 when another process leads, the
/// queue is empty, or another sequencer won a race).
pub async fn sequence_once(state: &Authority) -> Result<usize, DomainError> {
    let store = state.store.as_ref();
    let log = &state.log;
    let now = state.clock.now_ms();
    let lease_ms = i64::try_from(log.interval.as_millis()).unwrap_or(1000) * 10 + 2000;
    if !store
        .take_log_lease(&log.holder, now, now + lease_ms)
        .await?
    {
        return Ok(0);
    }
    let Some(current) = store.log_state().await? else {
        // The first checkpoint: the empty tree.
        let checkpoint = sign(log, 0, &EMPTY_ROOT)?;
        return match store
            .sequence_log(LogBatch {
                expected_size: 0,
                entries: Vec::new(),
                hashes: Vec::new(),
                size: 0,
                root: EMPTY_ROOT.0.to_vec(),
                checkpoint,
                at: now,
            })
            .await
        {
            Ok(()) | Err(StoreError::Conflict(_)) => Ok(0),
            Err(e) => Err(e.into()),
        };
    };
    let queued = store.log_queue(BATCH_LIMIT).await?;
    if queued.is_empty() {
        return Ok(0);
    }
    let old_size = u64::try_from(current.size).map_err(internal)?;
    let leaves: Vec<Hash> = queued.iter().map(|q| leaf_hash(&q.entry)).collect();
    let appended = with_stored_hashes(store, |reader| append(old_size, &leaves, reader)).await?;
    let checkpoint = sign(log, appended.size, &appended.root)?;
    let first = i64::try_from(appended.first_index).map_err(internal)?;
    let n = queued.len();
    let batch = LogBatch {
        expected_size: current.size,
        entries: queued
            .into_iter()
            .zip(current.size..)
            .map(|(q, index)| SequencedEntry {
                queue_id: q.id,
                index,
                subject: q.subject,
                entry: q.entry,
            })
            .collect(),
        hashes: appended
            .hashes
            .iter()
            .zip(first..)
            .map(|(h, i)| (i, h.0.to_vec()))
            .collect(),
        size: i64::try_from(appended.size).map_err(internal)?,
        root: appended.root.0.to_vec(),
        checkpoint,
        at: now,
    };
    match store.sequence_log(batch).await {
        Ok(()) => {
            log.sequenced.notify_waiters();
            Ok(n)
        }
        // Another sequencer integrated first; the next round starts from its tree.
        Err(StoreError::Conflict(m)) => {
            tracing::debug!(reason = %m, "lost a sequencing race");
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

fn sign(log: &LogService, size: u64, root: &Hash) -> Result<String, DomainError> {
    sign_checkpoint(
        &Checkpoint {
            origin: log.key.name().to_owned(),
            size,
            root_hash: *root,
        },
        &log.key,
    )
    .map_err(internal)
}

/// Sequences until `shutdown` resolves: a round every `interval`, at once again after a full
/// batch.
pub async fn run_sequencer(state: Authority, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let pause = match sequence_once(&state).await {
            Ok(n) if n as i64 >= BATCH_LIMIT => Duration::ZERO,
            Ok(_) => state.log.interval,
            Err(e) => {
                tracing::error!(error = ?e, "sequencing failed; retrying");
                state.log.interval.max(Duration::from_millis(500))
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Entries read from the store per round while folding the standing.
const FOLD_CHUNK: i64 = 1024;

/// The log's standing ([`LogStanding`]) as of the latest sequenced entry: folds whatever was
/// sequenced since the last call, and forgets permits that expired before `expired_before`
/// (unix seconds). The guard keeps other callers out while it is held.
pub async fn log_standing(
    state: &Authority,
    expired_before: i64,
) -> Result<tokio::sync::MutexGuard<'_, FoldedStanding>, DomainError> {
    let mut folded = state.log.standing.lock().await;
    let store = state.store.as_ref();
    let size = match store.log_state().await? {
        Some(current) => u64::try_from(current.size).map_err(internal)?,
        None => 0,
    };
    if folded.size < size {
        // Every key that ever signed a permit: tranche 1's end is read from verified tokens.
        let keys = store
            .signing_keys()
            .await?
            .iter()
            .map(|k| PublicKey::from_bytes(&k.public_key))
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let jwks = Jwks::from_keys(&keys);
        while folded.size < size {
            let start = i64::try_from(folded.size).map_err(internal)?;
            let end = (start + FOLD_CHUNK).min(i64::try_from(size).map_err(internal)?);
            let entries = store.log_entries(start, end).await?;
            if entries.is_empty() {
                return Err(DomainError::Internal(format!(
                    "log entries from {start} are missing below the stored size {size}"
                )));
            }
            for bytes in &entries {
                let index = folded.size;
                let (entry, at) = decode(bytes).map_err(|e| {
                    DomainError::Internal(format!("log entry {index} does not decode: {e}"))
                })?;
                folded.standing.apply(index, &entry, at, &jwks);
                folded.size += 1;
            }
        }
    }
    folded.standing.prune_expired(expired_before);
    Ok(folded)
}

/// Waits until the entry about `subject` is in the log, sequencing in this task meanwhile
/// (so that a lone process, or a test without a background sequencer, never waits on
/// nobody). Returns its index, or `None` after `timeout`.
pub async fn await_inclusion(
    state: &Authority,
    subject: &str,
    timeout: Duration,
) -> Result<Option<i64>, DomainError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(index) = state.store.log_index(subject).await? {
            return Ok(Some(index));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        if sequence_once(state).await? == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The checkpoint the log publishes (at `/log/checkpoint` and in proof bundles), with the
/// witnesses' cosignature lines it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    /// Its tree size.
    pub size: i64,
    /// The signed note: the log's signature, then the cosignatures.
    pub checkpoint: String,
    /// Whether its cosignatures meet the quorum of the log's witness policy.
    pub witnessed: bool,
}

/// Cosigned sizes looked at, newest first, for one that meets the quorum.
const PUBLISH_SEARCH: i64 = 64;

/// The checkpoint the log publishes. Unwitnessed logs publish the latest. A witnessed log
/// publishes the latest checkpoint whose cosignatures meet its policy's quorum, so that what
/// anyone fetches can be checked against the same witnesses; until one does, the latest with
/// whatever cosignatures it has. `None` before the first checkpoint.
pub async fn published_checkpoint(state: &Authority) -> Result<Option<Published>, DomainError> {
    match state.store.log_state().await? {
        Some(current) => published_from(state, current).await.map(Some),
        None => Ok(None),
    }
}

/// `note` with the signature lines of `cosignatures` after its own.
fn with_lines(note: &str, cosignatures: &[runpermit_store::Cosignature]) -> String {
    let lines: Vec<String> = cosignatures.iter().map(|c| c.signature.clone()).collect();
    add_signature_lines(note, &lines)
}

/// The latest checkpoint, `current`, with the cosignatures stored on its size, and whether
/// they meet `policy`'s quorum.
async fn latest(
    state: &Authority,
    current: runpermit_store::LogState,
    policy: Option<&WitnessPolicy>,
) -> Result<Published, DomainError> {
    let cosignatures = state.store.log_cosignatures(current.size).await?;
    let names: Vec<&str> = cosignatures.iter().map(|c| c.witness.as_str()).collect();
    Ok(Published {
        size: current.size,
        witnessed: policy.is_some_and(|p| p.quorum_met(&names)),
        checkpoint: with_lines(&current.checkpoint, &cosignatures),
    })
}

/// [`published_checkpoint`] when the latest checkpoint is `current`.
async fn published_from(
    state: &Authority,
    current: runpermit_store::LogState,
) -> Result<Published, DomainError> {
    let store = state.store.as_ref();
    let Some(policy) = &state.log.witnesses else {
        return Ok(Published {
            size: current.size,
            checkpoint: current.checkpoint,
            witnessed: false,
        });
    };
    if !policy.requires_no_cosignature() {
        let searched = store.cosigned_sizes(PUBLISH_SEARCH).await?;
        // The newest sizes first; then, when the quorum has failed for longer than that, the
        // last size this process saw meet it.
        let remembered = *state
            .log
            .last_witnessed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let candidates = searched
            .iter()
            .copied()
            .chain(remembered.filter(|r| !searched.contains(r)));
        for size in candidates {
            let cosignatures = store.log_cosignatures(size).await?;
            let names: Vec<&str> = cosignatures.iter().map(|c| c.witness.as_str()).collect();
            if policy.quorum_met(&names) {
                let note = store.log_checkpoint(size).await?.ok_or_else(|| {
                    DomainError::Internal(format!(
                        "the checkpoint of cosigned size {size} is missing"
                    ))
                })?;
                let mut last = state
                    .log
                    .last_witnessed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                *last = Some(last.map_or(size, |l| l.max(size)));
                return Ok(Published {
                    size,
                    checkpoint: with_lines(&note, &cosignatures),
                    witnessed: true,
                });
            }
        }
    }
    latest(state, current, Some(policy)).await
}

/// An inclusion proof bundle for the entry at `index`, against the published checkpoint when
/// it covers the entry (so a witnessed log's bundles carry cosignatures), else against the
/// latest checkpoint with the cosignatures it has so far.
pub async fn proof_bundle(state: &Authority, index: i64) -> Result<ProofBundle, DomainError> {
    let store = state.store.as_ref();
    let current = store
        .log_state()
        .await?
        .ok_or_else(|| DomainError::NotFound("the log is empty".into()))?;
    if index < 0 || index >= current.size {
        return Err(DomainError::NotFound(format!(
            "no entry {index}: the log holds {} entries",
            current.size
        )));
    }
    let published = published_from(state, current.clone()).await?;
    let Published {
        size, checkpoint, ..
    } = if published.size > index {
        published
    } else {
        latest(state, current, state.log.witnesses.as_ref()).await?
    };
    let entry = store
        .log_entries(index, index + 1)
        .await?
        .pop()
        .ok_or_else(|| DomainError::Internal(format!("log entry {index} is missing")))?;
    let (i, size) = (
        u64::try_from(index).map_err(internal)?,
        u64::try_from(size).map_err(internal)?,
    );
    let proof = with_stored_hashes(store, |reader| inclusion_proof(i, size, reader)).await?;
    Ok(ProofBundle {
        index: i,
        entry: Some(entry),
        proof,
        checkpoint,
    })
}
