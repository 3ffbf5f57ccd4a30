//! First start: the data directory, the database and its migrations, the permit-signing key
//! (created once, mode 0600, never logged) and the bootstrap admin token (printed once).
//! `runpermit init` and `runpermit serve` both run this; it is safe to run again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runpermit_permit::SigningKey;
use runpermit_store::{Member, Organization, Store, StoreError, Token, Write};
use serde_json::json;

use crate::audit::event;
use crate::clock::Clock;
use crate::ids::{new_id, new_token_secret, token_hash};

/// Where the authority keeps its state.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Data directory (SQLite database and key files).
    pub data_dir: PathBuf,
    /// A `postgres://` URL; when absent, SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// The permit-signing key file; default `data_dir/keys/permit-signing.pem`. Every
    /// `serve` process sharing a PostgreSQL database must use the same key file.
    pub signing_key: Option<PathBuf>,
}

impl Setup {
    /// The database URL in use.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("runpermit.db").display()))
    }

    /// The signing key file in use.
    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("permit-signing.pem"))
    }
}

/// What preparation found or created.
pub struct Prepared {
    /// The migrated store.
    pub store: Arc<dyn Store>,
    /// The permit-signing key.
    pub signer: SigningKey,
    /// Whether the key file was created now.
    pub created_key: bool,
    /// The bootstrap admin token, only when the database was empty.
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("signer", &self.signer)
            .field("created_key", &self.created_key)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// Why preparation failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file is not an Ed25519 PKCS#8 PEM key.
    #[error("{path}: not an Ed25519 private key in PKCS#8 PEM: {message}")]
    Key {
        /// Which.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The database refused.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The system's random source failed.
    #[error("random source: {0}")]
    Random(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BootstrapError + '_ {
    move |source| BootstrapError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Opens (and creates) everything the authority needs.
pub async fn prepare(setup: &Setup, clock: &dyn Clock) -> Result<Prepared, BootstrapError> {
    create_private_dir(&setup.data_dir)?;
    let store = runpermit_store::open(&setup.database_url()).await?;
    store.migrate().await?;
    let (signer, created_key) = load_or_create_key(&setup.signing_key_path())?;
    register_key(store.as_ref(), &signer, clock).await?;
    let admin_token = bootstrap_admin(store.as_ref(), clock).await?;
    Ok(Prepared {
        store,
        signer,
        created_key,
        admin_token,
    })
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

/// Reads the key file, or creates it (mode 0600, written to a temporary file and renamed so
/// that a crash never leaves half a key).
pub fn load_or_create_key(path: &Path) -> Result<(SigningKey, bool), BootstrapError> {
    match std::fs::read_to_string(path) {
        Ok(pem) => {
            let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| BootstrapError::Key {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
            Ok((key, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                create_private_dir(parent)?;
            }
            let key = SigningKey::generate();
            let tmp = path.with_extension("pem.tmp");
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp).map_err(io(&tmp))?;
            file.write_all(key.to_pkcs8_pem().as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io(&tmp))?;
            std::fs::rename(&tmp, path).map_err(io(path))?;
            Ok((key, true))
        }
        Err(e) => Err(io(path)(e)),
    }
}

async fn register_key(
    store: &dyn Store,
    key: &SigningKey,
    clock: &dyn Clock,
) -> Result<(), BootstrapError> {
    if store
        .signing_keys()
        .await?
        .iter()
        .any(|k| k.kid == key.kid())
    {
        return Ok(());
    }
    let now = clock.now_ms();
    let result = store
        .commit(vec![
            Write::InsertSigningKey(runpermit_store::SigningKey {
                kid: key.kid().to_owned(),
                public_key: key.public().as_bytes().to_vec(),
                created_at: now,
                retired_at: None,
            }),
            event(
                None,
                now,
                "key.register",
                &format!("key/{}", key.kid()),
                None,
                json!({"use": "permit-signing"}),
            ),
        ])
        .await;
    match result {
        // Another process sharing the database registered it first.
        Ok(()) | Err(StoreError::Duplicate(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates the authority organization, an admin and their token when the database is empty.
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
        kind: "authority".to_owned(),
        created_at: now,
    };
    let member = Member {
        id: new_id("mem"),
        org_id: org.id.clone(),
        name: "admin".to_owned(),
        role: "admin".to_owned(),
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
/// in one batch. The JWKS keeps the retired key until the policy's permit validity has passed,
/// so permits it signed stay verifiable until they expire. Running `serve` processes pick up
/// the new key when restarted.
pub async fn rotate_key(setup: &Setup, clock: &dyn Clock) -> Result<Rotation, BootstrapError> {
    let store = runpermit_store::open(&setup.database_url()).await?;
    store.migrate().await?;
    let path = setup.signing_key_path();
    let (old, _) = load_or_create_key(&path)?;
    register_key(store.as_ref(), &old, clock).await?;
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
            Write::InsertSigningKey(runpermit_store::SigningKey {
                kid: new.kid().to_owned(),
                public_key: new.public().as_bytes().to_vec(),
                created_at: now,
                retired_at: None,
            }),
            Write::RetireSigningKey {
                kid: old.kid().to_owned(),
                at: now,
            },
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
        return Err(e.into());
    }
    Ok(Rotation {
        retired_kid: old.kid().to_owned(),
        retired_path,
        new_kid: new.kid().to_owned(),
    })
}
