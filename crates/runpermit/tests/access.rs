//! Structured access end to end with the real binaries (issue 15): an authority (`runpermit
//! serve`), a lab that registers a model from its permitted run, a university researcher who
//! applies, the lab that consents, a reviewer who grants; the lab's enforcement point
//! (`runpermit access gateway`) in front of an upstream serves the grantee within its quota,
//! refuses beyond it (429 with the reset time), refuses a tampered grant, a tier the grant
//! does not allow, and the grant once the status list revokes it; `runpermit access check`
//! agrees.
//!
//! The upstream is a **minimal OpenAI-compatible server written in this test**
//! (`minimal_openai_compatible_upstream`): a real model server cannot be installed within
//! CI's time here. It answers `POST /v1/chat/completions` with a `chat.completion` whose
//! `usage` counts 10 prompt and 5 completion tokens.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{BIN, id_of, json, lab_applicant, member_token, ok, path_str, run, start_in};
use runpermit_permit::SigningKey;
use serde_json::{Value, json as j};

/// A minimal OpenAI-compatible upstream on a free port: every request gets a
/// `chat.completion` with `usage` {10 prompt, 5 completion}. Returns its base URL.
fn minimal_openai_compatible_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let answer = j!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0,
                "model": request["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "4"}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            })
            .to_string();
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("a port")
        .local_addr()
        .expect("address")
        .port()
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends a chat completion to the gateway with `grant` and `proof`; (status, body, headers).
fn chat(gateway: &str, grant: &str, proof: &str, extra: Value) -> (u16, Value, Option<String>) {
    let mut body = j!({"model": "frontier-1", "messages": [{"role": "user", "content": "2+2?"}]});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let Ok(mut response) = agent
        .post(format!("{gateway}/v1/chat/completions"))
        .header("authorization", format!("Bearer {grant}"))
        .header(
            "x-runpermit-grant-proof",
            base64::engine::general_purpose::STANDARD.encode(proof),
        )
        .header("content-type", "application/json")
        .send(body.to_string())
    else {
        // Not listening (yet).
        return (0, Value::Null, None);
    };
    let status = response.status().as_u16();
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        retry,
    )
}

fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("waited {limit:?} for {what}");
}

fn digest(byte: &str) -> String {
    format!("sha256:{}", byte.repeat(32))
}

