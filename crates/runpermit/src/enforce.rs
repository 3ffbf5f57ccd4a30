//! `runpermit gate enforce`: acts on running work when the authority's status list says a
//! permit is not in good standing. Slurm: the jobs that `job_submit.lua` admitted under the
//! permit (it marks them with `AdminComment=runpermit:permit=<id>;run=<run id>`, read by
//! `runpermit_gate_agent::slurm::parse_marker`) are suspended when running and held when
//! pending. Kubernetes needs no pass of its own: the admission webhook
//! refuses the run's new Pods at once.
//!
//! Every action is printed (and `--json` prints them as a list), so that the provider's logs
//! say what the gate did and why.

use std::process::Command;

use anyhow::{Context, Result};
use runpermit_gate::StatusListCache;
use runpermit_permit::StatusEntry;
use serde::Serialize;

/// A Slurm job, as one line of `scontrol show job -o` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    /// `JobId`.
    pub id: String,
    /// `JobState` (`RUNNING`, `PENDING`, `SUSPENDED`, …).
    pub state: String,
    /// The permit it was admitted under, from `AdminComment`.
    pub permit: Option<String>,
}

/// The jobs in `scontrol show job -o` output.
pub fn parse_jobs(text: &str) -> Vec<SlurmJob> {
    text.lines()
        .filter_map(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name).map(str::to_owned))
            };
            Some(SlurmJob {
                id: field("JobId=")?,
                state: field("JobState=").unwrap_or_default(),
                permit: field("AdminComment=")
                    .and_then(|c| runpermit_gate_agent::slurm::parse_marker(&c))
                    .map(|m| m.permit_id),
            })
        })
        .collect()
}

/// What the gate does to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Act {
    /// `scontrol suspend`: a running job stops computing.
    Suspend,
    /// `scontrol hold`: a pending job does not start.
    Hold,
}

/// One enforcement action and its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// The job.
    pub job: String,
    /// Suspend or hold.
    pub act: Act,
    /// The permit.
    pub permit: String,
    /// Its standing in the status list (`revoked`, `suspended`, …).
    pub status: String,
    /// The authority's reason.
    pub reason: String,
    /// Whether `scontrol` did it (false in a dry run or when it failed).
    pub done: bool,
    /// What `scontrol` said when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The actions `status` calls for on `jobs`: every running or pending job admitted under a
/// permit that the list shows not in good standing.
pub fn plan(jobs: &[SlurmJob], status: &StatusListCache) -> Vec<Action> {
    jobs.iter()
        .filter_map(|job| {
            let permit = job.permit.as_deref()?;
            let entry: &StatusEntry = status.status_of(permit)?;
            let act = match job.state.as_str() {
                "RUNNING" => Act::Suspend,
                "PENDING" => Act::Hold,
                _ => return None,
            };
            Some(Action {
                job: job.id.clone(),
                act,
                permit: permit.to_owned(),
                status: entry.status.to_string(),
                reason: entry.reason.clone(),
                done: false,
                error: None,
            })
        })
        .collect()
}

/// Lists the cluster's jobs with `scontrol`.
pub fn slurm_jobs() -> Result<Vec<SlurmJob>> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o"])
        .output()
        .context("running scontrol show job")?;
    anyhow::ensure!(
        out.status.success(),
        "scontrol show job failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(parse_jobs(&String::from_utf8_lossy(&out.stdout)))
}

/// Carries out `action` with `scontrol`.
pub fn apply(action: &mut Action) {
    let verb = match action.act {
        Act::Suspend => "suspend",
        Act::Hold => "hold",
    };
    match Command::new("scontrol").args([verb, &action.job]).output() {
        Ok(out) if out.status.success() => action.done = true,
        Ok(out) => action.error = Some(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(e) => action.error = Some(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scontrol_one_line_output() {
        let text = "JobId=7 JobName=wrap UserId=root(0) JobState=RUNNING Reason=None AdminComment=runpermit:permit=pmt_1 Partition=debug\n\
                    JobId=8 JobName=wrap JobState=PENDING Reason=Priority\n\
                    JobId=9 JobState=COMPLETED AdminComment=something-else\n\
                    JobId=10 JobState=RUNNING AdminComment=runpermit:permit=pmt_2;run=run_2\n";
        let jobs = parse_jobs(text);
        assert_eq!(jobs.len(), 4);
        assert_eq!(jobs[0].permit.as_deref(), Some("pmt_1"));
        assert_eq!(
            jobs[3].permit.as_deref(),
            Some("pmt_2"),
            "the marker with the run"
        );
        assert_eq!(jobs[0].state, "RUNNING");
        assert_eq!(jobs[1].permit, None);
        assert_eq!(jobs[2].permit, None);
        assert!(parse_jobs("No jobs in the system\n").is_empty());
    }
}
