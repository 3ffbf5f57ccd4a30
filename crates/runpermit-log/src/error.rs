//! The crate's error types, each variant documented with when it occurs.

use runpermit_compute::FieldError;

use crate::tree::Hash;

/// A text that is not a hash in standard base64 (44 characters, 32 bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a SHA-256 hash in standard base64 (44 characters ending in '='): {0:?}")]
pub struct HashParseError(pub String);

/// An in-memory store (`[Hash]`, `Vec<Hash>`) has no hash at this stored index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no hash stored at index {0}")]
pub struct MissingHash(pub u64);

/// Why a tree computation (append, root, tile, proof) failed. `E` is the
/// [`HashReader`](crate::HashReader)'s error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError<E> {
    /// The hash reader failed.
    #[error("reading stored hashes: {0}")]
    Read(E),
    /// The hash reader returned a different number of hashes than it was asked for.
    #[error("the hash reader returned {got} hashes for {asked} indexes")]
    WrongHashCount {
        /// How many indexes were asked for.
        asked: usize,
        /// How many hashes came back.
        got: usize,
    },
    /// The tree would exceed [`MAX_LOG_SIZE`](crate::MAX_LOG_SIZE) entries.
    #[error("a log holds at most 2^62 entries")]
    TooLarge,
    /// An inclusion proof was asked for an index that is not in the tree.
    #[error("entry {index} is not in a tree of {size} entries")]
    IndexOutOfRange {
        /// The entry index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked from an empty tree or from a larger tree to a smaller.
    #[error(
        "no consistency proof from a tree of {old} entries to one of {new}: need 1 ≤ old ≤ new"
    )]
    BadSizes {
        /// The older tree's size.
        old: u64,
        /// The newer tree's size.
        new: u64,
    },
    /// The tree library refused its input (for example a tile the tree does not have).
    #[error("tree computation failed: {0}")]
    Tlog(String),
}

/// Why an entry bundle cannot be split into entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The bundle ends inside an entry's two-byte length.
    #[error("entry {entry} at byte {offset}: the bundle ends inside its two-byte length")]
    TruncatedLength {
        /// Position of the entry in the bundle.
        entry: usize,
        /// Byte offset where its length starts.
        offset: usize,
    },
    /// The bundle ends before an entry's announced length.
    #[error(
        "entry {entry} at byte {offset}: announces {length} bytes, but only {available} follow"
    )]
    TruncatedEntry {
        /// Position of the entry in the bundle.
        entry: usize,
        /// Byte offset where its length starts.
        offset: usize,
        /// The announced length.
        length: usize,
        /// The bytes left in the bundle.
        available: usize,
    },
}

/// Why a log entry cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EntryError {
    /// The encoding would be 65,535 bytes or more: C2SP bundles prefix each entry with a
    /// `u16` length. Shorten the free-text fields (reasons) or the token.
    #[error("a log entry must be shorter than 65,535 bytes; this one is {size}")]
    TooLarge {
        /// The encoded size in bytes.
        size: usize,
    },
    /// The bytes are not a flat JSON object of strings, numbers and nulls (decode only).
    #[error(
        "not a log entry (a JSON object of strings, numbers and nulls): {reason} at byte {offset}"
    )]
    Malformed {
        /// Byte offset of the problem.
        offset: usize,
        /// What was expected there.
        reason: String,
    },
    /// The envelope's `v` is not a version this crate reads (decode only).
    #[error("unsupported log entry version {0} (this software reads version 1)")]
    UnsupportedVersion(String),
    /// The envelope's `type` names no entry type this crate knows (decode only).
    #[error(
        "unknown log entry type {0:?} (known: application_submitted, decision, permit_issued, \
         tranche_released, run_paused, run_resumed, run_revoked, run_completed, usage_summary, \
         model_registered)"
    )]
    UnknownType(String),
    /// Fields that are missing, unknown, of the wrong JSON type or with values outside
    /// their accepted forms, each named, all at once.
    #[error("invalid log entry: {}", fields(.0))]
    Invalid(Vec<FieldError>),
    /// The bytes decode to a valid entry whose canonical encoding differs from them, from
    /// this byte on (keys out of order, whitespace, another number or escape spelling):
    /// someone re-encoded or altered the entry (decode only).
    #[error("log entry is not in canonical form (first difference at byte {offset})")]
    NonCanonical {
        /// Byte offset of the first difference from the canonical encoding.
        offset: usize,
    },
}

