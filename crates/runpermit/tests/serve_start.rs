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
