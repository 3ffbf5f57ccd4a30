//! [`Agent`]: the gate's long-lived state (runpermit-gate's [`Gate`]: the configuration,
//! pinned keys, held status list and evidence cache; usage, the clock; the [`PermitBook`] of
//! permits it admitted jobs under) and the decisions made with it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use runpermit_gate::{
    Decision, Freshness, Gate, GateParams, JobRequest, StatusError, TrustAnchors, Usage,
};
use runpermit_permit::{Jwks, StatusListClaims};

use crate::AgentError;
use crate::metering::MeteringStatus;
use crate::metrics::{AgentMetrics, Snapshot};
use crate::permits::PermitBook;

/// The clock: the current time in unix seconds. Replaceable for tests
/// ([`Agent::with_clock`]).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How long one fetch of the status list may take, in all.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The long-running gate's state. Shared by the HTTP handlers and the status poller behind
/// an `Arc`; every method takes `&self`.
///
/// Decisions are [`Gate::decide`] (the gate behind a mutex: its evidence cache changes
/// with every new permit) with the usage known here (read lock), at the agent's clock.
pub struct Agent {
    /// The gate's configuration, as the gate holds it (kept here too, so that callers can
    /// borrow it without the gate's lock).
    params: GateParams,
    gate: Mutex<Gate>,
    cluster: String,
    usage: RwLock<Usage>,
    status_file: PathBuf,
    /// The highest status list version written to `status_file`; its lock also makes
    /// refreshes one at a time.
    written: Mutex<u64>,
    clock: Clock,
    http: ureq::Agent,
    metering: RwLock<Option<MeteringStatus>>,
    metrics: AgentMetrics,
    permits: Arc<PermitBook>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("cluster", &self.cluster)
            .field("authority_url", &self.params.authority_url())
            .field("status_file", &self.status_file)
            .field("status_version", &self.status_version())
            .finish_non_exhaustive()
    }
}

/// What a refresh of the status list did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// A newer list was accepted (and written to the status file).
    Newer {
        /// Its version.
        version: u64,
    },
    /// The list offered is the one held.
    Unchanged {
        /// Its version.
        version: u64,
    },
}

