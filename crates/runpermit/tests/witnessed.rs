//! Witness policies from the command line, with the real binary against a served log:
//! `permit verify --witness-policy`, `log verify --witness-policy` and a gate configured with
//! `witness_policy`. The authority's checkpoint carries no cosignature here, so the tests add
//! them to a proof with real witness keys, as a witness would.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use runpermit_log::{CosignerKey, ProofBundle, add_signature_lines};
use serde_json::Value;

fn witnesses() -> [CosignerKey; 3] {
    [1u8, 2, 3].map(|i| CosignerKey::from_seed(&format!("w{i}.example"), &[0x50 + i; 32]).unwrap())
}

fn write_policy(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("policy");
    path
}

fn two_of_three(log_vkey: &str) -> String {
    let mut text = format!("# two of three witnesses\nlog {log_vkey}\n");
    for w in witnesses() {
        text.push_str(&format!("witness {} {}\n", w.name(), w.verifier_key()));
    }
    text + "group witnesses 2 w1.example w2.example w3.example\nquorum witnesses\n"
}

/// The proof in `proof` with its checkpoint cosigned by `by`, written beside it.
fn cosign(proof: &Path, by: &[&CosignerKey], name: &str) -> PathBuf {
    let mut bundle = ProofBundle::parse(&std::fs::read_to_string(proof).unwrap()).unwrap();
    let body = bundle.checkpoint.split_once("\n\n").unwrap().0.to_owned() + "\n";
    let lines: Vec<String> = by
        .iter()
        .map(|w| w.cosign_body(&body, 1_767_225_600).unwrap())
        .collect();
    bundle.checkpoint = add_signature_lines(&bundle.checkpoint, &lines);
    let out = proof.with_file_name(name);
    std::fs::write(&out, bundle.to_string()).unwrap();
    out
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn verifiers_and_gates_require_the_policys_quorum() {
    let dir = std::env::temp_dir().join(format!("runpermit-witnessed-{}", std::process::id()));
    let a = start_in(dir, None);
    let alice = lab_applicant(&a, "Witnessed Lab");
    let (permit, proof) = permit_valid_today(&a, &alice, "w");
    let policy = write_policy(&a.dir, "policy.txt", &two_of_three(&a.log_vkey));
    let [w1, w2, w3] = witnesses();
    let jwks = format!("{}/.well-known/jwks.json", a.server);
    let verify = |proof: &Path, policy: &Path| {
        run(
            &[
                "permit",
                "verify",
                path_str(&permit),
                "--jwks",
                &jwks,
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
    };

    // permit verify: the authority's uncosigned proof lacks the quorum.
    let out = verify(&proof, &policy);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("not witnessed") && err.contains("w1.example, w2.example, w3.example"),
        "{err}"
    );
    let one = cosign(&proof, &[&w2], "one.proof");
    let err = stderr(&verify(&one, &policy));
    assert!(
        err.contains("cosigned by w2.example") && err.contains("w1.example, w3.example"),
        "{err}"
    );
    let two = cosign(&proof, &[&w1, &w3], "two.proof");
    let out = verify(&two, &policy);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("witnessed by:     w1.example, w3.example"),
        "{stdout}"
    );
    // A malformed policy is a usage error naming the file and line.
    let bad = write_policy(&a.dir, "bad.txt", "witness w1\nquorum none\n");
    let out = verify(&two, &bad);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bad.txt: witness policy line 1"),
        "{}",
        stderr(&out)
    );

    // A gate with witness_policy refuses the uncosigned proof and admits the cosigned one.
    let (gate, config) = write_gate(&a, 1024);
    std::fs::copy(&policy, gate.join("witnesses.txt")).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "provider_id =",
        "witness_policy = \"witnesses.txt\"\nprovider_id =",
    );
    std::fs::write(&config, text).unwrap();
    let check = |proof: &Path| {
        let out = run(
            &[
                "gate",
                "check",
                "--config",
                path_str(&config),
                "--cluster",
                "nw-east-1",
                "--accelerators",
                "2048",
                "--permit",
                path_str(&permit),
                "--proof",
                path_str(proof),
                "--json",
            ],
            &a.server,
            "",
        );
        let decision: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", stderr(&out)));
        (out.status.code(), decision)
    };
    let (code, decision) = check(&proof);
    assert_eq!(code, Some(1));
    assert_eq!(decision["code"], "proof_not_witnessed", "{decision}");
    assert!(
        decision["message"]
            .as_str()
            .unwrap()
            .contains("still needed: w1.example, w2.example, w3.example"),
        "{decision}"
    );
    let (code, decision) = check(&two);
    assert_eq!(
        (code, decision["code"].as_str()),
        (Some(0), Some("permitted"))
    );
    // A broken policy file stops the gate at load, naming the key.
    std::fs::write(gate.join("witnesses.txt"), "quorum nobody\n").unwrap();
    let out = run(
        &[
            "gate",
            "check",
            "--config",
            path_str(&config),
            "--cluster",
            "nw-east-1",
            "--accelerators",
            "8",
        ],
        &a.server,
        "",
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("witness_policy"), "{}", stderr(&out));

    // log verify: the served checkpoint has no cosignature, so the quorum is not met and the
    // state is not advanced; `quorum none` passes.
    let state = a.dir.join("log-state.json");
    let log_verify = |policy: &Path| {
        run(
            &[
                "log",
                "verify",
                "--url",
                &a.server,
                "--vkey",
                &a.log_vkey,
                "--state",
                path_str(&state),
                "--witness-policy",
                path_str(policy),
                "--no-status-list",
            ],
            &a.server,
            "",
        )
    };
    let out = log_verify(&policy);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CHECKPOINT NOT WITNESSED")
            && stderr(&out).contains("w1.example, w2.example, w3.example"),
        "{}",
        stderr(&out)
    );
    assert!(!state.exists(), "an unwitnessed checkpoint is not kept");
    let none = write_policy(&a.dir, "none.txt", "quorum none\n");
    let out = log_verify(&none);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(state.exists());
}

