//! The witness over real loopback HTTP: every status of add-checkpoint, the cosignature it
//! returns, the monitoring endpoint and the metrics.

mod common;

use common::{NOW, TestLog, WITNESS, add, agent, get, start, witness_key};
use runpermit_log::{
    Checkpoint, Cosigned, LogKey, add_signature_lines, leaf_hash, sign_checkpoint,
    verify_checkpoint, verify_cosignatures,
};
use sha2::{Digest as _, Sha256};

const ORIGIN: &str = "log.example.org/runpermit";

fn origin_path(base: &str, origin: &str) -> String {
    format!("{base}/{}/checkpoint", hex::encode(Sha256::digest(origin)))
}

#[test]
fn every_answer_of_add_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    let base = start(dir.path(), &[log.vkey()]);
    let agent = agent();

    // Nothing cosigned yet: the monitoring endpoint has nothing.
    assert_eq!(get(&agent, &origin_path(&base, ORIGIN)).0, 404);

    // 200 from old 0; the line verifies as witness.example/w1's cosignature at NOW.
    log.grow(10);
    let (status, content_type, line) = add(&agent, &base, &log.request(0));
    assert_eq!(status, 200, "{line}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(line.starts_with(&format!("— {WITNESS} ")) && line.ends_with('\n'));
    assert_eq!(line.lines().count(), 1);
    let cosigned = add_signature_lines(&log.note(), std::slice::from_ref(&line));
    assert_eq!(
        verify_cosignatures(&cosigned, &[witness_key().verifier()]).unwrap(),
        vec![Cosigned {
            name: WITNESS.into(),
            timestamp: NOW
        }]
    );

    // The monitoring endpoint serves the checkpoint with both signatures.
    let (status, served) = get(&agent, &origin_path(&base, ORIGIN));
    assert_eq!(status, 200);
    assert_eq!(served, cosigned);
    assert_eq!(
        verify_checkpoint(&served, &log.vkey()).unwrap(),
        log.checkpoint()
    );
    assert_eq!(
        verify_cosignatures(&served, &[witness_key().verifier()])
            .unwrap()
            .len(),
        1
    );
    // Uppercase hex or another hash is not a log's path.
    let upper = origin_path(&base, ORIGIN)
        .to_uppercase()
        .replace("HTTP://", "http://");
    assert_eq!(get(&agent, &upper).0, 404);

    // 409: the witness holds 10; the body is that size, as text/x.tlog.size.
    log.grow(5);
    for old in [0, 3] {
        let (status, content_type, body) = add(&agent, &base, &log.request(old));
        assert_eq!(
            (status, content_type.as_str(), body.as_str()),
            (409, "text/x.tlog.size", "10\n")
        );
    }

    // 400: old larger than the checkpoint's size; malformed requests.
    let (status, _, body) = add(
        &agent,
        &base,
        &log.request(10).replacen("old 10", "old 16", 1),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("old size 16") && body.ends_with('\n') && body.lines().count() == 1);
    for bad in [
        log.request(10).replacen("old 10", "old 010", 1),
        log.request(10)
            .replacen("old 10\n", "old 10\nnot-base64\n", 1),
        "old 10\n".to_owned(),
        String::new(),
    ] {
        let (status, _, body) = add(&agent, &base, &bad);
        assert_eq!(status, 400, "{bad:?}: {body}");
    }
    let huge = format!("old 10\n\n{}", "x".repeat(100_000));
    assert_eq!(add(&agent, &base, &huge).0, 400);

    // 403: signed by another key with the log's name, or a broken signature.
    let mut impostor = TestLog::new(ORIGIN, 2);
    impostor.grow(15);
    let (status, _, body) = add(&agent, &base, &impostor.request(0));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("no valid signature"), "{body}");
    let broken = log.request(10);
    let (head, last) = broken.trim_end().rsplit_once(' ').unwrap();
    // Character 20 of the base64 is in the signature, after the key id.
    let flipped = if &last[20..21] == "A" { "B" } else { "A" };
    let broken = format!("{head} {}{flipped}{}\n", &last[..20], &last[21..]);
    let (status, _, body) = add(&agent, &base, &broken);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("does not verify"), "{body}");

    // 404: a log the witness does not know.
    let mut stranger = TestLog::new("other.example/log", 3);
    stranger.grow(2);
    let (status, _, body) = add(&agent, &base, &stranger.request(0));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("other.example/log"), "{body}");

    // 422: a proof that does not verify (a hash changed).
    let good = log.request(10);
    let mut lines: Vec<String> = good.split_inclusive('\n').map(str::to_owned).collect();
    lines[1] = format!("{}\n", leaf_hash(b"wrong"));
    let (status, _, body) = add(&agent, &base, &lines.concat());
    assert_eq!(status, 422, "{body}");
    // 422: equal size, different root (the same key signs a fork of size 10).
    let mut fork = TestLog::fork(ORIGIN, 1, "fork ");
    fork.grow(10);
    let (status, _, body) = add(&agent, &base, &fork.request(10));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("root"), "{body}");
    // 422: the fork grown past 10 with its own (valid for it) proof.
    fork.grow(5);
    assert_eq!(add(&agent, &base, &fork.request(10)).0, 422);

    // None of that moved the state: the real extension is cosigned, from 10.
    let (status, _, line) = add(&agent, &base, &log.request(10));
    assert_eq!(status, 200, "{line}");
    // Resubmitting the same checkpoint from its own size with an empty proof is cosigned.
    assert_eq!(add(&agent, &base, &log.request(15)).0, 200);

    // The metrics count each answer and show the size.
    let (status, metrics) = get(&agent, &format!("{base}/metrics"));
    assert_eq!(status, 200);
    for (code, n) in [(200, 3), (400, 6), (403, 2), (404, 1), (409, 2), (422, 3)] {
        let line = format!("runpermit_witness_add_checkpoint_total{{status=\"{code}\"}} {n}");
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
    assert!(
        metrics.contains(&format!(
            "runpermit_witness_log_size{{origin=\"{ORIGIN}\"}} 15"
        )),
        "{metrics}"
    );
    assert_eq!(
        get(&agent, &format!("{base}/healthz")),
        (200, "ok\n".into())
    );
}

