//! The real `runpermit` binary meeting what a new user meets first: a closed pipe, a wrong
//! flag value, a server that is down or addressed wrongly, an authority that refuses, and
//! `--json` asked of every command, errors included.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn runpermit(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUNPERMIT_SERVER")
        .env_remove("RUNPERMIT_TOKEN")
        .env_remove("RUNPERMIT_CLI_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("running runpermit")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The one JSON object a failing command printed on stderr with `--json`; stdout is empty.
fn json_error(out: &Output) -> Value {
    assert!(out.stdout.is_empty(), "stdout carries results only");
    let text = stderr(out);
    assert_eq!(text.trim().lines().count(), 1, "one object: {text}");
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("runpermit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    for json in [false, true] {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        // The reader is gone before the command writes a byte: `runpermit … | head -0`.
        drop(reader);
        let mut args = vec!["estimate", "--params", "405B", "--tokens", "15.6T"];
        if json {
            args.push("--json");
        }
        let out = Command::new(BIN)
            .args(&args)
            .stdout(writer)
            .output()
            .expect("running runpermit");
        assert_eq!(
            out.status.code(),
            Some(141),
            "128 + SIGPIPE, as a shell reports a tool SIGPIPE stopped: {}",
            stderr(&out)
        );
        assert!(
            out.stderr.is_empty(),
            "no panic, no backtrace: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_negative_value_is_refused_for_what_it_is() {
    for (flag, value) in [
        ("--params", "-5"),
        ("--tokens", "-1e12"),
        ("--params", "-405B"),
    ] {
        let other = if flag == "--params" {
            "--tokens"
        } else {
            "--params"
        };
        let out = runpermit(&["estimate", flag, value, other, "1e12"]);
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(
            err.contains(flag) && err.contains("must be positive"),
            "{flag} {value}: {err}"
        );
        assert!(!err.contains("unexpected argument"), "{err}");
    }
    let out = runpermit(&["estimate", "--chip", "A100", "--count", "8", "--days", "-2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--days"), "{}", stderr(&out));
    // A flag where a value belongs is named as such.
    let out = runpermit(&["estimate", "--tokens", "1e12", "--params", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = json_error(&out);
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("needs a value; found the flag --json"),
        "{err}"
    );
}

#[test]
fn counts_take_the_suffixes_that_parameters_take() {
    let with = |count: &str| {
        runpermit(&[
            "estimate", "--chip", "A100", "--count", count, "--days", "3", "--json",
        ])
    };
    let k = with("1k");
    assert!(k.status.success(), "{}", stderr(&k));
    let k: Value = serde_json::from_slice(&k.stdout).expect("JSON");
    let plain: Value = serde_json::from_slice(&with("1000").stdout).expect("JSON");
    assert_eq!(k["hardware"]["count"], 1000);
    assert_eq!(k["flop"], plain["flop"]);

    for (count, says) in [
        ("1.5", "must be a whole number"),
        ("-8", "must be positive"),
        ("lots", "16k"),
    ] {
        let out = with(count);
        assert_eq!(out.status.code(), Some(2), "{count}");
        let err = json_error(&out);
        let message = err["message"].as_str().expect("message");
        assert!(
            message.contains("--count") && message.contains(says),
            "{err}"
        );
    }
}

#[test]
fn with_json_a_wrong_command_line_is_a_json_error() {
    let out = runpermit(&["estimate", "--params", "-5", "--tokens", "1T", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = json_error(&out);
    assert_eq!(err["error"], "usage", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("must be positive")
    );

    // Errors clap finds before any command runs, too.
    let out = runpermit(&["whoami", "--no-such-flag", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_error(&out)["error"], "usage");
    // And those the command finds.
    let out = runpermit(&["whoami", "--json", "--server", "http://127.0.0.1:9"]);
    assert_eq!(out.status.code(), Some(2));
    let err = json_error(&out);
    assert!(
        err["message"].as_str().unwrap().contains("no API token"),
        "{err}"
    );
    // Help is still help.
    let help = runpermit(&["whoami", "--help", "--json"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage"));
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.local_addr().expect("address").port()
}

#[test]
fn a_server_that_is_down_is_named_with_what_to_check() {
    let server = format!("http://127.0.0.1:{}", closed_port());
    let out = runpermit(&["whoami", "--server", &server, "--token", "rpt_x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "could not reach {server}/v1/whoami (connection refused)"
        )) && err.contains("runpermit serve")
            && err.contains("--server"),
        "{err}"
    );
    assert!(!err.contains("io:"), "{err}");

    let out = runpermit(&["whoami", "--server", &server, "--token", "rpt_x", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = json_error(&out);
    assert_eq!(err["error"], "unreachable", "{err}");
    assert_eq!(err["url"], format!("{server}/v1/whoami"));

    let out = runpermit(&["log", "verify", "--url", &server, "--vkey", "x+1+AA"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("could not reach"), "{}", stderr(&out));
}

#[test]
fn a_server_url_with_v1_says_what_the_url_should_be() {
    for args in [
        &[
            "whoami",
            "--server",
            "http://127.0.0.1:8080/v1",
            "--token",
            "rpt_x",
        ][..],
        &[
            "whoami",
            "--server",
            "http://127.0.0.1:8080/v1/",
            "--token",
            "rpt_x",
        ][..],
        &[
            "log",
            "proof",
            "--url",
            "http://127.0.0.1:8080/v1",
            "--index",
            "0",
        ][..],
    ] {
        let out = runpermit(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("the authority's base URL, without /v1"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn init_and_key_rotation_speak_json() {
    let dir = temp_dir("init-json");
    let data = dir.join("data");
    let data = data.to_str().expect("UTF-8 path");
    let first = runpermit(&["init", "--data-dir", data, "--json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let first: Value = serde_json::from_slice(&first.stdout).expect("one JSON object");
    assert!(
        first["admin_token"].as_str().unwrap().starts_with("rpt_"),
        "{first}"
    );
    assert_eq!(first["signing_key"]["created"], true);
    assert!(
        first["log_key"]["vkey"].as_str().unwrap().contains('+'),
        "{first}"
    );

    let again = runpermit(&["init", "--data-dir", data, "--json"]);
    let again: Value = serde_json::from_slice(&again.stdout).expect("JSON");
    assert!(again["admin_token"].is_null(), "no second token: {again}");

    let rotated = runpermit(&["key", "rotate", "--data-dir", data, "--json"]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let rotated: Value = serde_json::from_slice(&rotated.stdout).expect("JSON");
    assert_eq!(rotated["retired_kid"], first["signing_key"]["kid"]);
    assert_ne!(rotated["new_kid"], rotated["retired_kid"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_authoritys_refusals_and_wrong_paths_are_told_plainly() {
    let a = start_in(temp_dir("api-errors"), None);
    let admin = a.admin_token.clone();

    // With --json, the authority's refusal is one object: its code, status and field errors.
    let out = run(
        &["org", "create", "X", "--kind", "bogus", "--json"],
        &a.server,
        &admin,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = json_error(&out);
    assert_eq!(err["error"], "invalid_input", "{err}");
    assert_eq!(err["status"], 422);
    assert_eq!(err["errors"][0]["field"], "kind", "{err}");
    let out = run(&["whoami", "--json"], &a.server, "rpt_not_a_token");
    assert_eq!(out.status.code(), Some(1));
    let err = json_error(&out);
    assert_eq!(
        (err["error"].as_str(), err["status"].as_u64()),
        (Some("unauthorized"), Some(401))
    );

    // A server URL under another path answers an empty 404: said as a wrong URL.
    let out = run(&["whoami"], &format!("{}/api", a.server), &admin);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("is --server the authority's base URL") && !err.contains("\"\""),
        "{err}"
    );

    // `log proof` speaks JSON too.
    let applicant = lab_applicant(&a, "Frontier Lab");
    let (permit, _) = permit_valid_today(&a, &applicant, "proof");
    wait_for_log_size(&a, 1);
    let out = run(
        &["log", "proof", "--url", &a.server, "--index", "0", "--json"],
        &a.server,
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let proof: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(proof["index"], 0);
    assert!(
        proof["proof"]
            .as_str()
            .unwrap()
            .starts_with("c2sp.org/tlog-proof@v1"),
        "{proof}"
    );

    // A proof of another kind of entry is named by its type, in a sentence that reads.
    let first = a.dir.join("first.proof");
    std::fs::write(&first, proof["proof"].as_str().unwrap()).expect("writing the proof");
    let jwks = format!("{}/.well-known/jwks.json", a.server);
    let out = run(
        &[
            "permit",
            "verify",
            path_str(&permit),
            "--jwks",
            &jwks,
            "--proof",
            path_str(&first),
            "--log-vkey",
            &a.log_vkey,
        ],
        &a.server,
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("the log proof is for an entry of type application_submitted, not a permit"),
        "{err}"
    );
}

/// A PostgreSQL database that does not exist is said once, with each cause once.
#[test]
fn a_missing_database_is_said_once() {
    let Ok(url) = std::env::var("RUNPERMIT_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must set RUNPERMIT_TEST_DATABASE_URL"
        );
        println!("PostgreSQL skipped: set RUNPERMIT_TEST_DATABASE_URL to run it");
        return;
    };
    let base = url.split('?').next().unwrap_or(&url);
    let (server, _) = base.rsplit_once('/').expect("a database name in the URL");
    let missing = format!("{server}/runpermit_no_such_database");
    let dir = temp_dir("missing-db");
    let out = runpermit(&[
        "init",
        "--data-dir",
        dir.to_str().expect("UTF-8 path"),
        "--database-url",
        &missing,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.matches("\"runpermit_no_such_database\" does not exist")
            .count(),
        1,
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
