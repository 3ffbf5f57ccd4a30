//! A gate with a witness policy: a permit's proof counts only under a checkpoint cosigned by
//! a quorum of the policy's witnesses; without one, nothing changes.

mod common;

use common::{World, cosigned, two_of_three, witnesses};
use runpermit_gate::{Code, JobRequest};
use runpermit_log::{CosignerKey, WitnessPolicy};

fn with_proof(job: &JobRequest, proof: String) -> JobRequest {
    let mut job = job.clone();
    job.permit.as_mut().unwrap().proof_bundle = proof;
    job
}

#[test]
fn without_a_policy_no_cosignature_is_required() {
    let w = World::new();
    assert_eq!(w.decide(&w.allowed_job()).code, Code::Permitted);
    // Cosignatures, even by unknown witnesses, change nothing.
    let [w1, ..] = witnesses();
    let job = with_proof(&w.allowed_job(), cosigned(&w.main.proof, &[&w1]));
    assert_eq!(w.decide(&job).code, Code::Permitted);
}

#[test]
fn a_quorum_of_cosignatures_is_required_and_missing_witnesses_are_named() {
    let mut w = World::new();
    w.require_witnesses(Some(two_of_three(&w.vkey)));
    let [w1, w2, w3] = witnesses();
    let job = w.allowed_job();

    let refused = w.decide(&job);
    assert_eq!(refused.code, Code::ProofNotWitnessed, "{}", refused.message);
    assert!(!refused.allow);
    for needed in [
        "cosigned by no witness of the policy",
        "still needed: w1.example, w2.example, w3.example",
        "runpermit permit get pmt_main --proof permit.tlog-proof",
    ] {
        assert!(refused.message.contains(needed), "{}", refused.message);
    }
    let one = w.decide(&with_proof(&job, cosigned(&w.main.proof, &[&w2])));
    assert_eq!(one.code, Code::ProofNotWitnessed);
    assert!(
        one.message
            .contains("cosigned by w2.example, still needed: w1.example, w3.example"),
        "{}",
        one.message
    );
    for pair in [[&w1, &w2], [&w3, &w1], [&w2, &w3]] {
        let d = w.decide(&with_proof(&job, cosigned(&w.main.proof, &pair)));
        assert_eq!(d.code, Code::Permitted, "{}", d.message);
    }
    let all = w.decide(&with_proof(&job, cosigned(&w.main.proof, &[&w1, &w2, &w3])));
    assert_eq!(all.code, Code::Permitted);

    // A cosignature by someone outside the policy counts for nothing.
    let stranger = CosignerKey::from_seed("stranger.example", &[0x77; 32]).unwrap();
    let d = w.decide(&with_proof(
        &job,
        cosigned(&w.main.proof, &[&w1, &stranger]),
    ));
    assert_eq!(d.code, Code::ProofNotWitnessed);
}

#[test]
fn a_forged_cosignature_is_refused_naming_the_witness() {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    let mut w = World::new();
    w.require_witnesses(Some(two_of_three(&w.vkey)));
    let [w1, w2, w3] = witnesses();
    // w2's signature bytes altered: w1 and w3 alone would meet the quorum, but a policy
    // witness's line that does not verify is an error, not ignored.
    let good = cosigned(&w.main.proof, &[&w1, &w2, &w3]);
    let line = good
        .lines()
        .find(|l| l.starts_with("— w2.example "))
        .unwrap();
    let (head, b64) = line.rsplit_once(' ').unwrap();
    let mut raw = STANDARD.decode(b64).unwrap();
    raw[30] ^= 1;
    let forged = good.replace(line, &format!("{head} {}", STANDARD.encode(raw)));
    assert_ne!(forged, good);
    let d = w.decide(&with_proof(&w.allowed_job(), forged));
    assert_eq!(d.code, Code::ProofNotWitnessed, "{}", d.message);
    assert!(d.message.contains("\"w2.example\""), "{}", d.message);
}

#[test]
fn cached_evidence_never_masks_a_policy_change() {
    let mut w = World::new();
    let job = w.allowed_job();
    let one_cosignature = with_proof(&job, cosigned(&w.main.proof, &[&witnesses()[0]]));
    // Without a policy, the gate admits (and remembers) both proofs.
    assert_eq!(w.decide(&job).code, Code::Permitted);
    assert_eq!(w.decide(&one_cosignature).code, Code::Permitted);
    // Restarted with a policy: the same proofs are refused, however warm the old cache was.
    w.require_witnesses(Some(two_of_three(&w.vkey)));
    assert_eq!(w.decide(&job).code, Code::ProofNotWitnessed);
    assert_eq!(w.decide(&one_cosignature).code, Code::ProofNotWitnessed);
    // And back: dropping the policy admits them again.
    w.require_witnesses(None);
    assert_eq!(w.decide(&job).code, Code::Permitted);
    // `quorum none`: a policy that lists witnesses but requires none admits it too.
    w.require_witnesses(Some(WitnessPolicy::parse("quorum none\n").unwrap()));
    assert_eq!(w.decide(&job).code, Code::Permitted);
    assert!(w.gate.borrow().anchors().witness_policy.is_some());
}

#[test]
fn a_policy_that_does_not_list_the_pinned_log_is_an_operator_error() {
    let mut w = World::new();
    let other = runpermit_log::LogKey::from_seed("log.example.org/runpermit", &[9; 32]).unwrap();
    w.require_witnesses(Some(two_of_three(&other.verifier_key())));
    let [w1, w2, _] = witnesses();
    let d = w.decide(&with_proof(
        &w.allowed_job(),
        cosigned(&w.main.proof, &[&w1, &w2]),
    ));
    assert_eq!(d.code, Code::ProofWrongLog, "{}", d.message);
    assert!(d.message.contains("witness_policy"), "{}", d.message);
}
