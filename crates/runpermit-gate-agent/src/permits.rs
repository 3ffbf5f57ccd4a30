//! [`PermitBook`]: the permits this gate admitted jobs under, kept so that metering counts
//! each run's compute with its permit's accounting basis (the precision and utilization the
//! holder declared, claim `accounting`) and needs nothing from the authority.
//!
//! One file per permit, `<jti>.jwt` holding the token exactly as verified, in a directory
//! beside the status file ([`PERMITS_DIR_NAME`], so `gate check` and `gate serve` with one
//! configuration share it: Slurm jobs are admitted by `gate check`, metered by `gate
//! serve`). A file is written once, the first time a permit is admitted (through a
//! temporary file, synced, renamed, the directory synced); every file is verified again
//! against the pinned JWKS when read, and one that does not verify, or whose permit id is
//! not its name, is logged and ignored. A permit not in memory is looked for on disk, so a
//! permit that `gate check` admitted after `gate serve` started is found.
//!
//! Permits whose `exp` passed more than [`KEEP_AFTER_EXPIRY`] ago are removed by
//! [`PermitBook::prune`] (metering records can arrive after a permit expires).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

use runpermit_compute::AccountingBasis;
use runpermit_permit::{Jwks, PermitClaims, verify_permit_signature};

/// The directory of the permit book, beside the status file.
pub const PERMITS_DIR_NAME: &str = "permits";

/// How long after its expiry a permit stays in the book: 90 days, so that late accounting
/// records of its jobs are still metered with its basis.
pub const KEEP_AFTER_EXPIRY: i64 = 90 * 86_400;

/// The permits admitted here: permit id → verified claims, in memory and on disk.
#[derive(Debug)]
pub struct PermitBook {
    dir: PathBuf,
    jwks: Jwks,
    held: RwLock<HashMap<String, PermitClaims>>,
}

/// What the book knows of a permit for metering.
#[derive(Debug, Clone, PartialEq)]
pub enum Held {
    /// The permit is held and is for this run: its basis (`None` for a permit signed before
    /// claim-set version 3).
    Basis(Option<AccountingBasis>),
    /// The book holds no such permit.
    Unknown,
    /// The permit is held, but is for another run than the one metered (its `sub`).
    OtherRun(String),
}

/// Whether `id` can be a file name here: 1–128 of `A-Z a-z 0-9 _ - .`, not starting with a
/// dot. Permit ids from metering records are untrusted: anything else is never a path.
fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl PermitBook {
    /// The book's directory for the status file at `status_file`.
    pub fn dir_beside(status_file: &Path) -> PathBuf {
        status_file
            .parent()
            .unwrap_or(Path::new("."))
            .join(PERMITS_DIR_NAME)
    }

    /// An empty book in `dir` (nothing read; permits are looked up on disk when asked).
    pub fn empty(dir: impl Into<PathBuf>, jwks: Jwks) -> PermitBook {
        PermitBook {
            dir: dir.into(),
            jwks,
            held: RwLock::default(),
        }
    }

    /// The book in `dir`, every `*.jwt` file read and verified with `jwks` (a missing
    /// directory is an empty book; a file that does not verify is logged and ignored).
    pub fn load(dir: impl Into<PathBuf>, jwks: Jwks) -> PermitBook {
        let book = PermitBook::empty(dir, jwks);
        let entries = match std::fs::read_dir(&book.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return book,
            Err(e) => {
                tracing::warn!(dir = %book.dir.display(), error = %e,
                    "cannot read the permit book: permits are metered at the chip's highest peak \
                     until admitted again");
                return book;
            }
        };
        let mut held = HashMap::new();
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".jwt")) else {
                continue;
            };
            if !safe_id(id) {
                continue;
            }
            if let Some(claims) = book.read(id) {
                held.insert(id.to_owned(), claims);
            }
        }
        tracing::info!(dir = %book.dir.display(), permits = held.len(), "permit book loaded");
        *book.held.write().unwrap_or_else(PoisonError::into_inner) = held;
        book
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.jwt"))
    }

    /// Reads and verifies `<id>.jwt`; `None` (logged unless absent) when it does not verify
    /// or names another permit.
    fn read(&self, id: &str) -> Option<PermitClaims> {
        let path = self.path(id);
        let token = match std::fs::read_to_string(&path) {
            Ok(token) => token,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read a held permit");
                return None;
            }
        };
        match verify_permit_signature(token.trim(), &self.jwks) {
            Ok(claims) if claims.jti == id => Some(claims),
            Ok(claims) => {
                tracing::warn!(file = %path.display(), jti = %claims.jti,
                    "ignoring a held permit filed under another permit's id");
                None
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e,
                    "ignoring a held permit that does not verify with the pinned keys");
                None
            }
        }
    }

    /// The claims of permit `id`: from memory, else from its file (then remembered).
    pub fn get(&self, id: &str) -> Option<PermitClaims> {
        if let Some(claims) = self
            .held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            return Some(claims.clone());
        }
        if !safe_id(id) {
            return None;
        }
        let claims = self.read(id)?;
        self.held
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), claims.clone());
        Some(claims)
    }

    /// Whether permit `id` is in memory (no disk access).
    pub fn holds(&self, id: &str) -> bool {
        self.held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }

    /// What metering counts run `run`'s compute under permit `id` with.
    pub fn basis(&self, run: &str, id: &str) -> Held {
        match self.get(id) {
            None => Held::Unknown,
            Some(claims) if claims.sub == run => Held::Basis(claims.accounting),
            Some(claims) => Held::OtherRun(claims.sub),
        }
    }

    /// Remembers the permit `token` (a job was admitted under it): verified with the pinned
    /// keys, kept in memory, and written to its file the first time. Returns its id. A
    /// permit already held costs a lookup; a file that cannot be written is an error, and
    /// the permit is held in memory all the same.
    pub fn remember(&self, token: &str) -> Result<String, String> {
        let token = token.trim();
        let claims = verify_permit_signature(token, &self.jwks)
            .map_err(|e| format!("the permit does not verify: {e}"))?;
        let id = claims.jti.clone();
        if self.get(&id).is_some() {
            return Ok(id);
        }
        self.held
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), claims);
        if !safe_id(&id) {
            return Err(format!(
                "permit id {id:?} cannot be a file name: held in memory only"
            ));
        }
        crate::files::write_atomically(&self.path(&id), token)
            .map_err(|e| format!("writing {}: {e}", self.path(&id).display()))?;
        Ok(id)
    }

    /// Removes the permits that expired more than [`KEEP_AFTER_EXPIRY`] before `now`, from
    /// memory and disk; how many.
    pub fn prune(&self, now: i64) -> usize {
        let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
        let old: Vec<String> = held
            .iter()
            .filter(|(_, c)| c.exp.saturating_add(KEEP_AFTER_EXPIRY) < now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            held.remove(id);
            if let Err(e) = std::fs::remove_file(self.path(id))
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(permit = %id, error = %e, "cannot remove an expired held permit");
            }
        }
        old.len()
    }

    /// How many permits are in memory.
    pub fn len(&self) -> usize {
        self.held
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no permit is in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_file_names() {
        for ok in ["pmt_01J", "pmt-1.2", "A"] {
            assert!(safe_id(ok), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "a b",
            "pmt\0",
            &"x".repeat(129),
        ] {
            assert!(!safe_id(bad), "{bad:?}");
        }
    }
}
