//! The reviewer's queue (applications waiting for *my* decision) and the review form's action,
//! which goes through the API's own handler (`POST /v1/applications/{id}/reviews`).

use axum::extract::{Path, State};
use axum::response::Response;
use maud::html;
use runpermit_api::applications::ApplicationView;
use runpermit_api::reviews::{NewReview, ReviewView};
use runpermit_types::ReviewDecision;
use serde::Deserialize;

use crate::domain::Caller;
use crate::http::authz;
use crate::http::console::desk::widgets::{self, see_other};
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::{Submitted, Viewer};
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes;
use crate::http::state::AppState;

/// Application statuses in which a reviewer's decision is awaited.
pub const AWAITING_REVIEW: &[&str] = &["submitted", "under_review", "appealed"];

/// The reviews of the current round: those after the latest denial or request for changes
/// (a resubmission or an appeal opens a new round), as the domain counts approvals.
pub fn current_round(reviews: &[ReviewView]) -> &[ReviewView] {
    let start = reviews
        .iter()
        .rposition(|r| r.decision == "deny" || r.decision == "request_changes")
        .map_or(0, |i| i + 1);
    &reviews[start..]
}

/// Whether `app` waits for `caller`'s decision: awaiting review, not of the caller's own
/// organization, and not already approved by the caller in this round.
pub fn awaits(caller: &Caller, app: &ApplicationView, reviews: &[ReviewView]) -> bool {
    AWAITING_REVIEW.contains(&app.status.as_str())
        && app.org_id != caller.org_id
        && !current_round(reviews)
            .iter()
            .any(|r| r.reviewer_id == caller.member_id)
}

/// The applications waiting for `caller`'s decision, longest waiting first, with their
/// reviews; read as `GET /v1/applications` and `GET /v1/applications/{id}/reviews` answer.
pub async fn waiting(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<(ApplicationView, Vec<ReviewView>)>, ConsoleError> {
    authz::REVIEWS_CREATE.authorize(caller)?;
    authz::APPLICATIONS_LIST.authorize(caller)?;
    // The records first, so that only the applications awaiting review are viewed (a view
    // classifies its plan again); scoped as `GET /v1/applications` is.
    let scope = (!caller.is_authority_staff()).then_some(caller.org_id.as_str());
    let records = state
        .store
        .applications(scope)
        .await
        .map_err(ApiError::from)?;
    let mut out = Vec::new();
    for record in records {
        if !AWAITING_REVIEW.contains(&record.status.as_str())
            || record.org_id == caller.org_id
            || !caller.sees_org(&record.org_id)
        {
            continue;
        }
        let reviews = routes::reviews::list(
            State(state.clone()),
            caller.clone(),
            Path(record.id.clone()),
        )
        .await?
        .0;
        let app = routes::applications::view(state, record).await?;
        if awaits(caller, &app, &reviews) {
            out.push((app, reviews));
        }
    }
    out.sort_by(|a, b| a.0.updated_at.cmp(&b.0.updated_at));
    Ok(out)
}

/// `GET /console/reviews`.
pub async fn queue(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, ConsoleError> {
    let waiting = waiting(&state, &viewer.caller).await?;
    let names = widgets::org_names(&state).await?;
    let now = state.clock.now_ms();
    let body = html! {
        h1 { "Waiting for your review" }
        p { "Applications awaiting review, from organizations other than yours, that you have not yet decided in their current round." }
        @if waiting.is_empty() {
            p id="review-queue-empty" { "Nothing is waiting for your decision." }
        }
        div.table-wrap { table id="review-queue" {
            caption.muted { (waiting.len()) " waiting, longest waiting first" }
            thead { tr {
                th scope="col" { "Application" } th scope="col" { "Organization" }
                th scope="col" { "Run" } th scope="col" { "Tier" }
                th scope="col" class="num" { "Estimate" } th scope="col" { "Status" }
                th scope="col" { "Approvals" } th scope="col" { "Waiting since" }
            } }
            tbody {
                @for (app, reviews) in &waiting {
                    @let approvals = current_round(reviews).iter().filter(|r| r.decision == "approve").count();
                    tr {
                        td { a href={ "/console/applications/" (app.id) } { code { (app.id) } } }
                        td { (widgets::org(&names, &app.org_id)) }
                        td { (app.plan["run"]["name"].as_str().unwrap_or("–")) }
                        td { (app.tier) }
                        td.num { (format::flop(app.estimate.highest_flop().get())) }
                        td { (widgets::badge(&app.status)) }
                        td { (approvals) " of " (app.approvals_required) }
                        td { (widgets::when_text(&app.updated_at, now)) }
                    }
                }
            }
        } }
    };
    Ok(page::respond(Some(&viewer), "Reviews", body))
}

/// The review form as posted.
#[derive(Debug, Deserialize)]
pub struct ReviewForm {
    decision: Option<String>,
    reason: Option<String>,
    /// One condition per line.
    conditions: Option<String>,
    /// Evaluator organization ids, separated by commas, spaces or lines.
    evaluators: Option<String>,
}

impl ReviewForm {
    /// The API's request body for this form.
    fn review(self) -> Result<NewReview, ApiError> {
        let decision = match self.decision.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(ApiError::field(
                    "decision",
                    "choose a decision: approve, deny or request_changes",
                ));
            }
            Some(d) => d
                .parse::<ReviewDecision>()
                .map_err(|e| ApiError::field("decision", e.to_string()))?,
        };
        Ok(NewReview {
            decision,
            reason: self.reason.unwrap_or_default(),
            conditions: widgets::lines(self.conditions.as_deref()),
            evaluators: self
                .evaluators
                .unwrap_or_default()
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        })
    }
}

