//! The metering loop of `runpermit gate serve`: every `[metering] interval_seconds`, run the
//! configured sources, turn what they observed into signed usage reports in the durable
//! queue ([`UsageQueue`]), and ship the queue to the authority.
//!
//! - [`Meter`]: the sources, the reporting key and the queue. [`Meter::cycle`] meters once,
//!   [`Meter::ship`] sends; both are blocking (the loop runs them on the blocking pool).
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
//!   ([`JobTracker`]), one `scheduler_accounting` report per run and interval.
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
//! A source that fails in one cycle is logged and retried next cycle; the others go on.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runpermit_compute::{Accelerator, HardwareTable};
use runpermit_gate::{
    ClusterParams, DCGM_TENSOR_ACTIVE, GateConfig, GateParams, MeterSource, MeteringConfig,
    SpoolRecord, TensorSample, UtilizationSample, dcgm_tensor_activity, exposition_series,
    nvml_utilization, scheduler_accounting,
};
use runpermit_permit::{Metered, SigningKey, UsageReportClaims};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::nvml::NvmlSampler;
use crate::queue::{Backoff, QueueError, SendError, ShipOutcome, UsageQueue};
use crate::sender::http_sender;
use crate::slurm::{JobTracker, JobUsage, by_run, parse_jobs, scontrol_show_jobs};
use crate::{Agent, AgentError};

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

/// The job-based source configured, if any.
enum JobSource {
    Slurm,
    Dcgm { url: String, http: ureq::Agent },
    Nvml(Option<NvmlSampler>),
}

/// The metering sources, the reporting key and the durable queue: one cycle at a time.
pub struct Meter {
    provider: String,
    params: GateParams,
    cluster: ClusterParams,
    key: SigningKey,
    queue: UsageQueue,
    queue_dir: PathBuf,
    config: MeteringConfig,
    spool_dir: Option<PathBuf>,
    jobs: Option<JobSource>,
    tracker: JobTracker,
    list_jobs: JobLister,
    host: String,
    started: i64,
    last_cycle: Option<i64>,
    last: CycleReport,
    unavailable: Vec<String>,
    send: Sender,
    backoff: Backoff,
    dead_letters: usize,
    delivered: u64,
    last_delivery: Option<i64>,
    retry_at: Option<Instant>,
}

impl std::fmt::Debug for Meter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meter")
            .field("provider", &self.provider)
            .field("cluster", &self.cluster.name)
            .field("queue_dir", &self.queue_dir)
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

