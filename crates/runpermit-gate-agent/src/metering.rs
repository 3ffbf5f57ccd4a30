//! The metering loop of `runpermit gate serve`: every `[metering] interval_seconds`, run the
//! configured sources, turn what they observed into signed usage reports in the durable
//! queue ([`UsageQueue`]), and ship the queue to the authority.
//!
//! - [`Meter`]: a shipper (`shipper.rs`: the durable queue, the reporting key, the sender,
//!   the backoff and the delivery counters) and one collector per configured source
//!   (`spool.rs`; `jobs.rs` for the Slurm jobs, measured by scheduler accounting, `dcgm.rs`
//!   or `nvml.rs`). [`Meter::cycle`] runs the collectors once, [`Meter::ship`] sends; both
//!   are blocking (the loop runs them on the blocking pool).
//! - [`meter_loop`]: the loop, until shutdown; it publishes a [`MeteringStatus`] to the
//!   agent (served at `GET /v1/metering`) and the metered cumulative compute of each run
//!   ([`Agent::update_usage`]), so that decisions see this provider's own figure.
//!
//! Sources (see runpermit-gate's `MeteringConfig` for the keys):
//!
//! - `spool`: one accounting record per `*.json` file in `spool_dir` → one
//!   `scheduler_accounting` report. Exactly once, even across crashes: the report's journal
//!   record carries the file's name and SHA-256 ([`UsageQueue::enqueue_once`]); the file is
//!   removed after the record is durable, and a file found again after a crash in between
//!   is recognised and only removed. A malformed record is moved to `spool_dir/rejected/`
//!   with `NAME.error` naming each problem.
//! - `slurm`: the permitted Slurm jobs' allocated GPUs × run time since the last cycle
//!   ([`JobTracker`](crate::slurm::JobTracker)), one `scheduler_accounting` report per run and interval.
//! - `dcgm`: dcgm-exporter's `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` per GPU, mapped to permitted
//!   Slurm jobs by its `hpc_job` label (or to runs by `runpermit_run` and
//!   `runpermit_permit` labels, with `runpermit_cluster` optional), × the seconds counted
//!   for the job → `dcgm_tensor_activity`. A job's GPUs that have no series are metered by
//!   scheduler accounting (an upper bound), never left out.
//! - `nvml`: this node's GPUs' mean utilization since the last cycle ([`NvmlSampler`]),
//!   mapped to the permitted Slurm jobs' GPU indices on this node (`scontrol show job -d`,
//!   index = the GPU's minor number) → `nvml_utilization`; a job's GPUs on other nodes are
//!   metered by scheduler accounting.
//!
//! Every source counts a run's compute with its permit's accounting basis (the precision and
//! utilization the holder declared; runpermit-gate's `meter` module), looked up by the
//! record's or job's permit id in the agent's [`PermitBook`] (the permits it admitted jobs
//! under, [`Agent::permits`]). A permit the book does not hold, or one held for another run,
//! is metered without a basis, at the chip's highest peak (conservative), and said once per
//! permit in the cycle's errors and the log: "permit X is not known to this gate: metered at
//! the chip's highest peak".
//!
//! A source that fails in one cycle is logged and retried next cycle; the others go on.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runpermit_compute::AccountingBasis;
use runpermit_gate::{GateConfig, GateParams, MeterSource, MeteringConfig};
use runpermit_permit::SigningKey;
use serde::Serialize;

use crate::nvml::NvmlSampler;
use crate::permits::{Held, PermitBook};
use crate::queue::{Backoff, QueueError, SendError, ShipOutcome, UsageQueue};
use crate::sender::http_sender;
use crate::slurm::scontrol_show_jobs;
use crate::{Agent, AgentError};

mod dcgm;
mod jobs;
mod nvml;
mod shipper;
mod spool;

use dcgm::DcgmActivity;
use jobs::{JobCollector, JobSource};
use nvml::NvmlActivity;
use shipper::Shipper;
use spool::SpoolCollector;

