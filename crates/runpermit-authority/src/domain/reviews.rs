//! Review decisions on an application: approve (the top tier needs distinct reviewers, by
//! `approval_outcome`), deny, request changes. Nobody reviews their own organization's
//! application; an approval that completes the round decides the permit's intent in the same
//! batch, and the permit is signed and logged after it commits.

use runpermit_compute::text::MAX_REASON_CHARS;
use runpermit_policy::workflow::{Action, Approval, ApprovalOutcome, Status, approval_outcome};
use runpermit_store::{Application, Review, Write};
use runpermit_types::{OrgKind, Problems, ReviewDecision};
use serde_json::json;

use crate::domain::applications::{self as lifecycle, visible};
use crate::domain::audit::event;
use crate::domain::error::reason;
use crate::domain::ids::new_id;
use crate::domain::{Authority, Caller, DomainError};

/// A reviewer's decision, as read from the request (the API's request body).
pub use runpermit_api::reviews::NewReview as Decision;

/// Most evaluator organizations one approval may name.
const MAX_EVALUATORS: usize = 16;

/// Problems with the evaluators a review names: each must be an evaluator organization,
/// named once, and only an approval assigns any.
async fn check_evaluators(
    state: &Authority,
    body: &Decision,
    problems: &mut Problems,
) -> Result<(), DomainError> {
    if body.evaluators.is_empty() {
        return Ok(());
    }
    if body.decision != ReviewDecision::Approve {
        problems.push(
            "evaluators",
            format!(
                "evaluators are assigned with an approval only (this review is {})",
                body.decision.as_str()
            ),
        );
        return Ok(());
    }
    if body.evaluators.len() > MAX_EVALUATORS {
        problems.push(
            "evaluators",
            format!(
                "at most {MAX_EVALUATORS} evaluator organizations (got {})",
                body.evaluators.len()
            ),
        );
        return Ok(());
    }
    for (i, id) in body.evaluators.iter().enumerate() {
        let field = format!("evaluators[{i}]");
        if body.evaluators[..i].contains(id) {
            problems.push(&field, format!("{id:?} is named twice"));
            continue;
        }
        match state.store.organization(id).await? {
            Some(org) if org.kind == OrgKind::Evaluator => {}
            Some(org) => problems.push(
                &field,
                format!(
                    "{id} is {} organization, not an evaluator organization",
                    runpermit_types::names::with_article(org.kind.as_str())
                ),
            ),
            None => problems.push(&field, format!("no evaluator organization {id:?}")),
        }
    }
    Ok(())
}

/// The union, in order, of the string lists stored as JSON in `lists`.
fn union<'a>(lists: impl Iterator<Item = &'a str>) -> Vec<String> {
    lists
        .flat_map(|json| serde_json::from_str::<Vec<String>>(json).unwrap_or_default())
        .fold(Vec::new(), |mut all, item| {
            if !all.contains(&item) {
                all.push(item);
            }
            all
        })
}

/// Approvals of the current round: those after the latest deny or request for changes.
fn current_round(reviews: &[Review]) -> Vec<&Review> {
    let start = reviews
        .iter()
        .rposition(|r| r.decision == "deny" || r.decision == "request_changes")
        .map_or(0, |i| i + 1);
    reviews[start..]
        .iter()
        .filter(|r| r.decision == "approve")
        .collect()
}

