//! RFC 6962 tree hashing and incremental tree building over "stored hashes".
//!
//! Hashing is RFC 6962 §2.1 (RFC 9162 §2.1.1) with SHA-256: a leaf is `SHA-256(0x00 ||
//! entry)`, an interior node `SHA-256(0x01 || left || right)`, the empty tree the SHA-256 of
//! nothing.
//!
//! A log keeps every hash it has computed, each at a *stored hash index*: the dense order of
//! Crosby and Wallach that Go's `golang.org/x/mod/sumdb/tlog` and the `tlog_tiles` crate use
//! ([`stored_hash_index`]). Appending entries `n..m` adds exactly the stored hashes
//! `stored_hash_index(0, n)..stored_hash_index(0, m)`, and needs only the ≤ 64 hashes of the
//! old tree's complete subtrees (its right frontier), so [`append`] can extend a tree of any
//! size from a storage the caller reads through a [`HashReader`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::{HashParseError, MissingHash, TreeError};
use crate::tile::{TILE_HEIGHT, Tile};

/// A SHA-256 hash: a leaf hash, an interior node or a tree root.
///
/// Shown (and serialized) as standard base64 with padding, the form C2SP checkpoints,
/// tlog-proof bundles and Go's `tlog.Hash.String` use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads the standard base64 form (44 characters with one `=`), refusing any other
    /// length and non-canonical encodings.
    pub fn from_base64(text: &str) -> Result<Hash, HashParseError> {
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| HashParseError(text.to_owned()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| HashParseError(text.to_owned()))?;
        Ok(Hash(bytes))
    }

    pub(crate) fn to_tlog(self) -> tlog_tiles::Hash {
        tlog_tiles::Hash(self.0)
    }

    pub(crate) fn from_tlog(hash: tlog_tiles::Hash) -> Hash {
        Hash(hash.0)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

impl FromStr for Hash {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Hash, HashParseError> {
        Hash::from_base64(s)
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(deserializer)?;
        Hash::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = Hash([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

/// The leaf hash of an entry: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The RFC 6962 Merkle tree hash of the leaves whose hashes are `leaves`, in order: the
/// root of a log holding exactly those entries. Computed directly from the definition
/// (split at the largest power of two below the size), in memory.
pub fn tree_hash(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => EMPTY_ROOT,
        1 => leaves[0],
        n => {
            let k = largest_power_of_two_below(n as u64) as usize;
            node_hash(&tree_hash(&leaves[..k]), &tree_hash(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly below `n` (`n ≥ 2`).
fn largest_power_of_two_below(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The root of a perfect subtree whose `2^k` leaves (or nodes of one level) are `hashes`.
pub(crate) fn perfect_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    if hashes.len() == 1 {
        return hashes[0];
    }
    let half = hashes.len() / 2;
    node_hash(
        &perfect_root(&hashes[..half]),
        &perfect_root(&hashes[half..]),
    )
}

/// The root of a tree given its right frontier as runs of hashes at tile levels.
///
/// `parts` lists, from the highest tile level down, the hashes of each level that are not
/// yet part of a full tile (fewer than 256 each). Each run splits into perfect subtrees,
/// largest first; the root folds them from the right, as RFC 6962's definition does.
pub(crate) fn root_from_partials(parts: &[&[Hash]]) -> Hash {
    let mut chunks = Vec::new();
    for part in parts {
        let mut offset = 0;
        let mut rest = part.len();
        while rest > 0 {
            let size = 1usize << (usize::BITS - 1 - rest.leading_zeros());
            chunks.push(perfect_root(&part[offset..offset + size]));
            offset += size;
            rest -= size;
        }
    }
    let Some(mut root) = chunks.pop() else {
        return EMPTY_ROOT;
    };
    while let Some(left) = chunks.pop() {
        root = node_hash(&left, &root);
    }
    root
}

/// The stored hash index of the node at tree `level` (0 = leaves) and position `n` within
/// that level (Crosby–Wallach order, as in Go's `tlog.StoredHashIndex`).
pub fn stored_hash_index(level: u8, n: u64) -> u64 {
    tlog_tiles::stored_hash_index(level, n)
}

/// How many stored hashes a tree of `size` entries has; also the stored index at which the
/// hashes added by the next entry start.
pub fn stored_hash_count(size: u64) -> u64 {
    tlog_tiles::stored_hash_count(size)
}

/// Read access to a log's stored hashes.
///
/// The sequencer implements it over its database or cache; proofs, roots and tiles are
/// computed through it. An implementation returns exactly one hash per requested index,
/// in the order asked, or an error.
pub trait HashReader {
    /// Why hashes could not be read (for example a database error, or a missing hash).
    type Error;

    /// The hashes stored at `indexes` (see [`stored_hash_index`]), in the same order.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, Self::Error>;
}

/// An in-memory log's stored hashes: the hash with stored index `i` at position `i`.
impl HashReader for [Hash] {
    type Error = MissingHash;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.get(i))
                    .copied()
                    .ok_or(MissingHash(i))
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    type Error = MissingHash;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
        self.as_slice().read_hashes(indexes)
    }
}

impl<R: HashReader + ?Sized> HashReader for &R {
    type Error = R::Error;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, R::Error> {
        (**self).read_hashes(indexes)
    }
}

/// Adapts a [`HashReader`] to `tlog_tiles::HashReader`, keeping the caller's error (which
/// `tlog_tiles` cannot carry) and refusing answers of the wrong length (on which
/// `tlog_tiles` would panic).
pub(crate) struct TlogReader<'a, R: HashReader + ?Sized> {
    inner: &'a R,
    failure: RefCell<Option<TreeError<R::Error>>>,
}

impl<'a, R: HashReader + ?Sized> TlogReader<'a, R> {
    pub(crate) fn new(inner: &'a R) -> Self {
        TlogReader {
            inner,
            failure: RefCell::new(None),
        }
    }

    /// The caller-facing error for a `tlog_tiles` failure: the reader's own error if it
    /// failed, else `otherwise`.
    pub(crate) fn error(&self, otherwise: TreeError<R::Error>) -> TreeError<R::Error> {
        self.failure.borrow_mut().take().unwrap_or(otherwise)
    }
}

impl<R: HashReader + ?Sized> tlog_tiles::HashReader for TlogReader<'_, R> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        match self.inner.read_hashes(indexes) {
            Ok(hashes) if hashes.len() == indexes.len() => {
                Ok(hashes.into_iter().map(Hash::to_tlog).collect())
            }
            Ok(hashes) => {
                *self.failure.borrow_mut() = Some(TreeError::WrongHashCount {
                    asked: indexes.len(),
                    got: hashes.len(),
                });
                Err(tlog_tiles::Error::InvalidInput("hash reader failed".into()))
            }
            Err(e) => {
                *self.failure.borrow_mut() = Some(TreeError::Read(e));
                Err(tlog_tiles::Error::InvalidInput("hash reader failed".into()))
            }
        }
    }
}

/// What [`append`] adds to a log: the new stored hashes and the new tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The stored index of `hashes[0]`: `stored_hash_count(old size)`.
    pub first_index: u64,
    /// The new stored hashes, to be stored at `first_index`, `first_index + 1`, ….
    pub hashes: Vec<Hash>,
    /// The new tree size.
    pub size: u64,
    /// The new tree's root hash.
    pub root: Hash,
}

impl Appended {
    /// A reader that answers from these new hashes and from `base` (the storage as it was
    /// before the append) for older ones: what [`tile_bytes`] and the proof functions
    /// need before the new hashes are stored.
    pub fn over<'a, R: HashReader + ?Sized>(&'a self, base: &'a R) -> AppendedReader<'a, R> {
        AppendedReader {
            appended: self,
            base,
        }
    }
}

/// The [`HashReader`] returned by [`Appended::over`].
#[derive(Debug)]
pub struct AppendedReader<'a, R: ?Sized> {
    appended: &'a Appended,
    base: &'a R,
}

impl<R: HashReader + ?Sized> HashReader for AppendedReader<'_, R> {
    type Error = R::Error;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, R::Error> {
        let appended = |i: u64| {
            i.checked_sub(self.appended.first_index)
                .and_then(|j| usize::try_from(j).ok())
                .and_then(|j| self.appended.hashes.get(j))
                .copied()
        };
        // Everything not appended (older hashes, or indexes beyond the new tree) is the
        // base's to answer, in one call.
        let from_base: Vec<u64> = indexes
            .iter()
            .copied()
            .filter(|&i| appended(i).is_none())
            .collect();
        let mut base = if from_base.is_empty() {
            Vec::new()
        } else {
            self.base.read_hashes(&from_base)?
        }
        .into_iter();
        let mut out = Vec::with_capacity(indexes.len());
        for &i in indexes {
            match appended(i).or_else(|| base.next()) {
                Some(h) => out.push(h),
                // A base that broke its contract; the caller's length check reports it.
                None => break,
            }
        }
        Ok(out)
    }
}

