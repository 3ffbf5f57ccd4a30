//! Benchmark of the structured-access enforcement point (issue 15):
//!
//! 1. grant checks per second on one core: the pure `check` in a loop on one thread, for a
//!    valid grant with its log proof and a fresh status list, beside its two cryptographic
//!    parts measured alone (the crate caches neither: every request pays both);
//! 2. the gateway's overhead per request: N sequential chat completions straight to a
//!    minimal OpenAI-compatible upstream and N through the gateway in front of it,
//!    alternating, same keep-alive client, p50/p99 of each and the difference at each
//!    percentile, beside the ledger's two durable writes per request timed alone.
//!
//! `cargo run --release -p runpermit-access --example gateway_bench [-- N]` (N defaults to
//! 2000). Prints a table; asserts nothing about timings. Everything is real: an Ed25519
//! authority key, grants signed by it, a transparency log of 1024 `access_granted` entries
//! with a signed checkpoint, the grant's inclusion proof from it, the gateway's ledger on
//! disk in a temporary folder.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use runpermit_access::gateway::{Gateway, PROOF_HEADER, system_clock};
use runpermit_access::{AccessRequest, Anchors, Code, GatewayConfig, GrantUsage, Ledger, check};
use runpermit_gate::StatusListCache;
use runpermit_log::{
    Checkpoint, Hash, LogEntry, LogKey, ProofBundle, append, encode, inclusion_proof, leaf_hash,
    sign_checkpoint,
};
use runpermit_permit::{
    AccessGrantRequest, AccessTier, Duties, GrantOrigin, GrantedModel, Grantee, Jwks, Quotas, Rate,
    SigningKey, StatusListClaims, check_access_grant, sign_access_grant, sign_status_list,
    verify_access_grant_signature,
};
use serde_json::{Value, json};

const AUTHORITY: &str = "https://authority.example";
const LOG_NAME: &str = "log.example.org/runpermit";
const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
/// Entries in the benchmark's log (the proof is a 10-hash inclusion path).
const LOG_SIZE: usize = 1024;
/// Where in the log the measured grant's entry sits.
const GRANT_INDEX: usize = 700;
/// Iterations of each check loop per round.
const CHECK_ITERATIONS: u32 = 1000;
/// Rounds of each check loop.
const CHECK_ROUNDS: usize = 7;

fn main() {
    let n: usize = match std::env::args().nth(1) {
        None => 2000,
        Some(a) => a.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| {
            eprintln!("usage: gateway_bench [N]: N, the requests per side, is a positive integer (got {a:?})");
            std::process::exit(2)
        }),
    };
    let now = (system_clock())().div_euclid(1000);
    let world = World::new(now);
    let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
    println!(
        "runpermit-access gateway benchmark ({cores} CPUs visible; timings are not asserted)\n"
    );
    checks(&world, now);
    println!();
    overhead(&world, now, n);
}

/// Keys, one grant with its proof from a log of `LOG_SIZE` entries.
struct World {
    authority: SigningKey,
    jwks: Jwks,
    vkey: String,
    grant: String,
    proof: String,
}

fn grant_request(jti: &str, now: i64) -> AccessGrantRequest {
    AccessGrantRequest {
        iss: AUTHORITY.into(),
        jti: jti.into(),
        nbf: now - 3600,
        exp: now + 30 * 86_400,
        grantee: Grantee {
            org_id: "org_uni".into(),
            member_id: "mem_ada".into(),
            name: "Example University".into(),
        },
        developer: "org_dev".into(),
        model: GrantedModel {
            model_id: "mdl_1".into(),
            name: "example-7b".into(),
            checkpoint_digest: DIGEST.into(),
        },
        tier: AccessTier::ApiSampling,
        // The largest plausible quotas and rate, so that the benchmark is never refused: the
        // quota and GCRA checks still run on every request.
        quotas: Quotas {
            tokens: Some(10_000_000_000_000),
            requests: Some(10_000_000_000),
            accelerator_hours: None,
        },
        rate: Rate {
            burst: 1_000_000,
            count: 1_000_000_000,
            period_seconds: 1,
        },
        purpose: "Benchmarking the gateway.".into(),
        research_plan_digest: DIGEST.into(),
        agreement_digest: DIGEST.into(),
        duties: Duties {
            usage_report_interval_seconds: 3600,
            publication_review_days: 30,
            incident_report_hours: 72,
        },
        origin: GrantOrigin::Application {
            application_id: "aap_1".into(),
        },
    }
}

