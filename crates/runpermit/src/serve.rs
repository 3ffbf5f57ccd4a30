//! `runpermit serve` and `runpermit init`: the licensing authority.
//!
//! Settings come from flags, then environment variables, then a TOML file (`--config`), then
//! defaults: the raw flags ([`AuthorityArgs`]) are resolved once into [`AuthoritySettings`].

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use runpermit_authority::domain::clock::SystemClock;
use runpermit_authority::domain::limits::{Limits, LimitsConfig};
use runpermit_authority::server::{self, StartReport};
use runpermit_authority::setup::Setup;
use runpermit_authority::setup::bootstrap::prepare;
use runpermit_policy::Policy;
use serde::Deserialize;

use crate::args::ArgError;

/// Where the authority keeps its state (shared by `serve` and `init`).
#[derive(Debug, Args)]
pub struct AuthorityArgs {
    /// TOML file with any of: listen, data_dir, database_url, signing_key, issuer, policy,
    /// log_key, log_origin, witness_policy, and a [limits] section for rate limits (docs/operations.md).
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: the embedded SQLite database and the signing key [default: ./runpermit-data].
    #[arg(long, value_name = "DIR", env = "RUNPERMIT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user@host/db) instead of the embedded SQLite database.
    #[arg(long, value_name = "URL", env = "RUNPERMIT_DATABASE_URL")]
    database_url: Option<String>,
    /// Permit-signing key file (Ed25519, PKCS#8 PEM, created mode 0600 if absent on a new
    /// database) [default: DATA_DIR/keys/permit-signing.pem]. Processes sharing a database
    /// share it: the first start records it, and a process with another key refuses to start.
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_SIGNING_KEY")]
    signing_key: Option<PathBuf>,
    /// Policy file (TOML) [default: the built-in policy, see docs/policy.md].
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_POLICY")]
    policy: Option<PathBuf>,
    /// The authority's public identifier, written as `iss` in every permit
    /// [default: http://LISTEN].
    #[arg(long, value_name = "URL", env = "RUNPERMIT_ISSUER")]
    issuer: Option<String>,
    /// Transparency-log checkpoint key file (Ed25519, PKCS#8 PEM, created mode 0600 if absent
    /// on a new database, its origin beside it in .origin) [default:
    /// DATA_DIR/keys/log-signing.pem]. Processes sharing a database share it: the first start
    /// records it, and a process with another key refuses to start.
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_LOG_KEY")]
    log_key: Option<PathBuf>,
    /// The log's origin line, fixed when its key is created [default: the issuer's host
    /// followed by /log when --issuer is given, else runpermit.authority/log].
    #[arg(long, value_name = "NAME", env = "RUNPERMIT_LOG_ORIGIN")]
    log_origin: Option<String>,
}

/// `runpermit serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR", env = "RUNPERMIT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Milliseconds between sequencing rounds of the transparency log when its queue is empty.
    #[arg(
        long,
        value_name = "MS",
        env = "RUNPERMIT_SEQUENCE_INTERVAL_MS",
        default_value_t = 100
    )]
    sequence_interval_ms: u64,
    /// Witness policy file (C2SP tlog-policy; docs/log.md): the witnesses asked to cosign
    /// each checkpoint (those with a URL) and the quorum the published checkpoint needs.
    /// Without it the log is not witnessed.
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_WITNESS_POLICY")]
    witness_policy: Option<PathBuf>,
    /// Print the start-up report and the listening address as one JSON object on stdout
    /// (with the bootstrap admin token on the very first start), write logs as JSON lines,
    /// and tell a failure as a JSON object on stderr.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    authority: AuthorityArgs,
}

/// The settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    signing_key: Option<PathBuf>,
    policy: Option<PathBuf>,
    issuer: Option<String>,
    log_key: Option<PathBuf>,
    log_origin: Option<String>,
    witness_policy: Option<PathBuf>,
    #[serde(default)]
    limits: LimitsConfig,
}

