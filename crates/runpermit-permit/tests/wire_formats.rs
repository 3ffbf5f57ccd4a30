//! The status list, the usage report and the access grant, byte for byte: tokens signed with
//! fixed keys (Ed25519 signatures are deterministic) must stay exactly the ones recorded when
//! these formats were defined (the first two in runpermit-gate). A change here changes what every gate and authority in the
//! field reads: it needs a new `typ`, not an edit of these strings.

mod common;

use runpermit_permit::{
    AccessGrantRequest, AccessTier, Duties, GrantOrigin, GrantedModel, Grantee, Jwks, PermitStatus,
    Quotas, Rate, SigningKey, StatusEntry, StatusListClaims, UsageReportClaims, check_access_grant,
    sign_access_grant, sign_status_list, sign_usage_report, verify_access_grant,
    verify_status_list, verify_usage_report,
};

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

const STATUS_TOKEN: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6InJ1bnBlcm1pdC1zdGF0dXMrand0Iiwia2lkIjoiLS02SU01bDBPb3NMajl5V3NrSVNZaFVBM25fM0NVUlFrbXJZTVNoYV9jayJ9.eyJpc3MiOiJodHRwczovL2F1dGhvcml0eS5leGFtcGxlIiwiaWF0IjoxNzY3MjI1NjAwLCJleHAiOjE3NjcyMjkyMDAsInZlcnNpb24iOjQyLCJlbnRyaWVzIjpbeyJwZXJtaXRfaWQiOiJwbXRfMCIsInN0YXR1cyI6InN1c3BlbmRlZCIsInJlYXNvbiI6InN1c3BlbmRlZCDigJQgYnkgdGhlIGF1dGhvcml0eSIsInNpbmNlIjoxNzY3MjI1NTQwfSx7InBlcm1pdF9pZCI6InBtdF8xIiwic3RhdHVzIjoicmV2b2tlZCIsInJlYXNvbiI6InJldm9rZWQg4oCUIGJ5IHRoZSBhdXRob3JpdHkiLCJzaW5jZSI6MTc2NzIyNTU0MH0seyJwZXJtaXRfaWQiOiJwbXRfMiIsInN0YXR1cyI6Im1pbGVzdG9uZV9ob2xkIiwicmVhc29uIjoibWlsZXN0b25lX2hvbGQg4oCUIGJ5IHRoZSBhdXRob3JpdHkiLCJzaW5jZSI6MTc2NzIyNTU0MH0seyJwZXJtaXRfaWQiOiJwbXRfMyIsInN0YXR1cyI6InBhdXNlZCIsInJlYXNvbiI6InBhdXNlZCDigJQgYnkgdGhlIGF1dGhvcml0eSIsInNpbmNlIjoxNzY3MjI1NTQwfV19.cYXj6hh_U8UIx-agZGbegsL4AvXwl7QRftlCZnMMhXmVBR6nXKp64Oz6dJ_GuJ84B65LTbhk0il4vjtyZ70GDg";

const USAGE_TOKEN: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6InJ1bnBlcm1pdC11c2FnZStqd3QiLCJraWQiOiJuUklFMlZtS2RNakwxSkQ3dGJWN2ZYVmdYeG12MEdLbk1GV1JVSk1UZjlRIn0.eyJpc3MiOiJvcmctY2xvdWQiLCJzdWIiOiJydW5fMSIsInBlcm1pdF9pZCI6InBtdF8xIiwiY2x1c3RlciI6InVzLWVhc3QtMSIsInNlcSI6NywiZnJvbSI6MTc2NzIyNTYwMCwidG8iOjE3NjcyMjkyMDAsImlhdCI6MTc2NzIyOTIwMSwiYWNjZWxlcmF0b3Jfc2Vjb25kcyI6eyJudmlkaWEtaDEwMC1zeG0iOjI4ODAwLjB9LCJtZXRob2QiOiJzY2hlZHVsZXJfYWNjb3VudGluZyIsImZsb3AiOjUuNjk5NTJlKzE5LCJmbG9wX2xvd2VyIjowLjAsImZsb3BfdXBwZXIiOjUuNjk5NTJlKzE5fQ.WRD3DT5sUlJYw8JOCLtvtG9Zcu3prrKGzmkEgmP5Cgyvf9QzzLFPA3_cYzVSMNtBUKApOkyjYZMTmUTyCyKoDQ";

