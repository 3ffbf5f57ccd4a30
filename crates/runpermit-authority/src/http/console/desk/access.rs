//! Structured access: applications for access to registered models and the grants issued on
//! them, scoped like `GET /v1/access-requests` and `GET /v1/grants` (authority staff see all;
//! an organization those it made or holds and those for its models). One application with
//! the forms its viewer may use (the developer's consent or objection, a reviewer's approval or
//! denial); one grant with reviewers' suspend, reinstate and revoke, and for the grantee its
//! token and log proof once it is in the public log. Researchers apply through a form. Every
//! page reads through the API's handler and every form acts through the handler of its API
//! endpoint, as the signed-in person.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use maud::{Markup, html};
use runpermit_api::access::{
    AccessRequestView, AccessReview, Consent, GrantView, NewAccessRequest,
};
use runpermit_api::runs::Reason;
use runpermit_permit::AccessTier;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::domain::Caller;
use crate::http::authz;
use crate::http::console::desk::widgets::{self, see_other};
use crate::http::console::error::ConsoleError;
use crate::http::console::format;
use crate::http::console::page;
use crate::http::console::session::{Submitted, Viewer, csrf_field};
use crate::http::error::{ApiError, ApiJson};
use crate::http::routes;
use crate::http::state::AppState;

/// The grant actions a reviewer may take from a grant's status as the API shows it.
pub fn grant_actions(status: &str) -> &'static [&'static str] {
    match status {
        // `logging`: signed, stored active, not yet in the log.
        "active" | "logging" => &["suspend", "revoke"],
        "suspended" => &["reinstate", "revoke"],
        _ => &[],
    }
}

/// Registered model names by id (the registry is public).
async fn model_names(state: &AppState) -> Result<BTreeMap<String, String>, ConsoleError> {
    Ok(crate::domain::models::list(state)
        .await?
        .into_iter()
        .map(|m| (m.id, m.name))
        .collect())
}

/// A model as its name linking its public page, or the id alone (an evaluation grant names a
/// milestone report).
fn model(names: &BTreeMap<String, String>, id: &str) -> Markup {
    html! {
        @match names.get(id) {
            Some(name) => { a href={ "/models/" (id) } { (name) } " " span.muted { "(" code { (id) } ")" } }
            None => { code { (id) } }
        }
    }
}

