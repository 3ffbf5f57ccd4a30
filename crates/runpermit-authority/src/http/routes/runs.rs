//! Permitted runs as they train: status, usage, transitions by reviewers and developers,
//! milestone reports and their evaluation.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runpermit_api::runs::{
    MilestoneView, NewMilestone, ProviderUsage, Reason, RunDetail, RunFlagView, RunUsage, RunView,
    UsageCursor, UsageQuery, UsageReportView,
};
use runpermit_compute::Flop;
use runpermit_policy::{Lifecycle, RunAction, RunActor, UsageFigure};
use runpermit_store::{Milestone, Run};
use serde_json::Value;

use crate::domain::Caller;
use crate::domain::audit::rfc3339;
use crate::domain::permits::signed_permit;
use crate::domain::runs::transitions::{self, Change};
use crate::domain::runs::{milestones, sees_run, usage_figures, visible_run};
use crate::http::authz::{self, Endpoint, OrgKind};
use crate::http::error::{ApiError, ApiJson, ApiQuery};
use crate::http::state::AppState;

/// The endpoint that takes `action` on a run (none for the authority's own).
fn endpoint_of(action: RunAction) -> Option<Endpoint> {
    Some(match action {
        RunAction::Pause => authz::RUNS_PAUSE,
        RunAction::Resume => authz::RUNS_RESUME,
        RunAction::Suspend => authz::RUNS_SUSPEND,
        RunAction::Revoke => authz::RUNS_REVOKE,
        RunAction::Terminate => authz::RUNS_TERMINATE,
        RunAction::Complete => authz::RUNS_COMPLETE,
        RunAction::Appeal => authz::RUNS_APPEAL,
        RunAction::SubmitMilestone => authz::MILESTONES_CREATE,
        RunAction::AcceptMilestone => authz::MILESTONES_ACCEPT,
        RunAction::RejectMilestone => authz::MILESTONES_REJECT,
        RunAction::ReachTrancheEnd => return None,
    })
}

/// Whether `caller`, who sees `run`, may take `action` on it: the endpoint's role rule, the
/// developer's actions for its own organization only, and an evaluator never on its own
/// organization's run (separation of duties).
fn may_take(caller: &Caller, run: &Run, action: RunAction) -> bool {
    let Some(endpoint) = endpoint_of(action) else {
        return false;
    };
    endpoint.allows(Some(caller))
        && match action.actor() {
            RunActor::Developer => run.org_id == caller.org_id,
            RunActor::Evaluator => run.org_id != caller.org_id,
            RunActor::Reviewer => true,
            RunActor::System => false,
        }
}

/// The view of `r` for `caller`, who may see it; `figure` is the one the policy judges
/// tranches on.
pub fn run_view(r: &Run, caller: &Caller, figure: UsageFigure) -> RunView {
    let allowed: Vec<RunAction> = r
        .status
        .allowed_actions()
        .into_iter()
        .filter(|a| *a != RunAction::ReachTrancheEnd)
        .collect();
    fn names<'a>(actions: impl Iterator<Item = &'a RunAction>) -> Vec<String> {
        actions.map(|a| a.as_str().to_owned()).collect()
    }
    RunView {
        id: r.id.clone(),
        permit_id: r.permit_id.clone(),
        org_id: r.org_id.clone(),
        status: r.status.to_string(),
        reason: r.reason.clone(),
        status_since: rfc3339(r.status_since),
        in_good_standing: r.status.in_good_standing(),
        tranche: r.tranche,
        released_flop: r.released_flop,
        budget_flop: r.budget_flop,
        cumulative_flop: r.cumulative_flop,
        cumulative_lower_flop: r.cumulative_lower_flop,
        cumulative_upper_flop: r.cumulative_upper_flop,
        tranche_figure: figure.as_str().to_owned(),
        tranche_percent: if r.released_flop > 0.0 {
            usage_figures(r).get(figure).get() / r.released_flop * 100.0
        } else {
            0.0
        },
        measured_utilization: (r.measured_capacity_flop > 0.0)
            .then(|| r.measured_flop / r.measured_capacity_flop),
        alerted_percent: r.alerted_percent,
        appeal_pending: r.appeal_pending,
        allowed_actions: names(allowed.iter()),
        your_actions: names(allowed.iter().filter(|a| may_take(caller, r, **a))),
        updated_at: rfc3339(r.updated_at),
    }
}

