//! The console's public pages (issue 13), driven in-process through the router as a browser
//! without a session would: the registry lists permits issued through the API with their
//! standing, each permit's page links its log entry, whose proof verifies against the log's
//! key; searches and filters narrow what is listed; nothing of a confidential plan appears on
//! any page; every page carries the console's security headers.
//!
//! Each scenario runs on a SQLite file and, with `RUNPERMIT_TEST_DATABASE_URL`, on PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::{Api, plan};
use http_body_util::BodyExt;
use runpermit_log::{LogEntry, ProofBundle, decode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Words of the plans that only the plan holds: the public pages must never show them.
const SECRETS: [&str; 4] = [
    "osprey-confidential-run",
    "Trained on the Larkspur private corpus",
    "kestrel-secret-run",
    "safety-framework-v2.pdf",
];

/// An organization name that is also markup: shown as text, never as HTML.
const LAB_NAME: &str = "Frontier <Lab> & Co";

struct World {
    api: Api,
    /// The lab's API token.
    lab: String,
    reviewers: [String; 2],
    /// The standard-tier permit (issued by the policy) and its run.
    standard: (String, String),
    /// The full-tier permit (two reviewers) and its run.
    full: (String, String),
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl World {
    async fn get(&self, path: &str) -> Page {
        let response = self
            .api
            .router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).expect("UTF-8"),
        }
    }

    /// `path`'s HTML, which must answer 200 with the console's headers.
    async fn html(&self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        assert_secure(path, &page.headers);
        for secret in SECRETS {
            assert!(
                !page.body.contains(secret),
                "{path} shows confidential plan content {secret:?}"
            );
        }
        page.body
    }

    async fn sequence(&self) {
        while runpermit_authority::domain::log::sequence_once(&self.api.authority.state)
            .await
            .expect("sequencing")
            > 0
        {}
    }

    async fn log_size(&self) -> i64 {
        let state = self.api.authority.state.store.log_state().await.unwrap();
        state.map_or(0, |s| s.size)
    }
}

#[track_caller]
fn assert_secure(path: &str, headers: &HeaderMap) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{path}: no {name} header"))
            .to_owned()
    };
    let csp = header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{path}: {csp}"
    );
    assert!(
        !csp.contains("script-src"),
        "{path}: no script may run: {csp}"
    );
    assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
    assert_eq!(header("referrer-policy"), "same-origin", "{path}");
    assert!(header("cache-control").starts_with("public"), "{path}");
    assert!(header("content-type").starts_with("text/html"), "{path}");
}

/// A plan with confidential words in it (the run's name and description).
fn secret_plan(name: &str, run_name: &str) -> Value {
    let mut p = plan(name);
    p["run"]["name"] = json!(run_name);
    p["run"]["description"] = json!(SECRETS[1]);
    p
}