/// How long one POST of a usage report may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one scrape of `dcgm_url` may take.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
/// The journal is compacted once it grows past this many bytes.
pub const COMPACT_AT_BYTES: u64 = 1 << 20;
/// The subdirectory of `spool_dir` where malformed records go.
pub const REJECTED_DIR: &str = "rejected";

/// Lists the Slurm jobs: `scontrol show job -o -d` output. Replaceable
/// ([`Meter::with_job_lister`]) for tests and for sites that wrap `scontrol`.
pub type JobLister = Box<dyn FnMut() -> Result<String, String> + Send>;
/// Sends one signed report to the authority ([`http_sender`] unless replaced).
pub type Sender = Box<dyn FnMut(&str) -> Result<(), SendError> + Send>;

/// What the metering loop is doing, as `GET /v1/metering` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeteringStatus {
    /// Seconds between cycles.
    pub interval_seconds: u64,
    /// The configured sources.
    pub sources: Vec<String>,
    /// Sources that could not start (with why); the others run.
    pub unavailable: Vec<String>,
    /// The queue's directory.
    pub queue_dir: String,
    /// Reports not yet acknowledged by the authority.
    pub pending: usize,
    /// Reports the authority refused for good (in the queue's `dead-letters.log`).
    pub dead_letters: usize,
    /// When the last cycle ran (unix seconds); `None` before the first.
    pub last_cycle: Option<i64>,
    /// Reports the last cycle enqueued.
    pub last_cycle_enqueued: usize,
    /// Spool records the last cycle rejected.
    pub last_cycle_rejected: usize,
    /// What went wrong in the last cycle, per source.
    pub last_cycle_errors: Vec<String>,
    /// Reports acknowledged since the gate started.
    pub delivered: u64,
    /// When the authority last acknowledged a report (unix seconds).
    pub last_delivery: Option<i64>,
    /// While backing off after a failed send: seconds until the next try.
    pub retry_in_seconds: Option<u64>,
}

/// What one [`Meter::cycle`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CycleReport {
    /// When it ran (unix seconds).
    pub at: i64,
    /// The reports enqueued: (run, seq).
    pub enqueued: Vec<(String, u64)>,
    /// Spool files moved to `rejected/`.
    pub rejected: Vec<String>,
    /// What went wrong, each prefixed with its source.
    pub errors: Vec<String>,
}

/// The permits' accounting bases as metering looks them up, and the permits already warned
/// about.
pub(crate) struct Bases {
    book: Arc<PermitBook>,
    warned: BTreeSet<String>,
}

impl Bases {
    /// The basis to meter run `run`'s compute under permit `permit` with: the permit's, when
    /// the book holds it for this run; else `None` (at the chip's highest peak), said once per
    /// permit in `report`'s errors and the log.
    pub(crate) fn of(
        &mut self,
        run: &str,
        permit: &str,
        report: &mut CycleReport,
    ) -> Option<AccountingBasis> {
        let warning = match self.book.basis(run, permit) {
            Held::Basis(Some(basis)) => return Some(basis),
            Held::Basis(None) => {
                if self.warned.insert(format!("{permit} {run}")) {
                    tracing::info!(
                        permit,
                        "permit declares no accounting basis (signed before \
                        claim-set version 3): its compute is metered at the chip's highest peak"
                    );
                }
                return None;
            }
            Held::Unknown => format!(
                "permit {permit} is not known to this gate: metered at the chip's highest peak"
            ),
            Held::OtherRun(sub) => format!(
                "permit {permit} is for run {sub}, not run {run}: metered at the chip's highest peak"
            ),
        };
        if self.warned.insert(format!("{permit} {run}")) {
            tracing::warn!("{warning}");
            report.errors.push(format!("metering: {warning}"));
        }
        None
    }
}

