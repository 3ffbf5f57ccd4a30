//! Slurm jobs as the metering sources see them: `scontrol show job -o -d` parsed (pure), the
//! `job_submit.lua` marker that ties a job to its permit and run, and [`JobTracker`], which
//! turns successive listings into accelerator-seconds without counting any second twice.
//!
//! `scontrol` runs with `TZ=UTC`, so that `StartTime` and `EndTime` are UTC.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;

/// The marker `job_submit.lua` writes into an admitted job's `AdminComment`:
/// `runpermit:permit=<permit id>;run=<run id>` (older versions of the plugin wrote
/// `runpermit:permit=<permit id>` only).
pub const PERMIT_MARKER: &str = "runpermit:permit=";

/// The permit and run a job was admitted under, from its `AdminComment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The permit (`jti`).
    pub permit_id: String,
    /// The run (the permit's `sub`); `None` for a job admitted by an older plugin.
    pub run_id: Option<String>,
}

/// Reads the marker in an `AdminComment`: `runpermit:permit=P` or
/// `runpermit:permit=P;run=R` (further `;key=value` items are ignored). `None` for any
/// other comment.
pub fn parse_marker(admin_comment: &str) -> Option<Marker> {
    let rest = admin_comment.trim().strip_prefix(PERMIT_MARKER)?;
    let mut items = rest.split(';');
    let permit_id = items.next()?.trim();
    if permit_id.is_empty() {
        return None;
    }
    let run_id = items
        .filter_map(|item| item.trim().strip_prefix("run="))
        .find(|run| !run.is_empty())
        .map(str::to_owned);
    Some(Marker {
        permit_id: permit_id.to_owned(),
        run_id,
    })
}

/// One job of `scontrol show job -o -d`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    /// `JobId`.
    pub id: String,
    /// `JobState` (`RUNNING`, `PENDING`, `SUSPENDED`, `COMPLETED`, …).
    pub state: String,
    /// The permit and run, from `AdminComment`.
    pub marker: Option<Marker>,
    /// GPUs allocated: the largest of `gres/gpu` in `AllocTRES` (or `TRES` in Slurm 22.05,
    /// where it shows only if `AccountingStorageTRES` includes it), `JOB_GRES` (`gpu:4`),
    /// and the GPU indices of `-d`; 0 when none.
    pub gpus: u64,
    /// `RunTime` in seconds (Slurm excludes time suspended).
    pub run_seconds: Option<u64>,
    /// `StartTime`, unix seconds (UTC).
    pub start: Option<i64>,
    /// `EndTime`, unix seconds (UTC): the expected end while running, the end once ended.
    pub end: Option<i64>,
    /// With `-d`: the GPU indices (`GRES=gpu:4(IDX:0-3)`) per node list (`Nodes=`).
    pub gpu_indices: Vec<(String, Vec<u32>)>,
}

impl SlurmJob {
    /// Whether the job is still running (or suspended), as opposed to ended.
    pub fn is_active(&self) -> bool {
        matches!(
            self.state.as_str(),
            "RUNNING" | "SUSPENDED" | "COMPLETING" | "CONFIGURING" | "STOPPED" | "SIGNALING"
        )
    }

    /// The GPU indices this job holds on `host`.
    pub fn gpus_on(&self, host: &str) -> Vec<u32> {
        self.gpu_indices
            .iter()
            .filter(|(nodes, _)| hostlist_contains(nodes, host))
            .flat_map(|(_, idx)| idx.iter().copied())
            .collect()
    }
}

/// The jobs in `scontrol show job -o [-d]` output (one job a line; others skipped).
pub fn parse_jobs(text: &str) -> Vec<SlurmJob> {
    text.lines().filter_map(parse_job).collect()
}

