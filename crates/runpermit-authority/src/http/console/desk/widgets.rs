//! Pieces the desk's pages share: times given as RFC 3339 text, status badges, organization
//! names, the answer to a form, and a form's multi-line fields.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// A time the API gives as RFC 3339 text, as the console writes times (UTC, relative); the
/// text itself when it cannot be read.
pub fn when_text(text: &str, now_ms: i64) -> Markup {
    match runpermit_policy::parse_timestamp(text) {
        Ok(s) => format::when_s(s, now_ms),
        Err(_) => html! { (text) },
    }
}

/// Unix seconds of RFC 3339 `text`, if it reads.
pub fn seconds(text: &str) -> Option<i64> {
    runpermit_policy::parse_timestamp(text).ok()
}

/// How a status reads at a glance: good, bad, or waiting on someone.
pub fn tone(status: &str) -> &'static str {
    match status {
        "approved" | "exempt" | "active" | "accepted" | "closed" | "completed" | "issued" => "good",
        "denied" | "revoked" | "terminated" | "suspended" | "rejected" | "withdrawn" => "bad",
        _ => "warn",
    }
}

/// A status as a badge, its words without underscores.
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (tone(status)) } { (status.replace('_', " ")) } }
}

/// Organization names by id: the public directory's (`/orgs`), so that pages show names
/// beside the ids the API gives.
pub async fn org_names(state: &AppState) -> Result<BTreeMap<String, String>, ConsoleError> {
    Ok(state
        .store
        .organizations()
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect())
}

/// An organization as `Name (id)`, or the id alone when it has no name here.
pub fn org(names: &BTreeMap<String, String>, id: &str) -> Markup {
    html! {
        @match names.get(id) {
            Some(name) if name != id => { (name) " " span.muted { "(" code { (id) } ")" } }
            _ => { code { (id) } }
        }
    }
}

/// The non-empty lines of a text area, trimmed.
pub fn lines(text: Option<&str>) -> Vec<String> {
    text.unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// After a form has acted: see the page that shows what it did (303, so that reloading the
/// page does not send the form again).
pub fn see_other(path: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(path) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `?done=…` on a page a form returns to: which action was recorded (one of a fixed set;
/// nothing from the query is shown as such).
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    /// The action's name.
    pub done: Option<String>,
}

impl Done {
    /// The confirmation to show, if the action is one this page knows.
    pub fn notice(&self) -> Markup {
        let message = match self.done.as_deref() {
            Some("review") => "Your decision is recorded.",
            Some("action") => "The run's status changed.",
            Some("milestone") => "Your milestone report is submitted for evaluation.",
            Some("decide") => "Your decision on the milestone report is recorded.",
            Some("follow_up") => "Your follow-up is recorded.",
            Some("applied") => {
                "Your application for access is recorded: the model's developer and the \
                 authority's reviewers see it."
            }
            Some("consent") => "Your answer as the model's developer is recorded.",
            Some("grant") => "The grant's status changed.",
            _ => return html! {},
        };
        html! { p.good role="status" { (message) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_areas_are_read_line_by_line() {
        assert_eq!(
            lines(Some(" report weekly \r\n\n  keep SL4\n")),
            ["report weekly", "keep SL4"]
        );
        assert!(lines(None).is_empty());
    }

    #[test]
    fn statuses_read_at_a_glance() {
        assert_eq!(tone("approved"), "good");
        assert_eq!(tone("revoked"), "bad");
        assert_eq!(tone("under_review"), "warn");
        let html = badge("milestone_due").into_string();
        assert!(
            html.contains("milestone due") && html.contains("badge warn"),
            "{html}"
        );
    }

    #[test]
    fn only_known_notices_are_shown() {
        let done = Done {
            done: Some("<script>".into()),
        };
        assert_eq!(done.notice().into_string(), "");
        let done = Done {
            done: Some("review".into()),
        };
        assert!(done.notice().into_string().contains("recorded"));
    }

    #[test]
    fn times_from_the_api_are_written_like_every_other() {
        let now = crate::testing::T0_MS;
        let html = when_text("2026-12-01T00:00:00.000Z", now).into_string();
        assert!(html.contains("2026-12-01 00:00 UTC"), "{html}");
        assert_eq!(when_text("soon", now).into_string(), "soon");
    }
}