/// The API view of a stored milestone report.
fn milestone_view(m: Milestone) -> MilestoneView {
    MilestoneView {
        evals: serde_json::from_str(&m.evals_json).unwrap_or(Value::Null),
        id: m.id,
        run_id: m.run_id,
        tranche: m.tranche,
        status: m.status.to_string(),
        checkpoint_digest: m.checkpoint_digest,
        cumulative_flop: m.cumulative_flop,
        tokens: m.tokens,
        metered_flop: m.metered_flop,
        operation_count_flop: m.operation_count_flop,
        operation_count_factor: match (m.operation_count_flop, m.metered_flop) {
            (Some(ops), Some(metered)) => match (Flop::new(ops), Flop::new(metered)) {
                (Ok(a), Ok(b)) => Some(runpermit_compute::accounting::disagreement(a, b)),
                _ => None,
            },
            _ => None,
        },
        submitted_by: m.submitted_by,
        submitted_at: rfc3339(m.submitted_at),
        decided_by: m.decided_by,
        decided_org: m.decided_org,
        decided_at: m.decided_at.map(rfc3339),
        reason: m.reason,
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<RunView>>, ApiError> {
    authz::RUNS_LIST.authorize(&caller)?;
    let assigned = matches!(caller.org_kind, OrgKind::Evaluator | OrgKind::Provider);
    let scope = (!caller.is_authority_staff() && !assigned).then_some(caller.org_id.as_str());
    let figure = state.policy.oversight.tranche_figure;
    let mut runs = Vec::new();
    for run in state.store.runs(scope).await? {
        if !assigned || sees_run(&state, &caller, &run).await? {
            runs.push(run_view(&run, &caller, figure));
        }
    }
    Ok(Json(runs))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    authz::RUNS_GET.authorize(&caller)?;
    let run = visible_run(&state, &caller, &id).await?;
    let usage = state.store.usage_by_provider(&run.id).await?;
    let milestones = state
        .store
        .milestones(&run.id)
        .await?
        .into_iter()
        .map(milestone_view)
        .collect();
    let flags = state
        .store
        .run_flags(&run.id)
        .await?
        .into_iter()
        .map(|f| RunFlagView {
            details: serde_json::from_str(&f.details_json).unwrap_or(Value::Null),
            kind: f.kind,
            subject: f.subject,
            raised_at: rfc3339(f.raised_at),
            message: f.message,
        })
        .collect();
    let accounting = signed_permit(&state, &run)
        .await?
        .and_then(|p| p.accounting);
    Ok(Json(RunDetail {
        run: run_view(&run, &caller, state.policy.oversight.tranche_figure),
        usage_by_provider: by_provider(&usage),
        milestones,
        accounting,
        flags,
    }))
}

pub(crate) async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> Result<Json<RunUsage>, ApiError> {
    authz::RUNS_USAGE.authorize(&caller)?;
    let run = visible_run(&state, &caller, &id).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("limit", "must be from 1 to 1000"));
    }
    let after = match (q.after_provider, q.after_seq) {
        (Some(p), Some(s)) => Some((p, s)),
        (None, None) => None,
        _ => {
            return Err(ApiError::field(
                "after_seq",
                "after_provider and after_seq go together",
            ));
        }
    };
    let usage = state.store.usage_by_provider(&run.id).await?;
    let reports = state.store.usage_reports(&run.id, after, limit).await?;
    let next = (reports.len() as i64 == limit)
        .then(|| {
            reports.last().map(|r| UsageCursor {
                after_provider: r.provider_id.clone(),
                after_seq: r.seq,
            })
        })
        .flatten();
    let reports = reports
        .into_iter()
        .map(|r| UsageReportView {
            accelerator_seconds: serde_json::from_str(&r.accelerator_seconds_json)
                .unwrap_or(Value::Null),
            received_at: rfc3339(r.received_at),
            provider_id: r.provider_id,
            seq: r.seq,
            cluster: r.cluster,
            from: r.from_s,
            to: r.to_s,
            method: r.method,
            flop: r.flop,
            flop_lower: r.flop_lower,
            flop_upper: r.flop_upper,
            token: r.token,
        })
        .collect();
    Ok(Json(RunUsage {
        run_id: run.id,
        cumulative_flop: run.cumulative_flop,
        cumulative_lower_flop: run.cumulative_lower_flop,
        cumulative_upper_flop: run.cumulative_upper_flop,
        by_provider: by_provider(&usage),
        reports,
        next,
    }))
}

