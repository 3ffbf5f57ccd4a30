//! One deployment, one log key and one set of permit keys.
//!
//! Every `runpermit serve` sharing a database signs checkpoints of the same log and permits
//! of the same authority, so they must hold the same keys: a second log key would change
//! `/log/vkey` and break every auditor pinned to the first, and a permit key nobody rotated
//! in would appear in the JWKS from nowhere. The first start on a database records the
//! deployment (the log's verifier key, in `deployment`) together with its permit-signing key
//! (in `signing_keys`), in one transaction; every later start compares its keys with what is
//! recorded and refuses to run with others, saying how to share the keys. New permit keys
//! appear only through `runpermit key rotate` ([`crate::setup::bootstrap::rotate_key`]).
//!
//! Why it is race-free: the deployment row has a fixed primary key, so of two first starts
//! at once exactly one commits; the other's batch (its permit key included) rolls back with
//! `Duplicate`, and it reads the winner's record and compares. On a new SQLite file the loser
//! may instead find the database busy (the winner is creating it); nothing was written, and it
//! reads again the same way.

use runpermit_log::LogKey;
use runpermit_permit::SigningKey;
use runpermit_store::{Deployment, Store, StoreError, Write};
use serde_json::json;

use crate::domain::audit::{event, rfc3339};
use crate::domain::clock::Clock;
use crate::setup::{BootstrapError, Setup};

/// How many times a first start reads the record again after losing a race (one suffices:
/// the winner's row is there when the loser's insert fails) or finding a SQLite database busy
/// (two processes starting at once on a new file).
const ATTEMPTS: usize = 5;

/// What [`establish`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Established {
    /// This start recorded the deployment: the database had none.
    Recorded,
    /// The deployment was recorded before, with this process's keys.
    Matches,
}

/// How to give a process the deployment's keys, for every refusal.
fn share_hint(setup: &Setup) -> String {
    let log = setup.log_key_path();
    format!(
        "Every process sharing a database must use the deployment's key files: copy \
         permit-signing.pem, log-signing.pem and log-signing.origin from the keys/ directory \
         of the data directory that first started on this database to {} and {} (and {}), or \
         point --signing-key and --log-key (RUNPERMIT_SIGNING_KEY, RUNPERMIT_LOG_KEY), or \
         --data-dir, at them",
        setup.signing_key_path().display(),
        log.display(),
        log.with_extension("origin").display()
    )
}

fn refuse(setup: &Setup, problem: String) -> BootstrapError {
    BootstrapError::Deployment {
        problem,
        hint: share_hint(setup),
    }
}

/// Refuses to go on when the database has a deployment but this process has no key file at
/// `path`: creating one would make a second key.
pub(crate) fn require_key_file(
    setup: &Setup,
    recorded: &Deployment,
    path: &std::path::Path,
    what: &str,
) -> Result<(), BootstrapError> {
    if path.exists() {
        return Ok(());
    }
    Err(refuse(
        setup,
        format!(
            "this database belongs to the deployment whose log key is {} (recorded {}), and \
             there is no {what} at {}: a new one would be a second key",
            recorded.log_vkey,
            rfc3339(recorded.created_at),
            path.display()
        ),
    ))
}

/// Records the deployment with `signer` and `log_key` when the database has none, or checks
/// that they are the recorded ones. Refuses (naming what differs and how to share the keys)
/// when they are not.
pub async fn establish(
    store: &dyn Store,
    setup: &Setup,
    signer: &SigningKey,
    log_key: &LogKey,
    clock: &dyn Clock,
) -> Result<Established, BootstrapError> {
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
        }
        match establish_once(store, setup, signer, log_key, clock).await {
            Ok(Some(established)) => return Ok(established),
            // Another process recorded the deployment (or registered this key) first, or a
            // busy SQLite file (another first start writing it) answered a read or refused
            // the batch, which wrote nothing: read the record again and compare.
            Ok(None) | Err(BootstrapError::Store(StoreError::Busy(_))) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(BootstrapError::Store(StoreError::Conflict(
        "the deployment record kept changing while this process started".into(),
    )))
}

