//! The signed-in console, driven in-process like a browser without JavaScript: sign in with a
//! token, carry the session cookie, read pages, post their forms with the anti-forgery token.
//! What the pages show is checked by text and element ids; what the forms do is checked
//! through the API and the audit trail.
//!
//! Runs on in-memory SQLite; with `RUNPERMIT_TEST_DATABASE_URL` set, on PostgreSQL too.

mod common;

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::{Api, PgSchema, plan};
use http_body_util::BodyExt;
use runpermit_authority::domain::clock::Clock;
use runpermit_compute::Flop;
use runpermit_permit::{MeterMethod, Metered, SigningKey, UsageReportClaims, sign_usage_report};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A person signed in to the console: their session cookie.
struct Person<'a> {
    api: &'a Api,
    cookie: String,
}

/// What a page or a form answered.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    html: String,
}

async fn send(api: &Api, request: Request<Body>) -> (Answer, Option<String>) {
    let response = api.router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let html = String::from_utf8_lossy(&bytes).into_owned();
    (
        Answer {
            status,
            location,
            html,
        },
        cookie,
    )
}

fn form_body(fields: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        s.append_pair(k, v);
    }
    s.finish()
}

async fn sign_in<'a>(api: &'a Api, token: &str) -> Person<'a> {
    let request = Request::post("/console/sign-in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form_body(&[
            ("token", token),
            ("next", "/console"),
        ])))
        .expect("request");
    let (answer, cookie) = send(api, request).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.html);
    Person {
        api,
        cookie: cookie.expect("a session cookie"),
    }
}

/// The value of the first `name="csrf"` field in `html`.
fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].split('"').next().expect("a value").to_owned()
}

impl Person<'_> {
    async fn get(&self, path: &str) -> Answer {
        let request = Request::get(path)
            .header(header::COOKIE, &self.cookie)
            .body(Body::empty())
            .expect("request");
        send(self.api, request).await.0
    }

    /// A page that must answer 200.
    async fn page(&self, path: &str) -> String {
        let answer = self.get(path).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.html);
        assert!(answer.html.contains("<h1"), "{path}");
        answer.html
    }

    /// Posts `fields` as a browser would, with this session's anti-forgery token.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let csrf = csrf_in(&self.page("/console").await);
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts `fields` as they are (no anti-forgery token added).
    async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Answer {
        let request = Request::post(path)
            .header(header::COOKIE, &self.cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form_body(fields)))
            .expect("request");
        send(self.api, request).await.0
    }

    /// Posts a form that must act: 303 back to a page.
    async fn act(&self, path: &str, fields: &[(&str, &str)]) -> String {
        let answer = self.post(path, fields).await;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{path} {fields:?}: {}",
            answer.html
        );
        answer.location.expect("where to go next")
    }
}

/// The rows of `table#id` in `html` (the text between its `<tbody>` and `</tbody>`).
fn table<'h>(html: &'h str, id: &str) -> &'h str {
    let start = html
        .find(&format!("<table id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table#{id}"));
    let rest = &html[start..];
    let end = rest.find("</table>").expect("the table's end");
    &rest[..end]
}

struct Desk {
    api: Api,
    lab: String,
    lab_id: String,
    other_lab: String,
    reviewer1: (String, String),
    reviewer2: (String, String),
    admin: String,
}

async fn desk(database_url: Option<&str>) -> Desk {
    let mut policy = runpermit_policy::Policy::builtin().clone();
    policy.oversight.evaluators = vec!["org_aisi".to_owned()];
    let api = Api::with_policy(database_url, policy).await;
    let a = &api.authority;
    let (_, lab_id, lab) = a
        .member(("org_lab", "Frontier Lab"), "developer", "applicant")
        .await;
    let (_, _, other_lab) = a
        .member(("org_other", "Other Lab"), "developer", "applicant")
        .await;
    let (_, r1_id, r1) = a
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, r2_id, r2) = a
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, _, admin) = a
        .member(("org_authority", "Authority"), "authority", "admin")
        .await;
    Desk {
        api,
        lab,
        lab_id,
        other_lab,
        reviewer1: (r1_id, r1),
        reviewer2: (r2_id, r2),
        admin,
    }
}

impl Desk {
    async fn apply(&self, which: &str) -> Value {
        self.apply_plan(plan(which)).await
    }