impl World {
    fn new(now: i64) -> World {
        let authority = SigningKey::from_seed(&[1; 32]);
        let jwks = Jwks::from_keys(&[authority.public()]);
        let log_key = LogKey::from_seed(LOG_NAME, &[2; 32]).expect("a valid log key");
        let tokens: Vec<(String, String)> = (0..LOG_SIZE)
            .map(|i| {
                let jti = format!("agr_{i}");
                let checked = check_access_grant(grant_request(&jti, now), now - 3600)
                    .expect("the benchmark's grant request is valid");
                (jti, sign_access_grant(checked, &authority).token)
            })
            .collect();
        let bytes: Vec<Vec<u8>> = tokens
            .iter()
            .map(|(jti, token)| {
                let entry = LogEntry::AccessGranted {
                    grant_id: jti.clone(),
                    model_id: "mdl_1".into(),
                    grantee_org_id: "org_uni".into(),
                    tier: AccessTier::ApiSampling.as_str().into(),
                    token: token.clone(),
                };
                encode(&entry, now - 3600).expect("a valid log entry")
            })
            .collect();
        let leaves: Vec<Hash> = bytes.iter().map(|b| leaf_hash(b)).collect();
        let appended = append(0, &leaves, &Vec::<Hash>::new()).expect("appending to an empty log");
        let stored = appended.hashes;
        let size = LOG_SIZE as u64;
        let checkpoint = sign_checkpoint(
            &Checkpoint {
                origin: log_key.name().to_owned(),
                size,
                root_hash: appended.root,
            },
            &log_key,
        )
        .expect("a signed checkpoint");
        let index = GRANT_INDEX as u64;
        let proof = ProofBundle {
            index,
            entry: Some(bytes[GRANT_INDEX].clone()),
            proof: inclusion_proof(index, size, &stored).expect("an inclusion proof"),
            checkpoint,
        }
        .to_string();
        World {
            grant: tokens[GRANT_INDEX].1.clone(),
            proof,
            vkey: log_key.verifier_key(),
            authority,
            jwks,
        }
    }

    fn status_token(&self, now: i64) -> String {
        sign_status_list(
            &StatusListClaims::new(AUTHORITY, now - 60, 3600, 1, vec![]),
            &self.authority,
        )
    }

    /// The gateway configuration, its upstream at `upstream`.
    fn config_text(&self, upstream: &str) -> String {
        format!(
            r#"
authority_url = "http://127.0.0.1:9"
jwks = "jwks.json"
log_vkey = "{}"
developer_id = "org_dev"
model_id = "mdl_1"
checkpoint_digest = "{DIGEST}"
served_model = "example-7b"
upstream_url = "{upstream}"
upstream_model = "local-model"
reporting_key = "reporting-key.pem"
state_dir = "state"
report_interval_seconds = 3600
"#,
            self.vkey
        )
    }
}

/// Runs each of `fs` `CHECK_ITERATIONS` times per round on this thread, the functions
/// interleaved round by round (`CHECK_ROUNDS` rounds, after one warm-up round), so that a
/// noisy neighbour on a shared machine hits them alike. Per function: µs per call in the
/// median round and in the best one.
fn rates<const K: usize>(fs: &mut [&mut dyn FnMut(); K]) -> [(f64, f64); K] {
    let mut rounds: [Vec<f64>; K] = std::array::from_fn(|_| Vec::new());
    for round in 0..=CHECK_ROUNDS {
        for (f, times) in fs.iter_mut().zip(rounds.iter_mut()) {
            let start = Instant::now();
            for _ in 0..CHECK_ITERATIONS {
                f();
            }
            if round > 0 {
                times.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(CHECK_ITERATIONS));
            }
        }
    }
    rounds.map(|mut t| {
        t.sort_by(f64::total_cmp);
        (t[t.len() / 2], t[0])
    })
}