/// A one-route HTTP server answering every GET with `body` (changeable): a witness's
/// monitoring endpoint or a mirror, as far as `log verify --peer` can tell.
fn serve_text(body: std::sync::Arc<std::sync::Mutex<String>>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let text = body.lock().unwrap().clone();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    format!("http://{addr}")
}

#[test]
fn log_verify_gossip_reports_a_fork_with_both_checkpoints() {
    use runpermit_log::{Checkpoint, LogKey, leaf_hash, sign_checkpoint};
    let dir = std::env::temp_dir().join(format!("runpermit-gossip-{}", std::process::id()));
    let a = start_in(dir, None);
    let alice = lab_applicant(&a, "Gossip Lab");
    permit_valid_today(&a, &alice, "g");
    let note = http_get(&a.server, "/log/checkpoint");
    let body = note.split_once("\n\n").unwrap().0.to_owned() + "\n";
    let honest = Checkpoint::from_body(&body).unwrap();
    let pem = std::fs::read_to_string(a.dir.join("data/keys/log-signing.pem")).unwrap();
    let key = LogKey::from_pkcs8_pem(&honest.origin, &pem).unwrap();
    let forged = |size: u64| {
        sign_checkpoint(
            &Checkpoint {
                origin: honest.origin.clone(),
                size,
                root_hash: leaf_hash(b"another history"),
            },
            &key,
        )
        .unwrap()
    };
    let served = std::sync::Arc::new(std::sync::Mutex::new(note.clone()));
    let peer = serve_text(served.clone()) + "/witness";
    let state = a.dir.join("gossip-state.json");
    let verify = || {
        run(
            &[
                "log",
                "verify",
                "--url",
                &a.server,
                "--vkey",
                &a.log_vkey,
                "--no-status-list",
                "--state",
                path_str(&state),
                "--peer",
                &peer,
            ],
            &a.server,
            "",
        )
    };
    // The same checkpoint from a witness: consistent.
    let out = verify();
    assert!(out.status.success(), "{}", stderr(&out));

    // The same size with another root, validly signed: a fork, with both sides as evidence.
    *served.lock().unwrap() = forged(honest.size);
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    for needed in [
        "fork:",
        "same size, different roots",
        &format!(
            "{}/log/checkpoint: origin {}, size {}",
            a.server, honest.origin, honest.size
        ),
        &format!("{peer}/"),
        &honest.root_hash.to_string(),
        &leaf_hash(b"another history").to_string(),
    ] {
        assert!(err.contains(needed), "{err} lacks {needed}");
    }
    // A smaller tree that is not a prefix of the verified log: a fork too.
    *served.lock().unwrap() = forged(honest.size - 1);
    let err = stderr(&verify());
    assert!(
        err.contains("fork:") && err.contains(&format!("size {}", honest.size - 1)),
        "{err}"
    );

    // A larger checkpoint from a witness cannot be checked yet: kept as the largest seen.
    *served.lock().unwrap() = forged(honest.size + 100);
    let out = verify();
    assert!(out.status.success(), "{}", stderr(&out));
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(
        saved["largest_seen"]["checkpoint"]["size"],
        honest.size + 100
    );
    // A checkpoint not signed by the log key is no evidence: skipped with a warning.
    *served.lock().unwrap() =
        note.replace(&honest.root_hash.to_string(), &leaf_hash(b"x").to_string());
    let out = verify();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("checkpoint refused under the log key"),
        "{}",
        stderr(&out)
    );
}
