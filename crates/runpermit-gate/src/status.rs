//! The status list a gate holds: [`StatusListCache`], the newest list it has verified
//! (runpermit-permit's [`verify_status_list`]), which never goes back to an older version,
//! and its [`Freshness`]: a gate fails closed for jobs that need a permit once the held list
//! is past its `exp` plus a grace period. The list's format is runpermit-permit's
//! ([`StatusListClaims`]).

use std::collections::HashMap;

use runpermit_compute::FieldError;
use runpermit_permit::{StatusEntry, StatusListClaims, StatusListError, VerifyError};

#[cfg(doc)]
use runpermit_permit::verify_status_list;

/// Why a status list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// The token does not verify: malformed, wrong `typ`, unknown key, bad signature, or
    /// claims of the wrong shape (see [`VerifyError`]).
    #[error("status list refused: {0}")]
    Verify(#[from] VerifyError),
    /// The claims verify but are not a sound list (see [`StatusListClaims::problems`]).
    #[error("{}", StatusListError::Invalid(.0.clone()))]
    Invalid(Vec<FieldError>),
    /// The list is older than the one held: a replay, or a stale cache between the gate and
    /// the authority. Keep the list held.
    #[error(
        "status list version {got} refused: this gate already holds version {have}, and never goes \
         back to an older list (a replayed list could hide a revocation)"
    )]
    Rollback {
        /// The version held.
        have: u64,
        /// The version offered.
        got: u64,
    },
    /// The list has the version of the one held but other content: the authority (or
    /// someone holding its key) signed two different lists under one version. Keep the list
    /// held, and report this to the authority's operators.
    #[error(
        "status list version {version} refused: it differs from the version {version} this gate holds \
         (two different lists under one version)"
    )]
    Conflict {
        /// The version.
        version: u64,
    },
}

impl From<StatusListError> for StatusError {
    fn from(e: StatusListError) -> StatusError {
        match e {
            StatusListError::Verify(e) => StatusError::Verify(e),
            StatusListError::Invalid(problems) => StatusError::Invalid(problems),
        }
    }
}

/// Whether the held status list may still be relied on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// `now` is before the list's `exp` plus the grace period.
    Fresh,
    /// The list is past its `exp` plus the grace period; `age` is `now − iat`, in seconds.
    Stale {
        /// Seconds since the list was issued.
        age: i64,
    },
    /// No list has been accepted yet.
    Missing,
}

/// The newest verified status list a gate holds: a pure state machine (no IO, no clock).
///
/// [`accept`](Self::accept) takes the output of [`verify_status_list`]; it never replaces
/// the held list with an older version, or with different content under the same version.
/// The held version must survive restarts for rollback protection to hold across them: the
/// caller persists the token and accepts it again at start-up.
#[derive(Clone, Debug, Default)]
pub struct StatusListCache {
    grace_seconds: i64,
    current: Option<StatusListClaims>,
    /// Permit id → index in `current.entries`.
    index: HashMap<String, usize>,
}

impl StatusListCache {
    /// An empty cache that treats a list as fresh until `grace_seconds` after its `exp`
    /// (negative counts as 0).
    pub fn new(grace_seconds: i64) -> StatusListCache {
        StatusListCache {
            grace_seconds: grace_seconds.max(0),
            current: None,
            index: HashMap::new(),
        }
    }

    /// Takes `new` as the held list if it is sound and newer than the held one.
    ///
    /// - A list with [`problems`](StatusListClaims::problems) is [`StatusError::Invalid`].
    /// - A lower version than the held one is [`StatusError::Rollback`].
    /// - The held version with other content is [`StatusError::Conflict`].
    /// - The held version with the same content changes nothing and is `Ok`.
    ///
    /// On any error the held list stays as it was.
    pub fn accept(&mut self, new: StatusListClaims) -> Result<(), StatusError> {
        let problems = new.problems();
        if !problems.is_empty() {
            return Err(StatusError::Invalid(problems));
        }
        if let Some(held) = &self.current {
            if new.version < held.version {
                return Err(StatusError::Rollback {
                    have: held.version,
                    got: new.version,
                });
            }
            if new.version == held.version {
                return if &new == held {
                    Ok(())
                } else {
                    Err(StatusError::Conflict {
                        version: held.version,
                    })
                };
            }
        }
        self.index = new
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.permit_id.clone(), i))
            .collect();
        self.current = Some(new);
        Ok(())
    }

    /// Whether the held list may be relied on at `now` (unix seconds): fresh while
    /// `now < exp + grace`.
    pub fn freshness(&self, now: i64) -> Freshness {
        match &self.current {
            None => Freshness::Missing,
            Some(list) if now < list.exp.saturating_add(self.grace_seconds) => Freshness::Fresh,
            Some(list) => Freshness::Stale {
                age: now.saturating_sub(list.iat),
            },
        }
    }

    /// The held list, if any.
    pub fn current(&self) -> Option<&StatusListClaims> {
        self.current.as_ref()
    }

    /// The held list's entry for `permit_id`: `None` when the permit is in good standing as
    /// of the held list (or when there is no list; check [`freshness`](Self::freshness)).
    pub fn status_of(&self, permit_id: &str) -> Option<&StatusEntry> {
        let list = self.current.as_ref()?;
        self.index.get(permit_id).map(|&i| &list.entries[i])
    }

    /// The grace period beyond `exp`, in seconds.
    pub fn grace_seconds(&self) -> i64 {
        self.grace_seconds
    }
}

