//! The metering loop: spool records, Slurm jobs, DCGM activity and NVML turned into signed
//! usage reports, queued durably and shipped to a local authority that verifies every
//! signature with the provider's public key; exactly once across restarts and `kill -9`.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use common::{AUTHORITY, CLUSTER, NOW, World, config_text};
use runpermit_gate::{GateConfig, JobRequest, PermitEvidence};
use runpermit_gate_agent::{Backoff, Meter, PermitBook, SendError, ServeOptions, run};
use runpermit_permit::{Jwks, MeterMethod, SigningKey, UsageReportClaims, verify_usage_report};
use serde_json::Value;

/// The H100 SXM's highest peak (FP8 dense), FLOP/s: scheduler accounting's rate.
const H100_MAX: f64 = 1.979e15;
/// Its bf16 dense peak: the rate at the permits' declared precision (bf16, 40%, 30–50%).
const H100_BF16: f64 = 9.894e14;
/// The permits' declared utilization, and the low end of its range.
const UTILIZATION: f64 = 0.4;
const UTILIZATION_LOW: f64 = 0.3;

fn close(a: f64, b: f64) -> bool {
    (a / b - 1.0).abs() < 1e-9
}

/// The provider's reporting key, fixed so that a child process signs with the same one.
fn reporting_key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

/// A gate directory: configuration (with `metering`, a TOML table body, appended), pinned
/// JWKS and reporting key. Returns the configuration's path.
fn gate_dir(dir: &Path, world: &World, authority: &str, metering: &str) -> PathBuf {
    let config = dir.join("gate.toml");
    let mut text = config_text(authority, &world.vkey);
    if !metering.is_empty() {
        text.push_str("\n[metering]\n");
        text.push_str(metering);
    }
    std::fs::write(&config, text).unwrap();
    std::fs::write(
        dir.join("jwks.json"),
        serde_json::to_string(&world.jwks).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.join("reporting-key.pem"),
        reporting_key().to_pkcs8_pem().as_str(),
    )
    .unwrap();
    config
}

/// The configuration as `run` reads it (paths resolved).
fn settings(config: &Path) -> GateConfig {
    let mut settings = GateConfig::from_toml(&std::fs::read_to_string(config).unwrap()).unwrap();
    settings.resolve_paths(config.parent().unwrap());
    settings
}

/// The permit book beside the gate's status file, holding `permits` (as after the agent
/// admitted a job under each).
fn book(config: &Path, world: &World, permits: &[&common::Logged]) -> Arc<PermitBook> {
    let book = PermitBook::load(config.parent().unwrap().join("permits"), world.jwks.clone());
    for p in permits {
        book.remember(&p.token).unwrap();
    }
    Arc::new(book)
}

/// A meter whose permit book holds both permits.
fn meter(config: &Path, world: &World, now: i64) -> Meter {
    let permits = book(config, world, &[&world.main, &world.small]);
    Meter::open(&settings(config), &world.params, CLUSTER, now, permits).unwrap()
}

/// A spool record, written as the accounting system should: another name, then renamed.
fn drop_record(spool: &Path, name: &str, run: &str, permit: &str, seconds: f64, from: i64) {
    let record = serde_json::json!({
        "run_id": run, "permit_id": permit, "cluster": CLUSTER,
        "accelerator_seconds": seconds, "from": from, "to": from + 3600,
    });
    let tmp = spool.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, record.to_string()).unwrap();
    std::fs::rename(&tmp, spool.join(name)).unwrap();
}

/// What the test authority stored, in arrival order, and how it answers.
#[derive(Default)]
struct Stored {
    reports: Vec<UsageReportClaims>,
    /// Answer 503 to this many requests first.
    unavailable: usize,
    requests: usize,
}

async fn usage(
    State((keys, stored)): State<(Arc<Jwks>, Arc<Mutex<Stored>>)>,
    Json(body): Json<Value>,
) -> (StatusCode, String) {
    let mut stored = stored.lock().unwrap();
    stored.requests += 1;
    if stored.unavailable > 0 {
        stored.unavailable -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "try later".into());
    }
    for token in body["reports"].as_array().into_iter().flatten() {
        match verify_usage_report(token.as_str().unwrap_or(""), &keys) {
            Ok(claims) => {
                let known = stored
                    .reports
                    .iter()
                    .any(|r| (&r.sub, r.seq) == (&claims.sub, claims.seq));
                if !known {
                    stored.reports.push(claims);
                }
            }
            Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        }
    }
    (StatusCode::ACCEPTED, "{}".into())
}

