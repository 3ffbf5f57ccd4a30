//! Gate decisions with real keys, real permits, a real log and real status lists.

mod common;

use std::collections::HashSet;

use common::{NOW, TTL, World, issue, log, params, permit_entry, request};
use runpermit_compute::Flop;
use runpermit_gate::{Code, Decision, JobRequest, PermitEvidence, StatusError, Usage};
use runpermit_log::{LogKey, ProofBundle};
use runpermit_permit::{
    PermitStatus, SigningKey, StatusEntry, StatusListClaims, StatusListError, verify_status_list,
};

/// Checks the code, that `allow` agrees with it, and that the message says `fragment`.
#[track_caller]
fn expect(decision: &Decision, code: Code, fragment: &str) {
    assert_eq!(decision.code, code, "{}", decision.message);
    assert_eq!(decision.allow, code.allows());
    assert!(
        decision.message.contains(fragment),
        "{code}: {:?} does not say {fragment:?}",
        decision.message
    );
}

fn with_token(job: &JobRequest, token: String) -> JobRequest {
    let mut job = job.clone();
    job.permit.as_mut().unwrap().token = token;
    job
}

fn with_proof(job: &JobRequest, proof: String) -> JobRequest {
    let mut job = job.clone();
    job.permit.as_mut().unwrap().proof_bundle = proof;
    job
}

fn parts(token: &str) -> [&str; 3] {
    token.split('.').collect::<Vec<_>>().try_into().unwrap()
}

fn hold(permit_id: &str, status: PermitStatus, reason: &str) -> StatusEntry {
    StatusEntry {
        permit_id: permit_id.into(),
        status,
        reason: reason.into(),
        since: NOW - 600,
    }
}

fn flop(v: f64) -> Flop {
    Flop::new(v).unwrap()
}

