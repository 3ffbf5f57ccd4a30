//! `runpermit witness` as a real process: init, vkey, serve, restart, SIGTERM, and kill -9
//! between persisting a new checkpoint and answering (the after-persist failpoint).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use runpermit_log::{
    Checkpoint, CosignerVerifier, EMPTY_ROOT, Hash, LogKey, add_signature_lines, append,
    consistency_proof, leaf_hash, sign_checkpoint, verify_checkpoint, verify_cosignatures,
};
use sha2::{Digest as _, Sha256};

const ORIGIN: &str = "log.example.org/runpermit";
const NAME: &str = "witness.example/w1";

fn runpermit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_runpermit"))
}

struct Log {
    key: LogKey,
    stored: Vec<Hash>,
    size: u64,
    root: Hash,
}

impl Log {
    fn grow_to(&mut self, size: u64) {
        let leaves: Vec<Hash> = (self.size..size)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect();
        let a = append(self.size, &leaves, &self.stored).unwrap();
        self.stored.extend(a.hashes);
        (self.size, self.root) = (a.size, a.root);
    }

    fn note(&self) -> String {
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: self.size,
            root_hash: self.root,
        };
        sign_checkpoint(&cp, &self.key).unwrap()
    }

    fn request(&self, old: u64) -> String {
        let proof = if old == 0 {
            Vec::new()
        } else {
            consistency_proof(old, self.size, &self.stored).unwrap()
        };
        let lines: String = proof.iter().map(|h| format!("{h}\n")).collect();
        format!("old {old}\n{lines}\n{}", self.note())
    }
}

fn serve(config: &Path, failpoint: bool) -> (Child, String) {
    let mut cmd = runpermit();
    cmd.args(["witness", "serve", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUNPERMIT_LOG", "warn")
        .env_remove("RUNPERMIT_WITNESS_FAILPOINT")
        .stdout(Stdio::piped());
    if failpoint {
        cmd.env("RUNPERMIT_WITNESS_FAILPOINT", "after-persist");
    }
    let mut child = cmd.spawn().expect("runpermit witness serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            lines.read_line(&mut line).unwrap() > 0,
            "serve exited early"
        );
    }
    (child, line.trim().rsplit(' ').next().unwrap().to_owned())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

fn add(base: &str, body: &str) -> Result<(u16, String, String), ureq::Error> {
    let mut response = agent().post(format!("{base}/add-checkpoint")).send(body)?;
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = response.status().as_u16();
    Ok((status, content_type, response.body_mut().read_to_string()?))
}

fn served(base: &str) -> (u16, String) {
    let url = format!("{base}/{}/checkpoint", hex::encode(Sha256::digest(ORIGIN)));
    let mut response = agent().get(url).call().unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    )
}

fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(
        exit.success(),
        "SIGTERM should stop the witness cleanly: {exit:?}"
    );
}

#[test]
fn init_serve_restart_and_kill_between_persist_and_answer() {
    let dir = tempfile::tempdir().unwrap();
    let wdir = dir.path().join("w1");
    let mut log = Log {
        key: LogKey::from_seed(ORIGIN, &[1; 32]).unwrap(),
        stored: Vec::new(),
        size: 0,
        root: EMPTY_ROOT,
    };

    // init: key 0600, configuration, the vkey printed; a second init refuses.
    let out = runpermit()
        .args(["witness", "init", "--name", NAME, "--json", "--dir"])
        .arg(&wdir)
        .args(["--log", &log.key.verifier_key()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let init: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vkey = init["vkey"].as_str().unwrap().to_owned();
    let witness = CosignerVerifier::parse(&vkey).unwrap();
    assert_eq!(witness.name(), NAME);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(wdir.join("witness.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let config = wdir.join("witness.toml");
    let before = std::fs::read(&config).unwrap();
    let again = runpermit()
        .args(["witness", "init", "--name", NAME, "--dir"])
        .arg(&wdir)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(&config).unwrap(), before);
    // vkey prints the same key.
    let out = runpermit()
        .args(["witness", "vkey", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), vkey);

    // Serve, cosign size 5, stop with SIGTERM.
    let (child, base) = serve(&config, false);
    log.grow_to(5);
    let (status, _, line) = add(&base, &log.request(0)).unwrap();
    assert_eq!(status, 200, "{line}");
    terminate(child);

    // Restarted, it still holds 5.
    let (child, base) = serve(&config, false);
    assert_eq!(
        add(&base, &log.request(0)).unwrap(),
        (409, "text/x.tlog.size".into(), "5\n".into())
    );
    log.grow_to(8);
    assert_eq!(add(&base, &log.request(5)).unwrap().0, 200);
    terminate(child);

    // With the failpoint, 8 → 12 is committed and the process dies before answering.
    let (mut child, base) = serve(&config, true);
    log.grow_to(12);
    assert!(
        add(&base, &log.request(8)).is_err(),
        "the failpoint should kill the witness before it answers"
    );
    let exit = child.wait().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(exit.signal(), Some(9), "{exit:?}");
    }

    // After restart: from 8 is a conflict naming 12; the same checkpoint from 12 with an
    // empty proof gets the cosignature, and the monitoring endpoint serves it.
    let (child, base) = serve(&config, false);
    assert_eq!(
        add(&base, &log.request(8)).unwrap(),
        (409, "text/x.tlog.size".into(), "12\n".into())
    );
    let body = log.request(12);
    assert!(body.starts_with("old 12\n\n"), "an empty proof: {body}");
    let (status, _, line) = add(&base, &body).unwrap();
    assert_eq!(status, 200, "{line}");
    let cosigned = add_signature_lines(&log.note(), &[line]);
    assert_eq!(
        verify_cosignatures(&cosigned, std::slice::from_ref(&witness))
            .unwrap()
            .len(),
        1
    );
    let (status, note) = served(&base);
    assert_eq!(status, 200);
    assert_eq!(note, cosigned);
    assert_eq!(
        verify_checkpoint(&note, &log.key.verifier_key())
            .unwrap()
            .size,
        12
    );
    terminate(child);
}

#[test]
fn a_bad_configuration_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("witness.toml");
    std::fs::write(
        &config,
        "name = \"witness.example/w1\"\nkey = \"k.pem\"\n[[log]]\nvkey = \"not a key\"\n",
    )
    .unwrap();
    let out = runpermit()
        .args(["witness", "serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("log[0].vkey"), "{stderr}");
}
