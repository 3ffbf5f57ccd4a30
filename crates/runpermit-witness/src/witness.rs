//! The witness: its key, the logs it trusts, its state and clock; what one `add-checkpoint`
//! does end to end; and the HTTP routes over it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use runpermit_log::{CosignerKey, MAX_COSIGNATURE_TIME};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;

use crate::config::{ConfigError, WitnessConfig};
use crate::decide::{LogState, Refusal, TrustedLogs, check_against, verify_submission};
use crate::metrics::WitnessMetrics;
use crate::request::{MAX_BODY_BYTES, parse};
use crate::store::{NewState, Store, StoreError};

/// The environment variable of the test hook described in the crate documentation.
pub const FAILPOINT_ENV: &str = "RUNPERMIT_WITNESS_FAILPOINT";

/// The time cosignatures carry, unix seconds: injectable so that tests fix it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in unix seconds.
    fn now_unix(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Why the witness could not start.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The configuration or key cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an `add-checkpoint` was not answered with a cosignature.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The request was refused (4xx).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The state could not be read or written: nothing was cosigned (500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The clock is past what a cosignature can carry (500).
    #[error("the clock reads {0}, past the largest cosignature timestamp")]
    Clock(u64),
}

/// What test hook is armed (see the crate documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failpoint {
    None,
    AfterPersist,
}

/// A running witness's parts.
#[derive(Debug)]
pub struct Witness {
    key: CosignerKey,
    logs: TrustedLogs,
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: WitnessMetrics,
    /// Lowercase hex SHA-256 of each origin → the origin (the monitoring paths).
    by_hash: HashMap<String, String>,
    failpoint: Failpoint,
}

impl Witness {
    /// The witness of a loaded configuration: reads its key and opens its database. The
    /// failpoint is armed from [`FAILPOINT_ENV`].
    pub async fn open(
        config: &WitnessConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Witness, WitnessError> {
        let key = config.read_key()?;
        let logs = config.trusted_logs()?;
        let store = Store::open(&config.database_path()).await?;
        let mut witness = Witness::new(key, logs, store, clock);
        if std::env::var(FAILPOINT_ENV).is_ok_and(|v| v == "after-persist") {
            tracing::warn!(
                "{FAILPOINT_ENV}=after-persist: this process kills itself after its first commit (a test hook)"
            );
            witness.failpoint = Failpoint::AfterPersist;
        }
        Ok(witness)
    }

    /// A witness from its parts (no failpoint).
    pub fn new(
        key: CosignerKey,
        logs: TrustedLogs,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Witness {
        let by_hash = logs
            .origins()
            .map(|o| (hex::encode(Sha256::digest(o.as_bytes())), o.to_owned()))
            .collect();
        Witness {
            key,
            logs,
            store,
            clock,
            metrics: WitnessMetrics::new(),
            by_hash,
            failpoint: Failpoint::None,
        }
    }

    /// The witness's verifier key (vkey, type 0x04), for verifiers' policies.
    pub fn verifier_key(&self) -> String {
        self.key.verifier_key()
    }

    /// The logs it cosigns for.
    pub fn logs(&self) -> &TrustedLogs {
        &self.logs
    }

    /// The database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One `add-checkpoint`: parse, verify the log's signature, then check against and
    /// update the stored state in one transaction. Returns the cosignature line(s) only
    /// once the new state is committed.
    ///
    /// The cosignature is computed inside the transaction, so that the stored note (what
    /// the monitoring endpoint serves) carries it, but it leaves this function only after
    /// the commit returned: a failed commit drops it unseen.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Result<String, AddError> {
        let request = parse(body)?;
        let submission = verify_submission(&request, &self.logs)?;
        // C2SP: the timestamp must not be zero.
        let now = self.clock.now_unix().max(1);
        if now > MAX_COSIGNATURE_TIME {
            return Err(AddError::Clock(now));
        }
        let origin = submission.checkpoint.origin.clone();
        let line = self
            .store
            .update(&origin, |stored| {
                check_against(&submission, stored)?;
                let line = self
                    .key
                    .cosign(&submission.checkpoint, now)
                    .map_err(|_| AddError::Clock(now))?;
                let new = NewState {
                    state: LogState {
                        size: submission.checkpoint.size,
                        root: submission.checkpoint.root_hash,
                    },
                    note: format!("{}{line}", submission.log_note),
                    updated_at: now,
                };
                Ok::<_, AddError>((new, line))
            })
            .await??;
        if self.failpoint == Failpoint::AfterPersist {
            die();
        }
        tracing::debug!(origin, size = submission.checkpoint.size, "cosigned");
        Ok(line)
    }

    /// The latest cosigned checkpoint of the log whose origin hashes (SHA-256, lowercase
    /// hex) to `origin_hash`: `None` when it is no configured log or was never cosigned.
    pub async fn monitored_checkpoint(
        &self,
        origin_hash: &str,
    ) -> Result<Option<String>, StoreError> {
        let Some(origin) = self.by_hash.get(origin_hash) else {
            return Ok(None);
        };
        Ok(self.store.get(origin).await?.map(|s| s.note))
    }

    /// The routes: `POST /add-checkpoint`, `GET /{origin hash}/checkpoint`, `GET /healthz`,
    /// `GET /metrics`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .route("/{origin_hash}/checkpoint", get(checkpoint))
            .with_state(self)
    }
}

