//! First start: the data directory, the database and its migrations, the permit-signing and
//! log keys (created once, mode 0600, never logged), the deployment record that binds those
//! keys to the database ([`crate::setup::deployment`]), and the bootstrap admin token (printed once).
//! `runpermit init` and `runpermit serve` both run this; it is safe to run again, and it
//! refuses to start a process whose keys are not the deployment's.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runpermit_log::LogKey;
use runpermit_permit::SigningKey;
use runpermit_store::{Member, Organization, Store, StoreError, Token, Write};
use serde_json::json;

use crate::domain::audit::event;
use crate::domain::clock::Clock;
use crate::domain::ids::{new_id, new_token_secret, token_hash};
use crate::setup::{BootstrapError, Setup};

/// What preparation found or created.
pub struct Prepared {
    /// The migrated store.
    pub store: Arc<dyn Store>,
    /// The permit-signing key.
    pub signer: SigningKey,
    /// Whether the key file was created now.
    pub created_key: bool,
    /// The transparency log's key.
    pub log_key: LogKey,
    /// The bootstrap admin token, only when the database was empty.
    pub admin_token: Option<String>,
    /// Whether this start recorded the deployment (the database had none).
    pub recorded_deployment: bool,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("signer", &self.signer)
            .field("created_key", &self.created_key)
            .field("recorded_deployment", &self.recorded_deployment)
            .field("log_vkey", &self.log_key.verifier_key())
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens (and creates) everything the authority needs. On a database that already has a
/// deployment, key files are never created: a process without them, or with others, is
/// refused with a message that says how to share the deployment's keys.
pub async fn prepare(setup: &Setup, clock: &dyn Clock) -> Result<Prepared, BootstrapError> {
    create_private_dir(&setup.data_dir)?;
    let url = setup.database_url();
    let store = while_busy(|| runpermit_store::open(&url)).await?;
    store.migrate().await?;
    if let Some(recorded) = while_busy(|| store.deployment()).await? {
        let (signing, log) = (setup.signing_key_path(), setup.log_key_path());
        crate::setup::deployment::require_key_file(setup, &recorded, &log, "log key")?;
        crate::setup::deployment::require_key_file(
            setup,
            &recorded,
            &signing,
            "permit-signing key",
        )?;
    }
    let (signer, created_key) = load_or_create_key(&setup.signing_key_path())?;
    let log_key = load_or_create_log_key(&setup.log_key_path(), setup.log_origin.as_deref())?;
    let established =
        crate::setup::deployment::establish(store.as_ref(), setup, &signer, &log_key, clock)
            .await?;
    let admin_token = bootstrap_admin(store.as_ref(), clock).await?;
    Ok(Prepared {
        store,
        signer,
        created_key,
        log_key,
        admin_token,
        recorded_deployment: established == crate::setup::deployment::Established::Recorded,
    })
}

/// Runs `operation` again while a busy SQLite file answers it (another process's first start
/// is creating the database: waiting out the busy timeout does not help then, and nothing was
/// written), a few times with a short pause.
async fn while_busy<T, F, Fut>(mut operation: F) -> Result<T, runpermit_store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, runpermit_store::StoreError>>,
{
    let mut attempt = 0u64;
    loop {
        match operation().await {
            Err(runpermit_store::StoreError::Busy(_)) if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
            }
            other => return other,
        }
    }
}

fn create_private_dir(dir: &Path) -> Result<(), BootstrapError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

/// Writes `contents` to `path` with mode 0600, through a temporary file renamed into place so
/// that a crash never leaves half a file.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), BootstrapError> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io(&tmp))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn read_optional(path: &Path) -> Result<Option<String>, BootstrapError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Reads the permit-signing key file, or creates it (mode 0600).
pub fn load_or_create_key(path: &Path) -> Result<(SigningKey, bool), BootstrapError> {
    let key_error = |message: String| BootstrapError::Key {
        path: path.to_owned(),
        message,
    };
    match read_optional(path)? {
        Some(pem) => Ok((
            SigningKey::from_pkcs8_pem(&pem).map_err(|e| key_error(e.to_string()))?,
            false,
        )),
        None => {
            let key = SigningKey::generate();
            write_private(path, key.to_pkcs8_pem().as_bytes())?;
            Ok((key, true))
        }
    }
}