#[test]
fn size_zero_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let log = TestLog::new(ORIGIN, 1);
    let base = start(dir.path(), &[log.vkey()]);
    let agent = agent();
    let key = LogKey::from_seed(ORIGIN, &[1; 32]).unwrap();
    // 422: a size-0 checkpoint whose root is not the empty tree's.
    let wrong = Checkpoint {
        origin: ORIGIN.into(),
        size: 0,
        root_hash: leaf_hash(b"x"),
    };
    let body = format!("old 0\n\n{}", sign_checkpoint(&wrong, &key).unwrap());
    let (status, _, text) = add(&agent, &base, &body);
    assert_eq!(status, 422, "{text}");
    // 422: a non-empty proof with old 0.
    let body = format!("old 0\n{}\n\n{}", leaf_hash(b"p"), log.note());
    assert_eq!(add(&agent, &base, &body).0, 422);
    // 200: the empty tree itself.
    assert_eq!(add(&agent, &base, &log.request(0)).0, 200);
}

#[test]
fn a_note_with_other_cosignatures_is_cosigned_and_served_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new(ORIGIN, 1);
    let base = start(dir.path(), &[log.vkey()]);
    let agent = agent();
    log.grow(3);
    let other = runpermit_log::CosignerKey::from_seed("witness.example/w2", &[4; 32]).unwrap();
    let w2 = other.cosign(&log.checkpoint(), 5).unwrap();
    let body = format!("{}{w2}", log.request(0));
    let (status, _, line) = add(&agent, &base, &body);
    assert_eq!(status, 200, "{line}");
    let (_, served) = get(&agent, &origin_path(&base, ORIGIN));
    assert_eq!(served, format!("{}{line}", log.note()));
}