impl Meter {
    /// Opens metering for the gate of `cluster` (one of `params`' clusters), as configured
    /// in `settings.metering` (paths already resolved): reads the reporting key, opens the
    /// queue, creates `spool_dir` if missing, starts NVML if listed. `now` is the gate's
    /// start (unix seconds): Slurm jobs are counted from it. Fails when there is no
    /// `[metering]`, the key cannot be read, or the queue or spool directory cannot be
    /// opened; NVML being unavailable is not fatal (logged, and shown in the status).
    pub fn open(
        settings: &GateConfig,
        params: &GateParams,
        cluster: &str,
        now: i64,
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
        let pem = std::fs::read_to_string(&key_path).map_err(|source| AgentError::Read {
            what: "the reporting key (reporting_key)",
            path: key_path.clone(),
            source,
        })?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| AgentError::Config {
            path: key_path.clone(),
            message: format!(
                "reporting_key: not an Ed25519 private key in PKCS#8 PEM ({e}); create one with \
                 `openssl genpkey -algorithm ed25519`"
            ),
        })?;
        let queue = UsageQueue::open(&config.queue_dir).map_err(|e| {
            start_error(format!(
                "metering.queue_dir: cannot open the usage-report queue: {e}"
            ))
        })?;
        let dead_letters = queue
            .dead_letters()
            .map_err(|e| start_error(format!("metering.queue_dir: {e}")))?
            .len();
        let spool_dir = if config.sources.contains(&MeterSource::Spool) {
            let dir = config.spool_dir.clone().unwrap_or_default();
            std::fs::create_dir_all(&dir).map_err(|e| {
                start_error(format!(
                    "metering.spool_dir: cannot create {}: {e}",
                    dir.display()
                ))
            })?;
            Some(dir)
        } else {
            None
        };
        let mut unavailable = Vec::new();
        let jobs = config.sources.iter().find_map(|s| match s {
            MeterSource::Spool => None,
            MeterSource::Slurm => Some(JobSource::Slurm),
            MeterSource::Dcgm => Some(JobSource::Dcgm {
                url: config.dcgm_url.clone().unwrap_or_default(),
                http: ureq::Agent::config_builder()
                    .timeout_global(Some(SCRAPE_TIMEOUT))
                    .build()
                    .into(),
            }),
            MeterSource::Nvml => match NvmlSampler::start(Duration::from_secs(1)) {
                Ok(sampler) => {
                    tracing::info!(devices = sampler.devices(), "NVML sampling started");
                    Some(JobSource::Nvml(Some(sampler)))
                }
                Err(message) => {
                    tracing::error!(%message, "the nvml metering source cannot start; \
                        metering goes on with the other sources");
                    unavailable.push(format!("nvml: {message}"));
                    Some(JobSource::Nvml(None))
                }
            },
        });
        let send: Sender = Box::new(http_sender(params.authority_url(), SEND_TIMEOUT));
        Ok(Meter {
            provider: params.provider_id().to_owned(),
            params: params.clone(),
            cluster,
            key,
            queue_dir: config.queue_dir.clone(),
            queue,
            config,
            spool_dir,
            jobs,
            tracker: JobTracker::new(now),
            list_jobs: Box::new(scontrol_show_jobs),
            host: short_hostname(),
            started: now,
            last_cycle: None,
            last: CycleReport::default(),
            unavailable,
            send,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            dead_letters,
            delivered: 0,
            last_delivery: None,
            retry_at: None,
        })
    }

    /// Lists Slurm jobs with `lister` instead of `scontrol show job -o -d`.
    pub fn with_job_lister(
        mut self,
        lister: impl FnMut() -> Result<String, String> + Send + 'static,
    ) -> Meter {
        self.list_jobs = Box::new(lister);
        self
    }

    /// Sends reports with `send` instead of POSTing them to the authority.
    pub fn with_sender(
        mut self,
        send: impl FnMut(&str) -> Result<(), SendError> + Send + 'static,
    ) -> Meter {
        self.send = Box::new(send);
        self
    }

    /// Backs off with `backoff` after failed sends (default: 1 s doubling up to 5 min).
    pub fn with_backoff(mut self, backoff: Backoff) -> Meter {
        self.backoff = backoff;
        self
    }

    /// Takes `host` as this node's name (for `nvml`; default: the short host name).
    pub fn with_host(mut self, host: impl Into<String>) -> Meter {
        self.host = host.into();
        self
    }

    /// Seconds between cycles.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.config.interval_seconds)
    }

    /// The queue (for its pending reports and dead letters).
    pub fn queue(&self) -> &UsageQueue {
        &self.queue
    }

    /// What this provider metered for each run so far (every report ever enqueued).
    pub fn metered_by_run(&self) -> BTreeMap<String, runpermit_compute::Flop> {
        self.queue.metered_by_run()
    }

    /// The status `GET /v1/metering` shows.
    pub fn status(&self) -> MeteringStatus {
        MeteringStatus {
            interval_seconds: self.config.interval_seconds,
            sources: self
                .config
                .sources
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            unavailable: self.unavailable.clone(),
            queue_dir: self.queue_dir.display().to_string(),
            pending: self.queue.pending().len(),
            dead_letters: self.dead_letters,
            last_cycle: self.last_cycle,
            last_cycle_enqueued: self.last.enqueued.len(),
            last_cycle_rejected: self.last.rejected.len(),
            last_cycle_errors: self.last.errors.clone(),
            delivered: self.delivered,
            last_delivery: self.last_delivery,
            retry_in_seconds: self
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
        if let Some(dir) = self.spool_dir.clone() {
            self.meter_spool(&dir, now, &mut report);
        }
        if self.jobs.is_some() {
            self.meter_jobs(now, &mut report);
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
        let outcome = self.queue.ship(&mut self.send, &mut self.backoff, now)?;
        self.retry_at = outcome.retry_at;
        self.dead_letters += outcome.dead_lettered;
        self.delivered += outcome.delivered as u64;
        if outcome.delivered > 0 {
            self.last_delivery = Some(unix_now());
        }
        if outcome.delivered > 0 || outcome.dead_lettered > 0 {
            tracing::info!(
                delivered = outcome.delivered,
                dead_lettered = outcome.dead_lettered,
                pending = outcome.pending,
                "usage reports shipped"
            );
        }
        if self.queue.journal_bytes() > COMPACT_AT_BYTES {
            self.queue.compact()?;
        }
        Ok(outcome)
    }

    /// Signs and enqueues one report; `source` makes it exactly-once.
    fn enqueue(
        &mut self,
        claims: UsageReportClaims,
        source: Option<&str>,
        report: &mut CycleReport,
    ) -> Result<Option<u64>, QueueError> {
        let run = claims.sub.clone();
        let seq = match source {
            Some(src) => self.queue.enqueue_once(claims, &self.key, src)?,
            None => Some(self.queue.enqueue(claims, &self.key)?),
        };
        if let Some(seq) = seq {
            report.enqueued.push((run, seq));
        }
        Ok(seq)
    }

    /// The `spool` source: every `*.json` file in `dir`, in name order.
    fn meter_spool(&mut self, dir: &Path, now: i64, report: &mut CycleReport) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                report
                    .errors
                    .push(format!("spool: reading {}: {e}", dir.display()));
                return;
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        let mut removed = false;
        for name in names {
            let path = dir.join(&name);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    report.errors.push(format!("spool: reading {name}: {e}"));
                    continue;
                }
            };
            let digest = Sha256::digest(&bytes);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            let source = format!("spool:{name}:{hex}");
            if self.queue.has_source(&source) {
                // Enqueued before a crash kept the file: remove it only.
                tracing::info!(file = %name, "spool record already reported; removing it");
                removed |= remove(&path, &name, report);
                continue;
            }
            let parsed = std::str::from_utf8(&bytes)
                .map_err(|e| vec![format!("not UTF-8 text: {e}")])
                .and_then(|text| {
                    SpoolRecord::parse(text, &self.params, HardwareTable::builtin()).map_err(
                        |errors| {
                            errors
                                .into_iter()
                                .map(|e| {
                                    if e.field.is_empty() {
                                        e.message
                                    } else {
                                        format!("{}: {}", e.field, e.message)
                                    }
                                })
                                .collect()
                        },
                    )
                })
                .and_then(|record| {
                    record
                        .claims(&self.provider, now, HardwareTable::builtin())
                        .map_err(|e| vec![e.to_string()])
                });
            let claims = match parsed {
                Ok(claims) => claims,
                Err(problems) => {
                    reject(dir, &name, &problems, report);
                    continue;
                }
            };
            match self.enqueue(claims, Some(&source), report) {
                Ok(_) => removed |= remove(&path, &name, report),
                Err(QueueError::Report(e)) => reject(dir, &name, &[e.to_string()], report),
                Err(e) => {
                    // The queue cannot take it now: leave the file for the next cycle.
                    report.errors.push(format!("spool: {name}: {e}"));
                    break;
                }
            }
        }
        if removed && let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %dir.display(), error = %e, "spool: syncing the directory");
        }
    }

    /// The chip of the gate's cluster.
    fn chip(&self) -> &'static Accelerator {
        HardwareTable::builtin()
            .lookup(&self.cluster.accelerator)
            .expect("the cluster's accelerator was resolved in the built-in table")
    }

    /// A report of `metered` for (run, permit) on the gate's cluster over [from, to).
    fn claims(
        &self,
        run: &str,
        permit: &str,
        cluster: &str,
        (from, to): (i64, i64),
        now: i64,
        metered: Metered,
    ) -> UsageReportClaims {
        let from = from.min(to - 1);
        UsageReportClaims::new(
            &self.provider,
            run,
            permit,
            cluster,
            0,
            (from, to),
            now,
            metered,
        )
    }

    /// The `slurm`, `dcgm` and `nvml` sources.
    fn meter_jobs(&mut self, now: i64, report: &mut CycleReport) {
        let window_from = self.last_cycle.unwrap_or(self.started);
        let usage = match (self.list_jobs)() {
            Ok(text) => {
                let observed = self.tracker.observe(&parse_jobs(&text), now);
                for job in &observed.without_gpus {
                    tracing::info!(job = %job, "permitted Slurm job has no GPUs allocated: nothing to meter");
                }
                for job in &observed.without_run {
                    tracing::warn!(job = %job, "Slurm job is tied to a permit but not to its run \
                        (admitted by an older job_submit.lua): not metered");
                }
                observed.usage
            }
            Err(e) => {
                report.errors.push(format!("slurm: {e}"));
                Vec::new()
            }
        };
        let chip = self.chip();
        let cluster = self.cluster.name.clone();
        // (run, permit, cluster) → activity samples, and GPU-seconds metered by accounting.
        let mut activity = ActivityByRun::new();
        let mut fallback: Vec<JobUsage> = Vec::new();
        let method = match &self.jobs {
            Some(JobSource::Slurm) | None => None,
            Some(JobSource::Dcgm { .. }) => Some(MeterSource::Dcgm),
            Some(JobSource::Nvml(_)) => Some(MeterSource::Nvml),
        };
        match &self.jobs {
            Some(JobSource::Slurm) | None => fallback = usage,
            Some(JobSource::Dcgm { url, http }) => {
                let text = http
                    .get(url)
                    .call()
                    .and_then(|mut r| r.body_mut().read_to_string())
                    .map_err(|e| format!("dcgm: scraping {url}: {e}"))
                    .and_then(|text| {
                        exposition_series(&text, DCGM_TENSOR_ACTIVE)
                            .map_err(|e| format!("dcgm: {url}: {e}"))
                    });
                let series = match text {
                    Ok(series) => series,
                    Err(e) => {
                        // Without activity figures, the jobs are metered by accounting.
                        report.errors.push(e);
                        Vec::new()
                    }
                };
                let mut by_job: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
                for s in &series {
                    if let Some(job) = s.labels.get("hpc_job")
                        && usage.iter().any(|u| &u.job_id == job)
                    {
                        by_job.entry(job).or_default().push(s.value.clamp(0.0, 1.0));
                    } else if let (Some(run), Some(permit)) = (
                        s.labels.get("runpermit_run"),
                        s.labels.get("runpermit_permit"),
                    ) {
                        let on = s
                            .labels
                            .get("runpermit_cluster")
                            .cloned()
                            .unwrap_or_else(|| cluster.clone());
                        let seconds = (now - window_from).max(0) as f64;
                        let entry = activity
                            .entry((run.clone(), permit.clone(), on))
                            .or_insert_with(|| Activity::new(window_from, now));
                        entry.values.push(s.value.clamp(0.0, 1.0));
                        entry.seconds.push(seconds);
                    }
                }
                for u in usage {
                    let values = by_job.remove(u.job_id.as_str()).unwrap_or_default();
                    split_job(u, &values, &cluster, &mut activity, &mut fallback);
                }
            }
            Some(JobSource::Nvml(sampler)) => {
                let drained = sampler.as_ref().map(NvmlSampler::drain).unwrap_or_default();
                for u in usage {
                    let values: Vec<f64> = u
                        .gpu_indices
                        .iter()
                        .filter(|(nodes, _)| crate::slurm::hostlist_contains(nodes, &self.host))
                        .flat_map(|(_, idx)| idx.iter())
                        .filter_map(|i| drained.get(i).and_then(|a| a.mean()))
                        .collect();
                    split_job(u, &values, &cluster, &mut activity, &mut fallback);
                }
            }
        }
        let mut claims = Vec::new();
        for ((run, permit, on), a) in activity {
            let Activity {
                values,
                seconds,
                from,
                to,
            } = a;
            let metered = match method {
                Some(MeterSource::Nvml) => {
                    let samples: Vec<UtilizationSample> = values
                        .iter()
                        .zip(&seconds)
                        .map(|(u, s)| UtilizationSample {
                            utilization: *u,
                            seconds: *s,
                        })
                        .collect();
                    nvml_utilization(chip, &samples)
                }
                _ => {
                    let samples: Vec<TensorSample> = values
                        .iter()
                        .zip(&seconds)
                        .map(|(a, s)| TensorSample {
                            tensor_active: *a,
                            seconds: *s,
                        })
                        .collect();
                    dcgm_tensor_activity(chip, &samples)
                }
            };
            match metered {
                Ok(m) if m.accelerator_seconds.values().sum::<f64>() > 0.0 => {
                    claims.push(self.claims(&run, &permit, &on, (from, to), now, m));
                }
                Ok(_) => {}
                Err(e) => report.errors.push(format!("metering run {run}: {e}")),
            }
        }
        for ((run, permit), (gpu_seconds, from, to)) in by_run(&fallback) {
            match scheduler_accounting(chip, gpu_seconds) {
                Ok(m) => claims.push(self.claims(&run, &permit, &cluster, (from, to), now, m)),
                Err(e) => report.errors.push(format!("metering run {run}: {e}")),
            }
        }
        for c in claims {
            let run = c.sub.clone();
            if let Err(e) = self.enqueue(c, None, report) {
                report
                    .errors
                    .push(format!("queue: report for run {run}: {e}"));
            }
        }
    }
}

