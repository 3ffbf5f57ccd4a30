//! The model registry: a permitted run's developer registers the models it produced (name,
//! checkpoint digest, the run and milestone they came from, cumulative training compute,
//! release plan). Registration is audited and written to the public log (`model_registered`);
//! the registry is public, like permits. Structured access grants name registered models.

use runpermit_log::LogEntry;
use runpermit_store::{Model, Write};
use runpermit_types::Problems;
use runpermit_types::text::{MAX_NAME_CHARS, MAX_REASON_CHARS};
use serde_json::json;

use crate::domain::audit::event;
use crate::domain::ids::new_id;
use crate::domain::log as tlog;
use crate::domain::runs::milestones::check_digest;
use crate::domain::runs::visible_run;
use crate::domain::{Authority, Caller, DomainError};

/// A model as its developer registers it (the API's request body).
pub use runpermit_api::models::NewModel as Registration;

/// The most models one listing returns.
pub const MAX_LISTED: i64 = 1000;

/// Registers `registration` by `caller`, a member of the run's holding organization: every
/// invalid field is named; a run of another organization is refused exactly as one that does
/// not exist (422 `run_id`), and so is a milestone report of another run (`milestone_id`); a checkpoint
/// already registered, or a name the organization already uses, is a conflict.
pub async fn register(
    state: &Authority,
    caller: &Caller,
    registration: Registration,
) -> Result<Model, DomainError> {
    let mut problems = Problems::default();
    problems.text("name", &registration.name, MAX_NAME_CHARS, false);
    problems.text(
        "release_plan",
        &registration.release_plan,
        MAX_REASON_CHARS,
        true,
    );
    problems.id("run_id", &registration.run_id);
    if let Some(m) = &registration.milestone_id {
        problems.id("milestone_id", m);
    }
    if let Some(flop) = registration.cumulative_flop
        && let Err(problem) = runpermit_compute::limits::FLOP.check(flop.get())
    {
        problems.push("cumulative_flop", problem);
    }
    if let Err(DomainError::Invalid(errors)) = check_digest(&registration.checkpoint_digest) {
        problems.extend(errors);
    }
    problems.check()?;

    // A run of another organization is refused exactly as an unknown one (as incidents do).
    let no_run = || {
        DomainError::field(
            "run_id",
            format!("no run {} of your organization", registration.run_id),
        )
    };
    let run = match visible_run(state, caller, &registration.run_id).await {
        Ok(run) if run.org_id == caller.org_id => run,
        Ok(_) | Err(DomainError::NotFound(_)) => return Err(no_run()),
        Err(e) => return Err(e),
    };
    if let Some(id) = &registration.milestone_id {
        match state.store.milestone(id).await? {
            Some(m) if m.run_id == run.id => {}
            _ => {
                return Err(DomainError::field(
                    "milestone_id",
                    format!("no milestone report {id} of run {}", run.id),
                ));
            }
        }
    }
    let now = state.clock.now_ms();
    let model = Model {
        id: new_id("mdl"),
        org_id: run.org_id.clone(),
        run_id: run.id.clone(),
        milestone_id: registration.milestone_id,
        name: registration.name.trim().to_owned(),
        checkpoint_digest: registration.checkpoint_digest,
        cumulative_flop: registration
            .cumulative_flop
            .map_or(run.cumulative_flop, |f| f.get()),
        release_plan: registration.release_plan.trim().to_owned(),
        registered_by: caller.member_id.clone(),
        registered_at: now,
    };
    let subject = format!("model/{}", model.id);
    state
        .store
        .commit(vec![
            Write::InsertModel(model.clone()),
            event(
                Some(caller),
                now,
                "model.register",
                &subject,
                None,
                json!({"name": model.name, "run_id": model.run_id,
                       "milestone_id": model.milestone_id,
                       "checkpoint_digest": model.checkpoint_digest,
                       "cumulative_flop": model.cumulative_flop}),
            ),
            tlog::queue(
                &subject,
                &LogEntry::ModelRegistered {
                    run_id: model.run_id.clone(),
                    model_name: model.name.clone(),
                    checkpoint_digest: model.checkpoint_digest.clone(),
                },
                now,
            )?,
        ])
        .await?;
    tracing::info!(model = %model.id, run = %model.run_id, name = %model.name, "model registered");
    Ok(model)
}

/// The model `id`; the registry is public.
pub async fn get(state: &Authority, id: &str) -> Result<Model, DomainError> {
    state
        .store
        .model(id)
        .await?
        .ok_or_else(|| DomainError::NotFound(format!("no model {id}")))
}

/// The registered models, newest first (at most [`MAX_LISTED`]).
pub async fn list(state: &Authority) -> Result<Vec<Model>, DomainError> {
    Ok(state.store.models(MAX_LISTED).await?)
}
