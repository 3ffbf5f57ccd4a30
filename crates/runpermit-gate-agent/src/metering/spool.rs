//! The `spool` collector: scheduler accounting from any scheduler, one JSON record per
//! `*.json` file that the provider's accounting system drops into `spool_dir`, each reported
//! exactly once (the report's journal record carries the file's name and SHA-256, and the
//! file is removed only once that record is durable). A malformed record is moved to
//! `spool_dir/rejected/` with `NAME.error` naming each problem.

use std::path::{Path, PathBuf};

use runpermit_compute::HardwareTable;
use runpermit_gate::{GateParams, SpoolRecord};
use sha2::{Digest, Sha256};

use super::shipper::Shipper;
use super::{Bases, CycleReport, REJECTED_DIR};
use crate::queue::QueueError;

/// The spool directory, and what its records are checked against.
pub(crate) struct SpoolCollector {
    pub(crate) dir: PathBuf,
    provider: String,
    params: GateParams,
}

impl SpoolCollector {
    pub(crate) fn new(dir: PathBuf, params: &GateParams) -> SpoolCollector {
        SpoolCollector {
            dir,
            provider: params.provider_id().to_owned(),
            params: params.clone(),
        }
    }

    /// Meters every `*.json` file in the spool directory, in name order, at `now`, each with
    /// its permit's basis.
    pub(crate) fn collect(
        &self,
        now: i64,
        shipper: &mut Shipper,
        bases: &mut Bases,
        report: &mut CycleReport,
    ) {
        let dir = self.dir.as_path();
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
            if shipper.queue.has_source(&source) {
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
                    let basis = bases.of(&record.run_id, &record.permit_id, report);
                    record
                        .claims(
                            &self.provider,
                            now,
                            HardwareTable::builtin(),
                            basis.as_ref(),
                        )
                        .map_err(|e| vec![e.to_string()])
                });
            let claims = match parsed {
                Ok(claims) => claims,
                Err(problems) => {
                    reject(dir, &name, &problems, report);
                    continue;
                }
            };
            match shipper.enqueue(claims, Some(&source), report) {
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
