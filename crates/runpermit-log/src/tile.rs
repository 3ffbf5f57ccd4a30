//! C2SP `tlog-tiles` coordinates: tiles, their paths, and entry bundles.
//!
//! A tile at level `L` and index `N` holds up to 256 consecutive hashes of tree level `8·L`
//! (level 0: leaf hashes), 32 bytes each; a full tile holds 256, a partial one `W` < 256.
//! Paths (relative to the log's prefix, for example `/log/`):
//!
//! - `tile/<L>/<N>[.p/<W>]`: a tile of hashes;
//! - `tile/entries/<N>[.p/<W>]`: the entry bundle of level-0 tile `N`, each entry preceded
//!   by its length as a big-endian `u16`.
//!
//! `N` is written in 3-digit groups, all but the last prefixed with `x`: 1234067 is
//! `x001/x234/067`. `tlog_tiles::Tile::path` writes Go's checksum-database form
//! (`tile/8/0/…`, `tile/8/data/…`), so the C2SP form is written and parsed here.

use std::fmt;

use crate::error::BundleError;

/// Tile height: each tile spans 8 tree levels (256 hashes), as C2SP `tlog-tiles` fixes.
pub(crate) const TILE_HEIGHT: u8 = 8;

/// Hashes in a full tile, and entries in a full bundle.
pub const TILE_WIDTH: u16 = 256;

/// The largest log this crate handles: 2^62 entries. Stored hash indexes (about twice the
/// entry count) then fit in 64 bits with room to spare.
pub const MAX_LOG_SIZE: u64 = 1 << 62;

/// One tile: its level, its index within the level and its width (1..=256 hashes; 256 is a
/// full tile). Only tiles that a log of at most [`MAX_LOG_SIZE`] entries can have exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tile {
    level: u8,
    index: u64,
    width: u16,
}

impl Tile {
    /// The tile at `level`, `index` with `width` hashes, or `None` when the width is not in
    /// 1..=256 or no log of at most [`MAX_LOG_SIZE`] entries has such a tile.
    pub fn new(level: u8, index: u64, width: u16) -> Option<Tile> {
        if !(1..=TILE_WIDTH).contains(&width) || level > 7 {
            return None;
        }
        // The entries the tile spans end at (256·index + width)·256^level.
        let end = (u128::from(index) * 256 + u128::from(width)) << (8 * u32::from(level));
        (end <= u128::from(MAX_LOG_SIZE)).then_some(Tile {
            level,
            index,
            width,
        })
    }

    /// The level: tree level `8·level` (0 holds leaf hashes).
    pub fn level(&self) -> u8 {
        self.level
    }

    /// The index within the level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// How many hashes the tile holds (256 when full).
    pub fn width(&self) -> u16 {
        self.width
    }

    /// Whether the tile holds all 256 hashes.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// The width for a path's `.p/<W>` suffix: `None` for a full tile.
    pub fn partial_width(&self) -> Option<u8> {
        u8::try_from(self.width).ok()
    }

    /// The tile's path, `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        tile_path(self.level, self.index, self.partial_width())
    }

    /// The path of the entry bundle that goes with this level-0 tile,
    /// `tile/entries/<N>[.p/<W>]`. (For higher levels: the bundle with the same index and
    /// width, which is not what the tile hashes.)
    pub fn entries_path(&self) -> String {
        entries_path(self.index, self.partial_width())
    }

    pub(crate) fn to_tlog(self) -> tlog_tiles::Tile {
        tlog_tiles::Tile::new(
            TILE_HEIGHT,
            self.level,
            self.index,
            u32::from(self.width),
            false,
        )
    }

    pub(crate) fn from_tlog(t: &tlog_tiles::Tile) -> Tile {
        Tile {
            level: t.level(),
            index: t.level_index(),
            width: u16::try_from(t.width()).expect("tiles of height 8 are at most 256 wide"),
        }
    }
}

/// A parsed C2SP resource path under the log prefix (what a router serves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TilePath {
    /// `tile/<L>/<N>[.p/<W>]`: the hashes of a tile.
    Hashes(Tile),
    /// `tile/entries/<N>[.p/<W>]`: the entry bundle of level-0 tile `N`; the tile given is
    /// that level-0 tile.
    Entries(Tile),
}

impl TilePath {
    /// The tile: the hash tile itself, or the level-0 tile an entry bundle goes with.
    pub fn tile(&self) -> Tile {
        match self {
            TilePath::Hashes(t) | TilePath::Entries(t) => *t,
        }
    }
}

impl fmt::Display for TilePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TilePath::Hashes(t) => f.write_str(&t.path()),
            TilePath::Entries(t) => f.write_str(&t.entries_path()),
        }
    }
}

