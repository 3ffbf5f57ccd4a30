//! Full verification of a published log, as `runpermit log verify` does it, without IO.
//!
//! Given the pinned verifier key, the state verified last time (if any), the log's current
//! checkpoint note and a [`TileFetcher`], [`verify_log`]:
//!
//! 1. checks the checkpoint's signature and origin;
//! 2. compares it with the previous state: the same size needs the same root; a smaller
//!    size is a rollback (or a fork, if the tiles prove it inconsistent);
//! 3. fetches the tiles at and right of the previous tree's edge and checks that their
//!    hashes for the old part rebuild the previous root — the new tree extends the old one,
//!    which is what a consistency proof shows;
//! 4. downloads every new entry bundle (and the one the previous size ends in), hashes the
//!    entries, recomputes every new tile hash and the root, and compares them with the
//!    served tiles and the signed root;
//! 5. decodes every new entry (the canonical check) and counts them by type.
//!
//! The first problem is reported with the exact entry index or tile: a changed, dropped,
//! inserted or reordered entry, an altered tile, a root that nothing reproduces, or a fork.
//!
//! Memory is proportional to the number of new entries divided by 256 (plus one bundle).

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, VerifierKey, verify_checkpoint_with};
use crate::entry::{LogEntry, decode};
use crate::error::{CheckpointError, EntryError, VerifyError};
use crate::tile::{MAX_LOG_SIZE, TILE_HEIGHT, TILE_WIDTH, Tile, TilePath, parse_entries_tile};
use crate::tree::{EMPTY_ROOT, Hash, leaf_hash, perfect_root, root_from_partials};

/// Where tiles and entry bundles come from: an HTTP client for `runpermit log verify`, a
/// directory, or memory in tests.
pub trait TileFetcher {
    /// Why a resource could not be fetched.
    type Error;

    /// The bytes served at `path` (relative to the log prefix; `path.to_string()` is the
    /// C2SP path, such as `tile/0/x001/234.p/17` or `tile/entries/000`).
    fn tile(&self, path: &TilePath) -> Result<Vec<u8>, Self::Error>;
}

/// What an auditor keeps between runs: the last verified tree size and root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogState {
    /// Entries verified.
    pub size: u64,
    /// Their root hash.
    pub root_hash: Hash,
}

/// The outcome of a successful [`verify_log`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifySummary {
    /// The verified checkpoint (origin, size, root).
    pub checkpoint: Checkpoint,
    /// The size verified before this run (0 without a previous state).
    pub previous_size: u64,
    /// Entries verified in this run.
    pub new_entries: u64,
    /// The new entries by `type`.
    pub entries_by_type: BTreeMap<String, u64>,
}

impl VerifySummary {
    /// The state to keep for the next run.
    pub fn state(&self) -> LogState {
        LogState {
            size: self.checkpoint.size,
            root_hash: self.checkpoint.root_hash,
        }
    }
}

/// One tile level's node range to fetch and recompute: node positions `start..end` of tree
/// level `8·level`; positions below `old_end` are in the previous tree.
#[derive(Clone, Copy, Debug)]
struct LevelPlan {
    level: u8,
    start: u64,
    old_end: u64,
    end: u64,
}

impl LevelPlan {
    /// The tiles covering `start..end`, in order.
    fn tiles(&self) -> impl Iterator<Item = Tile> + '_ {
        let first = self.start / 256;
        let last = self.end.div_ceil(256);
        (first..last).map(move |k| {
            let width = (self.end - k * 256).min(256);
            Tile::new(self.level, k, width as u16).expect("a tile of a tree within MAX_LOG_SIZE")
        })
    }
}

fn plan(old_size: u64, size: u64) -> Vec<LevelPlan> {
    let mut levels = Vec::new();
    let mut level = 0u8;
    while level < 8 && size >> (8 * u32::from(level)) > 0 {
        let shift = 8 * u32::from(level);
        let old_end = old_size >> shift;
        let end = size >> shift;
        let start = (old_end >> 8) << 8;
        if start < end {
            levels.push(LevelPlan {
                level,
                start,
                old_end,
                end,
            });
        }
        level += 1;
    }
    levels
}