/// Resolved settings.
#[derive(Debug)]
pub struct AuthoritySettings {
    listen: SocketAddr,
    setup: Setup,
    policy: Policy,
    issuer: String,
    limits: Limits,
    witness_policy: Option<PathBuf>,
}

fn resolve(listen: Option<SocketAddr>, args: AuthorityArgs) -> Result<AuthoritySettings> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --config {}", path.display()))?;
            toml::from_str::<ConfigFile>(&text)
                .map_err(|e| ArgError(format!("--config {}: {e}", path.display())))?
        }
        None => ConfigFile::default(),
    };
    let limits = Limits::new(file.limits).map_err(|problems| {
        let path = args.config.as_deref().unwrap_or(std::path::Path::new(""));
        ArgError(format!(
            "--config {}: {}",
            path.display(),
            problems.join("; ")
        ))
    })?;
    let listen = listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let database_url = args.database_url.or(file.database_url);
    if let Some(url) = &database_url
        && !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
    {
        return Err(ArgError(format!(
            "--database-url {url:?}: expected postgres://USER@HOST:PORT/DB (or sqlite://PATH)"
        ))
        .into());
    }
    let policy = match args.policy.or(file.policy) {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading --policy {}", path.display()))?;
            Policy::from_toml(&text)
                .map_err(|e| ArgError(format!("--policy {}: {e}", path.display())))?
        }
        None => Policy::builtin().clone(),
    };
    let explicit_issuer = args.issuer.clone().or(file.issuer.clone());
    let log_origin = args.log_origin.or(file.log_origin).or_else(|| {
        explicit_issuer.as_deref().map(|i| {
            let host = i.split("://").nth(1).unwrap_or(i).trim_end_matches('/');
            format!("{host}/log")
        })
    });
    Ok(AuthoritySettings {
        listen,
        setup: Setup {
            data_dir: args
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("runpermit-data")),
            database_url,
            signing_key: args.signing_key.or(file.signing_key),
            log_key: args.log_key.or(file.log_key),
            log_origin,
        },
        policy,
        issuer: args
            .issuer
            .or(file.issuer)
            .unwrap_or_else(|| format!("http://{listen}")),
        limits,
        witness_policy: file.witness_policy,
    })
}

/// Logs go to stderr: human-readable by default, one JSON object per line with
/// `RUNPERMIT_LOG_FORMAT=json`; `RUNPERMIT_LOG` sets the filter (default `info`).
pub(crate) fn init_logging() {
    init_logging_as(false);
}