/// The path of hash tile `n` at `level`: `tile/<level>/<n>`, plus `.p/<w>` for a partial
/// tile of width `w`.
///
/// # Panics
///
/// If `partial_width` is `Some(0)`: no tile is empty.
pub fn tile_path(level: u8, n: u64, partial_width: Option<u8>) -> String {
    format!("tile/{level}/{}", index_and_width(n, partial_width))
}

/// The path of entry bundle `n`: `tile/entries/<n>`, plus `.p/<w>` for a partial bundle of
/// `w` entries.
///
/// # Panics
///
/// If `partial_width` is `Some(0)`: no bundle is empty.
pub fn entries_path(n: u64, partial_width: Option<u8>) -> String {
    format!("tile/entries/{}", index_and_width(n, partial_width))
}

fn index_and_width(n: u64, partial_width: Option<u8>) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    let mut rest = n / 1000;
    while rest > 0 {
        groups.push(format!("x{:03}", rest % 1000));
        rest /= 1000;
    }
    groups.reverse();
    let mut out = groups.join("/");
    if let Some(w) = partial_width {
        assert!(w > 0, "a partial tile holds 1 to 255 hashes, not 0");
        out.push_str(&format!(".p/{w}"));
    }
    out
}

/// Parses a path relative to the log prefix (`tile/0/x001/234.p/17`,
/// `tile/entries/000`). Returns `None` for anything else, and for non-canonical spellings
/// of a valid path: leading zeros in a level or width, an index group without its `x`, a
/// first group of `x000`, a width of 0 or ≥ 256, and tiles that no log of at most
/// [`MAX_LOG_SIZE`] entries has.
pub fn parse_path(path: &str) -> Option<TilePath> {
    let rest = path.strip_prefix("tile/")?;
    let (kind, rest) = rest.split_once('/')?;
    let mut parts: Vec<&str> = rest.split('/').collect();
    let mut width = TILE_WIDTH;
    if parts.len() >= 2 && parts[parts.len() - 2].ends_with(".p") {
        let w = parse_decimal(parts.pop()?)?;
        if !(1..u64::from(TILE_WIDTH)).contains(&w) {
            return None;
        }
        width = u16::try_from(w).ok()?;
        let last = parts.len() - 1;
        parts[last] = parts[last].strip_suffix(".p")?;
    }
    let index = parse_index(&parts)?;
    if kind == "entries" {
        return Tile::new(0, index, width).map(TilePath::Entries);
    }
    let level = parse_decimal(kind)?;
    if level > 63 {
        return None;
    }
    Tile::new(u8::try_from(level).ok()?, index, width).map(TilePath::Hashes)
}

/// A decimal with no sign and no leading zeros (except `0` itself).
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// `x001/x234/067` → 1234067, refusing non-canonical groupings.
fn parse_index(groups: &[&str]) -> Option<u64> {
    let (last, leading) = groups.split_last()?;
    let three_digits = |g: &str| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit());
    let mut value: u64 = 0;
    for (i, group) in leading.iter().enumerate() {
        let digits = group.strip_prefix('x').filter(|d| three_digits(d))?;
        if i == 0 && digits == "000" {
            return None;
        }
        value = value
            .checked_mul(1000)?
            .checked_add(digits.parse::<u64>().ok()?)?;
    }
    if !three_digits(last) {
        return None;
    }
    value.checked_mul(1000)?.checked_add(last.parse().ok()?)
}

