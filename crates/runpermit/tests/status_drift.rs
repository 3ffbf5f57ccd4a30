//! The status list must agree with the log, and `runpermit log verify` notices when it does
//! not (issue 11, finding 6), through the real binaries: a run revoked through the CLI and
//! set back to `active` in the database stays revoked on the list the authority serves (it
//! follows its log, and counts the correction); a list built from the database alone, as the
//! authority served before, signed with the deployment's own key, makes `log verify` fail
//! naming the permit and the log entry. On SQLite, and on PostgreSQL when
//! `RUNPERMIT_TEST_DATABASE_URL` is set.

mod common;

use std::path::Path;
use std::process::Command;

use common::{
    Authority, PgSchema, examples, http_get, json, lab_applicant, member_token, ok, run, start_in,
    wait_for_log_size,
};
use runpermit_permit::{Jwks, SigningKey};
use runpermit_permit::{PermitStatus, StatusListClaims, sign_status_list, verify_status_list};

/// `UPDATE runs SET status = 'active'` on the authority's database, behind its back.
fn set_active(a: &Authority, database_url: Option<&str>, run_id: &str) {
    let sql = format!("UPDATE runs SET status = 'active', reason = '' WHERE id = '{run_id}'");
    match database_url {
        Some(url) => {
            let out = Command::new("psql")
                .args([url, "-v", "ON_ERROR_STOP=1", "-c", &sql])
                .output()
                .expect("psql");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        None => {
            let db = a.dir.join("data/runpermit.db");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                use sqlx::Connection as _;
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
                        .await
                        .expect("open");
                let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .expect("the edit");
                assert_eq!(done.rows_affected(), 1);
            });
        }
    }
}

fn served_list(a: &Authority) -> (StatusListClaims, Jwks) {
    let jwks = Jwks::from_json(&http_get(&a.server, "/.well-known/jwks.json")).expect("JWKS");
    let token = http_get(&a.server, "/v1/status-list");
    (
        verify_status_list(token.trim(), &jwks).expect("a valid list"),
        jwks,
    )
}

fn verify_args<'a>(a: &'a Authority, state: &'a str) -> Vec<&'a str> {
    vec![
        "log",
        "verify",
        "--url",
        &a.server,
        "--vkey",
        &a.log_vkey,
        "--state",
        state,
    ]
}

fn drift(dir: &Path, database_url: Option<&str>) {
    let a = start_in(dir.to_owned(), database_url);
    let lab = lab_applicant(&a, "Drifting Lab");
    let reviewer = member_token(&a, "org_authority", "rev", "reviewer");
    let plan = examples().join("standard.toml").display().to_string();
    let applied = json(&["apply", &plan, "--start", "today"], &a, &lab);
    let permit_id = applied["permit_id"].as_str().expect("a permit").to_owned();
    let runs = json(&["run", "list"], &a, &lab);
    let run_id = runs[0]["id"].as_str().expect("run").to_owned();
    json(
        &["run", "revoke", &run_id, "--reason", "weights leaked"],
        &a,
        &reviewer,
    );
    // application_submitted, decision, permit_issued, run_revoked.
    wait_for_log_size(&a, 4);
    let state = a.dir.join("log-state.json");
    let state_s = state.to_str().expect("path");

    let verified = json(&verify_args(&a, state_s), &a, "");
    assert_eq!(verified["status_list"]["agrees"], true, "{verified}");
    assert_eq!(verified["status_list"]["held_by_log"], 1, "{verified}");

    // Someone with write access to the database sets the run back to active.
    set_active(&a, database_url, &run_id);
    let shown = json(&["run", "show", &run_id], &a, &lab);
    assert_eq!(shown["status"], "active", "the edit took: {shown}");

    // The authority's list still follows its log, and the correction is counted.
    let (list, _) = served_list(&a);
    let entry = list
        .entries
        .iter()
        .find(|e| e.permit_id == permit_id)
        .expect("still listed");
    assert_eq!(entry.status, PermitStatus::Revoked);
    let metrics = http_get(&a.server, "/metrics");
    assert!(
        metrics.contains("runpermit_status_list_corrections_total"),
        "{metrics}"
    );
    let text = ok(&verify_args(&a, state_s), &a, "");
    assert!(text.contains("agrees with the log"), "{text}");

    // The list as the database alone says it, as the authority served it before it followed
    // its log, signed with the deployment's key a little later: the auditor catches it.
    let pem = std::fs::read_to_string(a.dir.join("data/keys/permit-signing.pem")).expect("key");
    let key = SigningKey::from_pkcs8_pem(&pem).expect("a key");
    let later = StatusListClaims::new(
        list.iss.clone(),
        list.iat + 120,
        300,
        list.version + 120_000,
        list.entries
            .iter()
            .filter(|e| e.permit_id != permit_id)
            .cloned()
            .collect(),
    );
    let file = a.dir.join("drifted-status-list.jwt");
    std::fs::write(&file, sign_status_list(&later, &key)).expect("writing the list");
    let mut args = verify_args(&a, state_s);
    args.extend(["--status-list", file.to_str().expect("path")]);
    let out = run(&args, &a.server, "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "STATUS LIST DISAGREES WITH THE LOG",
        permit_id.as_str(),
        run_id.as_str(),
        "entry 3 (run_revoked",
        "does not list it",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    // The same from a fresh state, reading the whole log.
    let fresh = a.dir.join("fresh-state.json");
    let mut args = verify_args(&a, fresh.to_str().expect("path"));
    args.extend(["--status-list", file.to_str().expect("path")]);
    let out = run(&args, &a.server, "");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&permit_id));
}

#[test]
fn a_revoked_run_edited_back_to_active_on_sqlite() {
    drift(
        &std::env::temp_dir().join(format!("runpermit-drift-{}", std::process::id())),
        None,
    );
}

#[test]
fn a_revoked_run_edited_back_to_active_on_postgresql() {
    let Some(schema) = PgSchema::create(&format!("e2e_drift_{}", std::process::id())) else {
        return;
    };
    drift(
        &std::env::temp_dir().join(format!("runpermit-drift-pg-{}", std::process::id())),
        Some(&schema.url),
    );
    // The schema is dropped with `schema`, after the authority above has stopped.
}
