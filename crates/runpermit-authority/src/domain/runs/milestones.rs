//! Milestone reports: the developer submits one at a tranche's end, an evaluator assigned to
//! the run accepts it (the next tranche is released) or rejects it (the run is paused). Each is
//! one run transition with its milestone write, audit event and log entry.

use runpermit_compute::{Flop, format_count, format_flop};
use runpermit_policy::inspect::{
    EvalLogSummary, MAX_LOG_BYTES, parse_eval_log, thresholds_crossed,
};
use runpermit_policy::{RunAction, operation_count_gap};
use runpermit_store::{Milestone, Write};
use runpermit_types::MilestoneStatus;
use runpermit_types::RunFlagKind;
use serde_json::{Value, json};

use super::flags::flag;
use super::transitions::{Change, transition};
use super::{sees_run, visible_run};
use crate::domain::audit::event;
use crate::domain::ids::new_id;
use crate::domain::permits::signed_permit;
use crate::domain::{Authority, Caller, DomainError};

/// The largest evaluation results of a milestone report, as JSON.
pub const MAX_EVALS_BYTES: usize = 256 * 1024;

/// A milestone report as the developer submits it (the API's request body).
pub use runpermit_api::runs::NewMilestone as Report;

/// The most Inspect logs one milestone report carries.
pub const MAX_INSPECT_LOGS: usize = 16;

/// The key of a milestone's evaluation results under which the authority puts what it
/// extracted from the report's Inspect logs.
pub const INSPECT_KEY: &str = "inspect";

/// What the authority reads from each of `logs` (base64 `.eval` files): it parses the bytes
/// itself rather than trust a client's extraction. A file that is not a finished Inspect log,
/// too large, or sent twice is refused, naming which.
fn inspect_results(logs: &[String]) -> Result<Vec<EvalLogSummary>, DomainError> {
    use base64::Engine as _;
    if logs.len() > MAX_INSPECT_LOGS {
        return Err(DomainError::field(
            "inspect_logs",
            format!(
                "at most {MAX_INSPECT_LOGS} logs per report (got {})",
                logs.len()
            ),
        ));
    }
    let mut out: Vec<EvalLogSummary> = Vec::with_capacity(logs.len());
    for (i, encoded) in logs.iter().enumerate() {
        let field = format!("inspect_logs[{i}]");
        // Base64 of the largest file accepted, rounded up, before decoding anything.
        if encoded.len() > MAX_LOG_BYTES.div_ceil(3) * 4 {
            return Err(DomainError::field(
                &field,
                format!("an Inspect log of at most {MAX_LOG_BYTES} bytes is accepted"),
            ));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| DomainError::field(&field, format!("is not base64: {e}")))?;
        let summary = parse_eval_log(&bytes)
            .map_err(|e| DomainError::field(&field, format!("this .eval file {e}")))?;
        if let Some(j) = out.iter().position(|s| s.digest == summary.digest) {
            return Err(DomainError::field(
                &field,
                format!("is the same file as inspect_logs[{j}] ({})", summary.digest),
            ));
        }
        out.push(summary);
    }
    Ok(out)
}

pub(crate) fn check_digest(digest: &str) -> Result<(), DomainError> {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(DomainError::field(
            "checkpoint_digest",
            format!("must be sha256: and 64 lowercase hex digits (got {digest:?})"),
        ));
    }
    Ok(())
}

