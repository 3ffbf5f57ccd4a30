//! The README's lifecycle, run as written: the shell block under "The whole lifecycle in a few
//! commands" against a fresh authority, with `runpermit` on the PATH. Whatever day it is run
//! on, it must end with a permit that verifies now and a gate that admits under it.

mod common;

use std::path::Path;
use std::process::Command;

use common::{BIN, start_in};

/// The first ```sh block after `heading` in the README.
fn shell_block(readme: &str, heading: &str) -> String {
    let after = readme
        .split_once(heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"))
        .1;
    let body = after
        .split_once("```sh\n")
        .expect("a ```sh block after the heading")
        .1;
    body.split_once("\n```")
        .expect("the block's closing fence")
        .0
        .to_owned()
}

/// Whether `tool` can be run; the README's lifecycle uses `jq` and `curl`.
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn the_readme_lifecycle_works_as_written() {
    if !(have("bash") && have("jq") && have("curl")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs bash, jq and curl for the README's lifecycle"
        );
        eprintln!("skipped: the README's lifecycle needs bash, jq and curl");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let block = shell_block(&readme, "### The whole lifecycle in a few commands");

    let a = start_in(
        std::env::temp_dir().join(format!("runpermit-readme-{}", std::process::id())),
        None,
    );
    // The block's own address and placeholder token stand for this authority's.
    let script = block
        .replace("http://127.0.0.1:8080", &a.server)
        .replace("rpt_…", &a.admin_token);
    assert!(
        script.contains(&a.admin_token),
        "the block exports the bootstrap admin token as `export RUNPERMIT_TOKEN=rpt_…`"
    );
    // The commands run in a directory of their own, where `examples/` is the checkout's.
    let work = a.dir.join("readme");
    std::fs::create_dir_all(&work).expect("work dir");
    std::os::unix::fs::symlink(root.join("examples"), work.join("examples")).expect("symlink");
    let bin_dir = Path::new(BIN).parent().expect("binary directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(&work)
        .env("PATH", path)
        .env("RUNPERMIT_SERVER", &a.server)
        .env_remove("RUNPERMIT_TOKEN")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("running bash");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the README's lifecycle failed ({:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    // It ends with a permit valid now, verified against the log, and a gate that admits.
    assert!(stdout.contains("VALID permit"), "{stdout}");
    assert!(stdout.contains("ALLOW"), "{stdout}\n{stderr}");
}

/// A free loopback port, and whether the three after it are free too (for the witnesses).
fn free_port(run_of: u16) -> u16 {
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if port < 65_000
            && (1..=run_of).all(|i| std::net::TcpListener::bind(("127.0.0.1", port + i)).is_ok())
        {
            return port;
        }
    }
    panic!("no run of {run_of} free ports");
}

#[test]
fn the_readme_witnessed_log_works_as_written() {
    if !(have("bash") && have("jq") && have("curl") && have("timeout")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs bash, jq and curl for the README's blocks"
        );
        eprintln!("skipped: the README's witnessed log needs bash, jq, curl and timeout");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let block = shell_block(
        &readme,
        "### A witnessed log: three witnesses on one machine",
    );
    // The block's ports stand for free ones.
    let (witness_base, authority) = (free_port(3), free_port(0));
    let script = block
        .replace("7100 + i", &format!("{witness_base} + i"))
        .replace("127.0.0.1:8081", &format!("127.0.0.1:{authority}"));
    assert_ne!(script, block, "the block's ports are 7100 + i and 8081");
    let work =
        std::env::temp_dir().join(format!("runpermit-readme-witnessed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    let bin_dir = Path::new(BIN).parent().expect("binary directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["120", "bash", "-euo", "pipefail", "-c", &script])
        .current_dir(&work)
        .env("PATH", path)
        .env_remove("RUNPERMIT_SERVER")
        .env_remove("RUNPERMIT_TOKEN")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("running bash");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let _ = std::fs::remove_dir_all(&work);
    assert!(
        out.status.success(),
        "the README's witnessed log failed ({:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    // The published checkpoint carries cosignatures, and the audit required the quorum.
    assert!(stdout.contains("— witness"), "{stdout}");
    assert!(stdout.contains("cosigned by w1, w2, w3"), "{stdout}");
}
