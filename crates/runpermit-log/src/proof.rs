//! Inclusion and consistency proofs (RFC 6962 §2.1.1–2.1.2, RFC 9162 §2.1.3–2.1.4), and proof
//! bundles in the C2SP `tlog-proof` text format: what a permit travels with.
//!
//! A proof bundle (`.tlog-proof`) is:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the logged entry's bytes>
//! index <entry index>
//! <inclusion proof hash 1, base64>
//! …
//!
//! <the signed checkpoint note, verbatim>
//! ```
//!
//! The `extra` line carries the entry itself so that a holder can check offline that
//! *this exact entry* (for example the `permit_issued` entry with its token) is public. It
//! is not trusted: verification hashes the entry and checks the proof against the signed
//! checkpoint.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::checkpoint::{Checkpoint, VerifierKey, verify_checkpoint_with};
use crate::entry::{LogEntry, decode};
use crate::error::{CheckpointError, ProofError, TreeError};
use crate::tile::MAX_LOG_SIZE;
use crate::tree::{Hash, HashReader, TlogReader, leaf_hash};

/// The most hashes a proof can have (a tree of 2^64 entries needs 64); longer proofs are
/// refused before any work.
pub const MAX_PROOF_HASHES: usize = 64;

/// The proof that entry `index` is in the tree of `size` entries whose stored hashes
/// `storage` reads: the audit path from the leaf's sibling up to the root's child.
pub fn inclusion_proof<R: HashReader + ?Sized>(
    index: u64,
    size: u64,
    storage: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    if size > MAX_LOG_SIZE {
        return Err(TreeError::TooLarge);
    }
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size });
    }
    let reader = TlogReader::new(storage);
    tlog_tiles::prove_record(size, index, &reader)
        .map(|p| p.into_iter().map(Hash::from_tlog).collect())
        .map_err(|e| reader.error(TreeError::Tlog(e.to_string())))
}

/// The proof that the tree of `old_size` entries is a prefix of the tree of `new_size`
/// (1 ≤ old_size ≤ new_size) whose stored hashes `storage` reads. Empty when the sizes are
/// equal.
pub fn consistency_proof<R: HashReader + ?Sized>(
    old_size: u64,
    new_size: u64,
    storage: &R,
) -> Result<Vec<Hash>, TreeError<R::Error>> {
    if new_size > MAX_LOG_SIZE {
        return Err(TreeError::TooLarge);
    }
    if old_size == 0 || old_size > new_size {
        return Err(TreeError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    let reader = TlogReader::new(storage);
    tlog_tiles::prove_tree(new_size, old_size, &reader)
        .map(|p| p.into_iter().map(Hash::from_tlog).collect())
        .map_err(|e| reader.error(TreeError::Tlog(e.to_string())))
}

fn invalid(kind: &'static str, reason: impl Into<String>) -> ProofError {
    ProofError::Invalid {
        kind,
        reason: reason.into(),
    }
}

/// Checks that `proof` shows the leaf `leaf_hash` at `index` in the tree of `size` entries
/// with root `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    const KIND: &str = "inclusion";
    if index >= size {
        return Err(invalid(
            KIND,
            format!("index {index} is not in a tree of {size} entries"),
        ));
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(invalid(KIND, format!("{} hashes is too many", proof.len())));
    }
    let proof: Vec<tlog_tiles::Hash> = proof.iter().map(|h| h.to_tlog()).collect();
    tlog_tiles::check_record(&proof, size, root.to_tlog(), index, leaf_hash.to_tlog()).map_err(
        |_| {
            invalid(
                KIND,
                format!(
                    "the proof does not lead from entry {index} to the root {root} of the tree of {size} entries"
                ),
            )
        },
    )
}

/// Checks that `proof` shows the tree of `old_size` entries with root `old_root` to be a
/// prefix of the tree of `new_size` entries with root `new_root`. Needs 1 ≤ old_size ≤
/// new_size; equal sizes need equal roots and an empty proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    const KIND: &str = "consistency";
    if old_size == 0 {
        return Err(invalid(
            KIND,
            "every tree extends the empty tree; there is nothing to prove from size 0",
        ));
    }
    if old_size > new_size {
        return Err(invalid(
            KIND,
            format!("the old size {old_size} is larger than the new size {new_size}"),
        ));
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(invalid(KIND, format!("{} hashes is too many", proof.len())));
    }
    let proof: Vec<tlog_tiles::Hash> = proof.iter().map(|h| h.to_tlog()).collect();
    tlog_tiles::check_tree(
        &proof,
        new_size,
        new_root.to_tlog(),
        old_size,
        old_root.to_tlog(),
    )
    .map_err(|_| {
        invalid(
            KIND,
            format!(
                "the tree of {old_size} entries (root {old_root}) is not a prefix of the tree of {new_size} entries (root {new_root})"
            ),
        )
    })
}