/// The metering sources and the shipper: one cycle at a time.
pub struct Meter {
    provider: String,
    cluster: String,
    config: MeteringConfig,
    shipper: Shipper,
    bases: Bases,
    spool: Option<SpoolCollector>,
    jobs: Option<JobCollector>,
    started: i64,
    last_cycle: Option<i64>,
    last: CycleReport,
    unavailable: Vec<String>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("provider", &self.provider)
            .field("cluster", &self.cluster)
            .field("queue_dir", &self.shipper.queue_dir)
            .field("sources", &self.config.sources)
            .finish_non_exhaustive()
    }
}

fn start_error(message: impl Into<String>) -> AgentError {
    AgentError::Metering {
        message: message.into(),
    }
}

/// This machine's short host name (as Slurm names nodes).
fn short_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().split('.').next().unwrap_or("").to_owned())
        .unwrap_or_default()
}

/// Reads and parses the reporting key at `path`; errors name the path.
fn reporting_key(path: &PathBuf) -> Result<SigningKey, AgentError> {
    let pem = std::fs::read_to_string(path).map_err(|source| AgentError::Read {
        what: "the reporting key (reporting_key)",
        path: path.clone(),
        source,
    })?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| AgentError::Config {
        path: path.clone(),
        message: format!(
            "reporting_key: not an Ed25519 private key in PKCS#8 PEM ({e}); create one with \
             `openssl genpkey -algorithm ed25519`"
        ),
    })
}

/// The job source configured (at most one of `slurm`, `dcgm`, `nvml`), if any; NVML that
/// cannot start is noted in `unavailable`, and its jobs are metered by accounting.
fn job_source(config: &MeteringConfig, unavailable: &mut Vec<String>) -> Option<JobSource> {
    config.sources.iter().find_map(|s| match s {
        MeterSource::Spool => None,
        MeterSource::Slurm => Some(JobSource::Accounting),
        MeterSource::Dcgm => Some(JobSource::Dcgm(DcgmActivity {
            url: config.dcgm_url.clone().unwrap_or_default(),
            http: ureq::Agent::config_builder()
                .timeout_global(Some(SCRAPE_TIMEOUT))
                .build()
                .into(),
        })),
        MeterSource::Nvml => {
            let sampler = match NvmlSampler::start(Duration::from_secs(1)) {
                Ok(sampler) => {
                    tracing::info!(devices = sampler.devices(), "NVML sampling started");
                    Some(sampler)
                }
                Err(message) => {
                    tracing::error!(%message, "the nvml metering source cannot start; \
                        metering goes on with the other sources");
                    unavailable.push(format!("nvml: {message}"));
                    None
                }
            };
            Some(JobSource::Nvml(NvmlActivity {
                sampler,
                host: short_hostname(),
            }))
        }
    })
}

