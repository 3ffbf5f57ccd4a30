//! What a gate is asked and what it answers: [`JobRequest`] (with the [`PermitEvidence`] a job
//! carries), the [`Usage`] known here, and the [`Decision`] with its stable [`Code`]. The
//! codes are documented in the crate's top-level table; [`Gate::decide`](crate::Gate::decide)
//! makes the decision.

use std::collections::HashMap;
use std::fmt;

use runpermit_compute::Flop;
use runpermit_permit::{PermitClaims, PermitStatus};
use serde::{Deserialize, Serialize};

/// A job a scheduler asks the gate about.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// The cluster the job is submitted to: a `[[clusters]]` name of the configuration.
    pub cluster: String,
    /// How many accelerators the job requests (0 for a job that uses none).
    pub accelerators: u64,
    /// The job's expected duration in hours (its time limit), if the scheduler knows it: a
    /// positive number. Needed to judge a job against `min_projected_flop`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<f64>,
    /// The permit the job runs under, if the job owner attached one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit: Option<PermitEvidence>,
}

/// A permit as a job carries it: the token and the proof that it is in the public log.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PermitEvidence {
    /// The permit: the compact JWS, as `runpermit permit get` writes it (surrounding
    /// whitespace is ignored).
    pub token: String,
    /// Its log inclusion proof: the `c2sp.org/tlog-proof@v1` text that
    /// `runpermit permit get --proof` writes, whose `extra` line carries the permit's
    /// `permit_issued` entry. Empty when the job owner has none.
    pub proof_bundle: String,
}

/// Cumulative compute per run known to this gate (metered locally), in FLOP. A run the gate
/// has not seen has used nothing here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    by_run: HashMap<String, Flop>,
}

impl Usage {
    /// No usage.
    pub fn new() -> Usage {
        Usage::default()
    }

    /// Sets run `run_id`'s cumulative compute.
    pub fn set(&mut self, run_id: impl Into<String>, cumulative: Flop) {
        self.by_run.insert(run_id.into(), cumulative);
    }

    /// Run `run_id`'s cumulative compute (zero if unknown).
    pub fn cumulative(&self, run_id: &str) -> Flop {
        self.by_run.get(run_id).copied().unwrap_or(Flop::ZERO)
    }
}

impl<S: Into<String>> FromIterator<(S, Flop)> for Usage {
    fn from_iter<I: IntoIterator<Item = (S, Flop)>>(iter: I) -> Usage {
        Usage {
            by_run: iter.into_iter().map(|(k, v)| (k.into(), v)).collect(),
        }
    }
}

/// Why a job is allowed or refused: a stable machine code. Serialized in snake_case
/// (`permit_expired`); the crate documentation's table says what each means and what to do.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Allowed: the job is below every threshold and needs no permit.
    BelowThreshold,
    /// Allowed: the job runs under a valid, public, in-good-standing permit with budget left.
    Permitted,
    /// The request itself is unusable: a duration that is not a positive number, or more
    /// accelerators than the cluster has.
    InvalidRequest,
    /// The request names a cluster this gate does not know.
    UnknownCluster,
    /// The job needs a permit and none is attached.
    PermitRequired,
    /// The attached token is not a runpermit permit (structure, `alg`, `typ`, claims).
    PermitMalformed,
    /// The permit is signed by a key the gate does not pin.
    PermitUnknownKey,
    /// The permit's signature does not verify: altered or forged.
    PermitBadSignature,
    /// The permit's `nbf` (or `iat`) is in the future, beyond the tolerated skew.
    PermitNotYetValid,
    /// The permit's `exp` has passed, beyond the tolerated skew.
    PermitExpired,
    /// The permit does not list this provider.
    ProviderNotPermitted,
    /// The permit lists this provider but not this cluster.
    ClusterNotPermitted,
    /// The job requests more accelerators than the permit's `max_accelerators`.
    TooManyAccelerators,
    /// No log proof is attached.
    ProofMissing,
    /// The proof bundle cannot be read, or carries no readable entry.
    ProofMalformed,
    /// The proof's checkpoint is not signed by the pinned log key.
    ProofWrongLog,
    /// The proof does not verify: altered checkpoint, bad signature, or broken path.
    ProofInvalid,
    /// The proof verifies, but for another log entry than this permit's `permit_issued`.
    ProofWrongPermit,
    /// The gate has a witness policy and the proof's checkpoint lacks its quorum of valid
    /// witness cosignatures.
    ProofNotWitnessed,
    /// The gate has no status list yet (fail closed).
    StatusListMissing,
    /// The gate's status list is past its expiry and grace (fail closed).
    StatusListStale,
    /// The status list shows the permit suspended.
    PermitSuspended,
    /// The status list shows the permit revoked.
    PermitRevoked,
    /// The status list shows the permit on hold for a milestone evaluation.
    PermitMilestoneHold,
    /// The status list shows the run paused.
    PermitPaused,
    /// The run's cumulative compute has reached the permit's FLOP budget.
    BudgetExhausted,
}