/// One scenario per code: (what, decision, expected code, a fragment of the message).
fn scenarios() -> Vec<(&'static str, Decision, Code, String)> {
    let w = World::new();
    let job = w.allowed_job();
    let mut out = Vec::new();
    let mut add = |what: &'static str, d: Decision, code: Code, fragment: &str| {
        out.push((what, d, code, fragment.to_owned()));
    };

    add(
        "small job",
        w.decide(&JobRequest {
            cluster: "us-east-1".into(),
            accelerators: 8,
            hours: Some(10.0),
            permit: None,
        }),
        Code::BelowThreshold,
        "no permit needed",
    );
    add(
        "valid permit",
        w.decide(&job),
        Code::Permitted,
        "permitted under permit pmt_main for run run_main",
    );
    add(
        "negative duration",
        w.decide(&JobRequest {
            hours: Some(-1.0),
            ..job.clone()
        }),
        Code::InvalidRequest,
        "positive number of hours",
    );
    add(
        "unknown cluster",
        w.decide(&JobRequest {
            cluster: "ap-south-1".into(),
            ..job.clone()
        }),
        Code::UnknownCluster,
        "us-east-1, eu-west-1",
    );
    add(
        "no permit",
        w.decide(&JobRequest {
            permit: None,
            ..job.clone()
        }),
        Code::PermitRequired,
        "2048 accelerators reaches this gate's threshold of 1024",
    );
    // A status list is signed by the authority too, but it is not a permit.
    add(
        "status list as permit",
        w.decide(&with_token(&job, w.status_token(9, NOW, vec![]))),
        Code::PermitMalformed,
        "wrong token type",
    );
    let stranger = SigningKey::from_seed(&[9; 32]);
    let (foreign, _) = issue(request("pmt_main", "run_main"), &stranger);
    add(
        "another authority's key",
        w.decide(&with_token(&job, foreign)),
        Code::PermitUnknownKey,
        stranger.kid(),
    );
    // The claims of another permit (same authority) under this permit's signature.
    let [h, _, s] = parts(&w.main.token);
    let [_, p, _] = parts(&w.other.token);
    add(
        "tampered payload",
        w.decide(&with_token(&job, format!("{h}.{p}.{s}"))),
        Code::PermitBadSignature,
        "altered or forged",
    );
    add(
        "not yet valid",
        w.decide(&w.job("us-east-1", 2048, &w.future)),
        Code::PermitNotYetValid,
        "permit not valid before 2026-01-01T00:10:00Z",
    );
    add(
        "expired",
        w.decide_at(&w.job("us-east-1", 2048, &w.short), NOW + 160),
        Code::PermitExpired,
        "ask the authority for a new permit",
    );
    let elsewhere = params(&w.vkey, |c| c.replace("\"org-cloud\"", "\"org-other\""));
    add(
        "other provider",
        w.decide_as(&elsewhere, &job, &Usage::new(), NOW),
        Code::ProviderNotPermitted,
        "does not allow compute at this provider (org-other); it names org-cloud, org-hpc",
    );
    add(
        "other cluster",
        w.decide(&w.job("eu-west-1", 2048, &w.main)),
        Code::ClusterNotPermitted,
        "clusters us-east-1 only, not eu-west-1",
    );
    add(
        "too many accelerators",
        w.decide(&w.job("us-east-1", 4097, &w.main)),
        Code::TooManyAccelerators,
        "requests 4097 accelerators, more than the 4096",
    );
    add(
        "no proof",
        w.decide(&with_proof(&job, String::new())),
        Code::ProofMissing,
        "runpermit permit get pmt_main --proof",
    );
    add(
        "garbage proof",
        w.decide(&with_proof(&job, "hello\n".into())),
        Code::ProofMalformed,
        "cannot be read",
    );
    let other_log = LogKey::from_seed(common::LOG_NAME, &[3; 32]).unwrap();
    let foreign_proofs = log(&[permit_entry(&w.main.token, &w.main.claims)], &other_log);
    add(
        "proof under another log key",
        w.decide(&with_proof(&job, foreign_proofs[0].clone())),
        Code::ProofWrongLog,
        "not from the log this gate trusts",
    );
    let root_line = w.main.proof.lines().rev().nth(2).unwrap().to_owned();
    let altered_root = if root_line.starts_with('A') { "B" } else { "A" };
    add(
        "altered checkpoint",
        w.decide(&with_proof(
            &job,
            w.main
                .proof
                .replace(&root_line, &format!("{altered_root}{}", &root_line[1..])),
        )),
        Code::ProofInvalid,
        "does not verify",
    );
    add(
        "another permit's proof",
        w.decide(&with_proof(&job, w.other.proof.clone())),
        Code::ProofWrongPermit,
        "is for permit pmt_other, not for this permit (pmt_main)",
    );
    let mut unwitnessed = World::new();
    let policy = common::two_of_three(&unwitnessed.vkey);
    unwitnessed.require_witnesses(Some(policy));
    let [w1, ..] = common::witnesses();
    add(
        "too few cosignatures",
        unwitnessed.decide(&with_proof(&job, common::cosigned(&w.main.proof, &[&w1]))),
        Code::ProofNotWitnessed,
        "cosigned by w1.example, still needed: w2.example, w3.example",
    );
    let mut missing = World::new();
    missing.forget_status();
    add(
        "no status list",
        missing.decide(&job),
        Code::StatusListMissing,
        "no status list from the authority yet",
    );
    let mut stale = World::new();
    stale.forget_status();
    let old =
        verify_status_list(&stale.status_token(1, NOW - TTL - 300, vec![]), &stale.jwks).unwrap();
    stale.gate.get_mut().accept_status(old).unwrap();
    add(
        "stale status list",
        stale.decide(&job),
        Code::StatusListStale,
        "expired at 2025-12-31T23:55:00Z and its grace of 5 min has passed",
    );
    for (status, code, fragment) in [
        (
            PermitStatus::Suspended,
            Code::PermitSuspended,
            "suspended since 2025-12-31T23:50:00Z (incident inc_7 under investigation)",
        ),
        (
            PermitStatus::Revoked,
            Code::PermitRevoked,
            "revoked at 2025-12-31T23:50:00Z (incident inc_7 under investigation). Run run_main must stop",
        ),
        (
            PermitStatus::MilestoneHold,
            Code::PermitMilestoneHold,
            "on hold for a milestone since 2025-12-31T23:50:00Z (incident inc_7 under investigation). Submit the milestone evaluation",
        ),
        (
            PermitStatus::Paused,
            Code::PermitPaused,
            "run run_main under permit pmt_main is paused",
        ),
    ] {
        let mut held = World::new();
        held.publish(
            2,
            NOW - 30,
            vec![hold(
                "pmt_main",
                status,
                "incident inc_7 under investigation",
            )],
        );
        add(status.as_str(), held.decide(&job), code, fragment);
    }
    let used: Usage = [("run_main", flop(3.2e25))].into_iter().collect();
    add(
        "budget used up",
        w.decide_using(&job, &used, NOW),
        Code::BudgetExhausted,
        "has used 3.20e25 FLOP at this provider, which reaches the 3.20e25 FLOP budget",
    );
    out
}

