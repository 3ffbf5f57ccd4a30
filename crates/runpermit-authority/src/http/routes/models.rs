//! The public model registry and registration by a run's developer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runpermit_api::models::{ModelView, NewModel};
use runpermit_store::{Model, Run};

use crate::domain::audit::rfc3339;
use crate::domain::{Caller, models};
use crate::http::authz;
use crate::http::error::{ApiError, ApiJson};
use crate::http::state::AppState;

/// The API view of a registered model (`run` is its run, for the permit id).
fn view(m: Model, run: Option<&Run>) -> ModelView {
    ModelView {
        permit_id: run.map(|r| r.permit_id.clone()).unwrap_or_default(),
        registered_at: rfc3339(m.registered_at),
        id: m.id,
        name: m.name,
        org_id: m.org_id,
        run_id: m.run_id,
        milestone_id: m.milestone_id,
        checkpoint_digest: m.checkpoint_digest,
        cumulative_flop: m.cumulative_flop,
        release_plan: m.release_plan,
        registered_by: m.registered_by,
    }
}

async fn with_run(state: &AppState, m: Model) -> Result<ModelView, ApiError> {
    let run = state.store.run(&m.run_id).await?;
    Ok(view(m, run.as_ref()))
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewModel>,
) -> Result<(StatusCode, Json<ModelView>), ApiError> {
    authz::MODELS_CREATE.authorize(&caller)?;
    let model = models::register(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(with_run(&state, model).await?)))
}

pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<ModelView>>, ApiError> {
    let mut out = Vec::new();
    for m in models::list(&state).await? {
        out.push(with_run(&state, m).await?);
    }
    Ok(Json(out))
}

pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ModelView>, ApiError> {
    let model = models::get(&state, &id).await?;
    Ok(Json(with_run(&state, model).await?))
}
