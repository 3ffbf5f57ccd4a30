//! Independent verifier: Go's `golang.org/x/mod/sumdb/note` and `golang.org/x/mod/sumdb/tlog`
//! (Debian's `golang-golang-x-mod-dev`, through `tests/go/verify.go`) must accept the log,
//! checkpoints, inclusion proofs and consistency proofs this crate writes, compute the
//! same proofs from the tiles, and reject tampered proofs.
//!
//! Runs only when `RUNPERMIT_TEST_GO` is set (CI sets it after
//! `apt-get install golang-go golang-golang-x-mod-dev`); otherwise it prints one line and
//! passes, except under `CI`, where a missing verifier is a failure. A plain `main`
//! (harness = false) so that the skip line and the verdicts are printed on every run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use common::{MemLog, NAME, sample_bytes};
use runpermit_log::{
    Checkpoint, Hash, LogKey, ProofBundle, consistency_proof, inclusion_proof, sign_checkpoint,
};

const ENV: &str = "RUNPERMIT_TEST_GO";

fn main() -> ExitCode {
    if std::env::var_os(ENV).is_none() {
        if std::env::var_os("CI").is_some() {
            println!(
                "go_interop: FAILED: {ENV} is not set under CI; install `golang-go` and \
                 `golang-golang-x-mod-dev` (apt-get) and set {ENV}=1"
            );
            return ExitCode::FAILURE;
        }
        println!(
            "go_interop: skipped: set {ENV}=1 to check the log with Go's x/mod/sumdb \
             (needs apt-get install golang-go golang-golang-x-mod-dev)"
        );
        return ExitCode::SUCCESS;
    }
    let dir = std::env::temp_dir().join(format!(
        "runpermit-go-interop-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let expected = write_log(&dir);
    let output = match run_go(&dir) {
        Ok(output) => output,
        Err(e) => {
            println!("go_interop: FAILED: {e} (log kept in {})", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for (what, accept) in &expected {
        let want = if *accept {
            format!("ok {what}")
        } else {
            format!("rejected {what}:")
        };
        let found = output
            .lines()
            .any(|l| l == want || (!accept && l.starts_with(&want)));
        if !found {
            println!("go_interop: expected {want:?}");
            ok = false;
        }
    }
    let lines = output.lines().count();
    if lines != expected.len() {
        println!(
            "go_interop: expected {} verdicts, Go printed {lines}",
            expected.len()
        );
        ok = false;
    }
    if ok {
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "go_interop: Go's sumdb/tlog and sumdb/note agree on {} checks (checkpoint, tiles, \
             entries, {} proofs)",
            expected.len(),
            expected.len() - 3
        );
        ExitCode::SUCCESS
    } else {
        println!(
            "go_interop: FAILED; Go said:\n{output}(log kept in {})",
            dir.display()
        );
        ExitCode::FAILURE
    }
}

fn run_go(dir: &Path) -> Result<String, String> {
    let go_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/go");
    let mut cmd = Command::new("go");
    cmd.current_dir(&go_dir)
        .args(["run", "verify.go"])
        .arg(dir)
        .env("GOPATH", "/usr/share/gocode")
        .env("GO111MODULE", "off");
    if std::env::var_os("GOCACHE").is_none() && std::env::var_os("HOME").is_none() {
        cmd.env("GOCACHE", dir.join("gocache"));
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run `go` ({e}); install golang-go"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "go exited with {}: {}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn flip(h: &Hash) -> Hash {
    let mut b = h.0;
    b[31] ^= 1;
    Hash(b)
}

/// Writes a log of 700 entries (appended in uneven batches) with proofs, and returns the
/// verdicts Go must print: `(what, accepted)`.
fn write_log(dir: &Path) -> Vec<(String, bool)> {
    let mut log = MemLog::new();
    let mut notes = Vec::new();
    let mut size = 0u64;
    for batch in [1u64, 99, 200, 156, 44, 200] {
        log.append((size..size + batch).map(sample_bytes).collect());
        size += batch;
        notes.push((size, log.checkpoint()));
    }
    assert_eq!(log.size(), 700);
    for (path, bytes) in &log.files {
        write(&dir.join(path), bytes);
    }
    write(&dir.join("vkey"), log.key.verifier_key());
    let note = log.checkpoint();
    let mut expected = vec![
        (format!("checkpoint 700 {}", log.root), true),
        ("tiles".to_owned(), true),
        ("entries 700".to_owned(), true),
    ];

    // Inclusion proofs in the latest tree, and one in an older checkpoint.
    let bundle = |index: u64, size: u64, note: &str| ProofBundle {
        index,
        entry: Some(log.entries[index as usize].clone()),
        proof: inclusion_proof(index, size, &log.stored).unwrap(),
        checkpoint: note.to_owned(),
    };
    let mut proofs: Vec<(String, ProofBundle, bool)> = Vec::new();
    for index in [0u64, 1, 2, 255, 256, 299, 511, 512, 698, 699] {
        proofs.push((format!("{index:03}"), bundle(index, 700, &note), true));
    }
    let (old_size, old_note) = notes[2].clone();
    assert_eq!(old_size, 300);
    proofs.push(("old-299".into(), bundle(299, 300, &old_note), true));

    // Tampered proofs Go must reject.
    let good = bundle(300, 700, &note);
    let mut b = good.clone();
    b.proof[2] = flip(&b.proof[2]);
    proofs.push(("bad-hash".into(), b, false));
    let mut b = good.clone();
    b.index = 301;
    proofs.push(("bad-index".into(), b, false));
    let mut b = good.clone();
    b.entry = Some(sample_bytes(301));
    proofs.push(("bad-entry".into(), b, false));
    let mut b = good.clone();
    b.proof.pop();
    proofs.push(("bad-short".into(), b, false));
    let mut b = good.clone();
    let (body, sig) = note.split_once("\n\n").unwrap();
    let mut sig = sig.to_owned();
    let at = sig.len() - 10;
    let c = if &sig[at..=at] == "A" { "B" } else { "A" };
    sig.replace_range(at..=at, c);
    b.checkpoint = format!("{body}\n\n{sig}");
    proofs.push(("bad-signature".into(), b, false));
    let stranger = LogKey::from_seed(NAME, &[1; 32]).unwrap();
    let mut b = good.clone();
    b.checkpoint = sign_checkpoint(
        &Checkpoint {
            origin: NAME.into(),
            size: 700,
            root_hash: log.root,
        },
        &stranger,
    )
    .unwrap();
    proofs.push(("bad-key".into(), b, false));
    for (name, bundle, accept) in proofs {
        write(
            &dir.join(format!("proofs/{name}.tlog-proof")),
            bundle.to_string(),
        );
        expected.push((format!("proof {name}.tlog-proof"), accept));
    }

    // Consistency proofs from every earlier checkpoint to the latest, and tampered ones.
    let consistency = |name: &str, old: &str, new: &str, proof: &[Hash], accept: bool| {
        let d = dir.join(format!("consistency/{name}"));
        write(&d.join("old"), old);
        write(&d.join("new"), new);
        let lines: String = proof.iter().map(|h| format!("{h}\n")).collect();
        write(&d.join("proof"), lines);
        (format!("consistency {name}"), accept)
    };
    for (old_size, old_note) in &notes {
        let proof = consistency_proof(*old_size, 700, &log.stored).unwrap();
        expected.push(consistency(
            &format!("{old_size:03}"),
            old_note,
            &note,
            &proof,
            true,
        ));
    }
    let (_, note_100) = &notes[1];
    let (_, note_456) = &notes[3];
    let proof = consistency_proof(100, 456, &log.stored).unwrap();
    expected.push(consistency(
        "older-100-456",
        note_100,
        note_456,
        &proof,
        true,
    ));
    let mut bad = consistency_proof(300, 700, &log.stored).unwrap();
    bad[0] = flip(&bad[0]);
    expected.push(consistency("bad-proof", &old_note, &note, &bad, false));
    // A forked old checkpoint (same key, same size, another root).
    let mut fork = MemLog::new();
    let mut entries: Vec<Vec<u8>> = log.entries[..300].to_vec();
    entries[5] = sample_bytes(5005);
    fork.append(entries);
    let proof = consistency_proof(300, 700, &log.stored).unwrap();
    expected.push(consistency(
        "bad-fork",
        &fork.checkpoint(),
        &note,
        &proof,
        false,
    ));
    expected
}