/// An offline-verifiable proof that an entry is in the log, in the C2SP `tlog-proof@v1`
/// text format (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofBundle {
    /// The entry's index in the log.
    pub index: u64,
    /// The entry's bytes (the `extra` line), when the bundle carries them.
    pub entry: Option<Vec<u8>>,
    /// The inclusion proof in the checkpoint's tree.
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

/// What [`ProofBundle::verify_entry`] proved: the entry, when it was appended, where it
/// is, and the checkpoint it is under.
#[derive(Clone, Debug, PartialEq)]
pub struct ProvedEntry {
    /// The checkpoint that includes the entry.
    pub checkpoint: Checkpoint,
    /// The entry's index.
    pub index: u64,
    /// The decoded entry.
    pub entry: LogEntry,
    /// When it was appended (unix seconds).
    pub at: i64,
}

impl ProofBundle {
    /// The first line of every bundle.
    pub const HEADER: &'static str = "c2sp.org/tlog-proof@v1";

    /// Reads a bundle in the `c2sp.org/tlog-proof@v1` format.
    pub fn parse(text: &str) -> Result<ProofBundle, ProofError> {
        let malformed = |what: &str| ProofError::Malformed(what.to_owned());
        let rest = text
            .strip_prefix(Self::HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or_else(|| malformed("the first line must be c2sp.org/tlog-proof@v1"))?;
        let (mut line, mut rest) = rest
            .split_once('\n')
            .ok_or_else(|| malformed("missing the index line"))?;
        let mut entry = None;
        if let Some(extra) = line.strip_prefix("extra ") {
            entry = Some(
                STANDARD
                    .decode(extra)
                    .map_err(|_| malformed("the extra line is not standard base64"))?,
            );
            (line, rest) = rest
                .split_once('\n')
                .ok_or_else(|| malformed("missing the index line"))?;
        }
        let index_text = line
            .strip_prefix("index ")
            .ok_or_else(|| malformed("expected \"index <n>\""))?;
        let canonical = !index_text.is_empty()
            && index_text.bytes().all(|b| b.is_ascii_digit())
            && (index_text.len() == 1 || !index_text.starts_with('0'));
        let index = index_text
            .parse::<u64>()
            .ok()
            .filter(|_| canonical)
            .ok_or_else(|| malformed("the index is not a decimal number without leading zeros"))?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or_else(|| malformed("missing the empty line before the checkpoint"))?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_HASHES {
                return Err(malformed("more than 64 proof hashes"));
            }
            proof.push(
                Hash::from_base64(line)
                    .map_err(|_| malformed("a proof line is not a base64 SHA-256 hash"))?,
            );
        }
        if rest.is_empty() {
            return Err(malformed("missing the checkpoint"));
        }
        Ok(ProofBundle {
            index,
            entry,
            proof,
            checkpoint: rest.to_owned(),
        })
    }

    /// Checks offline that `expected_entry` is entry [`index`](Self::index) of the log whose
    /// verifier key is `vkey`: the checkpoint's signature and origin, that the carried
    /// entry (if any) is `expected_entry`, and the inclusion proof. Returns the checkpoint.
    pub fn verify(&self, vkey: &str, expected_entry: &[u8]) -> Result<Checkpoint, ProofError> {
        let key = VerifierKey::parse(vkey).map_err(CheckpointError::from)?;
        let checkpoint = verify_checkpoint_with(&self.checkpoint, &key)?;
        if self.entry.as_deref().is_some_and(|e| e != expected_entry) {
            return Err(ProofError::WrongEntry);
        }
        verify_inclusion(
            &leaf_hash(expected_entry),
            self.index,
            checkpoint.size,
            &self.proof,
            &checkpoint.root_hash,
        )?;
        Ok(checkpoint)
    }

