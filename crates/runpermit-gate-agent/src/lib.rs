//! The long-running gate, `runpermit gate serve`: runpermit-gate's pure decision behind an
//! HTTP endpoint and a Kubernetes ValidatingAdmissionWebhook, with the authority's signed
//! status list polled in the background.
//!
//! - [`run`]: the whole service from a [`ServeOptions`] (what the CLI calls): loads the
//!   configuration ([`load_agent`]), polls the status list ([`poll_status`]) and serves
//!   ([`serve`]) until shutdown.
//! - [`Agent`]: the state (pinned keys, held status list, evidence cache, usage, clock) and
//!   [`Agent::decide`].
//! - [`router`]: `GET /healthz`, `GET /readyz` (a fresh verified status list),
//!   `GET /metrics` (Prometheus), `GET /v1/metering`, `POST /v1/decide` (`JobRequest` →
//!   `Decision`), `POST /v1/admission` (AdmissionReview v1; see [`review`] for what is
//!   counted and read).
//! - [`metering`]: with `[metering]` in the configuration, [`Meter`] and [`meter_loop`]
//!   meter the configured sources every interval, queue signed usage reports durably
//!   ([`queue`]) and ship them to the authority ([`sender`]); [`slurm`] reads Slurm jobs,
//!   [`nvml`] the node's GPUs. Each run is metered with its permit's accounting basis, from
//!   the [`PermitBook`] of permits the gate admitted jobs under ([`permits`]).
//! - [`serve`]/[`serve_on`]: TLS with rustls (ring provider) or plain HTTP, graceful shutdown.
//!
//! Fail closed is the decision's business: this crate keeps the newest verified status list
//! (in memory and in a file, so that an older list is never accepted again, even across
//! restarts) and logs, never crashes, when the authority cannot be reached.

mod admission;
mod agent;
mod count;
mod files;
mod http;
pub mod metering;
mod metrics;
pub mod nvml;
pub mod permits;
pub mod queue;
pub mod sender;
mod serve;
pub mod slurm;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use admission::{
    ADMISSION_API_VERSION, PERMIT_ANNOTATION, PROOF_ANNOTATION, ReviewError, review,
};
pub use agent::{Agent, Clock, RefreshError, Refreshed};
pub use count::ACCELERATOR_RESOURCES;
pub use http::{MAX_BODY_BYTES, router};
pub use metering::{CycleReport, Meter, MeteringStatus, meter_loop};
pub use permits::{Held, PermitBook};
pub use queue::{
    Backoff, DeadLetter, PendingReport, QueueError, SendError, ShipOutcome, UsageQueue,
};
pub use serve::{TlsFiles, poll_status, serve, serve_on, tls_config};

/// How often [`run`] polls the status list unless told otherwise.
pub const DEFAULT_POLL_EVERY: Duration = Duration::from_secs(30);

/// The file name of the held status list, beside the configuration unless told otherwise
/// (the same file `runpermit gate check` keeps).
pub const STATUS_FILE_NAME: &str = "status-list.jwt";

/// Why the gate agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration file is not a valid gate configuration.
    #[error("{}: {message}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// Every problem, by key.
        message: String,
    },
    /// A file the gate needs cannot be read.
    #[error("reading {what} {}: {source}", path.display())]
    Read {
        /// Which file (`the pinned JWKS`).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The `--cluster` is not one of the configuration's clusters.
    #[error("cluster {cluster:?} is not configured; the configuration has: {}", known.join(", "))]
    UnknownCluster {
        /// The cluster asked for.
        cluster: String,
        /// The configured clusters.
        known: Vec<String>,
    },
    /// The TLS certificate or key cannot be used.
    #[error("TLS {}: {message}", path.display())]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Metering cannot start: the queue or spool directory cannot be opened.
    #[error("metering: {message}")]
    Metering {
        /// What is wrong, naming the key (`metering.queue_dir`).
        message: String,
    },
    /// The listening address cannot be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
}

impl AgentError {
    /// Whether the error is the caller's (bad flags or files: exit status 2).
    pub fn is_usage(&self) -> bool {
        !matches!(self, AgentError::Bind { .. })
    }
}

/// What `runpermit gate serve` needs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The gate's configuration (`--config`, see runpermit-gate's `examples/gate.toml`).
    pub config: PathBuf,
    /// The cluster this webhook admits Pods and Jobs for (`--cluster`): one of the
    /// configuration's clusters, one webhook per cluster.
    pub cluster: String,
    /// Where to listen (`--listen`).
    pub listen: SocketAddr,
    /// TLS certificate and key (`--tls-cert`, `--tls-key`); plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// Where to keep the newest accepted status list (`--state`); default:
    /// [`STATUS_FILE_NAME`] beside the configuration.
    pub status_file: Option<PathBuf>,
    /// How often to poll the authority's status list; default [`DEFAULT_POLL_EVERY`].
    pub poll_every: Duration,
}

