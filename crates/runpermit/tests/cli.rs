//! The real `runpermit` binary: output snapshots, exit codes and error messages.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};

fn runpermit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runpermit"))
        .args(args)
        .output()
        .expect("running runpermit")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("UTF-8 stderr")
}

#[test]
fn estimate_operation_counting() {
    let out = runpermit(&["estimate", "--params", "405e9", "--tokens", "15.6e12"]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn estimate_hardware_method() {
    let out = runpermit(&[
        "estimate",
        "--chip",
        "H100 SXM",
        "--count",
        "16384",
        "--days",
        "54",
        "--mfu",
        "0.38",
        "--mfu-range",
        "0.3-0.45",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn estimate_both_methods_disagreeing_fine_tune() {
    let out = runpermit(&[
        "estimate",
        "--params",
        "70B",
        "--tokens",
        "2T",
        "--epochs",
        "2",
        "--chip",
        "A100",
        "--count",
        "2048",
        "--hours",
        "500",
        "--base-model-flop",
        "38 YFLOP",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn estimate_json_is_stable() {
    let out = runpermit(&[
        "estimate",
        "--params",
        "671e9",
        "--moe-active-params",
        "37e9",
        "--tokens",
        "14.8e12",
        "--precision",
        "fp8",
        "--chip",
        "H800",
        "--count",
        "2048",
        "--days",
        "57",
        "--mfu",
        "0.4",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let flop = json["flop"].as_f64().expect("flop is a number");
    assert!((flop / (6.0 * 37e9 * 14.8e12) - 1.0).abs() < 1e-9, "{json}");
    insta::assert_json_snapshot!(json);
}

#[test]
fn biological_sequence_data_meets_the_lower_threshold() {
    let out = runpermit(&[
        "estimate",
        "--params",
        "3B",
        "--tokens",
        "10T",
        "--biological-sequence-data",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let bio = json["thresholds"]
        .as_array()
        .expect("thresholds")
        .iter()
        .find(|t| t["threshold"] == "us-eo-14110-bio")
        .expect("bio threshold listed");
    assert_eq!(bio["crossed"], true);
}

#[test]
fn a_bad_flag_value_names_the_flag_and_the_form() {
    let out = runpermit(&["estimate", "--params", "lots", "--tokens", "1e12"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--params"), "{err}");
    assert!(err.contains("405e9"), "{err}");

    let out = runpermit(&[
        "estimate",
        "--base-model-flop",
        "3e25 FLOP/s",
        "--params",
        "1e9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("rate"), "{}", stderr(&out));

    let out = runpermit(&[
        "estimate", "--chip", "A100", "--count", "8", "--days", "1", "--mfu", "120%",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--mfu"), "{}", stderr(&out));
}

#[test]
fn an_unknown_chip_gets_suggestions() {
    let out = runpermit(&[
        "estimate", "--chip", "H100 SMX", "--count", "8", "--days", "1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(stderr(&out));
}

#[test]
fn missing_inputs_are_named() {
    let out = runpermit(&["estimate", "--chip", "H100"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("--count") && err.contains("--days"), "{err}");

    let out = runpermit(&["estimate", "--params", "1e9"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--tokens"), "{}", stderr(&out));

    let out = runpermit(&["estimate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--params"), "{}", stderr(&out));

    let out = runpermit(&[
        "estimate",
        "--params",
        "1e9",
        "--tokens",
        "1e12",
        "--moe-active-params",
        "2e9",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--moe-active-params"),
        "{}",
        stderr(&out)
    );
}

/// `runpermit serve` over a real socket: health and the estimator.
#[test]
fn serve_answers_health_and_estimates() {
    let data = std::env::temp_dir().join(format!("runpermit-cli-serve-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_runpermit"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting runpermit serve");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).expect("reading stdout") > 0,
            "serve exited"
        );
    }
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .expect("address")
        .to_owned();

    let health = http(&addr, "GET /healthz HTTP/1.1", "");
    let body = r#"{"parameters": 175e9, "tokens": 300e9}"#;
    let estimate = http(&addr, "POST /v1/estimate HTTP/1.1", body);
    child.kill().expect("stopping the server");
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);

    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    assert!(estimate.starts_with("HTTP/1.1 200"), "{estimate}");
    let json_start = estimate.find('{').expect("a JSON body");
    let json: serde_json::Value = serde_json::from_str(&estimate[json_start..]).expect("JSON");
    let flop = json["flop"].as_f64().expect("flop");
    assert!((flop / 3.15e23 - 1.0).abs() < 0.01, "{json}");
}

fn http(addr: &str, request_line: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connecting");
    let request = format!(
        "{request_line}\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("writing");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reading");
    response
}
