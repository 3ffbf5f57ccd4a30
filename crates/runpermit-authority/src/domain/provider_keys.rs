//! The reporting keys: providers' (their gates' usage reports) and developers' (their access
//! gateways' access-usage reports), registered and revoked by the organization's admins, held
//! in memory and read again from the store when they may have changed. Each report names
//! its `iss`, which must be the key's organization, so one kind of reporter cannot sign for
//! another.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use runpermit_permit::{Jwks, PublicKey};
use runpermit_store::{ProviderKey, Write};
use runpermit_types::OrgKind;
use serde_json::json;

use crate::domain::audit::event;
use crate::domain::{Authority, Caller, DomainError};

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

/// The provider or developer organization `id`, when `caller` may see it: not found
/// otherwise, and invalid when it is neither.
pub async fn provider_org(state: &Authority, caller: &Caller, id: &str) -> Result<(), DomainError> {
    let org = state
        .store
        .organization(id)
        .await?
        .filter(|_| caller.sees_org(id))
        .ok_or_else(|| DomainError::NotFound(format!("no organization {id}")))?;
    // Providers sign usage reports with theirs; developers, their access gateways'
    // access-usage reports.
    if !matches!(org.kind, OrgKind::Provider | OrgKind::Developer) {
        return Err(DomainError::field(
            "id",
            format!(
                "{id} is {} organization: only providers and developers have reporting keys",
                runpermit_types::names::with_article(org.kind.as_str())
            ),
        ));
    }
    Ok(())
}

/// Registers `key` as a reporting key of provider `id`, managed by `caller`; the keys held in
/// memory are read again at the next use.
pub async fn register(
    state: &Authority,
    caller: &Caller,
    id: &str,
    key: &PublicKey,
) -> Result<ProviderKey, DomainError> {
    if !caller.manages_org(id) {
        return Err(DomainError::NotFound(format!("no organization {id}")));
    }
    provider_org(state, caller, id).await?;
    let now = state.clock.now_ms();
    let record = ProviderKey {
        kid: key.kid().to_owned(),
        org_id: id.to_owned(),
        public_key: key.as_bytes().to_vec(),
        created_at: now,
        revoked_at: None,
    };
    state
        .store
        .commit(vec![
            Write::InsertProviderKey(record.clone()),
            event(
                Some(caller),
                now,
                "reporting_key.create",
                &format!("org/{id}"),
                None,
                json!({"kid": record.kid}),
            ),
        ])
        .await?;
    state.provider_keys.invalidate();
    Ok(record)
}

/// The reporting keys of provider `id`, revoked ones included.
pub async fn list(
    state: &Authority,
    caller: &Caller,
    id: &str,
) -> Result<Vec<ProviderKey>, DomainError> {
    provider_org(state, caller, id).await?;
    Ok(state.store.provider_keys(id).await?)
}

/// Revokes reporting key `kid` of an organization `caller` manages; reports it signs are
/// refused from now on.
pub async fn revoke(
    state: &Authority,
    caller: &Caller,
    kid: &str,
) -> Result<ProviderKey, DomainError> {
    let key = state
        .store
        .provider_key(kid)
        .await?
        .filter(|k| caller.manages_org(&k.org_id))
        .ok_or_else(|| DomainError::NotFound(format!("no reporting key {kid}")))?;
    let now = state.clock.now_ms();
    state
        .store
        .commit(vec![
            Write::RevokeProviderKey {
                kid: kid.to_owned(),
                at: now,
            },
            event(
                Some(caller),
                now,
                "reporting_key.revoke",
                &format!("org/{}", key.org_id),
                None,
                json!({"kid": kid}),
            ),
        ])
        .await?;
    state.provider_keys.invalidate();
    let key = state
        .store
        .provider_key(kid)
        .await?
        .ok_or_else(|| DomainError::Internal(format!("reporting key {kid} vanished")))?;
    Ok(key)
}
