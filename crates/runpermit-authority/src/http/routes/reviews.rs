//! Review decisions: approve (the top tier needs two distinct reviewers), deny, request
//! changes. Nobody reviews their own organization's application.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runpermit_api::applications::ApplicationView;
use runpermit_api::reviews::{NewReview, ReviewView};
use runpermit_store::Review;

use crate::domain::Caller;
use crate::domain::applications::visible;
use crate::domain::audit::rfc3339;
use crate::domain::reviews;
use crate::http::authz::{self};
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes::applications::view;
use crate::http::state::AppState;

/// The API view of a stored review.
fn review_view(r: Review) -> ReviewView {
    ReviewView {
        conditions: serde_json::from_str(&r.conditions_json).unwrap_or_default(),
        evaluators: serde_json::from_str(&r.evaluators_json).unwrap_or_default(),
        id: r.id,
        reviewer_id: r.reviewer_id,
        reviewer_org_id: r.reviewer_org_id,
        decision: r.decision,
        reason: r.reason,
        policy_version: r.policy_version,
        created_at: rfc3339(r.created_at),
    }
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewReview>,
) -> Result<(StatusCode, Json<ApplicationView>), ApiError> {
    authz::REVIEWS_CREATE.authorize(&caller)?;
    let app = reviews::decide(&state, &caller, &id, body).await?;
    Ok((StatusCode::CREATED, Json(view(&state, app).await?)))
}

pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<ReviewView>>, ApiError> {
    authz::REVIEWS_LIST.authorize(&caller)?;
    let app = visible(&state, &caller, &id).await?;
    let reviews = state.store.reviews(&app.id).await?;
    Ok(Json(reviews.into_iter().map(review_view).collect()))
}