/// Every resource [`verify_log`] fetches to go from `previous_size` to `size` entries, in
/// the order it fetches them: hash tiles from the top level down, then each level-0 tile
/// with its entry bundle. A client can fetch these in parallel ahead of time. Empty when
/// `size` is not larger, or beyond [`MAX_LOG_SIZE`].
pub fn needed_paths(previous_size: u64, size: u64) -> Vec<TilePath> {
    if size <= previous_size || size > MAX_LOG_SIZE {
        return Vec::new();
    }
    let levels = plan(previous_size, size);
    let mut paths = Vec::new();
    for l in levels.iter().rev().filter(|l| l.level > 0) {
        paths.extend(l.tiles().map(TilePath::Hashes));
    }
    if let Some(l0) = levels.first().filter(|l| l.level == 0) {
        for t in l0.tiles() {
            paths.push(TilePath::Hashes(t));
            paths.push(TilePath::Entries(t));
        }
    }
    paths
}

/// Verifies the log's checkpoint `checkpoint_note` against the pinned verifier key `vkey`
/// and, fetching through `fetcher`, every entry and tile added since `previous` (or since
/// the start). `progress(done, total)` is called after each entry bundle with the new
/// entries processed so far and the number to process.
///
/// Returns a summary whose [`state`](VerifySummary::state) is to be kept for the next run.
pub fn verify_log<F: TileFetcher + ?Sized>(
    vkey: &str,
    previous: Option<&LogState>,
    checkpoint_note: &str,
    fetcher: &F,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifySummary, VerifyError<F::Error>> {
    verify_log_visiting(
        vkey,
        previous,
        checkpoint_note,
        fetcher,
        progress,
        &mut |_, _, _| {},
    )
}

/// [`verify_log`], also handing every new entry that decodes to `visit(index, entry, at)`,
/// in index order, as it is read: how an auditor derives state from the log (such as which
/// permits the log says are not in good standing) in the same pass.
///
/// The entries are authenticated only when this returns `Ok`: on an error, discard whatever
/// `visit` gathered.
pub fn verify_log_visiting<F: TileFetcher + ?Sized>(
    vkey: &str,
    previous: Option<&LogState>,
    checkpoint_note: &str,
    fetcher: &F,
    progress: &mut dyn FnMut(u64, u64),
    visit: &mut dyn FnMut(u64, &LogEntry, i64),
) -> Result<VerifySummary, VerifyError<F::Error>> {
    let key = VerifierKey::parse(vkey).map_err(CheckpointError::from)?;
    let checkpoint = verify_checkpoint_with(checkpoint_note, &key)?;
    let previous = previous.copied().unwrap_or(LogState {
        size: 0,
        root_hash: EMPTY_ROOT,
    });
    let (old, size, root) = (previous.size, checkpoint.size, checkpoint.root_hash);
    let forked = |detail: &str| VerifyError::Forked {
        size,
        root,
        previous_size: old,
        previous_root: previous.root_hash,
        detail: detail.to_owned(),
    };
    if size < old {
        return Err(rollback(&previous, &checkpoint, fetcher));
    }
    if size == old {
        if root != previous.root_hash {
            return Err(forked("same size, different root"));
        }
        return Ok(VerifySummary {
            checkpoint,
            previous_size: old,
            new_entries: 0,
            entries_by_type: BTreeMap::new(),
        });
    }
    if size > MAX_LOG_SIZE {
        return Err(VerifyError::Checkpoint(CheckpointError::Malformed(
            format!("tree size {size} is beyond the 2^62 entries this verifier handles"),
        )));
    }

    let levels = plan(old, size);
    let mut v = Verifier {
        fetcher,
        levels: &levels,
        served: vec![Vec::new(); levels.len()],
    };

    // Hash tiles at levels ≥ 1 (about one per 256 entries), top down.
    for (i, l) in levels.iter().enumerate().rev().filter(|(_, l)| l.level > 0) {
        let mut hashes = Vec::with_capacity((l.end - l.start) as usize);
        for t in l.tiles() {
            hashes.extend(v.fetch_tile(&t)?);
        }
        v.served[i] = hashes;
    }

    let l0 = levels[0];
    debug_assert_eq!(l0.level, 0);
    let mut blocks = l0.tiles().peekable();
    let first_tile = *blocks.peek().expect("size > old leaves at least one tile");
    let first_hashes = v.fetch_tile(&first_tile)?;

    // The previous tree, rebuilt from the old part of the served tiles.
    if old > 0 {
        let mut parts: Vec<&[Hash]> = Vec::new();
        for (i, l) in levels.iter().enumerate().rev() {
            let n = (l.old_end - l.start) as usize;
            if l.level == 0 {
                parts.push(&first_hashes[..n]);
            } else {
                parts.push(&v.served[i][..n]);
            }
        }
        let rebuilt = root_from_partials(&parts);
        if rebuilt != previous.root_hash {
            return Err(forked(&format!(
                "the log's tiles rebuild root {rebuilt} for the first {old} entries: the log rewrote \
                 its history or altered a tile"
            )));
        }
    }

    // Level 0, one bundle at a time.
    let total = size - old;
    let mut level1_from_entries = Vec::new();
    let mut level1_from_tiles = Vec::new();
    let mut last_entries: Vec<Hash> = Vec::new();
    let mut last_tile: Vec<Hash> = Vec::new();
    let mut mismatch: Option<LeafMismatch> = None;
    let mut invalid: Option<(u64, EntryError)> = None;
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_block = Some(first_hashes);
    for tile in blocks {
        let tile_hashes = match first_block.take() {
            Some(h) => h,
            None => v.fetch_tile(&tile)?,
        };
        let path = TilePath::Entries(tile);
        let bundle = fetcher.tile(&path).map_err(|source| VerifyError::Fetch {
            path: path.to_string(),
            source,
        })?;
        let entries =
            parse_entries_tile(&bundle).map_err(|source| VerifyError::MalformedBundle {
                path: path.to_string(),
                source,
            })?;
        let start = tile.index() * 256;
        let entry_hashes: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        if mismatch.is_none() {
            mismatch = LeafMismatch::find(&tile, start, &entry_hashes, &tile_hashes);
        }
        for (i, entry) in entries.iter().enumerate().take(usize::from(tile.width())) {
            let index = start + i as u64;
            if index < old {
                continue;
            }
            match decode(entry) {
                Ok((e, at)) => {
                    *by_type.entry(e.type_name().to_owned()).or_default() += 1;
                    visit(index, &e, at);
                }
                Err(err) => {
                    if invalid.is_none() {
                        invalid = Some((index, err));
                    }
                }
            }
        }
        if tile.is_full() {
            level1_from_entries.push(if entry_hashes.len() == 256 {
                perfect_root(&entry_hashes)
            } else {
                Hash::default()
            });
            level1_from_tiles.push(perfect_root(&tile_hashes));
        } else {
            last_entries = entry_hashes;
            last_tile = tile_hashes;
        }
        progress(
            (start + u64::from(tile.width()))
                .saturating_sub(old)
                .min(total),
            total,
        );
    }

    // Levels ≥ 1: recompute new nodes from the level below, both from the entries and from
    // the served tiles, and compare.
    let mut from_entries: Vec<Vec<Hash>> = vec![Vec::new(); levels.len()];
    let mut tiles_inconsistent: Option<(usize, u64)> = None;
    let mut tile_differs: Option<(usize, u64)> = None;
    for i in 1..levels.len() {
        let l = levels[i];
        let old_count = (l.old_end - l.start) as usize;
        let mut nodes = v.served[i][..old_count].to_vec();
        let mut nodes_from_tiles = Vec::new();
        if l.level == 1 {
            nodes.extend_from_slice(&level1_from_entries);
            nodes_from_tiles = level1_from_tiles.clone();
        } else {
            // New nodes here imply new nodes on every level below, so the level below is
            // planned and is `levels[i - 1]`.
            let below = levels[i - 1];
            for j in l.old_end..l.end {
                let from = (j * 256 - below.start) as usize;
                nodes.push(perfect_root(&from_entries[i - 1][from..from + 256]));
                nodes_from_tiles.push(perfect_root(&v.served[i - 1][from..from + 256]));
            }
        }
        let mut inconsistent_here = None;
        for (offset, j) in (l.old_end..l.end).enumerate() {
            let at = old_count + offset;
            if inconsistent_here.is_none() && nodes_from_tiles[offset] != v.served[i][at] {
                inconsistent_here = Some(j);
            }
            if tile_differs.is_none() && nodes[at] != v.served[i][at] {
                tile_differs = Some((i, j));
            }
        }
        // Levels go up: the last one recorded is the highest.
        if let Some(j) = inconsistent_here {
            tiles_inconsistent = Some((i, j));
        }
        from_entries[i] = nodes;
    }

    let partial = |hashes: &[Hash], l: &LevelPlan| {
        let from = (((l.end >> 8) << 8) - l.start) as usize;
        hashes[from..].to_vec()
    };
    let mut entry_parts: Vec<Vec<Hash>> = Vec::new();
    let mut tile_parts: Vec<Vec<Hash>> = Vec::new();
    for (i, l) in levels.iter().enumerate().rev().filter(|(_, l)| l.level > 0) {
        entry_parts.push(partial(&from_entries[i], l));
        tile_parts.push(partial(&v.served[i], l));
    }
    entry_parts.push(last_entries);
    tile_parts.push(last_tile);
    let refs = |parts: &[Vec<Hash>]| -> Hash {
        let slices: Vec<&[Hash]> = parts.iter().map(Vec::as_slice).collect();
        root_from_partials(&slices)
    };
    let root_from_entries = refs(&entry_parts);
    let root_from_tiles = refs(&tile_parts);

    if root_from_entries == root {
        // The entries are the ones the checkpoint signs; any differing tile was altered.
        if let Some(m) = mismatch {
            return Err(VerifyError::TileMismatch {
                path: TilePath::Hashes(m.tile).to_string(),
                position: (m.index - m.tile.index() * 256) as u16,
                node: m.index,
                tree_level: 0,
            });
        }
        if let Some((i, j)) = tile_differs {
            return Err(v.tile_mismatch(i, j));
        }
    } else if root_from_tiles == root {
        // The top of the served tree is the one the checkpoint signs. Below the highest tile
        // node that its tile does not hash to, a tile was altered with its entries; where
        // the tiles agree, an entry that differs from its leaf hash was tampered with.
        let altered = tiles_inconsistent.map(|(i, j)| {
            let level = levels[i].level;
            let span = 1u64 << (8 * u32::from(level));
            (level - 1, j, j * span, (j + 1) * span)
        });
        match (altered, mismatch) {
            (Some((level, j, first_entry, end_entry)), m)
                if m.is_none_or(|m| first_entry <= m.index) =>
            {
                let tile = Tile::new(level, j, TILE_WIDTH).expect("a tile with a parent node");
                return Err(VerifyError::TileAltered {
                    path: TilePath::Hashes(tile).to_string(),
                    first_entry,
                    end_entry,
                });
            }
            (_, Some(m)) => return Err(m.error()),
            (_, None) => {
                return Err(VerifyError::RootMismatch {
                    size,
                    expected: root,
                    from_entries: root_from_entries,
                    from_tiles: root_from_tiles,
                });
            }
        }
    } else {
        return Err(VerifyError::RootMismatch {
            size,
            expected: root,
            from_entries: root_from_entries,
            from_tiles: root_from_tiles,
        });
    }

    if let Some((index, source)) = invalid {
        return Err(VerifyError::InvalidEntry { index, source });
    }
    Ok(VerifySummary {
        checkpoint,
        previous_size: old,
        new_entries: total,
        entries_by_type: by_type,
    })
}

struct Verifier<'a, F: ?Sized> {
    fetcher: &'a F,
    levels: &'a [LevelPlan],
    served: Vec<Vec<Hash>>,
}

