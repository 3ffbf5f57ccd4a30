//! End to end, with the real binary over a real socket: init, organizations, members and
//! tokens, an application in every tier, review by two reviewers, and a permit fetched and
//! verified offline. With `RUNPERMIT_TEST_DATABASE_URL` set, the authority runs on
//! PostgreSQL (in a schema of its own); otherwise on its embedded SQLite database.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// An authority on a fresh directory, after checking what `init` must and must not do.
fn start(database_url: Option<&str>) -> Authority {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("runpermit-e2e-{}-{n}", std::process::id()));
    let a = start_in(dir, database_url);
    let data = a.dir.join("data");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = data.join("keys/permit-signing.pem");
        let mode = std::fs::metadata(&key)
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the signing key is private");
    }
    // A second init changes nothing, prints no new token and never the key.
    let second = init(&data, database_url);
    assert!(second.admin_token.is_empty(), "{}", second.stdout);
    assert!(
        !second.stdout.contains("PRIVATE KEY"),
        "the key is never printed"
    );
    a
}

fn lifecycle(a: &Authority) {
    let admin = a.admin_token.clone();
    assert!(ok(&["whoami"], a, &admin).contains("admin of Licensing Authority"));

    // Organizations, members, tokens.
    let lab = id_of(&json(
        &["org", "create", "Frontier Lab", "--kind", "developer"],
        a,
        &admin,
    ));
    let other_lab = id_of(&json(
        &["org", "create", "Other Lab", "--kind", "developer"],
        a,
        &admin,
    ));
    let alice = id_of(&json(
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
    let bob = id_of(&json(
        &[
            "org",
            "add-member",
            &other_lab,
            "--name",
            "bob",
            "--role",
            "applicant",
        ],
        a,
        &admin,
    ));
    let r1 = id_of(&json(
        &[
            "org",
            "add-member",
            "org_authority",
            "--name",
            "rev1",
            "--role",
            "reviewer",
        ],
        a,
        &admin,
    ));
    let r2 = id_of(&json(
        &[
            "org",
            "add-member",
            "org_authority",
            "--name",
            "rev2",
            "--role",
            "reviewer",
        ],
        a,
        &admin,
    ));
    let token = |member: &str| {
        json(
            &["token", "create", "--member", member, "--label", "e2e"],
            a,
            &admin,
        )["secret"]
            .as_str()
            .expect("secret")
            .to_owned()
    };
    let (alice, bob, r1, r2) = (token(&alice), token(&bob), token(&r1), token(&r2));

    // A role the organization kind does not allow is refused with the allowed ones named.
    let out = run(
        &[
            "org",
            "add-member",
            &lab,
            "--name",
            "x",
            "--role",
            "reviewer",
        ],
        &a.server,
        &admin,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("applicant"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let plan = |name: &str| examples().join(name).display().to_string();

    // Exempt: a receipt that verifies.
    let exempt = json(&["apply", &plan("exempt.toml")], a, &alice);
    assert_eq!(exempt["status"], "exempt", "{exempt}");
    let receipt = a.dir.join("exemption.jwt");
    ok(
        &[
            "permit",
            "get",
            &id_of(&exempt),
            "-o",
            receipt.to_str().expect("path"),
        ],
        a,
        &alice,
    );
    let jwks_url = format!("{}/.well-known/jwks.json", a.server);
    assert!(
        ok(
            &[
                "permit",
                "verify",
                receipt.to_str().expect("path"),
                "--jwks",
                &jwks_url
            ],
            a,
            &alice
        )
        .contains("VALID exemption")
    );

    // Standard (notify) tier, from the JSON form of the plan, moved to start in 30 days:
    // permitted at once, valid from its start.
    let in_30_days = time::OffsetDateTime::now_utc().date() + time::Duration::days(30);
    let standard = json(
        &[
            "apply",
            &plan("standard.json"),
            "--start",
            &in_30_days.to_string(),
        ],
        a,
        &alice,
    );
    assert_eq!(standard["status"], "approved", "{standard}");
    let permit_id = standard["permit_id"].as_str().expect("permit").to_owned();
    let file = a.dir.join("permit.jwt");
    ok(
        &[
            "permit",
            "get",
            &permit_id,
            "-o",
            file.to_str().expect("path"),
        ],
        a,
        &alice,
    );
    let start = format!("{}T00:00:00Z", in_30_days + time::Duration::days(1));
    let start = start.as_str();
    let verified = ok(
        &[
            "permit",
            "verify",
            file.to_str().expect("path"),
            "--jwks",
            &jwks_url,
            "--at",
            start,
        ],
        a,
        &alice,
    );
    assert!(
        verified.contains(&format!("VALID permit {permit_id}")),
        "{verified}"
    );
    // Before the run's schedule starts (now, without --at) the permit is not yet valid:
    // exit 1.
    let early = run(
        &[
            "permit",
            "verify",
            file.to_str().expect("path"),
            "--jwks",
            &jwks_url,
        ],
        &a.server,
        &alice,
    );
    assert_eq!(early.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&early.stdout).contains("not valid before")
            || String::from_utf8_lossy(&early.stderr).contains("not valid before"),
        "{early:?}"
    );
    // A tampered permit is refused.
    let token_text = std::fs::read_to_string(&file).expect("permit file");
    let mut parts: Vec<String> = token_text.trim().split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    let tampered = a.dir.join("tampered.jwt");
    std::fs::write(&tampered, parts.join(".")).expect("writing");
    let bad = run(
        &[
            "permit",
            "verify",
            tampered.to_str().expect("path"),
            "--jwks",
            &jwks_url,
            "--at",
            start,
        ],
        &a.server,
        &alice,
    );
    assert_eq!(bad.status.code(), Some(1));

    // Full tier: two distinct reviewers.
    let full = json(
        &["apply", &plan("full.toml"), "--start", "today"],
        a,
        &alice,
    );
    assert_eq!(full["status"], "submitted", "{full}");
    let full_id = id_of(&full);
    // Another lab cannot see it.
    let hidden = run(&["applications", "show", &full_id], &a.server, &bob);
    assert_eq!(hidden.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&hidden.stderr).contains("404"));
    let one = json(
        &[
            "review",
            &full_id,
            "approve",
            "--reason",
            "safeguards adequate",
            "--condition",
            "weekly reports",
        ],
        a,
        &r1,
    );
    assert_eq!(one["status"], "under_review", "{one}");
    let two = json(
        &["review", &full_id, "approve", "--reason", "agree"],
        a,
        &r2,
    );
    assert_eq!(two["status"], "approved", "{two}");
    let permit = json(&["permit", "get", &full_id], a, &alice);
    assert_eq!(
        permit["claims"]["conditions"][0], "weekly reports",
        "{permit}"
    );

    // Horizon tier: denied by default.
    let horizon = json(
        &["apply", &plan("horizon.toml"), "--start", "today"],
        a,
        &alice,
    );
    assert_eq!(horizon["status"], "denied", "{horizon}");

    // A bad plan is named before anything is sent (exit 2).
    let bad_plan = a.dir.join("bad.toml");
    let text = std::fs::read_to_string(examples().join("standard.toml")).expect("plan");
    std::fs::write(&bad_plan, text.replace("[model]", "[model]\nparamz = 1")).expect("writing");
    let refused = run(
        &["apply", bad_plan.to_str().expect("path")],
        &a.server,
        &alice,
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("paramz"));

    let list = json(&["applications", "list"], a, &alice);
    assert_eq!(list.as_array().expect("list").len(), 4);

    // Anyone audits the log: all of it, then only what is new, from the saved state.
    let state = a.dir.join("log-state.json");
    let state_s = state.to_str().expect("path");
    // Entries are public within a sequencing interval of their decision.
    wait_for_log_size(a, 10);
    let summary = json(
        &[
            "log",
            "verify",
            "--url",
            &a.server,
            "--vkey",
            &a.log_vkey,
            "--state",
            state_s,
        ],
        a,
        &alice,
    );
    let size = summary["checkpoint"]["size"].as_u64().expect("size");
    // Four submissions, four decisions (exempt, approved twice, denied) and two permits.
    assert_eq!(size, 10, "{summary}");
    assert_eq!(summary["entries_by_type"]["decision"], 4, "{summary}");
    assert_eq!(summary["entries_by_type"]["permit_issued"], 2, "{summary}");
    let again = json(
        &["log", "verify", "--url", &a.server, "--state", state_s],
        a,
        &alice,
    );
    assert_eq!(again["new_entries"], 0, "{again}");
    json(&["apply", &plan("exempt.toml")], a, &alice);
    wait_for_log_size(a, 12);
    let more = json(
        &["log", "verify", "--url", &a.server, "--state", state_s],
        a,
        &alice,
    );
    assert_eq!(more["previous_size"].as_u64(), Some(size), "{more}");
    assert_eq!(more["new_entries"], 2, "{more}");
    // A key other than the log's is refused.
    let wrong = run(
        &[
            "log",
            "verify",
            "--url",
            &a.server,
            "--vkey",
            "other.example/log+01234567+AAAA",
        ],
        &a.server,
        &alice,
    );
    assert_ne!(wrong.status.code(), Some(0));
    assert_eq!(
        json(&["applications", "list"], a, &bob)
            .as_array()
            .expect("list")
            .len(),
        0
    );
}

#[test]
fn lifecycle_on_the_embedded_database() {
    lifecycle(&start(None));
}

#[test]
fn lifecycle_on_postgresql() {
    let Some(schema) = PgSchema::create(&format!("e2e_{}", std::process::id())) else {
        return;
    };
    let scoped = schema.url.clone();
    {
        let authority = start(Some(&scoped));
        lifecycle(&authority);
    }
    // The schema is dropped with `schema`, after the servers above have stopped.
    drop(schema);
}

/// A rotated key signs nothing new but stays published, so earlier permits verify.
#[test]
fn permits_signed_before_a_key_rotation_stay_verifiable() {
    let mut a = start(None);
    let alice = lab_applicant(&a, "Rotating Lab");
    let plan = path_str(&standard_plan(&a, "before-rotation")).to_owned();
    let first = json(&["apply", &plan, "--start", "today"], &a, &alice)["permit_id"]
        .as_str()
        .expect("permit")
        .to_owned();

    let data = a.dir.join("data");
    let rotated = Command::new(BIN)
        .args(["key", "rotate", "--data-dir"])
        .arg(&data)
        .output()
        .expect("key rotate");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let _ = a.child.kill();
    let _ = a.child.wait();
    let (child, server) = spawn_serve(&data, None);
    a.child = child;
    a.server = server;

    let plan = path_str(&standard_plan(&a, "after-rotation")).to_owned();
    let second = json(&["apply", &plan, "--start", "today"], &a, &alice)["permit_id"]
        .as_str()
        .expect("permit")
        .to_owned();
    let jwks_url = format!("{}/.well-known/jwks.json", a.server);
    let mut kids = Vec::new();
    for id in [&first, &second] {
        let file = a.dir.join(format!("{id}.jwt"));
        ok(
            &["permit", "get", id, "-o", file.to_str().expect("path")],
            &a,
            &alice,
        );
        let out = ok(
            &[
                "permit",
                "verify",
                file.to_str().expect("path"),
                "--jwks",
                &jwks_url,
            ],
            &a,
            &alice,
        );
        assert!(out.contains("VALID permit"), "{out}");
        kids.push(
            json(&["permit", "get", id], &a, &alice)["kid"]
                .as_str()
                .expect("kid")
                .to_owned(),
        );
    }
    assert_ne!(
        kids[0], kids[1],
        "the second permit is signed with the new key"
    );
}

/// Two `serve` processes on one PostgreSQL database, used at once, agree on everything.
#[test]
fn two_servers_share_one_postgresql_database() {
    let Some(schema) = PgSchema::create(&format!("e2e_two_{}", std::process::id())) else {
        return;
    };
    let scoped = schema.url.clone();
    {
        let a = start(Some(&scoped));
        let (mut second, second_url) = spawn_serve(&a.dir.join("data"), Some(&scoped));
        // Eight labs, one run each (an organization's permits aggregate towards its tier).
        let labs: Vec<String> = (0..8)
            .map(|i| lab_applicant(&a, &format!("Shared Lab {i}")))
            .collect();
        let servers = [a.server.clone(), second_url.clone()];
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let plan = path_str(&standard_plan(&a, &format!("shared-{i}"))).to_owned();
                let (server, token) = (servers[i % 2].clone(), labs[i].clone());
                std::thread::spawn(move || {
                    run(
                        &["apply", &plan, "--start", "today", "--json"],
                        &server,
                        &token,
                    )
                })
            })
            .collect();
        for h in handles {
            let out = h.join().expect("thread");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for server in &servers {
            let out = run(&["applications", "list", "--json"], server, &a.admin_token);
            let list: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(list.as_array().expect("list").len(), 8, "{server}");
        }
        // Both processes ran a sequencer; the log they built is one, unforked tree with every
        // entry: 8 submissions, 8 decisions, 8 permits.
        wait_for_log_size(&a, 24);
        for server in &servers {
            let out = run(
                &[
                    "log",
                    "verify",
                    "--url",
                    server,
                    "--vkey",
                    &a.log_vkey,
                    "--json",
                ],
                server,
                "",
            );
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let summary: Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(summary["checkpoint"]["size"], 24, "{summary}");
            assert_eq!(summary["entries_by_type"]["permit_issued"], 8, "{summary}");
        }
        let _ = second.kill();
        let _ = second.wait();
    }
    // The schema is dropped with `schema`, after the servers above have stopped.
    drop(schema);
}

/// Changing a stored entry behind the authority's back is caught, with the entry's index.
#[test]
fn log_verify_detects_a_changed_entry() {
    let a = start(None);
    let alice = lab_applicant(&a, "Audited Lab");
    json(
        &[
            "apply",
            &examples().join("standard.toml").display().to_string(),
            "--start",
            "today",
        ],
        &a,
        &alice,
    );
    let good = run(
        &["log", "verify", "--url", &a.server, "--vkey", &a.log_vkey],
        &a.server,
        &alice,
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );

    // Rewrite entry 1 in the database, past its append-only trigger.
    let db = a.dir.join("data/runpermit.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.expect("open");
        sqlx::query("DROP TRIGGER log_entries_no_update").execute(&mut conn).await.expect("drop trigger");
        sqlx::query("UPDATE log_entries SET entry = CAST(replace(CAST(entry AS TEXT), 'approved', 'denied!!') AS BLOB) WHERE idx = 1")
            .execute(&mut conn)
            .await
            .expect("tamper");
    });
    let bad = run(
        &["log", "verify", "--url", &a.server, "--vkey", &a.log_vkey],
        &a.server,
        &alice,
    );
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("LOG VERIFICATION FAILED") && err.contains("entry 1"),
        "{err}"
    );
}

