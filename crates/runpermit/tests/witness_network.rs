//! The witnessed log end to end, with real processes: three witnesses
//! (`runpermit witness serve`), an authority that asks them (`serve --witness-policy`), and a
//! gate and `permit verify` that require a 2-of-3 quorum. Then a split view: a second
//! authority process holding the same log key but its own database shows another history;
//! the witnesses refuse to cosign it and the gate refuses its permit, naming the witnesses it
//! lacks.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{
    Authority, http_get, init, json, lab_applicant, ok, path_str, permit_valid_today, run,
    spawn_serve_with, write_gate,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_runpermit");

/// A `runpermit witness serve` process.
struct Witness {
    child: Child,
    url: String,
    vkey: String,
}

impl Drop for Witness {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates witness `name` in `dir` for the log `log_vkey` and serves it on a free port.
fn start_witness(dir: &Path, name: &str, log_vkey: &str) -> Witness {
    let out = Command::new(BIN)
        .args(["witness", "init", "--name", name, "--dir"])
        .arg(dir)
        .args(["--log", log_vkey])
        .output()
        .expect("runpermit witness init");
    assert!(
        out.status.success(),
        "witness init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let vkey = stdout
        .lines()
        .find_map(|l| l.strip_prefix("vkey:"))
        .expect("init prints the witness's vkey")
        .trim()
        .to_owned();
    let mut child = Command::new(BIN)
        .args(["witness", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(dir.join("witness.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runpermit witness serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            lines.read_line(&mut line).expect("reading witness output") > 0,
            "witness serve exited early"
        );
    }
    let url = line.trim().rsplit(' ').next().expect("URL").to_owned();
    Witness { child, url, vkey }
}

/// The witness policy: this log, three witnesses with their URLs, any two of them.
fn write_policy(dir: &Path, log_vkey: &str, witnesses: &[&Witness]) -> PathBuf {
    let mut text = format!("# The log and its witnesses\nlog {log_vkey}\n");
    for (i, w) in witnesses.iter().enumerate() {
        text.push_str(&format!("witness w{} {} {}\n", i + 1, w.vkey, w.url));
    }
    text.push_str("group two-of-three 2 w1 w2 w3\nquorum two-of-three\n");
    let path = dir.join("witnesses.policy");
    std::fs::write(&path, text).expect("policy");
    path
}

/// The tree size in a checkpoint note.
fn checkpoint_size(note: &str) -> u64 {
    note.lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("not a checkpoint: {note}"))
}

/// The names on the cosignature lines of a note (every signature line but the log's).
fn cosigners(note: &str, origin: &str) -> Vec<String> {
    note.lines()
        .filter_map(|l| l.strip_prefix("— "))
        .filter_map(|l| l.split(' ').next())
        .filter(|name| *name != origin)
        .map(str::to_owned)
        .collect()
}

/// Waits until `/log/checkpoint` is a witnessed checkpoint covering the first `size`
/// entries (the published checkpoint only ever meets the quorum once it has cosignatures).
fn wait_witnessed(server: &str, origin: &str, size: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let note = http_get(server, "/log/checkpoint");
        if checkpoint_size(&note) >= size && cosigners(&note, origin).len() >= 2 {
            return note;
        }
        assert!(
            Instant::now() < deadline,
            "no witnessed checkpoint of {size} entries; the last: {note}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `runpermit permit verify` of `permit` with its proof under `policy`.
fn verify_with_policy(a: &Authority, permit: &Path, proof: &Path, policy: &Path) -> Output {
    run(
        &[
            "permit",
            "verify",
            path_str(permit),
            "--jwks",
            &format!("{}/.well-known/jwks.json", a.server),
            "--proof",
            path_str(proof),
            "--log-vkey",
            &a.log_vkey,
            "--witness-policy",
            path_str(policy),
        ],
        &a.server,
        "",
    )
}

/// `runpermit gate check` of a 64-GPU job under `permit`; returns exit code, decision code
/// and message.
fn gate_check(a: &Authority, config: &Path, permit: &Path, proof: &Path) -> (i32, String, String) {
    let out = run(
        &[
            "gate",
            "check",
            "--config",
            path_str(config),
            "--cluster",
            "nw-east-1",
            "--accelerators",
            "64",
            "--permit",
            path_str(permit),
            "--proof",
            path_str(proof),
            "--json",
        ],
        &a.server,
        "",
    );
    let decision: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (
        out.status.code().unwrap_or(-1),
        decision["code"].as_str().unwrap_or("").to_owned(),
        decision["message"].as_str().unwrap_or("").to_owned(),
    )
}

/// The permit id (`jti`) of the token in `permit`.
fn permit_id(a: &Authority, permit: &Path) -> String {
    let claims = json(
        &[
            "permit",
            "verify",
            path_str(permit),
            "--jwks",
            &format!("{}/.well-known/jwks.json", a.server),
        ],
        a,
        "",
    );
    claims["jti"]
        .as_str()
        .or_else(|| claims["claims"]["jti"].as_str())
        .unwrap_or_else(|| panic!("permit verify shows the permit id: {claims}"))
        .to_owned()
}

/// Waits until the published checkpoint is witnessed and covers `permit`'s log entry, then
/// fetches its proof again; returns that checkpoint.
fn witnessed_proof(a: &Authority, applicant: &str, permit: &Path, proof: &Path) -> String {
    let id = permit_id(a, permit);
    let view = json(&["permit", "get", &id], a, applicant);
    let index = view["log_index"]
        .as_u64()
        .unwrap_or_else(|| panic!("the permit is logged: {view}"));
    let origin = a.log_vkey.split('+').next().expect("origin");
    let note = wait_witnessed(&a.server, origin, index + 1);
    ok(
        &["permit", "get", &id, "--proof", path_str(proof)],
        a,
        applicant,
    );
    note
}

fn metric(server: &str, name: &str, witness: &str) -> Option<f64> {
    let text = http_get(server, "/metrics");
    let prefix = format!("{name}{{witness=\"{witness}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn three_witnesses_cosign_and_a_split_view_is_refused() {
    let dir = std::env::temp_dir().join(format!("runpermit-witnessed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let data = dir.join("data");
    let first = init(&data, None);
    let origin = first.log_vkey.split('+').next().expect("origin").to_owned();

    let w1 = start_witness(&dir.join("w1"), "witness.test/w1", &first.log_vkey);
    let w2 = start_witness(&dir.join("w2"), "witness.test/w2", &first.log_vkey);
    let w3 = start_witness(&dir.join("w3"), "witness.test/w3", &first.log_vkey);
    let policy = write_policy(&dir, &first.log_vkey, &[&w1, &w2, &w3]);
    let (child, server) = spawn_serve_with(&data, None, &["--witness-policy", path_str(&policy)]);
    let a = Authority {
        child,
        server,
        dir: dir.clone(),
        admin_token: first.admin_token,
        log_vkey: first.log_vkey.clone(),
    };

    // A permit; once the witnesses cosigned, its proof carries a witnessed checkpoint.
    let lab = lab_applicant(&a, "Heron Labs");
    let (permit, proof) = permit_valid_today(&a, &lab, "witnessed");
    let note = witnessed_proof(&a, &lab, &permit, &proof);
    assert!(cosigners(&note, &origin).len() >= 2, "{note}");
    let bundle = std::fs::read_to_string(&proof).expect("proof");
    assert!(bundle.contains("— witness.test/w1 "), "{bundle}");
    let verified = verify_with_policy(&a, &permit, &proof, &policy);
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );

    // The gate requires the quorum.
    let (_, config) = write_gate(&a, 8);
    let text = std::fs::read_to_string(&config).expect("gate config");
    std::fs::write(
        &config,
        format!("witness_policy = \"{}\"\n{text}", path_str(&policy)),
    )
    .expect("gate config");
    let (code, decision, message) = gate_check(&a, &config, &permit, &proof);
    assert_eq!((code, decision.as_str()), (0, "permitted"), "{message}");
    // Every witness is caught up, and /metrics says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    for w in ["w1", "w2", "w3"] {
        while metric(&a.server, "runpermit_witness_lag_entries", w) != Some(0.0) {
            assert!(Instant::now() < deadline, "{w} never caught up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // A witness that is down does not stop the log: two of three still make the quorum,
    // and its lag shows.
    drop(w3);
    let (permit2, proof2) = permit_valid_today(&a, &lab, "two-of-three");
    let note = witnessed_proof(&a, &lab, &permit2, &proof2);
    assert_eq!(
        cosigners(&note, &origin),
        ["witness.test/w1", "witness.test/w2"],
        "{note}"
    );
    assert_eq!(gate_check(&a, &config, &permit2, &proof2).1, "permitted");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&a.server, "runpermit_witness_lag_entries", "w3").unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "w3's lag never showed");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The split view: a second process with the authority's keys (log and permit) but its
    // own database shows another history.
    let fork_data = dir.join("fork");
    let mut fork_init = Command::new(BIN);
    fork_init
        .args(["init", "--data-dir"])
        .arg(&fork_data)
        .arg("--log-key")
        .arg(data.join("keys/log-signing.pem"))
        .arg("--signing-key")
        .arg(data.join("keys/permit-signing.pem"));
    let out = fork_init.output().expect("init the fork");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fork_stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        fork_stdout.contains(&first.log_vkey),
        "the fork signs with the same log key: {fork_stdout}"
    );
    let fork_admin = fork_stdout
        .split_whitespace()
        .find(|w| w.starts_with("rpt_"))
        .expect("bootstrap token")
        .to_owned();
    let (log_key, permit_key) = (
        data.join("keys/log-signing.pem"),
        data.join("keys/permit-signing.pem"),
    );
    let (fork_child, fork_server) = spawn_serve_with(
        &fork_data,
        None,
        &[
            "--witness-policy",
            path_str(&policy),
            "--log-key",
            path_str(&log_key),
            "--signing-key",
            path_str(&permit_key),
        ],
    );
    let fork = Authority {
        child: fork_child,
        server: fork_server,
        dir: dir.join("fork-run"),
        admin_token: fork_admin,
        log_vkey: first.log_vkey.clone(),
    };
    std::fs::create_dir_all(&fork.dir).expect("fork dir");
    let fork_lab = lab_applicant(&fork, "Heron Labs");
    let (fork_permit, fork_proof) = permit_valid_today(&fork, &fork_lab, "forked");
    // The witnesses refuse it: the fork's client counts refusals, never a cosignature.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = http_get(&fork.server, "/metrics");
        let refused = text.lines().any(|l| {
            l.starts_with("runpermit_witness_requests_total")
                && l.contains("witness=\"w1\"")
                && (l.contains("outcome=\"refused\"") || l.contains("outcome=\"ahead\""))
        });
        if refused {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "w1 never refused the fork:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let fork_note = http_get(&fork.server, "/log/checkpoint");
    assert!(
        cosigners(&fork_note, &origin).is_empty(),
        "no witness cosigned the fork: {fork_note}"
    );
    // The gate refuses the forked history's permit and names the witnesses it lacks.
    let (code, decision, message) = gate_check(&fork, &config, &fork_permit, &fork_proof);
    assert_eq!(code, 1, "{decision}: {message}");
    assert_eq!(decision, "proof_not_witnessed", "{message}");
    assert!(
        message.contains("w1") && message.contains("w2"),
        "names the missing witnesses: {message}"
    );
    assert!(
        !message.contains("  "),
        "one sentence, no runs of spaces: {message}"
    );
    let refused = verify_with_policy(&fork, &fork_permit, &fork_proof, &policy);
    assert!(!refused.status.success());
    // An auditor of the forked log who requires the quorum is refused, naming the witnesses.
    let audit = |server: &str, extra: &[&str]| {
        let mut args = vec![
            "log",
            "verify",
            "--url",
            server,
            "--vkey",
            &first.log_vkey,
            "--no-status-list",
        ];
        args.extend_from_slice(extra);
        let out = run(&args, server, "");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = audit(&fork.server, &["--witness-policy", path_str(&policy)]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("w1") && text.contains("w2"), "{text}");
    // Gossip: auditing the honest log with the fork's checkpoint as a peer reports the fork,
    // with both checkpoints.
    let (code, text) = audit(
        &a.server,
        &["--peer", &format!("{}/log/checkpoint", fork.server)],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(text.to_lowercase().contains("fork"), "{text}");
    // The witnesses still hold the first history.
    let held = http_get(
        &w1.url,
        &format!("/{}/checkpoint", sha256_hex(origin.as_bytes())),
    );
    assert_eq!(checkpoint_size(&held), checkpoint_size(&note));
    drop(fork);
    drop(a);
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}
