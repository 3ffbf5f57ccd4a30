//! Benchmark of usage ingestion as the authority runs it: signed usage reports posted to
//! `POST /v1/usage` through the router (JSON parsing, signature verification on every core,
//! the permit-scope checks and the durable, all-or-nothing store transaction included),
//! compared with the raw Ed25519 verification rate of the same machine.
//!
//! ```sh
//! cargo run --release -p runpermit-authority --example usage_bench -- sqlite:///tmp/usage.db 200000 [BATCH] [IN_FLIGHT]
//! cargo run --release -p runpermit-authority --example usage_bench -- 'postgres://postgres@127.0.0.1/test?options=-c%20search_path%3Dusage_bench' 200000
//! ```
//!
//! The database must be empty (a new SQLite file, or a new PostgreSQL schema). BATCH reports
//! per request (default 1000), IN_FLIGHT concurrent requests (default 2). Prints figures;
//! asserts nothing about time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use runpermit_authority::testing::TestAuthority;
use runpermit_compute::Flop;
use runpermit_permit::{Jwks, SigningKey};
use runpermit_permit::{MeterMethod, Metered, UsageReportClaims, sign_usage_report};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(router: &axum::Router, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut request = Request::post(path).header("content-type", "application/json");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {value}");
    value
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "sqlite::memory:".into());
    let n: u64 = args
        .next()
        .map(|s| s.parse().expect("N"))
        .unwrap_or(200_000);
    let batch: usize = args
        .next()
        .map(|s| s.parse().expect("BATCH"))
        .unwrap_or(1000);
    let in_flight: usize = args
        .next()
        .map(|s| s.parse().expect("IN_FLIGHT"))
        .unwrap_or(2);
    let authority = TestAuthority::new(Some(&url)).await;
    let router = runpermit_authority::router(authority.state.clone());
    println!("database: {}", url.split('?').next().unwrap_or(&url));

    // A standard-tier run at one provider, whose reporting key is registered.
    let (_, _, lab) = authority
        .member(("org_lab", "Lab"), "developer", "applicant")
        .await;
    let (_, _, admin) = authority
        .member(("org_cloud", "Cloud"), "provider", "admin")
        .await;
    let key = SigningKey::generate();
    call(
        &router,
        "/v1/orgs/org_cloud/reporting-keys",
        Some(&admin),
        json!({"jwk": key.public().to_jwk()}),
    )
    .await;
    let mut plan: Value = serde_json::to_value(
        runpermit_policy::RunPlan::from_toml(include_str!("../../../examples/plans/standard.toml"))
            .expect("plan"),
    )
    .expect("JSON");
    plan["providers"] = json!([{"provider": "org_cloud", "clusters": ["east"]}]);
    let app = call(
        &router,
        "/v1/applications",
        Some(&lab),
        json!({"plan": plan}),
    )
    .await;
    let permit_id = app["permit_id"].as_str().expect("permit").to_owned();
    let run_id = authority
        .state
        .store
        .permit(&permit_id)
        .await
        .unwrap()
        .unwrap()
        .run_id;

    // Sign the reports ahead (the gate's work, not the authority's).
    let started = Instant::now();
    let tokens: Vec<String> = (1..=n)
        .map(|seq| {
            let flop = Flop::new(1e18).unwrap();
            let claims = UsageReportClaims::new(
                "org_cloud",
                &run_id,
                &permit_id,
                "east",
                seq,
                (
                    1_796_083_200 + 300 * seq as i64,
                    1_796_083_500 + 300 * seq as i64,
                ),
                1_796_083_501 + 300 * seq as i64,
                Metered {
                    method: MeterMethod::DcgmTensorActivity,
                    accelerator_seconds: BTreeMap::from([("h100-sxm".to_owned(), 2457.6)]),
                    flop,
                    lower: Flop::new(5e17).unwrap(),
                    upper: Flop::new(4.9e18).unwrap(),
                },
            );
            sign_usage_report(&claims, &key).expect("sign")
        })
        .collect();
    println!(
        "signed {n} reports in {:.1} s ({} bytes each)",
        started.elapsed().as_secs_f64(),
        tokens[0].len()
    );

    // Raw Ed25519: one signature check of a report-sized message, nothing else.
    let raw_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let message = tokens[0].as_bytes();
    let signature = ed25519_dalek::Signer::sign(&raw_key, message);
    let verifying = raw_key.verifying_key();
    let rounds = 20_000;
    let started = Instant::now();
    for _ in 0..rounds {
        verifying
            .verify_strict(message, &signature)
            .expect("verifies");
    }
    let raw_one_core = f64::from(rounds) / started.elapsed().as_secs_f64();
    println!(
        "raw Ed25519 verification (verify_strict, {} bytes): {raw_one_core:.0}/s on one core",
        message.len()
    );

    // The bound: verification of the same reports as ingestion does it (JWS parse, Ed25519,
    // claims), one core, then every core.
    let jwks = Jwks::from_keys(&[key.public()]);
    let sample = &tokens[..tokens.len().min(50_000)];
    let started = Instant::now();
    for t in sample {
        runpermit_permit::verify_usage_report(t, &jwks).expect("verifies");
    }
    let one_core = sample.len() as f64 / started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    std::thread::scope(|s| {
        for part in sample.chunks(sample.len().div_ceil(cores)) {
            let jwks = &jwks;
            s.spawn(move || {
                for t in part {
                    runpermit_permit::verify_usage_report(t, jwks).expect("verifies");
                }
            });
        }
    });
    let all_cores = sample.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "verification bound (JWS parse + Ed25519 + claims): {one_core:.0}/s on one core, \
         {all_cores:.0}/s on {cores} cores"
    );

    // Ingest: IN_FLIGHT requests at a time, BATCH reports each, in seq order per request.
    let batches: Vec<Vec<String>> = tokens.chunks(batch).map(<[String]>::to_vec).collect();
    let queue = Arc::new(std::sync::Mutex::new(batches.into_iter()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..in_flight {
        let queue = Arc::clone(&queue);
        let router = router.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let next = queue.lock().unwrap().next();
                let Some(reports) = next else { break };
                let t = Instant::now();
                let body = json!({ "reports": reports }).to_string();
                let response = router
                    .clone()
                    .oneshot(
                        Request::post("/v1/usage")
                            .header("content-type", "application/json")
                            .body(Body::from(body))
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                let answer: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(answer["stored"].as_u64(), Some(reports.len() as u64));
                latencies.push(t.elapsed().as_secs_f64());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let rate = n as f64 / elapsed;
    println!(
        "ingested {n} reports durably in {elapsed:.1} s: {rate:.0} reports/s \
         ({batch} per request, {in_flight} in flight; request p50 {:.0} ms, p99 {:.0} ms)",
        latencies[latencies.len() / 2] * 1000.0,
        latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)] * 1000.0
    );
    println!(
        "ratio to the verification bound on {cores} cores: {:.2} (to one core: {:.2}); \
         to raw Ed25519 on {cores} cores: {:.2}",
        rate / all_cores,
        rate / one_core,
        rate / (raw_one_core * cores as f64)
    );
    let run = authority.state.store.run(&run_id).await.unwrap().unwrap();
    assert!((run.cumulative_flop - n as f64 * 1e18).abs() < 1e12 * n as f64);
    println!(
        "run cumulative: {:e} FLOP (expected {:e})",
        run.cumulative_flop,
        n as f64 * 1e18
    );
}