async fn world(database_url: &str) -> World {
    let api = Api::on(Some(database_url)).await;
    let a = &api.authority;
    let (_, _, lab) = a
        .member(("org_lab", LAB_NAME), "developer", "applicant")
        .await;
    let (_, _, r1) = a
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    let (_, _, r2) = a
        .member(("org_authority", "Authority"), "authority", "reviewer")
        .await;
    a.member(
        ("northwind-cloud", "Northwind Cloud"),
        "provider",
        "provider_operator",
    )
    .await;
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": secret_plan("standard", SECRETS[0])})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let standard = app["permit_id"].as_str().expect("a permit").to_owned();
    let (status, app) = api
        .call(
            "POST",
            "/v1/applications",
            Some(&lab),
            Some(json!({"plan": secret_plan("full", SECRETS[2])})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let id = app["id"].as_str().expect("an id").to_owned();
    let reviews = format!("/v1/applications/{id}/reviews");
    for (token, reason, condition) in [
        (&r1, "safeguards adequate", "report weekly"),
        (&r2, "second reviewer concurs", "SL4 before 1e26"),
    ] {
        let (status, app) = api
            .call(
                "POST",
                &reviews,
                Some(token),
                Some(json!({"decision": "approve", "reason": reason, "conditions": [condition]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{app}");
    }
    let store = &api.authority.state.store;
    let full = store
        .permits_for_application(&id)
        .await
        .unwrap()
        .pop()
        .expect("the full-tier permit")
        .id;
    let run_of = |permit: String| async move {
        let run = store.run_by_permit(&permit).await.unwrap().expect("a run");
        (permit, run.id)
    };
    let standard = run_of(standard).await;
    let full = run_of(full).await;
    World {
        api,
        lab,
        reviewers: [r1, r2],
        standard,
        full,
    }
}

/// The registry lists both permits, in good standing, with their public facts; each permit's
/// page links its `permit_issued` entry, whose proof verifies against the log's key and
/// whose raw bytes are the entry carrying the permit's token.
async fn a_permit_issued_through_the_api_is_public_and_its_proof_verifies(w: World) {
    let (permit, run) = &w.standard;
    let registry = w.html("/").await;
    assert!(registry.contains("<table id=\"registry\""), "{registry}");
    assert!(registry.contains(&format!("href=\"/permits/{permit}\"")));
    assert!(registry.contains(&w.full.0));
    assert!(registry.contains(run));
    assert!(registry.contains("in good standing"));
    assert!(!registry.contains("not in good standing</span>"));
    assert!(
        registry.contains("Frontier &lt;Lab&gt; &amp; Co"),
        "escaped"
    );
    assert!(!registry.contains("<Lab>"));
    assert!(registry.contains("report weekly") && registry.contains("SL4 before 1e26"));
    assert!(registry.contains("northwind-cloud"));
    assert!(registry.contains("<svg class=\"chart\" id=\"registry-chart\""));
    assert!(registry.contains("EU AI Act"), "thresholds on the chart");
    assert!(registry.contains("2 permits."), "{registry}");

    let page = w.html(&format!("/permits/{permit}")).await;
    assert!(page.contains("in good standing"));
    assert!(page.contains("verified with the authority"), "{page}");
    // How its compute is counted is in the signed token, so it is public: the standard plan's
    // declared bf16 at 38% (35–43%) and its 405B parameters per token.
    assert!(
        page.contains(
            "Compute is counted at bf16 with 38% utilization (35–43%), 405B parameters per token."
        ),
        "{page}"
    );
    let full = w.html(&format!("/permits/{}", w.full.0)).await;
    assert!(
        full.contains(
            "Compute is counted at bf16 with 40% utilization (33–45%), 600B parameters per token."
        ),
        "{full}"
    );
    let index: i64 = page
        .split("<a id=\"log-entry\" href=\"/log/entries/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a#log-entry")
        .parse()
        .expect("an index");

    let entry = w.html(&format!("/log/entries/{index}")).await;
    let proof_href = format!("<a id=\"proof\" href=\"/v1/log/proofs/{index}\"");
    assert!(entry.contains(&proof_href), "{entry}");
    assert!(entry.contains(&format!("<a id=\"raw\" href=\"/log/entries/{index}/raw\"")));
    assert!(entry.contains("permit_issued"));

    let raw = w.get(&format!("/log/entries/{index}/raw")).await;
    assert_eq!(raw.status, StatusCode::OK);
    assert_eq!(raw.headers["content-type"], "application/json");
    assert_eq!(raw.headers["x-content-type-options"], "nosniff");
    let (decoded, _) = decode(raw.body.as_bytes()).expect("the raw bytes are an entry");
    let stored = w
        .api
        .authority
        .state
        .store
        .permit(permit)
        .await
        .unwrap()
        .unwrap();
    match decoded {
        LogEntry::PermitIssued {
            permit_id, token, ..
        } => {
            assert_eq!(&permit_id, permit);
            assert_eq!(
                Some(token),
                stored.token,
                "the entry carries the permit itself"
            );
        }
        other => panic!("entry {index} is {other:?}"),
    }

    let (status, bytes) = w.api.raw(&format!("/v1/log/proofs/{index}")).await;
    assert_eq!(status, StatusCode::OK);
    let bundle = ProofBundle::parse(std::str::from_utf8(&bytes).unwrap()).expect("a bundle");
    let (status, vkey) = w.api.raw("/log/vkey").await;
    assert_eq!(status, StatusCode::OK);
    let vkey = String::from_utf8(vkey).unwrap();
    bundle
        .verify(vkey.trim(), raw.body.as_bytes())
        .expect("the proof verifies against the log's key");
    // A proof of another entry does not prove this one.
    let (_, other) = w.api.raw(&format!("/v1/log/proofs/{}", index - 1)).await;
    let other = ProofBundle::parse(std::str::from_utf8(&other).unwrap()).unwrap();
    assert!(other.verify(vkey.trim(), raw.body.as_bytes()).is_err());

    // Every public page, and every entry, keeps the plans confidential (checked by `html`).
    for path in ["/decisions", "/log", "/status", "/orgs", "/verify"] {
        w.html(path).await;
    }
    for i in 0..w.log_size().await {
        w.html(&format!("/log/entries/{i}")).await;
        let raw = w.get(&format!("/log/entries/{i}/raw")).await;
        assert!(SECRETS.iter().all(|s| !raw.body.contains(s)), "entry {i}");
    }
}

/// Search and filters narrow the registry and the log; a revoked run is not in good standing,
/// with its reason, on the registry, its permit page and the status list.
async fn filters_narrow_what_is_listed_and_standing_follows_the_log(w: World) {
    let (standard, run) = &w.standard;
    let full = &w.full.0;
    let listed = |page: &str, id: &str| page.contains(&format!("href=\"/permits/{id}\""));

    let page = w.html("/?q=frontier+%3Clab").await;
    assert!(
        listed(&page, standard) && listed(&page, full),
        "holder name"
    );
    let page = w.html(&format!("/?q={}", &run[..run.len() - 2])).await;
    assert!(listed(&page, standard) && !listed(&page, full), "run id");
    let page = w.html(&format!("/?q={}", full.to_uppercase())).await;
    assert!(!listed(&page, standard) && listed(&page, full), "permit id");
    let page = w.html("/?q=nobody+at+all").await;
    assert!(!listed(&page, standard) && !listed(&page, full));
    assert!(page.contains("No permit matches."));
    let page = w.html("/?tier=standard").await;
    assert!(listed(&page, standard) && !listed(&page, full), "tier");
    let page = w.get("/?tier=galactic").await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("unknown tier"), "{}", page.body);
    assert_secure("/?tier=galactic", &page.headers);
    assert_eq!(
        w.get("/?standing=maybe").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        w.get("/?page=0").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let (status, body) = w
        .api
        .call(
            "POST",
            &format!("/v1/runs/{run}/revoke"),
            Some(&w.reviewers[0]),
            Some(json!({"reason": "weights security failed audit"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    w.sequence().await;

    let page = w.html("/?standing=not").await;
    assert!(listed(&page, standard) && !listed(&page, full), "{page}");
    assert!(page.contains("not in good standing"));
    assert!(
        page.contains("revoked: weights security failed audit"),
        "{page}"
    );
    let page = w.html("/?standing=good").await;
    assert!(!listed(&page, standard) && listed(&page, full));
    let page = w.html(&format!("/permits/{standard}")).await;
    assert!(
        page.contains("not in good standing") && page.contains("weights security failed audit")
    );
    assert!(
        page.contains("run_revoked") || page.contains("revoked"),
        "{page}"
    );
    let status = w.html("/status").await;
    assert!(status.contains(standard.as_str()) && status.contains("weights security failed audit"));
    assert!(!status.contains(full.as_str()));

    // The log, by type, permit, run and organization.
    let rows = |page: &str| {
        page.matches("<td class=\"num\"><a href=\"/log/entries/")
            .count()
    };
    let all = w.html("/log").await;
    assert!(
        all.contains("Latest checkpoint") && all.contains("— authority.test/log"),
        "{all}"
    );
    assert_eq!(rows(&all) as i64, w.log_size().await);
    let decisions = w.html("/log?type=decision").await;
    assert!(rows(&decisions) >= 2);
    assert_eq!(
        decisions.matches("<code>decision</code>").count(),
        rows(&decisions)
    );
    let by_permit = w.html(&format!("/log?permit={standard}")).await;
    assert_eq!(rows(&by_permit), 2, "issued, revoked: {by_permit}");
    assert!(by_permit.contains("<code>run_revoked</code>"));
    let by_run = w.html(&format!("/log?run={run}")).await;
    assert_eq!(rows(&by_run), 2);
    let by_org = w.html("/log?org=org_lab").await;
    assert!(
        rows(&by_org) >= 7,
        "submissions, decisions, permits, revocation"
    );
    let provider = w.html("/log?org=northwind-cloud").await;
    assert_eq!(rows(&provider), 2, "the two permits that name it");
    let nobody = w.html("/log?org=org_authority").await;
    assert_eq!(rows(&nobody), 0);
    assert_eq!(
        w.get("/log?type=bogus").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        w.get("/log/entries/abc").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        w.get("/log/entries/100000").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.get("/permits/per_nothing").await.status,
        StatusCode::NOT_FOUND
    );

    // Decisions with their public reasons; the organizations the log names, without members.
    let decisions = w.html("/decisions").await;
    assert!(decisions.contains("second reviewer concurs"), "{decisions}");
    assert!(decisions.contains("approved"));
    let orgs = w.html("/orgs").await;
    assert!(orgs.contains("Frontier &lt;Lab&gt; &amp; Co") && orgs.contains("Northwind Cloud"));
    assert!(
        !orgs.contains("org_authority"),
        "the authority is named by no entry"
    );
    assert!(
        !orgs.contains("applicant of") && !orgs.contains("reviewer of"),
        "no members"
    );
    let verify = w.html("/verify").await;
    assert!(verify.contains("runpermit log verify") && verify.contains("--proof"));
    assert!(verify.contains(&w.api.authority.state.log.vkey));
}

/// A model registered through the API is on `/models` and its own page, with its developer,
/// run, permit, checkpoint, compute and release plan, and the permit's page links it; no
/// public page shows a grant of access to it, even once one is issued and logged.
async fn registered_models_are_public_and_grants_are_not(w: World) {
    let (permit, run) = &w.standard;
    let checkpoint = format!("sha256:{}", "ab".repeat(32));
    let (status, model) = w
        .api
        .call(
            "POST",
            "/v1/models",
            Some(&w.lab),
            Some(
                json!({"name": "Osprey <1>", "run_id": run, "checkpoint_digest": checkpoint,
                        "cumulative_flop": 8.4e24, "release_plan": "staged API access"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    let id = model["id"].as_str().expect("an id").to_owned();
    let models = w.html("/models").await;
    assert!(
        models.contains("<a href=\"/models\">Models</a>"),
        "in the public navigation"
    );
    let row = models
        .split("<table id=\"models\"")
        .nth(1)
        .expect("table#models");
    for text in [
        format!("href=\"/models/{id}\""),
        "Osprey &lt;1&gt;".to_owned(),
        "Frontier &lt;Lab&gt; &amp; Co".to_owned(),
        format!("href=\"/permits/{permit}\""),
        run.clone(),
        checkpoint.clone(),
        "8.40e24 FLOP".to_owned(),
        "staged API access".to_owned(),
    ] {
        assert!(row.contains(&text), "{text}: {models}");
    }
    let page = w.html(&format!("/models/{id}")).await;
    assert!(
        page.contains("Model Osprey &lt;1&gt;") && page.contains(&checkpoint),
        "{page}"
    );
    assert!(page.contains(&format!("href=\"/permits/{permit}\"")));
    let permit_page = w.html(&format!("/permits/{permit}")).await;
    assert!(
        permit_page.contains(&format!(
            "<ul id=\"run-models\"><li><a href=\"/models/{id}\">"
        )),
        "{permit_page}"
    );
    let other = w.html(&format!("/permits/{}", w.full.0)).await;
    assert!(
        !other.contains("run-models"),
        "another run's permit lists no model"
    );
    assert_eq!(
        w.get("/models/mdl_nothing").await.status,
        StatusCode::NOT_FOUND
    );

    // A researcher is granted sampling access; the grant is logged, and still no public page
    // shows it.
    let (_, _, researcher) = w
        .api
        .authority
        .member(("org_uni", "University Lab"), "developer", "applicant")
        .await;
    let (status, request) = w
        .api
        .call(
            "POST",
            "/v1/access-requests",
            Some(&researcher),
            Some(
                json!({"model_id": id, "tier": "api_sampling", "purpose": "refusal study",
                        "research_plan_digest": format!("sha256:{}", "01".repeat(32)),
                        "agreement_digest": format!("sha256:{}", "02".repeat(32)),
                        "days": 30}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    let (status, decided) = w
        .api
        .call(
            "POST",
            &format!(
                "/v1/access-requests/{}/review",
                request["id"].as_str().unwrap()
            ),
            Some(&w.reviewers[0]),
            Some(json!({"approve": true, "reason": "public interest"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    let grant = decided["grant_id"].as_str().expect("a grant").to_owned();
    w.sequence().await;
    for path in [
        "/models".to_owned(),
        format!("/models/{id}"),
        format!("/permits/{permit}"),
        "/".to_owned(),
    ] {
        let html = w.html(&path).await;
        assert!(
            !html.contains(&grant) && !html.contains("refusal study"),
            "{path} shows a grant"
        );
    }
}

common::on_both! {
    world:
    models_on_sqlite, models_on_postgres
        => registered_models_are_public_and_grants_are_not;
    registry_on_sqlite, registry_on_postgres
        => a_permit_issued_through_the_api_is_public_and_its_proof_verifies;
    filters_on_sqlite, filters_on_postgres
        => filters_narrow_what_is_listed_and_standing_follows_the_log;
}
