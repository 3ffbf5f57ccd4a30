//! Before the authority serves: its data directory, database, keys and deployment record
//! ([`bootstrap`], [`deployment`]), described by a [`Setup`].

use std::path::PathBuf;

use runpermit_store::StoreError;

pub mod bootstrap;
pub mod deployment;

/// Where the authority keeps its state.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Data directory (SQLite database and key files).
    pub data_dir: PathBuf,
    /// A `postgres://` URL; when absent, SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// The permit-signing key file; default `data_dir/keys/permit-signing.pem`. Every
    /// `serve` process sharing a PostgreSQL database must use the same key file: a process
    /// with another one refuses to start ([`deployment`]).
    pub signing_key: Option<PathBuf>,
    /// The transparency log's checkpoint-signing key; default `data_dir/keys/log-signing.pem`.
    /// Shared like the permit key.
    pub log_key: Option<PathBuf>,
    /// The log's origin (its name in checkpoints), e.g. `authority.example/log`; fixed when
    /// the log key is created and stored beside it (`.origin`).
    pub log_origin: Option<String>,
}

impl Setup {
    /// The database URL in use.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("runpermit.db").display()))
    }

    /// The log key file in use.
    pub fn log_key_path(&self) -> PathBuf {
        self.log_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("log-signing.pem"))
    }

    /// The signing key file in use.
    pub fn signing_key_path(&self) -> PathBuf {
        self.signing_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys").join("permit-signing.pem"))
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
    /// A key file is not an Ed25519 PKCS#8 PEM key, or the log's origin does not match.
    #[error("{path}: {message}")]
    Key {
        /// Which.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The database refused.
    /// Its message is the store's: it is not also given as the source, so that a printed
    /// chain of causes says it once.
    #[error("{0}")]
    Store(StoreError),
    /// The system's random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// This process's keys are not the deployment's recorded ones, or it has no key file
    /// while the database already has a deployment (a new key would be a second one), or
    /// `key rotate` was asked to rotate a key that is not the current one.
    #[error("{problem}. {hint}")]
    Deployment {
        /// What differs, naming the key files and the recorded keys.
        problem: String,
        /// How to give the process the deployment's keys.
        hint: String,
    },
}

impl From<StoreError> for BootstrapError {
    fn from(e: StoreError) -> Self {
        BootstrapError::Store(e)
    }
}