fn parse_job(line: &str) -> Option<SlurmJob> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let field = |name: &str| words.iter().find_map(|w| w.strip_prefix(name));
    let id = field("JobId=")?.to_owned();
    let tres = field("AllocTRES=").or_else(|| field("TRES="));
    let mut gpu_indices = Vec::new();
    let mut nodes: Option<&str> = None;
    for word in &words {
        if let Some(n) = word.strip_prefix("Nodes=") {
            nodes = Some(n);
        } else if let (Some(gres), Some(n)) = (word.strip_prefix("GRES="), nodes) {
            let idx = gpu_indices_in(gres);
            if !idx.is_empty() {
                gpu_indices.push((n.to_owned(), idx));
            }
        }
    }
    Some(SlurmJob {
        id,
        state: field("JobState=").unwrap_or_default().to_owned(),
        marker: field("AdminComment=").and_then(parse_marker),
        gpus: tres
            .map_or(0, gpus_in_tres)
            .max(field("JOB_GRES=").map_or(0, gpus_in_gres))
            .max(gpu_indices.iter().map(|(_, i)| i.len() as u64).sum()),
        run_seconds: field("RunTime=").and_then(parse_duration),
        start: field("StartTime=").and_then(parse_utc),
        end: field("EndTime=").and_then(parse_utc),
        gpu_indices,
    })
}

/// GPUs in a TRES list (`cpu=2,mem=1G,node=1,gres/gpu=4`): the untyped `gres/gpu` count,
/// else the sum of the typed ones (`gres/gpu:h100=4`).
pub fn gpus_in_tres(tres: &str) -> u64 {
    let (mut untyped, mut typed) = (None, 0u64);
    for item in tres.split(',') {
        let Some((name, count)) = item.split_once('=') else {
            continue;
        };
        let Ok(count) = count.parse::<u64>() else {
            continue;
        };
        if name == "gres/gpu" {
            untyped = Some(count);
        } else if name.starts_with("gres/gpu:") {
            typed = typed.saturating_add(count);
        }
    }
    untyped.unwrap_or(typed)
}

/// GPUs in a `JOB_GRES=` value: `gpu:4`, `gpu:h100:4`, `gpu:2,mps:100`; a bare `gpu` is one.
pub fn gpus_in_gres(gres: &str) -> u64 {
    split_top_level(gres)
        .into_iter()
        .map(|item| item.split('(').next().unwrap_or(""))
        .filter(|item| *item == "gpu" || item.starts_with("gpu:"))
        .map(|item| {
            item.rsplit(':')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(1)
        })
        .fold(0, u64::saturating_add)
}

/// The GPU indices in a `GRES=` value of `scontrol show job -d`: `gpu:4(IDX:0-3)`,
/// `gpu:h100:2(IDX:0,2)`, several items possibly (`gpu:2(IDX:0-1),mps:100(0)`).
fn gpu_indices_in(gres: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut rest = gres;
    while let Some(open) = rest.find("(IDX:") {
        let item_start = rest[..open].rfind("),").map_or(0, |i| i + 2);
        let is_gpu = rest[item_start..open]
            .trim_start_matches(',')
            .starts_with("gpu");
        let after = &rest[open + 5..];
        let Some(close) = after.find(')') else {
            break;
        };
        if is_gpu {
            out.extend(expand_ranges(&after[..close]));
        }
        rest = &after[close + 1..];
    }
    out
}

/// `0-3,5` → 0,1,2,3,5 (malformed parts skipped; at most 4096 numbers).
fn expand_ranges(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
            for i in a..=b.min(a.saturating_add(4095)) {
                out.push(i);
            }
        }
    }
    out
}

/// Whether the Slurm host list `expr` (`vm`, `gpu[001-004,010]`, `a[1-2],b3`) names `host`.
pub fn hostlist_contains(expr: &str, host: &str) -> bool {
    split_top_level(expr)
        .into_iter()
        .any(|item| pattern_matches(item, host))
}

/// Splits at commas outside brackets and parentheses.
fn split_top_level(expr: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in expr.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&expr[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&expr[start..]);
    out
}