#[test]
fn every_code_has_a_scenario_with_an_actionable_message() {
    let mut seen = HashSet::new();
    for (what, decision, code, fragment) in scenarios() {
        // Shown with `--nocapture`: every message, for review.
        println!("{what:>28}  {code:<22} {}", decision.message);
        assert_eq!(decision.code, code, "{what}: {}", decision.message);
        assert_eq!(decision.allow, code.allows(), "{what}");
        assert!(
            decision.message.contains(&fragment),
            "{what}: {:?} does not say {fragment:?}",
            decision.message
        );
        // After the signature verified, the decision names the permit and the run.
        let after_signature = !matches!(
            code,
            Code::BelowThreshold
                | Code::InvalidRequest
                | Code::UnknownCluster
                | Code::PermitRequired
                | Code::PermitMalformed
                | Code::PermitUnknownKey
                | Code::PermitBadSignature
                | Code::PermitNotYetValid
                | Code::PermitExpired
        );
        if after_signature {
            assert_eq!(decision.permit_id.as_deref(), Some("pmt_main"), "{what}");
            assert_eq!(decision.run_id.as_deref(), Some("run_main"), "{what}");
        } else {
            assert_eq!(decision.permit_id, None, "{what}");
        }
        assert_eq!(decision.remaining_flop.is_some(), code == Code::Permitted);
        seen.insert(code);
    }
    let missing: Vec<Code> = Code::ALL
        .into_iter()
        .filter(|c| !seen.contains(c))
        .collect();
    assert!(missing.is_empty(), "codes without a scenario: {missing:?}");
}

#[test]
fn small_jobs_pass_untouched() {
    let w = World::new();
    let small = JobRequest {
        cluster: "us-east-1".into(),
        accelerators: 1023,
        hours: Some(1.0),
        permit: None,
    };
    let d = w.decide(&small);
    expect(
        &d,
        Code::BelowThreshold,
        "this job of 1023 accelerators (NVIDIA H100 SXM) on cluster us-east-1 for 1 h (at most 3.64e21 FLOP at the bf16 peak) is below this gate's permit threshold (1024 accelerators or 1.00e24 FLOP projected)",
    );
    assert_eq!((d.permit_id, d.remaining_flop), (None, None));
    // Whatever is attached is not looked at: a small job is never refused for its permit.
    let garbage = JobRequest {
        permit: Some(PermitEvidence {
            token: "not a token".into(),
            proof_bundle: String::new(),
        }),
        ..small.clone()
    };
    expect(
        &w.decide(&garbage),
        Code::BelowThreshold,
        "no permit needed",
    );
    // Nor for the gate's status list.
    let mut no_list = World::new();
    no_list.forget_status();
    expect(&no_list.decide(&small), Code::BelowThreshold, "");
    // A job that uses no accelerator is small whatever its duration.
    let cpu = JobRequest {
        accelerators: 0,
        hours: Some(10_000.0),
        ..small
    };
    expect(&w.decide(&cpu), Code::BelowThreshold, "0 accelerators");
}

#[test]
fn each_threshold_counts_on_its_own() {
    let w = World::new();
    let job = |accelerators: u64, hours: Option<f64>| JobRequest {
        cluster: "us-east-1".into(),
        accelerators,
        hours,
        permit: None,
    };
    // 512 accelerators for 1000 h: below the accelerator threshold, but 1.82e24 FLOP.
    expect(
        &w.decide(&job(512, Some(1000.0))),
        Code::PermitRequired,
        "its projected 1.82e24 FLOP reaches this gate's threshold of 1.00e24 FLOP",
    );
    // A job that states no duration cannot be shown to be below the FLOP threshold.
    expect(
        &w.decide(&job(8, None)),
        Code::PermitRequired,
        "with no duration given it cannot be shown to stay below",
    );
    // A duration so long that the projection overflows is far above.
    expect(
        &w.decide(&job(8, Some(1e300))),
        Code::PermitRequired,
        "overflows",
    );
    // With only an accelerator threshold, the duration does not matter.
    let by_count = params(&w.vkey, |c| c.replace("min_projected_flop = 1e24\n", ""));
    let d = |job: &JobRequest| w.decide_as(&by_count, job, &Usage::new(), NOW);
    expect(&d(&job(8, None)), Code::BelowThreshold, "");
    expect(&d(&job(1023, Some(1e6))), Code::BelowThreshold, "");
    expect(
        &d(&job(1024, Some(0.01))),
        Code::PermitRequired,
        "1024 accelerators reaches",
    );
    // With only a FLOP threshold, a large short job passes.
    let by_flop = params(&w.vkey, |c| c.replace("min_accelerators = 1024\n", ""));
    let d = w.decide_as(&by_flop, &job(16_384, Some(0.01)), &Usage::new(), NOW);
    expect(&d, Code::BelowThreshold, "16384 accelerators");
}