/// The default log origin when none is configured.
pub const DEFAULT_LOG_ORIGIN: &str = "runpermit.authority/log";

/// Reads the log key and its origin (`<key file>.origin`), or creates both. A configured
/// origin that differs from the stored one is refused: checkpoints under two names would
/// break every verifier.
pub fn load_or_create_log_key(path: &Path, origin: Option<&str>) -> Result<LogKey, BootstrapError> {
    let origin_path = path.with_extension("origin");
    let key_error = |message: String| BootstrapError::Key {
        path: path.to_owned(),
        message,
    };
    match (read_optional(path)?, read_optional(&origin_path)?) {
        (Some(pem), Some(stored)) => {
            let stored = stored.trim();
            if let Some(wanted) = origin
                && wanted != stored
            {
                return Err(key_error(format!(
                    "the log's origin is {stored:?} (in {}); it cannot change to {wanted:?}",
                    origin_path.display()
                )));
            }
            LogKey::from_pkcs8_pem(stored, &pem).map_err(|e| key_error(e.to_string()))
        }
        (None, None) => {
            let name = origin.unwrap_or(DEFAULT_LOG_ORIGIN);
            let key = LogKey::generate(name).map_err(|e| key_error(e.to_string()))?;
            write_private(&origin_path, format!("{name}\n").as_bytes())?;
            write_private(path, key.to_pkcs8_pem().as_bytes())?;
            Ok(key)
        }
        _ => Err(key_error(format!(
            "the log key and its origin file {} must both exist or both be absent",
            origin_path.display()
        ))),
    }
}

