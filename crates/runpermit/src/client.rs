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

use crate::args::ArgError;

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
    /// The body's `error` code (`invalid_input`, `not_found`, …), or `http_<status>` when the
    /// body has none.
    pub code: String,
    /// The body's `message`.
    pub message: String,
    /// The body's `errors`, as the authority sent them (an empty list when none).
    pub errors: Value,
    /// The body's `errors`, as field and message for people.
    pub fields: Vec<(String, String)>,
    /// The URL asked.
    pub url: String,
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

/// A server could not be reached at all: nothing answered at its address.
#[derive(Debug)]
pub struct Unreachable {
    /// The URL asked.
    pub url: String,
    /// Why, in a few words (`connection refused`, `host not found`, `timed out`).
    pub reason: String,
    /// What to check.
    pub hint: &'static str,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not reach {} ({})", self.url, self.reason)?;
        if !self.hint.is_empty() {
            write!(f, ": {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for Unreachable {}

/// What to check when the authority cannot be reached.
pub const AUTHORITY_HINT: &str = "is the authority running (`runpermit serve`), and is --server \
     (or RUNPERMIT_SERVER) its URL?";

/// What a server URL must look like: the base, without the API's `/v1`.
const BASE_URL_ONLY: &str = "the server URL should be the authority's base URL, without /v1 \
     (such as http://127.0.0.1:8080)";

/// Checks a server URL given as `flag`: http(s), and the base URL rather than the API's
/// `/v1` under it. Returns it without a trailing slash.
pub fn base_url(flag: &str, url: &str) -> Result<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ArgError(format!(
            "{flag} {url:?}: expected a URL such as https://authority.example or http://127.0.0.1:8080"
        ))
        .into());
    }
    let base = url.trim_end_matches('/');
    if base.ends_with("/v1") {
        return Err(ArgError(format!("{flag} {url}: {BASE_URL_ONLY}")).into());
    }
    Ok(base.to_owned())
}

/// The error for a request to `url` that got no answer: [`Unreachable`] when nothing answered
/// at the address (with `hint`), else the transport error with the URL.
pub fn transport_error(
    method: &str,
    url: &str,
    e: ureq::Error,
    hint: &'static str,
) -> anyhow::Error {
    use std::io::ErrorKind;
    let reason = match &e {
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => Some("connection refused"),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Some("connection reset"),
            ErrorKind::TimedOut => Some("timed out"),
            ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => Some("unreachable"),
            ErrorKind::AddrNotAvailable => Some("address not available"),
            _ => None,
        },
        ureq::Error::HostNotFound => Some("host not found"),
        ureq::Error::ConnectionFailed => Some("connection failed"),
        ureq::Error::Timeout(_) => Some("timed out"),
        _ => None,
    };
    match reason {
        Some(reason) => Unreachable {
            url: url.to_owned(),
            reason: reason.to_owned(),
            hint,
        }
        .into(),
        None => anyhow::Error::new(e).context(format!("{method} {url}")),
    }
}

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
                    .map_err(|e| ArgError(format!("{}: {e}", p.display())))?
            }
            Some(p) if args.cli_config.is_some() => {
                return Err(ArgError(format!("--cli-config {}: no such file", p.display())).into());
            }
            _ => CliConfig::default(),
        };
        let base = args
            .server
            .clone()
            .or(file.server)
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        let base = base_url("--server", &base)?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        Ok(Client {
            base,
            token: args.token.clone().or(file.token),
            agent,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn token(&self) -> Result<&str> {
        self.token.as_deref().ok_or_else(|| {
            ArgError(
                "no API token: pass --token, set RUNPERMIT_TOKEN, or put `token = \"…\"` in the CLI config file"
                    .to_owned(),
            )
            .into()
        })
    }

    /// `GET path` with the token.
    pub fn get(&self, path: &str) -> Result<Value> {
        let url = self.url(path);
        let response = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.token()?))
            .call()
            .map_err(|e| transport_error("GET", &url, e, AUTHORITY_HINT))?;
        read(&url, response)
    }

    /// `POST path` with a JSON body and optional headers.
    pub fn post<B: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        headers: &[(&str, &str)],
    ) -> Result<Value> {
        self.send("POST", path, body, headers)
    }

    /// `PUT path` with a JSON body.
    pub fn put<B: serde::Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<Value> {
        self.send("PUT", path, body, &[])
    }

    fn send<B: serde::Serialize + ?Sized>(
        &self,
        method: &str,
        path: &str,
        body: &B,
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
            .map_err(|e| transport_error(method, &url, e, AUTHORITY_HINT))?;
        read(&url, response)
    }
}

fn read(url: &str, mut response: ureq::http::Response<ureq::Body>) -> Result<Value> {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .context("reading the authority's answer")?;
    if (200..300).contains(&status) {
        return Ok(serde_json::from_str(&text).unwrap_or(Value::String(text)));
    }
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let message = match body.get("message").and_then(Value::as_str) {
        Some(message) => message.to_owned(),
        // The authority's every error has a JSON body: an empty 404 is another path's.
        None if status == 404 && text.trim().is_empty() => format!(
            "nothing at {url}: is --server the authority's base URL (such as \
             http://127.0.0.1:8080, without /v1)?"
        ),
        None if text.trim().is_empty() => "no message".to_owned(),
        None => text.trim().to_owned(),
    };
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
        code: body
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| format!("http_{status}"), str::to_owned),
        message,
        errors: body
            .get("errors")
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new())),
        fields,
        url: url.to_owned(),
    }
    .into())
}