/// Activity samples of one run: fractions in [0, 1] and the seconds each stands for, over
/// [from, to).
struct Activity {
    values: Vec<f64>,
    seconds: Vec<f64>,
    from: i64,
    to: i64,
}

impl Activity {
    fn new(from: i64, to: i64) -> Activity {
        Activity {
            values: Vec::new(),
            seconds: Vec::new(),
            from,
            to,
        }
    }
}

/// Activity by (run, permit, cluster).
type ActivityByRun = BTreeMap<(String, String, String), Activity>;

/// Splits one job's usage: `values` (activity of some of its GPUs) become samples of
/// `u.seconds` each; the GPUs without a value are metered by accounting.
fn split_job(
    u: JobUsage,
    values: &[f64],
    cluster: &str,
    activity: &mut ActivityByRun,
    fallback: &mut Vec<JobUsage>,
) {
    let from = u.to - i64::try_from(u.seconds).unwrap_or(i64::MAX);
    if !values.is_empty() {
        let entry = activity
            .entry((u.run_id.clone(), u.permit_id.clone(), cluster.to_owned()))
            .or_insert_with(|| Activity::new(from, u.to));
        entry.values.extend_from_slice(values);
        entry
            .seconds
            .extend(std::iter::repeat_n(u.seconds as f64, values.len()));
        entry.from = entry.from.min(from);
        entry.to = entry.to.max(u.to);
    }
    let measured = values.len() as u64;
    if u.gpus > measured {
        fallback.push(JobUsage {
            gpus: u.gpus - measured,
            ..u
        });
    }
}

/// Removes a consumed spool file; whether it is gone.
fn remove(path: &Path, name: &str, report: &mut CycleReport) -> bool {
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(e) => {
            report.errors.push(format!(
                "spool: {name} is reported but cannot be removed ({e}); it will not be reported again"
            ));
            false
        }
    }
}

/// Moves a malformed spool file to `rejected/`, with `NAME.error` beside it.
fn reject(dir: &Path, name: &str, problems: &[String], report: &mut CycleReport) {
    let rejected = dir.join(REJECTED_DIR);
    let text: String = problems.iter().map(|p| format!("{p}\n")).collect();
    tracing::warn!(file = %name, problems = %problems.join("; "),
        "spool record rejected; moved to {}", rejected.display());
    let moved = std::fs::create_dir_all(&rejected)
        .and_then(|()| std::fs::write(rejected.join(format!("{name}.error")), &text))
        .and_then(|()| std::fs::rename(dir.join(name), rejected.join(name)));
    match moved {
        Ok(()) => report.rejected.push(name.to_owned()),
        Err(e) => report.errors.push(format!(
            "spool: {name} is malformed ({}) and cannot be moved to {}: {e}",
            problems.join("; "),
            rejected.display()
        )),
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
