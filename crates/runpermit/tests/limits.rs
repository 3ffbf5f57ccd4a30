//! Rate limits over a real socket: `runpermit serve` reads the `[limits]` section of its
//! configuration file and counts requests by their peer address, and a bad section stops the
//! start with every problem named.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use common::{BIN, init};

/// Sends `POST path` with a JSON body; returns the whole response (status line, headers, body).
fn post(server: &str, path: &str, body: &str) -> String {
    let addr = server.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("writing");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reading");
    response
}

#[test]
fn serve_limits_requests_by_peer_address_from_its_config_file() {
    let dir = std::env::temp_dir().join(format!(
        "runpermit-limits-{}",
        runpermit_authority::domain::ids::new_id("t")
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    let data = dir.join("data");
    init(&data, None);
    let config = dir.join("authority.toml");
    std::fs::write(
        &config,
        "[limits.defaults]\nwrites_per_address = { burst = 2, count = 2, period = \"1h\" }\n",
    )
    .expect("writing the config");
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runpermit serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut printed = String::new();
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            lines.read_line(&mut line).expect("reading serve output") > 0,
            "serve exited early:\n{printed}"
        );
        printed.push_str(&line);
    }
    let server = line.trim().rsplit(' ').next().expect("URL").to_owned();
    let estimate = r#"{"parameters": 7e9, "tokens": 2e12}"#;
    let answers: Vec<String> = (0..3)
        .map(|_| post(&server, "/v1/estimate", estimate))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        printed.contains("limits:       1 default(s) changed"),
        "{printed}"
    );
    for answer in &answers[..2] {
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let refused = answers[2].to_ascii_lowercase();
    assert!(refused.starts_with("http/1.1 429"), "{refused}");
    assert!(refused.contains("\r\nretry-after: 1800\r\n"), "{refused}");
    assert!(
        refused.contains(r#""limit":"writes_per_address""#),
        "{refused}"
    );
    assert!(refused.contains("address 127.0.0.1"), "{refused}");
}

#[test]
fn a_bad_limits_section_stops_the_start_naming_each_problem() {
    let dir = std::env::temp_dir().join(format!(
        "runpermit-limits-{}",
        runpermit_authority::domain::ids::new_id("t")
    ));
    std::fs::create_dir_all(&dir).expect("test dir");
    let config = dir.join("authority.toml");
    std::fs::write(
        &config,
        "[limits]\ntrusted_proxies = [\"proxy.internal\"]\n\n[[limits.overrides]]\n\
         limit = \"writes_per_address\"\nids = [\"lab.example\"]\nburst = 0\ncount = 1\nperiod = \"1m\"\n",
    )
    .expect("writing the config");
    let out = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .expect("runpermit init");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "limits.overrides[0].burst",
        "limits.overrides[0].ids: \"lab.example\"",
        "limits.trusted_proxies[0]",
    ] {
        assert!(stderr.contains(expected), "{expected} in {stderr}");
    }
}
