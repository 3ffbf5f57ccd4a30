//! The pure check, every refusal path and their order, with real grants, a real log and
//! real proofs.

mod common;

use common::{NOW, World};
use runpermit_access::{AccessRequest, Code, GrantUsage, check, gcra};
use runpermit_gate::StatusListCache;
use runpermit_permit::{AccessTier, PermitStatus, Rate, StatusEntry};

fn decide(
    world: &World,
    status: &StatusListCache,
    grant: &str,
    proof: &str,
    tier: AccessTier,
    usage: GrantUsage,
    now: i64,
) -> (Code, Option<i64>) {
    let d = check(
        &world.served(),
        &world.anchors(),
        status,
        &AccessRequest {
            grant,
            proof,
            model: Some("example-7b"),
            tier,
        },
        |_| usage,
        now * 1000,
    );
    (d.code, d.retry_at)
}

#[test]
fn every_refusal_in_order() {
    let w = World::new();
    let fresh = w.status(vec![]);
    let u = GrantUsage::default();
    let at = |grant: &str, proof: &str, tier| decide(&w, &fresh, grant, proof, tier, u, NOW).0;
    let main = &w.main;

    assert_eq!(
        at(&main.token, &main.proof, AccessTier::ApiSampling),
        Code::Allowed
    );
    // 1. The grant itself.
    assert_eq!(
        at("", &main.proof, AccessTier::ApiSampling),
        Code::GrantMissing
    );
    assert_eq!(
        at("not.a.jws", &main.proof, AccessTier::ApiSampling),
        Code::GrantMalformed
    );
    let mut tampered = main.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(
        at(&tampered, &main.proof, AccessTier::ApiSampling),
        Code::GrantBadSignature
    );
    let stranger = runpermit_permit::SigningKey::from_seed(&[9; 32]);
    let foreign = common::issue(
        common::grant_request("agr_x", AccessTier::ApiSampling),
        &stranger,
        common::ISSUED,
    );
    assert_eq!(
        at(&foreign, &main.proof, AccessTier::ApiSampling),
        Code::GrantUnknownKey
    );
    // A permit-typed token (another typ) is malformed as a grant.
    let status_token = w.status_token(1, NOW, vec![]);
    assert_eq!(
        at(&status_token, &main.proof, AccessTier::ApiSampling),
        Code::GrantMalformed
    );
    // 2. Time, before everything after it (even the wrong proof).
    assert_eq!(
        decide(
            &w,
            &fresh,
            &w.short.token,
            "",
            AccessTier::Weights,
            u,
            NOW + 160
        )
        .0,
        Code::GrantExpired
    );
    assert_eq!(
        decide(
            &w,
            &fresh,
            &main.token,
            "",
            AccessTier::Weights,
            u,
            common::ISSUED - 3600
        )
        .0,
        Code::GrantNotYetValid
    );
    // 3. The model, before the tier and the proof.
    assert_eq!(
        at(&w.other_model.token, "", AccessTier::Weights),
        Code::GrantWrongModel
    );
    let d = check(
        &w.served(),
        &w.anchors(),
        &fresh,
        &AccessRequest {
            grant: &main.token,
            proof: &main.proof,
            model: Some("gpt-x"),
            tier: AccessTier::ApiSampling,
        },
        |_| u,
        NOW * 1000,
    );
    assert_eq!(d.code, Code::ModelNotServed);
    // 4. The tier, before the proof.
    assert_eq!(
        at(&main.token, "", AccessTier::Finetune),
        Code::TierNotServed
    );
    assert_eq!(at(&main.token, "", AccessTier::Logprobs), Code::TierTooLow);
    assert_eq!(
        at(&w.deep.token, &w.deep.proof, AccessTier::Logprobs),
        Code::Allowed
    );
    // 5. The proof, before the status list.
    let none = StatusListCache::new(0);
    let p = |grant: &str, proof: &str| {
        decide(&w, &none, grant, proof, AccessTier::ApiSampling, u, NOW).0
    };
    assert_eq!(p(&main.token, ""), Code::ProofMissing);
    assert_eq!(p(&main.token, "garbage"), Code::ProofMalformed);
    assert_eq!(
        p(&w.unlogged.token, &w.unlogged.proof),
        Code::ProofWrongGrant
    );
    assert_eq!(p(&main.token, &w.deep.proof), Code::ProofWrongGrant);
    let other_log = runpermit_log::LogKey::from_seed("other.example/log", &[3; 32]).unwrap();
    let foreign_proof = common::log(
        &[common::granted_entry(
            &main.token,
            "agr_main",
            AccessTier::ApiSampling,
        )],
        &other_log,
    );
    assert_eq!(p(&main.token, &foreign_proof[0]), Code::ProofWrongLog);
    // One hash of the inclusion path altered (a valid base64 hash of another value).
    let mut lines: Vec<String> = main.proof.lines().map(str::to_owned).collect();
    let at_hash = lines.iter().position(|l| l.starts_with("index ")).unwrap() + 1;
    lines[at_hash] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into();
    let altered = lines.join("\n") + "\n";
    assert_ne!(altered, main.proof);
    assert_eq!(p(&main.token, &altered), Code::ProofInvalid);
    // 6. The status list: missing, then stale.
    assert_eq!(p(&main.token, &main.proof), Code::StatusListMissing);
    assert_eq!(
        decide(
            &w,
            &fresh,
            &main.token,
            &main.proof,
            AccessTier::ApiSampling,
            u,
            NOW + 3600 + 300
        )
        .0,
        Code::StatusListStale
    );
    // 7. Standing.
    let entry = |status| StatusEntry {
        permit_id: "agr_main".into(),
        status,
        reason: "investigation".into(),
        since: NOW - 120,
    };
    let suspended = w.status(vec![entry(PermitStatus::Suspended)]);
    let revoked = w.status(vec![entry(PermitStatus::Revoked)]);
    let full = GrantUsage {
        requests: 3,
        tokens: 0,
        tat_ns: 0,
    };
    assert_eq!(
        decide(
            &w,
            &suspended,
            &main.token,
            &main.proof,
            AccessTier::ApiSampling,
            full,
            NOW
        )
        .0,
        Code::GrantSuspended
    );
    assert_eq!(
        decide(
            &w,
            &revoked,
            &main.token,
            &main.proof,
            AccessTier::ApiSampling,
            full,
            NOW
        )
        .0,
        Code::GrantRevoked
    );
    // 8. Quotas, before the rate; the retry time is the grant's end.
    let busy = GrantUsage {
        requests: 3,
        tokens: 0,
        tat_ns: (NOW + 3600) * 1_000_000_000,
    };
    assert_eq!(
        decide(
            &w,
            &fresh,
            &main.token,
            &main.proof,
            AccessTier::ApiSampling,
            busy,
            NOW
        ),
        (Code::QuotaExhausted, Some(NOW + 30 * 86_400))
    );
    let tokens_used = GrantUsage {
        requests: 1,
        tokens: 1000,
        tat_ns: 0,
    };
    assert_eq!(
        decide(
            &w,
            &fresh,
            &main.token,
            &main.proof,
            AccessTier::ApiSampling,
            tokens_used,
            NOW
        )
        .0,
        Code::QuotaExhausted
    );
    // 9. The rate (10 per 60 s, bursts of 10: T = 6 s, τ = 54 s).
    let ahead = GrantUsage {
        requests: 1,
        tokens: 0,
        tat_ns: (NOW + 60) * 1_000_000_000,
    };
    assert_eq!(
        decide(
            &w,
            &fresh,
            &main.token,
            &main.proof,
            AccessTier::ApiSampling,
            ahead,
            NOW
        ),
        (Code::RateLimited, Some(NOW + 6))
    );
}

#[test]
fn gcra_admits_a_burst_then_one_per_interval() {
    let rate = Rate {
        burst: 3,
        count: 1,
        period_seconds: 10,
    };
    let t0 = NOW * 1000;
    let mut tat = 0;
    for _ in 0..3 {
        tat = gcra(rate, tat, t0).unwrap();
    }
    let retry = gcra(rate, tat, t0).unwrap_err();
    assert_eq!(retry, (NOW + 10) * 1_000_000_000);
    assert!(gcra(rate, tat, t0 + 9_999).is_err());
    assert!(gcra(rate, tat, t0 + 10_000).is_ok());
}
