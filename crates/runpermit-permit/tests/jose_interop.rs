//! Independent verifier: PyJWT (through `tests/interop/verify_permit.py`) must accept the
//! permits, access grants, receipts, status lists and usage reports this crate signs, and refuse the same
//! bad tokens that this crate refuses, with the exception PyJWT is expected to raise.
//!
//! Runs only when `RUNPERMIT_TEST_JOSE` is set (CI sets it after
//! `pip install 'pyjwt==2.15.*' cryptography`); otherwise it prints one line and passes.
//! A plain `main` (harness = false) so that the skip line and the verdicts are printed on
//! every run, not only on failure.
//!
//! PyJWT reads this machine's clock, so the tokens are built around the real time here.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::DecodePrivateKey;

use runpermit_compute::Flop;
use runpermit_permit::{
    ACCESS_TYP, AccessGrantClaims, AccessGrantRequest, AccessTier, Duties,
    EXEMPTION_CLAIMS_VERSION, ExemptionClaims, GrantOrigin, GrantedModel, Grantee, Holder, Jwks,
    PERMIT_TYP, PermitClaims, PermitRequest, PermitStatus, ProviderScope, Quotas, Rate,
    SignedAccessGrant, SigningKey, StatusEntry, StatusListClaims, Tranche, UsageReportClaims,
    check, check_access_grant, sign, sign_access_grant, sign_exemption, sign_jws, sign_status_list,
    sign_usage_report, verify_access_grant, verify_exemption, verify_permit, verify_status_list,
    verify_usage_report,
};
use serde_json::Value;

const ENV: &str = "RUNPERMIT_TEST_JOSE";

