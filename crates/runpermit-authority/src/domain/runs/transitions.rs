//! Run transitions: a reviewer's, developer's or evaluator's action on a run ([`transition`])
//! and the authority's own on metered usage ([`evaluate_run`]: alerts, `milestone_due` at the
//! released tranche's end, an `overrun` incident beyond the tolerance). Each is one
//! transaction with its audit event and public log entry, retried on a concurrent change.

use runpermit_compute::{Flop, format_flop};
use runpermit_log::LogEntry;
use runpermit_policy::Lifecycle;
use runpermit_policy::{
    OVERRUN_CATEGORY, RunAction, RunStatus, UsageFigure, next_tranche, run_next, tranche_progress,
};
use runpermit_store::{Incident, Run, Write};
use runpermit_types::IncidentStatus;
use serde_json::json;

use super::flags;
use super::{released, usage_figures};
use crate::domain::Authority;
use crate::domain::audit::event;
use crate::domain::caller::Caller;
use crate::domain::error::DomainError;
use crate::domain::ids::new_id;
use crate::domain::log as tlog;
use crate::domain::permits::signed_permit;

/// How many times a run transition is retried when the run changed meanwhile.
const CAS_ATTEMPTS: usize = 8;

/// The run's tranche ends, from its permit's claims.
async fn tranche_ends(state: &Authority, run: &Run) -> Result<Vec<Flop>, DomainError> {
    let permit = signed_permit(state, run).await?.ok_or_else(|| {
        DomainError::Conflict(format!(
            "permit {} of run {} is decided but not yet signed",
            run.permit_id, run.id
        ))
    })?;
    Ok(permit.tranches.iter().map(|t| t.flop).collect())
}

/// The log entry that announces `run` entering `status` (None for changes the public log
/// does not record).
fn transition_entry(run: &Run, status: RunStatus, reason: &str) -> Option<LogEntry> {
    let permit_id = run.permit_id.clone();
    let run_id = run.id.clone();
    let reason = reason.to_owned();
    Some(match status {
        RunStatus::Active => LogEntry::RunResumed {
            permit_id,
            run_id,
            reason,
        },
        RunStatus::MilestoneDue | RunStatus::Paused => LogEntry::RunPaused {
            permit_id,
            run_id,
            reason,
        },
        RunStatus::Suspended => LogEntry::RunPaused {
            permit_id,
            run_id,
            reason: format!("suspended: {reason}"),
        },
        RunStatus::Revoked => LogEntry::RunRevoked {
            permit_id,
            run_id,
            reason,
        },
        RunStatus::Terminated => LogEntry::RunRevoked {
            permit_id,
            run_id,
            reason: format!("terminated: {reason}"),
        },
        RunStatus::Completed => LogEntry::RunCompleted {
            permit_id,
            run_id,
            reason,
        },
    })
}

/// A change to a run: the action, its reason, and writes that go with it in the same batch.
#[derive(Debug)]
pub struct Change<'a> {
    /// The action (checked against the run's status by `run_next`).
    pub action: RunAction,
    /// Why, in words (audited, logged, shown on the status list).
    pub reason: String,
    /// Who, if a person.
    pub caller: Option<&'a Caller>,
    /// More writes for the same transaction (a milestone decision, an incident).
    pub extra: Vec<Write>,
}