fn request_path(id: &str) -> String {
    format!(
        "/console/access/requests/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

fn grant_path(id: &str) -> String {
    format!(
        "/console/access/grants/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

/// The developer's answer, and whether the tier needs it.
fn consent_words(r: &AccessRequestView) -> Markup {
    html! {
        @match r.consent.as_deref() {
            Some("consented") => { span.good { "consented" } }
            Some("objected") => { span.bad { "objected" } }
            Some(other) => { (other) }
            None if r.consent_required => { span.warn { "awaited (required)" } }
            None => { span.muted { "not answered (not required)" } }
        }
    }
}

/// The quotas asked for, in words.
fn quotas(value: &Value) -> Markup {
    let Some(map) = value.as_object().filter(|m| !m.is_empty()) else {
        return html! { span.muted { "none" } };
    };
    html! {
        @for (i, (k, v)) in map.iter().enumerate() {
            @if i > 0 { ", " }
            (k.replace('_', " ")) " "
            @match v.as_f64() { Some(n) => { (format::count(n)) }, None => { (v.to_string()) } }
        }
    }
}

fn requests_table(
    requests: &[AccessRequestView],
    orgs: &BTreeMap<String, String>,
    models: &BTreeMap<String, String>,
    now: i64,
) -> Markup {
    html! {
        div.table-wrap { table id="access-requests" {
            thead { tr {
                th scope="col" { "Application" } th scope="col" { "Applicant" }
                th scope="col" { "Model" } th scope="col" { "Tier" } th scope="col" { "Status" }
                th scope="col" { "Developer's consent" } th scope="col" class="num" { "Approvals" }
                th scope="col" { "Made" }
            } }
            tbody {
                @for r in requests {
                    tr {
                        td { a href=(request_path(&r.id)) { code { (r.id) } } }
                        td { (widgets::org(orgs, &r.org_id)) }
                        td { (model(models, &r.model_id)) }
                        td { (r.tier) }
                        td { (widgets::badge(&r.status)) }
                        td { (consent_words(r)) }
                        td.num { (r.approvals) " of " (r.approvals_needed) }
                        td { (widgets::when_text(&r.created_at, now)) }
                    }
                }
            }
        } }
    }
}

fn grants_table(
    grants: &[GrantView],
    orgs: &BTreeMap<String, String>,
    models: &BTreeMap<String, String>,
    now: i64,
) -> Markup {
    html! {
        div.table-wrap { table id="grants" {
            thead { tr {
                th scope="col" { "Grant" } th scope="col" { "Grantee" } th scope="col" { "Model" }
                th scope="col" { "Tier" } th scope="col" { "Status" } th scope="col" { "Expires" }
            } }
            tbody {
                @for g in grants {
                    tr {
                        td { a href=(grant_path(&g.id)) { code { (g.id) } } }
                        td { (widgets::org(orgs, &g.org_id)) }
                        td { (model(models, &g.model_id)) }
                        td { (g.tier) }
                        td { (widgets::badge(&g.status)) }
                        td { (widgets::when_text(&g.expires_at, now)) }
                    }
                }
            }
        } }
    }
}

/// The application form, for those who may apply: the model from the registry, the tier,
/// what for, the digests of the research plan and the agreement, quotas and days.
fn apply_form(viewer: &Viewer, models: &BTreeMap<String, String>) -> Markup {
    html! {
        section aria-labelledby="apply-heading" {
            h2 id="apply-heading" { "Apply for access to a model" }
            @if models.is_empty() {
                p.muted { "No model is registered yet." }
            } @else {
                p { "The model's developer sees your application and may consent or object (the policy requires its consent from some tiers up); the authority's reviewers decide. A grant is signed and written to the public log; its token is shown on its page once logged." }
                form.stack id="apply" method="post" action="/console/access/apply" {
                    (csrf_field(viewer))
                    label for="model_id" { "Model" }
                    select id="model_id" name="model_id" required {
                        option value="" { "Choose…" }
                        @for (id, name) in models { option value=(id) { (name) " (" (id) ")" } }
                    }
                    label for="tier" { "Tier" }
                    select id="tier" name="tier" required {
                        @for t in AccessTier::ALL { option value=(t.as_str()) { (t.as_str().replace('_', " ")) } }
                    }
                    label for="purpose" { "Purpose: what the access is for" }
                    textarea id="purpose" name="purpose" required {}
                    label for="research_plan_digest" { "Research plan digest (sha256: and 64 hex digits)" }
                    input id="research_plan_digest" name="research_plan_digest" type="text" required autocomplete="off" spellcheck="false";
                    label for="agreement_digest" { "Access agreement digest (sha256: and 64 hex digits)" }
                    input id="agreement_digest" name="agreement_digest" type="text" required autocomplete="off" spellcheck="false";
                    label for="tokens" { "Tokens over the grant (optional, for example 1M or 2.5e9)" }
                    input id="tokens" name="tokens" type="text" inputmode="decimal" autocomplete="off";
                    label for="requests" { "Requests over the grant (optional, for example 10k)" }
                    input id="requests" name="requests" type="text" inputmode="decimal" autocomplete="off";
                    label for="days" { "Days of access" }
                    input id="days" name="days" type="text" inputmode="numeric" required autocomplete="off";
                    button type="submit" { "Apply for access" }
                }
            }
        }
    }
}

/// `GET /console/access`: the applications and grants this person may see, as
/// `GET /v1/access-requests` and `GET /v1/grants` answer them; the application form for those
/// who may apply.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Response, ConsoleError> {
    let caller = viewer.caller.clone();
    let requests = routes::access::list_requests(State(state.clone()), caller.clone())
        .await?
        .0;
    let grants = routes::access::list_grants(State(state.clone()), caller.clone())
        .await?
        .0;
    let orgs = widgets::org_names(&state).await?;
    let models = model_names(&state).await?;
    let now = state.clock.now_ms();
    let staff = caller.is_authority_staff();
    let body = html! {
        h1 { "Access to models" }
        p.muted {
            @if staff { "Every application for access and every grant." }
            @else { "Your organization's applications and grants, and those for its models." }
        }
        section aria-labelledby="requests-heading" {
            h2 id="requests-heading" { "Applications" }
            @if requests.is_empty() { p { "No applications." } }
            @else { (requests_table(&requests, &orgs, &models, now)) }
        }
        section aria-labelledby="grants-heading" {
            h2 id="grants-heading" { "Grants" }
            @if grants.is_empty() { p { "No grants." } }
            @else { (grants_table(&grants, &orgs, &models, now)) }
        }
        @if authz::ACCESS_REQUESTS_CREATE.allows(Some(&caller)) {
            (apply_form(&viewer, &models))
        }
    };
    Ok(page::respond(Some(&viewer), "Access", body))
}

/// The forms the viewer may use on a pending application.
fn request_forms(viewer: &Viewer, r: &AccessRequestView) -> Markup {
    let caller: &Caller = &viewer.caller;
    if r.status != "pending" {
        return html! { p.muted { "The application is decided (" (r.status) "): nothing more can be done to it." } };
    }
    let answers =
        r.developer_org_id == caller.org_id && authz::ACCESS_REQUESTS_CONSENT.allows(Some(caller));
    let reviews = authz::ACCESS_REQUESTS_REVIEW.allows(Some(caller));
    let path = request_path(&r.id);
    html! {
        @if answers {
            section aria-labelledby="consent-heading" {
                h2 id="consent-heading" { "Your answer as the model's developer" }
                p { @if r.consent_required { "The policy requires your consent for this tier: reviewers cannot approve without it." }
                    @else { "The policy does not require your consent for this tier; reviewers read your answer." }
                    " You may change your answer while the application is pending." }
                form.stack id="consent" method="post" action={ (path) "/consent" } {
                    (csrf_field(viewer))
                    label for="answer" { "Answer" }
                    select id="answer" name="answer" required {
                        option value="" { "Choose…" }
                        option value="consent" { "Consent" }
                        option value="object" { "Object" }
                    }
                    label for="consent-reason" { "Reason (audited and recorded with the application)" }
                    textarea id="consent-reason" name="reason" required {}
                    button type="submit" { "Send your answer" }
                }
            }
        }
        @if reviews {
            section aria-labelledby="review-heading" {
                h2 id="review-heading" { "Your decision" }
                @if r.consent_required && r.consent.as_deref() != Some("consented") {
                    p.warn { "This tier needs the developer's consent before it can be approved; it has "
                        @if r.consent.as_deref() == Some("objected") { "objected" } @else { "not answered" } "." }
                }
                p { "Approvals so far: " (r.approvals) " of the " (r.approvals_needed) " this tier needs, from distinct reviewers. A denial decides." }
                form.stack id="access-review" method="post" action={ (path) "/review" } {
                    (csrf_field(viewer))
                    label for="decision" { "Decision" }
                    select id="decision" name="decision" required {
                        option value="" { "Choose…" }
                        option value="approve" { "Approve" }
                        option value="deny" { "Deny" }
                    }
                    label for="review-reason" { "Reason (audited; a grant's reasons are logged publicly)" }
                    textarea id="review-reason" name="reason" required {}
                    button type="submit" { "Record your decision" }
                }
            }
        }
    }
}

/// `GET /console/access/requests/{id}`: through `GET /v1/access-requests/{id}` (404 outside
/// the person's scope).
pub async fn show_request(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(done): Query<widgets::Done>,
) -> Result<Response, ConsoleError> {
    let r = routes::access::get_request(State(state.clone()), viewer.caller.clone(), Path(id))
        .await?
        .0;
    let orgs = widgets::org_names(&state).await?;
    let models = model_names(&state).await?;
    let now = state.clock.now_ms();
    let body = html! {
        h1 { "Application for access " code { (r.id) } }
        (done.notice())
        dl.facts {
            dt { "Status" } dd { (widgets::badge(&r.status)) }
            @if let Some(reason) = &r.reason { dt { "Decision" } dd { (reason) } }
            @if let Some(g) = &r.grant_id { dt { "Grant" } dd { a href=(grant_path(g)) { code { (g) } } } }
            dt { "Applicant" } dd { (widgets::org(&orgs, &r.org_id)) ", member " code { (r.member_id) } }
            dt { "Model" } dd { (model(&models, &r.model_id)) }
            dt { "Developer" } dd { (widgets::org(&orgs, &r.developer_org_id)) }
            dt { "Tier" } dd { (r.tier) }
            dt { "Purpose" } dd { (r.purpose) }
            dt { "Research plan" } dd { code { (r.research_plan_digest) } }
            dt { "Agreement" } dd { code { (r.agreement_digest) } }
            dt { "Quotas" } dd { (quotas(&r.quotas)) }
            dt { "Days" } dd { (r.days) }
            dt { "Developer's consent" } dd {
                (consent_words(&r))
                @if let Some(reason) = &r.consent_reason { ": " (reason) }
            }
            dt { "Approvals" } dd { (r.approvals) " of " (r.approvals_needed) }
            dt { "Made" } dd { (widgets::when_text(&r.created_at, now)) }
            dt { "Last change" } dd { (widgets::when_text(&r.updated_at, now)) }
        }
        (request_forms(&viewer, &r))
        p { a href="/console/access" { "All applications and grants" } }
    };
    Ok(page::respond(
        Some(&viewer),
        &format!("Application {}", r.id),
        body,
    ))
}

/// The reviewers' form on a grant.
fn grant_form(viewer: &Viewer, g: &GrantView) -> Markup {
    let caller = &viewer.caller;
    let actions: Vec<&str> = grant_actions(&g.status)
        .iter()
        .copied()
        .filter(|a| match *a {
            "suspend" => authz::GRANTS_SUSPEND.allows(Some(caller)),
            "reinstate" => authz::GRANTS_REINSTATE.allows(Some(caller)),
            _ => authz::GRANTS_REVOKE.allows(Some(caller)),
        })
        .collect();
    if actions.is_empty() {
        return html! {};
    }
    html! {
        section aria-labelledby="grant-actions" {
            h2 id="grant-actions" { "Actions" }
            p { "Each is audited, written to the public log with its reason, and the next status list names a grant not in good standing. Revocation is final." }
            form.stack id="grant-action" method="post" action={ (grant_path(&g.id)) "/action" } {
                (csrf_field(viewer))
                label for="action" { "Action" }
                select id="action" name="action" required {
                    option value="" { "Choose…" }
                    @for a in &actions { option value=(a) { (a) } }
                }
                label for="grant-reason" { "Reason (audited, logged publicly)" }
                textarea id="grant-reason" name="reason" required {}
                button.danger type="submit" { "Act on this grant" }
            }
        }
    }
}

/// `GET /console/access/grants/{id}`: through `GET /v1/grants/{id}` (404 outside the person's
/// scope); for the grantee, the token and proof to copy once the grant is logged.
pub async fn show_grant(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(done): Query<widgets::Done>,
) -> Result<Response, ConsoleError> {
    let g = routes::access::get_grant(State(state.clone()), viewer.caller.clone(), Path(id))
        .await?
        .0;
    let orgs = widgets::org_names(&state).await?;
    let models = model_names(&state).await?;
    let now = state.clock.now_ms();
    let grantee = g.org_id == viewer.caller.org_id;
    let body = html! {
        h1 { "Grant " code { (g.id) } }
        (done.notice())
        dl.facts {
            dt { "Status" } dd { (widgets::badge(&g.status)) @if !g.reason.is_empty() { " " (g.reason) } }
            dt { "Grantee" } dd { (widgets::org(&orgs, &g.org_id)) }
            dt { "Model" } dd { (model(&models, &g.model_id)) }
            dt { "Developer" } dd { (widgets::org(&orgs, &g.developer_org_id)) }
            dt { "Tier" } dd { (g.tier) }
            dt { "Granted on" } dd {
                @match (&g.request_id, &g.milestone_id) {
                    (Some(r), _) => { "application " a href=(request_path(r)) { code { (r) } } }
                    (None, Some(m)) => { "evaluation of milestone report " code { (m) } }
                    _ => { (g.origin) }
                }
            }
            dt { "Expires" } dd { (widgets::when_text(&g.expires_at, now)) }
            dt { "In the public log" } dd {
                @match g.log_index {
                    Some(i) => { a id="grant-entry" href={ "/log/entries/" (i) } { "entry " (i) } }
                    None => { span.warn { "not yet: the grant is served once its entry is logged" } }
                }
            }
        }
        @if grantee {
            section aria-labelledby="token-heading" {
                h2 id="token-heading" { "Your grant token" }
                @match (&g.token, &g.proof) {
                    (Some(token), proof) => {
                        p { "Send it to the model's access gateway as a bearer token. It verifies offline with the authority's published keys; the proof shows it is in the public log." }
                        h3 { "Token" }
                        pre.mono id="grant-token" { (token) }
                        @if let Some(proof) = proof {
                            h3 { "Log proof" }
                            pre.mono id="grant-proof" { (proof) }
                        }
                    }
                    (None, _) => {
                        p.muted { "The token is shown here once the grant's entry is in the public log (within a few seconds)." }
                    }
                }
            }
        }
        (grant_form(&viewer, &g))
        p { a href="/console/access" { "All applications and grants" } }
    };
    Ok(page::respond(
        Some(&viewer),
        &format!("Grant {}", g.id),
        body,
    ))
}

/// The application form as posted.
#[derive(Debug, Default, Deserialize)]
pub struct ApplyForm {
    model_id: Option<String>,
    tier: Option<String>,
    purpose: Option<String>,
    research_plan_digest: Option<String>,
    agreement_digest: Option<String>,
    tokens: Option<String>,
    requests: Option<String>,
    days: Option<String>,
}

/// A whole count written like `1M`, `10k` or `2.5e9` (empty: none), or what is wrong with it
/// named by `field`.
fn whole_count(field: &str, text: Option<&str>) -> Result<Option<u64>, ApiError> {
    let text = text.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Ok(None);
    }
    match runpermit_compute::parse_count(text) {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n < 1.8e19 => Ok(Some(n as u64)),
        _ => Err(ApiError::field(
            field,
            format!("{text:?} is not a whole number: write it like 1000000, 1M or 10k"),
        )),
    }
}

impl ApplyForm {
    /// The API's request body for this form; the API checks the rest and names what is wrong.
    fn request(self) -> Result<NewAccessRequest, ApiError> {
        let text = |v: Option<String>| v.unwrap_or_default().trim().to_owned();
        let mut quotas = Map::new();
        if let Some(n) = whole_count("tokens", self.tokens.as_deref())? {
            quotas.insert("tokens".into(), n.into());
        }
        if let Some(n) = whole_count("requests", self.requests.as_deref())? {
            quotas.insert("requests".into(), n.into());
        }
        let days_text = text(self.days);
        let days = days_text.parse::<u32>().map_err(|_| {
            ApiError::field(
                "days",
                format!("must be a whole number of days, got {days_text:?}"),
            )
        })?;
        Ok(NewAccessRequest {
            model_id: text(self.model_id),
            tier: text(self.tier),
            purpose: text(self.purpose),
            research_plan_digest: text(self.research_plan_digest),
            agreement_digest: text(self.agreement_digest),
            quotas: Value::Object(quotas),
            days,
        })
    }
}

/// `POST /console/access/apply`: the handler of `POST /v1/access-requests`.
pub async fn apply(
    State(state): State<AppState>,
    submitted: Submitted<ApplyForm>,
) -> Result<Response, ConsoleError> {
    let body = submitted.form.request()?;
    let (_, created) =
        routes::access::apply(State(state), submitted.viewer.caller, ApiJson(body)).await?;
    Ok(see_other(&format!(
        "{}?done=applied",
        request_path(&created.0.id)
    )))
}

/// The developer's answer as posted.
#[derive(Debug, Deserialize)]
pub struct ConsentForm {
    answer: Option<String>,
    reason: Option<String>,
}

/// `POST /console/access/requests/{id}/consent`: the handler of
/// `POST /v1/access-requests/{id}/consent`.
pub async fn consent(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<ConsentForm>,
) -> Result<Response, ConsoleError> {
    let consent = match submitted.form.answer.as_deref().unwrap_or_default() {
        "consent" => true,
        "object" => false,
        other => {
            return Err(ApiError::field(
                "answer",
                format!("{other:?} is not an answer: choose consent or object"),
            )
            .into());
        }
    };
    let body = Consent {
        consent,
        reason: submitted.form.reason.unwrap_or_default(),
    };
    let _answered = routes::access::consent(
        State(state),
        submitted.viewer.caller,
        Path(id.clone()),
        ApiJson(body),
    )
    .await?;
    Ok(see_other(&format!("{}?done=consent", request_path(&id))))
}

/// A reviewer's decision as posted.
#[derive(Debug, Deserialize)]
pub struct ReviewForm {
    decision: Option<String>,
    reason: Option<String>,
}

/// `POST /console/access/requests/{id}/review`: the handler of
/// `POST /v1/access-requests/{id}/review`.
pub async fn review(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<ReviewForm>,
) -> Result<Response, ConsoleError> {
    let approve = match submitted.form.decision.as_deref().unwrap_or_default() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(ApiError::field(
                "decision",
                format!("{other:?} is not a decision: choose approve or deny"),
            )
            .into());
        }
    };
    let body = AccessReview {
        approve,
        reason: submitted.form.reason.unwrap_or_default(),
    };
    let _decided = routes::access::review(
        State(state),
        submitted.viewer.caller,
        Path(id.clone()),
        ApiJson(body),
    )
    .await?;
    Ok(see_other(&format!("{}?done=review", request_path(&id))))
}

