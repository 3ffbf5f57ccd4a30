//! The gateway's configuration file (TOML), every key documented on [`GatewayConfig`]
//! (and in docs/access.md "The gateway"). [`GatewayConfig::from_toml`] is pure;
//! [`GatewayConfig::load`] reads the file and resolves relative paths against its folder.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("reading the gateway configuration {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML does not parse, or a key is unknown or of the wrong type.
    #[error("gateway configuration: {0}")]
    Parse(String),
    /// A value is out of range.
    #[error("gateway configuration: {field}: {message}")]
    Invalid {
        /// The key.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The gateway's configuration. Unknown keys are refused.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The authority's base URL: the status list is fetched from
    /// `{authority_url}/v1/status-list` and access-usage reports are sent to
    /// `{authority_url}/v1/access-usage`.
    pub authority_url: String,
    /// The authority's pinned JWKS file (grants and status lists are verified against it).
    pub jwks: PathBuf,
    /// The public log's pinned verifier key (C2SP note format): grant proofs must verify
    /// under it.
    pub log_vkey: String,
    /// The developer organization's id at the authority: the `iss` of the access-usage
    /// reports; grants whose `developer` is another organization are refused.
    pub developer_id: String,
    /// The registered model this gateway serves (its id in the authority's model registry):
    /// grants for another model are refused.
    pub model_id: String,
    /// The SHA-256 digest of the checkpoint the upstream serves, `sha256:` and 64 hex digits:
    /// grants for another checkpoint are refused.
    pub checkpoint_digest: String,
    /// The model name callers put in a request's `model` field and `GET /v1/models` lists.
    /// A request naming another model (other than this or `model_id`) is refused.
    pub served_model: String,
    /// The upstream OpenAI-compatible server's base URL (requests go to
    /// `{upstream_url}/v1/chat/completions` and `{upstream_url}/v1/completions`).
    pub upstream_url: String,
    /// The model name sent upstream in the request's `model` field; default `served_model`.
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// The developer's reporting key (PKCS#8 PEM, Ed25519, as the gate's `reporting_key`):
    /// signs access-usage reports.
    pub reporting_key: PathBuf,
    /// The folder holding the gateway's durable state: `ledger.json` (per-grant counters and
    /// queued reports) and `status-list.jwt` (the newest accepted status list).
    pub state_dir: PathBuf,
    /// Address to listen on. Default `127.0.0.1:8088`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Clock difference tolerated on a grant's `nbf`/`iat`/`exp`, seconds. Default 60.
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: i64,
    /// How long past its `exp` the held status list is still relied on, seconds. Default 300.
    #[serde(default = "default_grace")]
    pub status_grace_seconds: i64,
    /// How often the status list is fetched, seconds. Default 60.
    #[serde(default = "default_poll")]
    pub status_poll_seconds: u64,
    /// The longest interval one access-usage report covers, seconds (at least 60; a grant's
    /// own `duties.usage_report_interval_seconds` shortens it). Default 3600.
    #[serde(default = "default_report")]
    pub report_interval_seconds: u64,
    /// How long one upstream request may take, seconds. Default 600.
    #[serde(default = "default_upstream_timeout")]
    pub upstream_timeout_seconds: u64,
}

fn default_listen() -> String {
    "127.0.0.1:8088".to_owned()
}
fn default_skew() -> i64 {
    60
}
fn default_grace() -> i64 {
    300
}
fn default_poll() -> u64 {
    60
}
fn default_report() -> u64 {
    3600
}
fn default_upstream_timeout() -> u64 {
    600
}

impl GatewayConfig {
    /// Parses and checks a configuration; relative paths stay relative.
    pub fn from_toml(text: &str) -> Result<GatewayConfig, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let config: GatewayConfig = serde_path_to_error::deserialize(de)
            .map_err(|e| ConfigError::Parse(format!("{}: {}", e.path(), e.inner())))?;
        config.check()?;
        Ok(config)
    }

    /// Reads `path` and resolves `jwks`, `reporting_key` and `state_dir` against its folder.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = GatewayConfig::from_toml(&text)?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.jwks,
            &mut config.reporting_key,
            &mut config.state_dir,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |field, message: &str| {
            Err(ConfigError::Invalid {
                field,
                message: message.to_owned(),
            })
        };
        let digest_ok = self
            .checkpoint_digest
            .strip_prefix("sha256:")
            .is_some_and(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
        if !digest_ok {
            return invalid(
                "checkpoint_digest",
                "must be `sha256:` and 64 lowercase hex digits, as the model registry shows it",
            );
        }
        for (field, value) in [
            ("authority_url", &self.authority_url),
            ("upstream_url", &self.upstream_url),
        ] {
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                return invalid(field, "must be an http:// or https:// URL");
            }
        }
        for (field, value) in [
            ("developer_id", &self.developer_id),
            ("model_id", &self.model_id),
            ("served_model", &self.served_model),
        ] {
            if value.trim().is_empty() {
                return invalid(field, "must not be empty");
            }
        }
        if !(0..=3600).contains(&self.clock_skew_seconds) {
            return invalid("clock_skew_seconds", "must be 0 to 3600");
        }
        if !(0..=86_400).contains(&self.status_grace_seconds) {
            return invalid("status_grace_seconds", "must be 0 to 86400");
        }
        if !(1..=86_400).contains(&self.status_poll_seconds) {
            return invalid("status_poll_seconds", "must be 1 to 86400");
        }
        if !(60..=2_678_400).contains(&self.report_interval_seconds) {
            return invalid(
                "report_interval_seconds",
                "must be 60 to 2678400 (31 days), the range of a report's interval",
            );
        }
        if self.upstream_timeout_seconds == 0 {
            return invalid("upstream_timeout_seconds", "must be at least 1");
        }
        Ok(())
    }

    /// The model name sent upstream.
    pub fn upstream_model(&self) -> &str {
        self.upstream_model.as_deref().unwrap_or(&self.served_model)
    }

    /// What the pure check needs of the configuration.
    pub fn served(&self) -> Served {
        Served {
            developer_id: self.developer_id.clone(),
            model_id: self.model_id.clone(),
            checkpoint_digest: self.checkpoint_digest.clone(),
            served_model: self.served_model.clone(),
            clock_skew_seconds: self.clock_skew_seconds,
        }
    }
}

/// What a gateway serves, as the pure check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// See [`GatewayConfig::developer_id`].
    pub developer_id: String,
    /// See [`GatewayConfig::model_id`].
    pub model_id: String,
    /// See [`GatewayConfig::checkpoint_digest`].
    pub checkpoint_digest: String,
    /// See [`GatewayConfig::served_model`].
    pub served_model: String,
    /// See [`GatewayConfig::clock_skew_seconds`].
    pub clock_skew_seconds: i64,
}