    async fn apply_plan(&self, plan: Value) -> Value {
        let (status, app) = self
            .api
            .call(
                "POST",
                "/v1/applications",
                Some(&self.lab),
                Some(json!({"plan": plan})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
        app
    }

    async fn application(&self, id: &str) -> Value {
        let (status, app) = self
            .api
            .call(
                "GET",
                &format!("/v1/applications/{id}"),
                Some(&self.lab),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{app}");
        app
    }

    /// The audit events on `subject`.
    async fn audit(&self, subject: &str) -> Vec<Value> {
        let (status, events) = self
            .api
            .call(
                "GET",
                &format!("/v1/audit?subject={subject}&limit=1000"),
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{events}");
        events.as_array().expect("events").clone()
    }
}

async fn reviewers_decide_through_the_console(d: Desk) {
    let app = d.apply("full").await;
    assert_eq!(app["status"], "submitted", "{app}");
    let id = app["id"].as_str().expect("id").to_owned();
    let page_path = format!("/console/applications/{id}");
    let r1 = sign_in(&d.api, &d.reviewer1.1).await;
    let r2 = sign_in(&d.api, &d.reviewer2.1).await;

    // The queue shows it to both reviewers, linked to its page.
    for r in [&r1, &r2] {
        let queue = r.page("/console/reviews").await;
        assert!(
            table(&queue, "review-queue").contains(&format!("href=\"{page_path}\"")),
            "{queue}"
        );
    }
    // The home page points to it too, and the nav has the reviewer's sections.
    let home = r1.page("/console").await;
    assert!(
        home.contains(&id) && home.contains("/console/reviews"),
        "{home}"
    );
    assert!(home.contains("/console/kyc") && home.contains("/console/incidents"));

    // The application page lays out the whole plan, the estimate, the tier and the form.
    let html = r1.page(&page_path).await;
    for text in [
        "kestrel-2t",
        "B200",
        "Operation counting",
        "Hardware method",
        "thresholds-table",
        "crossed",
        "Policy tier: full",
        "Approvals required",
        "third-party-red-team",
        "https://lab.example/frontier-safety-framework-v3.pdf",
        "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c2b4d6f8e0a1c3e5b7d9f1a3c5e7b9d0f",
        "Frontier Lab",
        "<form class=\"stack\" id=\"review\"",
        "<select id=\"decision\"",
        "value=\"request_changes\"",
        "<textarea id=\"reason\"",
        "<textarea id=\"conditions\"",
        "No reviewer has decided yet",
    ] {
        assert!(html.contains(text), "{text} on the application page");
    }

    // The first reviewer approves with conditions, one per line.
    let next = r1
        .act(
            &format!("{page_path}/review"),
            &[
                ("decision", "approve"),
                ("reason", "safeguards adequate"),
                ("conditions", "report weekly\r\nkeep weights at SL4\r\n"),
            ],
        )
        .await;
    assert_eq!(next, format!("{page_path}?done=review"));
    let after = r1.page(&next).await;
    assert!(after.contains("Your decision is recorded"), "{after}");
    assert_eq!(d.application(&id).await["status"], "under_review");
    // It leaves the first reviewer's queue, not the second's.
    let queue = r1.page("/console/reviews").await;
    assert!(!table(&queue, "review-queue").contains(&id), "{queue}");
    let queue = r2.page("/console/reviews").await;
    assert!(table(&queue, "review-queue").contains(&id), "{queue}");
    // The second reviewer sees the first one's decision.
    let html = r2.page(&page_path).await;
    assert!(
        html.contains("safeguards adequate") && html.contains("report weekly"),
        "{html}"
    );
    assert!(html.contains("1 of 2 in this round"), "{html}");

    // The second approval issues the permit, with the first reviewer's conditions.
    r2.act(
        &format!("{page_path}/review"),
        &[("decision", "approve"), ("reason", "evaluation plan sound")],
    )
    .await;
    let app = d.application(&id).await;
    assert_eq!(app["status"], "approved", "{app}");
    let permit_id = app["permit_id"].as_str().expect("a permit").to_owned();
    let (status, permit) = d
        .api
        .call(
            "GET",
            &format!("/v1/permits/{permit_id}"),
            Some(&d.lab),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{permit}");
    assert_eq!(
        permit["claims"]["conditions"],
        json!(["report weekly", "keep weights at SL4"])
    );
    let queue = r2.page("/console/reviews").await;
    assert!(!table(&queue, "review-queue").contains(&id), "{queue}");
    let html = r2.page(&page_path).await;
    assert!(html.contains(&format!("/permits/{permit_id}")), "{html}");
    assert!(html.contains("awaits no review"), "{html}");
    // Both reviewers' reasons are public, in the log's decision entry, not only the last.
    let decisions = r2.page("/decisions").await;
    assert!(
        decisions.contains(
            "reviewer 1 of 2: safeguards adequate | reviewer 2 of 2: evaluation plan sound"
        ),
        "{decisions}"
    );

    // Audited as each reviewer, exactly as through the API.
    let events = d.audit(&format!("application/{id}")).await;
    let by = |action: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["actor_member_id"].clone())
            .collect()
    };
    assert_eq!(by("application.approval"), [json!(d.reviewer1.0)]);
    assert_eq!(by("application.approve"), [json!(d.reviewer2.0)]);

    // A bad decision is refused by name, and nothing changes.
    let mut second = plan("full");
    second["run"]["name"] = json!("kestrel-2t continued");
    let app2 = d.apply_plan(second).await;
    let id2 = app2["id"].as_str().expect("id");
    let answer = r1
        .post(
            &format!("/console/applications/{id2}/review"),
            &[("decision", "maybe"), ("reason", "x")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.html.contains("decision"), "{}", answer.html);
    let answer = r1
        .post(
            &format!("/console/applications/{id2}/review"),
            &[("decision", "deny"), ("reason", "")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(d.application(id2).await["status"], "submitted");
}

#[tokio::test]
async fn reviewers_decide_through_the_console_on_sqlite() {
    reviewers_decide_through_the_console(desk(None).await).await;
}

#[tokio::test]
async fn reviewers_decide_through_the_console_on_postgres() {
    if let Some(db) = PgSchema::create("console_review") {
        reviewers_decide_through_the_console(desk(Some(&db.url)).await).await;
    }
}

async fn changes_requested_then_resubmitted(d: Desk) {
    let id = d.apply("full").await["id"].as_str().expect("id").to_owned();
    let r1 = sign_in(&d.api, &d.reviewer1.1).await;
    let page_path = format!("/console/applications/{id}");
    r1.act(
        &format!("{page_path}/review"),
        &[
            ("decision", "request_changes"),
            ("reason", "state the red-team's scope"),
        ],
    )
    .await;
    assert_eq!(d.application(&id).await["status"], "changes_requested");
    let queue = r1.page("/console/reviews").await;
    assert!(!table(&queue, "review-queue").contains(&id));
    // The lab changes the plan and resubmits: a new round, back in the queue, and the page
    // says what changed since.
    let app = d.application(&id).await;
    let mut changed = plan("full");
    changed["responsibility"]["practices"] = json!(["red-teaming of cyber and bio uplift"]);
    d.api.authority.clock.advance_ms(60_000);
    let (status, body) = d
        .api
        .call(
            "PUT",
            &format!("/v1/applications/{id}"),
            Some(&d.lab),
            Some(json!({"plan": changed, "version": app["version"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = d
        .api
        .call(
            "POST",
            &format!("/v1/applications/{id}/submit"),
            Some(&d.lab),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let queue = r1.page("/console/reviews").await;
    assert!(table(&queue, "review-queue").contains(&id), "{queue}");
    let html = r1.page(&page_path).await;
    assert!(
        html.contains("Changes since they were requested")
            && html.contains("state the red-team")
            && html.contains("changed afterwards")
            && html.contains("red-teaming of cyber and bio uplift"),
        "{html}"
    );
}

#[tokio::test]
async fn changes_requested_then_resubmitted_on_sqlite() {
    changes_requested_then_resubmitted(desk(None).await).await;
}

async fn refusals(d: Desk) {
    let id = d.apply("full").await["id"].as_str().expect("id").to_owned();
    let page_path = format!("/console/applications/{id}");
    // Another lab gets the API's answer for an application it may not see: 404.
    let other = sign_in(&d.api, &d.other_lab).await;
    let answer = other.get(&page_path).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.html);
    assert!(!answer.html.contains("kestrel-2t"));
    assert_eq!(
        other.get("/console/reviews").await.status,
        StatusCode::FORBIDDEN
    );
    let list = other.page("/console/applications").await;
    assert!(!list.contains(&id));
    // The lab itself reads its application, without a review form.
    let lab = sign_in(&d.api, &d.lab).await;
    let html = lab.page(&page_path).await;
    assert!(html.contains("kestrel-2t") && !html.contains("id=\"review\""));
    let list = lab.page("/console/applications").await;
    assert!(table(&list, "applications").contains(&id));
    // A lab cannot review, even by posting the form.
    let answer = lab
        .post(
            &format!("{page_path}/review"),
            &[("decision", "approve"), ("reason", "mine")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    // A form without the anti-forgery token, or with another session's, is refused and
    // nothing changes.
    let r1 = sign_in(&d.api, &d.reviewer1.1).await;
    let review = [("decision", "deny"), ("reason", "forged")];
    let answer = r1.post_raw(&format!("{page_path}/review"), &review).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.html);
    let foreign = csrf_in(&lab.page("/console").await);
    let mut with_foreign = vec![("csrf", foreign.as_str())];
    with_foreign.extend_from_slice(&review);
    let answer = r1
        .post_raw(&format!("{page_path}/review"), &with_foreign)
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.html);
    // Without a session: sent to sign in.
    let request = Request::post(format!("{page_path}/review"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form_body(&review)))
        .expect("request");
    let (answer, _) = send(&d.api, request).await;
    assert!(answer.status.is_redirection(), "{}", answer.status);
    assert!(
        answer
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with("/console/sign-in")),
        "{:?}",
        answer.location
    );
    assert_eq!(d.application(&id).await["status"], "submitted");
    assert!(
        d.audit(&format!("application/{id}"))
            .await
            .iter()
            .all(|e| e["action"] != "application.deny")
    );
}

#[tokio::test]
async fn refusals_on_sqlite() {
    refusals(desk(None).await).await;
}

#[tokio::test]
async fn refusals_on_postgres() {
    if let Some(db) = PgSchema::create("console_refusals") {
        refusals(desk(Some(&db.url)).await).await;
    }
}

/// Structured access through the console: a researcher applies through the form; a reviewer
/// cannot approve before the developer's consent (the tier needs it); a forged consent is
/// refused; the developer consents and two reviewers approve through the forms; the grantee's
/// grant page shows the token once it is logged, the developer's does not; a reviewer
/// suspends it through the form; another lab sees none of it.
async fn access_through_the_console(d: Desk) {
    let run = d.apply("standard").await;
    assert!(run["permit_id"].is_string(), "{run}");
    let (_, runs) = d.api.call("GET", "/v1/runs", Some(&d.lab), None).await;
    let run_id = runs[0]["id"].as_str().expect("a run").to_owned();
    let (status, model) = d
        .api
        .call(
            "POST",
            "/v1/models",
            Some(&d.lab),
            Some(json!({"name": "Frontier-1", "run_id": run_id,
                        "checkpoint_digest": format!("sha256:{}", "ab".repeat(32)),
                        "release_plan": "staged API"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    let model_id = model["id"].as_str().expect("a model").to_owned();
    let (_, _, researcher) = d
        .api
        .authority
        .member(("org_uni", "University Lab"), "developer", "applicant")
        .await;

    let researcher = sign_in(&d.api, &researcher).await;
    let access = researcher.page("/console/access").await;
    assert!(
        access.contains("<a href=\"/console/access\">Access</a>"),
        "nav"
    );
    assert!(
        access.contains("<form class=\"stack\" id=\"apply\"")
            && access.contains(&format!("<option value=\"{model_id}\">Frontier-1")),
        "{access}"
    );
    let plan_digest = format!("sha256:{}", "01".repeat(32));
    let location = researcher
        .act(
            "/console/access/apply",
            &[
                ("model_id", &model_id),
                ("tier", "logprobs"),
                ("purpose", "interpretability of refusals"),
                ("research_plan_digest", &plan_digest),
                ("agreement_digest", &format!("sha256:{}", "02".repeat(32))),
                ("tokens", "1M"),
                ("requests", "10k"),
                ("days", "90"),
            ],
        )
        .await;
    let request_page = location.split('?').next().expect("a path").to_owned();
    let id = request_page.rsplit('/').next().expect("an id").to_owned();
    assert!(location.ends_with("?done=applied"), "{location}");
    let html = researcher.page(&location).await;
    assert!(
        html.contains("interpretability of refusals")
            && html.contains(&plan_digest)
            && html.contains("requests 10k, tokens 1M")
            && html.contains("awaited (required)")
            && html.contains("0 of 2"),
        "{html}"
    );
    assert!(!html.contains("id=\"consent\"") && !html.contains("id=\"access-review\""));
    let (_, api_view) = d
        .api
        .call(
            "GET",
            &format!("/v1/access-requests/{id}"),
            Some(&d.lab),
            None,
        )
        .await;
    assert_eq!(
        api_view["quotas"],
        json!({"tokens": 1_000_000, "requests": 10_000})
    );

    // A reviewer cannot approve before the developer consents: the API's refusal, as a page.
    let r1 = sign_in(&d.api, &d.reviewer1.1).await;
    let html = r1.page(&request_page).await;
    assert!(html.contains("id=\"access-review\"") && !html.contains("id=\"consent\""));
    let answer = r1
        .post(
            &format!("{request_page}/review"),
            &[("decision", "approve"), ("reason", "too early")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.html);
    assert!(answer.html.contains("consent"), "{}", answer.html);

    // A forged consent (no anti-forgery token) is refused and changes nothing.
    let lab = sign_in(&d.api, &d.lab).await;
    let answer = lab
        .post_raw(
            &format!("{request_page}/consent"),
            &[("answer", "consent"), ("reason", "forged")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.html);
    let (_, api_view) = d
        .api
        .call(
            "GET",
            &format!("/v1/access-requests/{id}"),
            Some(&d.lab),
            None,
        )
        .await;
    assert!(api_view.get("consent").is_none(), "{api_view}");

    // The developer sees it and consents through its form.
    let list = lab.page("/console/access").await;
    assert!(table(&list, "access-requests").contains(&id), "{list}");
    assert!(lab.page(&request_page).await.contains("id=\"consent\""));
    lab.act(
        &format!("{request_page}/consent"),
        &[
            ("answer", "consent"),
            ("reason", "research in the public interest"),
        ],
    )
    .await;
    // Two reviewers approve through the form.
    r1.act(
        &format!("{request_page}/review"),
        &[("decision", "approve"), ("reason", "sound plan")],
    )
    .await;
    let html = r1.page(&request_page).await;
    assert!(
        html.contains("1 of 2") && html.contains("consented"),
        "{html}"
    );
    let r2 = sign_in(&d.api, &d.reviewer2.1).await;
    r2.act(
        &format!("{request_page}/review"),
        &[("decision", "approve"), ("reason", "concur")],
    )
    .await;
    let (_, api_view) = d
        .api
        .call(
            "GET",
            &format!("/v1/access-requests/{id}"),
            Some(&d.lab),
            None,
        )
        .await;
    assert_eq!(api_view["status"], "granted", "{api_view}");
    let grant_id = api_view["grant_id"].as_str().expect("a grant").to_owned();
    let grant_page = format!("/console/access/grants/{grant_id}");
    assert!(researcher.page(&request_page).await.contains(&grant_page));

    // Not yet logged: no token; once sequenced, the grantee's page shows it to copy.
    let html = researcher.page(&grant_page).await;
    assert!(
        !html.contains("id=\"grant-token\"") && html.contains("not yet"),
        "{html}"
    );
    while runpermit_authority::domain::log::sequence_once(&d.api.authority.state)
        .await
        .expect("sequencing")
        > 0
    {}
    let (_, grant) = d
        .api
        .call("GET", &format!("/v1/grants/{grant_id}"), Some(&d.lab), None)
        .await;
    let token = grant["token"].as_str().expect("a token once logged");
    let html = researcher.page(&grant_page).await;
    assert!(
        html.contains(&format!(
            "<pre class=\"mono\" id=\"grant-token\">{token}</pre>"
        )) && html.contains("id=\"grant-proof\""),
        "{html}"
    );
    assert!(
        !html.contains("id=\"grant-action\""),
        "the grantee has no actions"
    );
    let list = researcher.page("/console/access").await;
    assert!(table(&list, "grants").contains(&grant_id), "{list}");
    // The developer reads the grant, without its token; a reviewer suspends it.
    let html = lab.page(&grant_page).await;
    assert!(
        !html.contains("id=\"grant-token\"") && !html.contains(token),
        "{html}"
    );
    let html = r1.page(&grant_page).await;
    assert!(html.contains("id=\"grant-action\""), "{html}");
    r1.act(
        &format!("{grant_page}/action"),
        &[
            ("action", "suspend"),
            ("reason", "quota abuse under review"),
        ],
    )
    .await;
    let (_, grant) = d
        .api
        .call("GET", &format!("/v1/grants/{grant_id}"), Some(&d.lab), None)
        .await;
    assert_eq!(grant["status"], "suspended", "{grant}");
    assert!(
        d.audit(&format!("grant/{grant_id}"))
            .await
            .iter()
            .any(|e| e["action"] == "access.suspended"
                && e["actor_member_id"] == d.reviewer1.0.as_str()),
        "audited as the reviewer"
    );

    // Another lab sees none of it.
    let other = sign_in(&d.api, &d.other_lab).await;
    assert_eq!(other.get(&request_page).await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get(&grant_page).await.status, StatusCode::NOT_FOUND);
    let list = other.page("/console/access").await;
    assert!(!list.contains(&id) && !list.contains(&grant_id));
}

#[tokio::test]
async fn access_through_the_console_on_sqlite() {
    access_through_the_console(desk(None).await).await;
}

#[tokio::test]
async fn access_through_the_console_on_postgres() {
    if let Some(db) = PgSchema::create("console_access") {
        access_through_the_console(desk(Some(&db.url)).await).await;
    }
}

/// A permitted run metered by two providers, which the policy assigns to `org_aisi` to
/// evaluate (as in the oversight suite): its tranches end at 1e25, 4e25 and its budget.
struct Metered2 {
    d: Desk,
    evaluator: (String, String),
    provider_admin: String,
    keys: Vec<SigningKey>,
    run_id: String,
    permit_id: String,
    nbf: i64,
}

async fn metered(database_url: Option<&str>) -> Metered2 {
    let d = desk(database_url).await;
    let a = &d.api.authority;
    let (_, evaluator_id, evaluator) = a
        .member(("org_aisi", "Safety Institute"), "evaluator", "evaluator")
        .await;
    let mut keys = Vec::new();
    let mut provider_admin = String::new();
    for org in ["org_cloud_a", "org_cloud_b"] {
        let (_, _, admin) = a.member((org, org), "provider", "admin").await;
        let key = SigningKey::generate();
        let (status, body) = d
            .api
            .call(
                "POST",
                &format!("/v1/orgs/{org}/reporting-keys"),
                Some(&admin),
                Some(json!({"jwk": key.public().to_jwk()})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        keys.push(key);
        if provider_admin.is_empty() {
            provider_admin = admin;
        }
    }
    let mut p = plan("standard");
    p["providers"] = json!([
        {"provider": "org_cloud_a", "clusters": ["a-east"]},
        {"provider": "org_cloud_b", "clusters": ["b-west"]},
    ]);
    let app = d.apply_plan(p).await;
    let permit_id = app["permit_id"].as_str().expect("a permit").to_owned();
    let (_, runs) = d.api.call("GET", "/v1/runs", Some(&d.lab), None).await;
    let run_id = runs[0]["id"].as_str().expect("a run").to_owned();
    let (_, permit) = d
        .api
        .call(
            "GET",
            &format!("/v1/permits/{permit_id}"),
            Some(&d.lab),
            None,
        )
        .await;
    let nbf = permit["claims"]["nbf"].as_i64().expect("nbf");
    let now = d.api.authority.clock.now_s();
    d.api
        .authority
        .clock
        .advance_ms((nbf + 10 * 86_400 - now).max(0) * 1000);
    Metered2 {
        d,
        evaluator: (evaluator_id, evaluator),
        provider_admin,
        keys,
        run_id,
        permit_id,
        nbf,
    }
}

impl Metered2 {
    /// A signed report of provider `i` (0: org_cloud_a, 1: org_cloud_b), with bounds.
    fn report(&self, i: usize, seq: u64, flop: f64) -> String {
        let (provider, cluster) = [("org_cloud_a", "a-east"), ("org_cloud_b", "b-west")][i];
        let f = Flop::new(flop).expect("flop");
        let seconds = flop / 1.979e15;
        let metered = Metered {
            method: MeterMethod::SchedulerAccounting,
            accelerator_seconds: BTreeMap::from([("h100-sxm".to_owned(), seconds)]),
            flop: Flop::new(flop * 0.9).expect("flop"),
            lower: Flop::new(flop * 0.7).expect("flop"),
            upper: f,
        };
        let length = 300.max((seconds / 1e5).ceil() as i64);
        let start = self.nbf + 3600 * i64::try_from(seq).expect("seq");
        let claims = UsageReportClaims::new(
            provider,
            &self.run_id,
            &self.permit_id,
            cluster,
            seq,
            (start, start + length),
            start + length + 1,
            metered,
        );
        sign_usage_report(&claims, &self.keys[i]).expect("signing")
    }

    async fn ingest(&self, reports: &[String]) {
        let (status, body) = self
            .d
            .api
            .call("POST", "/v1/usage", None, Some(json!({"reports": reports})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn run(&self) -> Value {
        let (status, run) = self
            .d
            .api
            .call(
                "GET",
                &format!("/v1/runs/{}", self.run_id),
                Some(&self.d.lab),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        run
    }
}

async fn runs_through_the_console(m: Metered2) {
    let run_path = format!("/console/runs/{}", m.run_id);
    // 9e24 metered (80% of the first tranche: an alert), then past its end: held.
    m.ingest(&[m.report(0, 1, 5e24), m.report(1, 1, 5e24)])
        .await;
    m.ingest(&[m.report(0, 2, 2e24)]).await;
    assert_eq!(m.run().await["status"], "milestone_due");

    // The lab sees its run: the chart with one released tranche, the alert and the hold,
    // usage by provider, what is due, and the milestone form.
    let lab = sign_in(&m.d.api, &m.d.lab).await;
    let runs = lab.page("/console/runs").await;
    let listed = table(&runs, "runs");
    assert!(listed.contains(&format!("href=\"{run_path}\"")));
    // Each report counts 0.9 of its figure centrally, 0.7 at its lower bound, all of it at its
    // upper: 1.08e25 (8.40e24–1.20e25) of the 1e25 released, judged on the central estimate.
    assert!(
        listed.contains("1.08e25 FLOP") && listed.contains("8.40e24–1.20e25"),
        "{listed}"
    );
    assert!(listed.contains("108.0% of 1.00e25 FLOP"), "{listed}");
    let html = lab.page(&run_path).await;
    for text in [
        "central estimate <strong>1.08e25 FLOP</strong>; lower bound 8.40e24 FLOP; upper bound \
         1.20e25 FLOP",
        "the central estimate: 108.0% of the released tranche",
        "Compute is counted at bf16 with 38% utilization (35–43%), 405B parameters per token.",
        "<input id=\"tokens\" name=\"tokens\"",
    ] {
        assert!(html.contains(text), "{text} on the lab's run page: {html}");
    }
    // No tensor-activity report: no measured utilization to show.
    assert!(!html.contains("id=\"measured-utilization\""), "{html}");
    // The upper bound passed the tranche's end: flagged, for whoever sees the run.
    let flags = table(&html, "run-flags");
    assert!(
        flags.contains("Upper bound past the released tranche") && flags.contains("tranche 1"),
        "{flags}"
    );
    for text in [
        "<svg id=\"run-chart\"",
        "class=\"alert-point\"",
        "class=\"hold-point\"",
        "class=\"bound-band\"",
        "usage-by-provider",
        "org_cloud_a",
        "org_cloud_b",
        "milestone due",
        "<form class=\"stack\" id=\"milestone-report\"",
    ] {
        assert!(html.contains(text), "{text} on the lab's run page");
    }
    assert_eq!(html.matches("class=\"tranche-line\"").count(), 1);
    let home = lab.page("/console").await;
    assert!(
        home.contains("milestone report is due") && home.contains(&run_path),
        "{home}"
    );

    // A bad report is refused by field; a good one is submitted as the lab member.
    let answer = lab
        .post(
            &format!("{run_path}/milestones"),
            &[("checkpoint_digest", "sha256:abc"), ("evals", "{\"x\": 1}")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.html.contains("checkpoint_digest"), "{}", answer.html);
    let digest = format!("sha256:{}", "ab".repeat(32));
    let answer = lab
        .post(
            &format!("{run_path}/milestones"),
            &[
                ("checkpoint_digest", &digest),
                ("tokens", "many"),
                ("evals", "{\"x\": 1}"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer.html.contains("is not a count of tokens"),
        "{}",
        answer.html
    );
    assert!(m.run().await["milestones"].as_array().unwrap().is_empty());
    // 12.6T tokens of the plan's 405B parameters: 6·N·D = 3.06e25 FLOP, 2.8× the metered
    // 1.08e25, beyond the policy's tolerance.
    let next = lab
        .act(
            &format!("{run_path}/milestones"),
            &[
                ("checkpoint_digest", &digest),
                ("tokens", "12.6T"),
                (
                    "evals",
                    "{\"cyber-ctf-suite\": {\"score\": 0.12, \"threshold\": 0.5}}",
                ),
            ],
        )
        .await;
    assert_eq!(next, format!("{run_path}?done=milestone"));

    // The evaluator finds it in the queue with its results and checkpoint, and accepts it.
    let evaluator = sign_in(&m.d.api, &m.evaluator.1).await;
    let html = evaluator.page(&run_path).await;
    assert!(html.contains("decide it in your queue"), "{html}");
    let home = evaluator.page("/console").await;
    assert!(home.contains("/console/milestones#milestone-"), "{home}");
    let queue = evaluator.page("/console/milestones").await;
    let (_, detail) =
        m.d.api
            .call(
                "GET",
                &format!("/v1/runs/{}", m.run_id),
                Some(&m.d.lab),
                None,
            )
            .await;
    let milestone_id = detail["milestones"][0]["id"]
        .as_str()
        .expect("a milestone")
        .to_owned();
    assert_eq!(
        detail["milestones"][0]["tokens"],
        json!(1.26e13),
        "{detail}"
    );
    assert!(
        table(&queue, "milestone-queue").contains(&milestone_id),
        "{queue}"
    );
    for text in [
        format!("id=\"decide-{milestone_id}\""),
        digest.clone(),
        "cyber-ctf-suite".to_owned(),
        "below".to_owned(),
        "12.6T".to_owned(),
        "Metered when submitted</dt><dd>1.08e25 FLOP".to_owned(),
        "3.06e25 FLOP, a factor of 2.8".to_owned(),
        format!("class=\"flagged\" id=\"operation-count-{milestone_id}\""),
        "Flagged: ".to_owned(),
    ] {
        assert!(
            queue.contains(&text),
            "{text} in the evaluator's queue: {queue}"
        );
    }
    // On the run's page too: the flag, linked to the report, and the report highlighted.
    let html = evaluator.page(&run_path).await;
    let flags = table(&html, "run-flags");
    assert!(
        flags.contains("Operation counting (6·N·D) far from the metered figure")
            && flags.contains(&format!("href=\"#milestone-{milestone_id}\"")),
        "{flags}"
    );
    assert!(
        html.contains(&format!(
            "class=\"flagged\" id=\"operation-count-{milestone_id}\""
        )),
        "{html}"
    );
    // An evaluator the permit does not name neither sees it nor decides it.
    let (_, _, stranger) =
        m.d.api
            .authority
            .member(
                ("org_other_eval", "Other Evaluator"),
                "evaluator",
                "evaluator",
            )
            .await;
    let stranger = sign_in(&m.d.api, &stranger).await;
    let queue = stranger.page("/console/milestones").await;
    assert!(!queue.contains(&milestone_id), "{queue}");
    let answer = stranger
        .post(
            &format!("/console/milestones/{milestone_id}/decide"),
            &[("decision", "accept"), ("reason", "not mine")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.html);
    assert_eq!(stranger.get(&run_path).await.status, StatusCode::NOT_FOUND);
    // The lab cannot use the evaluator's form.
    let answer = lab
        .post(
            &format!("/console/milestones/{milestone_id}/decide"),
            &[("decision", "accept"), ("reason", "mine")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    evaluator
        .act(
            &format!("/console/milestones/{milestone_id}/decide"),
            &[("decision", "accept"), ("reason", "below every threshold")],
        )
        .await;
    let run = m.run().await;
    assert_eq!(run["tranche"], 2, "{run}");
    assert_eq!(run["status"], "active", "{run}");
    let queue = evaluator.page("/console/milestones").await;
    assert!(!table(&queue, "milestone-queue").contains(&milestone_id));
    // The chart shows the released tranche move.
    let html = evaluator.page(&run_path).await;
    assert_eq!(html.matches("class=\"tranche-line\"").count(), 2, "{html}");

    // A reviewer revokes the run; a form without the token first changes nothing.
    let reviewer = sign_in(&m.d.api, &m.d.reviewer1.1).await;
    let html = reviewer.page(&run_path).await;
    assert!(
        html.contains("<form class=\"stack\" id=\"run-action\"")
            && html.contains("<select id=\"action\"")
            && html.contains("<option value=\"revoke\"")
            && html.contains("<textarea id=\"run-reason\""),
        "{html}"
    );
    let forged = reviewer
        .post_raw(
            &format!("{run_path}/action"),
            &[("action", "revoke"), ("reason", "forged")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(m.run().await["status"], "active");
    let answer = lab
        .post(
            &format!("{run_path}/action"),
            &[("action", "revoke"), ("reason", "not mine to do")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    reviewer
        .act(
            &format!("{run_path}/action"),
            &[("action", "revoke"), ("reason", "safeguards breached")],
        )
        .await;
    let run = m.run().await;
    assert_eq!(run["status"], "revoked", "{run}");
    assert_eq!(run["in_good_standing"], false);
    let html = reviewer.page(&run_path).await;
    assert!(html.contains("not in good standing") && html.contains("safeguards breached"));

    // Every action is audited as the person who took it.
    let actor = |events: &[Value], action: &str| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["action"] == action)
            .map(|e| e["actor_member_id"].clone())
            .collect()
    };
    let run_events = m.d.audit(&format!("run/{}", m.run_id)).await;
    assert_eq!(actor(&run_events, "run.revoke"), [json!(m.d.reviewer1.0)]);
    assert_eq!(
        actor(&run_events, "run.accept_milestone"),
        [json!(m.evaluator.0)]
    );
    assert_eq!(
        actor(&run_events, "run.submit_milestone"),
        [json!(m.d.lab_id)]
    );
    let milestone_events = m.d.audit(&format!("milestone/{milestone_id}")).await;
    assert_eq!(
        actor(&milestone_events, "milestone.accept"),
        [json!(m.evaluator.0)]
    );

    // A provider lists the runs it meters; a run's page is not its to read.
    let provider = sign_in(&m.d.api, &m.provider_admin).await;
    let runs = provider.page("/console/runs").await;
    assert!(table(&runs, "runs").contains(&m.run_id), "{runs}");
    assert_eq!(provider.get(&run_path).await.status, StatusCode::FORBIDDEN);
    // Another lab does not find the run at all.
    let other = sign_in(&m.d.api, &m.d.other_lab).await;
    assert_eq!(other.get(&run_path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn runs_through_the_console_on_sqlite() {
    runs_through_the_console(metered(None).await).await;
}

#[tokio::test]
async fn runs_through_the_console_on_postgres() {
    if let Some(db) = PgSchema::create("console_runs") {
        runs_through_the_console(metered(Some(&db.url)).await).await;
    }
}

async fn providers_incidents_and_flags(m: Metered2) {
    // org_cloud_a reports 1 and 3 (2 is missing); org_cloud_b reports a figure of its own.
    m.ingest(&[m.report(0, 1, 1e24), m.report(0, 3, 1e24)])
        .await;
    m.ingest(&[m.report(1, 1, 7e24)]).await;
    let provider = sign_in(&m.d.api, &m.provider_admin).await;
    let home = provider.page("/console").await;
    assert!(home.contains("/console/provider"), "{home}");
    let html = provider.page("/console/provider").await;
    for text in [
        format!("id=\"run-{}\"", m.run_id),
        "reporting-keys".to_owned(),
        m.keys[0].kid().to_owned(),
        "1.80e24 FLOP".to_owned(),
        "dead-letters.log".to_owned(),
        "sequence numbers the authority has not received".to_owned(),
    ] {
        assert!(html.contains(&text), "{text} on the provider page");
    }
    // Never another provider's figures or keys.
    assert!(!html.contains("6.30e24") && !html.contains(m.keys[1].kid()));
    // Not a page for anyone else.
    let lab = sign_in(&m.d.api, &m.d.lab).await;
    assert_eq!(
        lab.get("/console/provider").await.status,
        StatusCode::FORBIDDEN
    );

    // An incident, its deadline, and overdue once past it.
    let (status, incident) = m
        .d
        .api
        .call(
            "POST",
            "/v1/incidents",
            Some(&m.d.lab),
            Some(json!({"category": "security_breach", "summary": "phished operator", "run_id": m.run_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    let incident_id = incident["id"].as_str().expect("id").to_owned();
    let reviewer = sign_in(&m.d.api, &m.d.reviewer1.1).await;
    let html = reviewer.page("/console/incidents").await;
    let open = table(&html, "open-incidents");
    assert!(open.contains(&incident_id) && open.contains("phished operator"));
    assert!(!open.contains("overdue"), "{open}");
    let home = lab.page("/console").await;
    assert!(home.contains(&incident_id), "a follow-up is due: {home}");
    m.d.api.authority.clock.advance_ms(16 * 86_400_000);
    // Sessions last a working day: sign in again.
    assert!(
        reviewer
            .get("/console/incidents")
            .await
            .status
            .is_redirection()
    );
    let reviewer = sign_in(&m.d.api, &m.d.reviewer1.1).await;
    let lab = sign_in(&m.d.api, &m.d.lab).await;
    let html = reviewer.page("/console/incidents").await;
    assert!(table(&html, "open-incidents").contains("overdue"), "{html}");
    let home = reviewer.page("/console").await;
    assert!(home.contains("1 incident follow-up(s) overdue"), "{home}");
    // The lab follows it up through the form, which closes it, audited as the member.
    let html = lab.page("/console/incidents").await;
    assert!(
        html.contains(&format!("id=\"follow-up-{incident_id}\"")),
        "{html}"
    );
    let path = format!("/console/incidents/{incident_id}/follow-up");
    let forged = lab
        .post_raw(&path, &[("text", "forged"), ("close", "true")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    lab.act(
        &path,
        &[
            ("text", "credentials rotated, access reviewed"),
            ("close", "true"),
        ],
    )
    .await;
    let html = reviewer.page("/console/incidents").await;
    assert!(
        table(&html, "closed-incidents").contains("credentials rotated"),
        "{html}"
    );
    let events = m.d.audit(&format!("incident/{incident_id}")).await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "incident.follow_up"
                && e["actor_member_id"] == json!(m.d.lab_id)),
        "{events:?}"
    );
    // The other lab sees none of it.
    let other = sign_in(&m.d.api, &m.d.other_lab).await;
    assert!(
        !other
            .page("/console/incidents")
            .await
            .contains(&incident_id)
    );

    // Split-run flags: two providers' KYC reports of one customer reach the threshold.
    let now = m.d.api.authority.clock.now_s();
    let mut operators = Vec::new();
    for org in ["org_cloud_a", "org_cloud_b"] {
        operators.push(
            m.d.api
                .authority
                .member((org, org), "provider", "provider_operator")
                .await
                .2,
        );
    }
    for (token, flop) in [(&operators[0], 6e24), (&operators[1], 5e24)] {
        let (status, body) =
            m.d.api
                .call(
                    "POST",
                    "/v1/kyc-reports",
                    Some(token),
                    Some(
                        json!({"customer": "LEI-SPLIT-1", "from": now - 80_000, "to": now,
                    "jobs": 3, "accelerator_seconds": flop / 1.979e15, "flop": flop}),
                    ),
                )
                .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let html = reviewer.page("/console/kyc").await;
    let flags = table(&html, "kyc-flags");
    assert!(
        flags.contains("LEI-SPLIT-1") && flags.contains("1.10e25 FLOP") && flags.contains("yes"),
        "{flags}"
    );
    assert_eq!(lab.get("/console/kyc").await.status, StatusCode::FORBIDDEN);
    let home = reviewer.page("/console").await;
    assert!(
        home.contains("0 incident follow-up(s) overdue") && home.contains("1 customer(s) flagged"),
        "{home}"
    );
}

#[tokio::test]
async fn providers_incidents_and_flags_on_sqlite() {
    providers_incidents_and_flags(metered(None).await).await;
}

#[tokio::test]
async fn providers_incidents_and_flags_on_postgres() {
    if let Some(db) = PgSchema::create("console_provider") {
        providers_incidents_and_flags(metered(Some(&db.url)).await).await;
    }
}
