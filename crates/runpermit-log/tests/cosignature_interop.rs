//! Independent verifier: a Python script written from the C2SP texts
//! (`tests/interop/verify_cosignature.py`, Ed25519 from the `cryptography` package)
//! recomputes key ids and signed messages and must accept the cosignatures this crate
//! writes, refuse tampered ones, and agree with [`WitnessPolicy::verify_checkpoint`].
//!
//! Runs only when `RUNPERMIT_TEST_JOSE` is set (CI sets it after installing `cryptography`
//! for the PyJWT tests); otherwise it prints one line and passes. A plain `main`
//! (harness = false) so the skip line and the verdicts are printed on every run.

use std::path::Path;
use std::process::{Command, ExitCode};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use runpermit_log::{
    Checkpoint, CosignerKey, LogKey, PolicyError, WitnessPolicy, add_signature_lines, leaf_hash,
    sign_checkpoint,
};

const ENV: &str = "RUNPERMIT_TEST_JOSE";
const LOG: &str = "log.example.org/runpermit";

fn main() -> ExitCode {
    if std::env::var_os(ENV).is_none() {
        println!(
            "cosignature_interop: skipped: set {ENV}=1 to check cosignatures with an \
             independent Python verifier (needs python3 with `pip install cryptography`)"
        );
        return ExitCode::SUCCESS;
    }
    let dir = std::env::temp_dir().join(format!("runpermit-cosig-interop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let ok = run(&dir);
    if ok {
        let _ = std::fs::remove_dir_all(&dir);
        println!("cosignature_interop: the independent verifier agrees on every cosignature");
        ExitCode::SUCCESS
    } else {
        println!(
            "cosignature_interop: FAILED (notes kept in {})",
            dir.display()
        );
        ExitCode::FAILURE
    }
}

/// A note, what Python must say for each vkey, and what `WitnessPolicy` must say.
type Case<'a> = (&'a str, &'a String, [&'a str; 4], Result<(), PolicyError>);

fn run(dir: &Path) -> bool {
    let log = LogKey::from_seed(LOG, &[7; 32]).unwrap();
    let witnesses: Vec<CosignerKey> = ["witness.example/a", "w2.example", "third.example/w"]
        .iter()
        .enumerate()
        .map(|(i, name)| CosignerKey::from_seed(name, &[i as u8 + 1; 32]).unwrap())
        .collect();
    let stranger = CosignerKey::from_seed("stranger.example", &[9; 32]).unwrap();
    let checkpoint = Checkpoint {
        origin: LOG.into(),
        size: 1_234_567,
        root_hash: leaf_hash(b"interop"),
    };
    let note = sign_checkpoint(&checkpoint, &log).unwrap();
    let cosign = |w: &CosignerKey, t: u64| w.cosign(&checkpoint, t).unwrap();
    let vkeys: Vec<String> = witnesses
        .iter()
        .chain([&stranger])
        .map(CosignerKey::verifier_key)
        .collect();
    let mut policy_text = format!("log {}\n", log.verifier_key());
    for (i, w) in witnesses.iter().enumerate() {
        policy_text.push_str(&format!("witness W{i} {}\n", w.verifier_key()));
    }
    policy_text.push_str("group all-three all W0 W1 W2\nquorum all-three\n");
    let policy = WitnessPolicy::parse(&policy_text).unwrap();

    // All three cosign, with timestamps up to 2^63-1.
    let good = add_signature_lines(
        &note,
        &[
            cosign(&witnesses[0], 1_767_225_600),
            cosign(&witnesses[1], 0),
            cosign(&witnesses[2], i64::MAX as u64),
        ],
    );
    // Witness 1's signature bytes altered.
    let line = cosign(&witnesses[1], 5);
    let (head, b64) = line.trim_end().rsplit_once(' ').unwrap();
    let mut raw = STANDARD.decode(b64).unwrap();
    raw[40] ^= 0x10;
    let bad_sig = add_signature_lines(
        &note,
        &[
            cosign(&witnesses[0], 5),
            format!("{head} {}\n", STANDARD.encode(&raw)),
            cosign(&witnesses[2], 5),
        ],
    );
    // Witness 2's timestamp changed after signing.
    let line = cosign(&witnesses[2], 1000);
    let (head, b64) = line.trim_end().rsplit_once(' ').unwrap();
    let mut raw = STANDARD.decode(b64).unwrap();
    raw[11] ^= 1;
    let bad_time = add_signature_lines(
        &note,
        &[
            cosign(&witnesses[0], 5),
            cosign(&witnesses[1], 5),
            format!("{head} {}\n", STANDARD.encode(&raw)),
        ],
    );
    // Cosignatures of another tree pasted onto this checkpoint.
    let mut other = checkpoint.clone();
    other.size += 1;
    let other_tree = add_signature_lines(
        &note,
        &[
            witnesses[0].cosign(&other, 5).unwrap(),
            cosign(&witnesses[1], 5),
        ],
    );

    let cases: [Case; 4] = [
        (
            "all valid",
            &good,
            ["valid", "valid", "valid", "absent"],
            Ok(()),
        ),
        (
            "a signature altered",
            &bad_sig,
            ["valid", "invalid", "valid", "absent"],
            Err(PolicyError::BadCosignature {
                witness: "W1".into(),
            }),
        ),
        (
            "a timestamp altered",
            &bad_time,
            ["valid", "valid", "invalid", "absent"],
            Err(PolicyError::BadCosignature {
                witness: "W2".into(),
            }),
        ),
        (
            "another tree's cosignature",
            &other_tree,
            ["invalid", "valid", "absent", "absent"],
            Err(PolicyError::BadCosignature {
                witness: "W0".into(),
            }),
        ),
    ];
    let mut ok = true;
    for (i, (what, note, expected, ours_expected)) in cases.iter().enumerate() {
        let path = dir.join(format!("note-{i}"));
        std::fs::write(&path, note).expect("write note");
        let results = python(&path, &vkeys);
        let got: Vec<&str> = results
            .iter()
            .map(|r| r["result"].as_str().unwrap())
            .collect();
        if got != expected {
            println!("cosignature_interop: {what}: Python says {got:?}, expected {expected:?}");
            ok = false;
        }
        if *what == "all valid" {
            let times: Vec<Value> = results.iter().map(|r| r["timestamp"].clone()).collect();
            let want = [1_767_225_600u64, 0, i64::MAX as u64].map(Value::from);
            if times[..3] != want {
                println!("cosignature_interop: timestamps {times:?}");
                ok = false;
            }
        }
        let ours = policy
            .verify_checkpoint(note, &log.verifier_key())
            .map(|_| ());
        if &ours != ours_expected {
            println!(
                "cosignature_interop: {what}: runpermit says {ours:?}, expected {ours_expected:?}"
            );
            ok = false;
        }
        println!("cosignature_interop: {what}: {got:?}");
    }
    ok
}

fn python(note: &Path, vkeys: &[String]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verify_cosignature.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg(note)
        .args(vkeys)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} failed ({}); is `cryptography` installed?\n{stdout}\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}