/// An entry bundle: each entry preceded by its length as a big-endian `u16`.
///
/// # Panics
///
/// If an entry is longer than 65,535 bytes. Entries made by
/// [`encode`](crate::encode) are always shorter.
pub fn entries_tile(entries: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for entry in entries {
        let len = u16::try_from(entry.len()).expect("a bundled entry is at most 65,535 bytes");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    out
}

/// The entries of a bundle made by [`entries_tile`], refusing a truncated length or entry.
pub fn parse_entries_tile(bundle: &[u8]) -> Result<Vec<Vec<u8>>, BundleError> {
    let mut entries = Vec::new();
    let mut rest = bundle;
    while !rest.is_empty() {
        let offset = bundle.len() - rest.len();
        let [hi, lo, tail @ ..] = rest else {
            return Err(BundleError::TruncatedLength {
                entry: entries.len(),
                offset,
            });
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if tail.len() < len {
            return Err(BundleError::TruncatedEntry {
                entry: entries.len(),
                offset,
                length: len,
                available: tail.len(),
            });
        }
        entries.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_c2sp_examples() {
        // c2sp.org/tlog-tiles: "index 1234067 will be encoded as x001/x234/067".
        assert_eq!(tile_path(0, 1_234_067, None), "tile/0/x001/x234/067");
        assert_eq!(tile_path(2, 1_234_067, Some(1)), "tile/2/x001/x234/067.p/1");
        assert_eq!(tile_path(0, 0, None), "tile/0/000");
        assert_eq!(tile_path(1, 999, Some(255)), "tile/1/999.p/255");
        assert_eq!(tile_path(0, 1000, None), "tile/0/x001/000");
        assert_eq!(entries_path(0, Some(112)), "tile/entries/000.p/112");
        assert_eq!(entries_path(1_234_067, None), "tile/entries/x001/x234/067");
        assert_eq!(
            entries_path(u64::MAX, None),
            "tile/entries/x018/x446/x744/x073/x709/x551/615"
        );
        let t = Tile::new(0, 273, 112).unwrap();
        assert_eq!(t.path(), "tile/0/273.p/112");
        assert_eq!(t.entries_path(), "tile/entries/273.p/112");
        assert_eq!(Tile::new(1, 0, 256).unwrap().path(), "tile/1/000");
    }

    #[test]
    #[should_panic(expected = "not 0")]
    fn zero_width_is_not_a_path() {
        let _ = tile_path(0, 1, Some(0));
    }

    #[test]
    fn parse_round_trips() {
        for (path, parsed) in [
            (
                "tile/0/x001/x234/067",
                TilePath::Hashes(Tile::new(0, 1_234_067, 256).unwrap()),
            ),
            (
                "tile/1/x001/x234/067.p/8",
                TilePath::Hashes(Tile::new(1, 1_234_067, 8).unwrap()),
            ),
            (
                "tile/entries/000.p/1",
                TilePath::Entries(Tile::new(0, 0, 1).unwrap()),
            ),
            (
                "tile/entries/x001/000",
                TilePath::Entries(Tile::new(0, 1000, 256).unwrap()),
            ),
            (
                "tile/7/000.p/63",
                TilePath::Hashes(Tile::new(7, 0, 63).unwrap()),
            ),
            (
                "tile/0/255.p/255",
                TilePath::Hashes(Tile::new(0, 255, 255).unwrap()),
            ),
        ] {
            assert_eq!(parse_path(path), Some(parsed), "{path}");
            assert_eq!(parsed.to_string(), path);
        }
    }

    #[test]
    fn parse_refuses_malformed_paths() {
        for bad in [
            "",
            "tile",
            "tile/",
            "tile/0",
            "tile/0/",
            "/tile/0/000",
            "tile/0/000/",
            "tile/00/000",
            "tile/01/000",
            "tile/+1/000",
            "tile/64/000",
            "tile/8/000",
            "tile/0/00",
            "tile/0/0000",
            "tile/0/1",
            "tile/0/x000/001",
            "tile/0/001/002",
            "tile/0/x01/002",
            "tile/0/y001/002",
            "tile/0/x001/x002",
            "tile/0/x00a/002",
            "tile/0/000.p/0",
            "tile/0/000.p/00",
            "tile/0/000.p/01",
            "tile/0/000.p/256",
            "tile/0/000.p/",
            "tile/0/000.p",
            "tile/0/000.q/5",
            "tile/0/000/p/5",
            "tile/0/000.p/5/6",
            "tile/entries/000.p/-1",
            "tile/entry/000",
            "tile/data/000",
            "tile/8/0/000",
            "tile/entries/x018/x446/x744/x073/x709/x551/616",
            "tile/entries/x999/x999/x999/x999/x999/x999/x999/999",
            // Beyond MAX_LOG_SIZE entries.
            "tile/0/x018/x014/x398/x509/x481/984",
            "tile/7/001",
        ] {
            assert_eq!(parse_path(bad), None, "{bad:?}");
        }
        // The largest level-0 tile of a log of MAX_LOG_SIZE entries is fine.
        let last = MAX_LOG_SIZE / 256 - 1;
        assert!(parse_path(&tile_path(0, last, None)).is_some());
        assert!(parse_path(&tile_path(0, last + 1, Some(1))).is_none());
    }

    #[test]
    fn bundles_round_trip() {
        let big = vec![7u8; 65_535];
        let entries: Vec<&[u8]> = vec![b"a", b"", b"hello", &big];
        let bundle = entries_tile(&entries);
        assert_eq!(&bundle[..3], &[0, 1, b'a']);
        assert_eq!(&bundle[3..5], &[0, 0]);
        assert_eq!(parse_entries_tile(&bundle).unwrap(), entries);
        assert_eq!(parse_entries_tile(&[]).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn truncated_bundles_are_refused() {
        assert_eq!(
            parse_entries_tile(&[0, 1, b'a', 0]),
            Err(BundleError::TruncatedLength {
                entry: 1,
                offset: 3
            })
        );
        assert_eq!(
            parse_entries_tile(&[0, 1, b'a', 0, 3, b'x']),
            Err(BundleError::TruncatedEntry {
                entry: 1,
                offset: 3,
                length: 3,
                available: 1
            })
        );
    }
}
