//! The job-based collectors: the Slurm jobs that `job_submit.lua` tied to a permit, listed
//! every cycle (`scontrol show job -o -d`, [`JobTracker`] counting each job's GPU-seconds
//! once), measured by the one job source configured:
//!
//! - `slurm` ([`JobSource::Accounting`]): allocated GPUs × run time, by scheduler accounting;
//! - `dcgm` ([`DcgmActivity`]): tensor-pipe activity from dcgm-exporter;
//! - `nvml` ([`NvmlActivity`]): this node's GPUs' utilization.
//!
//! A source measures what it can; the GPU-time it has no figure for is metered by scheduler
//! accounting (an upper bound), never left out. One report per run per interval.

use std::collections::BTreeMap;

use runpermit_compute::{Accelerator, AccountingBasis, HardwareTable};
use runpermit_gate::{
    ClusterParams, TensorSample, UtilizationSample, dcgm_tensor_activity, nvml_utilization,
    scheduler_accounting,
};
use runpermit_permit::{Metered, UsageReportClaims};

use super::dcgm::DcgmActivity;
use super::nvml::NvmlActivity;
use super::shipper::Shipper;
use super::{Bases, CycleReport, JobLister};
use crate::slurm::{JobTracker, JobUsage, by_run, parse_jobs};

/// How the permitted jobs' GPU-time is measured.
pub(crate) enum JobSource {
    /// `slurm`: scheduler accounting only.
    Accounting,
    /// `dcgm`: tensor-pipe activity.
    Dcgm(DcgmActivity),
    /// `nvml`: this node's GPU utilization.
    Nvml(NvmlActivity),
}

impl JobSource {
    /// The activity samples per run that this source measured for `usage` over
    /// [`window_from`, `now`), and the jobs' GPU-time it has no figure for.
    fn measure(
        &mut self,
        usage: Vec<JobUsage>,
        cluster: &str,
        (window_from, now): (i64, i64),
        report: &mut CycleReport,
    ) -> (ActivityByRun, Vec<JobUsage>) {
        match self {
            JobSource::Accounting => (ActivityByRun::new(), usage),
            JobSource::Dcgm(dcgm) => dcgm.measure(usage, cluster, (window_from, now), report),
            JobSource::Nvml(nvml) => nvml.measure(usage, cluster),
        }
    }

    /// Meters one run's activity samples on `chip` with its permit's `basis`.
    fn meter(
        &self,
        chip: &Accelerator,
        a: &Activity,
        basis: Option<&AccountingBasis>,
    ) -> Result<Metered, runpermit_gate::MeterError> {
        let pairs = a.values.iter().zip(&a.seconds);
        match self {
            JobSource::Nvml(_) => {
                let samples: Vec<UtilizationSample> = pairs
                    .map(|(u, s)| UtilizationSample {
                        utilization: *u,
                        seconds: *s,
                    })
                    .collect();
                nvml_utilization(chip, &samples, basis)
            }
            _ => {
                let samples: Vec<TensorSample> = pairs
                    .map(|(a, s)| TensorSample {
                        tensor_active: *a,
                        seconds: *s,
                    })
                    .collect();
                dcgm_tensor_activity(chip, &samples, basis)
            }
        }
    }
}

/// The permitted Slurm jobs of the gate's cluster, and how they are measured.
pub(crate) struct JobCollector {
    provider: String,
    cluster: ClusterParams,
    tracker: JobTracker,
    pub(crate) list_jobs: JobLister,
    pub(crate) source: JobSource,
}

impl JobCollector {
    /// Jobs on `cluster`, reported as `provider`, counted from `now`.
    pub(crate) fn new(
        provider: &str,
        cluster: ClusterParams,
        source: JobSource,
        list_jobs: JobLister,
        now: i64,
    ) -> JobCollector {
        JobCollector {
            provider: provider.to_owned(),
            cluster,
            tracker: JobTracker::new(now),
            list_jobs,
            source,
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

    /// Meters the jobs at `now`, each run with its permit's basis; `window_from` is when the
    /// last cycle ran (or the gate started).
    pub(crate) fn collect(
        &mut self,
        now: i64,
        window_from: i64,
        shipper: &mut Shipper,
        bases: &mut Bases,
        report: &mut CycleReport,
    ) {
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
        let (activity, fallback) = self
            .source
            .measure(usage, &cluster, (window_from, now), report);
        let mut claims = Vec::new();
        for ((run, permit, on), a) in activity {
            let basis = bases.of(&run, &permit, report);
            match self.source.meter(chip, &a, basis.as_ref()) {
                Ok(m) if m.accelerator_seconds.values().sum::<f64>() > 0.0 => {
                    claims.push(self.claims(&run, &permit, &on, (a.from, a.to), now, m));
                }
                Ok(_) => {}
                Err(e) => report.errors.push(format!("metering run {run}: {e}")),
            }
        }
        for ((run, permit), (gpu_seconds, from, to)) in by_run(&fallback) {
            let basis = bases.of(&run, &permit, report);
            match scheduler_accounting(chip, gpu_seconds, basis.as_ref()) {
                Ok(m) => claims.push(self.claims(&run, &permit, &cluster, (from, to), now, m)),
                Err(e) => report.errors.push(format!("metering run {run}: {e}")),
            }
        }
        for c in claims {
            let run = c.sub.clone();
            if let Err(e) = shipper.enqueue(c, None, report) {
                report
                    .errors
                    .push(format!("queue: report for run {run}: {e}"));
            }
        }
    }
}

/// Activity samples of one run: fractions in [0, 1] and the seconds each stands for, over
/// [from, to).
pub(crate) struct Activity {
    pub(crate) values: Vec<f64>,
    pub(crate) seconds: Vec<f64>,
    pub(crate) from: i64,
    pub(crate) to: i64,
}

impl Activity {
    pub(crate) fn new(from: i64, to: i64) -> Activity {
        Activity {
            values: Vec::new(),
            seconds: Vec::new(),
            from,
            to,
        }
    }
}

/// Activity by (run, permit, cluster).
pub(crate) type ActivityByRun = BTreeMap<(String, String, String), Activity>;

/// Splits one job's usage: `values` (activity of some of its GPUs) become samples of
/// `u.seconds` each; the GPUs without a value are metered by accounting.
pub(crate) fn split_job(
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
