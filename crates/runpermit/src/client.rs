//! The HTTP client the CLI uses to talk to the authority.
//!
//! Server URL and token come from flags, then environment variables (`RUNPERMIT_SERVER`,
//! `RUNPERMIT_TOKEN`), then the CLI config file (`--cli-config`, `RUNPERMIT_CLI_CONFIG`, or
//! `$XDG_CONFIG_HOME/runpermit/cli.toml`), then `http://127.0.0.1:8080` and no token.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use crate::usage::UsageError;

/// Connection flags shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The authority's base URL [default: http://127.0.0.1:8080].
    #[arg(long, value_name = "URL", env = "RUNPERMIT_SERVER", global = true)]
    server: Option<String>,
    /// API token (rpt_…).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RUNPERMIT_TOKEN",
        global = true,
        hide_env_values = true
    )]
    token: Option<String>,
    /// CLI config file with `server` and `token` [default: $XDG_CONFIG_HOME/runpermit/cli.toml].
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_CLI_CONFIG", global = true)]
    cli_config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CliConfig {
    server: Option<String>,
    token: Option<String>,
}

fn default_config_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("runpermit").join("cli.toml"))
}

/// A failure the authority reported: status, message and field errors.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: u16,
    /// The body's `message`.
    pub message: String,
    /// The body's `errors`.
    pub fields: Vec<(String, String)>,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the authority answered {}: ", self.status)?;
        if self.fields.is_empty() {
            f.write_str(&self.message)
        } else {
            for (field, message) in &self.fields {
                f.write_str("\n  ")?;
                if field.is_empty() {
                    f.write_str(message)?;
                } else {
                    write!(f, "{field}: {message}")?;
                }
            }
            Ok(())
        }
    }
}

impl std::error::Error for ApiFailure {}

/// A connection to the authority.
#[derive(Debug)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// Resolves flags, environment and config file.
    pub fn new(args: &ClientArgs) -> Result<Client> {
        let path = args.cli_config.clone().or_else(default_config_path);
        let file = match &path {
            Some(p) if p.is_file() => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str::<CliConfig>(&text)
                    .map_err(|e| UsageError(format!("{}: {e}", p.display())))?
            }
            Some(p) if args.cli_config.is_some() => {
                return Err(
                    UsageError(format!("--cli-config {}: no such file", p.display())).into(),
                );
            }
            _ => CliConfig::default(),
        };
        let base = args
            .server
            .clone()
            .or(file.server)
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(UsageError(format!(
                "--server {base:?}: expected a URL such as https://authority.example or http://127.0.0.1:8080"
            ))
            .into());
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            token: args.token.clone().or(file.token),
            agent,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn token(&self) -> Result<&str> {
        self.token.as_deref().ok_or_else(|| {
            UsageError(
                "no API token: pass --token, set RUNPERMIT_TOKEN, or put `token = \"…\"` in the CLI config file"
                    .to_owned(),
            )
            .into()
        })
    }

    /// `GET path` with the token.
    pub fn get(&self, path: &str) -> Result<Value> {
        let response = self
            .agent
            .get(&self.url(path))
            .header("Authorization", &format!("Bearer {}", self.token()?))
            .call()
            .with_context(|| format!("GET {}", self.url(path)))?;
        read(response)
    }

    /// `POST path` with a JSON body and optional headers.
    pub fn post(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Result<Value> {
        self.send("POST", path, body, headers)
    }

    /// `PUT path` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.send("PUT", path, body, &[])
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<Value> {
        let url = self.url(path);
        let mut request = match method {
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        }
        .header("Authorization", &format!("Bearer {}", self.token()?));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send_json(body)
            .with_context(|| format!("{method} {url}"))?;
        read(response)
    }
}

fn read(mut response: ureq::http::Response<ureq::Body>) -> Result<Value> {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .context("reading the authority's answer")?;
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string());
    let fields = body
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    let field = e
                        .get("field")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    let mut message = e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    if let Some(s) = e.get("suggestions").and_then(Value::as_array)
                        && !s.is_empty()
                    {
                        let names: Vec<&str> = s.iter().filter_map(Value::as_str).collect();
                        message.push_str(&format!(" (closest: {})", names.join(", ")));
                    }
                    (field, message)
                })
                .collect()
        })
        .unwrap_or_default();
    Err(ApiFailure {
        status,
        message,
        fields,
    }
    .into())
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