impl ServeOptions {
    /// Options with the defaults: no TLS, the status file beside the configuration, a
    /// status poll every 30 s.
    pub fn new(config: impl Into<PathBuf>, cluster: impl Into<String>, listen: SocketAddr) -> Self {
        ServeOptions {
            config: config.into(),
            cluster: cluster.into(),
            listen,
            tls: None,
            status_file: None,
            poll_every: DEFAULT_POLL_EVERY,
        }
    }
}

/// Builds the [`Agent`] for `cluster` from the gate configuration at `config`, as
/// `runpermit gate check` reads it: the TOML (relative paths resolved against its
/// directory), the pinned JWKS file, the pinned log key; the held status list from
/// `status_file` (default [`STATUS_FILE_NAME`] beside the configuration).
pub fn load_agent(
    config: &Path,
    cluster: &str,
    status_file: Option<PathBuf>,
) -> Result<Agent, AgentError> {
    load(config, cluster, status_file).map(|(agent, _)| agent)
}

/// [`load_agent`], and the configuration as read (paths resolved).
fn load(
    config: &Path,
    cluster: &str,
    status_file: Option<PathBuf>,
) -> Result<(Agent, runpermit_gate::GateConfig), AgentError> {
    let read = |what: &'static str, path: &Path| {
        std::fs::read_to_string(path).map_err(|source| AgentError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let invalid = |e: &dyn std::fmt::Display| AgentError::Config {
        path: config.to_owned(),
        message: e.to_string(),
    };
    let mut settings =
        runpermit_gate::GateConfig::from_toml(&read("the gate configuration", config)?)
            .map_err(|e| invalid(&e))?;
    let base = config.parent().unwrap_or(Path::new("."));
    settings.resolve_paths(base);
    let params = settings
        .params(runpermit_compute::HardwareTable::builtin())
        .map_err(|e| invalid(&e))?;
    let jwks = runpermit_permit::Jwks::from_json(&read("the pinned JWKS", &settings.jwks)?)
        .map_err(|e| AgentError::Config {
            path: settings.jwks.clone(),
            message: e.to_string(),
        })?;
    let witness_policy = match &settings.witness_policy {
        Some(path) => Some(
            settings
                .parse_witness_policy(&read("the witness policy", path)?)
                .map_err(|e| invalid(&e))?,
        ),
        None => None,
    };
    let status_file = status_file.unwrap_or_else(|| base.join(STATUS_FILE_NAME));
    let anchors = runpermit_gate::TrustAnchors {
        jwks,
        log_vkey: settings.log_vkey.clone(),
        witness_policy,
    };
    let agent = Agent::with_anchors(params, anchors, cluster, status_file)?;
    Ok((agent, settings))
}

/// Runs `runpermit gate serve` until `shutdown` completes: loads the agent, the TLS files
/// and, with `[metering]`, the reporting key and the usage-report queue (any problem is an
/// error before anything listens), polls the status list in the background, meters and
/// ships usage reports ([`meter_loop`]), and serves [`router`] on `options.listen`.
pub async fn run(
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let (agent, settings) = load(
        &options.config,
        &options.cluster,
        options.status_file.clone(),
    )?;
    let pruned = agent.permits().prune(agent.now());
    if pruned > 0 {
        tracing::info!(pruned, "expired permits removed from the permit book");
    }
    // A reporting key named but absent is a mistake found now, not when [metering] is
    // added: a service refuses it at start (`gate check` never signs, so it does not care).
    if let Some(path) = &settings.reporting_key
        && !path.is_file()
    {
        return Err(AgentError::Config {
            path: options.config.clone(),
            message: format!(
                "reporting_key: the reporting key {} does not exist; create it with `openssl genpkey -algorithm \
                 ed25519 -out {}` and register it (`runpermit org add-reporting-key`), or remove \
                 the line (only [metering] signs usage reports)",
                path.display(),
                path.display()
            ),
        });
    }
    let meter = match settings.metering {
        Some(_) => Some(Meter::open(
            &settings,
            agent.params(),
            &options.cluster,
            agent.now(),
            Arc::clone(agent.permits()),
        )?),
        None => None,
    };
    let agent = Arc::new(agent);
    let tls = options.tls.as_ref().map(tls_config).transpose()?;
    if tls.is_none() && !options.listen.ip().is_loopback() {
        tracing::warn!(listen = %options.listen, "serving plain HTTP on a non-loopback address; \
            Kubernetes calls webhooks over TLS only (give --tls-cert and --tls-key)");
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| AgentError::Bind {
            addr: options.listen,
            source,
        })?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut poll_stopped = stopped.clone();
    let poller = tokio::spawn(poll_status(
        Arc::clone(&agent),
        options.poll_every,
        async move {
            let _ = poll_stopped.wait_for(|s| *s).await;
        },
    ));
    let metering = meter.map(|meter| {
        let mut meter_stopped = stopped.clone();
        tokio::spawn(meter_loop(Arc::clone(&agent), meter, async move {
            let _ = meter_stopped.wait_for(|s| *s).await;
        }))
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let mut serve_stopped = stopped;
    serve_on(listener, router(agent), tls, async move {
        let _ = serve_stopped.wait_for(|s| *s).await;
    })
    .await;
    let _ = poller.await;
    if let Some(metering) = metering {
        let _ = metering.await;
    }
    Ok(())
}
