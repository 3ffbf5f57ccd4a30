//! `runpermit log verify --peer`: other views of the same log (a witness's monitoring
//! endpoint, a mirror's `/log/checkpoint`, the largest checkpoint an earlier run saw),
//! each checked against the verified log; any inconsistency is a fork, printed with both
//! checkpoints as evidence. The comparisons are runpermit-log's (`relate`, `largest`); the
//! tree checks reuse `verify_log` over tiles.

use anyhow::{Result, anyhow};
use runpermit_log::{
    LogState, Relation, Sighting, VerifyError, fork, largest, relate, verify_checkpoint, verify_log,
};
use sha2::{Digest, Sha256};

use super::{HttpTiles, get_text};

/// What gossip compares against: the verified log.
pub(super) struct Verified<'a> {
    pub agent: &'a ureq::Agent,
    pub vkey: &'a str,
    /// The log's checkpoint note, as verified.
    pub note: &'a str,
    pub ours: Sighting,
    pub tiles: &'a HttpTiles,
}

/// The URL of a peer's checkpoint: `URL` itself when it ends in `/checkpoint` (another copy
/// of the log, `…/log/checkpoint`), else a witness's monitoring endpoint
/// `URL/<sha256 hex of the origin>/checkpoint`.
pub(super) fn checkpoint_url(peer: &str, origin: &str) -> String {
    let peer = peer.trim_end_matches('/');
    if peer.ends_with("/checkpoint") {
        peer.to_owned()
    } else {
        let hash: String = Sha256::digest(origin.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{peer}/{hash}/checkpoint")
    }
}

/// Compares every peer (and the largest checkpoint seen before) with the verified log.
/// Returns the largest checkpoint seen now (to keep), or the fork as an error. A peer that
/// cannot be reached, or whose checkpoint is not signed by the log key, is reported on
/// stderr and skipped: it is no evidence either way.
pub(super) fn gossip(
    v: &Verified<'_>,
    peers: &[String],
    seen_before: Option<Sighting>,
) -> Result<Sighting> {
    let mut most = v.ours.clone();
    if let Some(before) = seen_before {
        let before = Sighting {
            source: format!("a checkpoint seen earlier ({})", before.source),
            ..before
        };
        compare(v, &before, None)?;
        most = largest(most, before);
    }
    for peer in peers {
        let url = checkpoint_url(peer, &v.ours.checkpoint.origin);
        let note = match get_text(v.agent, &url) {
            Ok(note) => note,
            Err(e) => {
                eprintln!("warning: peer {peer}: {e:#}");
                continue;
            }
        };
        let checkpoint = match verify_checkpoint(&note, v.vkey) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("warning: peer {url}: checkpoint refused under the log key: {e}");
                continue;
            }
        };
        let seen = Sighting {
            checkpoint,
            source: url.clone(),
        };
        let tiles = url.strip_suffix("/log/checkpoint").map(|base| HttpTiles {
            base: base.to_owned(),
            agent: v.agent.clone(),
        });
        compare(v, &seen, tiles.as_ref().map(|t| (note.as_str(), t)))?;
        most = largest(most, seen);
    }
    Ok(most)
}

/// `peer` against the verified log; `peer_log` is the peer's note and tiles when the peer is
/// a copy of the log (so a larger tree can be checked).
fn compare(v: &Verified<'_>, peer: &Sighting, peer_log: Option<(&str, &HttpTiles)>) -> Result<()> {
    let as_fork = |e: VerifyError<String>, older: &Sighting, newer: &Sighting| match e {
        VerifyError::Forked { detail, .. } => Err(anyhow!("{}", fork(older, newer, &detail))),
        other => Err(anyhow!(
            "checking {} against {}: {other}",
            older.source,
            newer.source
        )),
    };
    let state = |s: &Sighting| LogState {
        size: s.checkpoint.size,
        root_hash: s.checkpoint.root_hash,
    };
    match relate(&v.ours, peer).map_err(|f| anyhow!("{f}"))? {
        Relation::Same => Ok(()),
        // Its root must be the verified tree's root at its size: the verified log's tiles
        // must rebuild it.
        Relation::Smaller => {
            match verify_log(v.vkey, Some(&state(peer)), v.note, v.tiles, &mut |_, _| {}) {
                Ok(_) => Ok(()),
                Err(e) => as_fork(e, peer, &v.ours),
            }
        }
        Relation::Larger => match peer_log {
            Some((note, tiles)) => {
                match verify_log(v.vkey, Some(&state(&v.ours)), note, tiles, &mut |_, _| {}) {
                    Ok(_) => Ok(()),
                    Err(e @ VerifyError::Forked { .. }) => as_fork(e, &v.ours, peer),
                    Err(e) => {
                        eprintln!(
                            "warning: {} is ahead (size {}) and could not be checked yet ({e}); \
                             it is kept as the largest seen",
                            peer.source, peer.checkpoint.size
                        );
                        Ok(())
                    }
                }
            }
            // A witness's checkpoint ahead of the log: kept as the largest seen, and
            // checked when the log reaches it. Said aloud: a log that stays behind what its
            // witnesses cosigned is stale, or shows this auditor another history.
            None => {
                eprintln!(
                    "warning: {} has cosigned a larger tree (size {}) than this log serves \
                     (size {}): the log is behind what others see, or shows you another \
                     history; kept as the largest seen and checked when the log reaches it",
                    peer.source, peer.checkpoint.size, v.ours.checkpoint.size
                );
                Ok(())
            }
        },
    }
}
