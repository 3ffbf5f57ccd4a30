//! The status list and the usage report, byte for byte: tokens signed with fixed keys (Ed25519
//! signatures are deterministic) must stay exactly the ones recorded when these formats were
//! defined, in runpermit-gate. A change here changes what every gate and authority in the
//! field reads: it needs a new `typ`, not an edit of these strings.

mod common;

use runpermit_permit::{
    Jwks, PermitStatus, SigningKey, StatusEntry, StatusListClaims, UsageReportClaims,
    sign_status_list, sign_usage_report, verify_status_list, verify_usage_report,
};

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

const STATUS_TOKEN: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6InJ1bnBlcm1pdC1zdGF0dXMrand0Iiwia2lkIjoiLS02SU01bDBPb3NMajl5V3NrSVNZaFVBM25fM0NVUlFrbXJZTVNoYV9jayJ9.eyJpc3MiOiJodHRwczovL2F1dGhvcml0eS5leGFtcGxlIiwiaWF0IjoxNzY3MjI1NjAwLCJleHAiOjE3NjcyMjkyMDAsInZlcnNpb24iOjQyLCJlbnRyaWVzIjpbeyJwZXJtaXRfaWQiOiJwbXRfMCIsInN0YXR1cyI6InN1c3BlbmRlZCIsInJlYXNvbiI6InN1c3BlbmRlZCDigJQgYnkgdGhlIGF1dGhvcml0eSIsInNpbmNlIjoxNzY3MjI1NTQwfSx7InBlcm1pdF9pZCI6InBtdF8xIiwic3RhdHVzIjoicmV2b2tlZCIsInJlYXNvbiI6InJldm9rZWQg4oCUIGJ5IHRoZSBhdXRob3JpdHkiLCJzaW5jZSI6MTc2NzIyNTU0MH0seyJwZXJtaXRfaWQiOiJwbXRfMiIsInN0YXR1cyI6Im1pbGVzdG9uZV9ob2xkIiwicmVhc29uIjoibWlsZXN0b25lX2hvbGQg4oCUIGJ5IHRoZSBhdXRob3JpdHkiLCJzaW5jZSI6MTc2NzIyNTU0MH0seyJwZXJtaXRfaWQiOiJwbXRfMyIsInN0YXR1cyI6InBhdXNlZCIsInJlYXNvbiI6InBhdXNlZCDigJQgYnkgdGhlIGF1dGhvcml0eSIsInNpbmNlIjoxNzY3MjI1NTQwfV19.cYXj6hh_U8UIx-agZGbegsL4AvXwl7QRftlCZnMMhXmVBR6nXKp64Oz6dJ_GuJ84B65LTbhk0il4vjtyZ70GDg";

const USAGE_TOKEN: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6InJ1bnBlcm1pdC11c2FnZStqd3QiLCJraWQiOiJuUklFMlZtS2RNakwxSkQ3dGJWN2ZYVmdYeG12MEdLbk1GV1JVSk1UZjlRIn0.eyJpc3MiOiJvcmctY2xvdWQiLCJzdWIiOiJydW5fMSIsInBlcm1pdF9pZCI6InBtdF8xIiwiY2x1c3RlciI6InVzLWVhc3QtMSIsInNlcSI6NywiZnJvbSI6MTc2NzIyNTYwMCwidG8iOjE3NjcyMjkyMDAsImlhdCI6MTc2NzIyOTIwMSwiYWNjZWxlcmF0b3Jfc2Vjb25kcyI6eyJudmlkaWEtaDEwMC1zeG0iOjI4ODAwLjB9LCJtZXRob2QiOiJzY2hlZHVsZXJfYWNjb3VudGluZyIsImZsb3AiOjUuNjk5NTJlKzE5LCJmbG9wX2xvd2VyIjowLjAsImZsb3BfdXBwZXIiOjUuNjk5NTJlKzE5fQ.WRD3DT5sUlJYw8JOCLtvtG9Zcu3prrKGzmkEgmP5Cgyvf9QzzLFPA3_cYzVSMNtBUKApOkyjYZMTmUTyCyKoDQ";

fn status_claims() -> StatusListClaims {
    let entries = PermitStatus::ALL
        .iter()
        .enumerate()
        .map(|(i, s)| StatusEntry {
            permit_id: format!("pmt_{i}"),
            status: *s,
            reason: format!("{s} — by the authority"),
            since: NOW - 60,
        })
        .collect();
    StatusListClaims::new("https://authority.example", NOW, 3600, 42, entries)
}

fn usage_claims() -> UsageReportClaims {
    let metered = common::eight_hours_of_one_h100();
    UsageReportClaims::new(
        "org-cloud",
        "run_1",
        "pmt_1",
        "us-east-1",
        7,
        (NOW, NOW + 3600),
        NOW + 3601,
        metered,
    )
}

#[test]
fn status_lists_are_signed_byte_for_byte_as_before() {
    let key = SigningKey::from_seed(&[7; 32]);
    assert_eq!(sign_status_list(&status_claims(), &key), STATUS_TOKEN);
    let jwks = Jwks::from_keys(&[key.public()]);
    assert_eq!(verify_status_list(STATUS_TOKEN, &jwks), Ok(status_claims()));
}

#[test]
fn usage_reports_are_signed_byte_for_byte_as_before() {
    let key = SigningKey::from_seed(&[3; 32]);
    assert_eq!(
        sign_usage_report(&usage_claims(), &key).unwrap(),
        USAGE_TOKEN
    );
    let jwks = Jwks::from_keys(&[key.public()]);
    assert_eq!(verify_usage_report(USAGE_TOKEN, &jwks), Ok(usage_claims()));
}
