//! Gossip: comparing checkpoints of one log seen from different places (the log itself, a
//! mirror, a witness's monitoring endpoint, an earlier run), so that a log showing different
//! histories to different people is caught.
//!
//! Every checkpoint here has already been verified under the log key. Two of them are
//! *consistent* when the smaller tree is a prefix of the larger; a [`Fork`] is the evidence
//! that they are not: both checkpoints and where each came from. [`relate`] says which check
//! two checkpoints need (same size: equal roots; different sizes: the smaller's root at its
//! size in the larger tree, or a consistency proof), and [`check_consistency`] /
//! [`check_prefix`] make it.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::error::TreeError;
use crate::proof::verify_consistency;
use crate::tree::{Hash, HashReader, root};

/// A verified checkpoint and where it was seen (a URL, a file, "the state file").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Where it came from, for the evidence.
    pub source: String,
}

impl fmt::Display for Sighting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: origin {}, size {}, root {}",
            self.source, self.checkpoint.origin, self.checkpoint.size, self.checkpoint.root_hash
        )
    }
}

/// Two checkpoints of one log, each validly signed, that cannot both be true.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Fork {
    /// One checkpoint.
    pub first: Box<Sighting>,
    /// The other.
    pub second: Box<Sighting>,
    /// Why they are inconsistent.
    pub detail: String,
}

impl fmt::Display for Fork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fork: the log signed two inconsistent checkpoints ({})\n  {}\n  {}",
            self.detail, self.first, self.second
        )
    }
}

/// How a peer's checkpoint relates to ours, and what remains to check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Relation {
    /// Same size and root: nothing to check.
    Same,
    /// The peer's tree is smaller: its root must be our tree's root at its size.
    Smaller,
    /// The peer's tree is larger: ours must be a prefix of it (a consistency proof).
    Larger,
}

/// How `peer` relates to `ours`; a fork when they have the same size and different roots.
/// Checkpoints of different origins are not compared (an error naming both).
pub fn relate(ours: &Sighting, peer: &Sighting) -> Result<Relation, Fork> {
    let (a, b) = (&ours.checkpoint, &peer.checkpoint);
    if a.origin != b.origin {
        return Err(fork(ours, peer, "they name different logs"));
    }
    match b.size.cmp(&a.size) {
        Ordering::Equal if a.root_hash == b.root_hash => Ok(Relation::Same),
        Ordering::Equal => Err(fork(ours, peer, "same size, different roots")),
        Ordering::Less => Ok(Relation::Smaller),
        Ordering::Greater => Ok(Relation::Larger),
    }
}

/// Checks that `smaller` (of at most `larger`'s size) has the root that `larger`'s tree has
/// at its size, reading `larger`'s stored hashes through `hashes`.
pub fn check_prefix<R: HashReader + ?Sized>(
    smaller: &Sighting,
    larger: &Sighting,
    hashes: &R,
) -> Result<Result<(), Fork>, TreeError<R::Error>> {
    match relate(larger, smaller) {
        Err(f) => return Ok(Err(f)),
        Ok(Relation::Same) => return Ok(Ok(())),
        Ok(Relation::Larger) => {
            return Ok(Err(fork(
                smaller,
                larger,
                "check_prefix was given the larger checkpoint first",
            )));
        }
        Ok(Relation::Smaller) => {}
    }
    let at = root(smaller.checkpoint.size, hashes)?;
    if at == smaller.checkpoint.root_hash {
        Ok(Ok(()))
    } else {
        Ok(Err(fork(
            smaller,
            larger,
            &format!(
                "the larger tree's root at size {} is {at}",
                smaller.checkpoint.size
            ),
        )))
    }
}

/// Checks the consistency proof `proof` from `older` to `newer` (any order of sizes).
pub fn check_consistency(older: &Sighting, newer: &Sighting, proof: &[Hash]) -> Result<(), Fork> {
    let (older, newer) = match relate(older, newer)? {
        Relation::Same => return Ok(()),
        Relation::Larger => (older, newer),
        Relation::Smaller => (newer, older),
    };
    let (a, b) = (&older.checkpoint, &newer.checkpoint);
    if a.size == 0 {
        return Ok(());
    }
    verify_consistency(a.size, b.size, &a.root_hash, &b.root_hash, proof)
        .map_err(|e| fork(older, newer, &format!("the consistency proof fails: {e}")))
}