#[test]
fn an_allow_claims_no_tranche_the_gate_cannot_know() {
    // Four tranches; this provider alone has metered past the first one's end, and the
    // authority's fresh list does not name the permit: the authority has released a later
    // tranche (or the run would be on milestone hold). The gate knows neither which, nor
    // what the other providers used, so its message names no tranche.
    let w = World::new();
    let mut four = request("pmt_four", "run_four");
    four.tranches = [1e24, 4e24, 1.6e25, 3.2e25]
        .into_iter()
        .enumerate()
        .map(|(i, f)| runpermit_permit::Tranche {
            index: i as u32 + 1,
            flop: flop(f),
        })
        .collect();
    let (token, claims) = issue(four, &w.authority);
    let proof = log(&[permit_entry(&token, &claims)], &w.log_key).remove(0);
    let job = with_proof(&with_token(&w.allowed_job(), token), proof);
    let used: Usage = [("run_four", flop(1.5e24))].into_iter().collect();
    let d = w.decide_using(&job, &used, NOW);
    expect(
        &d,
        Code::Permitted,
        "is permitted under permit pmt_four for run run_four: this provider has metered \
         1.50e24 FLOP of the 3.20e25 FLOP budget (in 4 tranches); the authority's status list \
         shows the run in good standing, so its released compute is not used up",
    );
    for claim in ["tranche 1", "tranche 2", "of 4", "milestone", "ends at"] {
        assert!(!d.message.contains(claim), "{claim:?} in {:?}", d.message);
    }
    assert_eq!(d.remaining_flop, Some(flop(3.2e25 - 1.5e24)));
    // A permit of one tranche says so.
    let mut one = request("pmt_one", "run_one");
    one.tranches.truncate(1);
    one.tranches[0].flop = one.flop_budget;
    let (token, claims) = issue(one, &w.authority);
    let proof = log(&[permit_entry(&token, &claims)], &w.log_key).remove(0);
    let job = with_proof(&with_token(&w.allowed_job(), token), proof);
    expect(
        &w.decide(&job),
        Code::Permitted,
        "(released in one tranche)",
    );
}

#[test]
fn a_valid_permit_is_permitted_with_its_remaining_budget() {
    let w = World::new();
    let d = w.decide(&w.allowed_job());
    expect(
        &d,
        Code::Permitted,
        "this provider has metered 0 FLOP of the 3.20e25 FLOP budget (in 3 tranches); the \
         authority's status list shows the run in good standing",
    );
    assert_eq!(d.permit_id.as_deref(), Some("pmt_main"));
    assert_eq!(d.run_id.as_deref(), Some("run_main"));
    assert_eq!(d.remaining_flop, Some(flop(3.2e25)));

    let used: Usage = [("run_main", flop(5e24)), ("run_other", flop(3.2e25))]
        .into_iter()
        .collect();
    let d = w.decide_using(&w.allowed_job(), &used, NOW);
    expect(
        &d,
        Code::Permitted,
        "has metered 5.00e24 FLOP of the 3.20e25 FLOP",
    );
    assert_eq!(d.remaining_flop, Some(flop(2.7e25)));

    // Exactly max_accelerators is allowed; the JSON the HTTP endpoint reads and writes
    // round-trips, and surrounding whitespace from files is ignored.
    let mut job = w.job("us-east-1", 4096, &w.main);
    job.permit.as_mut().unwrap().token = format!("  {}\n", w.main.token);
    let json = serde_json::to_string(&job).unwrap();
    let job: JobRequest = serde_json::from_str(&json).unwrap();
    let d = w.decide(&job);
    expect(&d, Code::Permitted, "4096 accelerators");
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["allow"], true);
    assert_eq!(json["code"], "permitted");
    assert_eq!(json["remaining_flop"], 3.2e25);

    // At a provider the permit names without cluster restriction, any cluster will do.
    let hpc = params(&w.vkey, |c| c.replace("\"org-cloud\"", "\"org-hpc\""));
    let d = w.decide_as(&hpc, &w.job("eu-west-1", 2048, &w.main), &Usage::new(), NOW);
    expect(&d, Code::Permitted, "on cluster eu-west-1");
}