/// The after-persist failpoint: the process ends at once, as `kill -9` would end it.
fn die() -> ! {
    tracing::warn!("{FAILPOINT_ENV}=after-persist: state committed, killing this process");
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    std::process::abort()
}

/// Serves `witness` on `listener` until `shutdown` completes, then lets open requests
/// finish. HTTP/1.1 keep-alive is on (hyper's default).
pub async fn serve(
    witness: Arc<Witness>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let result = axum::serve(listener, witness.clone().router())
        .with_graceful_shutdown(shutdown)
        .await;
    witness.store.close().await;
    result
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

const PLAIN: &str = "text/plain; charset=utf-8";

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Body) -> Response {
    let response = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Err(_) => Err(AddError::Refused(Refusal::Malformed(format!(
            "the request body could not be read or is larger than {MAX_BODY_BYTES} bytes"
        )))),
        Ok(bytes) => witness.add_checkpoint(&bytes).await,
    };
    let response = match response {
        Ok(lines) => text(StatusCode::OK, PLAIN, lines),
        Err(AddError::Refused(refusal)) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            if status == StatusCode::UNPROCESSABLE_ENTITY {
                tracing::warn!(%refusal, "refused an inconsistent checkpoint");
            } else {
                tracing::debug!(%refusal, status = status.as_u16(), "refused");
            }
            match refusal {
                Refusal::Conflict { stored } => {
                    text(status, "text/x.tlog.size", format!("{stored}\n"))
                }
                other => text(status, PLAIN, format!("{other}\n")),
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "add-checkpoint failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                PLAIN,
                format!("{e}; nothing was cosigned\n"),
            )
        }
    };
    witness.metrics.answered(response.status().as_u16());
    response
}

async fn checkpoint(
    State(witness): State<Arc<Witness>>,
    Path(origin_hash): Path<String>,
) -> Response {
    match witness.monitored_checkpoint(&origin_hash).await {
        Ok(Some(note)) => text(StatusCode::OK, PLAIN, note),
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "no checkpoint cosigned for this origin hash (lowercase hex SHA-256 of the origin)\n"
                .into(),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, PLAIN, format!("{e}\n")),
    }
}

async fn healthz(State(witness): State<Arc<Witness>>) -> Response {
    match witness.store.all().await {
        Ok(_) => text(StatusCode::OK, PLAIN, "ok\n".into()),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, PLAIN, format!("{e}\n")),
    }
}

async fn metrics(State(witness): State<Arc<Witness>>) -> Response {
    match witness.store.all().await {
        Ok(logs) => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            witness.metrics.render(&logs),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, PLAIN, format!("{e}\n")),
    }
}