/// Submits `report` for run `run_id` by a member of its holding organization: invalid fields
/// are named, a run the caller may not see is not found, and a run with a report already
/// awaiting evaluation is a conflict.
pub async fn submit(
    state: &Authority,
    caller: &Caller,
    run_id: &str,
    report: Report,
) -> Result<Milestone, DomainError> {
    check_digest(&report.checkpoint_digest)?;
    let inspect = inspect_results(&report.inspect_logs)?;
    let mut evals = match report.evals {
        Value::Null if !inspect.is_empty() => serde_json::Map::new(),
        Value::Object(m) if !m.is_empty() || !inspect.is_empty() => m,
        _ => {
            return Err(DomainError::field(
                "evals",
                "must be a JSON object with the evaluation results (by evaluation name), \
                 unless inspect_logs are given",
            ));
        }
    };
    if !inspect.is_empty() {
        if evals.contains_key(INSPECT_KEY) {
            return Err(DomainError::field(
                "evals",
                format!(
                    "the key {INSPECT_KEY:?} is reserved for the results the authority \
                     extracts from inspect_logs; rename it"
                ),
            ));
        }
        evals.insert(
            INSPECT_KEY.into(),
            serde_json::to_value(&inspect)
                .map_err(|e| DomainError::Internal(format!("inspect results: {e}")))?,
        );
    }
    let evals_json = Value::Object(evals).to_string();
    if evals_json.len() > MAX_EVALS_BYTES {
        return Err(DomainError::field(
            "evals",
            format!(
                "must be at most {MAX_EVALS_BYTES} bytes of JSON (got {}); link the full \
                 results and give the scores here",
                evals_json.len()
            ),
        ));
    }
    if let Some(flop) = report.cumulative_flop
        && let Err(problem) = runpermit_compute::limits::FLOP.check(flop.get())
    {
        return Err(DomainError::field("cumulative_flop", problem));
    }
    if let Some(tokens) = report.tokens
        && let Err(problem) = runpermit_compute::limits::TOKENS.check(tokens)
    {
        return Err(DomainError::field("tokens", problem));
    }
    let run = visible_run(state, caller, run_id).await?;
    if run.org_id != caller.org_id {
        return Err(DomainError::NotFound(format!("no run {run_id}")));
    }
    let now = state.clock.now_ms();
    // Operation counting beside the metered figure, with the permit's parameters per token.
    let parameters = signed_permit(state, &run)
        .await?
        .and_then(|p| p.accounting)
        .and_then(|b| b.parameters);
    let operation_count = match (parameters, report.tokens) {
        (Some(n), Some(d)) => Some(
            runpermit_compute::accounting::operation_count(n, d)
                .map_err(|e| DomainError::field("tokens", e.to_string()))?,
        ),
        _ => None,
    };
    let milestone = Milestone {
        id: new_id("mst"),
        run_id: run.id.clone(),
        tranche: run.tranche,
        status: MilestoneStatus::Submitted,
        checkpoint_digest: report.checkpoint_digest,
        cumulative_flop: report
            .cumulative_flop
            .map_or(run.cumulative_flop, |f| f.get()),
        evals_json,
        tokens: report.tokens,
        metered_flop: Some(run.cumulative_flop),
        operation_count_flop: operation_count.map(Flop::get),
        submitted_by: caller.member_id.clone(),
        submitted_at: now,
        decided_by: None,
        decided_org: None,
        decided_at: None,
        reason: None,
    };
    if state
        .store
        .milestones(&run.id)
        .await?
        .iter()
        .any(|m| m.status == MilestoneStatus::Submitted)
    {
        return Err(DomainError::Conflict(format!(
            "run {} already has a milestone report awaiting evaluation",
            run.id
        )));
    }
    let mut extra = vec![
        Write::InsertMilestone(milestone.clone()),
        event(
            Some(caller),
            now,
            "milestone.submit",
            &format!("milestone/{}", milestone.id),
            None,
            json!({"run_id": run.id, "tranche": milestone.tranche,
                   "checkpoint_digest": milestone.checkpoint_digest,
                   "cumulative_flop": milestone.cumulative_flop,
                   "tokens": milestone.tokens,
                   "metered_flop": milestone.metered_flop,
                   "operation_count_flop": milestone.operation_count_flop,
                   "inspect_logs": inspect.iter().map(|l| &l.digest).collect::<Vec<_>>()}),
        ),
    ];
    if let Some(ops) = operation_count {
        let metered = super::used(run.cumulative_flop);
        if let Some(factor) = operation_count_gap(&state.policy.oversight, ops, metered) {
            let gap = flag(
                &run,
                RunFlagKind::OperationCountGap,
                milestone.id.clone(),
                now,
                format!(
                    "milestone report {} of run {}: operation counting (6 × {} parameters × {} \
                     tokens = {}) and the metered central estimate ({}) differ by {factor:.2}×, \
                     more than the policy's tolerance of {:.2}×: the declared utilization, \
                     precision or parameters may not hold",
                    milestone.id,
                    run.id,
                    format_count(parameters.unwrap_or_default()),
                    format_count(report.tokens.unwrap_or_default()),
                    format_flop(ops.get()),
                    format_flop(metered.get()),
                    1.0 + state.policy.oversight.operation_count_tolerance
                ),
                json!({"milestone_id": milestone.id, "operation_count_flop": ops,
                       "metered_flop": metered, "factor": factor,
                       "parameters": parameters, "tokens": report.tokens}),
            );
            extra.push(event(
                None,
                now,
                "run.flag",
                &format!("run/{}", run.id),
                Some(&gap.message),
                json!({"kind": gap.kind, "subject": gap.subject, "factor": factor}),
            ));
            extra.push(Write::InsertRunFlag(gap));
        }
    }
    // One flag per report (a flag is raised once per run, kind and subject), naming every
    // threshold crossed.
    let crossings = thresholds_crossed(&state.policy.oversight.evaluation_threshold, &inspect);
    if !crossings.is_empty() {
        let each: Vec<String> = crossings
            .iter()
            .map(|c| {
                format!(
                    "task {:?} on {:?}: {} = {} (scorer {:?}), {} the threshold {} (log {})",
                    c.task,
                    c.model,
                    c.metric,
                    c.value,
                    c.scorer,
                    c.direction,
                    c.threshold,
                    c.digest
                )
            })
            .collect();
        let crossed = flag(
            &run,
            RunFlagKind::EvaluationThresholdCrossed,
            milestone.id.clone(),
            now,
            format!(
                "milestone report {} of run {}: Inspect results crossed the policy's \
                 evaluation thresholds: {}",
                milestone.id,
                run.id,
                each.join("; ")
            ),
            json!({"milestone_id": milestone.id, "crossings": crossings}),
        );
        extra.push(event(
            None,
            now,
            "run.flag",
            &format!("run/{}", run.id),
            Some(&crossed.message),
            json!({"kind": crossed.kind, "subject": crossed.subject, "crossings": crossings}),
        ));
        extra.push(Write::InsertRunFlag(crossed));
    }
    // Pre-deployment evaluation access, by rule: the policy's evaluators get an
    // `api_sampling` grant to this checkpoint, signed and logged with the report.
    extra.extend(crate::domain::access::evaluation_grants(state, &run, &milestone, now).await?);
    transition(
        state,
        &run.id,
        Change {
            action: RunAction::SubmitMilestone,
            reason: format!(
                "milestone report {} for tranche {} (checkpoint {})",
                milestone.id, milestone.tranche, milestone.checkpoint_digest
            ),
            caller: Some(caller),
            extra,
        },
    )
    .await?;
    Ok(milestone)
}