/// During [`append`]: the old frontier (read once from the caller's storage) and the hashes
/// computed so far. Anything else is read from the caller's storage.
struct Overlay<'a, R: ?Sized> {
    base: &'a R,
    frontier: HashMap<u64, Hash>,
    first_index: u64,
    new: Vec<Hash>,
}

impl<R: HashReader + ?Sized> HashReader for Overlay<'_, R> {
    type Error = R::Error;

    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, R::Error> {
        let mut out = Vec::with_capacity(indexes.len());
        for &i in indexes {
            let known = if i >= self.first_index {
                usize::try_from(i - self.first_index)
                    .ok()
                    .and_then(|j| self.new.get(j))
                    .copied()
            } else {
                self.frontier.get(&i).copied()
            };
            match known {
                Some(h) => out.push(h),
                // Not reached by the tree math (only frontier hashes are needed), but a
                // storage read is always correct.
                None => out.extend(self.base.read_hashes(&[i])?),
            }
        }
        Ok(out)
    }
}

/// Appends entries with leaf hashes `leaves` to a tree of `old_size` entries whose stored
/// hashes `storage` reads, and returns the stored hashes to add and the new root.
///
/// Reads only the old tree's frontier (at most 64 hashes, in one call) from `storage`.
/// Appending in several steps gives exactly the hashes of appending at once.
pub fn append<R: HashReader + ?Sized>(
    old_size: u64,
    leaves: &[Hash],
    storage: &R,
) -> Result<Appended, TreeError<R::Error>> {
    let new_size = old_size
        .checked_add(leaves.len() as u64)
        .ok_or(TreeError::TooLarge)?;
    let first_index = stored_hash_count(old_size);
    let frontier_indexes = tlog_tiles::sub_tree_index(0, old_size, Vec::new());
    let frontier_hashes = if frontier_indexes.is_empty() {
        Vec::new()
    } else {
        storage
            .read_hashes(&frontier_indexes)
            .map_err(TreeError::Read)?
    };
    if frontier_hashes.len() != frontier_indexes.len() {
        return Err(TreeError::WrongHashCount {
            asked: frontier_indexes.len(),
            got: frontier_hashes.len(),
        });
    }
    let mut overlay = Overlay {
        base: storage,
        frontier: frontier_indexes.into_iter().zip(frontier_hashes).collect(),
        first_index,
        new: Vec::with_capacity(leaves.len() * 2 + 64),
    };
    for (n, leaf) in (old_size..).zip(leaves) {
        let reader = TlogReader::new(&overlay);
        let hashes = tlog_tiles::stored_hashes_for_record_hash(n, leaf.to_tlog(), &reader)
            .map_err(|e| reader.error(TreeError::Tlog(e.to_string())))?;
        overlay.new.extend(hashes.into_iter().map(Hash::from_tlog));
    }
    let root = root(new_size, &overlay)?;
    Ok(Appended {
        first_index,
        hashes: overlay.new,
        size: new_size,
        root,
    })
}

