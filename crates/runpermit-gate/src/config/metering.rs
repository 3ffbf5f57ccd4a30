//! `[metering]`: what `runpermit gate serve` meters and reports, and its checks.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Errors, is_http_url};

/// Default of [`MeteringConfig::interval_seconds`].
pub const DEFAULT_METERING_INTERVAL_SECONDS: u64 = 60;
/// The largest accepted [`MeteringConfig::interval_seconds`]: a day.
pub const MAX_METERING_INTERVAL_SECONDS: u64 = 86_400;
/// Default of [`MeteringConfig::queue_dir`], beside the configuration file.
pub const DEFAULT_QUEUE_DIR: &str = "usage-queue";

/// `[metering]`: what `runpermit gate serve` meters, and how often it reports. Every
/// `interval_seconds` the gate runs each source, turns what it observed into signed usage
/// reports (signed with `reporting_key`, numbered per run), appends them to its durable
/// queue in `queue_dir`, and ships the queue to `{authority_url}/v1/usage`.
///
/// One gate per provider meters: the authority numbers reports per provider and run, so two
/// gates reporting for the same run under the same `provider_id` would collide.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MeteringConfig {
    /// `interval_seconds`: how often the gate meters and ships, in seconds (1 to 86400;
    /// default 60). Each report covers one interval of one run.
    #[serde(default = "default_metering_interval")]
    pub interval_seconds: u64,
    /// `queue_dir`: the directory of the durable usage-report queue (created if missing;
    /// default `usage-queue` beside the configuration). The gate refuses to start if it
    /// cannot open it. Keep it on a local disk that survives restarts.
    #[serde(default = "default_queue_dir")]
    pub queue_dir: PathBuf,
    /// `sources`: what is metered, one or more of:
    ///
    /// - `"spool"`: scheduler accounting from any scheduler: the provider's accounting
    ///   system drops one JSON record per file into `spool_dir` (see `spool_dir`).
    /// - `"slurm"`: scheduler accounting of the running Slurm jobs that `job_submit.lua`
    ///   tied to a permit, from `scontrol show job` (allocated GPUs × run time).
    /// - `"dcgm"`: tensor-pipe activity from NVIDIA's dcgm-exporter at `dcgm_url`, mapped
    ///   to runs through DCGM's HPC job mapping (`hpc_job`, the Slurm job id) or the
    ///   `runpermit_run` and `runpermit_permit` labels.
    /// - `"nvml"`: GPU utilization of this node's GPUs through NVML (`libnvidia-ml.so`),
    ///   mapped to the Slurm jobs running on this node.
    ///
    /// `slurm`, `dcgm` and `nvml` meter the same Slurm jobs in different ways: list at most
    /// one of them, or the run's compute would be reported twice. They report under the
    /// cluster `runpermit gate serve --cluster` names, with its accelerator. `spool` is for
    /// records no other source covers; each record names its own cluster.
    #[serde(default)]
    pub sources: Vec<MeterSource>,
    /// `spool_dir`: with `"spool"`, the directory the provider's accounting system writes
    /// records to, one JSON object per `*.json` file, written under another name and
    /// renamed into place: `{"run_id", "permit_id", "cluster", "accelerator" (optional:
    /// a hardware-table name, id or alias; default the cluster's), "accelerator_seconds",
    /// "from", "to"}` (unix seconds, `from` < `to`). Each record is reported once (even
    /// across crashes) and its file removed; a malformed one is moved to
    /// `spool_dir/rejected/` with a `.error` file beside it naming what is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spool_dir: Option<PathBuf>,
    /// `dcgm_url`: with `"dcgm"`, the URL of dcgm-exporter's Prometheus text
    /// (`http://node:9400/metrics`, or a Prometheus `/federate` URL covering every node),
    /// scraped once per interval. Its counters must include
    /// `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dcgm_url: Option<String>,
}

