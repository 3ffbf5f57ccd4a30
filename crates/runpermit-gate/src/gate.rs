//! [`Gate`]: one gate's configuration, trust anchors, held status list and evidence cache, and
//! the decision it makes with them.

use runpermit_log::WitnessPolicy;
use runpermit_permit::{Jwks, StatusListClaims, verify_status_list};

use crate::config::GateParams;
use crate::decide;
use crate::decision::{Decision, JobRequest, Usage};
use crate::evidence::{EvidenceCache, Uncached};
use crate::status::{StatusError, StatusListCache};

/// What a gate trusts, pinned out of band and never taken from a token: the authority's
/// keys, which sign permits and status lists, and the transparency log's verifier key,
/// which signs the checkpoints that permits' proofs are under.
#[derive(Clone, Debug, PartialEq)]
pub struct TrustAnchors {
    /// The authority's JWKS (its `/.well-known/jwks.json`).
    pub jwks: Jwks,
    /// The log's verifier key (`<name>+<key id>+<base64 key>`, the authority's `/log/vkey`).
    pub log_vkey: String,
    /// The witness policy (the configuration's `witness_policy`), if any: a permit's proof
    /// must then be under a checkpoint cosigned by a quorum of its witnesses. `None`: the
    /// log key's signature is enough.
    pub witness_policy: Option<WitnessPolicy>,
}

/// A gate: its validated configuration, its trust anchors, the newest status list it has
/// verified and the results of the time-independent checks it has made. Pure: no IO, no
/// clock; the caller reads files, fetches lists and passes `now`.
///
/// The anchors are fixed for the gate's life, so the remembered checks always belong to
/// them: a gate with other keys is another `Gate`.
#[derive(Clone, Debug)]
pub struct Gate {
    params: GateParams,
    anchors: TrustAnchors,
    status: StatusListCache,
    evidence: EvidenceCache,
}

impl Gate {
    /// A gate with no status list yet (so jobs that need a permit are refused until one is
    /// accepted), treating a list as fresh until the configuration's
    /// `status_grace_seconds` past its `exp`.
    pub fn new(params: GateParams, anchors: TrustAnchors) -> Gate {
        Gate {
            status: StatusListCache::new(params.status_grace_seconds()),
            params,
            anchors,
            evidence: EvidenceCache::default(),
        }
    }

    /// The validated configuration.
    pub fn params(&self) -> &GateParams {
        &self.params
    }

    /// The pinned keys.
    pub fn anchors(&self) -> &TrustAnchors {
        &self.anchors
    }

    /// The held status list and its freshness.
    pub fn status(&self) -> &StatusListCache {
        &self.status
    }

    /// Verifies a status list token with the pinned JWKS (runpermit-permit's
    /// [`verify_status_list`]); does not accept it.
    pub fn verify_status(&self, token: &str) -> Result<StatusListClaims, StatusError> {
        Ok(verify_status_list(token.trim(), &self.anchors.jwks)?)
    }

    /// Takes `claims` as the held list if it is sound and newer than the held one
    /// ([`StatusListCache::accept`]: never an older version, nor other content under the
    /// same version). On any error the held list stays as it was.
    pub fn accept_status(&mut self, claims: StatusListClaims) -> Result<(), StatusError> {
        self.status.accept(claims)
    }

    /// [`verify_status`](Self::verify_status), then [`accept_status`](Self::accept_status).
    pub fn accept_status_token(&mut self, token: &str) -> Result<(), StatusError> {
        let claims = self.verify_status(token)?;
        self.accept_status(claims)
    }

    /// Decides whether `job` may run on this provider at `now` (unix seconds), with the
    /// gate's configuration, trust anchors and held status list; `usage` is the cumulative
    /// compute per run known here. The checks, in order (the first failure decides):
    ///
    /// 1. the cluster is configured (`unknown_cluster`), the duration, if given, is a positive
    ///    number, and the job requests no more accelerators than the cluster has
    ///    (`invalid_request`: no permit, however large its `max_accelerators`, makes a job bigger
    ///    than its cluster);
    /// 2. below every configured threshold → allowed, untouched (`below_threshold`);
    /// 3. a permit is attached (`permit_required`);
    /// 4. the permit verifies with the pinned JWKS and the configured clock skew (`permit_malformed`,
    ///    `permit_unknown_key`, `permit_bad_signature`, `permit_not_yet_valid`,
    ///    `permit_expired`);
    /// 5. it lists this provider (`provider_not_permitted`) and this cluster
    ///    (`cluster_not_permitted`), and the job requests no more than `max_accelerators`
    ///    (`too_many_accelerators`; the gate sees one job, not the run's other jobs);
    /// 6. its proof bundle verifies under the pinned log key and proves the `permit_issued` entry whose
    ///    token is exactly this permit (`proof_missing`, `proof_malformed`, `proof_wrong_log`,
    ///    `proof_invalid`, `proof_wrong_permit`) and, with a witness policy, that the
    ///    bundle's checkpoint is cosigned by a quorum of its witnesses (`proof_not_witnessed`);
    /// 7. the status list is present and fresh, else fail closed (`status_list_missing`,
    ///    `status_list_stale`), and does not name the permit (`permit_suspended`,
    ///    `permit_revoked`, `permit_milestone_hold`, `permit_paused`);
    /// 8. the run's cumulative compute known here is below the permit's `flop_budget`
    ///    (`budget_exhausted`);
    ///
    /// and then the job is `permitted`, with the budget that remains.
    ///
    /// A milestone hold refuses every new job, whatever the usage: this gate cannot tell which
    /// tranches the authority has released, so the authority's list is what stops a run at a
    /// tranche's end. The usage known here is this provider's alone; the authority's list
    /// accounts for the other providers.
    ///
    /// The time-independent checks (the permit's signature and claims, its log proof) are
    /// remembered by token and proof bundle, so a permit seen before costs microseconds;
    /// every time-dependent check (validity window, standing, the list's freshness, budget)
    /// runs at every call. [`decide_uncached`](Self::decide_uncached) decides the same.
    pub fn decide(&mut self, job: &JobRequest, usage: &Usage, now: i64) -> Decision {
        let Gate {
            params,
            anchors,
            status,
            evidence,
        } = self;
        decide::decide(params, anchors, status, job, usage, now, evidence)
    }

    /// [`decide`](Self::decide) with every check made afresh and nothing remembered: the same
    /// decision, for a one-off check or to compare with the cached one.
    pub fn decide_uncached(&self, job: &JobRequest, usage: &Usage, now: i64) -> Decision {
        decide::decide(
            &self.params,
            &self.anchors,
            &self.status,
            job,
            usage,
            now,
            &mut Uncached,
        )
    }
}
