//! Review decisions: approve (the top tier needs two distinct reviewers), deny, request
//! changes. Nobody reviews their own organization's application.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use runpermit_store::Review;
use serde::{Deserialize, Serialize};

use crate::domain::Caller;
use crate::domain::applications::visible;
use crate::domain::audit::rfc3339;
use crate::domain::reviews;
use crate::http::authz::{self};
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes::applications::{ApplicationView, view};
use crate::http::state::AppState;
use runpermit_types::ReviewDecision;

/// `POST /v1/applications/{id}/reviews` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    /// approve, deny or request_changes.
    pub decision: ReviewDecision,
    /// Why: recorded, audited and shown to the applicant.
    pub reason: String,
    /// Conditions attached to an approval; they become the permit's `conditions`.
    #[serde(default)]
    pub conditions: Vec<String>,
    /// Evaluator organizations (ids) assigned with an approval: the permit names those of
    /// every approval of the round (the policy's `[oversight] evaluators` when none names
    /// any), and only they see the run and decide its milestone reports.
    #[serde(default)]
    pub evaluators: Vec<String>,
}

/// A review as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReviewView {
    /// Id.
    pub id: String,
    /// Reviewer member id.
    pub reviewer_id: String,
    /// Reviewer organization.
    pub reviewer_org_id: String,
    /// start, approve, deny or request_changes.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Conditions.
    pub conditions: Vec<String>,
    /// Evaluator organizations assigned with an approval.
    pub evaluators: Vec<String>,
    /// Policy version in force.
    pub policy_version: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<Review> for ReviewView {
    fn from(r: Review) -> Self {
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
}

pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewReview>,
) -> Result<(StatusCode, Json<ApplicationView>), ApiError> {
    authz::REVIEWS_CREATE.authorize(&caller)?;
    let app = reviews::decide(
        &state,
        &caller,
        &id,
        reviews::Decision {
            decision: body.decision,
            reason: body.reason,
            conditions: body.conditions,
            evaluators: body.evaluators,
        },
    )
    .await?;
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
    Ok(Json(reviews.into_iter().map(Into::into).collect()))
}