/// Creates the authority organization, an admin and their token when the database is empty.
///
/// The bootstrap token has no expiry, on purpose: it is the one credential a new authority
/// starts with, and nothing outside the API can mint another, so an expiry would lock out an
/// authority that never created a second admin. It is printed once, and the tokens it
/// creates expire like any other (at most the policy's `tokens.max_lifetime_days`). Once
/// named admins have their own tokens, revoke it (`runpermit token revoke`).
async fn bootstrap_admin(
    store: &dyn Store,
    clock: &dyn Clock,
) -> Result<Option<String>, BootstrapError> {
    if store.organization_count().await? > 0 {
        return Ok(None);
    }
    let now = clock.now_ms();
    // A fixed id: two processes bootstrapping one database at once collide instead of both
    // creating an authority.
    let org = Organization {
        id: "org_authority".to_owned(),
        name: "Licensing Authority".to_owned(),
        kind: runpermit_types::OrgKind::Authority,
        created_at: now,
    };
    let member = Member {
        id: new_id("mem"),
        org_id: org.id.clone(),
        name: "admin".to_owned(),
        role: runpermit_types::Role::Admin,
        created_at: now,
    };
    let secret = new_token_secret().map_err(|e| BootstrapError::Random(e.to_string()))?;
    let token = Token {
        id: new_id("tok"),
        member_id: member.id.clone(),
        hash: token_hash(&secret),
        label: "bootstrap".to_owned(),
        created_at: now,
        expires_at: None,
        revoked_at: None,
    };
    let result = store
        .commit(vec![
            Write::InsertOrganization(org.clone()),
            Write::InsertMember(member.clone()),
            Write::InsertToken(token.clone()),
            event(
                None,
                now,
                "authority.bootstrap",
                &format!("organization/{}", org.id),
                None,
                json!({"admin_member_id": member.id, "token_id": token.id}),
            ),
        ])
        .await;
    match result {
        Ok(()) => Ok(Some(secret)),
        Err(StoreError::Duplicate(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// The retired key id.
    pub retired_kid: String,
    /// Where the retired key file was moved.
    pub retired_path: PathBuf,
    /// The new key id.
    pub new_kid: String,
}

/// Replaces the permit-signing key: the current key file moves to `keys/retired/<kid>.pem`,
/// a new key takes its place, and the store records the new key and the old key's retirement
/// in one batch with its audit event (`key.rotate`). Only the deployment's current key is
/// rotated: the database must have a deployment (run `init` first) and the key file must hold
/// its current key; two rotations at once from copies of that file both try to retire it, and
/// the second is refused. The JWKS keeps the retired key until the policy's permit validity
/// has passed, so permits it signed stay verifiable until they expire. Running `serve`
/// processes pick up the new key when restarted; a process restarted with the retired key
/// file is refused.
pub async fn rotate_key(setup: &Setup, clock: &dyn Clock) -> Result<Rotation, BootstrapError> {
    let store = runpermit_store::open(&setup.database_url()).await?;
    store.migrate().await?;
    let path = setup.signing_key_path();
    if store.deployment().await?.is_none() {
        return Err(BootstrapError::Deployment {
            problem: "this database has no deployment yet, so it has no permit-signing key to \
                      rotate"
                .to_owned(),
            hint: "Run `runpermit init` (or start `runpermit serve`) with the same --data-dir \
                   or --database-url first"
                .to_owned(),
        });
    }
    if !path.exists() {
        return Err(BootstrapError::Deployment {
            problem: format!("there is no permit-signing key at {}", path.display()),
            hint: "Run `runpermit key rotate` with the --data-dir (or --signing-key) of a \
                   process that holds the deployment's current key"
                .to_owned(),
        });
    }
    let (old, _) = load_or_create_key(&path)?;
    crate::setup::deployment::check_permit_key(store.as_ref(), setup, &old).await?;
    let retired_dir = path
        .parent()
        .map(|p| p.join("retired"))
        .unwrap_or_else(|| PathBuf::from("retired"));
    create_private_dir(&retired_dir)?;
    let retired_path = retired_dir.join(format!("{}.pem", old.kid()));
    std::fs::rename(&path, &retired_path).map_err(io(&path))?;
    let (new, _) = match load_or_create_key(&path) {
        Ok(k) => k,
        Err(e) => {
            // Put the old key back: the authority must never be left without one.
            let _ = std::fs::rename(&retired_path, &path);
            return Err(e);
        }
    };
    let now = clock.now_ms();
    let committed = store
        .commit(vec![
            Write::RetireSigningKey {
                kid: old.kid().to_owned(),
                at: now,
            },
            Write::InsertSigningKey(runpermit_store::SigningKey {
                kid: new.kid().to_owned(),
                public_key: new.public().as_bytes().to_vec(),
                created_at: now,
                retired_at: None,
            }),
            event(
                None,
                now,
                "key.rotate",
                &format!("key/{}", new.kid()),
                None,
                json!({"retired_kid": old.kid(), "new_kid": new.kid()}),
            ),
        ])
        .await;
    if let Err(e) = committed {
        // Nothing was recorded: restore the old key file.
        let _ = std::fs::rename(&retired_path, &path);
        return Err(match e {
            StoreError::Conflict(_) => BootstrapError::Deployment {
                problem: format!(
                    "the permit-signing key {} was retired meanwhile by another `runpermit key \
                     rotate`",
                    old.kid()
                ),
                hint: format!(
                    "Copy the new key file from the data directory where that rotation ran to \
                     {}",
                    path.display()
                ),
            },
            other => other.into(),
        });
    }
    Ok(Rotation {
        retired_kid: old.kid().to_owned(),
        retired_path,
        new_kid: new.kid().to_owned(),
    })
}
