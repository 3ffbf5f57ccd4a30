//! Slurm admission through the gate, against a real Slurm: a live authority issues a permit,
//! `integrations/slurm/ci-setup.sh` installs `integrations/slurm/job_submit.lua` on a one-node
//! cluster with this build's `runpermit` and a gate configuration, and real `sbatch` jobs are
//! refused with the gate's reasons or admitted and run; `runpermit gate serve` with Slurm
//! metering queues a signed usage report for a permitted job's GPU-seconds (the cluster's
//! GPUs are fake device files, but Slurm allocates them like real ones).
//!
//! Runs with `RUNPERMIT_TEST_SLURM=1`, as root, on a machine where Slurm may be installed and
//! started (Debian 12: ci-setup.sh installs `slurm-wlm`, `munge` and `lua5.1` when missing).
//! Without it the test says it was skipped, except under `CI`, where it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Initializes an authority in a fresh directory (readable by the `slurm` user, which runs the
/// gate) and starts serving it.
fn start() -> Authority {
    let dir = std::env::temp_dir().join(format!("runpermit-slurm-{}", std::process::id()));
    let a = start_in(dir, None);
    set_mode(&a.dir, 0o755);
    a
}

// Slurm.

/// The jobs this test submitted, cancelled when it ends, however it ends.
struct Jobs(Vec<String>);

impl Drop for Jobs {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            let _ = Command::new("scancel").args(&self.0).output();
        }
    }
}

/// Runs ci-setup.sh: installs the plugin with these settings and reloads Slurm.
fn install_plugin(config: &Path, runpermit: &Path, cluster: &str) {
    let script = repo().join("integrations/slurm/ci-setup.sh");
    let lua = repo().join("integrations/slurm/job_submit.lua");
    let out = Command::new("bash")
        .arg(&script)
        .args([&lua, config, runpermit])
        .arg(cluster)
        .output()
        .expect("running integrations/slurm/ci-setup.sh");
    assert!(
        out.status.success(),
        "ci-setup.sh failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Submits `sbatch ARGS --wrap "hostname; sleep 1"` from `dir` with exactly the permit
/// variables in `env` (none inherited). Ok(job id) when admitted, Err(stderr) when refused.
fn sbatch(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    jobs: &mut Jobs,
) -> Result<String, String> {
    sbatch_wrap(dir, args, env, jobs, "hostname; sleep 1")
}

/// Submits `script` with `sbatch --wrap`.
fn sbatch_wrap(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    jobs: &mut Jobs,
    script: &str,
) -> Result<String, String> {
    let mut command = Command::new("sbatch");
    command
        .current_dir(dir)
        .args(["--parsable", "--output", "slurm-%j.out", "--time", "10"])
        .args(args)
        .args(["--wrap", script])
        .env_remove("RUNPERMIT_PERMIT")
        .env_remove("RUNPERMIT_PROOF");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("running sbatch");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        let id = String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(';')
            .next()
            .expect("job id")
            .to_owned();
        assert!(!id.is_empty(), "sbatch printed no job id: {stderr}");
        jobs.0.push(id.clone());
        Ok(id)
    } else {
        Err(stderr)
    }
}

fn refused(result: Result<String, String>, code: &str, what: &str) -> String {
    match result {
        Ok(id) => panic!("{what}: job {id} was admitted; expected DENY ({code})"),
        Err(stderr) => {
            assert!(
                stderr.contains(&format!("DENY ({code}): ")),
                "{what}: expected the gate's DENY ({code}) in sbatch's stderr:\n{stderr}"
            );
            stderr
        }
    }
}

fn admitted(result: Result<String, String>, what: &str) -> String {
    result.unwrap_or_else(|stderr| panic!("{what}: refused:\n{stderr}"))
}

/// Waits (up to 60 s) until the job has completed, and returns its output.
fn completes(dir: &Path, id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut state = String::new();
    while Instant::now() < deadline {
        let out = Command::new("scontrol")
            .args(["show", "job", id, "-o"])
            .output()
            .expect("scontrol");
        let text = String::from_utf8_lossy(&out.stdout);
        state = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("JobState="))
            .unwrap_or("")
            .to_owned();
        match state.as_str() {
            "COMPLETED" => {
                return std::fs::read_to_string(dir.join(format!("slurm-{id}.out")))
                    .unwrap_or_default();
            }
            "FAILED" | "CANCELLED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" => {
                panic!("job {id} ended {state}: {text}")
            }
            _ => std::thread::sleep(Duration::from_millis(250)),
        }
    }
    panic!("job {id} did not complete within 60 s (state {state:?})");
}