fn reason_of(body: &Reason) -> Result<String, ApiError> {
    Ok(crate::http::error::reason("reason", &body.reason)?)
}

async fn act(
    state: AppState,
    caller: Caller,
    id: String,
    body: Reason,
    endpoint: Endpoint,
    action: RunAction,
) -> Result<Json<RunView>, ApiError> {
    endpoint.authorize(&caller)?;
    let reason = reason_of(&body)?;
    let run = visible_run(&state, &caller, &id).await?;
    if matches!(action, RunAction::Complete | RunAction::Appeal) && run.org_id != caller.org_id {
        return Err(ApiError::NotFound(format!("no run {id}")));
    }
    let run = transitions::transition(
        &state,
        &run.id,
        Change {
            action,
            reason,
            caller: Some(&caller),
            extra: Vec::new(),
        },
    )
    .await?;
    Ok(Json(run_view(
        &run,
        &caller,
        state.policy.oversight.tranche_figure,
    )))
}

macro_rules! run_actions {
    ($($name:ident => $endpoint:ident, $action:ident;)+) => {
        $(
            pub(crate) async fn $name(
                State(state): State<AppState>,
                caller: Caller,
                Path(id): Path<String>,
                ApiJson(body): ApiJson<Reason>,
            ) -> Result<Json<RunView>, ApiError> {
                act(state, caller, id, body, authz::$endpoint, RunAction::$action).await
            }
        )+
    };
}

run_actions! {
    pause => RUNS_PAUSE, Pause;
    resume => RUNS_RESUME, Resume;
    suspend => RUNS_SUSPEND, Suspend;
    revoke => RUNS_REVOKE, Revoke;
    terminate => RUNS_TERMINATE, Terminate;
    complete => RUNS_COMPLETE, Complete;
    appeal => RUNS_APPEAL, Appeal;
}

/// The largest milestone report body, in bytes (12 MiB): room for Inspect logs as base64
/// (each at most `runpermit_policy::inspect::MAX_LOG_BYTES`); other bodies keep the smaller
/// default.
pub const MAX_MILESTONE_BODY_BYTES: usize = 12 * 1024 * 1024;

pub(crate) async fn create_milestone(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewMilestone>,
) -> Result<(StatusCode, Json<MilestoneView>), ApiError> {
    authz::MILESTONES_CREATE.authorize(&caller)?;
    let milestone = milestones::submit(&state, &caller, &id, body).await?;
    Ok((StatusCode::CREATED, Json(milestone_view(milestone))))
}

pub(crate) async fn list_milestones(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<MilestoneView>>, ApiError> {
    authz::MILESTONES_LIST.authorize(&caller)?;
    let run = visible_run(&state, &caller, &id).await?;
    Ok(Json(
        state
            .store
            .milestones(&run.id)
            .await?
            .into_iter()
            .map(milestone_view)
            .collect(),
    ))
}

async fn decide(
    state: AppState,
    caller: Caller,
    id: String,
    body: Reason,
    accept: bool,
) -> Result<Json<MilestoneView>, ApiError> {
    let endpoint = if accept {
        authz::MILESTONES_ACCEPT
    } else {
        authz::MILESTONES_REJECT
    };
    endpoint.authorize(&caller)?;
    let reason = reason_of(&body)?;
    let decided = milestones::decide(&state, &caller, &id, accept, reason).await?;
    Ok(Json(milestone_view(decided)))
}

pub(crate) async fn accept_milestone(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<MilestoneView>, ApiError> {
    decide(state, caller, id, body, true).await
}

pub(crate) async fn reject_milestone(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<MilestoneView>, ApiError> {
    decide(state, caller, id, body, false).await
}

/// Cumulative usage of a run by provider, as the API shows it.
pub fn by_provider(usage: &[runpermit_store::ProviderUsage]) -> BTreeMap<String, ProviderUsage> {
    usage
        .iter()
        .map(|p| {
            (
                p.provider_id.clone(),
                ProviderUsage {
                    reports: p.reports,
                    max_seq: p.max_seq,
                    missing_reports: (p.max_seq - p.reports).max(0),
                    flop: p.flop,
                    flop_lower: p.flop_lower,
                    flop_upper: p.flop_upper,
                    from: p.first_from_s,
                    through: p.last_to_s,
                },
            )
        })
        .collect()
}