impl Meter {
    /// Opens metering for the gate of `cluster` (one of `params`' clusters), as configured
    /// in `settings.metering` (paths already resolved): reads the reporting key, opens the
    /// queue, creates `spool_dir` if missing, starts NVML if listed. `now` is the gate's
    /// start (unix seconds): Slurm jobs are counted from it. `permits` is the agent's permit
    /// book ([`Agent::permits`]): each run is metered with its permit's basis. Fails when there is no
    /// `[metering]`, the key cannot be read, or the queue or spool directory cannot be
    /// opened; NVML being unavailable is not fatal (logged, and shown in the status).
    pub fn open(
        settings: &GateConfig,
        params: &GateParams,
        cluster: &str,
        now: i64,
        permits: Arc<PermitBook>,
    ) -> Result<Meter, AgentError> {
        let config = settings
            .metering
            .clone()
            .ok_or_else(|| start_error("the gate configuration has no [metering] table"))?;
        let cluster =
            params
                .cluster(cluster)
                .cloned()
                .ok_or_else(|| AgentError::UnknownCluster {
                    cluster: cluster.to_owned(),
                    known: params.clusters().iter().map(|c| c.name.clone()).collect(),
                })?;
        let key_path = settings.reporting_key.clone().ok_or_else(|| {
            start_error("reporting_key: required with [metering], which signs usage reports")
        })?;
        let key = reporting_key(&key_path)?;
        let queue = UsageQueue::open(&config.queue_dir).map_err(|e| {
            start_error(format!(
                "metering.queue_dir: cannot open the usage-report queue: {e}"
            ))
        })?;
        let send: Sender = Box::new(http_sender(params.authority_url(), SEND_TIMEOUT));
        let shipper = Shipper::new(queue, config.queue_dir.clone(), key, send)
            .map_err(|e| start_error(format!("metering.queue_dir: {e}")))?;
        let spool = if config.sources.contains(&MeterSource::Spool) {
            let dir = config.spool_dir.clone().unwrap_or_default();
            std::fs::create_dir_all(&dir).map_err(|e| {
                start_error(format!(
                    "metering.spool_dir: cannot create {}: {e}",
                    dir.display()
                ))
            })?;
            Some(SpoolCollector::new(dir, params))
        } else {
            None
        };
        let mut unavailable = Vec::new();
        let provider = params.provider_id().to_owned();
        let jobs = job_source(&config, &mut unavailable).map(|source| {
            JobCollector::new(
                &provider,
                cluster.clone(),
                source,
                Box::new(scontrol_show_jobs),
                now,
            )
        });
        Ok(Meter {
            provider,
            cluster: cluster.name,
            config,
            shipper,
            bases: Bases {
                book: permits,
                warned: BTreeSet::new(),
            },
            spool,
            jobs,
            started: now,
            last_cycle: None,
            last: CycleReport::default(),
            unavailable,
        })
    }

    /// Lists Slurm jobs with `lister` instead of `scontrol show job -o -d`.
    pub fn with_job_lister(
        mut self,
        lister: impl FnMut() -> Result<String, String> + Send + 'static,
    ) -> Meter {
        if let Some(jobs) = &mut self.jobs {
            jobs.list_jobs = Box::new(lister);
        }
        self
    }

    /// Sends reports with `send` instead of POSTing them to the authority.
    pub fn with_sender(
        mut self,
        send: impl FnMut(&str) -> Result<(), SendError> + Send + 'static,
    ) -> Meter {
        self.shipper.send = Box::new(send);
        self
    }

    /// Backs off with `backoff` after failed sends (default: 1 s doubling up to 5 min).
    pub fn with_backoff(mut self, backoff: Backoff) -> Meter {
        self.shipper.backoff = backoff;
        self
    }

    /// Takes `host` as this node's name (for `nvml`; default: the short host name).
    pub fn with_host(mut self, host: impl Into<String>) -> Meter {
        if let Some(JobCollector {
            source: JobSource::Nvml(nvml),
            ..
        }) = &mut self.jobs
        {
            nvml.host = host.into();
        }
        self
    }