    /// Checks the carried entry as [`verify`](Self::verify) does, then decodes it: what a
    /// gate uses to see that a permit's `permit_issued` entry (with its token) is public.
    pub fn verify_entry(&self, vkey: &str) -> Result<ProvedEntry, ProofError> {
        let bytes = self.entry.as_deref().ok_or(ProofError::NoEntry)?;
        let checkpoint = self.verify(vkey, bytes)?;
        let (entry, at) = decode(bytes)?;
        Ok(ProvedEntry {
            checkpoint,
            index: self.index,
            entry,
            at,
        })
    }
}

impl fmt::Display for ProofBundle {
    /// The `c2sp.org/tlog-proof@v1` text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", Self::HEADER)?;
        if let Some(entry) = &self.entry {
            writeln!(f, "extra {}", STANDARD.encode(entry))?;
        }
        writeln!(f, "index {}", self.index)?;
        for hash in &self.proof {
            writeln!(f, "{hash}")?;
        }
        writeln!(f)?;
        f.write_str(&self.checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::tests::{NAME, key};
    use crate::checkpoint::{LogKey, sign_checkpoint};
    use crate::entry::encode;
    use crate::entry::tests::{AT, samples};
    use crate::tree::{append, tree_hash};

    fn log(n: u64) -> (Vec<Hash>, Vec<Hash>) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut stored = Vec::new();
        stored.extend(append(0, &leaves, &stored).unwrap().hashes);
        (leaves, stored)
    }