/// The root hash of the tree of `size` entries whose stored hashes `storage` reads (at most
/// 64 hashes, in one call).
pub fn root<R: HashReader + ?Sized>(size: u64, storage: &R) -> Result<Hash, TreeError<R::Error>> {
    let reader = TlogReader::new(storage);
    tlog_tiles::tree_hash(size, &reader)
        .map(Hash::from_tlog)
        .map_err(|e| reader.error(TreeError::Tlog(e.to_string())))
}

/// The tiles (height 8, C2SP `tlog-tiles`) that a log must publish, new or wider, when it
/// grows from `old_size` to `new_size` entries, lowest level first. Each level-0 tile has
/// an entry bundle with the same index and width. Empty when nothing changed.
pub fn changed_tiles(old_size: u64, new_size: u64) -> Vec<Tile> {
    if new_size <= old_size {
        return Vec::new();
    }
    tlog_tiles::Tile::new_tiles(TILE_HEIGHT, old_size, new_size)
        .into_iter()
        .map(|t| Tile::from_tlog(&t))
        .collect()
}

/// The bytes of `tile`: its hashes, 32 bytes each, read from `storage`.
pub fn tile_bytes<R: HashReader + ?Sized>(
    tile: &Tile,
    storage: &R,
) -> Result<Vec<u8>, TreeError<R::Error>> {
    let reader = TlogReader::new(storage);
    tile.to_tlog()
        .read_data(&reader)
        .map_err(|e| reader.error(TreeError::Tlog(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(EMPTY_ROOT, Hash(Sha256::digest(b"").into()));
        assert_eq!(tree_hash(&[]), EMPTY_ROOT);
        assert_eq!(root(0, &Vec::<Hash>::new()).unwrap(), EMPTY_ROOT);
    }

    #[test]
    fn hash_text_form_is_strict() {
        let h = leaf_hash(b"");
        assert_eq!(
            h.to_string(),
            "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="
        );
        assert_eq!(Hash::from_base64(&h.to_string()).unwrap(), h);
        for bad in [
            "",
            "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0",
            "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB1=",
            "bjQLnP-zepicpUTmu3gKLHiQHT-zNzh2hRGjBhevoB0=",
            "V3JvbmdSb290",
        ] {
            assert!(Hash::from_base64(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
    }

    #[test]
    fn append_in_steps_equals_append_at_once() {
        let all = leaves(1000);
        let mut at_once: Vec<Hash> = Vec::new();
        let a = append(0, &all, &at_once).unwrap();
        at_once.extend(a.hashes);
        assert_eq!(a.root, tree_hash(&all));
        assert_eq!(at_once.len() as u64, stored_hash_count(1000));

        for steps in [
            &[1usize, 1, 1, 997][..],
            &[255, 1, 256, 300, 188],
            &[999, 1],
        ] {
            let mut stored: Vec<Hash> = Vec::new();
            let mut size = 0u64;
            for &step in steps {
                let batch = &all[size as usize..size as usize + step];
                let a = append(size, batch, &stored).unwrap();
                assert_eq!(a.first_index, stored.len() as u64);
                stored.extend(a.hashes);
                size = a.size;
                assert_eq!(a.root, tree_hash(&all[..size as usize]));
                assert_eq!(root(size, &stored).unwrap(), a.root);
            }
            assert_eq!(stored, at_once);
        }
    }

    #[test]
    fn append_reads_only_the_frontier_once() {
        struct Counting<'a>(&'a [Hash], RefCell<Vec<usize>>);
        impl HashReader for Counting<'_> {
            type Error = MissingHash;
            fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MissingHash> {
                self.1.borrow_mut().push(indexes.len());
                self.0.read_hashes(indexes)
            }
        }
        let all = leaves(70_001);
        let mut stored = Vec::new();
        stored.extend(append(0, &all[..70_000], &stored).unwrap().hashes);
        let counting = Counting(&stored, RefCell::new(Vec::new()));
        let a = append(70_000, &all[70_000..], &counting).unwrap();
        // 70000 = 65536 + 4096 + 256 + 64 + 32 + 16: six complete subtrees.
        assert_eq!(*counting.1.borrow(), vec![6]);
        assert_eq!(a.root, tree_hash(&all));
    }

    #[test]
    fn tiles_built_incrementally_equal_tiles_built_at_once() {
        let all = leaves(70_000);
        let mut stored: Vec<Hash> = Vec::new();
        stored.extend(append(0, &all, &stored).unwrap().hashes);
        let once: HashMap<Tile, Vec<u8>> = changed_tiles(0, 70_000)
            .into_iter()
            .map(|t| (t, tile_bytes(&t, &stored).unwrap()))
            .collect();
        // The spec's example: 273 full level-0 tiles, one partial of width 112, one full
        // level-1 tile, one partial level-1 tile of width 17 and a partial level-2 tile.
        assert_eq!(once.len(), 273 + 1 + 1 + 1 + 1);
        assert!(once.contains_key(&Tile::new(0, 273, 112).unwrap()));
        assert!(once.contains_key(&Tile::new(1, 1, 17).unwrap()));
        assert!(once.contains_key(&Tile::new(2, 0, 1).unwrap()));

        let mut stepped: Vec<Hash> = Vec::new();
        let mut published: HashMap<Tile, Vec<u8>> = HashMap::new();
        let mut size = 0;
        for step in [1u64, 300, 4000, 255, 65_536 - 4556, 4444, 20] {
            let a = append(size, &all[size as usize..(size + step) as usize], &stepped).unwrap();
            for t in changed_tiles(size, a.size) {
                let bytes = tile_bytes(&t, &a.over(&stepped)).unwrap();
                assert_eq!(bytes.len(), usize::from(t.width()) * 32);
                published.insert(t, bytes);
            }
            stepped.extend(a.hashes);
            size = a.size;
        }
        assert_eq!(size, 70_000);
        assert_eq!(stepped, stored);
        // Everything published at once was published along the way, with the same bytes.
        for (t, bytes) in &once {
            assert_eq!(published.get(t), Some(bytes), "{t:?}");
        }
    }

    #[test]
    fn the_appended_reader_answers_new_and_old_hashes() {
        let all = leaves(10);
        let mut stored: Vec<Hash> = Vec::new();
        stored.extend(append(0, &all[..5], &stored).unwrap().hashes);
        let a = append(5, &all[5..], &stored).unwrap();
        let mut full = stored.clone();
        full.extend(a.hashes.iter().copied());
        let reader = a.over(&stored);
        let indexes: Vec<u64> = (0..full.len() as u64).rev().collect();
        let expect: Vec<Hash> = indexes.iter().map(|&i| full[i as usize]).collect();
        assert_eq!(reader.read_hashes(&indexes).unwrap(), expect);
        let beyond = full.len() as u64;
        assert_eq!(reader.read_hashes(&[3, beyond]), Err(MissingHash(beyond)));
    }

    #[test]
    fn level_zero_tiles_hold_leaf_hashes() {
        let all = leaves(300);
        let mut stored: Vec<Hash> = Vec::new();
        stored.extend(append(0, &all, &stored).unwrap().hashes);
        let t = Tile::new(0, 1, 44).unwrap();
        let bytes = tile_bytes(&t, &stored).unwrap();
        let expect: Vec<u8> = all[256..].iter().flat_map(|h| h.0).collect();
        assert_eq!(bytes, expect);
        let t1 = Tile::new(1, 0, 1).unwrap();
        assert_eq!(tile_bytes(&t1, &stored).unwrap(), tree_hash(&all[..256]).0);
    }

    #[test]
    fn reader_errors_are_passed_through() {
        let stored: Vec<Hash> = Vec::new();
        assert_eq!(
            append(5, &leaves(1), &stored),
            Err(TreeError::Read(MissingHash(6)))
        );
        struct Short;
        impl HashReader for Short {
            type Error = MissingHash;
            fn read_hashes(&self, _: &[u64]) -> Result<Vec<Hash>, MissingHash> {
                Ok(vec![])
            }
        }
        assert_eq!(
            root(3, &Short),
            Err(TreeError::WrongHashCount { asked: 2, got: 0 })
        );
        assert_eq!(
            append(3, &leaves(1), &Short),
            Err(TreeError::WrongHashCount { asked: 2, got: 0 })
        );
    }

    #[test]
    fn root_from_partials_matches_the_definition() {
        let all = leaves(600);
        let level1 = [perfect_root(&all[..256]), perfect_root(&all[256..512])];
        assert_eq!(
            root_from_partials(&[&level1[..], &all[512..600]]),
            tree_hash(&all)
        );
        assert_eq!(root_from_partials(&[&[], &all[..5]]), tree_hash(&all[..5]));
        assert_eq!(root_from_partials(&[]), EMPTY_ROOT);
    }
}