impl<F: TileFetcher + ?Sized> Verifier<'_, F> {
    fn fetch_tile(&self, tile: &Tile) -> Result<Vec<Hash>, VerifyError<F::Error>> {
        let path = TilePath::Hashes(*tile);
        let bytes = self
            .fetcher
            .tile(&path)
            .map_err(|source| VerifyError::Fetch {
                path: path.to_string(),
                source,
            })?;
        let expected = usize::from(tile.width()) * 32;
        if bytes.len() != expected {
            return Err(VerifyError::MalformedTile {
                path: path.to_string(),
                len: bytes.len(),
                expected,
            });
        }
        Ok(bytes
            .chunks_exact(32)
            .map(|c| Hash(c.try_into().expect("32-byte chunk")))
            .collect())
    }

    /// The mismatch error for node `j` of plan level `i`.
    fn tile_mismatch(&self, i: usize, j: u64) -> VerifyError<F::Error> {
        let l = self.levels[i];
        let k = j / 256;
        let width = (l.end - k * 256).min(u64::from(TILE_WIDTH)) as u16;
        let tile = Tile::new(l.level, k, width).expect("a planned tile");
        VerifyError::TileMismatch {
            path: TilePath::Hashes(tile).to_string(),
            position: (j - k * 256) as u16,
            node: j,
            tree_level: l.level * TILE_HEIGHT,
        }
    }
}

