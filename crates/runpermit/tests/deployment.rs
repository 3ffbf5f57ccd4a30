//! One deployment, one log key and one set of permit keys, through the real binary: a second
//! `runpermit serve` on the same database with a data directory of its own refuses to start
//! and says how to share the keys; with the keys copied it starts and serves the same
//! `/log/vkey`; after `runpermit key rotate`, a process still holding the retired key is
//! refused. On a shared SQLite file, and on PostgreSQL when `RUNPERMIT_TEST_DATABASE_URL`
//! is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, PgSchema, http_get, init, spawn_serve};

/// Runs `runpermit serve` expecting it to refuse to start; returns what it printed on stderr.
fn refused_serve(data: &Path, database_url: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(["--database-url", database_url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runpermit serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for serve") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve with other keys started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("reading stderr");
    assert_eq!(status.code(), Some(1), "{stderr}");
    stderr
}

fn copy_keys(from: &Path, to: &Path) {
    let keys = to.join("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    for name in [
        "permit-signing.pem",
        "log-signing.pem",
        "log-signing.origin",
    ] {
        std::fs::copy(from.join("keys").join(name), keys.join(name)).expect("copying a key");
    }
}

fn one_deployment(dir: &Path, database_url: &str) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    let first = init(&a, Some(database_url));
    assert!(
        first.stdout.contains("deployment:   recorded"),
        "{}",
        first.stdout
    );
    let (mut serve_a, url_a) = spawn_serve(&a, Some(database_url));
    assert_eq!(http_get(&url_a, "/log/vkey").trim(), first.log_vkey);

    // Another data directory: refused, naming the recorded log key and how to share it.
    let stderr = refused_serve(&b, database_url);
    for needle in [
        first.log_vkey.as_str(),
        "log-signing.pem",
        "permit-signing.pem",
        "--signing-key",
        "--log-key",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    assert!(
        !b.join("keys/log-signing.pem").exists(),
        "no second log key"
    );
    // `init` refuses the same way.
    let out = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(&b)
        .args(["--database-url", database_url])
        .output()
        .expect("init");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&first.log_vkey),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The keys copied, as the message says: both serve, with one log key.
    copy_keys(&a, &b);
    let (mut serve_b, url_b) = spawn_serve(&b, Some(database_url));
    assert_eq!(http_get(&url_b, "/log/vkey").trim(), first.log_vkey);
    assert_eq!(http_get(&url_a, "/log/vkey").trim(), first.log_vkey);
    let jwks = |url: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&http_get(url, "/.well-known/jwks.json")).expect("JWKS");
        v["keys"].as_array().expect("keys").len()
    };
    assert_eq!((jwks(&url_a), jwks(&url_b)), (1, 1), "one permit key");
    let _ = serve_b.kill();
    let _ = serve_b.wait();

    // A rotation where `a` runs; `b`, restarted with the retired key, is refused.
    let rotated = Command::new(BIN)
        .args(["key", "rotate", "--data-dir"])
        .arg(&a)
        .args(["--database-url", database_url])
        .output()
        .expect("key rotate");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let stderr = refused_serve(&b, database_url);
    assert!(stderr.contains("retired"), "{stderr}");
    copy_keys(&a, &b);
    let (mut serve_b, url_b) = spawn_serve(&b, Some(database_url));
    assert_eq!(jwks(&url_b), 2, "the retired key stays published");
    assert_eq!(http_get(&url_b, "/log/vkey").trim(), first.log_vkey);
    for child in [&mut serve_a, &mut serve_b] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "runpermit-e2e-deploy-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

#[test]
fn one_deployment_on_a_shared_sqlite_file() {
    let dir = scratch("sqlite");
    let url = format!("sqlite://{}", dir.join("shared.db").display());
    one_deployment(&dir, &url);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_deployment_on_postgresql() {
    let Some(schema) = PgSchema::create(&format!("e2e_deploy_{}", std::process::id())) else {
        return;
    };
    let dir = scratch("pg");
    one_deployment(&dir, &schema.url);
    let _ = std::fs::remove_dir_all(&dir);
    drop(schema);
}