/// The provider's gate admits a job under a valid, logged permit and refuses, with a reason,
/// what it must: no permit, another cluster, a tampered permit. Small jobs pass untouched.
#[test]
fn gate_check_admits_a_logged_permit_and_refuses_with_reasons() {
    let a = start(None);
    let alice = lab_applicant(&a, "Gated Lab");
    // A run that starts today, so that its permit is valid now.
    let (permit, proof) = permit_valid_today(&a, &alice, "p");

    let (gate, config) = write_gate(&a, 1024);
    let check = |cluster: &str, accelerators: &str, with_permit: Option<&Path>| {
        let mut args = vec![
            "gate",
            "check",
            "--config",
            config.to_str().expect("path"),
            "--cluster",
            cluster,
            "--accelerators",
            accelerators,
            "--json",
        ];
        if let Some(p) = with_permit {
            args.extend([
                "--permit",
                p.to_str().expect("path"),
                "--proof",
                proof.to_str().expect("path"),
            ]);
        }
        let out = run(&args, &a.server, "");
        let decision: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        (
            out.status.code(),
            decision["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(
        check("nw-east-1", "2048", Some(&permit)),
        (Some(0), "permitted".into())
    );
    assert_eq!(
        check("nw-east-1", "8", None),
        (Some(0), "below_threshold".into())
    );
    assert_eq!(
        check("nw-east-1", "2048", None),
        (Some(1), "permit_required".into())
    );
    assert_eq!(
        check("nw-central-9", "2048", Some(&permit)),
        (Some(1), "cluster_not_permitted".into())
    );
    // More than the cluster has (16,384), whatever the permit allows: a request error,
    // refused like any other (exit 1).
    for accelerators in ["20000", "1000000000"] {
        assert_eq!(
            check("nw-east-1", accelerators, Some(&permit)),
            (Some(1), "invalid_request".into())
        );
    }
    let token = std::fs::read_to_string(&permit).expect("permit");
    let mut parts: Vec<String> = token.trim().split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let tampered = a.dir.join("tampered.jwt");
    std::fs::write(&tampered, parts.join(".")).expect("writing");
    let (code, reason) = check("nw-east-1", "2048", Some(&tampered));
    assert_eq!(code, Some(1));
    assert!(reason.starts_with("permit_"), "{reason}");
    // The status list the gate accepted is kept, so an older one is never accepted again.
    assert!(gate.join("status-list.jwt").is_file());

    // The same decisions from the long-running gate over HTTP.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("addr")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut service = Command::new(BIN)
        .args([
            "gate",
            "serve",
            "--config",
            config.to_str().expect("path"),
            "--cluster",
            "nw-east-1",
            "--listen",
            &listen,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("runpermit gate serve");
    let server = format!("http://{listen}");
    let mut healthy = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(&listen).is_ok() {
            healthy = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(healthy, "gate serve did not listen");
    let job = serde_json::json!({
        "cluster": "nw-east-1",
        "accelerators": 2048,
        "permit": {"token": token.trim(), "proof_bundle": std::fs::read_to_string(&proof).expect("proof")},
    });
    let answer = http_post(&server, "/v1/decide", &job.to_string());
    let _ = service.kill();
    let _ = service.wait();
    let decision: Value = serde_json::from_str(&answer).unwrap_or_else(|_| panic!("{answer}"));
    assert_eq!(decision["code"], "permitted", "{decision}");
}