/// The first leaf where a bundle's entries and its level-0 tile disagree, and what the
/// entries around it say happened.
#[derive(Clone, Copy, Debug)]
struct LeafMismatch {
    tile: Tile,
    index: u64,
    kind: MismatchKind,
}

#[derive(Clone, Copy, Debug)]
enum MismatchKind {
    Changed,
    Dropped,
    Inserted,
    Reordered { original_index: u64 },
}

impl LeafMismatch {
    fn find(tile: &Tile, start: u64, entries: &[Hash], leaves: &[Hash]) -> Option<LeafMismatch> {
        let i = (0..entries.len().max(leaves.len()))
            .find(|&i| entries.get(i).is_none() || entries.get(i) != leaves.get(i))?;
        let kind = if entries.len() < leaves.len()
            && (i == entries.len() || entries.get(i) == leaves.get(i + 1))
        {
            MismatchKind::Dropped
        } else if entries.len() > leaves.len()
            && (i == leaves.len() || entries.get(i + 1) == leaves.get(i))
        {
            MismatchKind::Inserted
        } else if let Some(j) = leaves.iter().position(|h| Some(h) == entries.get(i)) {
            MismatchKind::Reordered {
                original_index: start + j as u64,
            }
        } else {
            MismatchKind::Changed
        };
        Some(LeafMismatch {
            tile: *tile,
            index: start + i as u64,
            kind,
        })
    }