fn main() -> ExitCode {
    if std::env::var_os(ENV).is_none() {
        println!(
            "jose_interop: skipped: set {ENV}=1 to check tokens with PyJWT \
             (needs python3 with `pip install 'pyjwt==2.15.*' cryptography`)"
        );
        return ExitCode::SUCCESS;
    }
    let dir = std::env::temp_dir().join(format!(
        "runpermit-jose-interop-{}-{}",
        std::process::id(),
        now_nanos()
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let ok =
        permits(&dir) & grants(&dir) & receipts(&dir) & status_lists(&dir) & usage_reports(&dir);
    if ok {
        let _ = std::fs::remove_dir_all(&dir);
        println!("jose_interop: PyJWT agrees on every token");
        ExitCode::SUCCESS
    } else {
        println!("jose_interop: FAILED (tokens kept in {})", dir.display());
        ExitCode::FAILURE
    }
}

/// One token for the independent verifier, and what it must say.
struct Case {
    name: &'static str,
    token: String,
    /// `None`: accepted; `Some(class)`: refused with this PyJWT exception class.
    refused_with: Option<&'static str>,
}

fn permits(dir: &Path) -> bool {
    let now = now_nanos() as i64 / 1_000_000_000;
    let key = SigningKey::generate();
    let spare = SigningKey::generate();
    let stranger = SigningKey::generate();
    let jwks = Jwks::from_keys(&[spare.public(), key.public()]);

    let valid = sign(check(request(now - 60, now + 3600), now).unwrap(), &key);
    let expired = sign(
        check(request(now - 7200, now - 3600), now - 7200).unwrap(),
        &key,
    );
    let early = sign(check(request(now + 3600, now + 7200), now).unwrap(), &key);
    let foreign = sign(
        check(request(now - 60, now + 3600), now).unwrap(),
        &stranger,
    );

    let cases = [
        Case {
            name: "valid permit",
            token: valid.token.clone(),
            refused_with: None,
        },
        Case {
            name: "tampered payload",
            token: tamper(&valid.token),
            refused_with: Some("InvalidSignatureError"),
        },
        Case {
            name: "expired permit",
            token: expired.token,
            refused_with: Some("ExpiredSignatureError"),
        },
        Case {
            name: "not yet valid",
            token: early.token,
            refused_with: Some("ImmatureSignatureError"),
        },
        Case {
            name: "another key, its own kid",
            token: foreign.token,
            refused_with: Some("KeyError"),
        },
        Case {
            name: "another key, the trusted kid",
            token: forge_with_kid(&valid.token, PERMIT_TYP, key.kid(), &stranger),
            refused_with: Some("InvalidSignatureError"),
        },
        Case {
            name: "typ JWT",
            token: sign_jws("JWT", &valid.claims, &key),
            refused_with: Some("InvalidTokenError"),
        },
        Case {
            name: "access grant given as a permit",
            token: grant(&key, now - 60, now + 3600, now).token,
            refused_with: Some("InvalidTokenError"),
        },
    ];
    let results = run_verifier(dir, &jwks, "permit", &cases);
    let mut ok = true;
    for (case, result) in cases.iter().zip(&results) {
        let ours = verify_permit(&case.token, &jwks, now, 0);
        ok &= judge(case, result, ours.is_ok());
        if case.refused_with.is_none() && result["ok"] == true {
            let theirs: PermitClaims = serde_json::from_value(result["claims"].clone())
                .expect("PyJWT's claims read back as PermitClaims");
            ok &= same("claims", &theirs, &valid.claims);
            ok &= same(
                "header typ",
                &result["header"]["typ"],
                &Value::from(PERMIT_TYP),
            );
            ok &= same(
                "header kid",
                &result["header"]["kid"],
                &Value::from(valid.kid.as_str()),
            );
            ok &= same(
                "header alg",
                &result["header"]["alg"],
                &Value::from("EdDSA"),
            );
        }
    }
    ok
}

/// Access grants verify in PyJWT as permits do: the same time claims, the same refusals.
fn grants(dir: &Path) -> bool {
    let now = now_nanos() as i64 / 1_000_000_000;
    let key = SigningKey::generate();
    let stranger = SigningKey::generate();
    let jwks = Jwks::from_keys(&[key.public(), SigningKey::generate().public()]);

    let valid = grant(&key, now - 60, now + 3600, now);
    let expired = grant(&key, now - 7200, now - 3600, now - 7200);
    let early = grant(&key, now + 3600, now + 7200, now);
    let permit = sign(check(request(now - 60, now + 3600), now).unwrap(), &key);
    let cases = [
        Case {
            name: "valid access grant",
            token: valid.token.clone(),
            refused_with: None,
        },
        Case {
            name: "tampered access grant",
            token: tamper(&valid.token),
            refused_with: Some("InvalidSignatureError"),
        },
        Case {
            name: "expired access grant",
            token: expired.token,
            refused_with: Some("ExpiredSignatureError"),
        },
        Case {
            name: "access grant not yet valid",
            token: early.token,
            refused_with: Some("ImmatureSignatureError"),
        },
        Case {
            name: "grant, another key, its own kid",
            token: grant(&stranger, now - 60, now + 3600, now).token,
            refused_with: Some("KeyError"),
        },
        Case {
            name: "grant, another key, trusted kid",
            token: forge_with_kid(&valid.token, ACCESS_TYP, key.kid(), &stranger),
            refused_with: Some("InvalidSignatureError"),
        },
        Case {
            name: "permit given as an access grant",
            token: permit.token,
            refused_with: Some("InvalidTokenError"),
        },
        Case {
            name: "grant claims, typ JWT",
            token: sign_jws("JWT", &valid.claims, &key),
            refused_with: Some("InvalidTokenError"),
        },
    ];
    let results = run_verifier(dir, &jwks, "access", &cases);
    let mut ok = true;
    for (case, result) in cases.iter().zip(&results) {
        let ours = verify_access_grant(&case.token, &jwks, now, 0);
        ok &= judge(case, result, ours.is_ok());
    }
    if results[0]["ok"] == true {
        let theirs: AccessGrantClaims = serde_json::from_value(results[0]["claims"].clone())
            .expect("PyJWT's claims read back as AccessGrantClaims");
        ok &= same("access grant claims", &theirs, &valid.claims);
        ok &= same(
            "access grant header",
            &results[0]["header"],
            &serde_json::json!({"alg": "EdDSA", "typ": ACCESS_TYP, "kid": valid.kid}),
        );
    }
    ok
}

fn receipts(dir: &Path) -> bool {
    let key = SigningKey::generate();
    let jwks = Jwks::from_keys(&[key.public()]);
    let claims = ExemptionClaims {
        iss: "https://authority.example".into(),
        jti: "receipt-interop".into(),
        iat: now_nanos() as i64 / 1_000_000_000 - 60,
        rpv: EXEMPTION_CLAIMS_VERSION,
        application_id: "app-interop".into(),
        holder: holder(),
        estimated_flop: Flop::new(3.1e23).unwrap(),
        policy_version: "2026.1".into(),
        tier: "exempt".into(),
        reason: "3.1e23 FLOP is below every threshold".into(),
    };
    let token = sign_exemption(&claims, &key);
    let cases = [
        Case {
            name: "valid exemption receipt",
            token: token.clone(),
            refused_with: None,
        },
        Case {
            name: "tampered receipt",
            token: tamper(&token),
            refused_with: Some("InvalidSignatureError"),
        },
    ];
    let results = run_verifier(dir, &jwks, "exemption", &cases);
    let mut ok = true;
    for (case, result) in cases.iter().zip(&results) {
        ok &= judge(case, result, verify_exemption(&case.token, &jwks).is_ok());
    }
    let theirs: ExemptionClaims =
        serde_json::from_value(results[0]["claims"].clone()).expect("receipt claims read back");
    ok & same("receipt claims", &theirs, &claims)
}

fn status_lists(dir: &Path) -> bool {
    let now = now_nanos() as i64 / 1_000_000_000;
    let key = SigningKey::generate();
    let jwks = Jwks::from_keys(&[key.public()]);
    let entry = StatusEntry {
        permit_id: "permit-interop".into(),
        status: PermitStatus::MilestoneHold,
        reason: "milestone 2 evaluation due — Ω".into(),
        since: now - 120,
    };
    let claims = StatusListClaims::new("https://authority.example", now - 60, 3600, 7, vec![entry]);
    let expired = StatusListClaims::new("https://authority.example", now - 7200, 3600, 6, vec![]);
    let token = sign_status_list(&claims, &key);
    let cases = [
        Case {
            name: "valid status list",
            token: token.clone(),
            refused_with: None,
        },
        Case {
            name: "tampered status list",
            token: tamper(&token),
            refused_with: Some("InvalidSignatureError"),
        },
        Case {
            name: "status list as a permit typ",
            token: sign_jws(PERMIT_TYP, &claims, &key),
            refused_with: Some("InvalidTokenError"),
        },
    ];
    let results = run_verifier(dir, &jwks, "status", &cases);
    let mut ok = true;
    for (case, result) in cases.iter().zip(&results) {
        ok &= judge(case, result, verify_status_list(&case.token, &jwks).is_ok());
    }
    let theirs: StatusListClaims =
        serde_json::from_value(results[0]["claims"].clone()).expect("status claims read back");
    ok &= same("status list claims", &theirs, &claims);
    // An expired list still verifies here (how fresh it is, is the gate's cache's
    // business), but not in PyJWT, which reads `exp` against the clock.
    let stale = [Case {
        name: "expired status list",
        token: sign_status_list(&expired, &key),
        refused_with: Some("ExpiredSignatureError"),
    }];
    let result = &run_verifier(dir, &jwks, "status", &stale)[0];
    let ours = verify_status_list(&stale[0].token, &jwks).is_ok();
    let theirs = result["error"].as_str();
    let pass = ours && theirs == stale[0].refused_with;
    println!(
        "jose_interop: {:<32} PyJWT: {:<24} runpermit: {:<8} {}",
        stale[0].name,
        theirs.unwrap_or("accepted"),
        if ours { "verified" } else { "refused" },
        if pass { "ok" } else { "MISMATCH" },
    );
    ok & pass
}

fn usage_reports(dir: &Path) -> bool {
    let now = now_nanos() as i64 / 1_000_000_000;
    let key = SigningKey::generate();
    let jwks = Jwks::from_keys(&[key.public()]);
    let metered = common::eight_hours_of_one_h100();
    let claims = UsageReportClaims::new(
        "org-cloud",
        "run-interop",
        "permit-interop",
        "us-east-1",
        1,
        (now - 3660, now - 60),
        now - 60,
        metered,
    );
    let token = sign_usage_report(&claims, &key).expect("sound claims");
    let cases = [
        Case {
            name: "valid usage report",
            token: token.clone(),
            refused_with: None,
        },
        Case {
            name: "tampered usage report",
            token: tamper(&token),
            refused_with: Some("InvalidSignatureError"),
        },
        Case {
            name: "usage report, another key",
            token: sign_usage_report(&claims, &SigningKey::generate()).unwrap(),
            refused_with: Some("KeyError"),
        },
    ];
    let results = run_verifier(dir, &jwks, "usage", &cases);
    let mut ok = true;
    for (case, result) in cases.iter().zip(&results) {
        ok &= judge(
            case,
            result,
            verify_usage_report(&case.token, &jwks).is_ok(),
        );
    }
    let theirs: UsageReportClaims =
        serde_json::from_value(results[0]["claims"].clone()).expect("usage claims read back");
    ok & same("usage report claims", &theirs, &claims)
}

/// Prints the verdict for one case; true when PyJWT and this crate both did what was expected.
fn judge(case: &Case, result: &Value, ours_accepted: bool) -> bool {
    let theirs = if result["ok"] == true {
        None
    } else {
        result["error"].as_str()
    };
    let pass = theirs == case.refused_with && ours_accepted == case.refused_with.is_none();
    println!(
        "jose_interop: {:<32} PyJWT: {:<24} runpermit: {:<8} {}",
        case.name,
        theirs.unwrap_or("accepted"),
        if ours_accepted { "accepted" } else { "refused" },
        if pass { "ok" } else { "MISMATCH" },
    );
    if !pass {
        println!(
            "    expected PyJWT {}; it said {}",
            case.refused_with.unwrap_or("to accept"),
            result
        );
    }
    pass
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, theirs: &T, ours: &T) -> bool {
    let pass = theirs == ours;
    if !pass {
        println!(
            "jose_interop: {what} differ:\n    PyJWT:     {theirs:?}\n    runpermit: {ours:?}"
        );
    }
    pass
}

/// Writes the JWKS and tokens under `dir` and runs the Python verifier once over them all.
fn run_verifier(dir: &Path, jwks: &Jwks, kind: &str, cases: &[Case]) -> Vec<Value> {
    // Several runs per kind: number them.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let jwks_path = dir.join(format!("{kind}-{run}-jwks.json"));
    std::fs::write(&jwks_path, jwks.to_json()).expect("write JWKS");
    let token_paths: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let path = dir.join(format!("{kind}-{run}-{i}.jwt"));
            std::fs::write(&path, &case.token).expect("write token");
            path
        })
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verify_permit.py");
    let output = Command::new("python3")
        .arg(&script)
        .arg("--jwks")
        .arg(&jwks_path)
        .args(["--kind", kind])
        .args(&token_paths)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} failed ({}); is PyJWT installed (pip install 'pyjwt==2.15.*' cryptography)?\n{stdout}\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(
        results.len(),
        cases.len(),
        "one result per token:\n{stdout}"
    );
    results
}

