//! The registered providers' usage-reporting keys, held in memory and read again from the
//! store when they may have changed.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use runpermit_permit::{Jwks, PublicKey};

use crate::domain::Authority;
use crate::domain::error::DomainError;

/// How long the provider keys held in memory are trusted before they are read again (a key
/// registered or revoked through another process is seen within this time; an unknown
/// `kid` is looked up at once).
const PROVIDER_KEYS_TTL: Duration = Duration::from_secs(5);

/// The registered providers' reporting keys, held in memory.
#[derive(Default)]
pub struct ProviderKeys {
    inner: RwLock<Option<KeySet>>,
}

struct KeySet {
    jwks: Jwks,
    org_of: HashMap<String, String>,
    loaded: std::time::Instant,
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKeys").finish_non_exhaustive()
    }
}

impl ProviderKeys {
    /// Forgets what is held, so that the next use reads the store (after a key is
    /// registered or revoked here).
    pub fn invalidate(&self) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    async fn load(state: &Authority) -> Result<KeySet, DomainError> {
        let mut keys = Vec::new();
        let mut org_of = HashMap::new();
        for k in state.store.all_provider_keys().await? {
            if k.revoked_at.is_some() {
                continue;
            }
            let key = PublicKey::from_bytes(&k.public_key).map_err(|e| {
                DomainError::Internal(format!("stored reporting key {}: {e}", k.kid))
            })?;
            org_of.insert(key.kid().to_owned(), k.org_id.clone());
            keys.push(key);
        }
        Ok(KeySet {
            jwks: Jwks::from_keys(&keys),
            org_of,
            loaded: std::time::Instant::now(),
        })
    }

    /// The keys now: from memory while fresh and knowing every kid in `kids`, else from
    /// the store.
    pub(crate) async fn current(
        &self,
        state: &Authority,
        kids: &[Option<String>],
    ) -> Result<(Jwks, HashMap<String, String>), DomainError> {
        {
            let held = self.inner.read().unwrap_or_else(|e| e.into_inner());
            if let Some(set) = held.as_ref()
                && set.loaded.elapsed() < PROVIDER_KEYS_TTL
                && kids.iter().flatten().all(|k| set.org_of.contains_key(k))
            {
                return Ok((set.jwks.clone(), set.org_of.clone()));
            }
        }
        let set = Self::load(state).await?;
        let out = (set.jwks.clone(), set.org_of.clone());
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Some(set);
        Ok(out)
    }
}