    fn error<E>(&self) -> VerifyError<E> {
        let path = TilePath::Entries(self.tile).to_string();
        match self.kind {
            MismatchKind::Changed => VerifyError::EntryChanged { index: self.index },
            MismatchKind::Dropped => VerifyError::EntryDropped {
                index: self.index,
                path,
            },
            MismatchKind::Inserted => VerifyError::EntryInserted {
                index: self.index,
                path,
            },
            MismatchKind::Reordered { original_index } => VerifyError::EntriesReordered {
                index: self.index,
                original_index,
            },
        }
    }
}

/// A checkpoint smaller than the verified state: prove it consistent (a stale cache or a
/// rollback) or inconsistent (a fork) with the tiles of the verified tree, through
/// `tlog_tiles`' authenticated tile reader.
fn rollback<F: TileFetcher + ?Sized>(
    previous: &LogState,
    checkpoint: &Checkpoint,
    fetcher: &F,
) -> VerifyError<F::Error> {
    let forked = |detail: &str| VerifyError::Forked {
        size: checkpoint.size,
        root: checkpoint.root_hash,
        previous_size: previous.size,
        previous_root: previous.root_hash,
        detail: detail.to_owned(),
    };
    let stale = VerifyError::Rollback {
        size: checkpoint.size,
        previous_size: previous.size,
    };
    if previous.size > MAX_LOG_SIZE {
        return stale;
    }
    if checkpoint.size == 0 {
        return if checkpoint.root_hash == EMPTY_ROOT {
            stale
        } else {
            forked("an empty tree with a non-empty root")
        };
    }
    let reader = TlogTiles {
        fetcher,
        failed: RefCell::new(false),
    };
    let hashes =
        tlog_tiles::TileHashReader::new(previous.size, previous.root_hash.to_tlog(), &reader);
    match tlog_tiles::prove_tree(previous.size, checkpoint.size, &hashes) {
        Ok(proof) => {
            match tlog_tiles::check_tree(
                &proof,
                previous.size,
                previous.root_hash.to_tlog(),
                checkpoint.size,
                checkpoint.root_hash.to_tlog(),
            ) {
                Ok(()) => stale,
                Err(_) => forked("the older checkpoint is not a prefix of the verified tree"),
            }
        }
        // Tiles for the verified size may be gone (logs may delete partial tiles): we
        // cannot tell a fork from a stale cache.
        Err(_) if *reader.failed.borrow() => stale,
        Err(tlog_tiles::Error::InconsistentTile) => {
            forked("the log's tiles do not rebuild the verified tree")
        }
        Err(_) => stale,
    }
}