/// The public reason of an approval: with one approval, its reason; with several (the top
/// tier's two reviewers), every approving reviewer's reason in the order they approved, so
/// that the log's decision entry says why each of them approved, not only the last.
fn round_reasons(round: &[&Review]) -> String {
    if let [only] = round {
        return only.reason.clone();
    }
    round
        .iter()
        .enumerate()
        .map(|(i, r)| format!("reviewer {} of {}: {}", i + 1, round.len(), r.reason))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Records `caller`'s review `body` of application `id` and what follows from it: the review
/// opens when the application was submitted or appealed; changes requested or a denial move it
/// at once; an approval counts towards the round and, when the round is complete, approves it
/// and issues its permit. Returns the application as stored.
pub async fn decide(
    state: &Authority,
    caller: &Caller,
    id: &str,
    body: Decision,
) -> Result<Application, DomainError> {
    let reason = reason("reason", &body.reason)?;
    let reason = reason.as_str();
    let mut problems = Problems::default();
    for (i, c) in body.conditions.iter().enumerate() {
        problems.text(&format!("conditions[{i}]"), c, MAX_REASON_CHARS, false);
    }
    check_evaluators(state, &body, &mut problems).await?;
    problems.check()?;
    let mut app = visible(state, caller, id).await?;
    if app.org_id == caller.org_id {
        return Err(DomainError::Forbidden(
            "separation of duties: nobody reviews their own organization's application".into(),
        ));
    }
    let expected_version = app.version;
    let now = state.clock.now_ms();
    let mut writes = Vec::new();
    if matches!(app.status, Status::Submitted | Status::Appealed) {
        writes.extend(lifecycle::transition_writes(
            state,
            caller,
            &mut app,
            Action::StartReview,
            "application.review_start",
            None,
        )?);
    }
    let review = Review {
        id: new_id("rev"),
        application_id: app.id.clone(),
        reviewer_id: caller.member_id.clone(),
        reviewer_org_id: caller.org_id.clone(),
        decision: body.decision.as_str().to_owned(),
        reason: reason.to_owned(),
        conditions_json: serde_json::to_string(&body.conditions).unwrap_or_else(|_| "[]".into()),
        evaluators_json: serde_json::to_string(&body.evaluators).unwrap_or_else(|_| "[]".into()),
        policy_version: state.policy.version.clone(),
        created_at: now,
    };
    let subject = format!("application/{}", app.id);
    let mut permit = None;
    match body.decision {
        ReviewDecision::RequestChanges => writes.extend(lifecycle::transition_writes(
            state,
            caller,
            &mut app,
            Action::RequestChanges,
            "application.request_changes",
            Some(reason),
        )?),
        ReviewDecision::Deny => writes.extend(lifecycle::transition_writes(
            state,
            caller,
            &mut app,
            Action::Deny,
            "application.deny",
            Some(reason),
        )?),
        ReviewDecision::Approve => {
            if app.status != Status::UnderReview {
                return Err(DomainError::Conflict(format!(
                    "{} application cannot be approved; only one under review can",
                    runpermit_types::names::with_article(app.status.as_str())
                )));
            }
            let mut reviews = state.store.reviews(&app.id).await?;
            if current_round(&reviews)
                .iter()
                .any(|r| r.reviewer_id == caller.member_id)
            {
                return Err(DomainError::Conflict(
                    "you have already approved this application; another reviewer must approve"
                        .into(),
                ));
            }
            reviews.push(review.clone());
            let round = current_round(&reviews);
            let approvals: Vec<Approval> = round
                .iter()
                .map(|r| Approval {
                    reviewer_id: r.reviewer_id.clone(),
                    reviewer_org: r.reviewer_org_id.clone(),
                })
                .collect();
            let required = u32::try_from(app.approvals_required.max(1)).unwrap_or(u32::MAX);
            match approval_outcome(required, &approvals, &app.org_id) {
                ApprovalOutcome::Approved => {
                    let conditions = union(round.iter().map(|r| r.conditions_json.as_str()));
                    let evaluators = union(round.iter().map(|r| r.evaluators_json.as_str()));
                    let reasons = round_reasons(&round);
                    writes.extend(lifecycle::transition_writes(
                        state,
                        caller,
                        &mut app,
                        Action::Approve,
                        "application.approve",
                        Some(&reasons),
                    )?);
                    let plan = lifecycle::stored_plan(&app)?;
                    let estimate = lifecycle::estimate_of(&app)?;
                    let holder = state
                        .store
                        .organization(&app.org_id)
                        .await?
                        .map(|o| o.name)
                        .unwrap_or_default();
                    // What the organization was permitted since submission counts too, and
                    // a plan permitted meanwhile is not permitted twice.
                    let replaces = lifecycle::plan_claim(state, &app).await?;
                    let prior = lifecycle::prior_compute(state, &app.org_id, &plan).await?;
                    let pending = crate::domain::permits::pending_permit(
                        state,
                        &app,
                        (&plan, &estimate, &prior),
                        &holder,
                        conditions,
                        evaluators,
                        replaces,
                    )?;
                    writes.extend(crate::domain::permits::intent_writes(
                        state, &app, &pending,
                    )?);
                    permit = Some(pending);
                }
                ApprovalOutcome::NeedsMore { have, need } => writes.push(event(
                    Some(caller),
                    now,
                    "application.approval",
                    &subject,
                    Some(reason),
                    json!({"approvals": have, "required": need}),
                )),
                ApprovalOutcome::Rejected(why) => return Err(DomainError::Forbidden(why)),
            }
        }
    }
    let mut batch = vec![
        Write::UpdateApplication {
            application: app.clone(),
            expected_version,
        },
        Write::InsertReview(review),
    ];
    batch.extend(writes);
    state.store.commit(batch).await?;
    if let Some(pending) = permit {
        crate::domain::permits::issue(state, pending).await?;
    }
    visible(state, caller, id).await
}
