//! The authority as a process: [`start`] binds its address, prepares its database and keys
//! ([`crate::setup`]), builds the [`Authority`] and spawns the background tasks (the log's
//! sequencer, the witnesses' client, the runs' supervisor); [`Started::serve`] serves HTTP until shutdown. [`run`]
//! does both, for embedders and tests.
//!
//! The address is bound first: a busy port fails before anything is created or printed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use runpermit_policy::Policy;
use tokio::task::JoinHandle;

use crate::domain::Authority;
use crate::domain::clock::SystemClock;
use crate::domain::limits::Limits;
use crate::domain::log::LogService;
use crate::http::state::AppState;
use crate::setup::{BootstrapError, Setup, bootstrap};

/// How often the supervisor re-evaluates runs by default.
pub const SUPERVISE_EVERY: Duration = Duration::from_secs(5);

/// Everything the authority needs to run, resolved (flags, environment, file, defaults) by
/// the caller.
#[derive(Debug)]
pub struct Settings {
    /// The address to serve on.
    pub listen: SocketAddr,
    /// Where the state is kept.
    pub setup: Setup,
    /// The policy in force.
    pub policy: Policy,
    /// The `iss` of every permit.
    pub issuer: String,
    /// The rate limits.
    pub limits: Limits,
    /// Pause between the log sequencer's rounds when its queue is empty.
    pub sequence_interval: Duration,
    /// How often the supervisor re-evaluates every run.
    pub supervise_every: Duration,
    /// The witnesses asked to cosign the log's checkpoints, and the quorum the published
    /// checkpoint needs; `None` for an unwitnessed log.
    pub witnesses: Option<runpermit_log::WitnessPolicy>,
}

/// Why the authority did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound (in use, not local, not permitted).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory, database or keys could not be prepared.
    #[error(transparent)]
    Prepare(#[from] BootstrapError),
    /// Serving failed.
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    /// The witness policy lists logs, but not this one.
    #[error(
        "the witness policy lists logs but not this one ({vkey}): add `log {vkey}` to it, or \
         remove its log lines"
    )]
    WitnessPolicyLog {
        /// This log's verifier key.
        vkey: String,
    },
}

/// What starting found and did, for the operator to read.
#[derive(Debug)]
pub struct StartReport {
    /// The address bound.
    pub addr: SocketAddr,
    /// The permit-signing key's id.
    pub kid: String,
    /// Whether that key was created now.
    pub created_key: bool,
    /// The log's verifier key.
    pub vkey: String,
    /// The bootstrap admin token, on the very first start only.
    pub admin_token: Option<String>,
    /// Whether this start recorded the deployment (the database's first).
    pub recorded_deployment: bool,
}

/// A started authority: bound, prepared, its background tasks running.
#[derive(Debug)]
pub struct Started {
    listener: tokio::net::TcpListener,
    state: AppState,
    tasks: Vec<JoinHandle<()>>,
    /// What starting found and did.
    pub report: StartReport,
}

/// Binds `settings.listen`, prepares the database and keys, and starts the log sequencer and
/// the run supervisor. `metrics` renders `/metrics` when the process installed a recorder.
pub async fn start(
    settings: Settings,
    metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
) -> Result<Started, ServeError> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: settings.listen,
        source,
    })?;
    let prepared = bootstrap::prepare(&settings.setup, &SystemClock).await?;
    if let Some(policy) = &settings.witnesses
        && !policy.logs().is_empty()
        && !policy
            .logs()
            .iter()
            .any(|l| l.public_key == prepared.log_key.public_key())
    {
        return Err(ServeError::WitnessPolicyLog {
            vkey: prepared.log_key.verifier_key(),
        });
    }
    let report = StartReport {
        addr,
        kid: prepared.signer.kid().to_owned(),
        created_key: prepared.created_key,
        vkey: prepared.log_key.verifier_key(),
        admin_token: prepared.admin_token.clone(),
        recorded_deployment: prepared.recorded_deployment,
    };
    let authority = Authority {
        store: prepared.store,
        clock: Arc::new(SystemClock),
        policy: Arc::new(settings.policy),
        signer: Arc::new(prepared.signer),
        issuer: settings.issuer,
        log: Arc::new(
            LogService::new(
                prepared.log_key,
                settings.sequence_interval.max(Duration::from_millis(1)),
            )
            .with_witnesses(settings.witnesses),
        ),
        provider_keys: Default::default(),
        limits: Arc::new(settings.limits),
    };
    let tasks = vec![
        tokio::spawn(crate::domain::log::run_sequencer(
            authority.clone(),
            std::future::pending(),
        )),
        tokio::spawn(crate::domain::witnessing::run_witnessing(
            authority.clone(),
            std::future::pending(),
        )),
        tokio::spawn(crate::domain::runs::supervision::supervise(
            authority.clone(),
            settings.supervise_every,
            std::future::pending(),
        )),
    ];
    match crate::domain::permits::resume_pending(&authority).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(permits = n, "signed permits decided before a restart"),
        Err(e) => tracing::error!(error = %e, "signing pending permits failed"),
    }
    Ok(Started {
        listener,
        state: AppState { authority, metrics },
        tasks,
        report,
    })
}

impl Started {
    /// Serves HTTP until `shutdown` completes, then stops the background tasks (stopping
    /// mid-round is safe: a sequencing transaction commits whole or not at all).
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        tracing::info!(addr = %self.report.addr, "runpermit authority listening");
        let served = crate::http::serve(self.listener, self.state, shutdown)
            .await
            .map_err(ServeError::Serve);
        for task in self.tasks {
            task.abort();
        }
        served
    }
}

/// Starts the authority with `settings` and serves until `shutdown` completes.
pub async fn run(
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    start(settings, None).await?.serve(shutdown).await
}