#[cfg(test)]
mod tests {
    use runpermit_permit::PermitStatus;

    use super::*;

    const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
    const TTL: i64 = 3600;

    fn entry(permit_id: &str, status: PermitStatus) -> StatusEntry {
        StatusEntry {
            permit_id: permit_id.into(),
            status,
            reason: format!("{status} by the authority"),
            since: NOW - 60,
        }
    }

    fn list(version: u64, entries: Vec<StatusEntry>) -> StatusListClaims {
        StatusListClaims::new("https://authority.example", NOW, TTL, version, entries)
    }

    #[test]
    fn the_cache_only_moves_forward() {
        let mut cache = StatusListCache::new(0);
        assert_eq!(cache.freshness(NOW), Freshness::Missing);
        assert!(cache.status_of("pmt_1").is_none());

        let v5 = list(5, vec![entry("pmt_1", PermitStatus::Suspended)]);
        cache.accept(v5.clone()).unwrap();
        assert_eq!(cache.current(), Some(&v5));
        assert_eq!(
            cache.status_of("pmt_1").map(|e| e.status),
            Some(PermitStatus::Suspended)
        );
        assert!(cache.status_of("pmt_2").is_none());

        // Rollback: an older list (which does not show the suspension) is refused.
        assert_eq!(
            cache.accept(list(4, vec![])),
            Err(StatusError::Rollback { have: 5, got: 4 })
        );
        // The same version again is fine; the same version with other content is not.
        assert_eq!(cache.accept(v5.clone()), Ok(()));
        assert_eq!(
            cache.accept(list(5, vec![])),
            Err(StatusError::Conflict { version: 5 })
        );
        // Refusals leave the held list alone.
        assert_eq!(cache.current(), Some(&v5));
        assert!(cache.status_of("pmt_1").is_some());

        // A newer list replaces it, index included.
        let v6 = StatusListClaims {
            iat: NOW + 600,
            exp: NOW + 600 + TTL,
            ..list(6, vec![entry("pmt_2", PermitStatus::Revoked)])
        };
        cache.accept(v6.clone()).unwrap();
        assert!(cache.status_of("pmt_1").is_none());
        assert_eq!(
            cache.status_of("pmt_2").map(|e| e.status),
            Some(PermitStatus::Revoked)
        );

        // Unsound lists never enter, even with a higher version.
        let mut bad = list(7, vec![]);
        bad.exp = bad.iat - 1;
        assert!(matches!(cache.accept(bad), Err(StatusError::Invalid(_))));
        assert_eq!(cache.current(), Some(&v6));
    }

    #[test]
    fn freshness_with_and_without_grace() {
        let claims = list(1, vec![]);
        let mut strict = StatusListCache::new(0);
        strict.accept(claims.clone()).unwrap();
        assert_eq!(strict.freshness(NOW), Freshness::Fresh);
        assert_eq!(strict.freshness(NOW + TTL - 1), Freshness::Fresh);
        assert_eq!(strict.freshness(NOW + TTL), Freshness::Stale { age: TTL });

        let mut lenient = StatusListCache::new(300);
        assert_eq!(lenient.grace_seconds(), 300);
        lenient.accept(claims).unwrap();
        assert_eq!(lenient.freshness(NOW + TTL + 299), Freshness::Fresh);
        assert_eq!(
            lenient.freshness(NOW + TTL + 300),
            Freshness::Stale { age: TTL + 300 }
        );
        assert_eq!(StatusListCache::new(-5).grace_seconds(), 0);
    }
}