    #[test]
    fn every_inclusion_proof_verifies_and_no_other() {
        let (leaves, stored) = log(37);
        for size in 1..=37u64 {
            let root = tree_hash(&leaves[..size as usize]);
            for index in 0..size {
                let proof = inclusion_proof(index, size, &stored).unwrap();
                let leaf = &leaves[index as usize];
                verify_inclusion(leaf, index, size, &proof, &root).unwrap();
                if size > 1 {
                    let other = (index + 1) % size;
                    assert!(verify_inclusion(leaf, other, size, &proof, &root).is_err());
                }
                assert!(
                    verify_inclusion(&leaves[36], index, size, &proof, &root).is_err()
                        || index == 36
                );
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node_flip(first);
                    assert!(verify_inclusion(leaf, index, size, &bad, &root).is_err());
                    assert!(verify_inclusion(leaf, index, size, &proof[1..], &root).is_err());
                }
            }
        }
        assert_eq!(
            inclusion_proof(3, 3, &stored),
            Err(TreeError::IndexOutOfRange { index: 3, size: 3 })
        );
    }

    fn node_flip(h: &Hash) -> Hash {
        let mut b = h.0;
        b[0] ^= 1;
        Hash(b)
    }

    #[test]
    fn every_consistency_proof_verifies_and_no_other() {
        let (leaves, stored) = log(40);
        for new in 1..=40u64 {
            let new_root = tree_hash(&leaves[..new as usize]);
            for old in 1..=new {
                let old_root = tree_hash(&leaves[..old as usize]);
                let proof = consistency_proof(old, new, &stored).unwrap();
                verify_consistency(old, new, &old_root, &new_root, &proof).unwrap();
                assert!(
                    verify_consistency(old, new, &new_root, &old_root, &proof).is_err()
                        || old == new
                );
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node_flip(first);
                    assert!(verify_consistency(old, new, &old_root, &new_root, &bad).is_err());
                }
            }
        }
        assert!(consistency_proof(0, 5, &stored).is_err());
        assert!(consistency_proof(6, 5, &stored).is_err());
        let root = tree_hash(&leaves[..5]);
        assert!(verify_consistency(0, 5, &root, &root, &[]).is_err());
        let too_long = vec![root; 65];
        assert!(verify_consistency(1, 5, &root, &root, &too_long).is_err());
        assert!(verify_inclusion(&root, 1, 5, &too_long, &root).is_err());
    }

    fn bundle_for(index: usize, entries: &[Vec<u8>], key: &LogKey) -> ProofBundle {
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        let mut stored = Vec::new();
        let a = append(0, &leaves, &stored).unwrap();
        stored.extend(a.hashes);
        let size = entries.len() as u64;
        let note = sign_checkpoint(
            &Checkpoint {
                origin: key.name().into(),
                size,
                root_hash: a.root,
            },
            key,
        )
        .unwrap();
        ProofBundle {
            index: index as u64,
            entry: Some(entries[index].clone()),
            proof: inclusion_proof(index as u64, size, &stored).unwrap(),
            checkpoint: note,
        }
    }

    #[test]
    fn proof_bundles_round_trip_and_verify_offline() {
        let key = key();
        let entries: Vec<Vec<u8>> = samples().iter().map(|e| encode(e, AT).unwrap()).collect();
        let bundle = bundle_for(3, &entries, &key);
        let text = bundle.to_string();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
        assert!(text.contains("\nindex 3\n"));
        assert!(text.contains(&format!("\n\n{NAME}\n{}\n", entries.len())));
        let parsed = ProofBundle::parse(&text).unwrap();
        assert_eq!(parsed, bundle);
        let vkey = key.verifier_key();
        let cp = parsed.verify(&vkey, &entries[3]).unwrap();
        assert_eq!(cp.size, entries.len() as u64);
        let proved = parsed.verify_entry(&vkey).unwrap();
        assert_eq!(proved.entry, samples()[3]);
        assert_eq!((proved.index, proved.at), (3, AT));
        // Without the extra line, the caller's entry is checked.
        let bare = ProofBundle {
            entry: None,
            ..bundle.clone()
        };
        let bare_text = bare.to_string();
        assert!(bare_text.starts_with("c2sp.org/tlog-proof@v1\nindex 3\n"));
        assert_eq!(ProofBundle::parse(&bare_text).unwrap(), bare);
        bare.verify(&vkey, &entries[3]).unwrap();
        assert_eq!(bare.verify_entry(&vkey), Err(ProofError::NoEntry));
    }

    #[test]
    fn tampered_bundles_are_refused() {
        let key = key();
        let vkey = key.verifier_key();
        let entries: Vec<Vec<u8>> = samples().iter().map(|e| encode(e, AT).unwrap()).collect();
        let bundle = bundle_for(3, &entries, &key);
        assert_eq!(
            bundle.verify(&vkey, &entries[4]),
            Err(ProofError::WrongEntry)
        );
        let mut other_entry = bundle.clone();
        other_entry.entry = Some(entries[4].clone());
        assert!(matches!(
            other_entry.verify_entry(&vkey),
            Err(ProofError::Invalid {
                kind: "inclusion",
                ..
            })
        ));
        let mut moved = bundle.clone();
        moved.index = 4;
        assert!(moved.verify(&vkey, &entries[3]).is_err());
        let mut bad_hash = bundle.clone();
        bad_hash.proof[1] = node_flip(&bad_hash.proof[1]);
        assert!(bad_hash.verify(&vkey, &entries[3]).is_err());
        let stranger = LogKey::from_seed(NAME, &[1; 32]).unwrap();
        assert!(matches!(
            bundle.verify(&stranger.verifier_key(), &entries[3]),
            Err(ProofError::Checkpoint(
                CheckpointError::NotSignedByKey { .. }
            ))
        ));
        // A checkpoint for a bigger tree signed by the log does not help a forged path.
        let forged = bundle_for(3, &entries[..5], &key);
        let mut mixed = bundle.clone();
        mixed.checkpoint = forged.checkpoint;
        assert!(mixed.verify(&vkey, &entries[3]).is_err());
    }

    #[test]
    fn malformed_bundles_are_refused() {
        let key = key();
        let entries: Vec<Vec<u8>> = samples().iter().map(|e| encode(e, AT).unwrap()).collect();
        let text = bundle_for(5, &entries, &key).to_string();
        for bad in [
            String::new(),
            text.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
            text.replacen("index 5", "index 05", 1),
            text.replacen("index 5", "index -5", 1),
            text.replacen("index 5", "idx 5", 1),
            text.replacen("extra ", "extra !", 1),
            text.replacen("\n\n", "\n", 1),
            text[..text.find("\n\n").unwrap() + 2].to_owned(),
            text.replacen("index 5\n", "index 5\nnot-a-hash\n", 1),
        ] {
            assert!(
                matches!(ProofBundle::parse(&bad), Err(ProofError::Malformed(_))),
                "{bad}"
            );
        }
        let many = text.replacen(
            "index 5\n",
            &format!("index 5\n{}", format!("{}\n", tree_hash(&[])).repeat(65)),
            1,
        );
        assert!(matches!(
            ProofBundle::parse(&many),
            Err(ProofError::Malformed(_))
        ));
    }
}
