//! The time-independent checks of a permit's evidence (its signature and claims, its log
//! proof), computed afresh ([`Uncached`]) or remembered by token and proof bundle
//! ([`EvidenceCache`]): the cache changes the work, never the answer.

use std::collections::HashMap;
use std::fmt;

use runpermit_log::{
    CheckpointError, LogEntry, PolicyError, ProofBundle, ProofError, WitnessPolicy,
};
use runpermit_permit::{Jwks, PermitClaims, VerifyError, verify_permit_signature};

use crate::decision::{Code, PermitEvidence};
use crate::gate::TrustAnchors;

/// The time-independent checks of a permit's evidence, cached or not.
pub(crate) trait EvidenceChecks {
    fn signature(&mut self, token: &str, jwks: &Jwks) -> Result<PermitClaims, VerifyError>;
    fn proof(
        &mut self,
        evidence: &PermitEvidence,
        token: &str,
        claims: &PermitClaims,
        anchors: &TrustAnchors,
    ) -> Result<(), (Code, String)>;
}

/// Every check computed afresh.
pub(crate) struct Uncached;

impl EvidenceChecks for Uncached {
    fn signature(&mut self, token: &str, jwks: &Jwks) -> Result<PermitClaims, VerifyError> {
        verify_permit_signature(token, jwks)
    }

    fn proof(
        &mut self,
        evidence: &PermitEvidence,
        token: &str,
        claims: &PermitClaims,
        anchors: &TrustAnchors,
    ) -> Result<(), (Code, String)> {
        check_proof(evidence, token, claims, anchors)
    }
}

/// Results of the time-independent checks, by permit token and proof bundle. A [`Gate`]'s
/// own, so always for its one pinned JWKS and log key (which never change in a gate).
/// Bounded: when full, it starts over.
///
/// [`Gate`]: crate::Gate
#[derive(Clone, Debug, Default)]
pub(crate) struct EvidenceCache {
    signatures: HashMap<String, Result<PermitClaims, VerifyError>>,
    proofs: HashMap<(String, String), Result<(), (Code, String)>>,
}

impl EvidenceCache {
    /// Entries kept before the cache starts over: far more permits than a provider runs.
    pub(crate) const CAPACITY: usize = 10_000;
}

impl EvidenceChecks for EvidenceCache {
    fn signature(&mut self, token: &str, jwks: &Jwks) -> Result<PermitClaims, VerifyError> {
        if let Some(cached) = self.signatures.get(token) {
            return cached.clone();
        }
        if self.signatures.len() >= Self::CAPACITY {
            self.signatures.clear();
        }
        let result = verify_permit_signature(token, jwks);
        self.signatures.insert(token.to_owned(), result.clone());
        result
    }

    fn proof(
        &mut self,
        evidence: &PermitEvidence,
        token: &str,
        claims: &PermitClaims,
        anchors: &TrustAnchors,
    ) -> Result<(), (Code, String)> {
        let key = (token.to_owned(), evidence.proof_bundle.clone());
        if let Some(cached) = self.proofs.get(&key) {
            return cached.clone();
        }
        if self.proofs.len() >= Self::CAPACITY {
            self.proofs.clear();
        }
        let result = check_proof(evidence, token, claims, anchors);
        self.proofs.insert(key, result.clone());
        result
    }
}

