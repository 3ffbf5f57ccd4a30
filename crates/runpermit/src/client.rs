//! The HTTP client the CLI uses to talk to the authority.
//!
//! Server URL and token come from flags, then environment variables (`RUNPERMIT_SERVER`,
//! `RUNPERMIT_TOKEN`), then the CLI config file (`--cli-config`, `RUNPERMIT_CLI_CONFIG`, or
//! `$XDG_CONFIG_HOME/runpermit/cli.toml`), then `http://127.0.0.1:8080` and no token.

use std::fmt;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use runpermit_api::error::ErrorBody;
use runpermit_types::FieldError;
use serde::Deserialize;
use serde::de::DeserializeOwned;

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
    /// The body's `errors`, each invalid field (an empty list when none).
    pub errors: Vec<FieldError>,
    /// The URL asked.
    pub url: String,
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the authority answered {}: ", self.status)?;
        if self.errors.is_empty() {
            return f.write_str(&self.message);
        }
        for e in &self.errors {
            f.write_str("\n  ")?;
            if !e.field.is_empty() {
                write!(f, "{}: ", e.field)?;
            }
            f.write_str(&e.message)?;
            if !e.suggestions.is_empty() {
                write!(f, " (closest: {})", e.suggestions.join(", "))?;
            }
        }
        Ok(())
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

    /// `GET path` with the token; the answer read as a `T` (a response type of
    /// `runpermit_api`).
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = self.url(path);
        let response = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.token()?))
            .call()
            .map_err(|e| transport_error("GET", &url, e, AUTHORITY_HINT))?;
        read(&url, response)
    }

    /// `POST path` with a JSON body and optional headers; the answer read as a `T`.
    pub fn post<T: DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        headers: &[(&str, &str)],
    ) -> Result<T> {
        self.send("POST", path, body, headers)
    }

    /// `PUT path` with a JSON body; the answer read as a `T`.
    pub fn put<T: DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        self.send("PUT", path, body, &[])
    }

    fn send<T: DeserializeOwned, B: serde::Serialize + ?Sized>(
        &self,
        method: &str,
        path: &str,
        body: &B,
        headers: &[(&str, &str)],
    ) -> Result<T> {
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

/// Reads an answer: a 2xx body as a `T`, anything else as an [`ApiFailure`]. A 2xx body that
/// is not a `T` is an error naming the URL and what did not fit (an authority of another
/// version, or another server at that address), never a view of zeros.
fn read<T: DeserializeOwned>(
    url: &str,
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<T> {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .context("reading the authority's answer")?;
    answer(url, status, &text)
}

/// An answer's body `text` with its `status`, read as [`read`] says.
fn answer<T: DeserializeOwned>(url: &str, status: u16, text: &str) -> Result<T> {
    if !(200..300).contains(&status) {
        return Err(failure(url, status, text).into());
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." {
            String::new()
        } else {
            format!(" at {at}")
        };
        anyhow::anyhow!(
            "the answer from {url} is not what this runpermit expects{at}: {} (is the \
             authority the same version as this CLI?)",
            e.inner()
        )
    })
}

/// The failure an error answer tells: the authority's error body (`runpermit_api::error`), or
/// for a body that is not one (another server at the address), its text.
fn failure(url: &str, status: u16, text: &str) -> ApiFailure {
    let body: Option<ErrorBody> = serde_json::from_str(text).ok();
    let Some(body) = body else {
        let message = if text.trim().is_empty() {
            if status == 404 {
                // The authority's every error has a JSON body: an empty 404 is another path's.
                format!(
                    "nothing at {url}: is --server the authority's base URL (such as \
                     http://127.0.0.1:8080, without /v1)?"
                )
            } else {
                "no message".to_owned()
            }
        } else {
            text.trim().to_owned()
        };
        return ApiFailure {
            status,
            code: format!("http_{status}"),
            message,
            errors: Vec::new(),
            url: url.to_owned(),
        };
    };
    let code = serde_json::to_value(body.error)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("http_{status}"));
    ApiFailure {
        status,
        code,
        message: body.message,
        errors: body.errors,
        url: url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use runpermit_api::identity::WhoAmI;

    const URL: &str = "http://127.0.0.1:8080/v1/whoami";

    #[test]
    fn an_answer_is_read_as_its_type_or_refused_naming_what_does_not_fit() {
        let body = r#"{"member_id":"mem_1","member_name":"Ada","role":"admin",
            "org_id":"org_1","org_name":"Authority","org_kind":"authority",
            "token_id":"tok_1","token_expires_at":null}"#;
        let me: WhoAmI = answer(URL, 200, body).unwrap();
        assert_eq!(
            (me.member_name.as_str(), me.token_expires_at),
            ("Ada", None)
        );
        // A field missing or of another type is an error naming it, never a default.
        let err = answer::<WhoAmI>(URL, 200, r#"{"member_id":"mem_1"}"#).unwrap_err();
        assert!(
            err.to_string().contains("not what this runpermit expects")
                && err.to_string().contains("member_name"),
            "{err}"
        );
        let err = answer::<WhoAmI>(URL, 200, &body.replace(r#""Ada""#, "7")).unwrap_err();
        assert!(err.to_string().contains("at member_name"), "{err}");
    }

    #[test]
    fn an_error_answer_is_the_authoritys_error_body() {
        let body = r#"{"error":"invalid_input","message":"1 invalid field",
            "errors":[{"field":"kind","message":"unknown kind","suggestions":["developer"]}]}"#;
        let err = answer::<WhoAmI>(URL, 422, body).unwrap_err();
        let failure = err.downcast_ref::<ApiFailure>().expect("an ApiFailure");
        assert_eq!(
            (failure.status, failure.code.as_str()),
            (422, "invalid_input")
        );
        assert_eq!(
            failure.to_string(),
            "the authority answered 422: \n  kind: unknown kind (closest: developer)"
        );
        // Another server's page is told as it is, with its status as the code.
        let err = answer::<WhoAmI>(URL, 502, "Bad Gateway").unwrap_err();
        let failure = err.downcast_ref::<ApiFailure>().expect("an ApiFailure");
        assert_eq!(
            (failure.code.as_str(), failure.message.as_str()),
            ("http_502", "Bad Gateway")
        );
        let err = answer::<WhoAmI>(URL, 404, "").unwrap_err();
        assert!(
            err.to_string()
                .contains("is --server the authority's base URL"),
            "{err}"
        );
    }
}
