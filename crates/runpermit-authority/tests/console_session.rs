//! Console sessions (issue 13): signing in with an API token gives an HttpOnly, SameSite=Strict
//! cookie whose session lives in the database; forms need the session's anti-forgery token and
//! a same-origin post; sign-out, expiry and a revoked token end the session; sign-in and
//! sign-out are audited as the person.

mod common;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use runpermit_authority::http::console::session::{COOKIE, SESSION_MS};
use serde_json::Value;
use tower::ServiceExt as _;

use common::Api;

/// One request to the console: (status, headers, body text).
async fn send(
    router: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "authority.test");
    if let Some(secret) = cookie {
        request = request.header(header::COOKIE, format!("{COOKIE}={secret}"));
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = match form {
        Some(f) => request
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f.to_owned())),
        None => request.body(Body::empty()),
    }
    .expect("request");
    let response = router.clone().oneshot(request).await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Signs in with `token`; returns the cookie's secret and the whole `Set-Cookie` line.
async fn sign_in(router: &Router, token: &str, next: &str) -> (String, String) {
    let (status, headers, body) = send(
        router,
        "POST",
        "/console/sign-in",
        None,
        Some(&encode(&[("token", token), ("next", next)])),
        &[("origin", "http://authority.test")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers[header::LOCATION], next);
    let line = headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    let secret = line
        .split(';')
        .next()
        .and_then(|p| p.strip_prefix(&format!("{COOKIE}=")))
        .expect("the session cookie")
        .to_owned();
    (secret, line)
}

/// The anti-forgery token in a page's sign-out form.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

async fn audit_actions(api: &Api, admin: &str) -> Vec<(String, Option<String>)> {
    let (status, events) = api.call("GET", "/v1/audit", Some(admin), None).await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["actor_member_id"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn a_session_from_sign_in_to_sign_out(database_url: Option<&str>) {
    let api = Api::on(database_url).await;
    let a = &api.authority;
    let (_, reviewer_id, reviewer) = a
        .member(
            ("org_authority", "Licensing Office"),
            "authority",
            "reviewer",
        )
        .await;
    let (_, _, admin) = a
        .member(("org_authority", "Licensing Office"), "authority", "admin")
        .await;
    let router = &api.router;

    // Signed out: the desk sends the person to sign in and back.
    let (status, headers, _) = send(router, "GET", "/console", None, None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/console/sign-in?next=%2Fconsole"
    );
    let (status, _, page) = send(router, "GET", "/console/sign-in", None, None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<label for=\"token\">"), "{page}");

    // A wrong token is refused with a clear message and no cookie.
    let (status, headers, page) = send(
        router,
        "POST",
        "/console/sign-in",
        None,
        Some(&encode(&[("token", "rpt_not-a-token")])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("unknown, revoked or expired"), "{page}");
    assert!(headers.get(header::SET_COOKIE).is_none());

    // Signing in: a strict, HttpOnly cookie living at most the session's length, and only a
    // local path to go back to.
    let (secret, line) = sign_in(router, &reviewer, "/console").await;
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(line.contains(part), "{part} in {line}");
    }
    assert!(!line.contains("Secure"), "plain HTTP: {line}");
    assert!(
        line.contains(&format!("Max-Age={}", SESSION_MS / 1000)),
        "{line}"
    );
    assert!(
        !secret.contains(&reviewer),
        "the cookie is not the API token"
    );
    let (away, _) = sign_in(router, &reviewer, "/console").await;
    assert_ne!(away, secret, "every sign-in makes a new session");

    let (status, headers, page) = send(router, "GET", "/console", Some(&secret), None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("reviewer of Licensing Office"), "{page}");
    assert_eq!(headers[header::CACHE_CONTROL], "private, no-store");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    let csrf = csrf_of(&page);

    // Sign-out without the anti-forgery token, with another one, or from another site: refused,
    // and the session goes on.
    for (form, headers) in [
        (String::new(), vec![]),
        (encode(&[("csrf", &"0".repeat(64))]), vec![]),
        (
            encode(&[("csrf", &csrf)]),
            vec![("origin", "https://elsewhere.example")],
        ),
        (
            encode(&[("csrf", &csrf)]),
            vec![("sec-fetch-site", "cross-site")],
        ),
    ] {
        let (status, _, page) = send(
            router,
            "POST",
            "/console/sign-out",
            Some(&secret),
            Some(&form),
            &headers,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form} {headers:?}: {page}");
    }
    let (status, _, _) = send(router, "GET", "/console", Some(&secret), None, &[]).await;
    assert_eq!(status, StatusCode::OK);

    // A genuine sign-out ends the session everywhere and clears the cookie.
    let (status, headers, _) = send(
        router,
        "POST",
        "/console/sign-out",
        Some(&secret),
        Some(&encode(&[("csrf", &csrf)])),
        &[("origin", "http://authority.test")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _, _) = send(router, "GET", "/console", Some(&secret), None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out");
    // A signed-out session cannot act, even with its old form.
    let (status, headers, _) = send(
        router,
        "POST",
        "/console/sign-out",
        Some(&secret),
        Some(&encode(&[("csrf", &csrf)])),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/console/sign-in")
    );

    // Expiry: the other session ends after SESSION_MS.
    let (status, _, _) = send(router, "GET", "/console", Some(&away), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    a.clock.advance_ms(SESSION_MS);
    let (status, _, _) = send(router, "GET", "/console", Some(&away), None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "expired");

    // Sign-in and sign-out are audited as the person.
    let actions = audit_actions(&api, &admin).await;
    let mine = |action: &str| {
        actions
            .iter()
            .filter(|(a, who)| a == action && who.as_deref() == Some(reviewer_id.as_str()))
            .count()
    };
    assert_eq!(mine("session.create"), 2, "{actions:?}");
    assert_eq!(mine("session.end"), 1, "{actions:?}");
}

async fn revoking_the_token_ends_its_sessions(database_url: Option<&str>) {
    let api = Api::on(database_url).await;
    let (_, member_id, lab) = api
        .authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let (secret, _) = sign_in(&api.router, &lab, "/console").await;
    let (status, _, _) = send(&api.router, "GET", "/console", Some(&secret), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, tokens) = api
        .call(
            "GET",
            &format!("/v1/members/{member_id}/tokens"),
            Some(&lab),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token_id = tokens[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call(
            "POST",
            &format!("/v1/tokens/{token_id}/revoke"),
            Some(&lab),
            Some(Value::Object(Default::default())),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let (status, _, _) = send(&api.router, "GET", "/console", Some(&secret), None, &[]).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the session died with its token"
    );
}

#[tokio::test]
async fn sessions_on_sqlite() {
    a_session_from_sign_in_to_sign_out(None).await;
    revoking_the_token_ends_its_sessions(None).await;
}

#[tokio::test]
async fn sessions_on_postgresql() {
    if let Some(db) = common::PgSchema::create("console_sessions") {
        a_session_from_sign_in_to_sign_out(Some(&db.url)).await;
    }
    if let Some(db) = common::PgSchema::create("console_revoke") {
        revoking_the_token_ends_its_sessions(Some(&db.url)).await;
    }
}

#[tokio::test]
async fn a_session_is_shared_by_every_process_on_the_database() {
    // Two authorities (two `serve` processes) on one database file: a session made by one is
    // honoured by the other.
    let (dir, url) = common::sqlite_file("console-shared");
    let one = Api::on(Some(&url)).await;
    let two = Api::on(Some(&url)).await;
    let (_, _, token) = one
        .authority
        .member(
            ("org_eval", "Evaluation Institute"),
            "evaluator",
            "evaluator",
        )
        .await;
    let (secret, _) = sign_in(&one.router, &token, "/console").await;
    let (status, _, page) = send(&two.router, "GET", "/console", Some(&secret), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Evaluation Institute"), "{page}");
    drop((one, two));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn console_forms_spend_the_token_s_write_limits() {
    // A person at the console writes as the token their session was made with: its write
    // limits apply, and the refusal is a page.
    let mut authority = runpermit_authority::testing::TestAuthority::new(None).await;
    let config: runpermit_authority::domain::limits::LimitsConfig = serde_json::from_value(
        serde_json::json!({"defaults": {"writes_per_token": {"burst": 2, "count": 2, "period": "1m"}}}),
    )
    .expect("a limits section");
    authority.state.authority.limits = std::sync::Arc::new(
        runpermit_authority::domain::limits::Limits::new(config).expect("valid limits"),
    );
    let router = runpermit_authority::router(authority.state.clone());
    let (_, _, token) = authority
        .member(
            ("org_authority", "Licensing Office"),
            "authority",
            "reviewer",
        )
        .await;
    let (secret, _) = sign_in(&router, &token, "/console").await;
    let (_, _, page) = send(&router, "GET", "/console", Some(&secret), None, &[]).await;
    let csrf = csrf_of(&page);
    let review = encode(&[("csrf", &csrf), ("decision", "approve"), ("reason", "fine")]);
    let post = async || {
        send(
            &router,
            "POST",
            "/console/applications/app_none/review",
            Some(&secret),
            Some(&review),
            &[],
        )
        .await
    };
    for _ in 0..2 {
        let (status, _, page) = post().await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    }
    let (status, headers, page) = post().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.contains("writes_per_token"), "{page}");
    assert_eq!(headers[header::RETRY_AFTER], "30");
    // Reading is not writing.
    let (status, _, _) = send(&router, "GET", "/console", Some(&secret), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
}