/// One attempt of [`establish`]: `None` when another process recorded the deployment (or
/// registered this key) between this one's read and its write.
async fn establish_once(
    store: &dyn Store,
    setup: &Setup,
    signer: &SigningKey,
    log_key: &LogKey,
    clock: &dyn Clock,
) -> Result<Option<Established>, BootstrapError> {
    if let Some(recorded) = store.deployment().await? {
        check_log_key(setup, &recorded, log_key)?;
        check_permit_key(store, setup, signer).await?;
        return Ok(Some(Established::Matches));
    }
    check_unrecorded(store, setup, signer, log_key).await?;
    let now = clock.now_ms();
    let vkey = log_key.verifier_key();
    let mut writes = vec![Write::InsertDeployment(Deployment {
        log_origin: log_key.name().to_owned(),
        log_vkey: vkey.clone(),
        created_at: now,
    })];
    let registered = store
        .signing_keys()
        .await?
        .iter()
        .any(|k| k.kid == signer.kid());
    if !registered {
        writes.push(Write::InsertSigningKey(runpermit_store::SigningKey {
            kid: signer.kid().to_owned(),
            public_key: signer.public().as_bytes().to_vec(),
            created_at: now,
            retired_at: None,
        }));
    }
    writes.push(event(
        None,
        now,
        "deployment.record",
        "deployment",
        None,
        json!({"log_vkey": vkey, "permit_kid": signer.kid()}),
    ));
    match store.commit(writes).await {
        Ok(()) => Ok(Some(Established::Recorded)),
        Err(StoreError::Duplicate(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn check_log_key(
    setup: &Setup,
    recorded: &Deployment,
    log_key: &LogKey,
) -> Result<(), BootstrapError> {
    let ours = log_key.verifier_key();
    if ours == recorded.log_vkey {
        return Ok(());
    }
    Err(refuse(
        setup,
        format!(
            "the log key at {} (vkey {ours}) is not this deployment's: its log was recorded {} \
             with vkey {}, and every auditor pins that one",
            setup.log_key_path().display(),
            rfc3339(recorded.created_at),
            recorded.log_vkey
        ),
    ))
}

/// Checks that `signer` is the deployment's current (registered, not retired) permit key.
pub(crate) async fn check_permit_key(
    store: &dyn Store,
    setup: &Setup,
    signer: &SigningKey,
) -> Result<(), BootstrapError> {
    let keys = store.signing_keys().await?;
    let current: Vec<&str> = keys
        .iter()
        .filter(|k| k.retired_at.is_none())
        .map(|k| k.kid.as_str())
        .collect();
    let path = setup.signing_key_path();
    match keys.iter().find(|k| k.kid == signer.kid()) {
        Some(k) if k.retired_at.is_none() => Ok(()),
        Some(k) => Err(BootstrapError::Deployment {
            problem: format!(
                "the permit-signing key at {} (kid {}) was retired by `runpermit key rotate` at \
                 {}; this deployment signs with kid {}",
                path.display(),
                signer.kid(),
                rfc3339(k.retired_at.unwrap_or_default()),
                current.join(", ")
            ),
            hint: format!(
                "Copy the current key file from the data directory where `runpermit key rotate` \
                 ran (its keys/permit-signing.pem) to {}, or point --signing-key at it",
                path.display()
            ),
        }),
        None => Err(refuse(
            setup,
            format!(
                "the permit-signing key at {} (kid {}) is not one of this deployment's (current: \
                 kid {}); new permit keys come only from `runpermit key rotate`",
                path.display(),
                signer.kid(),
                if current.is_empty() {
                    "none".to_owned()
                } else {
                    current.join(", ")
                }
            ),
        )),
    }
}

/// A database without a deployment record: empty (a first start), or written before the
/// record existed. Then what is already there must be this process's: its permit key among the
/// registered current keys (when there are any), and the stored checkpoint signed by its log
/// key (when there is one).
async fn check_unrecorded(
    store: &dyn Store,
    setup: &Setup,
    signer: &SigningKey,
    log_key: &LogKey,
) -> Result<(), BootstrapError> {
    if !store.signing_keys().await?.is_empty() {
        check_permit_key(store, setup, signer).await?;
    }
    if let Some(state) = store.log_state().await?
        && let Err(e) = runpermit_log::verify_checkpoint(&state.checkpoint, &log_key.verifier_key())
    {
        return Err(refuse(
            setup,
            format!(
                "the log's stored checkpoint (size {}) is not signed by the log key at {} (vkey \
                 {}): {e}",
                state.size,
                setup.log_key_path().display(),
                log_key.verifier_key()
            ),
        ));
    }
    Ok(())
}