/// Applies `change` to the run `run_id` as one transaction: status (by `run_next`), tranche
/// release on an accepted milestone, audit event, public log entry. Retries when the run
/// changed meanwhile. After a resumption or an accepted milestone the run is evaluated
/// against its released tranche at once ([`evaluate_run`]). Returns the run as stored.
pub async fn transition(
    state: &Authority,
    run_id: &str,
    change: Change<'_>,
) -> Result<Run, DomainError> {
    for _ in 0..CAS_ATTEMPTS {
        let run = state
            .store
            .run(run_id)
            .await?
            .ok_or_else(|| DomainError::NotFound(format!("no run {run_id}")))?;
        let from = run.status;
        let to = run_next(from, change.action).map_err(|e| DomainError::Conflict(e.to_string()))?;
        let now = state.clock.now_ms();
        let mut next = run.clone();
        let mut writes = Vec::new();
        let subject = format!("run/{}", run.id);
        let mut log_reason = change.reason.clone();
        match change.action {
            RunAction::AcceptMilestone => {
                let ends = tranche_ends(state, &run).await?;
                let (tranche, end) =
                    next_tranche(&ends, u32::try_from(run.tranche).unwrap_or(u32::MAX))
                        .ok_or_else(|| {
                            DomainError::Conflict(format!(
                                "run {} has used its permit's whole budget ({:e} FLOP): no tranche \
                                 is left to release; complete the run or apply for more compute",
                                run.id, run.budget_flop
                            ))
                        })?;
                next.tranche = i64::from(tranche);
                next.released_flop = end.get();
                next.alerted_percent = 0;
                writes.push(tlog::queue(
                    &subject,
                    &LogEntry::TrancheReleased {
                        permit_id: run.permit_id.clone(),
                        run_id: run.id.clone(),
                        tranche,
                        flop: end,
                    },
                    now,
                )?);
                log_reason = format!("milestone {} accepted: {}", run.tranche, change.reason);
            }
            RunAction::RejectMilestone => {
                log_reason = format!("milestone {} rejected: {}", run.tranche, change.reason);
            }
            _ => {}
        }
        match change.action {
            RunAction::Appeal => next.appeal_pending = true,
            RunAction::Resume | RunAction::Revoke | RunAction::Terminate => {
                next.appeal_pending = false;
            }
            _ => {}
        }
        if to != from {
            next.status = to;
            next.reason = log_reason.clone();
            next.status_since = now;
            if let Some(entry) = transition_entry(&run, to, &log_reason) {
                writes.push(tlog::queue(&subject, &entry, now)?);
            }
        }
        next.updated_at = now;
        writes.push(event(
            change.caller,
            now,
            &format!("run.{}", change.action),
            &subject,
            Some(&change.reason),
            json!({"from": from, "to": to, "tranche": next.tranche, "released_flop": next.released_flop,
                   "cumulative_flop": run.cumulative_flop}),
        ));
        writes.push(Write::UpdateRun {
            run: next.clone(),
            expected_version: run.version,
        });
        writes.extend(change.extra.iter().cloned());
        match state.store.commit(writes).await {
            Ok(()) => {
                next.version = run.version + 1;
                tracing::info!(run = %run.id, action = %change.action, %from, %to, "run transition");
                if change.action.changes_status() {
                    metrics::counter!("runpermit_run_transitions_total", "to" => to.as_str())
                        .increment(1);
                }
                if matches!(
                    change.action,
                    RunAction::Resume | RunAction::AcceptMilestone
                ) {
                    // The follow-up belongs to the transition: usage may already have passed
                    // the tranche a run resumes in, or the one just released.
                    evaluate_run(state, &run.id).await?;
                    return state
                        .store
                        .run(&run.id)
                        .await?
                        .ok_or_else(|| DomainError::Internal(format!("run {} vanished", run.id)));
                }
                return Ok(next);
            }
            Err(runpermit_store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Conflict(format!(
        "run {run_id} kept changing; try again"
    )))
}

/// Compares `run_id`'s cumulative usage with its released tranche and acts: alerts at the
/// policy's percentages (audited), `milestone_due` at the tranche's end (audited, logged, on
/// the status list), and an `overrun` incident beyond the tolerance. Idempotent: each
/// alert, transition and incident happens once per tranche.
pub async fn evaluate_run(state: &Authority, run_id: &str) -> Result<(), DomainError> {
    for _ in 0..CAS_ATTEMPTS {
        let Some(run) = state.store.run(run_id).await? else {
            return Ok(());
        };
        let status = run.status;
        if status.is_final() {
            return Ok(());
        }
        let oversight = &state.policy.oversight;
        let figure = oversight.tranche_figure;
        let progress = tranche_progress(
            oversight,
            released(run.released_flop),
            &usage_figures(&run),
            u32::try_from(run.alerted_percent).unwrap_or(0),
        );
        let judged = progress.judged.get();
        let now = state.clock.now_ms();
        let subject = format!("run/{}", run.id);
        let overrun_open = match progress.overrun {
            Some(_) => has_overrun_incident(state, &run).await?,
            None => true,
        };
        let due = progress.reached_end && status == RunStatus::Active;
        let flags = flags::new_flags(state, &run, &progress, now).await?;
        if progress.new_alerts.is_empty() && !due && overrun_open && flags.is_empty() {
            return Ok(());
        }
        let mut next = run.clone();
        let mut writes = Vec::new();
        for pct in &progress.new_alerts {
            tracing::warn!(run = %run.id, percent = pct, tranche = run.tranche, "tranche usage alert");
            writes.push(event(
                None,
                now,
                "run.alert",
                &subject,
                Some(&format!(
                    "usage reached {pct}% of tranche {} ({} {} of {})",
                    run.tranche,
                    figure_words(figure),
                    format_flop(judged),
                    format_flop(run.released_flop)
                )),
                json!({"percent": pct, "tranche": run.tranche, "figure": figure,
                       "judged_flop": judged, "cumulative_flop": run.cumulative_flop,
                       "cumulative_lower_flop": run.cumulative_lower_flop,
                       "cumulative_upper_flop": run.cumulative_upper_flop,
                       "released_flop": run.released_flop}),
            ));
        }
        for flag in flags {
            tracing::warn!(run = %run.id, kind = %flag.kind, subject = %flag.subject, "run flagged: {}", flag.message);
            let details: serde_json::Value =
                serde_json::from_str(&flag.details_json).unwrap_or_default();
            writes.push(event(
                None,
                now,
                "run.flag",
                &subject,
                Some(&flag.message),
                json!({"kind": flag.kind, "subject": flag.subject, "details": details}),
            ));
            writes.push(Write::InsertRunFlag(flag));
        }
        next.alerted_percent = i64::from(progress.alerted);
        if due {
            let last = i64::try_from(tranche_ends(state, &run).await?.len()).unwrap_or(0);
            let reason = if run.tranche >= last {
                format!(
                    "the permit's whole budget is used ({} {} of {}): no further work is \
                     admitted",
                    figure_words(figure),
                    format_flop(judged),
                    format_flop(run.budget_flop)
                )
            } else {
                format!(
                    "milestone {} due: usage ({}) {} reached the end of tranche {} ({}); submit \
                     the milestone evaluation report",
                    run.tranche,
                    figure_words(figure),
                    format_flop(judged),
                    run.tranche,
                    format_flop(run.released_flop)
                )
            };
            next.status = RunStatus::MilestoneDue;
            next.reason = reason.clone();
            next.status_since = now;
            writes.push(tlog::queue(
                &subject,
                &LogEntry::RunPaused {
                    permit_id: run.permit_id.clone(),
                    run_id: run.id.clone(),
                    reason: reason.clone(),
                },
                now,
            )?);
            writes.push(event(
                None,
                now,
                "run.reach_tranche_end",
                &subject,
                Some(&reason),
                json!({"from": status, "to": RunStatus::MilestoneDue, "tranche": run.tranche,
                       "figure": figure, "judged_flop": judged,
                       "cumulative_flop": run.cumulative_flop, "released_flop": run.released_flop}),
            ));
        }
        if let (Some(excess), false) = (progress.overrun, overrun_open) {
            let incident = overrun_incident(state, &run, excess, now);
            writes.push(event(
                None,
                now,
                "incident.open",
                &format!("incident/{}", incident.id),
                Some(&incident.summary),
                json!({"category": OVERRUN_CATEGORY, "run_id": run.id, "excess_flop": excess}),
            ));
            writes.push(Write::InsertIncident(incident));
        }
        next.updated_at = now;
        writes.push(Write::UpdateRun {
            run: next,
            expected_version: run.version,
        });
        let flag_kinds: Vec<String> = writes
            .iter()
            .filter_map(|w| match w {
                Write::InsertRunFlag(f) => Some(f.kind.clone()),
                _ => None,
            })
            .collect();
        match state.store.commit(writes).await {
            Ok(()) => {
                for pct in &progress.new_alerts {
                    metrics::counter!("runpermit_tranche_alerts_total", "percent" => pct.to_string())
                        .increment(1);
                }
                for kind in &flag_kinds {
                    metrics::counter!("runpermit_run_flags_total", "kind" => kind.clone())
                        .increment(1);
                }
                if due {
                    metrics::counter!("runpermit_run_transitions_total", "to" => "milestone_due")
                        .increment(1);
                }
                return Ok(());
            }
            Err(runpermit_store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Conflict(format!(
        "run {run_id} kept changing while it was evaluated"
    )))
}

/// How a usage figure is named in reasons and audit messages.
pub(crate) fn figure_words(figure: UsageFigure) -> &'static str {
    match figure {
        UsageFigure::Central => "central estimate",
        UsageFigure::Lower => "lower bound",
        UsageFigure::Upper => "upper bound",
    }
}

/// Whether the run's current tranche already has its overrun incident (one per tranche).
async fn has_overrun_incident(state: &Authority, run: &Run) -> Result<bool, DomainError> {
    Ok(state
        .store
        .incidents(Some(&run.org_id))
        .await?
        .iter()
        .any(|i| {
            i.category == OVERRUN_CATEGORY
                && i.run_id.as_deref() == Some(run.id.as_str())
                && i.tranche == Some(run.tranche)
        }))
}

fn overrun_incident(state: &Authority, run: &Run, excess: Flop, now: i64) -> Incident {
    let hours = state
        .policy
        .incident_category(OVERRUN_CATEGORY)
        .map_or(24, |c| c.follow_up_within_hours);
    Incident {
        id: new_id("inc"),
        org_id: run.org_id.clone(),
        reported_by: "authority".into(),
        run_id: Some(run.id.clone()),
        category: OVERRUN_CATEGORY.into(),
        summary: format!(
            "run {} used {} beyond its released tranche {} ({}) by its {}, more than the \
             policy's tolerance of {}%",
            run.id,
            format_flop(excess.get()),
            run.tranche,
            format_flop(run.released_flop),
            figure_words(state.policy.oversight.overrun_figure),
            state.policy.oversight.overrun_tolerance * 100.0
        ),
        details_json: json!({"excess_flop": excess,
                             "figure": state.policy.oversight.overrun_figure,
                             "cumulative_flop": run.cumulative_flop,
                             "cumulative_lower_flop": run.cumulative_lower_flop,
                             "cumulative_upper_flop": run.cumulative_upper_flop,
                             "released_flop": run.released_flop})
        .to_string(),
        occurred_at: now,
        reported_at: now,
        follow_up_due: now + i64::from(hours) * 3_600_000,
        followed_up_at: None,
        follow_up: None,
        status: IncidentStatus::Open,
        tranche: Some(run.tranche),
    }
}