#[test]
fn tampered_and_foreign_tokens_are_refused() {
    let w = World::new();
    let job = w.allowed_job();
    // One signature character changed.
    let [h, p, s] = parts(&w.main.token);
    let flipped = if s.starts_with('A') { "B" } else { "A" };
    expect(
        &w.decide(&with_token(&job, format!("{h}.{p}.{flipped}{}", &s[1..]))),
        Code::PermitBadSignature,
        "signature does not verify",
    );
    // The claims edited to allow more accelerators, signature kept.
    let mut bigger = request("pmt_main", "run_main");
    bigger.max_accelerators = 100_000;
    let (bigger, _) = issue(bigger, &SigningKey::from_seed(&[1; 32]));
    let [_, p, _] = parts(&bigger);
    expect(
        &w.decide(&with_token(&job, format!("{h}.{p}.{s}"))),
        Code::PermitBadSignature,
        "altered or forged",
    );
    // Signed by another key, claiming the authority's kid in its header.
    let stranger = SigningKey::from_seed(&[9; 32]);
    let (forged, _) = issue(request("pmt_main", "run_main"), &stranger);
    let [_, fp, fs] = parts(&forged);
    expect(
        &w.decide(&with_token(&job, format!("{h}.{fp}.{fs}"))),
        Code::PermitBadSignature,
        "altered or forged",
    );
    // Signed by another key under its own kid: the gate does not know it.
    expect(
        &w.decide(&with_token(&job, forged)),
        Code::PermitUnknownKey,
        "the gate's operator must update the pinned JWKS",
    );
    // Not a JWS at all.
    expect(
        &w.decide(&with_token(&job, "eyJ.eyJ".into())),
        Code::PermitMalformed,
        "three base64url parts",
    );
}

#[test]
fn validity_window_with_and_without_clock_skew() {
    let w = World::new();
    let short = w.job("us-east-1", 2048, &w.short); // exp NOW + 100
    let future = w.job("us-east-1", 2048, &w.future); // nbf NOW + 600
    let strict = params(&w.vkey, |c| {
        c.replace("clock_skew_seconds = 60", "clock_skew_seconds = 0")
    });
    let strict = |job: &JobRequest, now: i64| w.decide_as(&strict, job, &Usage::new(), now).code;

    // Expiry: valid before exp; with 60 s of skew, until exp + 60 (exclusive).
    assert_eq!(strict(&short, NOW + 99), Code::Permitted);
    assert_eq!(strict(&short, NOW + 100), Code::PermitExpired);
    assert_eq!(w.decide_at(&short, NOW + 120).code, Code::Permitted);
    assert_eq!(w.decide_at(&short, NOW + 159).code, Code::Permitted);
    expect(
        &w.decide_at(&short, NOW + 160),
        Code::PermitExpired,
        "permit expired at 2026-01-01T00:01:40Z",
    );

    // Not before: valid from nbf; with 60 s of skew, from nbf − 60.
    assert_eq!(strict(&future, NOW + 599), Code::PermitNotYetValid);
    assert_eq!(strict(&future, NOW + 600), Code::Permitted);
    expect(
        &w.decide_at(&future, NOW + 539),
        Code::PermitNotYetValid,
        "this gate tolerates 1 min of clock skew",
    );
    assert_eq!(w.decide_at(&future, NOW + 540).code, Code::Permitted);
}