/// Serves `tlog_tiles`' tile reads from a [`TileFetcher`].
struct TlogTiles<'a, F: ?Sized> {
    fetcher: &'a F,
    failed: RefCell<bool>,
}

impl<F: TileFetcher + ?Sized> tlog_tiles::TileReader for TlogTiles<'_, F> {
    fn height(&self) -> u8 {
        TILE_HEIGHT
    }

    fn read_tiles(&self, tiles: &[tlog_tiles::Tile]) -> Result<Vec<Vec<u8>>, tlog_tiles::Error> {
        let mut out = Vec::with_capacity(tiles.len());
        for t in tiles {
            let path = TilePath::Hashes(Tile::from_tlog(t));
            match self.fetcher.tile(&path) {
                Ok(bytes) => out.push(bytes),
                Err(_) => {
                    *self.failed.borrow_mut() = true;
                    return Err(tlog_tiles::Error::InvalidInput(format!("fetching {path}")));
                }
            }
        }
        Ok(out)
    }

    fn save_tiles(&self, _tiles: &[tlog_tiles::Tile], _data: &[Vec<u8>]) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_fetches_the_edge_of_the_old_tree_and_everything_new() {
        let paths: Vec<String> = needed_paths(0, 600)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            paths,
            [
                "tile/1/000.p/2",
                "tile/0/000",
                "tile/entries/000",
                "tile/0/001",
                "tile/entries/001",
                "tile/0/002.p/88",
                "tile/entries/002.p/88",
            ]
        );
        let paths: Vec<String> = needed_paths(300, 70_000)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(paths[0], "tile/2/000.p/1");
        assert_eq!(paths[1], "tile/1/000");
        assert_eq!(paths[2], "tile/1/001.p/17");
        assert_eq!(paths[3], "tile/0/001");
        assert_eq!(paths[4], "tile/entries/001");
        assert_eq!(paths.last().unwrap(), "tile/entries/273.p/112");
        assert_eq!(paths.len(), 3 + 2 * 273);
        // Nothing new, nothing to fetch; a bundle boundary fetches only new bundles.
        assert!(needed_paths(600, 600).is_empty());
        let paths: Vec<String> = needed_paths(256, 300)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            paths,
            ["tile/1/000.p/1", "tile/0/001.p/44", "tile/entries/001.p/44"]
        );
    }
}