fn checks(world: &World, now: i64) {
    let served = GatewayConfig::from_toml(&world.config_text("http://127.0.0.1:1"))
        .expect("the benchmark's configuration is valid")
        .served();
    let anchors = Anchors {
        jwks: world.jwks.clone(),
        log_vkey: world.vkey.clone(),
    };
    let mut status = StatusListCache::new(300);
    status
        .accept(StatusListClaims::new(AUTHORITY, now - 60, 3600, 1, vec![]))
        .expect("a fresh status list");
    let request = AccessRequest {
        grant: &world.grant,
        proof: &world.proof,
        model: Some("example-7b"),
        tier: AccessTier::ApiSampling,
    };
    let now_ms = now * 1000;
    let first = check(
        &served,
        &anchors,
        &status,
        &request,
        |_| GrantUsage::default(),
        now_ms,
    );
    assert_eq!(
        first.code,
        Code::Allowed,
        "the benchmark's grant must be admitted: {}",
        first.message
    );
    let mut full = || {
        let d = check(
            black_box(&served),
            &anchors,
            &status,
            black_box(&request),
            |_| GrantUsage::default(),
            now_ms,
        );
        black_box(d.code);
    };
    let mut signature = || {
        black_box(verify_access_grant_signature(black_box(&world.grant), &world.jwks).is_ok());
    };
    let mut proof = || {
        let bundle = ProofBundle::parse(black_box(&world.proof)).expect("the proof parses");
        black_box(bundle.verify_entry(&world.vkey).is_ok());
    };
    let [full, signature, proof] = rates(&mut [&mut full, &mut signature, &mut proof]);
    println!(
        "1. grant checks on one thread: {CHECK_ROUNDS} rounds of {CHECK_ITERATIONS} calls each, \
         interleaved; checks/s from the median round, and the best round's µs"
    );
    println!(
        "   {:<70} {:>9} {:>9} {:>9}",
        "what", "per s", "µs (med)", "µs (best)"
    );
    let row = |what: &str, (median, best): (f64, f64)| {
        let per_s = if median > 0.0 {
            format!("{:.0}", 1e6 / median)
        } else {
            "-".to_owned()
        };
        println!("   {what:<70} {per_s:>9} {median:>9.1} {best:>9.1}");
    };
    row(
        "check(): allowed, valid grant + proof, fresh status list",
        full,
    );
    row(
        "  of which: grant JWS signature + claims (Ed25519)",
        signature,
    );
    row(
        "  of which: proof bundle parse + verify (checkpoint sig, 10-hash path)",
        proof,
    );
    // What a check would cost were both verifications cached: a difference, not a separate
    // measurement, taken from the best rounds (the medians' difference is mostly noise on a
    // shared machine).
    let rest = full.1 - signature.1 - proof.1;
    println!(
        "   {:<70} {:>9} {:>9} {rest:>9.1}",
        "  the rest (time, model, tier, status, quotas, GCRA; by difference)", "-", "-"
    );
    println!(
        "   runpermit-access caches neither verification: every request pays the first row. \
         (verify_access_grant_signature's result may be cached per token, runpermit-permit \
         says; the last row, best rounds' difference, is about what a check would cost with both \
         cached.)"
    );
}

/// The minimal OpenAI-compatible upstream: a fixed chat.completion at once.
async fn upstream() -> String {
    async fn chat(axum::Json(body): axum::Json<Value>) -> axum::Json<Value> {
        axum::Json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        }))
    }
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(chat));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the upstream");
    let addr = listener.local_addr().expect("the upstream's address");
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the upstream serves")
    });
    format!("http://{addr}")
}

/// The gateway's router on a local port (no status poller, no report shipper: the status
/// list is handed to it directly, and nothing is shipped during the benchmark).
async fn serve_gateway(gateway: Arc<Gateway>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the gateway");
    let addr = listener.local_addr().expect("the gateway's address");
    tokio::spawn(async move {
        axum::serve(listener, gateway.router())
            .await
            .expect("the gateway serves")
    });
    format!("http://{addr}")
}

/// One POST of a chat completion to `url` with `headers`, answered 200; its latency.
fn post(agent: &ureq::Agent, url: &str, headers: &[(&str, &str)]) -> Duration {
    let body = r#"{"model": "example-7b", "messages": [{"role": "user", "content": "hi"}]}"#;
    let start = Instant::now();
    let mut request = agent.post(url).header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut response = request
        .send(body.as_bytes())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("POST {url}: reading the answer: {e}"));
    let elapsed = start.elapsed();
    assert_eq!(status, 200, "POST {url}: {text}");
    elapsed
}

/// The nearest-rank percentile `p` (0 to 100) of sorted `v`, in µs.
fn percentile(v: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1].as_secs_f64() * 1e6
}