/// Whether `host` is one of the names of one host-list item (`gpu[01-04]-ib`).
fn pattern_matches(pattern: &str, host: &str) -> bool {
    let Some(open) = pattern.find('[') else {
        return pattern == host;
    };
    let Some(close) = pattern[open..].find(']').map(|c| open + c) else {
        return pattern == host;
    };
    let (prefix, ranges, suffix) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let Some(rest) = host.strip_prefix(prefix) else {
        return false;
    };
    for part in ranges.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(lo), Ok(hi)) = (a.parse::<u64>(), b.parse::<u64>()) else {
            continue;
        };
        let width = a.len();
        // The digits at the start of `rest`, as wide as the range's bounds (zero padding).
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        for len in (1..=digits).rev() {
            let (number, after) = rest.split_at(len);
            let Ok(n) = number.parse::<u64>() else {
                continue;
            };
            let padded_ok =
                number.len() == width || (number.len() > width && !number.starts_with('0'));
            if (lo..=hi).contains(&n) && padded_ok && pattern_matches(suffix, after) {
                return true;
            }
        }
    }
    false
}

/// `D-HH:MM:SS`, `HH:MM:SS` or `MM:SS` → seconds.
pub fn parse_duration(text: &str) -> Option<u64> {
    let (days, clock) = match text.split_once('-') {
        Some((d, rest)) => (d.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let (h, m, s) = match parts[..] {
        [h, m, s] => (h, m, s),
        [m, s] => (0, m, s),
        _ => return None,
    };
    // Checked: a duration too long for 64 bits is unreadable, not a panic.
    days.checked_mul(86_400)?
        .checked_add(h.checked_mul(3600)?)?
        .checked_add(m.checked_mul(60)?)?
        .checked_add(s)
}

/// `2026-01-01T00:00:00` (UTC) → unix seconds; `None` for `Unknown`, `None`, `N/A`, and for
/// a year outside 0 to 9999 or a field out of its range.
pub fn parse_utc(text: &str) -> Option<i64> {
    let (date, clock) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let mut c = clock.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (c.next()??, c.next()??, c.next()??);
    // Slurm writes four-digit years; bounding the year also keeps the arithmetic below in
    // range.
    if !(0..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&day)
        || !(0..=23).contains(&h)
        || !(0..=59).contains(&mi)
        || !(0..=60).contains(&s)
    {
        return None;
    }
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Runs `scontrol show job -o -d` (with `TZ=UTC`) and returns its output.
pub fn scontrol_show_jobs() -> Result<String, String> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", "-d"])
        .env("TZ", "UTC")
        .output()
        .map_err(|e| format!("running scontrol show job: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scontrol show job failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What one permitted job used since it was last observed.
#[derive(Debug, Clone, PartialEq)]
pub struct JobUsage {
    /// The Slurm job id.
    pub job_id: String,
    /// The permit.
    pub permit_id: String,
    /// The run.
    pub run_id: String,
    /// GPUs allocated.
    pub gpus: u64,
    /// Seconds of the job's run time counted now (each GPU ran this long).
    pub seconds: u64,
    /// Where those seconds end: now, or the job's end if it ended.
    pub to: i64,
    /// The GPU indices per node list (from `-d`).
    pub gpu_indices: Vec<(String, Vec<u32>)>,
}

/// What [`JobTracker::observe`] found, beside the usage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Usage of each permitted job with GPUs since its last observation (jobs with nothing
    /// new are left out).
    pub usage: Vec<JobUsage>,
    /// Permitted jobs with no GPUs allocated: nothing to meter.
    pub without_gpus: Vec<String>,
    /// Jobs tied to a permit but not to a run (admitted by an older `job_submit.lua`): not
    /// metered, since a report names its run.
    pub without_run: Vec<String>,
}

/// Successive observations of the Slurm jobs → the run time of each permitted job not
/// counted before. A job's first observation counts from max(job start, `started`) (the
/// gate's start), later ones the growth of its `RunTime` (which excludes suspension); a job
/// seen ended counts up to its end. Nothing is counted twice, as long as this tracker lives
/// (a restarted gate starts again from its own start: time while it was down is not
/// counted).
#[derive(Debug, Clone)]
pub struct JobTracker {
    started: i64,
    /// Run seconds already counted, per job id.
    counted: HashMap<String, u64>,
}

impl JobTracker {
    /// A tracker for a gate started at `started` (unix seconds).
    pub fn new(started: i64) -> JobTracker {
        JobTracker {
            started,
            counted: HashMap::new(),
        }
    }

    /// Counts `jobs`, listed at `now`.
    pub fn observe(&mut self, jobs: &[SlurmJob], now: i64) -> Observed {
        let mut observed = Observed::default();
        let mut listed = HashSet::new();
        for job in jobs {
            let Some(marker) = &job.marker else {
                continue;
            };
            let Some(run_seconds) = job.run_seconds else {
                continue;
            };
            if job.state == "PENDING" || run_seconds == 0 {
                continue;
            }
            listed.insert(job.id.clone());
            let to = if job.is_active() {
                now
            } else {
                job.end.unwrap_or(now).min(now)
            };
            let before = self.counted.insert(job.id.clone(), run_seconds);
            let seconds = match before {
                // Requeued and started again: its run time started over.
                Some(before) if run_seconds < before => run_seconds,
                Some(before) => run_seconds - before,
                None => {
                    let since_gate = u64::try_from(to - self.started).unwrap_or(0);
                    run_seconds.min(since_gate)
                }
            };
            if job.gpus == 0 {
                if before.is_none() {
                    observed.without_gpus.push(job.id.clone());
                }
                continue;
            }
            let Some(run_id) = &marker.run_id else {
                if before.is_none() {
                    observed.without_run.push(job.id.clone());
                }
                continue;
            };
            if seconds > 0 {
                observed.usage.push(JobUsage {
                    job_id: job.id.clone(),
                    permit_id: marker.permit_id.clone(),
                    run_id: run_id.clone(),
                    gpus: job.gpus,
                    seconds,
                    to,
                    gpu_indices: job.gpu_indices.clone(),
                });
            }
        }
        self.counted.retain(|id, _| listed.contains(id));
        observed
    }
}

/// GPU-seconds of `usage` per (run, permit), with the interval they fall in: from the
/// earliest counted second to the latest.
pub fn by_run(usage: &[JobUsage]) -> BTreeMap<(String, String), (f64, i64, i64)> {
    let mut out: BTreeMap<(String, String), (f64, i64, i64)> = BTreeMap::new();
    for u in usage {
        let from =
            u.to.saturating_sub(i64::try_from(u.seconds).unwrap_or(i64::MAX));
        let entry = out
            .entry((u.run_id.clone(), u.permit_id.clone()))
            .or_insert((0.0, from, u.to));
        entry.0 += u.gpus as f64 * u.seconds as f64;
        entry.1 = entry.1.min(from);
        entry.2 = entry.2.max(u.to);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slurm 22.05's `scontrol show job -o -d` for a running 4-GPU job under a permit.
    const RUNNING: &str = "JobId=12 JobName=wrap UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901748 Nice=0 Account=(null) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 DerivedExitCode=0:0 RunTime=00:01:05 TimeLimit=00:10:00 TimeMin=N/A SubmitTime=2026-01-01T00:00:00 EligibleTime=2026-01-01T00:00:00 AccrueTime=2026-01-01T00:00:00 StartTime=2026-01-01T00:00:01 EndTime=2026-01-01T00:10:01 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-01-01T00:00:01 Scheduler=Main Partition=debug AllocNode:Sid=vm:4242 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* JOB_GRES=gpu:4 Nodes=vm CPU_IDs=0 Mem=1000 GRES=gpu:4(IDX:0-3) MinCPUsNode=1 MinMemoryNode=1000M MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/tmp AdminComment=runpermit:permit=pmt_1;run=run_1 StdErr=/tmp/slurm-12.out StdIn=/dev/null StdOut=/tmp/slurm-12.out Power= TresPerNode=gres:gpu:4";

    #[test]
    fn reads_the_marker_old_and_new() {
        assert_eq!(
            parse_marker("runpermit:permit=pmt_1;run=run_1"),
            Some(Marker {
                permit_id: "pmt_1".into(),
                run_id: Some("run_1".into())
            })
        );
        assert_eq!(
            parse_marker("runpermit:permit=pmt_1"),
            Some(Marker {
                permit_id: "pmt_1".into(),
                run_id: None
            })
        );
        assert_eq!(parse_marker("runpermit:permit="), None);
        assert_eq!(parse_marker("something else"), None);
    }

    #[test]
    fn reads_scontrol_jobs() {
        let text = format!(
            "{RUNNING}\nJobId=13 JobState=PENDING Reason=Priority RunTime=00:00:00 TRES=cpu=1,node=1\nJobId=14 JobState=COMPLETED RunTime=1-00:00:10 StartTime=2026-01-01T00:00:00 EndTime=2026-01-02T00:00:10 AllocTRES=cpu=2,gres/gpu:h100=2,gres/gpu:a100=1 AdminComment=runpermit:permit=pmt_2\nNo jobs in the system\n"
        );
        let jobs = parse_jobs(&text);
        assert_eq!(jobs.len(), 3);
        let j = &jobs[0];
        assert_eq!(j.id, "12");
        assert_eq!(j.state, "RUNNING");
        assert_eq!(j.gpus, 4);
        assert_eq!(j.run_seconds, Some(65));
        assert_eq!(j.start, Some(1_767_225_601));
        assert_eq!(j.end, Some(1_767_226_201));
        assert_eq!(j.marker.as_ref().unwrap().run_id.as_deref(), Some("run_1"));
        assert_eq!(j.gpu_indices, [("vm".to_owned(), vec![0, 1, 2, 3])]);
        assert_eq!(j.gpus_on("vm"), [0, 1, 2, 3]);
        assert!(j.gpus_on("other").is_empty());
        assert_eq!(jobs[1].gpus, 0);
        assert_eq!(jobs[1].marker, None);
        assert_eq!(jobs[2].gpus, 3, "typed GPUs add up");
        assert_eq!(jobs[2].run_seconds, Some(86_410));
        assert!(!jobs[2].is_active());
    }

    #[test]
    fn small_parsers() {
        assert_eq!(gpus_in_tres("cpu=1,gres/gpu=8,gres/gpu:h100=8"), 8);
        assert_eq!(gpus_in_tres("cpu=1,node=1"), 0);
        assert_eq!(gpus_in_gres("gpu:4"), 4);
        assert_eq!(gpus_in_gres("gpu:h100:2,gpu:a100:1,mps:100"), 3);
        assert_eq!(gpus_in_gres("gpu"), 1);
        assert_eq!(gpus_in_gres("(null)"), 0);
        assert_eq!(parse_duration("00:00:05"), Some(5));
        assert_eq!(parse_duration("10:05"), Some(605));
        assert_eq!(parse_duration("2-01:00:00"), Some(2 * 86_400 + 3600));
        assert_eq!(parse_duration("INVALID"), None);
        assert_eq!(parse_utc("1970-01-01T00:00:00"), Some(0));
        assert_eq!(parse_utc("2024-02-29T12:00:00"), Some(1_709_208_000));
        assert_eq!(parse_utc("Unknown"), None);
        // Out of range is unreadable, never an overflow (found by the slurm_jobs fuzz target).
        assert_eq!(parse_duration("999999999999999-00:00:00"), None);
        assert_eq!(parse_utc("2026110000038-01-01T00:00:00"), None);
        assert_eq!(parse_utc("2026-01-01T-5:00:00"), None);
        assert_eq!(parse_utc("9999-12-31T23:59:60"), Some(253_402_300_800));
        assert_eq!(
            gpu_indices_in("gpu:h100:2(IDX:0,2),gpu:a100:1(IDX:5)"),
            [0, 2, 5]
        );
        assert_eq!(gpu_indices_in("mps:100(IDX:0),gpu:1(IDX:3)"), [3]);
        assert!(gpu_indices_in("gpu:0").is_empty());
        assert!(hostlist_contains("gpu[001-004,010]", "gpu003"));
        assert!(hostlist_contains("gpu[001-004,010]", "gpu010"));
        assert!(!hostlist_contains("gpu[001-004,010]", "gpu3"));
        assert!(!hostlist_contains("gpu[001-004,010]", "gpu005"));
        assert!(hostlist_contains("a[1-2],b3", "b3"));
        assert!(hostlist_contains("rack[1-2]-n[1-12]", "rack2-n11"));
        assert!(!hostlist_contains("rack[1-2]-n[1-12]", "rack3-n1"));
        assert!(hostlist_contains("vm", "vm"));
    }

    fn job(id: &str, state: &str, gpus: u64, run: u64, end: Option<i64>) -> SlurmJob {
        SlurmJob {
            id: id.into(),
            state: state.into(),
            marker: Some(Marker {
                permit_id: "pmt_1".into(),
                run_id: Some("run_1".into()),
            }),
            gpus,
            run_seconds: Some(run),
            start: None,
            end,
            gpu_indices: Vec::new(),
        }
    }

    #[test]
    fn the_tracker_counts_each_second_once() {
        let started = 1000;
        let mut t = JobTracker::new(started);
        // Running for an hour when the gate starts: counted from the gate's start.
        let o = t.observe(&[job("1", "RUNNING", 8, 3600 + 60, None)], started + 60);
        assert_eq!(o.usage.len(), 1);
        assert_eq!((o.usage[0].seconds, o.usage[0].to), (60, 1060));
        // A minute later: one more minute; nothing twice.
        let o = t.observe(&[job("1", "RUNNING", 8, 3600 + 120, None)], started + 120);
        assert_eq!(o.usage[0].seconds, 60);
        let o = t.observe(&[job("1", "RUNNING", 8, 3600 + 120, None)], started + 180);
        assert!(o.usage.is_empty(), "suspended: RunTime did not grow");
        // Ended 30 s later: counted up to its end.
        let o = t.observe(
            &[job("1", "COMPLETED", 8, 3600 + 150, Some(started + 210))],
            started + 240,
        );
        assert_eq!((o.usage[0].seconds, o.usage[0].to), (30, 1210));
        // A job that started and ended between two observations counts whole.
        let o = t.observe(
            &[job("2", "COMPLETED", 2, 50, Some(started + 290))],
            started + 300,
        );
        assert_eq!(o.usage[0].seconds, 50);
        let per_run = by_run(&o.usage);
        assert_eq!(
            per_run[&("run_1".into(), "pmt_1".into())],
            (100.0, 1240, 1290)
        );
        // Gone from the listing: forgotten.
        assert!(t.observe(&[], started + 360).usage.is_empty());
        // No GPUs, or no run in the marker: reported once as such, not metered.
        let mut no_run = job("3", "RUNNING", 4, 10, None);
        no_run.marker.as_mut().unwrap().run_id = None;
        let o = t.observe(
            &[job("4", "RUNNING", 0, 10, None), no_run.clone()],
            started + 400,
        );
        assert!(o.usage.is_empty());
        assert_eq!(o.without_gpus, ["4"]);
        assert_eq!(o.without_run, ["3"]);
        let o = t.observe(&[job("4", "RUNNING", 0, 20, None), no_run], started + 410);
        assert!(o.without_gpus.is_empty() && o.without_run.is_empty());
    }
}
