//! The in-process harness shared by the API test suites: the router over a test authority,
//! called like an HTTP client would, and the example plans.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use runpermit_authority::testing::TestAuthority;
use runpermit_permit::Jwks;
use runpermit_policy::RunPlan;
use serde_json::Value;
use tower::ServiceExt;

pub fn plan(name: &str) -> Value {
    let text = match name {
        "exempt" => include_str!("../../../../examples/plans/exempt.toml"),
        "standard" => include_str!("../../../../examples/plans/standard.toml"),
        "full" => include_str!("../../../../examples/plans/full.toml"),
        "horizon" => include_str!("../../../../examples/plans/horizon.toml"),
        other => panic!("no example plan {other}"),
    };
    let plan = RunPlan::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    serde_json::to_value(plan).expect("plan as JSON")
}

/// The `field` of every error in a 422 body, in order.
pub fn error_fields(body: &Value) -> Vec<&str> {
    body["errors"]
        .as_array()
        .expect("an errors array")
        .iter()
        .map(|e| e["field"].as_str().expect("a field"))
        .collect()
}

pub struct Api {
    pub authority: TestAuthority,
    pub router: Router,
}

impl Api {
    pub async fn new() -> Api {
        Api::on(None).await
    }

    /// An API over a test authority on `database_url` (in-memory SQLite when `None`).
    pub async fn on(database_url: Option<&str>) -> Api {
        let authority = TestAuthority::new(database_url).await;
        let router = runpermit_authority::router(authority.state.clone());
        Api { authority, router }
    }

    /// As [`Api::on`], under `policy` instead of the built-in one.
    pub async fn with_policy(database_url: Option<&str>, policy: runpermit_policy::Policy) -> Api {
        let mut authority = TestAuthority::new(database_url).await;
        authority.state.authority.policy = std::sync::Arc::new(policy);
        let router = runpermit_authority::router(authority.state.clone());
        Api { authority, router }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = match body {
            Some(b) => request
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => request.body(Body::empty()),
        }
        .expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        assert_documented(method, path, status, &content_type, &value);
        (status, value)
    }

    pub async fn raw(&self, path: &str) -> (StatusCode, Vec<u8>) {
        let request = Request::get(path).body(Body::empty()).expect("request");
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, bytes.to_vec())
    }

    pub async fn jwks(&self) -> Jwks {
        let (status, body) = self.call("GET", "/.well-known/jwks.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        serde_json::from_value(body).expect("JWKS")
    }
}

/// The OpenAPI document, generated once per test binary.
pub fn openapi() -> &'static Value {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(runpermit_authority::openapi_document)
}

/// The document's path template that `path` (without its query) matches, if any.
pub fn template_of(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    openapi()["paths"]
        .as_object()?
        .keys()
        .find(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            // `/log/tile/{path}` takes the rest of the path.
            let rest = parts.last() == Some(&"{path}");
            (parts.len() == segments.len() || rest && segments.len() >= parts.len())
                && parts.iter().zip(&segments).all(|(p, s)| {
                    p == s || (p.starts_with('{') && p.ends_with('}') && !s.is_empty())
                })
        })
        .map(String::as_str)
}

/// Every answer the tests get holds to the OpenAPI document: its status is documented for
/// the operation, and a JSON body conforms to the schema documented for that status (a field
/// the schema does not describe is a failure too).
pub fn assert_documented(
    method: &str,
    path: &str,
    status: StatusCode,
    content_type: &str,
    body: &Value,
) {
    let doc = openapi();
    let Some(template) = template_of(path) else {
        return;
    };
    let operation = &doc["paths"][template][method.to_ascii_lowercase()];
    if operation.is_null() {
        return;
    }
    let mut response = &operation["responses"][status.as_str()];
    assert!(
        !response.is_null(),
        "{method} {template} answered {status}, which the OpenAPI document does not list: {body}"
    );
    if let Some(reference) = response["$ref"].as_str() {
        response = runpermit_api::check::resolve(doc, reference).expect("a response");
    }
    let media = content_type.split(';').next().unwrap_or("").trim();
    let documented = response["content"]
        .as_object()
        .and_then(|c| {
            c.iter()
                .find(|(k, _)| k.split(';').next().unwrap_or("").trim() == media)
        })
        .map(|(_, v)| v);
    let Some(documented) = documented else {
        panic!(
            "{method} {template} answered {status} as {content_type:?}, which the OpenAPI \
             document does not list: {body}"
        );
    };
    if media == "application/json" {
        let problems = runpermit_api::check::problems(doc, &documented["schema"], body);
        assert!(
            problems.is_empty(),
            "{method} {template} answered {status} with a body that departs from the OpenAPI \
             document: {problems:#?}\n{body:#}"
        );
    }
}

/// A PostgreSQL schema of its own for one test, dropped when it ends (even when it fails).
/// `None` when `RUNPERMIT_TEST_DATABASE_URL` is unset, which under `CI` is a failure.
pub struct PgSchema {
    admin_url: String,
    name: String,
    /// A URL whose connections use only this schema.
    pub url: String,
}

impl PgSchema {
    /// Creates a schema named `prefix_<random>`.
    pub fn create(prefix: &str) -> Option<PgSchema> {
        let Ok(admin_url) = std::env::var("RUNPERMIT_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL suite: set RUNPERMIT_TEST_DATABASE_URL"
            );
            println!("PostgreSQL skipped: set RUNPERMIT_TEST_DATABASE_URL=postgres://… to run it");
            return None;
        };
        let name = format!(
            "{prefix}_{}",
            runpermit_authority::domain::ids::new_id("x").trim_start_matches("x_")
        );
        psql(&admin_url, &format!("CREATE SCHEMA {name}"));
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        Some(PgSchema {
            url: format!("{admin_url}{sep}options=-c%20search_path%3D{name}"),
            admin_url,
            name,
        })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &self.admin_url,
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ])
            .output();
    }
}

fn psql(url: &str, sql: &str) {
    let output = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("running psql");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A SQLite file of its own in a fresh directory (removed by the caller), for tests that run
/// several authorities on one database or edit it beside the authority: (directory, URL).
pub fn sqlite_file(prefix: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!(
        "runpermit-{prefix}-{}",
        runpermit_authority::domain::ids::new_id("t")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("authority.db").display());
    (dir, url)
}

/// Defines, for each `scenario`, a test on a SQLite file of its own and one on PostgreSQL
/// (when `RUNPERMIT_TEST_DATABASE_URL` is set), each given `$world(&url).await`.
#[allow(unused_macros, reason = "each test binary uses part of the harness")]
macro_rules! on_both {
    ($world:ident: $($sqlite:ident, $postgres:ident => $scenario:ident;)+) => {
        $(
            #[tokio::test]
            async fn $sqlite() {
                let (dir, url) = common::sqlite_file(stringify!($sqlite));
                $scenario($world(&url).await).await;
                let _ = std::fs::remove_dir_all(&dir);
            }

            #[tokio::test]
            async fn $postgres() {
                if let Some(db) = common::PgSchema::create(stringify!($postgres)) {
                    $scenario($world(&db.url).await).await;
                }
            }
        )+
    };
}
#[allow(unused_imports, reason = "each test binary uses part of the harness")]
pub(crate) use on_both;