const GRANT_TOKEN: &str = "eyJhbGciOiJFZERTQSIsInR5cCI6InJ1bnBlcm1pdC1hY2Nlc3Mrand0Iiwia2lkIjoiOFRsRzNJaGlSSDVzV2hzSUdTU1JuQXFmOXp5aEVsMWlyNHQ0Y2JUUkNrMCJ9.eyJpc3MiOiJodHRwczovL2F1dGhvcml0eS5leGFtcGxlIiwianRpIjoiZ3J0XzEiLCJpYXQiOjE3NjcyMjU2MDAsIm5iZiI6MTc2NzIyNTYwMCwiZXhwIjoxNzY5ODE3NjAwLCJycHYiOjEsImdyYW50ZWUiOnsib3JnX2lkIjoib3JnLXVuaXZlcnNpdHkiLCJtZW1iZXJfaWQiOiJtYnJfYWRhIiwibmFtZSI6IkV4YW1wbGUgVW5pdmVyc2l0eSJ9LCJkZXZlbG9wZXIiOiJvcmctbGFiIiwibW9kZWwiOnsibW9kZWxfaWQiOiJtZGxfMSIsIm5hbWUiOiJFeGFtcGxlIE1vZGVsIDIiLCJjaGVja3BvaW50X2RpZ2VzdCI6InNoYTI1NjowMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmIn0sInRpZXIiOiJhY3RpdmF0aW9ucyIsInF1b3RhcyI6eyJ0b2tlbnMiOjEwMDAwMDAwLCJyZXF1ZXN0cyI6NTAwMDAsImFjY2VsZXJhdG9yX2hvdXJzIjoxMjAuNX0sInJhdGUiOnsiYnVyc3QiOjUsImNvdW50Ijo2MCwicGVyaW9kX3NlY29uZHMiOjYwfSwicHVycG9zZSI6IlByb2JlIHJlZnVzYWwgY2lyY3VpdHMg4oCUIGludGVycHJldGFiaWxpdHkgc3R1ZHkiLCJyZXNlYXJjaF9wbGFuX2RpZ2VzdCI6InNoYTI1NjphYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhIiwiYWdyZWVtZW50X2RpZ2VzdCI6InNoYTI1NjpiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiIiwiZHV0aWVzIjp7InVzYWdlX3JlcG9ydF9pbnRlcnZhbF9zZWNvbmRzIjozNjAwLCJwdWJsaWNhdGlvbl9yZXZpZXdfZGF5cyI6MzAsImluY2lkZW50X3JlcG9ydF9ob3VycyI6NzJ9LCJvcmlnaW4iOnsia2luZCI6ImFwcGxpY2F0aW9uIiwiYXBwbGljYXRpb25faWQiOiJhY2NfMSJ9fQ.ufOKK6KFRiCf_ndDmx3TOG00uUQC4vZAkB2G_MTnZS_EgaGLFvzu5SYtRJadrzcOwVuRjG35qwVotHYx-qkaBQ";

fn grant_request() -> AccessGrantRequest {
    AccessGrantRequest {
        iss: "https://authority.example".into(),
        jti: "grt_1".into(),
        nbf: NOW,
        exp: NOW + 30 * 86_400,
        grantee: Grantee {
            org_id: "org-university".into(),
            member_id: "mbr_ada".into(),
            name: "Example University".into(),
        },
        developer: "org-lab".into(),
        model: GrantedModel {
            model_id: "mdl_1".into(),
            name: "Example Model 2".into(),
            checkpoint_digest: format!("sha256:{}", "0123456789abcdef".repeat(4)),
        },
        tier: AccessTier::Activations,
        quotas: Quotas {
            tokens: Some(10_000_000),
            requests: Some(50_000),
            accelerator_hours: Some(120.5),
        },
        rate: Rate {
            burst: 5,
            count: 60,
            period_seconds: 60,
        },
        purpose: "Probe refusal circuits — interpretability study".into(),
        research_plan_digest: format!("sha256:{}", "a".repeat(64)),
        agreement_digest: format!("sha256:{}", "b".repeat(64)),
        duties: Duties {
            usage_report_interval_seconds: 3600,
            publication_review_days: 30,
            incident_report_hours: 72,
        },
        origin: GrantOrigin::Application {
            application_id: "acc_1".into(),
        },
    }
}

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

#[test]
fn access_grants_are_signed_byte_for_byte_as_before() {
    let key = SigningKey::from_seed(&[11; 32]);
    let checked = check_access_grant(grant_request(), NOW).unwrap();
    let claims = checked.claims().clone();
    assert_eq!(sign_access_grant(checked, &key).token, GRANT_TOKEN);
    let jwks = Jwks::from_keys(&[key.public()]);
    assert_eq!(verify_access_grant(GRANT_TOKEN, &jwks, NOW, 0), Ok(claims));
}
