//! Oversight during training, end to end with the real binaries: an authority
//! (`runpermit serve`), two providers each running `runpermit gate serve` with spool metering,
//! and the people of the regime using the CLI.
//!
//! 1. A permit is issued for a run at two providers; both gates admit its jobs.
//! 2. Each gate meters its share and ships signed usage reports; the run reaches the end of
//!    its first tranche; the authority holds it, and both gates refuse new work.
//! 3. The lab submits a milestone report, an evaluator accepts it, the next tranche is
//!    released, and both gates admit work again.
//! 4. A reviewer revokes the permit, and both gates refuse within their status poll.
//!
//! A second scenario shows split-run detection from two providers' KYC reports.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Authority, BIN, examples, http_get, http_post, id_of, json, kyc_report, lab_applicant,
    member_token, ok, path_str, run, start_in,
};
use runpermit_permit::SigningKey;
use serde_json::Value;

/// Real `inspect-ai` output: task `arithmetic` on `mockllm/model`, accuracy 0.5.
const INSPECT_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runpermit-policy/tests/data/inspect/arithmetic-mockllm.eval"
);

/// What one H100 SXM accelerator-second counts under the example plan's accounting basis
/// (bf16, 989.4 TFLOP/s dense, at the declared 38% utilization): scheduler accounting's
/// central estimate.
const H100_CENTRAL: f64 = 9.894e14 * 0.38;

struct Provider {
    org: String,
    cluster: &'static str,
    admin: String,
    operator: String,
}

fn provider(a: &Authority, name: &str, cluster: &'static str) -> Provider {
    let admin_token = a.admin_token.clone();
    let org = id_of(&json(
        &["org", "create", name, "--kind", "provider"],
        a,
        &admin_token,
    ));
    let token_of = |role: &str| {
        let member = id_of(&json(
            &["org", "add-member", &org, "--name", role, "--role", role],
            a,
            &admin_token,
        ));
        json(&["token", "create", "--member", &member], a, &admin_token)["secret"]
            .as_str()
            .expect("secret")
            .to_owned()
    };
    Provider {
        admin: token_of("admin"),
        operator: token_of("provider_operator"),
        org,
        cluster,
    }
}