/// [`init_logging`], with JSON lines whatever `RUNPERMIT_LOG_FORMAT` says when `json` (a
/// serve command's `--json`).
pub(crate) fn init_logging_as(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNPERMIT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: a log file or a collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json || std::env::var("RUNPERMIT_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Prints what starting found and did: the database, the keys, the policy, the limits and,
/// on the very first start, the bootstrap admin token.
fn report(setup: &Setup, policy_version: &str, limits: &str, started: &StartReport) {
    println!("database:     {}", redact(&setup.database_url()));
    println!(
        "signing key:  {} (kid {}){}",
        setup.signing_key_path().display(),
        started.kid,
        if started.created_key { ", created" } else { "" }
    );
    println!("policy:       {policy_version}");
    println!("limits:       {limits}");
    println!(
        "log key:      {} (vkey {})",
        setup.log_key_path().display(),
        started.vkey
    );
    if started.recorded_deployment {
        println!(
            "deployment:   recorded: this database now belongs to these two keys; every process \
             sharing it needs copies of both key files"
        );
    }
    if let Some(token) = &started.admin_token {
        println!();
        println!("Bootstrap admin token (shown once; store it now):");
        println!("  {token}");
        println!("  export RUNPERMIT_TOKEN={token}");
        println!("It never expires: give named admins tokens of their own, then revoke it");
        println!("(`runpermit whoami` shows its id). Tokens it creates expire.");
        println!();
    }
}

/// What `init --json` prints: [`report`]'s facts.
fn report_json(
    setup: &Setup,
    policy_version: &str,
    limits: &str,
    started: &StartReport,
) -> serde_json::Value {
    serde_json::json!({
        "database": redact(&setup.database_url()),
        "signing_key": {
            "path": setup.signing_key_path(),
            "kid": started.kid,
            "created": started.created_key,
        },
        "policy": policy_version,
        "limits": limits,
        "log_key": {
            "path": setup.log_key_path(),
            "vkey": started.vkey,
        },
        "recorded_deployment": started.recorded_deployment,
        "admin_token": started.admin_token,
    })
}

/// A database URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `runpermit init`: prepare without serving.
pub fn init(args: AuthorityArgs, json: bool) -> Result<()> {
    let settings = resolve(None, args)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let prepared = runtime
        .block_on(prepare(&settings.setup, &SystemClock))
        .context("preparing the authority")?;
    let started = StartReport {
        addr: settings.listen,
        kid: prepared.signer.kid().to_owned(),
        created_key: prepared.created_key,
        vkey: prepared.log_key.verifier_key(),
        admin_token: prepared.admin_token.clone(),
        recorded_deployment: prepared.recorded_deployment,
    };
    let (policy, limits) = (&settings.policy.version, settings.limits.summary());
    if json {
        return crate::output::print_json(&report_json(&settings.setup, policy, &limits, &started));
    }
    println!("runpermit authority initialized");
    report(&settings.setup, policy, &limits, &started);
    Ok(())
}

/// `runpermit key rotate`: a new permit-signing key; the old one stays in the JWKS until the
/// permits it signed have expired.
pub fn rotate(args: AuthorityArgs, json: bool) -> Result<()> {
    let settings = resolve(None, args)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let rotation = runtime
        .block_on(runpermit_authority::setup::bootstrap::rotate_key(
            &settings.setup,
            &SystemClock,
        ))
        .context("rotating the signing key")?;
    if json {
        return crate::output::print_json(&serde_json::json!({
            "new_kid": rotation.new_kid,
            "retired_kid": rotation.retired_kid,
            "retired_path": rotation.retired_path,
            "signing_key": settings.setup.signing_key_path(),
        }));
    }
    println!("new signing key:     {}", rotation.new_kid);
    println!(
        "retired signing key: {} (moved to {}; still published until its permits expire)",
        rotation.retired_kid,
        rotation.retired_path.display()
    );
    println!(
        "copy {} to every other process sharing this database (one with the retired key is \
         refused at start), then restart every runpermit serve process to sign with the new key",
        settings.setup.signing_key_path().display()
    );
    Ok(())
}

/// How often the oversight supervisor re-evaluates runs (after a crash between storing usage
/// and evaluating it) and considers summarising usage into the log.
pub fn run(args: ServeArgs) -> Result<()> {
    init_logging_as(args.json);
    let mut settings = resolve(args.listen, args.authority)?;
    let witnesses = match args.witness_policy.or(settings.witness_policy.take()) {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading --witness-policy {}", path.display()))?;
            Some(
                runpermit_log::WitnessPolicy::parse(&text)
                    .map_err(|e| ArgError(format!("--witness-policy {}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let (setup, policy_version, limits) = (
        settings.setup.clone(),
        settings.policy.version.clone(),
        settings.limits.summary(),
    );
    let settings = server::Settings {
        listen: settings.listen,
        setup: settings.setup,
        policy: settings.policy,
        issuer: settings.issuer,
        limits: settings.limits,
        sequence_interval: std::time::Duration::from_millis(args.sequence_interval_ms.max(1)),
        supervise_every: server::SUPERVISE_EVERY,
        witnesses,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .ok();
        let started = server::start(settings, metrics).await?;
        let listening = format!("http://{}", started.report.addr);
        if args.json {
            let mut object = report_json(&setup, &policy_version, &limits, &started.report);
            object["listening"] = serde_json::json!(listening);
            println!("{object}");
        } else {
            report(&setup, &policy_version, &limits, &started.report);
            println!("runpermit authority listening on {listening}");
        }
        crate::output::flush();
        started.serve(shutdown_signal()).await?;
        Ok(())
    })
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed the service runs until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/rp"),
            "postgres://app:***@db:5432/rp"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }
}