#[test]
fn slurm_admits_gpu_jobs_only_under_a_valid_permit() {
    if std::env::var_os("RUNPERMIT_TEST_SLURM").is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Slurm admission test: run integrations/slurm/ci-setup.sh as root, \
             then set RUNPERMIT_TEST_SLURM=1"
        );
        eprintln!("skipped: Slurm admission test (set RUNPERMIT_TEST_SLURM=1, as root, to run it)");
        return;
    }
    let started = Instant::now();
    let a = start();
    let alice = lab_applicant(&a, "Slurm Lab");
    let (permit, proof) = permit_valid_today(&a, &alice, "p");
    let (_, other_proof) = permit_valid_today(&a, &alice, "q");

    // The gate, as the provider configures it: its directory belongs to the `slurm` user, who
    // runs the gate inside slurmctld and keeps the newest status list there.
    let (gate, config) = write_gate(&a, 2);
    // This build's binary, where the `slurm` user can run it (the target dir may not be).
    let bin = a.dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let runpermit = bin.join("runpermit");
    std::fs::copy(BIN, &runpermit).expect("copying the runpermit binary");
    set_mode(&runpermit, 0o755);

    // Installs Slurm first if need be, and with it the `slurm` user.
    install_plugin(&config, &runpermit, "nw-east-1");
    let chown = Command::new("chown")
        .args(["-R", "slurm:slurm"])
        .arg(&gate)
        .status()
        .expect("chown");
    assert!(chown.success(), "chown slurm {}", gate.display());
    let setup = started.elapsed();
    let mut jobs = Jobs(Vec::new());
    let dir = a.dir.as_path();
    let (p, q) = (path_str(&permit), path_str(&proof));
    let with_permit = [("RUNPERMIT_PERMIT", p), ("RUNPERMIT_PROOF", q)];

    // A job without GPUs, and one below the threshold: admitted without a permit, and run.
    let small = admitted(sbatch(dir, &[], &[], &mut jobs), "a job without GPUs");
    let one_gpu = admitted(
        sbatch(dir, &["--gres=gpu:1"], &[], &mut jobs),
        "a 1-GPU job (below the threshold of 2)",
    );

    // Large jobs without a permit: refused with the gate's reason, however the GPUs are asked.
    refused(
        sbatch(dir, &["--gres=gpu:4"], &[], &mut jobs),
        "permit_required",
        "4 GPUs per node, no permit",
    );
    refused(
        sbatch(dir, &["-N", "2", "--gres=gpu:1"], &[], &mut jobs),
        "permit_required",
        "1 GPU per node on 2 nodes, no permit",
    );
    refused(
        sbatch(dir, &["--gpus=2"], &[], &mut jobs),
        "permit_required",
        "2 GPUs per job, no permit",
    );

    // A tampered permit, and a permit with another permit's log proof.
    let token = std::fs::read_to_string(&permit).expect("permit");
    // Another base64url character at the start of the signature: well-formed, but false.
    let mut parts: Vec<String> = token.trim().split('.').map(str::to_owned).collect();
    let first = if parts[2].starts_with('A') { "B" } else { "A" };
    parts[2].replace_range(0..1, first);
    let tampered = a.dir.join("tampered.jwt");
    std::fs::write(&tampered, parts.join(".")).expect("writing");
    set_mode(&tampered, 0o644);
    refused(
        sbatch(
            dir,
            &["--gres=gpu:4"],
            &[
                ("RUNPERMIT_PERMIT", path_str(&tampered)),
                ("RUNPERMIT_PROOF", q),
            ],
            &mut jobs,
        ),
        "permit_bad_signature",
        "a tampered permit",
    );
    refused(
        sbatch(
            dir,
            &["--gres=gpu:4"],
            &[
                ("RUNPERMIT_PERMIT", p),
                ("RUNPERMIT_PROOF", path_str(&other_proof)),
            ],
            &mut jobs,
        ),
        "proof_wrong_permit",
        "a permit with another permit's proof",
    );
    let stderr = sbatch(
        dir,
        &["--gres=gpu:4"],
        &[("RUNPERMIT_PERMIT", p)],
        &mut jobs,
    )
    .expect_err("a permit without its proof is refused");
    assert!(
        stderr.contains("set both RUNPERMIT_PERMIT and RUNPERMIT_PROOF"),
        "{stderr}"
    );

    // More GPUs than the cluster has (16384, as many as the permit allows): refused as a
    // request error, whatever the permit says.
    refused(
        sbatch(dir, &["--gpus=20000"], &with_permit, &mut jobs),
        "invalid_request",
        "20000 GPUs on a cluster of 16384",
    );

    // A valid permit: admitted and run, from the environment or from --export, with paths
    // relative to the job's working directory.
    let large = admitted(
        sbatch(dir, &["--gres=gpu:4"], &with_permit, &mut jobs),
        "4 GPUs under a valid permit",
    );
    let exported = admitted(
        sbatch(
            dir,
            &[
                "--gpus=2",
                "--export=RUNPERMIT_PERMIT=p.jwt,RUNPERMIT_PROOF=p.proof",
            ],
            &[],
            &mut jobs,
        ),
        "2 GPUs under a valid permit given with --export and relative paths",
    );
    let host = String::from_utf8(
        Command::new("hostname")
            .arg("-s")
            .output()
            .expect("hostname")
            .stdout,
    )
    .expect("UTF-8");
    for id in [&small, &one_gpu, &large, &exported] {
        let output = completes(dir, id);
        assert!(output.contains(host.trim()), "job {id} printed {output:?}");
    }

    // The gate, run by slurmctld as `slurm`, kept the status list it accepted.
    assert!(gate.join("status-list.jwt").is_file());

    // Metering: `gate serve` with the Slurm source sees the permitted job's allocated GPUs
    // and queues a signed report of its GPU-seconds for the run.
    metering(&a, &gate, &config, dir, &with_permit, &mut jobs, &token);

    // The same permit on a cluster it does not name.
    install_plugin(&config, &runpermit, "nw-central-9");
    refused(
        sbatch(dir, &["--gres=gpu:4"], &with_permit, &mut jobs),
        "cluster_not_permitted",
        "a valid permit on another cluster",
    );

    // When the gate cannot run, GPU jobs are refused (fail closed); others pass.
    install_plugin(&config, &bin.join("missing"), "nw-east-1");
    let stderr = sbatch(dir, &["--gres=gpu:1"], &with_permit, &mut jobs)
        .expect_err("no gate: GPU jobs are refused");
    assert!(stderr.contains("the gate could not decide"), "{stderr}");
    let small = admitted(
        sbatch(dir, &[], &[], &mut jobs),
        "no gate: a job without GPUs",
    );
    completes(dir, &small);

    // Enforcement: a running job under a permit the authority revokes is suspended, and new
    // jobs under it are refused.
    install_plugin(&config, &runpermit, "nw-east-1");
    let long = admitted(
        sbatch_wrap(dir, &["--gres=gpu:4"], &with_permit, &mut jobs, "sleep 120"),
        "a long job under a valid permit",
    );
    wait_for_state(&long, "RUNNING");
    let shown = scontrol_job(&long);
    let permit_id = permit_id_of(&token);
    assert!(
        shown.contains(&format!("AdminComment=runpermit:permit={permit_id}")),
        "the plugin ties the job to its permit: {shown}"
    );
    let revoked = a.dir.join("revoked.jwt");
    std::fs::write(&revoked, revoked_status_list(&a, &permit_id)).expect("writing");
    let out = Command::new(&runpermit)
        .args([
            "gate",
            "enforce",
            "--config",
            path_str(&config),
            "--status-list",
            path_str(&revoked),
        ])
        .output()
        .expect("gate enforce");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains(&format!("suspended job {long} (permit {permit_id} revoked")),
        "{said}"
    );
    wait_for_state(&long, "SUSPENDED");
    let _ = Command::new("chown")
        .args(["-R", "slurm:slurm"])
        .arg(&gate)
        .status();
    refused(
        sbatch(dir, &["--gres=gpu:4"], &with_permit, &mut jobs),
        "permit_revoked",
        "a new job under the revoked permit",
    );

    eprintln!(
        "Slurm admission: setup {:.1} s, all {:.1} s",
        setup.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The `jti` of a compact JWS permit, without verifying it (the test issued it).
fn permit_id_of(token: &str) -> String {
    use base64::Engine as _;
    let payload = token.trim().split('.').nth(1).expect("a JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    let claims: serde_json::Value = serde_json::from_slice(&bytes).expect("claims");
    claims["jti"].as_str().expect("jti").to_owned()
}

/// A status list revoking `permit_id`, signed with the authority's own key and newer than any
/// it has served.
fn revoked_status_list(a: &Authority, permit_id: &str) -> String {
    let pem = std::fs::read_to_string(a.dir.join("data/keys/permit-signing.pem")).expect("key");
    let key = runpermit_permit::SigningKey::from_pkcs8_pem(&pem).expect("a key");
    let now = time::OffsetDateTime::now_utc();
    let claims = runpermit_permit::StatusListClaims::new(
        "test authority",
        now.unix_timestamp(),
        300,
        u64::try_from(now.unix_timestamp() * 1000 + 60_000).expect("version"),
        vec![runpermit_permit::StatusEntry {
            permit_id: permit_id.to_owned(),
            status: runpermit_permit::PermitStatus::Revoked,
            reason: "safety case withdrawn".to_owned(),
            since: now.unix_timestamp(),
        }],
    );
    runpermit_permit::sign_status_list(&claims, &key)
}

fn scontrol_job(id: &str) -> String {
    let out = Command::new("scontrol")
        .args(["show", "job", id, "-o"])
        .output()
        .expect("scontrol");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits (up to 30 s) until job `id` is in `state`.
fn wait_for_state(id: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut shown = String::new();
    while Instant::now() < deadline {
        shown = scontrol_job(id);
        if shown.contains(&format!("JobState={state} ")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("job {id} did not reach {state}: {shown}");
}

/// `runpermit gate serve`, ended when dropped.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `runpermit gate serve` with Slurm metering every second, runs an 8 s job on 4 GPUs
/// under the permit, and checks the queued reports: the run's metered GPU-seconds are
/// exactly 4 × the job's run time, signed by the provider's reporting key.
fn metering(
    a: &Authority,
    gate: &Path,
    config: &Path,
    dir: &Path,
    with_permit: &[(&str, &str)],
    jobs: &mut Jobs,
    token: &str,
) {
    let key = runpermit_permit::SigningKey::generate();
    std::fs::write(gate.join("reporting-key.pem"), key.to_pkcs8_pem().as_str()).expect("key");
    let serve_config = gate.join("serve.toml");
    let text = std::fs::read_to_string(config).expect("config");
    std::fs::write(
        &serve_config,
        format!("{text}\n[metering]\ninterval_seconds = 1\nsources = [\"slurm\"]\nqueue_dir = \"usage-queue\"\n"),
    )
    .expect("serve config");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let log = std::fs::File::create(a.dir.join("gate-serve.log")).expect("log");
    let serve = Serve(
        Command::new(BIN)
            .args(["gate", "serve", "--config", path_str(&serve_config)])
            .args(["--cluster", "nw-east-1", "--listen", &addr.to_string()])
            .args(["--poll-every", "3600"])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("gate serve"),
    );
    let server = format!("http://{addr}");
    let status = |server: &str| -> Option<serde_json::Value> {
        std::net::TcpStream::connect(server.trim_start_matches("http://")).ok()?;
        serde_json::from_str(&http_get(server, "/v1/metering")).ok()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&server).is_none() {
        assert!(
            Instant::now() < deadline,
            "gate serve did not start: {}",
            std::fs::read_to_string(a.dir.join("gate-serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let job = admitted(
        sbatch_wrap(dir, &["--gres=gpu:4"], with_permit, jobs, "sleep 8"),
        "a metered 4-GPU job under a valid permit",
    );
    completes(dir, &job);
    let shown = scontrol_job(&job);
    let permit_id = permit_id_of(token);
    let run_id = claim_of(token, "sub");
    assert!(
        shown.contains(&format!(
            "AdminComment=runpermit:permit={permit_id};run={run_id}"
        )),
        "the plugin ties the job to its permit and run: {shown}"
    );
    let run_seconds = shown
        .split_whitespace()
        .find_map(|w| w.strip_prefix("RunTime="))
        .and_then(runpermit_gate_agent::slurm::parse_duration)
        .expect("RunTime");
    // Two more cycles, so that the job's end is metered.
    std::thread::sleep(Duration::from_millis(2500));
    let seen = status(&server).expect("metering status");
    assert!(
        seen["last_cycle_errors"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{seen}"
    );
    drop(serve);

    let queue = runpermit_gate_agent::UsageQueue::open(gate.join("usage-queue")).expect("queue");
    let metered = queue.metered(&run_id).get();
    // Scheduler accounting's central estimate: each H100 SXM second at the bf16 peak × the
    // utilization the permit declares (the gate holds the permit `gate check` admitted).
    let basis = &permit_claims(token)["accounting"];
    assert_eq!(basis["precision"], "bf16", "{basis}");
    let utilization = basis["utilization"]
        .as_f64()
        .expect("a declared utilization");
    let gpu_seconds = metered / (9.894e14 * utilization);
    assert!(
        (gpu_seconds - 4.0 * run_seconds as f64).abs() < 1e-6,
        "metered {gpu_seconds} GPU-seconds for a {run_seconds} s job on 4 GPUs ({seen})"
    );
    assert!(gpu_seconds > 0.0);
    let keys = runpermit_permit::Jwks::from_keys(&[key.public()]);
    for p in queue.pending() {
        let claims = runpermit_permit::verify_usage_report(&p.token, &keys).expect("signed");
        assert_eq!(claims.iss, "northwind-cloud");
        assert_eq!(claims.permit_id, permit_id);
        assert_eq!(claims.cluster, "nw-east-1");
    }
    // What the authority did with them is its business (this provider's reporting key is
    // not registered there): each report is pending, delivered or dead-lettered.
    let shipped = ["pending", "delivered", "dead_letters"]
        .map(|k| seen[k].as_u64().unwrap_or(0))
        .iter()
        .sum::<u64>();
    assert!(shipped >= 1, "{seen}");
    let refused = queue
        .dead_letters()
        .expect("dead letters")
        .first()
        .map(|d| format!("; refused: {}", d.reason))
        .unwrap_or_default();
    eprintln!(
        "Slurm metering: job {job} ran {run_seconds} s on 4 GPUs; metered {gpu_seconds} GPU-seconds \
         ({} reports pending, {} delivered, {} dead-lettered{refused})",
        seen["pending"], seen["delivered"], seen["dead_letters"]
    );
}

/// A permit's claims, without verifying them (the test issued it).
fn permit_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.trim().split('.').nth(1).expect("a JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims")
}

/// A string claim of a permit, unverified.
fn claim_of(token: &str, name: &str) -> String {
    permit_claims(token)[name]
        .as_str()
        .expect("a string claim")
        .to_owned()
}