#[test]
fn log_proofs_must_prove_this_very_permit() {
    let w = World::new();
    let job = w.allowed_job();
    // A permit the authority signed but never logged, carrying a real proof of another.
    let (unlogged, _) = issue(
        request("pmt_unlogged", "run_main"),
        &SigningKey::from_seed(&[1; 32]),
    );
    expect(
        &w.decide(&with_token(&job, unlogged)),
        Code::ProofWrongPermit,
        "is for permit pmt_main, not for this permit (pmt_unlogged)",
    );
    // A proof of a log entry that is not a permit.
    expect(
        &w.decide(&with_proof(&job, w.decision_proof.clone())),
        Code::ProofWrongPermit,
        "is for a decision entry",
    );
    // The right proof path with another permit's entry in its `extra` line.
    let mut swapped = ProofBundle::parse(&w.main.proof).unwrap();
    swapped.entry = ProofBundle::parse(&w.other.proof).unwrap().entry;
    expect(
        &w.decide(&with_proof(&job, swapped.to_string())),
        Code::ProofInvalid,
        "invalid inclusion proof",
    );
    // A proof without its entry cannot show which permit it is about.
    let mut bare = ProofBundle::parse(&w.main.proof).unwrap();
    bare.entry = None;
    expect(
        &w.decide(&with_proof(&job, bare.to_string())),
        Code::ProofMalformed,
        "carries no entry",
    );
    // The same entries in a log of another name and key.
    let other = LogKey::from_seed("log.elsewhere.example/runpermit", &[4; 32]).unwrap();
    let proofs = log(&[permit_entry(&w.main.token, &w.main.claims)], &other);
    expect(
        &w.decide(&with_proof(&job, proofs[0].clone())),
        Code::ProofWrongLog,
        "no signature by the log key log.example.org/runpermit",
    );
    // A proof whose index was moved.
    let mut moved = ProofBundle::parse(&w.main.proof).unwrap();
    moved.index += 1;
    expect(
        &w.decide(&with_proof(&job, moved.to_string())),
        Code::ProofInvalid,
        "Fetch it again",
    );
}

#[test]
fn the_status_list_fails_closed_after_its_grace() {
    let job = World::new().allowed_job();
    let at = |iat: i64, grace: i64| {
        let mut w = World::new();
        let graced = params(&w.vkey, |c| {
            c.replace(
                "status_grace_seconds = 300",
                &format!("status_grace_seconds = {grace}"),
            )
        });
        w.set_params(graced);
        let list = verify_status_list(&w.status_token(1, iat, vec![]), &w.jwks).unwrap();
        w.gate.get_mut().accept_status(list).unwrap();
        w.decide(&job).code
    };
    // Fresh until exp = iat + TTL.
    assert_eq!(at(NOW - TTL + 1, 0), Code::Permitted);
    assert_eq!(at(NOW - TTL, 0), Code::StatusListStale);
    // Within the grace period past exp, then stale.
    assert_eq!(at(NOW - TTL - 299, 300), Code::Permitted);
    assert_eq!(at(NOW - TTL - 300, 300), Code::StatusListStale);
    // Small jobs do not depend on the list.
    let mut w = World::new();
    w.forget_status();
    let small = JobRequest {
        accelerators: 8,
        permit: None,
        ..job
    };
    assert_eq!(w.decide(&small).code, Code::BelowThreshold);
}

#[test]
fn an_older_status_list_cannot_undo_a_revocation() {
    let mut w = World::new();
    let job = w.allowed_job();
    let v1 = w.status_token(1, NOW - 60, vec![]);
    w.publish(
        2,
        NOW - 30,
        vec![hold("pmt_main", PermitStatus::Revoked, "weights stolen")],
    );
    expect(&w.decide(&job), Code::PermitRevoked, "weights stolen");
    // Replaying version 1 (which does not list the revocation) is refused...
    let replay = verify_status_list(&v1, &w.jwks).unwrap();
    assert_eq!(
        w.gate.get_mut().accept_status(replay),
        Err(StatusError::Rollback { have: 2, got: 1 })
    );
    // ...as is another list under version 2.
    let other_v2 = verify_status_list(&w.status_token(2, NOW - 30, vec![]), &w.jwks).unwrap();
    assert_eq!(
        w.gate.get_mut().accept_status(other_v2),
        Err(StatusError::Conflict { version: 2 })
    );
    expect(&w.decide(&job), Code::PermitRevoked, "must stop");
    // Only a newer list changes the standing.
    w.publish(3, NOW - 10, vec![]);
    assert_eq!(w.decide(&job).code, Code::Permitted);
}