impl Code {
    /// Every code, allows first, then refusals in the order [`Gate::decide`](crate::Gate::decide) checks them.
    pub const ALL: [Code; 26] = [
        Code::BelowThreshold,
        Code::Permitted,
        Code::InvalidRequest,
        Code::UnknownCluster,
        Code::PermitRequired,
        Code::PermitMalformed,
        Code::PermitUnknownKey,
        Code::PermitBadSignature,
        Code::PermitNotYetValid,
        Code::PermitExpired,
        Code::ProviderNotPermitted,
        Code::ClusterNotPermitted,
        Code::TooManyAccelerators,
        Code::ProofMissing,
        Code::ProofMalformed,
        Code::ProofWrongLog,
        Code::ProofInvalid,
        Code::ProofWrongPermit,
        Code::ProofNotWitnessed,
        Code::StatusListMissing,
        Code::StatusListStale,
        Code::PermitSuspended,
        Code::PermitRevoked,
        Code::PermitMilestoneHold,
        Code::PermitPaused,
        Code::BudgetExhausted,
    ];

    /// The code as serialized (`permit_expired`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BelowThreshold => "below_threshold",
            Code::Permitted => "permitted",
            Code::InvalidRequest => "invalid_request",
            Code::UnknownCluster => "unknown_cluster",
            Code::PermitRequired => "permit_required",
            Code::PermitMalformed => "permit_malformed",
            Code::PermitUnknownKey => "permit_unknown_key",
            Code::PermitBadSignature => "permit_bad_signature",
            Code::PermitNotYetValid => "permit_not_yet_valid",
            Code::PermitExpired => "permit_expired",
            Code::ProviderNotPermitted => "provider_not_permitted",
            Code::ClusterNotPermitted => "cluster_not_permitted",
            Code::TooManyAccelerators => "too_many_accelerators",
            Code::ProofMissing => "proof_missing",
            Code::ProofMalformed => "proof_malformed",
            Code::ProofWrongLog => "proof_wrong_log",
            Code::ProofInvalid => "proof_invalid",
            Code::ProofWrongPermit => "proof_wrong_permit",
            Code::ProofNotWitnessed => "proof_not_witnessed",
            Code::StatusListMissing => "status_list_missing",
            Code::StatusListStale => "status_list_stale",
            Code::PermitSuspended => "permit_suspended",
            Code::PermitRevoked => "permit_revoked",
            Code::PermitMilestoneHold => "permit_milestone_hold",
            Code::PermitPaused => "permit_paused",
            Code::BudgetExhausted => "budget_exhausted",
        }
    }

    /// Whether the code admits the job.
    pub fn allows(self) -> bool {
        matches!(self, Code::BelowThreshold | Code::Permitted)
    }

    /// Whether the code says the request itself was unusable (the caller's mistake, not a
    /// verdict on the job's permit): `invalid_request` and `unknown_cluster`. Still a
    /// refusal, like every code that does not [`allow`](Self::allows).
    pub fn is_request_error(self) -> bool {
        matches!(self, Code::InvalidRequest | Code::UnknownCluster)
    }

    pub(crate) fn for_status(status: PermitStatus) -> Code {
        match status {
            PermitStatus::Suspended => Code::PermitSuspended,
            PermitStatus::Revoked => Code::PermitRevoked,
            PermitStatus::MilestoneHold => Code::PermitMilestoneHold,
            PermitStatus::Paused => Code::PermitPaused,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The gate's answer, as `runpermit gate check --json` and the HTTP endpoint write it:
/// `{"allow", "code", "message", "permit_id"?, "run_id"?, "remaining_flop"?}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Decision {
    /// Whether the job may run.
    pub allow: bool,
    /// Why, as a stable machine code.
    pub code: Code,
    /// Why, for the job owner: what was found and what to do.
    pub message: String,
    /// The permit's id (`jti`), once its signature has verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_id: Option<String>,
    /// The run's id (the permit's `sub`), once the permit's signature has verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// FLOP left in the permit's budget after the run's cumulative compute known here; set
    /// when the job is permitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_flop: Option<Flop>,
}

impl Decision {
    pub(crate) fn new(code: Code, message: String) -> Decision {
        Decision {
            allow: code.allows(),
            code,
            message,
            permit_id: None,
            run_id: None,
            remaining_flop: None,
        }
    }

    pub(crate) fn about(mut self, claims: &PermitClaims) -> Decision {
        self.permit_id = Some(claims.jti.clone());
        self.run_id = Some(claims.sub.clone());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_documented() {
        for code in Code::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::json!(code.as_str()));
            assert_eq!(serde_json::from_value::<Code>(json).unwrap(), code);
            assert_eq!(code.to_string(), code.as_str());
        }
        let allows: Vec<Code> = Code::ALL.into_iter().filter(|c| c.allows()).collect();
        assert_eq!(allows, [Code::BelowThreshold, Code::Permitted]);
    }

    #[test]
    fn the_crate_documentation_lists_every_code_once() {
        let lib = include_str!("lib.rs");
        for code in Code::ALL {
            let row = format!("//! | `{}` |", code.as_str());
            assert_eq!(
                lib.matches(&row).count(),
                1,
                "lib.rs's code table must have one row for {code}"
            );
        }
        let rows = lib.lines().filter(|l| l.starts_with("//! | `")).count();
        assert_eq!(rows, Code::ALL.len(), "lib.rs's code table has extra rows");
    }

    #[test]
    fn decisions_serialize_without_absent_fields() {
        let d = Decision::new(Code::PermitRequired, "attach a permit".into());
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"allow": false, "code": "permit_required", "message": "attach a permit"})
        );
        let d = Decision {
            permit_id: Some("pmt_1".into()),
            run_id: Some("run_1".into()),
            remaining_flop: Some(Flop::new(2.5e24).unwrap()),
            ..Decision::new(Code::Permitted, "ok".into())
        };
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "allow": true, "code": "permitted", "message": "ok",
                "permit_id": "pmt_1", "run_id": "run_1", "remaining_flop": 2.5e24
            })
        );
        assert_eq!(serde_json::from_value::<Decision>(json).unwrap(), d);
    }

    #[test]
    fn job_requests_refuse_unknown_fields() {
        let job: JobRequest = serde_json::from_value(serde_json::json!({
            "cluster": "us-east-1", "accelerators": 8, "hours": 2.5,
            "permit": {"token": "a.b.c", "proof_bundle": ""}
        }))
        .unwrap();
        assert_eq!(job.hours, Some(2.5));
        let err = serde_json::from_value::<JobRequest>(serde_json::json!({
            "cluster": "us-east-1", "accelerators": 8, "gpus": 8
        }))
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `gpus`"), "{err}");
    }

    #[test]
    fn usage_defaults_to_zero() {
        let mut usage: Usage = [("run_1", Flop::new(1e24).unwrap())].into_iter().collect();
        assert_eq!(usage.cumulative("run_1").get(), 1e24);
        assert_eq!(usage.cumulative("run_2"), Flop::ZERO);
        usage.set("run_2", Flop::new(5.0).unwrap());
        assert_eq!(usage.cumulative("run_2").get(), 5.0);
        assert_eq!(Usage::new(), Usage::default());
    }
}