/// The larger of two consistent checkpoints (the first on a tie): what to remember as the
/// largest seen.
pub fn largest(a: Sighting, b: Sighting) -> Sighting {
    if b.checkpoint.size > a.checkpoint.size {
        b
    } else {
        a
    }
}

/// A fork between `first` and `second` with `detail`.
pub fn fork(first: &Sighting, second: &Sighting, detail: &str) -> Fork {
    Fork {
        first: Box::new(first.clone()),
        second: Box::new(second.clone()),
        detail: detail.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proof::consistency_proof;
    use crate::tree::{append, leaf_hash};

    const LOG: &str = "log.example.org/runpermit";

    fn tree(leaves: &[&str]) -> (Vec<Hash>, Vec<Hash>) {
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_bytes())).collect();
        let stored = append(0, &hashes, &Vec::<Hash>::new()).unwrap().hashes;
        (hashes, stored)
    }

    fn seen(stored: &Vec<Hash>, size: u64, source: &str) -> Sighting {
        Sighting {
            checkpoint: Checkpoint {
                origin: LOG.into(),
                size,
                root_hash: root(size, stored).unwrap(),
            },
            source: source.into(),
        }
    }

    #[test]
    fn same_size_different_root_is_a_fork_with_both_sides() {
        let (_, honest) = tree(&["a", "b", "c", "d"]);
        let (_, forked) = tree(&["a", "b", "X", "d"]);
        let ours = seen(&honest, 4, "https://log.example/log/checkpoint");
        let theirs = seen(&forked, 4, "https://witness.example/abc/checkpoint");
        assert_eq!(relate(&ours, &ours.clone()), Ok(Relation::Same));
        let fork = relate(&ours, &theirs).unwrap_err();
        let shown = fork.to_string();
        assert!(shown.starts_with("fork:"), "{shown}");
        for needed in [
            "same size, different roots",
            "https://log.example/log/checkpoint: origin log.example.org/runpermit, size 4",
            "https://witness.example/abc/checkpoint: origin log.example.org/runpermit, size 4",
            &ours.checkpoint.root_hash.to_string(),
            &theirs.checkpoint.root_hash.to_string(),
        ] {
            assert!(shown.contains(needed), "{shown} lacks {needed}");
        }
        let mut other = theirs.clone();
        other.checkpoint.origin = "elsewhere.example/log".into();
        assert!(relate(&ours, &other).is_err());
    }

    #[test]
    fn a_smaller_checkpoint_must_be_a_prefix_of_the_verified_tree() {
        let (_, honest) = tree(&["a", "b", "c", "d", "e"]);
        let (_, forked) = tree(&["a", "b", "X"]);
        let ours = seen(&honest, 5, "log");
        for size in 0..=5 {
            let peer = seen(&honest, size, "mirror");
            assert_eq!(check_prefix(&peer, &ours, &honest).unwrap(), Ok(()));
        }
        let prefix = seen(&forked, 2, "mirror");
        assert_eq!(check_prefix(&prefix, &ours, &honest).unwrap(), Ok(()));
        let bad = seen(&forked, 3, "mirror");
        let fork = check_prefix(&bad, &ours, &honest).unwrap().unwrap_err();
        assert!(fork.detail.contains("root at size 3"), "{fork}");
        assert_eq!(fork.first.source, "mirror");
    }

    #[test]
    fn a_larger_checkpoint_needs_a_valid_consistency_proof() {
        let (_, honest) = tree(&["a", "b", "c", "d", "e", "f", "g"]);
        let (_, forked) = tree(&["a", "b", "c", "X", "e", "f", "g"]);
        let ours = seen(&honest, 4, "log");
        let peer = seen(&honest, 7, "witness");
        assert_eq!(relate(&ours, &peer), Ok(Relation::Larger));
        let proof = consistency_proof(4, 7, &honest).unwrap();
        assert_eq!(check_consistency(&ours, &peer, &proof), Ok(()));
        // Either order.
        assert_eq!(check_consistency(&peer, &ours, &proof), Ok(()));
        let other = seen(&forked, 7, "witness");
        let fork = check_consistency(&ours, &other, &proof).unwrap_err();
        assert!(fork.detail.contains("consistency proof fails"), "{fork}");
        let forked_proof = consistency_proof(4, 7, &forked).unwrap();
        assert!(check_consistency(&ours, &other, &forked_proof).is_err());
        assert_eq!(largest(ours.clone(), peer.clone()), peer);
        assert_eq!(largest(peer.clone(), ours), peer);
    }
}