/// A reviewer's action on a grant as posted.
#[derive(Debug, Deserialize)]
pub struct GrantActionForm {
    action: Option<String>,
    reason: Option<String>,
}

/// `POST /console/access/grants/{id}/action`: the handler of
/// `POST /v1/grants/{id}/suspend|reinstate|revoke`.
pub async fn act_on_grant(
    State(state): State<AppState>,
    Path(id): Path<String>,
    submitted: Submitted<GrantActionForm>,
) -> Result<Response, ConsoleError> {
    let caller = submitted.viewer.caller;
    let body = ApiJson(Reason {
        reason: submitted.form.reason.unwrap_or_default(),
    });
    let state = State(state);
    let path = Path(id.clone());
    let _changed = match submitted.form.action.as_deref().unwrap_or_default() {
        "suspend" => routes::access::suspend(state, caller, path, body).await?,
        "reinstate" => routes::access::reinstate(state, caller, path, body).await?,
        "revoke" => routes::access::revoke(state, caller, path, body).await?,
        other => {
            return Err(ApiError::field(
                "action",
                format!("{other:?} is not a grant action: choose suspend, reinstate or revoke"),
            )
            .into());
        }
    };
    Ok(see_other(&format!("{}?done=grant", grant_path(&id))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_form_reads_into_the_apis_body() {
        let form = ApplyForm {
            model_id: Some(" mdl_1 ".into()),
            tier: Some("logprobs".into()),
            purpose: Some(" refusals ".into()),
            research_plan_digest: Some("sha256:aa".into()),
            agreement_digest: Some("sha256:bb".into()),
            tokens: Some(" 1M ".into()),
            requests: Some("".into()),
            days: Some("90".into()),
        };
        let body = form.request().expect("a request");
        assert_eq!(body.model_id, "mdl_1");
        assert_eq!(body.purpose, "refusals");
        assert_eq!(body.quotas, serde_json::json!({"tokens": 1_000_000}));
        assert_eq!(body.days, 90);
        for (tokens, days, field) in [
            ("1.5", "90", "tokens"),
            ("lots", "90", "tokens"),
            ("-3", "90", "tokens"),
            ("", "ninety", "days"),
            ("", "", "days"),
        ] {
            let form = ApplyForm {
                tokens: Some(tokens.into()),
                days: Some(days.into()),
                ..ApplyForm::default()
            };
            match form.request() {
                Err(ApiError::Invalid(errors)) => assert_eq!(errors[0].field, field),
                other => panic!("{tokens:?} {days:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn reviewers_are_offered_only_the_changes_a_grant_allows() {
        assert_eq!(grant_actions("active"), ["suspend", "revoke"]);
        assert_eq!(grant_actions("suspended"), ["reinstate", "revoke"]);
        assert!(grant_actions("revoked").is_empty());
        assert!(grant_actions("expired").is_empty());
    }
}