fn request(nbf: i64, exp: i64) -> PermitRequest {
    let flop = |v: f64| Flop::new(v).unwrap();
    PermitRequest {
        iss: "https://authority.example".into(),
        sub: "run-interop".into(),
        jti: "permit-interop".into(),
        nbf,
        exp,
        application_id: "app-interop".into(),
        holder: holder(),
        providers: vec![ProviderScope {
            provider: "org-cloud".into(),
            clusters: vec!["us-east-1".into(), "us-west-2".into()],
        }],
        evaluators: vec!["org-institute".into()],
        accounting: Some(runpermit_compute::AccountingBasis::assumed(
            runpermit_compute::Precision::Bf16,
        )),
        max_accelerators: 16_384,
        flop_budget: flop(3.2e25),
        tranches: vec![
            Tranche {
                index: 1,
                flop: flop(2e24),
            },
            Tranche {
                index: 2,
                flop: flop(3.2e25),
            },
        ],
        policy_version: "2026.1".into(),
        tier: "standard".into(),
        conditions: vec!["weights security level SL3 or higher".into()],
    }
}

/// A grant valid from `nbf` to `exp`, checked and signed at `at`.
fn grant(key: &SigningKey, nbf: i64, exp: i64, at: i64) -> SignedAccessGrant {
    let request = AccessGrantRequest {
        iss: "https://authority.example".into(),
        jti: "grant-interop".into(),
        nbf,
        exp,
        grantee: Grantee {
            org_id: "org-university".into(),
            member_id: "member-ada".into(),
            name: "Université d’Exemple — Ω".into(),
        },
        developer: "org-lab".into(),
        model: GrantedModel {
            model_id: "model-interop".into(),
            name: "Example Model 2".into(),
            checkpoint_digest: format!("sha256:{}", "0123456789abcdef".repeat(4)),
        },
        tier: AccessTier::Finetune,
        quotas: Quotas {
            tokens: Some(50_000_000),
            requests: None,
            accelerator_hours: Some(12.5),
        },
        rate: Rate {
            burst: 10,
            count: 600,
            period_seconds: 3600,
        },
        purpose: "Fine-tune on a refusal benchmark and measure\nwhat changes.".into(),
        research_plan_digest: format!("sha256:{}", "a".repeat(64)),
        agreement_digest: format!("sha256:{}", "b".repeat(64)),
        duties: Duties {
            usage_report_interval_seconds: 3600,
            publication_review_days: 30,
            incident_report_hours: 72,
        },
        origin: GrantOrigin::Evaluation {
            milestone_id: "milestone-interop".into(),
        },
    };
    sign_access_grant(check_access_grant(request, at).expect("a sound grant"), key)
}

fn holder() -> Holder {
    Holder {
        org_id: "org-lab".into(),
        name: "Example Lab — Ω".into(),
    }
}

/// The token with one claim changed and the original signature kept.
fn tamper(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["jti"] = Value::from("forged");
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// The token's payload under a header naming `kid`, signed by `signer` (a key that `kid`
/// does not name), built with ed25519-dalek directly.
fn forge_with_kid(token: &str, typ: &str, kid: &str, signer: &SigningKey) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let header = format!(r#"{{"alg":"EdDSA","typ":"{typ}","kid":"{kid}"}}"#);
    let input = format!("{}.{payload}", URL_SAFE_NO_PAD.encode(header));
    let dalek = ed25519_dalek::SigningKey::from_pkcs8_pem(&signer.to_pkcs8_pem()).unwrap();
    let signature = dalek.sign(input.as_bytes()).to_bytes();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}
