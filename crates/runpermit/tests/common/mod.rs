//! The harness shared by the end-to-end tests: the real `runpermit` binary, an authority
//! started on a fresh data directory, and small HTTP helpers.

#![allow(dead_code, reason = "each test binary uses part of the harness")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_runpermit");

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plans")
}

pub struct Authority {
    pub child: Child,
    pub server: String,
    pub dir: PathBuf,
    pub admin_token: String,
    pub log_vkey: String,
}

impl Drop for Authority {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn run(args: &[&str], server: &str, token: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUNPERMIT_SERVER", server)
        .env("RUNPERMIT_TOKEN", token)
        .env_remove("RUNPERMIT_CLI_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("running runpermit")
}

pub fn ok(args: &[&str], a: &Authority, token: &str) -> String {
    let out = run(args, &a.server, token);
    assert!(
        out.status.success(),
        "runpermit {args:?} failed ({:?}):\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

pub fn json(args: &[&str], a: &Authority, token: &str) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_str(&ok(&all, a, token)).expect("JSON output")
}

/// Starts `runpermit serve` on `data` and waits until it listens; returns it and its URL.
pub fn spawn_serve(data: &Path, database_url: Option<&str>) -> (Child, String) {
    spawn_serve_with(data, database_url, &[])
}

/// As [`spawn_serve`], with more arguments for `serve`.
pub fn spawn_serve_with(data: &Path, database_url: Option<&str>, args: &[&str]) -> (Child, String) {
    let mut serve = Command::new(BIN);
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        serve.args(["--database-url", url]);
    }
    let mut child = serve.spawn().expect("runpermit serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.contains("listening on") {
        line.clear();
        assert!(
            lines.read_line(&mut line).expect("reading serve output") > 0,
            "serve exited early"
        );
    }
    let server = line.trim().rsplit(' ').next().expect("URL").to_owned();
    (child, server)
}

impl Authority {
    /// Stops `serve` and starts it again on the same data (and database), with more
    /// arguments; its URL changes.
    pub fn restart_with(&mut self, database_url: Option<&str>, args: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, server) = spawn_serve_with(&self.dir.join("data"), database_url, args);
        self.child = child;
        self.server = server;
    }
}

/// Registers a lab with an applicant and returns the applicant's token.
pub fn lab_applicant(a: &Authority, name: &str) -> String {
    let admin = a.admin_token.clone();
    let lab = id_of(&json(
        &["org", "create", name, "--kind", "developer"],
        a,
        &admin,
    ));
    let member = id_of(&json(
        &[
            "org",
            "add-member",
            &lab,
            "--name",
            "alice",
            "--role",
            "applicant",
        ],
        a,
        &admin,
    ));
    json(&["token", "create", "--member", &member], a, &admin)["secret"]
        .as_str()
        .expect("secret")
        .to_owned()
}

/// Adds member `name` with `role` to organization `org` and returns a token of theirs.
pub fn member_token(a: &Authority, org: &str, name: &str, role: &str) -> String {
    let admin = a.admin_token.clone();
    let member = id_of(&json(
        &["org", "add-member", org, "--name", name, "--role", role],
        a,
        &admin,
    ));
    json(&["token", "create", "--member", &member], a, &admin)["secret"]
        .as_str()
        .expect("secret")
        .to_owned()
}

/// A provider's know-your-customer report of four unpermitted jobs of customer
/// `LEI-5493001KJTIIGC8Y1R12` that used `flop` between `from` and `to`; the answer.
pub fn kyc_report(a: &Authority, operator: &str, from: &str, to: &str, flop: &str) -> Value {
    json(
        &[
            "kyc",
            "report",
            "--customer",
            "LEI-5493001KJTIIGC8Y1R12",
            "--from",
            from,
            "--to",
            to,
            "--jobs",
            "4",
            "--accelerator-seconds",
            "3.1e9",
            "--flop",
            flop,
        ],
        a,
        operator,
    )
}

/// Waits (up to 10 s) until the log's checkpoint covers `size` entries.
pub fn wait_for_log_size(a: &Authority, size: u64) {
    for _ in 0..200 {
        let out = run(
            &[
                "log",
                "verify",
                "--url",
                &a.server,
                "--vkey",
                &a.log_vkey,
                "--json",
            ],
            &a.server,
            "",
        );
        if out.status.success() {
            let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            if summary["checkpoint"]["size"].as_u64() >= Some(size) {
                return;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the log did not reach {size} entries");
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

pub fn http_get(server: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = server.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("writing");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("reading");
    response
        .split_once("\r\n\r\n")
        .expect("a body")
        .1
        .to_owned()
}

pub fn http_post(server: &str, path: &str, body: &str) -> String {
    use std::io::{Read, Write};
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
        .split_once("\r\n\r\n")
        .expect("a body")
        .1
        .to_owned()
}

/// What `runpermit init` printed: the bootstrap admin token and the log's verifier key.
pub struct Initialized {
    /// Everything it printed.
    pub stdout: String,
    /// The bootstrap admin token.
    pub admin_token: String,
    /// The log's verifier key.
    pub log_vkey: String,
}

/// Runs `runpermit init` on `data`.
pub fn init(data: &Path, database_url: Option<&str>) -> Initialized {
    let mut init = Command::new(BIN);
    init.args(["init", "--data-dir"]).arg(data);
    if let Some(url) = database_url {
        init.args(["--database-url", url]);
    }
    let out = init.output().expect("runpermit init");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "init: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin_token = stdout
        .split_whitespace()
        .find(|w| w.starts_with("rpt_"))
        .unwrap_or_default()
        .to_owned();
    let log_vkey = stdout
        .lines()
        .find_map(|l| l.split("(vkey ").nth(1))
        .map(|v| v.trim_end_matches(')').to_owned())
        .expect("init prints the log's verifier key");
    Initialized {
        stdout,
        admin_token,
        log_vkey,
    }
}

/// Initializes an authority in `dir` (which it creates) and serves it.
pub fn start_in(dir: PathBuf, database_url: Option<&str>) -> Authority {
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let data = dir.join("data");
    let first = init(&data, database_url);
    assert!(
        first.admin_token.starts_with("rpt_"),
        "init prints the bootstrap admin token"
    );
    let (child, server) = spawn_serve(&data, database_url);
    Authority {
        child,
        server,
        dir,
        admin_token: first.admin_token,
        log_vkey: first.log_vkey,
    }
}

/// The standard example plan as run `heron-<name>`, written into the authority's directory:
/// another run's plan (a plan is permitted once).
pub fn standard_plan(a: &Authority, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(examples().join("standard.toml")).expect("plan");
    let plan = a.dir.join(format!("{name}.toml"));
    std::fs::write(
        &plan,
        text.replace("name = \"heron-405b\"", &format!("name = \"heron-{name}\"")),
    )
    .expect("writing the plan");
    plan
}

/// Applies for a permit for the standard example plan, valid from today, and fetches it with
/// its log proof into `dir` as `<name>.jwt` and `<name>.proof`.
pub fn permit_valid_today(a: &Authority, applicant: &str, name: &str) -> (PathBuf, PathBuf) {
    let plan = standard_plan(a, name);
    let permit_id = json(
        &["apply", path_str(&plan), "--start", "today"],
        a,
        applicant,
    )["permit_id"]
        .as_str()
        .expect("a permit at once (standard tier)")
        .to_owned();
    let (permit, proof) = (
        a.dir.join(format!("{name}.jwt")),
        a.dir.join(format!("{name}.proof")),
    );
    ok(
        &[
            "permit",
            "get",
            &permit_id,
            "-o",
            path_str(&permit),
            "--proof",
            path_str(&proof),
        ],
        a,
        applicant,
    );
    for file in [&permit, &proof] {
        set_mode(file, 0o644);
    }
    (permit, proof)
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Writes a gate configuration for provider `northwind-cloud` (clusters `nw-east-1` and
/// `nw-central-9`) trusting `a`'s keys, with the JWKS beside it; returns the gate directory
/// and the configuration file.
pub fn write_gate(a: &Authority, min_accelerators: u64) -> (PathBuf, PathBuf) {
    let gate = a.dir.join("gate");
    std::fs::create_dir_all(&gate).expect("gate dir");
    std::fs::write(
        gate.join("jwks.json"),
        http_get(&a.server, "/.well-known/jwks.json"),
    )
    .expect("jwks");
    // The configuration names a reporting key; `gate serve` refuses one that does not exist.
    std::fs::write(
        gate.join("reporting-key.pem"),
        runpermit_permit::SigningKey::generate()
            .to_pkcs8_pem()
            .as_str(),
    )
    .expect("reporting key");
    let config = gate.join("gate.toml");
    std::fs::write(
        &config,
        format!(
            r#"authority_url = "{}"
jwks = "jwks.json"
log_vkey = "{}"
provider_id = "northwind-cloud"
reporting_key = "reporting-key.pem"
[thresholds]
min_accelerators = {min_accelerators}
[[clusters]]
name = "nw-east-1"
accelerator = "H100 SXM"
accelerators = 16384
[[clusters]]
name = "nw-central-9"
accelerator = "H100 SXM"
accelerators = 4096
"#,
            a.server, a.log_vkey
        ),
    )
    .expect("config");
    (gate, config)
}

/// A PostgreSQL schema of its own for one test, dropped when the test ends (even when it
/// fails). `None` when `RUNPERMIT_TEST_DATABASE_URL` is unset, which under `CI` is a failure.
pub struct PgSchema {
    admin_url: String,
    name: String,
    /// A URL whose connections use only this schema.
    pub url: String,
}

impl PgSchema {
    /// Creates schema `name` (replacing any left by an earlier run).
    pub fn create(name: &str) -> Option<PgSchema> {
        let Ok(admin_url) = std::env::var("RUNPERMIT_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set RUNPERMIT_TEST_DATABASE_URL"
            );
            println!("PostgreSQL skipped: set RUNPERMIT_TEST_DATABASE_URL to run it");
            return None;
        };
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let schema = PgSchema {
            url: format!("{admin_url}{sep}options=-c%20search_path%3D{name}"),
            admin_url,
            name: name.to_owned(),
        };
        schema.psql(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        schema.psql(&format!("CREATE SCHEMA {name}"));
        Some(schema)
    }

    fn psql(&self, sql: &str) {
        let out = Command::new("psql")
            .args([self.admin_url.as_str(), "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin_url.as_str(),
                "-c",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
            ])
            .output();
    }
}