#[test]
fn standing_is_per_permit_and_carries_the_reason() {
    let mut w = World::new();
    w.publish(
        2,
        NOW - 30,
        vec![
            hold("pmt_other", PermitStatus::Revoked, "other run"),
            hold("pmt_main", PermitStatus::MilestoneHold, ""),
        ],
    );
    // A milestone hold refuses new jobs even though the run is still in its first tranche.
    expect(
        &w.decide(&w.allowed_job()),
        Code::PermitMilestoneHold,
        "(no reason given)",
    );
    expect(
        &w.decide(&w.job("us-east-1", 2048, &w.other)),
        Code::PermitRevoked,
        "other run",
    );
    w.publish(
        3,
        NOW - 10,
        vec![hold("pmt_other", PermitStatus::Revoked, "other run")],
    );
    assert_eq!(w.decide(&w.allowed_job()).code, Code::Permitted);
}

#[test]
fn the_budget_is_spent_at_equality() {
    let w = World::new();
    let job = w.allowed_job();
    let at = |used: f64| {
        let usage: Usage = [("run_main", flop(used))].into_iter().collect();
        w.decide_using(&job, &usage, NOW)
    };
    let d = at(3.1e25);
    assert_eq!(d.code, Code::Permitted);
    assert_eq!(d.remaining_flop, Some(flop(3.2e25 - 3.1e25)));
    assert!(!d.message.contains("tranche 4"), "{}", d.message);
    expect(&at(3.2e25), Code::BudgetExhausted, "apply to the authority");
    expect(&at(4e25), Code::BudgetExhausted, "has used 4.00e25 FLOP");
}

#[test]
fn unusable_requests_are_request_errors() {
    let w = World::new();
    for hours in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let d = w.decide(&JobRequest {
            hours: Some(hours),
            ..w.allowed_job()
        });
        assert_eq!(d.code, Code::InvalidRequest, "{hours}");
        assert!(d.code.is_request_error());
    }
    let d = w.decide(&JobRequest {
        cluster: String::new(),
        ..w.allowed_job()
    });
    expect(&d, Code::UnknownCluster, "this gate has no cluster \"\"");
    assert!(d.code.is_request_error());
    assert!(!Code::PermitRequired.is_request_error());
}

#[test]
fn a_job_larger_than_its_cluster_is_refused() {
    let w = World::new();
    // us-east-1 has 16,384 accelerators; a permit cannot make a job bigger than the cluster.
    // A logged permit for 2^63 accelerators, as a plan asking for that once obtained.
    let mut huge = request("pmt_huge", "run_huge");
    huge.max_accelerators = 1 << 63;
    let (token, claims) = issue(huge, &w.authority);
    let proof = log(&[permit_entry(&token, &claims)], &w.log_key).remove(0);
    let huge = PermitEvidence {
        token,
        proof_bundle: proof,
    };
    let allowed = w.decide(&JobRequest {
        permit: Some(huge.clone()),
        ..w.allowed_job()
    });
    assert_eq!(allowed.code, Code::Permitted, "{}", allowed.message);
    for (accelerators, permit) in [
        (1_000_000_000, Some(huge.clone())),
        (1 << 63, Some(huge)),
        (1_000_000_000, None),
        (16_385, w.allowed_job().permit),
    ] {
        let d = w.decide(&JobRequest {
            accelerators,
            permit,
            ..w.allowed_job()
        });
        expect(
            &d,
            Code::InvalidRequest,
            &format!("requests {accelerators} accelerators, but cluster us-east-1 has 16384"),
        );
        assert!(d.code.is_request_error());
        assert_eq!(d.permit_id, None, "refused before any permit is read");
    }
    // The whole cluster is a possible job.
    let whole = w.decide(&JobRequest {
        accelerators: 16_384,
        permit: None,
        ..w.allowed_job()
    });
    assert_eq!(whole.code, Code::PermitRequired, "{}", whole.message);
}

#[test]
fn status_lists_cannot_be_forged_into_the_cache() {
    let w = World::new();
    let stranger = SigningKey::from_seed(&[9; 32]);
    let forged = runpermit_permit::sign_status_list(
        &StatusListClaims::new(common::AUTHORITY, NOW, TTL, 99, vec![]),
        &stranger,
    );
    assert!(matches!(
        verify_status_list(&forged, &w.jwks),
        Err(StatusListError::Verify(_))
    ));
    // A permit is not a status list either.
    assert!(matches!(
        verify_status_list(&w.main.token, &w.jwks),
        Err(StatusListError::Verify(_))
    ));
}
