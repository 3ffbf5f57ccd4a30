//! The public transparency log's pure core: what is logged, how the tree is built and
//! published, and how anyone checks it.
//!
//! - [`LogEntry`], [`encode`], [`decode`]: versioned log entries in canonical JSON
//!   (RFC 8785), refused on decode unless byte-for-byte canonical.
//! - [`leaf_hash`], [`tree_hash`], [`append`], [`root`], [`HashReader`]: RFC 6962 hashing
//!   and incremental tree building over stored hashes.
//! - [`Tile`], [`changed_tiles`], [`tile_bytes`], [`entries_tile`], [`parse_entries_tile`],
//!   [`tile_path`], [`entries_path`], [`parse_path`]: the C2SP `tlog-tiles` layout.
//! - [`LogKey`], [`Checkpoint`], [`sign_checkpoint`], [`verify_checkpoint`]: C2SP
//!   `tlog-checkpoint`s signed as C2SP `signed-note`s by the log's Ed25519 key.
//! - [`inclusion_proof`], [`consistency_proof`], [`verify_inclusion`],
//!   [`verify_consistency`], [`ProofBundle`]: RFC 6962/9162 proofs, and C2SP `tlog-proof`
//!   bundles that let a permit be checked offline as public.
//! - [`WitnessPolicy`]: C2SP `tlog-policy` witness policies (also in Sigsum's hex-key
//!   form) and the quorum check on cosigned checkpoints.
//! - [`Sighting`], [`relate`], [`check_prefix`], [`check_consistency`], [`Fork`]: gossip,
//!   comparing checkpoints of one log seen from different places.
//! - [`verify_log`]: everything `runpermit log verify` checks, given a [`TileFetcher`];
//!   [`verify_log_visiting`] also hands each new entry to the caller.
//!
//! Pure: no file or network IO, no clock (times are arguments, in unix seconds). The only
//! outside input is the operating system's random generator in [`LogKey::generate`].
//! Tree math, tiles and proofs come from the `tlog_tiles` crate (a port of Go's
//! `golang.org/x/mod/sumdb/tlog`), notes from `signed_note`; the C2SP paths, entry format,
//! proof bundles and log verification are written here. The format is described in
//! `docs/log.md`.

mod checkpoint;
mod cosignature;
mod entry;
mod error;
mod gossip;
mod jcs;
mod policy;
mod proof;
mod tile;
mod tree;
mod verify;

pub use checkpoint::{Checkpoint, LogKey, VerifierKey, sign_checkpoint, verify_checkpoint};
pub use cosignature::{
    ALG_COSIGNATURE_V1, Cosigned, CosignerKey, CosignerVerifier, MAX_COSIGNATURE_TIME,
    add_signature_lines, cosigned_message, verify_cosignatures,
};
pub use entry::{
    DecisionKind, ENTRY_VERSION, LogEntry, MAX_ENTRY_BYTES, MAX_SAFE_INTEGER, decode, encode,
};
pub use error::{
    BundleError, CheckpointError, EntryError, HashParseError, KeyError, MissingHash, ProofError,
    TreeError, VerifyError,
};
pub use gossip::{
    Fork, Relation, Sighting, check_consistency, check_prefix, fork, largest, relate,
};
pub use policy::{
    MAX_POLICY_GROUPS, MAX_POLICY_LOGS, MAX_POLICY_WITNESSES, PolicyError, PolicyLog,
    PolicyWitness, WitnessPolicy, Witnessed,
};
pub use proof::{
    MAX_PROOF_HASHES, ProofBundle, ProvedEntry, consistency_proof, inclusion_proof,
    verify_consistency, verify_inclusion,
};
pub use tile::{
    MAX_LOG_SIZE, TILE_WIDTH, Tile, TilePath, entries_path, entries_tile, parse_entries_tile,
    parse_path, tile_path,
};
pub use tree::{
    Appended, AppendedReader, EMPTY_ROOT, Hash, HashReader, append, changed_tiles, leaf_hash,
    node_hash, root, stored_hash_count, stored_hash_index, tile_bytes, tree_hash,
};
pub use verify::{
    LogState, TileFetcher, VerifySummary, needed_paths, verify_log, verify_log_visiting,
};