/// Why a status list was not taken. The held list stays as it was.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// The authority could not be reached, or answered with an error.
    #[error("fetching the status list from {url}: {message}")]
    Fetch {
        /// The URL fetched.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The list does not verify, or is older than (or conflicts with) the held one.
    #[error(transparent)]
    Refused(#[from] StatusError),
}

fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Agent {
    /// An agent for `cluster` (the cluster this process admits Kubernetes objects for; it
    /// must be one of `params`' clusters), with the pinned `jwks` and `log_vkey`.
    ///
    /// `status_file` is where the newest accepted status list token is kept: it is loaded
    /// now, so that rollback protection survives restarts (a file that no longer verifies,
    /// say after a key rotation, is logged and ignored; one that cannot be read is an error),
    /// and rewritten atomically on every newer list. The permits it admits jobs under are
    /// kept in the [`PermitBook`] beside it ([`PermitBook::dir_beside`]), loaded now. The
    /// clock is the system's.
    pub fn new(
        params: GateParams,
        jwks: Jwks,
        log_vkey: impl Into<String>,
        cluster: impl Into<String>,
        status_file: impl Into<PathBuf>,
    ) -> Result<Agent, AgentError> {
        let anchors = TrustAnchors {
            jwks,
            log_vkey: log_vkey.into(),
            witness_policy: None,
        };
        Agent::with_anchors(params, anchors, cluster, status_file)
    }

    /// As [`Agent::new`], with every trust anchor given, the witness policy included (the
    /// configuration's `witness_policy`, read and parsed by the caller).
    pub fn with_anchors(
        params: GateParams,
        anchors: TrustAnchors,
        cluster: impl Into<String>,
        status_file: impl Into<PathBuf>,
    ) -> Result<Agent, AgentError> {
        let cluster = cluster.into();
        if params.cluster(&cluster).is_none() {
            return Err(AgentError::UnknownCluster {
                cluster,
                known: params.clusters().iter().map(|c| c.name.clone()).collect(),
            });
        }
        let status_file = status_file.into();
        let permits = Arc::new(PermitBook::load(
            PermitBook::dir_beside(&status_file),
            anchors.jwks.clone(),
        ));
        let mut gate = Gate::new(params.clone(), anchors);
        let mut written = 0;
        match std::fs::read_to_string(&status_file) {
            Ok(held) => match gate.accept_status_token(&held) {
                Ok(()) => {
                    written = gate.status().current().map_or(0, |l| l.version);
                    tracing::info!(version = written, file = %status_file.display(), "held status list loaded");
                }
                Err(e) => {
                    tracing::warn!(file = %status_file.display(), error = %e, "ignoring the held status list")
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AgentError::Read {
                    what: "the held status list",
                    path: status_file,
                    source,
                });
            }
        }
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(FETCH_TIMEOUT))
            .build()
            .into();
        Ok(Agent {
            params,
            gate: Mutex::new(gate),
            cluster,
            usage: RwLock::new(Usage::new()),
            status_file,
            written: Mutex::new(written),
            clock: Arc::new(system_now),
            http,
            metering: RwLock::new(None),
            metrics: AgentMetrics::new(),
            permits,
        })
    }

    /// The same agent with another clock (unix seconds), for tests.
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + Sync + 'static) -> Agent {
        self.clock = Arc::new(clock);
        self
    }

    /// The current time by the agent's clock, in unix seconds.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The validated gate configuration.
    pub fn params(&self) -> &GateParams {
        &self.params
    }

    /// The cluster this agent admits Kubernetes objects for.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// Where the newest accepted status list token is kept.
    pub fn status_file(&self) -> &Path {
        &self.status_file
    }

    /// The gate, locked.
    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides `job` now: [`Gate::decide`] with the held status list, the evidence cache and
    /// the usage known here. A job `permitted` under a permit not yet in the permit book puts
    /// it there (written once; a failed write is logged, and the decision stands).
    pub fn decide(&self, job: &JobRequest) -> Decision {
        let now = self.now();
        let decision = {
            let usage = self.usage.read().unwrap_or_else(PoisonError::into_inner);
            self.gate().decide(job, &usage, now)
        };
        self.metrics.decided(decision.code);
        if decision.code == runpermit_gate::Code::Permitted
            && let (Some(id), Some(evidence)) = (&decision.permit_id, &job.permit)
            && !self.permits.holds(id)
            && let Err(e) = self.permits.remember(&evidence.token)
        {
            tracing::warn!(permit = %id, error = %e,
                "could not keep the permit in the permit book: its jobs may be metered at the \
                 chip's highest peak after a restart");
        }
        decision
    }

    /// The permits this gate admitted jobs under (metering looks up their accounting basis).
    pub fn permits(&self) -> &Arc<PermitBook> {
        &self.permits
    }

    /// Whether the agent is ready to decide: its configuration is loaded (it would not
    /// exist otherwise) and it holds a verified status list that is fresh now. `Err` says
    /// why not, for `GET /readyz`.
    pub fn readiness(&self) -> Result<(), String> {
        let now = self.now();
        let gate = self.gate();
        let status = gate.status();
        let from = self.params.authority_url();
        match (status.freshness(now), status.current()) {
            (Freshness::Fresh, _) => Ok(()),
            (Freshness::Stale { age }, Some(list)) => Err(format!(
                "the held status list (version {}) is {age} s old, past its expiry and {} s of \
                 grace: jobs that need a permit are refused until a fresh list arrives from {from}",
                list.version,
                status.grace_seconds()
            )),
            _ => Err(format!(
                "no verified status list yet: jobs that need a permit are refused until one \
                 arrives from {from}"
            )),
        }
    }

    /// The Prometheus text of `GET /metrics`.
    pub fn metrics_text(&self) -> String {
        let now = self.now();
        let (freshness, status) = {
            let gate = self.gate();
            (
                gate.status().freshness(now),
                gate.status().current().cloned(),
            )
        };
        self.metrics.render(Snapshot {
            now,
            freshness,
            status,
            metering: self.metering_status(),
        })
    }

    /// The held status list's version, if any.
    pub fn status_version(&self) -> Option<u64> {
        self.gate().status().current().map(|l| l.version)
    }

    /// The held status list's claims, if any.
    pub fn status_list(&self) -> Option<StatusListClaims> {
        self.gate().status().current().cloned()
    }

    /// Whether the held status list may be relied on now.
    pub fn status_freshness(&self) -> Freshness {
        let now = self.now();
        self.gate().status().freshness(now)
    }

    /// Changes the usage known here (the metering loop sets each run's cumulative compute
    /// metered by this provider).
    pub fn update_usage(&self, change: impl FnOnce(&mut Usage)) {
        change(&mut self.usage.write().unwrap_or_else(PoisonError::into_inner));
    }

    /// Run `run_id`'s cumulative compute as decisions see it.
    pub fn usage_of(&self, run_id: &str) -> runpermit_compute::Flop {
        self.usage
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .cumulative(run_id)
    }

    /// Sets what `GET /v1/metering` shows (the metering loop calls this after each step).
    pub fn set_metering_status(&self, status: MeteringStatus) {
        *self
            .metering
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(status);
    }

    /// The metering loop's status; `None` when the gate does not meter.
    pub fn metering_status(&self) -> Option<MeteringStatus> {
        self.metering
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Verifies a status list token with the pinned keys and accepts it if it is newer than
    /// the held one. A newer list is written to the status file (atomically) before
    /// decisions see it, so that a list once relied on is never replaced by an older one,
    /// even across a crash; a failed write is logged, and the list is held all the same.
    pub fn accept_status_token(&self, token: &str) -> Result<Refreshed, RefreshError> {
        let claims = self.gate().verify_status(token)?;
        let version = claims.version;
        // One refresh at a time: between the trial below and the accept, nothing else
        // changes the held list.
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        let mut trial = self.gate().status().clone();
        let before = trial.current().map(|l| l.version);
        trial.accept(claims.clone())?;
        if before == Some(version) {
            return Ok(Refreshed::Unchanged { version });
        }
        if version > *written {
            match crate::files::write_atomically(&self.status_file, token.trim()) {
                Ok(()) => *written = version,
                Err(e) => tracing::warn!(
                    file = %self.status_file.display(), error = %e,
                    "could not keep the status list: rollback protection will not survive a restart"
                ),
            }
        }
        // The trial showed that the gate takes it; the gate checks again all the same.
        self.gate().accept_status(claims)?;
        Ok(Refreshed::Newer { version })
    }

    /// Fetches `{authority_url}/v1/status-list` and accepts it
    /// ([`accept_status_token`](Self::accept_status_token)). Blocking: call it from
    /// `spawn_blocking` (as [`poll_status`](crate::poll_status) does).
    pub fn refresh_status(&self) -> Result<Refreshed, RefreshError> {
        let url = format!(
            "{}/v1/status-list",
            self.params.authority_url().trim_end_matches('/')
        );
        let token = self
            .http
            .get(&url)
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .map_err(|e| RefreshError::Fetch {
                url: url.clone(),
                message: e.to_string(),
            })?;
        self.accept_status_token(&token)
    }
}