    /// Seconds between cycles.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.config.interval_seconds)
    }

    /// The queue (for its pending reports and dead letters).
    pub fn queue(&self) -> &UsageQueue {
        &self.shipper.queue
    }

    /// What this provider metered for each run so far (every report ever enqueued).
    pub fn metered_by_run(&self) -> BTreeMap<String, runpermit_compute::Flop> {
        self.shipper.queue.metered_by_run()
    }

    /// The status `GET /v1/metering` shows.
    pub fn status(&self) -> MeteringStatus {
        let shipper = &self.shipper;
        MeteringStatus {
            interval_seconds: self.config.interval_seconds,
            sources: self
                .config
                .sources
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            unavailable: self.unavailable.clone(),
            queue_dir: shipper.queue_dir.display().to_string(),
            pending: shipper.queue.pending().len(),
            dead_letters: shipper.dead_letters,
            last_cycle: self.last_cycle,
            last_cycle_enqueued: self.last.enqueued.len(),
            last_cycle_rejected: self.last.rejected.len(),
            last_cycle_errors: self.last.errors.clone(),
            delivered: shipper.delivered,
            last_delivery: shipper.last_delivery,
            retry_in_seconds: shipper
                .retry_at
                .map(|at| at.saturating_duration_since(Instant::now()).as_secs()),
        }
    }

    /// Publishes this meter's state to `agent`: the status `GET /v1/metering` shows, and
    /// each run's metered cumulative compute (the larger of what the agent knew and what
    /// this provider metered), which decisions then count against the permit's budget.
    pub fn publish_to(&self, agent: &Agent) {
        agent.set_metering_status(self.status());
        let metered = self.metered_by_run();
        agent.update_usage(|usage| {
            for (run, flop) in metered {
                if flop > usage.cumulative(&run) {
                    usage.set(run, flop);
                }
            }
        });
    }

    /// Meters once, at `now` (unix seconds): every source, each report enqueued durably.
    pub fn cycle(&mut self, now: i64) -> CycleReport {
        let mut report = CycleReport {
            at: now,
            ..CycleReport::default()
        };
        if let Some(spool) = &self.spool {
            spool.collect(now, &mut self.shipper, &mut self.bases, &mut report);
        }
        if let Some(jobs) = &mut self.jobs {
            let window_from = self.last_cycle.unwrap_or(self.started);
            jobs.collect(
                now,
                window_from,
                &mut self.shipper,
                &mut self.bases,
                &mut report,
            );
        }
        self.last_cycle = Some(now);
        if !report.enqueued.is_empty() || !report.errors.is_empty() {
            tracing::info!(
                enqueued = report.enqueued.len(),
                rejected = report.rejected.len(),
                errors = ?report.errors,
                "metering cycle"
            );
        }
        self.last = report.clone();
        report
    }

    /// Sends the pending reports in order (unless backing off until after `now`): acked on
    /// success, dead-lettered when refused for good; compacts the journal when it is large.
    pub fn ship(&mut self, now: Instant) -> Result<ShipOutcome, QueueError> {
        self.shipper.ship(now)
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Runs `meter` until `shutdown`: a cycle now and every interval after, each followed by
/// shipping; between cycles, a retry when the backoff after a failed send comes due. Each
/// step runs on the blocking pool; shutdown waits for the step in progress.
pub async fn meter_loop(
    agent: Arc<Agent>,
    meter: Meter,
    shutdown: impl Future<Output = ()> + Send,
) {
    let interval = meter.interval();
    meter.publish_to(&agent);
    tracing::info!(interval = ?interval, sources = ?meter.status().sources, "metering started");
    tokio::pin!(shutdown);
    let mut meter = Some(meter);
    let mut next_cycle = tokio::time::Instant::now();
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let wake = match retry_at {
            Some(at) if at < next_cycle => at,
            _ => next_cycle,
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = &mut shutdown => break,
        }
        let full = tokio::time::Instant::now() >= next_cycle;
        let Some(mut m) = meter.take() else { break };
        let worker = Arc::clone(&agent);
        let step = tokio::task::spawn_blocking(move || {
            if full {
                m.cycle(worker.now());
            }
            let shipped = m.ship(Instant::now());
            if let Err(e) = &shipped {
                tracing::error!(error = %e, "usage queue: shipping failed");
            }
            m.publish_to(&worker);
            (m, shipped.ok().and_then(|o| o.retry_at))
        });
        match step.await {
            Ok((m, retry)) => {
                meter = Some(m);
                retry_at = retry.map(tokio::time::Instant::from_std);
            }
            Err(e) => {
                tracing::error!(error = %e, "metering step panicked; metering stops");
                return;
            }
        }
        if full {
            let now = tokio::time::Instant::now();
            next_cycle += interval;
            if next_cycle <= now {
                next_cycle = now + interval;
            }
        }
    }
    tracing::info!("metering stopped");
}