fn overhead(world: &World, now: i64, n: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let upstream_url = runtime.block_on(upstream());
    std::fs::write(dir.path().join("jwks.json"), world.jwks.to_json()).expect("writing the JWKS");
    let reporting = SigningKey::from_seed(&[7; 32]);
    std::fs::write(
        dir.path().join("reporting-key.pem"),
        reporting.to_pkcs8_pem().as_str(),
    )
    .expect("writing the reporting key");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, world.config_text(&upstream_url)).expect("writing the configuration");
    let config = GatewayConfig::load(&path).expect("the benchmark's configuration is valid");
    let gateway = Arc::new(Gateway::open(config, system_clock()).expect("the gateway opens"));
    gateway
        .accept_status_token(&world.status_token(now))
        .expect("the status list is accepted");
    let gateway_url = runtime.block_on(serve_gateway(gateway.clone()));

    // One client for both, keeping its connections alive (ureq pools them by default).
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let bearer = format!("Bearer {}", world.grant);
    let proof = base64::engine::general_purpose::STANDARD.encode(&world.proof);
    let direct_url = format!("{upstream_url}/v1/chat/completions");
    let via_url = format!("{gateway_url}/v1/chat/completions");
    let gateway_headers = [
        ("authorization", bearer.as_str()),
        (PROOF_HEADER, proof.as_str()),
    ];
    // Sequential, one request at a time, alternating upstream and gateway so that drift in
    // a shared machine's load falls on both alike; a tenth as many first, not counted.
    let warm_up = n.div_ceil(10);
    let (mut direct, mut via) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..warm_up + n {
        let d = post(&agent, &direct_url, &[]);
        let v = post(&agent, &via_url, &gateway_headers);
        if i >= warm_up {
            direct.push(d);
            via.push(v);
        }
    }
    direct.sort();
    via.sort();
    // The durable part alone: a ledger of its own in the same folder's file system, the
    // two writes a served request makes (admission, then the token charge).
    let claims = verify_access_grant_signature(&world.grant, &world.jwks).expect("a valid grant");
    let mut ledger = Ledger::open(dir.path().join("ledger-alone"), reporting, "org_dev", 3600)
        .expect("a ledger opens");
    let mut durable: Vec<Duration> = (0..n.min(500))
        .map(|i| {
            let start = Instant::now();
            ledger
                .admit(&claims, i64::try_from(i).unwrap_or(0), now)
                .expect("admission recorded");
            ledger.charge(&claims, 10, 5, now).expect("tokens charged");
            start.elapsed()
        })
        .collect();
    durable.sort();
    let admitted = gateway
        .ledger()
        .usage(&format!("agr_{GRANT_INDEX}"))
        .requests;

    println!(
        "2. gateway overhead: {n} sequential chat completions each way, alternating (after \
         {warm_up} warm-up), one keep-alive client, upstream and gateway in this process (2 \
         tokio workers)"
    );
    println!(
        "   {:<34} {:>10} {:>10} {:>10}",
        "latency (µs)", "p50", "p99", "mean"
    );
    let mean = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64() * 1e6 / v.len() as f64;
    let rows = [("upstream alone", &direct), ("through the gateway", &via)];
    for (what, v) in rows {
        println!(
            "   {what:<34} {:>10.0} {:>10.0} {:>10.0}",
            percentile(v, 50.0),
            percentile(v, 99.0),
            mean(v)
        );
    }
    println!(
        "   {:<34} {:>10.0} {:>10.0} {:>10.0}",
        "added by the gateway",
        percentile(&via, 50.0) - percentile(&direct, 50.0),
        percentile(&via, 99.0) - percentile(&direct, 99.0),
        mean(&via) - mean(&direct)
    );
    println!(
        "   {:<34} {:>10.0} {:>10.0} {:>10.0}",
        format!("ledger admit + charge alone ({})", durable.len()),
        percentile(&durable, 50.0),
        percentile(&durable, 99.0),
        mean(&durable)
    );
    println!(
        "   The gateway admitted {admitted} requests. Each admission and each token charge \
         rewrites ledger.json durably (write, fsync, rename, fsync of the folder): two such \
         writes per request, four fsyncs, included in the added latency; the last row times \
         them alone on this machine's disk ({}).",
        dir.path().display()
    );
    drop(runtime);
}