/// One of [`MeteringConfig::sources`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MeterSource {
    /// Accounting records dropped into `spool_dir`.
    Spool,
    /// Running Slurm jobs tied to a permit (`scontrol show job`).
    Slurm,
    /// dcgm-exporter's tensor-pipe activity at `dcgm_url`.
    Dcgm,
    /// This node's GPUs through NVML.
    Nvml,
}

impl MeterSource {
    /// The name used in the configuration (`spool`).
    pub fn as_str(self) -> &'static str {
        match self {
            MeterSource::Spool => "spool",
            MeterSource::Slurm => "slurm",
            MeterSource::Dcgm => "dcgm",
            MeterSource::Nvml => "nvml",
        }
    }
}

impl fmt::Display for MeterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn default_metering_interval() -> u64 {
    DEFAULT_METERING_INTERVAL_SECONDS
}

fn default_queue_dir() -> PathBuf {
    PathBuf::from(DEFAULT_QUEUE_DIR)
}

impl MeteringConfig {
    pub(super) fn check(&self, errors: &mut Errors) {
        let field = |key: &str| format!("metering.{key}");
        if !(1..=MAX_METERING_INTERVAL_SECONDS).contains(&self.interval_seconds) {
            errors.push(
                &field("interval_seconds"),
                format!(
                    "must be between 1 and {MAX_METERING_INTERVAL_SECONDS} seconds, such as {DEFAULT_METERING_INTERVAL_SECONDS}; got {}",
                    self.interval_seconds
                ),
            );
        }
        if self.queue_dir.as_os_str().is_empty() {
            errors.push(
                &field("queue_dir"),
                format!(
                    "must be the directory of the usage-report queue (default \"{DEFAULT_QUEUE_DIR}\" beside the configuration)"
                ),
            );
        }
        if self.sources.is_empty() {
            errors.push(
                &field("sources"),
                "must list what to meter: one or more of \"spool\", \"slurm\", \"dcgm\", \"nvml\"",
            );
        }
        let mut seen = HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            if !seen.insert(*source) {
                errors.push(
                    &format!("metering.sources[{i}]"),
                    format!("{source:?} is listed twice", source = source.as_str()),
                );
            }
        }
        let exclusive: Vec<&str> = [MeterSource::Slurm, MeterSource::Dcgm, MeterSource::Nvml]
            .into_iter()
            .filter(|s| seen.contains(s))
            .map(MeterSource::as_str)
            .collect();
        if exclusive.len() > 1 {
            errors.push(
                &field("sources"),
                format!(
                    "lists {}: they meter the same Slurm jobs, so each run's compute would be reported more than once; keep one",
                    exclusive.join(" and ")
                ),
            );
        }
        let has = |s: MeterSource| seen.contains(&s);
        match &self.spool_dir {
            None if has(MeterSource::Spool) => errors.push(
                &field("spool_dir"),
                "is required with the \"spool\" source: the directory the accounting system writes its records to",
            ),
            Some(dir) if !has(MeterSource::Spool) => errors.push(
                &field("spool_dir"),
                format!(
                    "is only used by the \"spool\" source, which sources does not list (got {:?})",
                    dir.display().to_string()
                ),
            ),
            Some(dir) if dir.as_os_str().is_empty() => errors.push(
                &field("spool_dir"),
                "must be the directory the accounting system writes its records to",
            ),
            _ => {}
        }
        match &self.dcgm_url {
            None if has(MeterSource::Dcgm) => errors.push(
                &field("dcgm_url"),
                "is required with the \"dcgm\" source: the dcgm-exporter's metrics URL, such as \"http://localhost:9400/metrics\"",
            ),
            Some(url) if !has(MeterSource::Dcgm) => errors.push(
                &field("dcgm_url"),
                format!(
                    "is only used by the \"dcgm\" source, which sources does not list (got {url:?})"
                ),
            ),
            Some(url) if !is_http_url(url) => errors.push(
                &field("dcgm_url"),
                format!(
                    "must be an http:// or https:// URL of dcgm-exporter's metrics, such as \"http://localhost:9400/metrics\"; got {url:?}"
                ),
            ),
            _ => {}
        }
    }
}