fn fields(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a log key or verifier key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A key name (the log's origin) that signed notes do not allow: empty, or containing
    /// whitespace or `+`.
    #[error(
        "invalid log name {0:?}: a non-empty name without spaces or '+', such as \"log.example.org/runpermit\""
    )]
    InvalidName(String),
    /// Not an unencrypted PKCS#8 Ed25519 private key in PEM form.
    #[error(
        "not an Ed25519 private key in PKCS#8 PEM form (\"-----BEGIN PRIVATE KEY-----\", as written by \
         `openssl genpkey -algorithm ed25519`): {0}"
    )]
    Pem(String),
    /// A verifier key that is not `<name>+<8 hex digits>+<base64 of 0x01 || 32-byte key>`
    /// with a matching key id and a usable Ed25519 point.
    #[error(
        "invalid verifier key {key:?}: {reason} (expected <name>+<8 hex digits key id>+<base64 of 0x01 and the 32-byte Ed25519 key>)"
    )]
    InvalidVerifierKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a signed checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The verifier key given is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// Not a signed note (text, blank line, `— name signature` lines), or a body that is
    /// not exactly the three C2SP checkpoint lines.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No signature line is by the pinned key (another log, a rotated key, or a note with
    /// only unknown signatures).
    #[error(
        "the checkpoint carries no signature by the log key {key}: it comes from another log or key"
    )]
    NotSignedByKey {
        /// The pinned key's `name+id`.
        key: String,
    },
    /// A signature line names the pinned key but does not verify: the checkpoint was
    /// altered or forged.
    #[error(
        "the log key's signature on the checkpoint does not verify: the checkpoint was altered or forged"
    )]
    BadSignature,
    /// The checkpoint's origin line differs from the key name (C2SP: they match).
    #[error("the checkpoint's origin {origin:?} is not the log key's name {key_name:?}")]
    OriginMismatch {
        /// The origin line.
        origin: String,
        /// The key's name.
        key_name: String,
    },
}

/// Why a proof or proof bundle was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProofError {
    /// The proof does not lead from the leaf (or old root) to the root: the entry is not
    /// in the tree at that index, or the trees are not consistent.
    #[error("invalid {kind} proof: {reason}")]
    Invalid {
        /// `inclusion` or `consistency`.
        kind: &'static str,
        /// Why, in words.
        reason: String,
    },
    /// A proof bundle that is not in the `c2sp.org/tlog-proof@v1` text format.
    #[error("malformed proof bundle: {0}")]
    Malformed(String),
    /// The bundle's checkpoint was refused.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The bundle carries an entry other than the one the caller expects.
    #[error("the proof bundle is for another entry than the one being checked")]
    WrongEntry,
    /// The bundle carries no entry, and the caller asked for the carried entry.
    #[error("the proof bundle carries no entry (no \"extra\" line)")]
    NoEntry,
    /// The carried entry is proved but is not a valid log entry.
    #[error("the proved entry is not a valid log entry: {0}")]
    Entry(#[from] EntryError),
}

