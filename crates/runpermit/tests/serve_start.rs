//! How `runpermit serve` starts: the address first, so that a busy port fails before anything
//! is created or printed.

mod common;

use std::process::Command;

use common::BIN;

#[test]
fn a_busy_port_fails_before_anything_is_created_or_printed() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = busy.local_addr().expect("its address").to_string();
    let data =
        std::env::temp_dir().join(format!("runpermit-serve-busy-port-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let out = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(&data)
        .env_remove("RUNPERMIT_DATABASE_URL")
        .env_remove("RUNPERMIT_CONFIG")
        .output()
        .expect("running serve");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(!stdout.contains("Bootstrap admin token"), "{stdout}");
    assert!(!data.exists(), "serve created {}", data.display());
}

#[test]
fn request_logs_are_plain_text_with_an_id_and_a_short_duration() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = std::env::temp_dir().join(format!("runpermit-serve-logs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let log = dir.join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env_remove("RUNPERMIT_DATABASE_URL")
        .env_remove("RUNPERMIT_CONFIG")
        .env_remove("RUNPERMIT_LOG_FORMAT")
        .env("RUNPERMIT_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("a log file"))
        .spawn()
        .expect("runpermit serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            lines.read_line(&mut line).expect("serve's output") > 0,
            "serve exited"
        );
    }
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .expect("an address")
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connecting");
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nx-request-id: trace-42\r\nConnection: close\r\n\r\n"
    )
    .expect("a request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("an answer");
    assert!(
        answer.to_lowercase().contains("x-request-id: trace-42"),
        "{answer}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = child.kill();
    let _ = child.wait();
    let logged = std::fs::read_to_string(&log).expect("the log");
    assert!(
        !logged.contains('\u{1b}'),
        "ANSI colours in a log file:\n{logged}"
    );
    let request = logged
        .lines()
        .find(|l| l.contains("route=/healthz"))
        .unwrap_or_else(|| panic!("no request line:\n{logged}"));
    assert!(request.contains("trace-42"), "{request}");
    let ms = request
        .split("ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a duration");
    let decimals = ms.split('.').nth(1).map_or(0, str::len);
    assert!(decimals <= 3, "ms={ms} in {request}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_postgres_database_is_named_once_without_internals() {
    let Ok(url) = std::env::var("RUNPERMIT_TEST_DATABASE_URL") else {
        eprintln!("RUNPERMIT_TEST_DATABASE_URL unset: PostgreSQL test skipped");
        return;
    };
    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
    let missing = format!("{base}/runpermit_no_such_database");
    let data = std::env::temp_dir().join(format!("runpermit-serve-nodb-{}", std::process::id()));
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &missing,
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .expect("running serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("does not exist").count(),
        1,
        "said once: {stderr}"
    );
    assert!(
        stderr.contains("runpermit_no_such_database") && !stderr.contains(" at line "),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn with_json_the_start_up_and_a_failure_are_json() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("runpermit-serve-json-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a directory");
    let mut child = Command::new(BIN)
        .args(["serve", "--json", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .env_remove("RUNPERMIT_DATABASE_URL")
        .env_remove("RUNPERMIT_CONFIG")
        .env_remove("RUNPERMIT_LOG_FORMAT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.join("stderr.log")).expect("a log file"))
        .spawn()
        .expect("runpermit serve --json");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("serve's output");
    let _ = child.kill();
    let _ = child.wait();
    let started: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert!(
        started["listening"]
            .as_str()
            .is_some_and(|l| l.starts_with("http://127.0.0.1:")),
        "{started}"
    );
    assert!(
        started["admin_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("rpt_")),
        "the first start's bootstrap token: {started}"
    );
    let log = std::fs::read_to_string(dir.join("stderr.log")).expect("the log");
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {l}"));
    }

    // A failure is one JSON object on stderr, for both serve commands.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = busy.local_addr().expect("its address").to_string();
    let out = Command::new(BIN)
        .args(["serve", "--json", "--listen", &addr, "--data-dir"])
        .arg(dir.join("other"))
        .env_remove("RUNPERMIT_DATABASE_URL")
        .env_remove("RUNPERMIT_CONFIG")
        .output()
        .expect("running serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let err: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(err["error"], "failed", "{err}");
    assert!(out.stdout.is_empty());
    let out = Command::new(BIN)
        .args(["gate", "serve", "--json", "--cluster", "c1", "--config"])
        .arg(dir.join("no-such-gate.toml"))
        .env_remove("RUNPERMIT_GATE_CONFIG")
        .output()
        .expect("running gate serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let err: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert!(err["message"].as_str().is_some(), "{err}");
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing configuration is a usage error"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