/// A local authority at `/v1/usage` checking signatures with the provider's public key.
async fn authority(stored: Arc<Mutex<Stored>>) -> String {
    let keys = Arc::new(Jwks::from_keys(&[reporting_key().public()]));
    let app = axum::Router::new()
        .route("/v1/usage", post(usage))
        .with_state((keys, stored));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

async fn get_json(url: String) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        for _ in 0..200 {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            if let Ok(mut response) = agent.get(&url).call() {
                let status = response.status().as_u16();
                let body = response.body_mut().read_to_string().unwrap();
                return (status, serde_json::from_str(&body).unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no answer from {url}");
    })
    .await
    .unwrap()
}

/// Waits (up to 30 s) until the authority stored `n` reports.
async fn wait_for_reports(stored: &Arc<Mutex<Stored>>, n: usize) -> Vec<UsageReportClaims> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reports = stored.lock().unwrap().reports.clone();
        if reports.len() >= n || Instant::now() > deadline {
            return reports;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (run, seq, accelerator-seconds) of stored reports.
fn summary(reports: &[UsageReportClaims]) -> Vec<(String, u64, f64)> {
    reports
        .iter()
        .map(|r| {
            (
                r.sub.clone(),
                r.seq,
                r.accelerator_seconds.values().sum::<f64>(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn gate_serve_ships_spool_records_exactly_once_in_order_across_restarts() {
    let world = World::new(AUTHORITY);
    let stored = Arc::new(Mutex::new(Stored {
        unavailable: 2,
        ..Stored::default()
    }));
    let url = authority(Arc::clone(&stored)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(
        dir.path(),
        &world,
        &url,
        "interval_seconds = 1\nsources = [\"spool\"]\nspool_dir = \"spool\"\n",
    );
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    drop_record(&spool, "0001.json", "run_main", "pmt_main", 28_800.0, NOW);
    drop_record(&spool, "0002.json", "run_small", "pmt_small", 3_600.0, NOW);
    drop_record(
        &spool,
        "0003.json",
        "run_main",
        "pmt_main",
        14_400.0,
        NOW + 3600,
    );
    // Not records: a temporary file and another extension stay untouched.
    std::fs::write(spool.join(".0004.json.tmp"), "{").unwrap();
    std::fs::write(spool.join("notes.txt"), "x").unwrap();
    // A malformed record: moved aside with what is wrong.
    std::fs::write(
        spool.join("0000-bad.json"),
        r#"{"run_id":"run_main","permit_id":"pmt_main","cluster":"mars","accelerator_seconds":-5,"from":10,"to":5}"#,
    )
    .unwrap();

    let addr = free_port();
    let serve = |stop: tokio::sync::oneshot::Receiver<()>| {
        let options = ServeOptions::new(&config, CLUSTER, addr);
        tokio::spawn(run(options, async move {
            let _ = stop.await;
        }))
    };
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = serve(stopped);

    let reports = wait_for_reports(&stored, 3).await;
    assert_eq!(
        summary(&reports),
        [
            ("run_main".to_owned(), 1, 28_800.0),
            ("run_small".to_owned(), 1, 3_600.0),
            ("run_main".to_owned(), 2, 14_400.0),
        ],
        "each record once, in file order, numbered per run"
    );
    let first = &reports[0];
    assert_eq!(first.iss, "org-cloud");
    assert_eq!(first.permit_id, "pmt_main");
    assert_eq!(first.cluster, CLUSTER);
    assert_eq!((first.from, first.to), (NOW, NOW + 3600));
    assert_eq!(first.method, MeterMethod::SchedulerAccounting);
    assert_eq!(first.accelerator_seconds["nvidia-h100-sxm"], 28_800.0);
    // No job was admitted under pmt_main here, so the gate does not hold it: the chip's
    // highest peak, central and upper.
    assert!(
        close(first.flop.get(), 28_800.0 * H100_MAX),
        "{}",
        first.flop
    );
    assert_eq!(first.flop, first.flop_upper);
    assert!(
        stored.lock().unwrap().requests >= 5,
        "two 503s were retried"
    );

    // The spool is consumed; the malformed record is aside with its reasons.
    let mut left: Vec<String> = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".0004.json.tmp", "notes.txt", "rejected"]);
    let reasons =
        std::fs::read_to_string(spool.join("rejected").join("0000-bad.json.error")).unwrap();
    for field in ["cluster:", "accelerator_seconds:", "to:"] {
        assert!(reasons.contains(field), "{reasons}");
    }
    assert!(spool.join("rejected").join("0000-bad.json").is_file());

    // The metering status, and the summary on /healthz. The authority has stored the reports
    // before the gate reads its answer and marks them delivered: wait for that, not a race.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (code, status) = loop {
        let (code, status) = get_json(format!("http://{addr}/v1/metering")).await;
        if status["pending"] == 0 || std::time::Instant::now() > deadline {
            break (code, status);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["sources"], serde_json::json!(["spool"]));
    assert_eq!(status["pending"], 0);
    assert_eq!(status["dead_letters"], 0);
    assert_eq!(status["delivered"], 3);
    assert!(status["last_cycle"].is_i64(), "{status}");
    let (_, health) = get_json(format!("http://{addr}/healthz")).await;
    assert_eq!(health["metering"]["pending"], 0, "{health}");
    // The same figures for Prometheus.
    let text = tokio::task::spawn_blocking(move || {
        ureq::get(format!("http://{addr}/metrics"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .await
    .unwrap();
    for line in [
        "runpermit_gate_usage_reports_queued 0",
        "runpermit_gate_usage_reports_delivered_total 3",
        "runpermit_gate_usage_reports_dead_lettered 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    for name in [
        "runpermit_gate_usage_last_delivery_timestamp_seconds ",
        "runpermit_gate_metering_last_cycle_timestamp_seconds ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "no {name} in:\n{text}"
        );
    }

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    // Restarted: numbering continues, nothing is sent twice.
    drop_record(
        &spool,
        "0005.json",
        "run_main",
        "pmt_main",
        7_200.0,
        NOW + 7200,
    );
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = serve(stopped);
    let reports = wait_for_reports(&stored, 4).await;
    assert_eq!(
        summary(&reports[3..]),
        [("run_main".to_owned(), 3, 7_200.0)]
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(stored.lock().unwrap().reports.len(), 4, "nothing twice");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn a_spool_file_found_again_after_a_crash_is_not_reported_twice() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(
        dir.path(),
        &world,
        AUTHORITY,
        "sources = [\"spool\"]\nspool_dir = \"spool\"\n",
    );
    let spool = dir.path().join("spool");
    let mut m = meter(&config, &world, NOW);
    assert!(spool.is_dir(), "the spool directory is created");
    drop_record(&spool, "a.json", "run_main", "pmt_main", 100.0, NOW);
    let saved = std::fs::read(spool.join("a.json")).unwrap();
    let report = m.cycle(NOW + 60);
    assert_eq!(report.enqueued, [("run_main".to_owned(), 1)]);
    assert!(!spool.join("a.json").exists());

    // A crash after the report was journaled but before the file was removed leaves the
    // file; the restarted gate recognises it (same name, same content) and only removes it.
    drop(m);
    std::fs::write(spool.join("a.json"), &saved).unwrap();
    let mut m = meter(&config, &world, NOW + 120);
    let report = m.cycle(NOW + 180);
    assert!(report.enqueued.is_empty(), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(!spool.join("a.json").exists());
    assert_eq!(m.queue().pending().len(), 1);

    // Another record under the same name is new (its content differs), and so is the same
    // content under another name.
    drop_record(&spool, "a.json", "run_main", "pmt_main", 200.0, NOW);
    std::fs::write(spool.join("b.json"), &saved).unwrap();
    let report = m.cycle(NOW + 240);
    assert_eq!(
        report.enqueued,
        [("run_main".to_owned(), 2), ("run_main".to_owned(), 3)]
    );
    // Compaction keeps the keys.
    drop(m);
    let mut queue = runpermit_gate_agent::UsageQueue::open(dir.path().join("usage-queue")).unwrap();
    for p in queue.pending() {
        queue.ack(&p.run_id, p.seq).unwrap();
    }
    queue.compact().unwrap();
    drop(queue);
    std::fs::write(spool.join("a.json"), &saved).unwrap();
    let mut m = meter(&config, &world, NOW + 300);
    assert!(m.cycle(NOW + 360).enqueued.is_empty());
    assert!(!spool.join("a.json").exists());
    // The run's metered total survives compaction: 100 + 200 + 100 accelerator-seconds.
    assert!(close(
        m.queue().metered("run_main").get(),
        400.0 * H100_BF16 * UTILIZATION
    ));
}

const CHILD_DIR: &str = "RUNPERMIT_SPOOL_CHILD_DIR";

/// The child of [`kill_9_while_metering_the_spool_reports_each_record_once`]: with
/// [`CHILD_DIR`] set, meters the gate in that directory in a tight loop until killed. A
/// no-op otherwise.
#[test]
fn spool_child_process() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let world = World::new(AUTHORITY);
    let config = Path::new(&dir).join("gate.toml");
    let mut m = meter(&config, &world, NOW);
    println!("started");
    loop {
        m.cycle(NOW + 60);
    }
}

#[test]
fn kill_9_while_metering_the_spool_reports_each_record_once() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    gate_dir(
        dir.path(),
        &world,
        AUTHORITY,
        "sources = [\"spool\"]\nspool_dir = \"spool\"\n",
    );
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).unwrap();
    let mut written = 0u32;
    for round in 0..4 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "spool_child_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(lines.any(|l| l.unwrap().ends_with("started")));
        // Records arrive while the child meters; it is killed mid-stream.
        for _ in 0..25 + round * 5 {
            written += 1;
            drop_record(
                &spool,
                &format!("{written:05}.json"),
                "run_main",
                "pmt_main",
                f64::from(written),
                NOW,
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // A last, clean pass takes what the killed children left.
    let mut m = meter(&dir.path().join("gate.toml"), &world, NOW);
    m.cycle(NOW + 60);
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "unconsumed: {left:?}");
    // Every record exactly once: the seconds 1..=written, each once; seq 1..=written.
    let keys = Jwks::from_keys(&[reporting_key().public()]);
    let mut seconds = BTreeSet::new();
    let mut seqs = BTreeSet::new();
    for p in m.queue().pending() {
        let claims = verify_usage_report(&p.token, &keys).unwrap();
        let s = claims.accelerator_seconds.values().sum::<f64>() as u32;
        assert!(seconds.insert(s), "record {s} reported twice");
        seqs.insert(claims.seq);
    }
    assert_eq!(seconds, (1..=written).collect::<BTreeSet<_>>());
    assert_eq!(seqs, (1..=u64::from(written)).collect::<BTreeSet<_>>());
}

/// `scontrol show job -o -d` of Slurm 22.05 (as on the CI cluster, with `TZ=UTC`): a running
/// 4-GPU job and an ended 2-GPU job of run_main, a 1-GPU job of run_small, a job without
/// GPUs, and one admitted by an older plugin (permit only).
fn scontrol(run_a: u64, run_b: u64) -> String {
    format!(
        "JobId=41 JobName=train JobState=RUNNING RunTime={} TimeLimit=1-00:00:00 StartTime=2026-01-01T00:00:00 EndTime=2026-01-02T00:00:00 NodeList=gpu[01-02] NumNodes=2 TRES=cpu=4,node=2,billing=4 JOB_GRES=gpu:4 Nodes=gpu01 CPU_IDs=0-1 Mem=0 GRES=gpu:2(IDX:0-1) Nodes=gpu02 CPU_IDs=0-1 Mem=0 GRES=gpu:2(IDX:2-3) AdminComment=runpermit:permit=pmt_main;run=run_main\n\
         JobId=42 JobName=eval JobState=RUNNING RunTime={} StartTime=2026-01-01T00:00:00 EndTime=2026-01-02T00:00:00 NodeList=gpu03 TRES=cpu=1,node=1,billing=1 JOB_GRES=gpu:1 Nodes=gpu03 CPU_IDs=0 Mem=0 GRES=gpu:1(IDX:0) AdminComment=runpermit:permit=pmt_small;run=run_small\n\
         JobId=43 JobName=cpu JobState=RUNNING RunTime=00:10:00 TRES=cpu=1,node=1 AdminComment=runpermit:permit=pmt_main;run=run_main\n\
         JobId=44 JobName=old JobState=RUNNING RunTime=00:10:00 TRES=cpu=1,node=1 JOB_GRES=gpu:8 AdminComment=runpermit:permit=pmt_main\n\
         JobId=45 JobName=x JobState=RUNNING RunTime=00:10:00 JOB_GRES=gpu:8\n",
        hms(run_a),
        hms(run_b)
    )
}

fn hms(s: u64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

#[test]
fn slurm_jobs_become_one_accounting_report_per_run_per_interval() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(dir.path(), &world, AUTHORITY, "sources = [\"slurm\"]\n");
    let listing = Arc::new(Mutex::new(scontrol(3600, 30)));
    let started = NOW;
    // The gate holds pmt_main (a job was admitted under it), not pmt_small.
    let permits = book(&config, &world, &[&world.main]);
    let mut m = Meter::open(&settings(&config), &world.params, CLUSTER, started, permits)
        .unwrap()
        .with_job_lister({
            let listing = Arc::clone(&listing);
            move || Ok(listing.lock().unwrap().clone())
        });
    // First cycle a minute after the gate started: run_main's job ran an hour (counted from
    // the gate's start: 60 s), run_small's 30 s.
    let report = m.cycle(started + 60);
    assert_eq!(
        report.errors,
        [
            "metering: permit pmt_small is not known to this gate: metered at the chip's highest peak"
        ]
    );
    let keys = Jwks::from_keys(&[reporting_key().public()]);
    let claims = |m: &Meter| -> Vec<UsageReportClaims> {
        m.queue()
            .pending()
            .iter()
            .map(|p| verify_usage_report(&p.token, &keys).unwrap())
            .collect()
    };
    let got = claims(&m);
    assert_eq!(
        summary(&got),
        [
            ("run_main".to_owned(), 1, 4.0 * 60.0),
            ("run_small".to_owned(), 1, 30.0)
        ]
    );
    assert_eq!(got[0].method, MeterMethod::SchedulerAccounting);
    // pmt_main's basis: bf16 at 40% (30–50%); the upper bound at the chip's highest peak.
    assert!(close(got[0].flop.get(), 240.0 * H100_BF16 * UTILIZATION));
    assert!(close(
        got[0].flop_lower.get(),
        240.0 * H100_BF16 * UTILIZATION_LOW
    ));
    assert!(close(got[0].flop_upper.get(), 240.0 * H100_MAX));
    // pmt_small is not held: at the highest peak, central = upper, lower 0.
    assert!(close(got[1].flop.get(), 30.0 * H100_MAX));
    assert_eq!(got[1].flop, got[1].flop_upper);
    assert_eq!(got[1].flop_lower.get(), 0.0);
    assert_eq!((got[0].from, got[0].to), (started, started + 60));
    assert_eq!(got[1].from, started + 30);
    // The next minute: one more minute each, nothing twice; the unknown permit is said once.
    *listing.lock().unwrap() = scontrol(3660, 90);
    assert!(m.cycle(started + 120).errors.is_empty());
    let got = claims(&m);
    assert_eq!(
        summary(&got[2..]),
        [
            ("run_main".to_owned(), 2, 240.0),
            ("run_small".to_owned(), 2, 60.0)
        ]
    );
    assert_eq!((got[2].from, got[2].to), (started + 60, started + 120));
    // Nothing ran since: nothing reported.
    assert!(m.cycle(started + 180).enqueued.is_empty());
    // scontrol failing is an error of this cycle, not of the gate.
    let mut failing = meter(&config, &world, started).with_job_lister(|| Err("no slurm".into()));
    assert_eq!(failing.cycle(started + 60).errors, ["slurm: no slurm"]);

    // Decisions count what this provider metered against the permit's budget.
    let agent = world.agent(dir.path());
    let job = JobRequest {
        cluster: CLUSTER.into(),
        accelerators: 2048,
        hours: Some(1.0),
        permit: Some(PermitEvidence {
            token: world.main.token.clone(),
            proof_bundle: world.main.proof.clone(),
        }),
    };
    let before = agent.decide(&job).remaining_flop.unwrap();
    m.publish_to(&agent);
    let after = agent.decide(&job).remaining_flop.unwrap();
    // (A difference of two figures near 3.2e25: f64 keeps it to about 1e-8.)
    let spent = (before.get() - after.get()) / (480.0 * H100_BF16 * UTILIZATION);
    assert!((spent - 1.0).abs() < 1e-6, "{before} → {after}");
    assert_eq!(agent.metering_status().unwrap().pending, 4);
}

/// dcgm-exporter's text for the jobs above, with its DCGM HPC job mapping (`hpc_job`), plus
/// a Kubernetes run labelled directly.
const EXPOSITION: &str = r#"# HELP DCGM_FI_PROF_PIPE_TENSOR_ACTIVE Ratio of cycles the tensor (HMMA) pipe is active.
# TYPE DCGM_FI_PROF_PIPE_TENSOR_ACTIVE gauge
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu="0",UUID="GPU-0a",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu01",DCGM_FI_DRIVER_VERSION="550.54.15",hpc_job="41"} 0.500000
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu="1",UUID="GPU-0b",pci_bus_id="00000000:2A:00.0",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu01",DCGM_FI_DRIVER_VERSION="550.54.15",hpc_job="41"} 0.250000
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu="0",UUID="GPU-1a",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu02",DCGM_FI_DRIVER_VERSION="550.54.15",hpc_job="41"} 0.750000
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu="0",UUID="GPU-2a",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu05",DCGM_FI_DRIVER_VERSION="550.54.15",hpc_job="999"} 1.000000
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu="3",UUID="GPU-3d",device="nvidia3",modelName="NVIDIA H100 80GB HBM3",Hostname="k8s-7",namespace="lab",pod="trainer-0",container="main",runpermit_run="run_small",runpermit_permit="pmt_small"} 0.400000
# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-0a",Hostname="gpu01",hpc_job="41"} 1980
"#;

#[tokio::test(flavor = "multi_thread")]
async fn dcgm_activity_from_a_local_exporter_is_metered_per_run() {
    let app = axum::Router::new().route("/metrics", get(|| async { EXPOSITION }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let exporter = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(
        dir.path(),
        &world,
        AUTHORITY,
        &format!("sources = [\"dcgm\"]\ndcgm_url = \"{exporter}\"\n"),
    );
    let started = NOW;
    let got = tokio::task::spawn_blocking(move || {
        // Job 41 has 4 GPUs, 3 with series; job 42 (run_small, 1 GPU) has none.
        let mut m = meter(&config, &world, started).with_job_lister(|| Ok(scontrol(3600, 30)));
        let report = m.cycle(started + 60);
        assert!(report.errors.is_empty(), "{report:?}");
        let keys = Jwks::from_keys(&[reporting_key().public()]);
        m.queue()
            .pending()
            .iter()
            .map(|p| verify_usage_report(&p.token, &keys).unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let by = |run: &str, method: MeterMethod| {
        got.iter()
            .find(|c| c.sub == run && c.method == method)
            .unwrap_or_else(|| panic!("no {method:?} report for {run}: {got:#?}"))
    };
    // run_main: 3 GPUs measured over 60 s, at the bf16 peak.
    let dcgm = by("run_main", MeterMethod::DcgmTensorActivity);
    assert_eq!(dcgm.accelerator_seconds["nvidia-h100-sxm"], 180.0);
    assert!(close(
        dcgm.flop.get(),
        (0.5 + 0.25 + 0.75) * 60.0 * H100_BF16
    ));
    assert!(dcgm.flop_lower <= dcgm.flop && dcgm.flop <= dcgm.flop_upper);
    // Its fourth GPU has no series: accounting, an upper bound.
    let rest = by("run_main", MeterMethod::SchedulerAccounting);
    assert_eq!(rest.accelerator_seconds["nvidia-h100-sxm"], 60.0);
    // run_small: its Slurm job has no series (accounting, 30 s); its Kubernetes pod is
    // labelled with the run and permit directly (60 s since the gate started).
    let small = by("run_small", MeterMethod::SchedulerAccounting);
    assert_eq!(small.accelerator_seconds["nvidia-h100-sxm"], 30.0);
    let pod = by("run_small", MeterMethod::DcgmTensorActivity);
    assert_eq!(pod.permit_id, "pmt_small");
    assert!(close(pod.flop.get(), 0.4 * 60.0 * H100_BF16));
    assert_eq!(got.len(), 4, "{got:#?}");
    assert!(got.iter().all(|c| c.sub != "999"));
}

#[test]
fn without_nvml_the_gate_meters_with_its_other_sources() {
    let described = runpermit_gate_agent::nvml::describe();
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(
        dir.path(),
        &world,
        AUTHORITY,
        "sources = [\"spool\", \"nvml\"]\nspool_dir = \"spool\"\n",
    );
    let mut m = meter(&config, &world, NOW).with_job_lister(|| Ok(scontrol(3600, 30)));
    let status = m.status();
    match described {
        Err(e) => {
            // This machine has no NVIDIA driver: say so, and keep going.
            assert!(e.starts_with("NVML unavailable: "), "{e}");
            assert_eq!(status.unavailable.len(), 1, "{status:?}");
            assert!(
                status.unavailable[0].starts_with("nvml: NVML unavailable: "),
                "{status:?}"
            );
        }
        Ok(report) => {
            eprintln!("NVML is available here: {} GPU(s)", report.devices.len());
            assert!(status.unavailable.is_empty(), "{status:?}");
        }
    }
    drop_record(
        &dir.path().join("spool"),
        "a.json",
        "run_main",
        "pmt_main",
        10.0,
        NOW,
    );
    let report = m.cycle(NOW + 60);
    assert!(report.errors.is_empty(), "{report:?}");
    // The spool record, and the Slurm jobs metered by accounting (no NVML figures for
    // them: their GPUs are not on this node, or NVML is unavailable).
    let runs: Vec<&str> = report.enqueued.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(runs, ["run_main", "run_main", "run_small"], "{report:?}");
}

#[tokio::test]
async fn run_refuses_to_start_when_metering_cannot() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(
        dir.path(),
        &world,
        AUTHORITY,
        "sources = [\"slurm\"]\nqueue_dir = \"queue\"\n",
    );
    // The queue directory is a file.
    std::fs::write(dir.path().join("queue"), "").unwrap();
    let options = ServeOptions::new(&config, CLUSTER, free_port());
    let err = run(options.clone(), async {}).await.unwrap_err();
    assert!(err.to_string().contains("metering.queue_dir"), "{err}");
    // The reporting key is missing, or not a key: either way the error names its path.
    std::fs::remove_file(dir.path().join("queue")).unwrap();
    let key = dir.path().join("reporting-key.pem");
    std::fs::remove_file(&key).unwrap();
    let err = run(options.clone(), async {}).await.unwrap_err();
    assert!(err.to_string().contains("reporting key"), "{err}");
    assert!(
        err.to_string().contains(&key.display().to_string()),
        "{err}"
    );
    std::fs::write(&key, "not a key").unwrap();
    let err = run(options.clone(), async {}).await.unwrap_err();
    assert!(err.to_string().contains("reporting_key"), "{err}");
    assert!(
        err.to_string().contains(&key.display().to_string()),
        "{err}"
    );
    assert!(err.is_usage());
    // Metering without a reporting_key at all is a configuration error naming the key.
    let text = std::fs::read_to_string(&config).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.starts_with("reporting_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(
        without, text,
        "the test configuration names a reporting_key"
    );
    std::fs::write(&config, without).unwrap();
    let err = run(options, async {}).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("reporting_key: is required with [metering]"),
        "{err}"
    );
    assert!(err.is_usage());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reporting_key_named_but_missing_is_refused_at_start_even_without_metering() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(dir.path(), &world, AUTHORITY, "");
    let key = dir.path().join("reporting-key.pem");
    std::fs::remove_file(&key).unwrap();
    let err = run(ServeOptions::new(&config, CLUSTER, free_port()), async {})
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("does not exist"), "{message}");
    assert!(message.contains(&key.display().to_string()), "{message}");
    assert!(err.is_usage());
}

#[tokio::test(flavor = "multi_thread")]
async fn without_metering_there_is_no_metering_status() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(dir.path(), &world, AUTHORITY, "");
    // A gate that does not meter needs no reporting key, nor a reporting_key.
    std::fs::remove_file(dir.path().join("reporting-key.pem")).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let line = "reporting_key = \"reporting-key.pem\"\n";
    assert!(text.contains(line), "{text}");
    std::fs::write(&config, text.replace(line, "")).unwrap();
    let addr = free_port();
    let mut options = ServeOptions::new(&config, CLUSTER, addr);
    options.poll_every = Duration::from_secs(3600);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(options, async move {
        let _ = stopped.await;
    }));
    let (code, body) = get_json(format!("http://{addr}/v1/metering")).await;
    assert_eq!(code, 404, "{body}");
    let (_, health) = get_json(format!("http://{addr}/healthz")).await;
    assert!(health.get("metering").is_none(), "{health}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn a_refused_report_is_dead_lettered_and_counted() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(
        dir.path(),
        &world,
        AUTHORITY,
        "sources = [\"spool\"]\nspool_dir = \"spool\"\n",
    );
    let sent = Arc::new(Mutex::new(0));
    let mut m = meter(&config, &world, NOW)
        .with_backoff(Backoff::with_seed(
            Duration::from_millis(1),
            Duration::from_millis(2),
            1,
        ))
        .with_sender({
            let sent = Arc::clone(&sent);
            move |_: &str| {
                let mut n = sent.lock().unwrap();
                *n += 1;
                if *n == 1 {
                    Err(SendError::Rejected("HTTP 422: unknown run".into()))
                } else {
                    Ok(())
                }
            }
        });
    let spool = dir.path().join("spool");
    drop_record(&spool, "a.json", "run_main", "pmt_main", 10.0, NOW);
    drop_record(&spool, "b.json", "run_main", "pmt_main", 20.0, NOW);
    m.cycle(NOW + 60);
    let outcome = m.ship(Instant::now()).unwrap();
    assert_eq!((outcome.delivered, outcome.dead_lettered), (1, 1));
    let status = m.status();
    assert_eq!((status.pending, status.dead_letters), (0, 1));
    assert_eq!(
        m.queue().dead_letters().unwrap()[0].reason,
        "HTTP 422: unknown run"
    );
}

#[test]
fn the_gate_meters_with_the_basis_of_the_permits_it_admitted_across_restarts() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = gate_dir(
        dir.path(),
        &world,
        AUTHORITY,
        "sources = [\"spool\"]\nspool_dir = \"spool\"\n",
    );
    let spool = dir.path().join("spool");
    let held = dir.path().join("permits").join("pmt_main.jwt");
    // The agent admits a job under pmt_main: the permit goes into its book, on disk.
    let agent = world.agent(dir.path());
    assert_eq!(
        agent.permits().dir(),
        dir.path().join("permits"),
        "beside the status file"
    );
    let job = JobRequest {
        cluster: CLUSTER.into(),
        accelerators: 2048,
        hours: Some(1.0),
        permit: Some(PermitEvidence {
            token: world.main.token.clone(),
            proof_bundle: world.main.proof.clone(),
        }),
    };
    assert!(agent.decide(&job).allow);
    assert_eq!(std::fs::read_to_string(&held).unwrap(), world.main.token);
    // A refused job puts nothing there.
    let mut refused = job.clone();
    refused.accelerators = 4097;
    refused.permit.as_mut().unwrap().token = world.small.token.clone();
    assert!(!agent.decide(&refused).allow);
    drop(agent);

    // Restarted: the book is loaded and verified at start.
    let agent = world.agent(dir.path());
    assert!(agent.permits().holds("pmt_main"));
    assert!(!agent.permits().holds("pmt_small"));
    let mut m = Meter::open(
        &settings(&config),
        &world.params,
        CLUSTER,
        NOW,
        Arc::clone(agent.permits()),
    )
    .unwrap();
    drop_record(&spool, "a.json", "run_main", "pmt_main", 3600.0, NOW);
    drop_record(&spool, "b.json", "run_small", "pmt_small", 3600.0, NOW);
    let report = m.cycle(NOW + 60);
    assert_eq!(
        report.errors,
        [
            "metering: permit pmt_small is not known to this gate: metered at the chip's highest peak"
        ]
    );
    let keys = Jwks::from_keys(&[reporting_key().public()]);
    let reports: Vec<UsageReportClaims> = m
        .queue()
        .pending()
        .iter()
        .map(|p| verify_usage_report(&p.token, &keys).unwrap())
        .collect();
    let (main, small) = (&reports[0], &reports[1]);
    assert_eq!(
        (main.sub.as_str(), small.sub.as_str()),
        ("run_main", "run_small")
    );
    assert!(
        close(main.flop.get(), 3600.0 * H100_BF16 * UTILIZATION),
        "{}",
        main.flop
    );
    assert!(close(
        main.flop_lower.get(),
        3600.0 * H100_BF16 * UTILIZATION_LOW
    ));
    assert!(close(main.flop_upper.get(), 3600.0 * H100_MAX));
    assert!(close(small.flop.get(), 3600.0 * H100_MAX));
    assert_eq!(small.flop_lower.get(), 0.0);
    // Said once per permit.
    drop_record(&spool, "c.json", "run_small", "pmt_small", 60.0, NOW);
    assert!(m.cycle(NOW + 120).errors.is_empty());
    // A record whose run is not the held permit's is not metered with that permit's basis.
    drop_record(&spool, "d.json", "run_other", "pmt_main", 60.0, NOW);
    let report = m.cycle(NOW + 180);
    assert_eq!(
        report.errors,
        [
            "metering: permit pmt_main is for run run_main, not run run_other: metered at the \
          chip's highest peak"
        ]
    );
    drop(m);
    drop(agent);

    // A tampered file (the payload changed, the signature kept) is ignored at load and on
    // lookup; so is another permit's token filed under this permit's id.
    let token = world.main.token.clone();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    assert_ne!(parts.join("."), token);
    std::fs::write(&held, parts.join(".")).unwrap();
    let agent = world.agent(dir.path());
    assert!(!agent.permits().holds("pmt_main"));
    assert_eq!(agent.permits().get("pmt_main"), None);
    std::fs::write(&held, &world.small.token).unwrap();
    assert_eq!(agent.permits().get("pmt_main"), None);
    // Untrusted ids from records never become paths.
    assert_eq!(agent.permits().get("../status-list"), None);
    // Admitting a job again puts the permit back.
    assert!(agent.decide(&job).allow);
    assert!(agent.permits().holds("pmt_main"));
    assert_eq!(std::fs::read_to_string(&held).unwrap(), world.main.token);
    let main_exp = world.main.claims.exp;
    drop(agent);

    // A permit admitted by another process (`gate check`) after the agent started is found
    // on disk when metering asks for it.
    let agent = world.agent(dir.path());
    let other = PermitBook::empty(dir.path().join("permits"), world.jwks.clone());
    other.remember(&world.small.token).unwrap();
    assert!(!agent.permits().holds("pmt_small"));
    assert!(agent.permits().get("pmt_small").is_some());

    // Expired permits are kept 90 days past their expiry, then pruned.
    let keep = runpermit_gate_agent::permits::KEEP_AFTER_EXPIRY;
    assert_eq!(agent.permits().prune(main_exp + keep), 0);
    assert_eq!(agent.permits().prune(main_exp + keep + 1), 2);
    assert!(!held.exists());
    assert!(agent.permits().is_empty());
}