/// `POST /console/applications/{id}/review`: the same handler as
/// `POST /v1/applications/{id}/reviews`, as the signed-in reviewer.
pub async fn decide(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<ReviewForm>,
) -> Result<Response, ConsoleError> {
    let body = submitted.form.review()?;
    let caller = submitted.viewer.caller;
    let _created =
        routes::reviews::create(State(state), caller, Path(id.clone()), ApiJson(body)).await?;
    Ok(see_other(&format!(
        "/console/applications/{}?done=review",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(reviewer: &str, decision: &str) -> ReviewView {
        ReviewView {
            id: format!("rev_{reviewer}_{decision}"),
            reviewer_id: reviewer.into(),
            reviewer_org_id: "org_authority".into(),
            decision: decision.into(),
            reason: "because".into(),
            conditions: vec![],
            evaluators: vec![],
            policy_version: "p".into(),
            created_at: "2026-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_new_round_starts_after_changes_are_requested() {
        let reviews = [
            review("mem_a", "approve"),
            review("mem_b", "request_changes"),
            review("mem_c", "approve"),
        ];
        let round = current_round(&reviews);
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].reviewer_id, "mem_c");
        assert_eq!(current_round(&reviews[..1]).len(), 1);
    }

    #[test]
    fn the_form_reads_into_the_apis_body() {
        let form = ReviewForm {
            decision: Some("approve".into()),
            reason: Some("fine".into()),
            conditions: Some("report weekly\r\n\nkeep SL4\n".into()),
            evaluators: Some("org_aisi, org_other\norg_third".into()),
        };
        let body = form.review().expect("a review");
        assert_eq!(body.decision, ReviewDecision::Approve);
        assert_eq!(body.conditions, ["report weekly", "keep SL4"]);
        assert_eq!(body.evaluators, ["org_aisi", "org_other", "org_third"]);
        let bad = ReviewForm {
            decision: Some("maybe".into()),
            reason: None,
            conditions: None,
            evaluators: None,
        };
        match bad.review() {
            Err(ApiError::Invalid(errors)) => assert_eq!(errors[0].field, "decision"),
            other => panic!("{other:?}"),
        }
    }
}
