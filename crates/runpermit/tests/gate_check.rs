//! `runpermit gate check`'s exit status, path by path, against its contract (README, `--help`,
//! and what `integrations/slurm/job_submit.lua` reads): 0 allowed; 1 refused, whatever the
//! code; 2 no decision (a bad flag, or a file that cannot be read or used).
//!
//! Offline: the keys, the permit, its log proof and the status list are made here with the
//! library crates; the configured authority is a closed port, so a check without
//! `--status-list` has no list and fails closed. `gate check` reads this machine's clock, so
//! the permit and the list are built around the real time.

#[path = "../../runpermit-gate/tests/common/mod.rs"]
mod gate_world;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use gate_world::{LOG_NAME, log, permit_entry, request};
use runpermit_log::LogKey;
use runpermit_permit::{Jwks, SigningKey, StatusListClaims, check, sign, sign_status_list};

const BIN: &str = env!("CARGO_BIN_EXE_runpermit");

/// A gate directory with its configuration, JWKS, a permit and proof, and a status list.
struct Fixture {
    dir: PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        let dir = std::env::temp_dir().join(format!(
            "runpermit-gate-check-{name}-{}-{now}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("gate dir");
        let authority = SigningKey::from_seed(&[1; 32]);
        let jwks = Jwks::from_keys(&[authority.public()]);
        let log_key = LogKey::from_seed(LOG_NAME, &[2; 32]).expect("log key");
        let mut permit = request("pmt_main", "run_main");
        permit.nbf = now - 60;
        permit.exp = now + 3600;
        let signed = sign(check(permit, now).expect("a sound permit"), &authority);
        let proofs = log(&[permit_entry(&signed.token, &signed.claims)], &log_key);
        let list = StatusListClaims::new(gate_world::AUTHORITY, now - 10, 3600, 1, vec![]);
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect(name);
        write("jwks.json", &jwks.to_json());
        write("permit.jwt", &signed.token);
        write("permit.proof", &proofs[0]);
        write("status.jwt", &sign_status_list(&list, &authority));
        // No reporting_key: deciding never signs, so the gate does not need one.
        write(
            "gate.toml",
            &format!(
                r#"authority_url = "http://127.0.0.1:1"
jwks = "jwks.json"
log_vkey = "{}"
provider_id = "org-cloud"

[thresholds]
min_accelerators = 1024

[[clusters]]
name = "us-east-1"
accelerator = "H100 SXM"
accelerators = 16384
"#,
                log_key.verifier_key()
            ),
        );
        Fixture { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `gate check --config gate.toml ARGS`.
    fn check(&self, args: &[&str]) -> Output {
        self.run(&["--config", &self.path("gate.toml")], args)
    }

    /// `gate check CONFIG_ARGS ARGS`.
    fn run(&self, config: &[&str], args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["gate", "check"])
            .args(config)
            .args(args)
            .env_remove("RUNPERMIT_GATE_CONFIG")
            .output()
            .expect("running runpermit gate check")
    }

    /// A job of `accelerators` on `cluster` with the permit, its proof and the status list.
    fn job(&self, cluster: &'static str, accelerators: &'static str) -> Vec<String> {
        [
            "--cluster",
            cluster,
            "--accelerators",
            accelerators,
            "--hours",
            "24",
            "--permit",
            &self.path("permit.jwt"),
            "--proof",
            &self.path("permit.proof"),
            "--status-list",
            &self.path("status.jwt"),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The exit status, and the line it printed for people (stdout on allow, stderr otherwise).
#[track_caller]
fn expect(out: &Output, status: i32, line: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(status),
        "expected exit {status}:\nstdout: {stdout}\nstderr: {stderr}"
    );
    let printed = if status == 0 { &stdout } else { &stderr };
    assert!(
        printed.lines().any(|l| l.starts_with(line)),
        "expected a line starting {line:?}:\nstdout: {stdout}\nstderr: {stderr}"
    );
}

#[test]
fn allowed_jobs_exit_0() {
    let f = Fixture::new("allow");
    let held = f.dir.join("permits").join("pmt_main.jwt");
    assert!(!held.exists());
    expect(
        &f.check(&strs(&f.job("us-east-1", "2048"))),
        0,
        "ALLOW (permitted): ",
    );
    // The permitted job's permit is kept in the permit book beside the status list, where
    // `gate serve`'s metering finds its accounting basis.
    assert_eq!(
        std::fs::read_to_string(&held).unwrap(),
        std::fs::read_to_string(f.dir.join("permit.jwt")).unwrap()
    );
    let small = ["--cluster", "us-east-1", "--accelerators", "8"];
    expect(&f.check(&small), 0, "ALLOW (below_threshold): ");
}

#[test]
fn every_refusal_exits_1_whatever_its_code() {
    let f = Fixture::new("deny");
    let big = ["--cluster", "us-east-1", "--accelerators", "2048"];
    expect(&f.check(&big), 1, "DENY (permit_required): ");
    // No status list to be had (the authority is unreachable, and none is held yet: a list
    // once accepted is kept beside the configuration): refused, failing closed.
    let mut job = f.job("us-east-1", "2048");
    job.truncate(job.len() - 2);
    expect(&f.check(&strs(&job)), 1, "DENY (status_list_missing): ");
    // Request errors are refusals too, with their own codes.
    expect(
        &f.check(&strs(&f.job("eu-west-9", "2048"))),
        1,
        "DENY (unknown_cluster): ",
    );
    expect(
        &f.check(&strs(&f.job("us-east-1", "20000"))),
        1,
        "DENY (invalid_request): ",
    );
    // A tampered permit.
    let token = std::fs::read_to_string(f.dir.join("permit.jwt")).unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    std::fs::write(
        f.dir.join("permit.jwt"),
        format!("{signed}.{flipped}{}", &signature[1..]),
    )
    .unwrap();
    expect(
        &f.check(&strs(&f.job("us-east-1", "2048"))),
        1,
        "DENY (permit_bad_signature): ",
    );
    // With --json the decision is on stdout, and the status is the same.
    let mut json = f.job("eu-west-9", "2048");
    json.push("--json".into());
    let out = f.check(&strs(&json));
    assert_eq!(out.status.code(), Some(1));
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(decision["code"], "unknown_cluster");
    assert_eq!(decision["allow"], false);
}

#[test]
fn no_decision_exits_2() {
    let f = Fixture::new("error");
    let job = f.job("us-east-1", "2048");
    let job = strs(&job);
    let missing = f.path("missing");
    // The configuration: missing, not TOML, not a valid configuration.
    expect(
        &f.run(&["--config", &missing], &job),
        2,
        "error: reading --config",
    );
    std::fs::write(f.dir.join("bad.toml"), "authority_url = ").unwrap();
    expect(
        &f.run(&["--config", &f.path("bad.toml")], &job),
        2,
        "error: --config",
    );
    let config = std::fs::read_to_string(f.dir.join("gate.toml")).unwrap();
    std::fs::write(
        f.dir.join("no-clusters.toml"),
        config.split("[[clusters]]").next().unwrap(),
    )
    .unwrap();
    expect(
        &f.run(&["--config", &f.path("no-clusters.toml")], &job),
        2,
        "error: --config",
    );
    // The pinned JWKS: missing, then not a JWKS.
    let jwks = f.dir.join("jwks.json");
    let keys = std::fs::read_to_string(&jwks).unwrap();
    std::fs::remove_file(&jwks).unwrap();
    expect(&f.check(&job), 2, "error: reading the pinned JWKS");
    std::fs::write(&jwks, "{}").unwrap();
    expect(&f.check(&job), 2, "error: ");
    std::fs::write(&jwks, keys).unwrap();
    expect(&f.check(&job), 0, "ALLOW (permitted): ");
    // The job's files: the permit, the proof, the status list.
    for (flag, what) in [
        ("--permit", "reading --permit"),
        ("--proof", "reading --proof"),
        ("--status-list", "reading --status-list"),
    ] {
        let mut args = f.job("us-east-1", "2048");
        let at = args.iter().position(|a| a == flag).unwrap() + 1;
        args[at] = missing.clone();
        expect(&f.check(&strs(&args)), 2, &format!("error: {what}"));
    }
    // Flags: a permit without its proof, a value that is not a number, a missing flag.
    let permit = f.path("permit.jwt");
    let flags: [&[&str]; 3] = [
        &[
            "--cluster",
            "us-east-1",
            "--accelerators",
            "2048",
            "--permit",
            &permit,
        ],
        &["--cluster", "us-east-1", "--accelerators", "many"],
        &["--accelerators", "8"],
    ];
    for args in flags {
        let out = f.check(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{out:?}"
        );
    }
}

/// The Lua harness: a stub `slurm` table, the plugin loaded from `dir`, one job submitted.
/// Prints `RESULT <code>`, then what the user was told and the plugin logged as errors.
const LUA_HARNESS: &str = r#"
local dir, gpus, permit, proof = arg[1], tonumber(arg[2]), arg[3], arg[4]
local said = {}
slurm = {
    SUCCESS = 0, ERROR = -1, ESLURM_ACCESS_DENIED = 2002, NO_VAL = 4294967294,
    INFINITE = 4294967295,
    log_info = function() end,
    log_error = function(fmt, ...) table.insert(said, "ERROR " .. string.format(fmt, ...)) end,
    log_user = function(fmt, ...) table.insert(said, "USER " .. string.format(fmt, ...)) end,
}
dofile(dir .. "/job_submit.lua")
local env = nil
if permit ~= "" then env = { RUNPERMIT_PERMIT = permit, RUNPERMIT_PROOF = proof } end
local job = { tres_per_job = "gres:gpu:" .. gpus, partition = "gpu", time_limit = 60,
    environment = env, work_dir = dir }
print("RESULT " .. slurm_job_submit(job, { gpu = { name = "gpu" } }, 1000))
print("COMMENT " .. tostring(job.admin_comment))
for _, line in ipairs(said) do print(line) end
"#;

/// `job_submit.lua` with the real `runpermit gate check`: 0 admits, 1 refuses with the gate's
/// `DENY` line, anything else is no decision (refused, saying so). Needs `lua5.1` (installed
/// by `integrations/slurm/ci-setup.sh`); without it the test says it was skipped, except
/// where CI or `RUNPERMIT_TEST_SLURM` is set, where it fails.
#[test]
fn the_slurm_plugin_reads_the_exit_status() {
    if Command::new("lua5.1").arg("-v").output().is_err() {
        let required = ["CI", "RUNPERMIT_TEST_SLURM"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        assert!(
            !required,
            "lua5.1 is not installed (integrations/slurm/ci-setup.sh installs it)"
        );
        eprintln!("the_slurm_plugin_reads_the_exit_status: skipped: no lua5.1");
        return;
    }
    let f = Fixture::new("lua");
    // The status list the gate holds, as a previous check or `gate serve` would have kept it.
    std::fs::copy(f.dir.join("status.jwt"), f.dir.join("status-list.jwt")).unwrap();
    let lua = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../integrations/slurm/job_submit.lua");
    std::fs::copy(lua, f.dir.join("job_submit.lua")).unwrap();
    std::fs::write(f.dir.join("harness.lua"), LUA_HARNESS).unwrap();
    let settings = |config: &str, cluster: &str| {
        std::fs::write(
            f.dir.join("job_submit_runpermit.conf"),
            format!(
                "RUNPERMIT_BIN = {BIN:?}\nGATE_CONFIG = {:?}\nCLUSTER = {cluster:?}\n\
                 TIMEOUT_SECONDS = 60\n",
                f.path(config)
            ),
        )
        .unwrap();
    };
    let submit = |gpus: &str, with_permit: bool| {
        let (permit, proof) = if with_permit {
            (f.path("permit.jwt"), f.path("permit.proof"))
        } else {
            (String::new(), String::new())
        };
        let dir = f.dir.display().to_string();
        let out = Command::new("lua5.1")
            .arg(f.dir.join("harness.lua"))
            .args([&dir, gpus, &permit, &proof])
            .output()
            .expect("lua5.1");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };

    settings("gate.toml", "us-east-1");
    let admitted = submit("2048", true);
    assert!(admitted.contains("RESULT 0\n"), "{admitted}");
    assert!(
        admitted.contains("COMMENT runpermit:permit=pmt_main;run=run_main\n"),
        "{admitted}"
    );
    let refused = submit("2048", false);
    assert!(refused.contains("RESULT 2002\n"), "{refused}");
    assert!(
        refused.contains("USER DENY (permit_required): "),
        "{refused}"
    );
    settings("gate.toml", "eu-west-9");
    let unknown = submit("2048", true);
    assert!(unknown.contains("RESULT 2002\n"), "{unknown}");
    assert!(
        unknown.contains("USER DENY (unknown_cluster): "),
        "{unknown}"
    );
    settings("missing.toml", "us-east-1");
    let broken = submit("2048", true);
    assert!(broken.contains("RESULT 2002\n"), "{broken}");
    assert!(
        broken
            .contains("USER runpermit: the gate could not decide (exit 2: error: reading --config"),
        "{broken}"
    );
    assert!(
        broken.contains("ERROR runpermit: gate check failed (exit 2)"),
        "{broken}"
    );
}