/// A running `runpermit gate serve` of one provider, with its spool directory.
struct Gate {
    child: Child,
    url: String,
    spool: PathBuf,
    cluster: &'static str,
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gate {
    /// Writes the gate's configuration (its own reporting key, registered at the authority
    /// by the provider's admin) and starts it, polling the status list every second.
    fn start(a: &Authority, p: &Provider) -> Gate {
        let dir = a.dir.join(format!("gate-{}", p.cluster));
        let spool = dir.join("spool");
        std::fs::create_dir_all(&spool).expect("gate dir");
        std::fs::write(
            dir.join("jwks.json"),
            http_get(&a.server, "/.well-known/jwks.json"),
        )
        .expect("jwks");
        let key = SigningKey::generate();
        let key_file = dir.join("reporting-key.pem");
        std::fs::write(&key_file, key.to_pkcs8_pem().as_bytes()).expect("key");
        common::set_mode(&key_file, 0o600);
        let registered = json(
            &[
                "org",
                "add-reporting-key",
                &p.org,
                "--key",
                path_str(&key_file),
            ],
            a,
            &p.admin,
        );
        assert_eq!(registered["kid"], key.kid());
        let config = dir.join("gate.toml");
        std::fs::write(
            &config,
            format!(
                r#"authority_url = "{server}"
jwks = "jwks.json"
log_vkey = "{vkey}"
provider_id = "{org}"
reporting_key = "reporting-key.pem"
[thresholds]
min_accelerators = 1024
[[clusters]]
name = "{cluster}"
accelerator = "H100 SXM"
accelerators = 8000000
[metering]
interval_seconds = 1
sources = ["spool"]
spool_dir = "spool"
"#,
                server = a.server,
                vkey = a.log_vkey,
                org = p.org,
                cluster = p.cluster,
            ),
        )
        .expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .args(["gate", "serve", "--config", path_str(&config)])
            .args([
                "--cluster",
                p.cluster,
                "--listen",
                &listen,
                "--poll-every",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("runpermit gate serve");
        let gate = Gate {
            child,
            url: format!("http://{listen}"),
            spool,
            cluster: p.cluster,
        };
        wait_for(Duration::from_secs(10), "the gate to listen", || {
            std::net::TcpStream::connect(&listen).is_ok()
        });
        gate
    }

    /// The gate's decision on a 2048-GPU job under the permit.
    fn decide(&self, permit: &str, proof: &str) -> String {
        let job = serde_json::json!({
            "cluster": self.cluster,
            "accelerators": 2048,
            "permit": {"token": permit, "proof_bundle": proof},
        });
        let answer = http_post(&self.url, "/v1/decide", &job.to_string());
        let decision: Value = serde_json::from_str(&answer).unwrap_or_else(|_| panic!("{answer}"));
        decision["code"].as_str().unwrap_or("").to_owned()
    }

    /// Waits (up to 10 s) until the gate decides `code` for the run's jobs.
    fn wait_for_code(&self, permit: &str, proof: &str, code: &str) {
        let mut last = String::new();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            last = self.decide(permit, proof);
            if last == code {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "gate {}: waited 10 s for {code}, last decision {last}",
            self.cluster
        );
    }

    /// Drops an accounting record into the spool, as a provider's accounting system would:
    /// written under another name, then renamed into place.
    /// The record covers 1750 s ending just after the permit's `nbf` (within the authority's
    /// 300 s clock-skew allowance), on as many accelerators as that takes (the cluster has
    /// 8·10^6, so that half an hour reaches a tranche): the authority refuses intervals in the
    /// future, and the gate more accelerator-seconds than its cluster can give an interval.
    /// The interval starts before the permit was valid, so the run is flagged for it.
    fn account(&self, run_id: &str, permit_id: &str, nbf: i64, accelerator_seconds: f64) {
        let to = nbf + 250;
        let from = to - 1750;
        assert!(
            to <= time::OffsetDateTime::now_utc().unix_timestamp() + 300,
            "the permit's nbf is in the future"
        );
        let record = serde_json::json!({
            "run_id": run_id, "permit_id": permit_id, "cluster": self.cluster,
            "accelerator_seconds": accelerator_seconds, "from": from, "to": to,
        });
        let name = format!("job-{}-{to}", self.cluster);
        let tmp = self.spool.join(format!("{name}.tmp"));
        std::fs::write(&tmp, record.to_string()).expect("spool record");
        std::fs::rename(&tmp, self.spool.join(format!("{name}.json"))).expect("rename");
    }
}

/// The claims of a compact JWS, unverified (the test only reads its times).
fn permit_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWS payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

fn wait_for(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("waited {limit:?} for {what}");
}

/// Writes the standard example plan for a run at both providers, starting today.
fn plan(a: &Authority, providers: &[&Provider]) -> PathBuf {
    let today = time::OffsetDateTime::now_utc().date();
    let text = std::fs::read_to_string(examples().join("standard.toml")).expect("plan");
    let head = text.split("[[providers]]").next().expect("plan head");
    let tail = text.split("[schedule]").nth(1).expect("plan schedule");
    let mut plan = head.to_owned();
    for p in providers {
        plan.push_str(&format!(
            "[[providers]]\nprovider = \"{}\"\nclusters = [\"{}\"]\n\n",
            p.org, p.cluster
        ));
    }
    plan.push_str("[schedule]");
    plan.push_str(
        &tail
            .replace("start = 2027-04-01", &format!("start = {today}"))
            .replace(
                "end = 2027-06-15",
                &format!("end = {}", today + time::Duration::days(60)),
            ),
    );
    let path = a.dir.join("two-providers.toml");
    std::fs::write(&path, plan).expect("writing the plan");
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("reading")
        .trim()
        .to_owned()
}

#[test]
fn two_gates_follow_a_run_through_its_milestone_and_revocation() {
    two_gates(
        &std::env::temp_dir().join(format!("runpermit-oversight-{}", std::process::id())),
        None,
    );
}

#[test]
fn two_gates_follow_a_run_on_postgresql() {
    let Some(schema) = common::PgSchema::create(&format!("e2e_oversight_{}", std::process::id()))
    else {
        return;
    };
    two_gates(
        &std::env::temp_dir().join(format!("runpermit-oversight-pg-{}", std::process::id())),
        Some(&schema.url),
    );
    // The schema is dropped with `schema`, after the processes above have stopped.
}

fn two_gates(dir: &Path, database_url: Option<&str>) {
    let mut a = start_in(dir.to_owned(), database_url);
    let lab = lab_applicant(&a, "Frontier Lab");
    let east = provider(&a, "Northwind Cloud", "nw-east-1");
    let west = provider(&a, "Westbrook Compute", "wb-west-2");
    let reviewer = member_token(&a, "org_authority", "rev", "reviewer");
    let institute = id_of(&json(
        &["org", "create", "Safety Institute", "--kind", "evaluator"],
        &a,
        &a.admin_token.clone(),
    ));
    let evaluator = member_token(&a, &institute, "eve", "evaluator");
    // The authority assigns the institute to evaluate the permits it issues without review:
    // its policy names the institute, and `serve` restarts with it.
    let policy = a.dir.join("policy.toml");
    std::fs::write(
        &policy,
        runpermit_policy::BUILTIN_POLICY_TOML
            .replace(
                "evaluators = []",
                &format!("evaluators = [\"{institute}\"]"),
            )
            .replace("version = \"2026.5\"", "version = \"2026.5-e2e\""),
    )
    .expect("writing the policy");
    a.restart_with(database_url, &["--policy", path_str(&policy)]);

    // 1. The permit, and both gates admit the run's jobs.
    let applied = json(&["apply", path_str(&plan(&a, &[&east, &west]))], &a, &lab);
    let permit_id = applied["permit_id"].as_str().expect("a permit").to_owned();
    let (permit_file, proof_file) = (a.dir.join("permit.jwt"), a.dir.join("permit.proof"));
    ok(
        &[
            "permit",
            "get",
            &permit_id,
            "-o",
            path_str(&permit_file),
            "--proof",
            path_str(&proof_file),
        ],
        &a,
        &lab,
    );
    // The proof bundle is a signed note: its final newline is part of it.
    let (permit, proof) = (
        read(&permit_file),
        std::fs::read_to_string(&proof_file).expect("proof"),
    );
    let runs = json(&["run", "list"], &a, &lab);
    let run_id = runs[0]["id"].as_str().expect("run").to_owned();
    assert_eq!(runs[0]["permit_id"], permit_id.as_str());
    // Each provider lists the run it meters, as the signed permit names it.
    for p in [&east, &west] {
        let listed = json(&["run", "list"], &a, &p.operator);
        assert_eq!(listed[0]["id"], run_id.as_str(), "{listed}");
    }
    let show = |token: &str| json(&["run", "show", &run_id], &a, token);
    assert_eq!(show(&lab)["released_flop"], 1e25);

    let gates = [Gate::start(&a, &east), Gate::start(&a, &west)];
    for gate in &gates {
        gate.wait_for_code(&permit, &proof, "permitted");
    }

    // 2. Each provider meters half of 1.02e25 FLOP by the central estimate (the gates hold
    // the permit, so they count with its basis); the run reaches its first milestone there,
    // not at the upper bound (5.26 times as much, every accelerator-second at the fp8 peak).
    let nbf = permit_claims(&permit)["nbf"].as_i64().expect("nbf");
    for gate in &gates {
        gate.account(&run_id, &permit_id, nbf, 0.51e25 / H100_CENTRAL);
    }
    wait_for(Duration::from_secs(30), "the milestone to be due", || {
        show(&lab)["status"] == "milestone_due"
    });
    let held = show(&reviewer);
    for p in [&east, &west] {
        let usage = &held["usage_by_provider"][&p.org];
        assert_eq!(usage["reports"], 1, "{held}");
        let flop = usage["flop"].as_f64().expect("flop");
        assert!((flop / 0.51e25 - 1.0).abs() < 1e-6, "{held}");
        let lower = usage["flop_lower"].as_f64().expect("lower");
        assert!(
            (lower / (0.51e25 * 0.35 / 0.38) - 1.0).abs() < 1e-6,
            "{held}"
        );
        let upper = usage["flop_upper"].as_f64().expect("upper");
        assert!((upper / (0.51e25 * 1.979e15 / 9.894e14 / 0.38) - 1.0).abs() < 1e-6);
    }
    assert_eq!(held["tranche_figure"], "central", "{held}");
    // The records start before the permit was valid: counted, and flagged for reviewers; the
    // upper bound passed the tranche's end: flagged too.
    let kinds: Vec<&str> = held["flags"]
        .as_array()
        .expect("flags")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"usage_before_permit") && kinds.contains(&"upper_bound_past_tranche"),
        "{held}"
    );
    assert!(
        held["reason"].as_str().unwrap().contains("milestone 1 due"),
        "{held}"
    );
    for gate in &gates {
        gate.wait_for_code(&permit, &proof, "permit_milestone_hold");
    }
    // The authority's alerting sees the tranche alerts in its metrics.
    let metrics = http_get(&a.server, "/metrics");
    for pct in ["80", "100"] {
        assert!(
            metrics.contains(&format!(
                "runpermit_tranche_alerts_total{{percent=\"{pct}\"}} 1"
            )),
            "{metrics}"
        );
    }
    // The text views name both providers; the usage view lists each report.
    let usage = ok(&["run", "usage", &run_id], &a, &lab);
    assert_eq!(
        usage.lines().filter(|l| l.contains("seq 1")).count(),
        2,
        "{usage}"
    );
    let text = ok(&["run", "show", &run_id], &a, &lab);
    assert!(
        text.contains("milestone_due") && text.contains(&east.org) && text.contains(&west.org),
        "{text}"
    );

    // 3. The milestone report, accepted by an evaluator: tranche 2, and work resumes.
    let evals = a.dir.join("evals.toml");
    std::fs::write(
        &evals,
        "[cyber_uplift]\nscore = 0.12\nthreshold = 0.5\n[bio_uplift]\nscore = 0.03\nthreshold = 0.2\n",
    )
    .expect("evals");
    let digest = format!("sha256:{}", "5e".repeat(32));
    // A file that is not an Inspect log is named before anything is sent.
    let refused = run(
        &[
            "run",
            "milestone",
            &run_id,
            "--checkpoint-digest",
            &digest,
            "--eval-log",
            path_str(&evals),
        ],
        &a.server,
        &lab,
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a zip archive"), "{stderr}");
    let milestone = json(
        &[
            "run",
            "milestone",
            &run_id,
            "--checkpoint-digest",
            &digest,
            "--evals",
            path_str(&evals),
            "--eval-log",
            INSPECT_FIXTURE,
        ],
        &a,
        &lab,
    );
    assert_eq!(milestone["evals"]["cyber_uplift"]["score"], 0.12);
    // The Inspect log's results, as the authority extracted them from the file.
    let inspect = &milestone["evals"]["inspect"][0];
    assert_eq!(inspect["task"], "arithmetic", "{milestone}");
    assert_eq!(
        inspect["scores"][0]["metrics"]["accuracy"], 0.5,
        "{milestone}"
    );
    let refused = run(
        &[
            "run",
            "accept",
            milestone["id"].as_str().unwrap(),
            "--reason",
            "self-approval",
        ],
        &a.server,
        &lab,
    );
    assert_eq!(
        refused.status.code(),
        Some(1),
        "a lab cannot accept its own milestone"
    );
    json(
        &[
            "run",
            "accept",
            milestone["id"].as_str().unwrap(),
            "--reason",
            "dangerous-capability evaluations below thresholds",
        ],
        &a,
        &evaluator,
    );
    let resumed = show(&lab);
    assert_eq!(
        (resumed["status"].as_str(), resumed["tranche"].as_i64()),
        (Some("active"), Some(2))
    );
    assert_eq!(resumed["released_flop"], 4e25);
    for gate in &gates {
        gate.wait_for_code(&permit, &proof, "permitted");
    }

    // 4. A reviewer revokes: both gates refuse within their poll (well within the TTL).
    let invalid = run(
        &["run", "resume", &run_id, "--reason", "x"],
        &a.server,
        &reviewer,
    );
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("cannot resume a run that is active"),
        "{}",
        String::from_utf8_lossy(&invalid.stderr)
    );
    let revoked_at = Instant::now();
    json(
        &[
            "run",
            "revoke",
            &run_id,
            "--reason",
            "weights security audit failed",
        ],
        &a,
        &reviewer,
    );
    for gate in &gates {
        gate.wait_for_code(&permit, &proof, "permit_revoked");
    }
    println!(
        "both gates refused the revoked permit {:.1} s after the revocation (status poll 1 s)",
        revoked_at.elapsed().as_secs_f64()
    );

    // Everything it did is in the public log, which still verifies.
    let verified = json(
        &["log", "verify", "--url", &a.server, "--vkey", &a.log_vkey],
        &a,
        "",
    );
    assert!(
        verified["checkpoint"]["size"].as_u64().unwrap_or(0) >= 6,
        "{verified}"
    );
}

#[test]
fn a_run_split_across_providers_is_flagged() {
    let a = start_in(
        std::env::temp_dir().join(format!("runpermit-kyc-{}", std::process::id())),
        None,
    );
    let east = provider(&a, "Northwind Cloud", "nw-east-1");
    let west = provider(&a, "Westbrook Compute", "wb-west-2");
    let reviewer = member_token(&a, "org_authority", "rev", "reviewer");
    // Dates from the clock the authority reads: the jobs ran over the last four weeks, well
    // inside the policy's split-run window.
    let now = time::OffsetDateTime::now_utc();
    let (from, to) = (
        (now - time::Duration::days(30)).date().to_string(),
        (now - time::Duration::days(2)).date().to_string(),
    );
    let report = |p: &Provider, flop: &str| kyc_report(&a, &p.operator, &from, &to, flop);
    // Each provider saw 6e24 FLOP of unpermitted jobs: under the 1e25 threshold alone.
    assert!(report(&east, "6e24")["flag"].is_null());
    let flagged = report(&west, "6e24");
    assert_eq!(flagged["flag"]["split"], true, "{flagged}");
    let text = ok(&["kyc", "flags"], &a, &reviewer);
    assert!(
        text.contains("LEI-5493001KJTIIGC8Y1R12") && text.contains("SPLIT RUN SUSPECTED"),
        "{text}"
    );
    // Only authority staff see the flags.
    let refused = run(&["kyc", "flags"], &a.server, &east.operator);
    assert_eq!(refused.status.code(), Some(1));

    // The provider also reports a security incident three hours after it happened, well
    // within the category's 72-hour deadline; the deadlines come from the policy.
    let occurred_at = (now - time::Duration::hours(3))
        .replace_nanosecond(0)
        .expect("whole seconds")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339");
    let incident = json(
        &[
            "incident",
            "file",
            "--category",
            "security_breach",
            "--summary",
            "a scheduler credential was phished",
            "--occurred-at",
            &occurred_at,
        ],
        &a,
        &east.operator,
    );
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["reported_late"], false, "{incident}");
    let listed = ok(&["incident", "list"], &a, &reviewer);
    assert!(
        listed.contains("security_breach") && !listed.contains("OVERDUE"),
        "{listed}"
    );
    let unknown = run(
        &["incident", "file", "--category", "ufo", "--summary", "?"],
        &a.server,
        &east.operator,
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("unknown category \"ufo\""),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let closed = json(
        &[
            "incident",
            "follow-up",
            incident["id"].as_str().unwrap(),
            "--text",
            "credential revoked; no jobs were submitted with it",
        ],
        &a,
        &east.operator,
    );
    assert_eq!(closed["status"], "closed");
}