/// Why `verify_log` refused the log. Every variant that concerns entries names the exact
/// entry index. `E` is the [`TileFetcher`](crate::TileFetcher)'s error.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError<E> {
    /// The checkpoint's signature, format or origin was refused.
    #[error("checkpoint refused: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The fetcher could not get a tile or bundle.
    #[error("fetching {path}: {source}")]
    Fetch {
        /// The resource path (`tile/0/000.p/12`).
        path: String,
        /// The fetcher's error.
        source: E,
    },
    /// A tile that is not exactly 32 bytes per hash of its width.
    #[error("tile {path}: {len} bytes, expected {expected} (32 per hash)")]
    MalformedTile {
        /// The tile path.
        path: String,
        /// Its length.
        len: usize,
        /// The length its width requires.
        expected: usize,
    },
    /// An entry bundle that cannot be split into entries.
    #[error("entry bundle {path}: {source}")]
    MalformedBundle {
        /// The bundle path.
        path: String,
        /// What is wrong.
        source: BundleError,
    },
    /// The new checkpoint is not consistent with the state verified before: at the same
    /// size with another root, or a tree that does not extend the old one. The log forked
    /// (showed different histories) or rewrote what it had published.
    #[error(
        "the log forked: its checkpoint (size {size}, root {root}) is not consistent with the state \
         verified before (size {previous_size}, root {previous_root}): {detail}"
    )]
    Forked {
        /// The new checkpoint's size.
        size: u64,
        /// The new checkpoint's root.
        root: Hash,
        /// The size verified before.
        previous_size: u64,
        /// The root verified before.
        previous_root: Hash,
        /// What did not match.
        detail: String,
    },
    /// The checkpoint is older (smaller) than the state verified before but consistent with
    /// it: a stale cache or a rolled-back log. Nothing was verified; keep the old state.
    #[error(
        "the log served a checkpoint of size {size}, older than the {previous_size} entries verified \
         before (a stale cache or a rollback); nothing new to verify"
    )]
    Rollback {
        /// The served checkpoint's size.
        size: u64,
        /// The size verified before.
        previous_size: u64,
    },
    /// Entry `index` in its bundle is not the entry the log's tree commits to.
    #[error(
        "entry {index} was changed: the bundle's entry does not hash to leaf {index} of the tree the checkpoint signs"
    )]
    EntryChanged {
        /// The entry index.
        index: u64,
    },
    /// Entry `index` is missing from its bundle (the entries after it moved up).
    #[error("entry {index} was dropped from bundle {path}: the entries after it are shifted")]
    EntryDropped {
        /// The entry index.
        index: u64,
        /// The bundle path.
        path: String,
    },
    /// An entry that the tree does not have was inserted in a bundle before entry `index`.
    #[error("an extra entry was inserted in bundle {path} at index {index}")]
    EntryInserted {
        /// The index where the extra entry sits.
        index: u64,
        /// The bundle path.
        path: String,
    },
    /// The bundle has at `index` the entry that the tree has at `original_index`.
    #[error(
        "entries were reordered: the entry at index {index} is the log's entry {original_index}"
    )]
    EntriesReordered {
        /// Where the entry was found.
        index: u64,
        /// Where the tree has it.
        original_index: u64,
    },
    /// A tile hash differs from the one recomputed from the (verified) entries.
    #[error(
        "tile {path} was altered: hash {position} (node {node} of tree level {tree_level}) differs from the \
         hash recomputed from the entries"
    )]
    TileMismatch {
        /// The tile path.
        path: String,
        /// Position of the hash within the tile.
        position: u16,
        /// The node's index within its tree level (for level 0: the entry index).
        node: u64,
        /// The tree level (8 × tile level).
        tree_level: u8,
    },
    /// A full tile hashes to another node than the signed tree has, while the tiles above
    /// it rebuild the signed root: the tile and the entries below it were altered together.
    #[error(
        "tile {path} and entries {first_entry}..{end_entry} below it were altered: they do not hash to the \
         node that the signed tree has"
    )]
    TileAltered {
        /// The altered tile's path.
        path: String,
        /// The first entry index below the tile.
        first_entry: u64,
        /// One past the last entry index below the tile.
        end_entry: u64,
    },
    /// Neither the entries nor the tiles form the tree whose root the checkpoint signs.
    #[error(
        "root mismatch: the checkpoint signs root {expected} for {size} entries, but the entries give {from_entries} \
         and the tiles {from_tiles}"
    )]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
        /// The checkpoint's root.
        expected: Hash,
        /// The root recomputed from the entries.
        from_entries: Hash,
        /// The root recomputed from the tiles.
        from_tiles: Hash,
    },
    /// The tree is sound but entry `index` is not a valid runpermit log entry.
    #[error("entry {index} is in the tree but is not a valid log entry: {source}")]
    InvalidEntry {
        /// The entry index.
        index: u64,
        /// Why it does not decode.
        source: EntryError,
    },
}

impl<E> VerifyError<E> {
    /// The entry index this error is about, when it is about one entry.
    pub fn index(&self) -> Option<u64> {
        match self {
            VerifyError::EntryChanged { index }
            | VerifyError::EntryDropped { index, .. }
            | VerifyError::EntryInserted { index, .. }
            | VerifyError::EntriesReordered { index, .. }
            | VerifyError::InvalidEntry { index, .. } => Some(*index),
            VerifyError::TileMismatch {
                node,
                tree_level: 0,
                ..
            } => Some(*node),
            _ => None,
        }
    }
}
