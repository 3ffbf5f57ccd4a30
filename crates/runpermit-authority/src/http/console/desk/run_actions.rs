//! What a person does to a run from its page: the action form (pause, resume, suspend, revoke,
//! terminate, complete, appeal) and the lab's milestone report form, and their handlers. Every
//! action goes through the handler of its API endpoint, so it is audited with the person as
//! the actor.

use axum::extract::{Path, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_api::runs::{NewMilestone, Reason, RunView};
use serde::Deserialize;

use crate::http::console::desk::widgets::see_other;
use crate::http::console::error::ConsoleError;
use crate::http::console::session::{Submitted, Viewer, csrf_field};
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes;
use crate::http::state::AppState;

/// The run actions the action form offers (milestones have their own forms).
pub const RUN_ACTIONS: &[&str] = &[
    "pause",
    "resume",
    "suspend",
    "revoke",
    "terminate",
    "complete",
    "appeal",
];

pub(super) fn action_form(viewer: &Viewer, run: &RunView) -> Markup {
    let actions: Vec<&str> = run
        .your_actions
        .iter()
        .map(String::as_str)
        .filter(|a| RUN_ACTIONS.contains(a))
        .collect();
    let evaluates = run.your_actions.iter().any(|a| a == "accept_milestone");
    let to_queue = html! {
        @if evaluates {
            p { "Its milestone report awaits your decision: "
                a href="/console/milestones" { "decide it in your queue" } "." }
        }
    };
    if actions.is_empty() {
        return html! {
            (to_queue)
            p.muted { "There is nothing else you may do to this run in its status (" (run.status.replace('_', " ")) ")." }
        };
    }
    html! {
        (to_queue)
        form.stack id="run-action" method="post" action={ "/console/runs/" (run.id) "/action" } {
            (csrf_field(viewer))
            label for="action" { "Action" }
            select id="action" name="action" required {
                option value="" { "Choose…" }
                @for a in &actions { option value=(a) { (a) } }
            }
            label for="run-reason" { "Reason (audited, logged publicly, shown on the status list)" }
            textarea id="run-reason" name="reason" required {}
            button.danger type="submit" { "Act on this run" }
        }
    }
}

pub(super) fn milestone_form(viewer: &Viewer, run: &RunView) -> Markup {
    if !run.your_actions.iter().any(|a| a == "submit_milestone") {
        return html! {};
    }
    html! {
        section aria-labelledby="report-milestone" {
            h2 id="report-milestone" { "Submit a milestone report" }
            p { "For tranche " (run.tranche) ": an evaluator the permit names accepts it (the next tranche is released) or rejects it (the run is paused)." }
            form.stack id="milestone-report" method="post" action={ "/console/runs/" (run.id) "/milestones" } {
                (csrf_field(viewer))
                label for="checkpoint_digest" { "Checkpoint digest (sha256: and 64 hex digits)" }
                input id="checkpoint_digest" name="checkpoint_digest" type="text" required autocomplete="off" spellcheck="false";
                label for="cumulative_flop" { "Compute at the checkpoint (FLOP; empty: the run's metered figure now)" }
                input id="cumulative_flop" name="cumulative_flop" type="text" autocomplete="off";
                label for="tokens" { "Tokens processed up to the checkpoint (optional, for example 4.2e12 or 15.6T): 6 × the permit's parameters per token × tokens is set beside the metered figure for the evaluator" }
                input id="tokens" name="tokens" type="text" inputmode="decimal" autocomplete="off";
                label for="evals" { "Evaluation results, a JSON object by evaluation name (for example {\"cyber-ctf-suite\": {\"score\": 0.12, \"threshold\": 0.5}})" }
                textarea id="evals" name="evals" required spellcheck="false" {}
                button type="submit" { "Submit the milestone report" }
            }
        }
    }
}

/// The action form as posted.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    action: Option<String>,
    reason: Option<String>,
}