#[test]
fn a_researcher_reaches_a_registered_model_through_the_gateway_within_its_grant() {
    let a = start_in(
        std::env::temp_dir().join(format!("runpermit-access-e2e-{}", std::process::id())),
        None,
    );
    let lab = lab_applicant(&a, "Frontier Lab");
    let lab_org = json(&["whoami"], &a, &lab)["org_id"]
        .as_str()
        .expect("org")
        .to_owned();
    let researcher = lab_applicant(&a, "University Lab");
    let reviewer = member_token(&a, "org_authority", "rev", "reviewer");

    // The lab's permitted run, and the model it registers from it.
    let plan = common::standard_plan(&a, "access");
    json(&["apply", path_str(&plan), "--start", "today"], &a, &lab);
    let run_id = json(&["run", "list"], &a, &lab)[0]["id"]
        .as_str()
        .expect("a run")
        .to_owned();
    let model = json(
        &[
            "model",
            "register",
            "--name",
            "Frontier-1",
            "--run",
            &run_id,
            "--checkpoint-digest",
            &digest("ab"),
            "--release-plan",
            "staged API access",
        ],
        &a,
        &lab,
    );
    let model_id = id_of(&model);
    let listed = json(&["model", "list"], &a, &researcher);
    assert_eq!(listed[0]["id"], model_id.as_str(), "public: {listed}");

    // The researcher applies; the lab consents; a reviewer grants.
    let request = json(
        &[
            "access",
            "apply",
            "--model",
            &model_id,
            "--purpose",
            "how refusals generalise",
            "--research-plan",
            &digest("01"),
            "--agreement",
            &digest("02"),
            "--tokens",
            "40",
            "--days",
            "30",
        ],
        &a,
        &researcher,
    );
    let request_id = id_of(&request);
    json(
        &[
            "access",
            "consent",
            &request_id,
            "--reason",
            "a research partner",
        ],
        &a,
        &lab,
    );
    let decided = json(
        &[
            "access",
            "review",
            &request_id,
            "--reason",
            "public-interest research",
        ],
        &a,
        &reviewer,
    );
    assert_eq!(decided["status"], "granted", "{decided}");
    let grant_id = decided["grant_id"].as_str().expect("a grant").to_owned();

    // Served once it is in the public log: token and proof for the researcher.
    let (grant_file, proof_file) = (a.dir.join("grant.jwt"), a.dir.join("grant.proof"));
    wait_until(Duration::from_secs(20), "the grant in the log", || {
        run(
            &[
                "access",
                "grant",
                &grant_id,
                "-o",
                path_str(&grant_file),
                "--proof",
                path_str(&proof_file),
            ],
            &a.server,
            &researcher,
        )
        .status
        .success()
    });
    let grant = std::fs::read_to_string(&grant_file).expect("grant");
    let proof = std::fs::read_to_string(&proof_file).expect("proof");

    // The lab's gateway in front of its model server.
    let upstream = minimal_openai_compatible_upstream();
    let dir = a.dir.join("gateway");
    std::fs::create_dir_all(&dir).expect("gateway dir");
    std::fs::write(
        dir.join("jwks.json"),
        common::http_get(&a.server, "/.well-known/jwks.json"),
    )
    .expect("jwks");
    std::fs::write(
        dir.join("reporting-key.pem"),
        SigningKey::generate().to_pkcs8_pem().as_bytes(),
    )
    .expect("key");
    // The lab's gateway signs access-usage reports with it: its public half is registered.
    ok(
        &[
            "org",
            "add-reporting-key",
            &lab_org,
            "--key",
            path_str(&dir.join("reporting-key.pem")),
        ],
        &a,
        &a.admin_token.clone(),
    );
    let port = free_port();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"authority_url = "{server}"
jwks = "jwks.json"
log_vkey = "{vkey}"
developer_id = "{lab_org}"
model_id = "{model_id}"
checkpoint_digest = "{checkpoint}"
served_model = "frontier-1"
upstream_url = "{upstream}"
reporting_key = "reporting-key.pem"
state_dir = "state"
listen = "127.0.0.1:{port}"
status_poll_seconds = 1
"#,
            server = a.server,
            vkey = a.log_vkey,
            checkpoint = digest("ab"),
        ),
    )
    .expect("config");
    let mut gateway_process = Gateway(
        Command::new(BIN)
            .args(["access", "gateway", "--config", path_str(&config)])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("gateway.log")).expect("log file"))
            .spawn()
            .expect("starting the gateway"),
    );
    let gateway = format!("http://127.0.0.1:{port}");
    // Ready once it holds a status list: a request is then decided, not refused for want of one.
    let log = dir.join("gateway.log");
    let started = Instant::now();
    loop {
        let (status, body, _) = chat(&gateway, &grant, &proof, j!({"max_tokens": 1}));
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the gateway did not serve: {status} {body}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // `access check` agrees with the gateway.
    let check = |expect_ok: bool| {
        let out = Command::new(BIN)
            .args([
                "access",
                "check",
                "--config",
                path_str(&config),
                "--grant",
                path_str(&grant_file),
                "--proof",
                path_str(&proof_file),
                "--json",
            ])
            .output()
            .expect("access check");
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON decision")
    };

    // Tokens so far: the readiness probe's 15. Within the quota of 40: served.
    let (status, body, _) = chat(&gateway, &grant, &proof, j!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "4");
    // A tier the grant does not allow, and a tampered grant: refused, nothing forwarded.
    let (status, body, _) = chat(&gateway, &grant, &proof, j!({"logprobs": true}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("tier_too_low")),
        "{body}"
    );
    let mut tampered = grant.trim().to_owned();
    tampered.insert(tampered.len() / 2, 'x');
    let (status, body, _) = chat(&gateway, &tampered, &proof, j!({}));
    assert_eq!(status, 401, "{body}");
    // 30 tokens used; one more request is admitted (30 < 40) and brings it to 45.
    let (status, body, _) = chat(&gateway, &grant, &proof, j!({}));
    assert_eq!(status, 200, "{body}");
    // Beyond the quota: 429, with when access could resume.
    let (status, body, retry) = chat(&gateway, &grant, &proof, j!({}));
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_exhausted", "{body}");
    assert!(retry.is_some(), "Retry-After: {body}");
    assert!(body["error"]["retry_at_utc"].is_string(), "{body}");
    let decision = check(false);
    assert_eq!(decision["code"], "quota_exhausted", "{decision}");

    // A reviewer revokes the grant: the gateway refuses it within its status poll.
    ok(
        &[
            "access",
            "revoke",
            &grant_id,
            "--reason",
            "results published without review",
        ],
        &a,
        &reviewer,
    );
    wait_until(
        Duration::from_secs(20),
        "the revocation at the gateway",
        || {
            let (_, body, _) = chat(&gateway, &grant, &proof, j!({}));
            body["error"]["code"] == "grant_revoked"
        },
    );
    let decision = check(false);
    assert_eq!(decision["code"], "grant_revoked", "{decision}");

    // Stopped, the gateway closes its report interval and ships it: the authority counts what
    // it served under the grant, once (3 requests of 10 + 5 tokens each), and what it
    // refused after the grant's proof checked.
    let pid = gateway_process.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let started = Instant::now();
    while gateway_process.0.try_wait().expect("wait").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the gateway did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let shown = json(&["access", "grant", &grant_id], &a, &lab);
    let usage = &shown["usage"];
    assert_eq!(
        (
            usage["reports"].as_u64(),
            usage["requests"].as_u64(),
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(1), Some(3), Some(30), Some(15)),
        "{shown}\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(usage["refused"].as_u64() >= Some(2), "{shown}");
}
