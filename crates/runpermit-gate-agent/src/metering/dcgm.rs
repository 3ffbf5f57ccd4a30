//! The `dcgm` job source: dcgm-exporter's `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` per GPU, scraped
//! once per cycle, mapped to the permitted Slurm jobs by its `hpc_job` label (or to runs by
//! the `runpermit_run` and `runpermit_permit` labels, with `runpermit_cluster` optional),
//! × the seconds counted for the job. A job's GPUs that have no series are metered by
//! scheduler accounting.

use std::collections::BTreeMap;

use runpermit_gate::{DCGM_TENSOR_ACTIVE, exposition_series};

use super::CycleReport;
use super::jobs::{Activity, ActivityByRun, split_job};
use crate::slurm::JobUsage;

/// dcgm-exporter's metrics URL, and the HTTP client that scrapes it.
pub(crate) struct DcgmActivity {
    pub(crate) url: String,
    pub(crate) http: ureq::Agent,
}

impl DcgmActivity {
    /// The activity samples per run for `usage` over [`window_from`, `now`), and the
    /// GPU-time without a series.
    pub(crate) fn measure(
        &self,
        usage: Vec<JobUsage>,
        cluster: &str,
        (window_from, now): (i64, i64),
        report: &mut CycleReport,
    ) -> (ActivityByRun, Vec<JobUsage>) {
        let (url, http) = (&self.url, &self.http);
        let mut activity = ActivityByRun::new();
        let mut fallback = Vec::new();
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
                    .unwrap_or_else(|| cluster.to_owned());
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
            split_job(u, &values, cluster, &mut activity, &mut fallback);
        }
        (activity, fallback)
    }
}