fn run_path(id: &str, done: &str) -> String {
    format!(
        "/console/runs/{}?done={done}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// `POST /console/runs/{id}/action`: the handler of `POST /v1/runs/{id}/{action}`.
pub async fn act(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<ActionForm>,
) -> Result<Response, ConsoleError> {
    let caller = submitted.viewer.caller;
    let body = ApiJson(Reason {
        reason: submitted.form.reason.unwrap_or_default(),
    });
    let state = State(state);
    let path = Path(id.clone());
    let _view = match submitted.form.action.as_deref().unwrap_or_default() {
        "pause" => routes::runs::pause(state, caller, path, body).await?,
        "resume" => routes::runs::resume(state, caller, path, body).await?,
        "suspend" => routes::runs::suspend(state, caller, path, body).await?,
        "revoke" => routes::runs::revoke(state, caller, path, body).await?,
        "terminate" => routes::runs::terminate(state, caller, path, body).await?,
        "complete" => routes::runs::complete(state, caller, path, body).await?,
        "appeal" => routes::runs::appeal(state, caller, path, body).await?,
        other => {
            return Err(ApiError::field(
                "action",
                format!(
                    "{other:?} is not a run action: choose one of {}",
                    RUN_ACTIONS.join(", ")
                ),
            )
            .into());
        }
    };
    Ok(see_other(&run_path(&id, "action")))
}

/// The milestone report form as posted.
#[derive(Debug, Deserialize)]
pub struct MilestoneForm {
    checkpoint_digest: Option<String>,
    cumulative_flop: Option<String>,
    tokens: Option<String>,
    evals: Option<String>,
}

impl MilestoneForm {
    /// The API's request body for this form.
    fn report(self) -> Result<NewMilestone, ApiError> {
        let evals_text = self.evals.unwrap_or_default();
        let evals = serde_json::from_str(evals_text.trim()).map_err(|e| {
            ApiError::field(
                "evals",
                format!("must be a JSON object with the evaluation results: {e}"),
            )
        })?;
        let cumulative_flop = match self.cumulative_flop.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(
                text.parse::<runpermit_compute::Flop>()
                    .map_err(|e| ApiError::field("cumulative_flop", e.to_string()))?,
            ),
        };
        let tokens = match self.tokens.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(runpermit_compute::parse_count(text).ok_or_else(|| {
                ApiError::field(
                    "tokens",
                    format!(
                        "{text:?} is not a count of tokens: write it like 4.2e12, 15.6T or 800B"
                    ),
                )
            })?),
        };
        Ok(NewMilestone {
            checkpoint_digest: self.checkpoint_digest.unwrap_or_default().trim().to_owned(),
            cumulative_flop,
            tokens,
            evals,
            inspect_logs: Vec::new(),
        })
    }
}

/// `POST /console/runs/{id}/milestones`: the handler of `POST /v1/runs/{id}/milestones`.
pub async fn submit_milestone(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<MilestoneForm>,
) -> Result<Response, ConsoleError> {
    let body = submitted.form.report()?;
    let _created = routes::runs::create_milestone(
        State(state),
        submitted.viewer.caller,
        Path(id.clone()),
        ApiJson(body),
    )
    .await?;
    Ok(see_other(&run_path(&id, "milestone")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_milestone_form_reads_into_the_apis_body() {
        let form = MilestoneForm {
            checkpoint_digest: Some(format!(" sha256:{} ", "ab".repeat(32))),
            cumulative_flop: Some("1.02e25".into()),
            tokens: Some(" 4.2T ".into()),
            evals: Some("{\"cyber\": {\"score\": 0.1}}".into()),
        };
        let body = form.report().expect("a report");
        assert_eq!(body.tokens, Some(4.2e12));
        assert_eq!(
            body.checkpoint_digest,
            format!("sha256:{}", "ab".repeat(32))
        );
        assert_eq!(body.cumulative_flop.map(|f| f.get()), Some(1.02e25));
        let bad = MilestoneForm {
            checkpoint_digest: None,
            cumulative_flop: None,
            tokens: None,
            evals: Some("cyber: fine".into()),
        };
        match bad.report() {
            Err(ApiError::Invalid(errors)) => assert_eq!(errors[0].field, "evals"),
            other => panic!("{other:?}"),
        }
        let no_tokens = MilestoneForm {
            checkpoint_digest: None,
            cumulative_flop: None,
            tokens: Some("  ".into()),
            evals: Some("{}".into()),
        };
        assert_eq!(no_tokens.report().expect("a report").tokens, None);
        let bad_tokens = MilestoneForm {
            checkpoint_digest: None,
            cumulative_flop: None,
            tokens: Some("lots".into()),
            evals: Some("{}".into()),
        };
        match bad_tokens.report() {
            Err(ApiError::Invalid(errors)) => {
                assert_eq!(errors[0].field, "tokens");
                assert!(errors[0].message.contains("\"lots\""), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
    }
}
