//! `scripts/gpu-check` (the GPU check of the `nvml` metering method, docs/operations.md) on a
//! machine without a GPU: one JSON line saying it skipped, exit status 3. On a machine with
//! NVML the real check runs from the script by hand (it needs PyTorch or CuPy and a minute).

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_runpermit");

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/gpu-check")
}

fn json_line(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {text}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn without_a_gpu_the_check_says_it_skipped() {
    if let Ok(report) = runpermit_gate_agent::nvml::describe() {
        eprintln!(
            "NVML sees {} GPU(s) here: run scripts/gpu-check by hand",
            report.devices.len()
        );
        return;
    }
    let out = Command::new(script())
        .args(["--seconds", "1"])
        .env("RUNPERMIT", BIN)
        .output()
        .expect("running scripts/gpu-check");
    let line = json_line(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{line}");
    assert_eq!(line["status"], "skipped", "{line}");
    let reason = line["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("no GPU: skipped (NVML unavailable: "),
        "{reason}"
    );
}

#[test]
fn without_a_binary_the_script_says_how_to_build_one() {
    let out = Command::new(script())
        .env("RUNPERMIT", "/nonexistent/runpermit")
        .output()
        .expect("running scripts/gpu-check");
    assert_eq!(out.status.code(), Some(2));
    let line = json_line(&out.stdout);
    assert_eq!(line["status"], "error");
    assert!(
        line["reason"]
            .as_str()
            .unwrap()
            .contains("cargo build --release -p runpermit"),
        "{line}"
    );
}

#[test]
fn the_subcommand_needs_a_workload_and_a_sound_tolerance() {
    let out = Command::new(BIN)
        .args(["gate", "gpu-check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["gate", "gpu-check", "--tolerance", "-1", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--tolerance"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