/// An evaluator's decision on milestone report `id`: `accept` releases the next tranche,
/// otherwise the run is paused. A report of a run the caller is not assigned to is not found;
/// nobody evaluates their own organization's run; a report is decided once.
pub async fn decide(
    state: &Authority,
    caller: &Caller,
    id: &str,
    accept: bool,
    reason: String,
) -> Result<Milestone, DomainError> {
    let not_found = || DomainError::NotFound(format!("no milestone report {id}"));
    let milestone = state.store.milestone(id).await?.ok_or_else(not_found)?;
    let run = match state.store.run(&milestone.run_id).await? {
        Some(run) if sees_run(state, caller, &run).await? => run,
        _ => return Err(not_found()),
    };
    if run.org_id == caller.org_id {
        return Err(DomainError::Forbidden(
            "separation of duties: nobody evaluates their own organization's run".into(),
        ));
    }
    if milestone.status != MilestoneStatus::Submitted {
        return Err(DomainError::Conflict(format!(
            "milestone report {id} was already {}",
            milestone.status
        )));
    }
    let now = state.clock.now_ms();
    let (status, action) = if accept {
        (MilestoneStatus::Accepted, RunAction::AcceptMilestone)
    } else {
        (MilestoneStatus::Rejected, RunAction::RejectMilestone)
    };
    transition(
        state,
        &run.id,
        Change {
            action,
            reason: reason.clone(),
            caller: Some(caller),
            extra: vec![
                Write::DecideMilestone {
                    id: milestone.id.clone(),
                    status,
                    decided_by: caller.member_id.clone(),
                    decided_org: caller.org_id.clone(),
                    decided_at: now,
                    reason: reason.clone(),
                },
                event(
                    Some(caller),
                    now,
                    &format!("milestone.{}", if accept { "accept" } else { "reject" }),
                    &format!("milestone/{}", milestone.id),
                    Some(&reason),
                    json!({"run_id": run.id, "tranche": milestone.tranche}),
                ),
            ],
        },
    )
    .await?;
    state
        .store
        .milestone(id)
        .await?
        .ok_or_else(|| DomainError::Internal(format!("milestone {id} vanished")))
}
