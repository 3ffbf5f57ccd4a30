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
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
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