/// Checks that the evidence's proof bundle proves, under the pinned log key, the
/// `permit_issued` entry whose token is exactly `token`, and, when the gate has a witness
/// policy, that the bundle's checkpoint is cosigned by a quorum of its witnesses.
pub(crate) fn check_proof(
    evidence: &PermitEvidence,
    token: &str,
    claims: &PermitClaims,
    anchors: &TrustAnchors,
) -> Result<(), (Code, String)> {
    let log_vkey = anchors.log_vkey.as_str();
    let fetch = format!(
        "`runpermit permit get {} --proof permit.tlog-proof`",
        claims.jti
    );
    if evidence.proof_bundle.trim().is_empty() {
        return Err((
            Code::ProofMissing,
            format!(
                "permit {} comes without its log proof: a permit counts only with proof that it \
                 is in the public log. Attach the proof bundle ({fetch})",
                claims.jti
            ),
        ));
    }
    let malformed = |e: &dyn fmt::Display| {
        (
            Code::ProofMalformed,
            format!(
                "the attached log proof cannot be read ({e}). Attach the c2sp.org/tlog-proof@v1 \
                 bundle of permit {} as the authority serves it ({fetch})",
                claims.jti
            ),
        )
    };
    let bundle = ProofBundle::parse(&evidence.proof_bundle).map_err(|e| malformed(&e))?;
    let proved = bundle.verify_entry(log_vkey).map_err(|e| match e {
        ProofError::Malformed(_) | ProofError::NoEntry | ProofError::Entry(_) => malformed(&e),
        ProofError::Checkpoint(
            CheckpointError::NotSignedByKey { .. } | CheckpointError::OriginMismatch { .. },
        ) => (
            Code::ProofWrongLog,
            format!(
                "the attached log proof is not from the log this gate trusts ({e}). Attach the \
                 proof bundle from the permit's authority ({fetch})"
            ),
        ),
        ProofError::Checkpoint(
            CheckpointError::BadSignature | CheckpointError::Malformed(_) | CheckpointError::Key(_),
        )
        | ProofError::Invalid { .. }
        | ProofError::WrongEntry => (
            Code::ProofInvalid,
            format!(
                "the attached log proof does not verify ({e}): it was altered or damaged. Fetch it \
                 again ({fetch})"
            ),
        ),
    })?;
    match proved.entry {
        LogEntry::PermitIssued { token: logged, .. } if logged == token => {}
        LogEntry::PermitIssued { permit_id, .. } => {
            return Err((
                Code::ProofWrongPermit,
                format!(
                    "the attached log proof is for permit {permit_id}, not for this permit ({}). Attach \
                     this permit's own proof ({fetch})",
                    claims.jti
                ),
            ));
        }
        other => {
            return Err((
                Code::ProofWrongPermit,
                format!(
                    "the attached log proof is for a {} entry, not for this permit's permit_issued \
                     entry. Attach this permit's own proof ({fetch})",
                    other.type_name()
                ),
            ));
        }
    }
    match &anchors.witness_policy {
        Some(policy) => check_witnessed(policy, &bundle.checkpoint, log_vkey, claims, &fetch),
        None => Ok(()),
    }
}

/// The bundle's checkpoint (already verified under the log key) against the gate's witness
/// policy.
fn check_witnessed(
    policy: &WitnessPolicy,
    note: &str,
    log_vkey: &str,
    claims: &PermitClaims,
    fetch: &str,
) -> Result<(), (Code, String)> {
    let refetch = format!(
        "Once the witnesses have cosigned the log's checkpoint, fetch the proof again \
         ({fetch}) and attach it; the authority's /log/checkpoint shows the cosignatures it has"
    );
    match policy.verify_checkpoint(note, log_vkey) {
        Ok(_) => Ok(()),
        Err(PolicyError::QuorumNotMet {
            cosigned_by,
            missing,
        }) => Err((
            Code::ProofNotWitnessed,
            format!(
                "the log proof of permit {} is under a checkpoint that this gate's witness policy \
                 does not accept: cosigned by {}, still needed: {}. {refetch}",
                claims.jti,
                if cosigned_by.is_empty() {
                    "no witness of the policy".to_owned()
                } else {
                    cosigned_by.join(", ")
                },
                missing.join(", ")
            ),
        )),
        Err(e @ PolicyError::UnknownLog { .. }) => Err((
            Code::ProofWrongLog,
            format!(
                "the gate's witness policy does not list the pinned log ({e}); the gate's \
                 operator fixes witness_policy or log_vkey"
            ),
        )),
        Err(e) => Err((
            Code::ProofNotWitnessed,
            format!(
                "the log proof of permit {} is under a checkpoint whose cosignatures this gate \
                 cannot accept ({e}). {refetch}",
                claims.jti
            ),
        )),
    }
}
