//! The witness's configuration file (TOML). [`WitnessConfig::from_toml`] is pure;
//! [`WitnessConfig::load`] reads the file and resolves relative paths against its folder.
//!
//! ```toml
//! name = "witness.example/w1"      # the cosigner name: a schema-less URL
//! key = "witness.pem"              # PKCS#8 PEM Ed25519 key (from `runpermit witness init`)
//! listen = "127.0.0.1:7380"        # default
//! database = "witness.db"          # default: witness.db beside this file
//!
//! [[log]]
//! vkey = "log.example.org/runpermit+1a2b3c4d+AQ…"   # the origin is the vkey's name
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use runpermit_log::{CosignerKey, VerifierKey};
use serde::Deserialize;

use crate::decide::TrustedLogs;

/// The listen address when the file names none.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7380";

/// The database file name when the file names none (beside the configuration).
pub const DEFAULT_DATABASE: &str = "witness.db";

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("reading the witness configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML does not parse, or a key is unknown or of the wrong type.
    #[error("witness configuration: {0}")]
    Parse(String),
    /// A value cannot be used.
    #[error("witness configuration: {field}: {message}")]
    Invalid {
        /// The key, such as `log[1].vkey`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The key file cannot be read or is not a usable key.
    #[error("witness key {}: {message}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One log the witness cosigns for.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The log's verifier key, `<origin>+<key id>+<base64 key>`. Several entries with the
    /// same origin are several trusted keys of one log.
    pub vkey: String,
}

/// The witness's configuration. Unknown keys are refused.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's name, the key name of its cosignatures: a schema-less URL such as
    /// `witness.example/w1`.
    pub name: String,
    /// The witness's private key file (PKCS#8 PEM, Ed25519).
    pub key: PathBuf,
    /// Address to listen on. Default [`DEFAULT_LISTEN`].
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The SQLite database file holding the latest cosigned checkpoint of each log. Default
    /// [`DEFAULT_DATABASE`] beside the configuration.
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// The logs the witness cosigns for.
    #[serde(default)]
    pub log: Vec<LogConfig>,
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("a valid socket address")
}

impl WitnessConfig {
    /// Parses and checks a configuration; relative paths stay relative.
    pub fn from_toml(text: &str) -> Result<WitnessConfig, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let config: WitnessConfig = serde_path_to_error::deserialize(de)
            .map_err(|e| ConfigError::Parse(format!("{}: {}", e.path(), e.inner())))?;
        config.trusted_logs()?;
        if CosignerKey::from_seed(&config.name, &[1; 32]).is_err() {
            return Err(ConfigError::Invalid {
                field: "name".into(),
                message: format!(
                    "{:?} cannot name a key: use a non-empty name without spaces or '+', such \
                     as \"witness.example/w1\"",
                    config.name
                ),
            });
        }
        Ok(config)
    }

    /// Reads `path`; `key` and `database` are resolved against its folder, and `database`
    /// defaults to [`DEFAULT_DATABASE`] there.
    pub fn load(path: &Path) -> Result<WitnessConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = WitnessConfig::from_toml(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if config.key.is_relative() {
            config.key = base.join(&config.key);
        }
        let database = config
            .database
            .take()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE));
        config.database = Some(if database.is_relative() {
            base.join(database)
        } else {
            database
        });
        Ok(config)
    }

    /// The database file ([`DEFAULT_DATABASE`] when unset and not loaded from a file).
    pub fn database_path(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE))
    }

    /// The `[[log]]` keys, each checked; the field of the first unusable one is named.
    pub fn trusted_logs(&self) -> Result<TrustedLogs, ConfigError> {
        let mut keys = Vec::new();
        for (i, log) in self.log.iter().enumerate() {
            let key = VerifierKey::parse(&log.vkey).map_err(|e| ConfigError::Invalid {
                field: format!("log[{i}].vkey"),
                message: e.to_string(),
            })?;
            if keys.contains(&key) {
                return Err(ConfigError::Invalid {
                    field: format!("log[{i}].vkey"),
                    message: "this key is listed twice".into(),
                });
            }
            keys.push(key);
        }
        Ok(TrustedLogs::new(keys))
    }

    /// Reads the witness's key file under the configured name.
    pub fn read_key(&self) -> Result<CosignerKey, ConfigError> {
        let key_error = |message: String| ConfigError::Key {
            path: self.key.clone(),
            message,
        };
        let pem = std::fs::read_to_string(&self.key).map_err(|e| key_error(e.to_string()))?;
        CosignerKey::from_pkcs8_pem(&self.name, &pem).map_err(|e| key_error(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use runpermit_log::LogKey;

    use super::*;

    fn vkey(name: &str) -> String {
        LogKey::from_seed(name, &[5; 32]).unwrap().verifier_key()
    }

    #[test]
    fn reads_a_full_file_with_defaults() {
        let text = format!(
            "name = \"witness.example/w1\"\nkey = \"w.pem\"\n[[log]]\nvkey = \"{}\"\n[[log]]\nvkey = \"{}\"\n",
            vkey("log.example/a"),
            vkey("log.example/b")
        );
        let config = WitnessConfig::from_toml(&text).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.database_path(), PathBuf::from(DEFAULT_DATABASE));
        let logs = config.trusted_logs().unwrap();
        assert_eq!(
            logs.origins().collect::<Vec<_>>(),
            ["log.example/a", "log.example/b"]
        );
    }

    #[test]
    fn errors_name_the_field() {
        let err = |text: &str| WitnessConfig::from_toml(text).unwrap_err().to_string();
        let e = err("name = \"w\"\nkey = \"k\"\n[[log]]\nvkey = \"nope\"\n");
        assert!(e.contains("log[0].vkey"), "{e}");
        let e = err("key = \"k\"\n");
        assert!(e.contains("name"), "{e}");
        let e = err("name = \"w\"\nkey = \"k\"\nlisten = \"here\"\n");
        assert!(e.contains("listen"), "{e}");
        let e = err("name = \"w\"\nkey = \"k\"\nport = 1\n");
        assert!(e.contains("port"), "{e}");
        let e = err("name = \"has space\"\nkey = \"k\"\n");
        assert!(e.contains("name:"), "{e}");
        let v = vkey("log.example/a");
        let e = err(&format!(
            "name = \"w\"\nkey = \"k\"\n[[log]]\nvkey = \"{v}\"\n[[log]]\nvkey = \"{v}\"\n"
        ));
        assert!(e.contains("log[1].vkey") && e.contains("twice"), "{e}");
    }
}
