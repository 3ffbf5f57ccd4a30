//! The admission decision for one job: [`decide`], pure (no IO, no clock), in microseconds.
//!
//! The checks run in a fixed order and the first failure decides, so that a job owner sees
//! the most basic problem first. The codes are stable, documented in the crate's top-level
//! table, and each refusal's message names what to do.

use std::collections::HashMap;
use std::fmt;

use runpermit_compute::Flop;
use runpermit_log::{CheckpointError, LogEntry, ProofBundle, ProofError};
use runpermit_permit::{
    Jwks, PermitClaims, PermitStatus, VerifyError, check_permit_validity, verify_permit_signature,
};
use serde::{Deserialize, Serialize};

use crate::config::{ClusterParams, GateParams};
use crate::status::{Freshness, StatusListCache};
use crate::text::{duration, utc};

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
    /// Every code, allows first, then refusals in the order [`decide`] checks them.
    pub const ALL: [Code; 25] = [
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

    /// Whether the code says the request was unusable (the caller's mistake, not a verdict
    /// on the job): `runpermit gate check` exits 2 for these, 1 for other refusals.
    pub fn is_request_error(self) -> bool {
        matches!(self, Code::InvalidRequest | Code::UnknownCluster)
    }

    fn for_status(status: PermitStatus) -> Code {
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
    fn new(code: Code, message: String) -> Decision {
        Decision {
            allow: code.allows(),
            code,
            message,
            permit_id: None,
            run_id: None,
            remaining_flop: None,
        }
    }

    fn about(mut self, claims: &PermitClaims) -> Decision {
        self.permit_id = Some(claims.jti.clone());
        self.run_id = Some(claims.sub.clone());
        self
    }
}

/// Decides whether `job` may run on this provider at `now` (unix seconds).
///
/// `params` is the validated configuration, `jwks` the authority's pinned keys, `log_vkey` the
/// pinned log verifier key, `status` the newest verified status list, `usage` the cumulative
/// compute per run known here. The checks, in order (the first failure decides):
///
/// 1. the cluster is configured (`unknown_cluster`), the duration, if given, is a positive
///    number, and the job requests no more accelerators than the cluster has
///    (`invalid_request`: no permit, however large its `max_accelerators`, makes a job bigger
///    than its cluster);
/// 2. below every configured threshold → allowed, untouched (`below_threshold`);
/// 3. a permit is attached (`permit_required`);
/// 4. the permit verifies with `jwks` and the configured clock skew (`permit_malformed`,
///    `permit_unknown_key`, `permit_bad_signature`, `permit_not_yet_valid`,
///    `permit_expired`);
/// 5. it lists this provider (`provider_not_permitted`) and this cluster
///    (`cluster_not_permitted`), and the job requests no more than `max_accelerators`
///    (`too_many_accelerators`; the gate sees one job, not the run's other jobs);
/// 6. its proof bundle verifies under `log_vkey` and proves the `permit_issued` entry whose
///    token is exactly this permit (`proof_missing`, `proof_malformed`, `proof_wrong_log`,
///    `proof_invalid`, `proof_wrong_permit`);
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
pub fn decide(
    params: &GateParams,
    job: &JobRequest,
    jwks: &Jwks,
    log_vkey: &str,
    status: &StatusListCache,
    usage: &Usage,
    now: i64,
) -> Decision {
    decide_with(
        params,
        job,
        jwks,
        log_vkey,
        status,
        usage,
        now,
        &mut Uncached,
    )
}

/// [`decide`], reusing the time-independent checks (the permit's signature and claims, the
/// log proof) from `cache` when the same permit and proof were seen before. The decision is
/// the same as [`decide`]'s; only the work differs. Every time-dependent check (validity
/// window, standing, freshness of the status list, budget) runs at every call.
#[allow(
    clippy::too_many_arguments,
    reason = "decide's arguments plus the cache"
)]
pub fn decide_cached(
    params: &GateParams,
    job: &JobRequest,
    jwks: &Jwks,
    log_vkey: &str,
    status: &StatusListCache,
    usage: &Usage,
    now: i64,
    cache: &mut EvidenceCache,
) -> Decision {
    cache.bind(jwks, log_vkey);
    decide_with(params, job, jwks, log_vkey, status, usage, now, cache)
}

/// The time-independent checks of a permit's evidence, cached or not.
trait EvidenceChecks {
    fn signature(&mut self, token: &str, jwks: &Jwks) -> Result<PermitClaims, VerifyError>;
    fn proof(
        &mut self,
        evidence: &PermitEvidence,
        token: &str,
        claims: &PermitClaims,
        log_vkey: &str,
    ) -> Result<(), (Code, String)>;
}

struct Uncached;

impl EvidenceChecks for Uncached {
    fn signature(&mut self, token: &str, jwks: &Jwks) -> Result<PermitClaims, VerifyError> {
        verify_permit_signature(token, jwks)
    }

    fn proof(
        &mut self,
        evidence: &PermitEvidence,
        token: &str,
        claims: &PermitClaims,
        log_vkey: &str,
    ) -> Result<(), (Code, String)> {
        check_proof(evidence, token, claims, log_vkey)
    }
}

/// Results of the time-independent checks, by permit token and proof bundle, for one pinned
/// JWKS and log key (a change of either empties it). Bounded: when full, it starts over.
#[derive(Debug, Default)]
pub struct EvidenceCache {
    bound_to: Option<(Jwks, String)>,
    signatures: HashMap<String, Result<PermitClaims, VerifyError>>,
    proofs: HashMap<(String, String), Result<(), (Code, String)>>,
}

impl EvidenceCache {
    /// Entries kept before the cache starts over: far more permits than a provider runs.
    pub const CAPACITY: usize = 10_000;

    /// An empty cache.
    pub fn new() -> EvidenceCache {
        EvidenceCache::default()
    }

    fn bind(&mut self, jwks: &Jwks, log_vkey: &str) {
        let same = self
            .bound_to
            .as_ref()
            .is_some_and(|(j, v)| j == jwks && v == log_vkey);
        if !same {
            self.signatures.clear();
            self.proofs.clear();
            self.bound_to = Some((jwks.clone(), log_vkey.to_owned()));
        }
    }
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
        log_vkey: &str,
    ) -> Result<(), (Code, String)> {
        let key = (token.to_owned(), evidence.proof_bundle.clone());
        if let Some(cached) = self.proofs.get(&key) {
            return cached.clone();
        }
        if self.proofs.len() >= Self::CAPACITY {
            self.proofs.clear();
        }
        let result = check_proof(evidence, token, claims, log_vkey);
        self.proofs.insert(key, result.clone());
        result
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "decide's arguments plus the checks"
)]
fn decide_with(
    params: &GateParams,
    job: &JobRequest,
    jwks: &Jwks,
    log_vkey: &str,
    status: &StatusListCache,
    usage: &Usage,
    now: i64,
    checks: &mut dyn EvidenceChecks,
) -> Decision {
    let Some(cluster) = params.cluster(&job.cluster) else {
        let known: Vec<&str> = params.clusters().iter().map(|c| c.name.as_str()).collect();
        return Decision::new(
            Code::UnknownCluster,
            format!(
                "this gate has no cluster {:?}: submit to one of its clusters ({})",
                job.cluster,
                known.join(", ")
            ),
        );
    };
    if let Some(hours) = job.hours
        && !(hours.is_finite() && hours > 0.0)
    {
        return Decision::new(
            Code::InvalidRequest,
            format!(
                "the job's duration must be a positive number of hours, such as 24; got {hours}"
            ),
        );
    }
    if job.accelerators > cluster.accelerators {
        return Decision::new(
            Code::InvalidRequest,
            format!(
                "the job requests {} accelerators, but cluster {} has {}: request at most {} \
                 (if the cluster has grown, the gate's operator updates its configuration)",
                job.accelerators, cluster.name, cluster.accelerators, cluster.accelerators
            ),
        );
    }
    let size = Size::of(params, cluster, job);
    if size.below() {
        return Decision::new(
            Code::BelowThreshold,
            format!(
                "{} is below this gate's permit threshold ({}): no permit needed",
                size.describe(),
                size.thresholds()
            ),
        );
    }
    let Some(evidence) = &job.permit else {
        return Decision::new(
            Code::PermitRequired,
            format!(
                "{} needs a permit: {}. Attach the run's permit and its log proof \
                 (`runpermit permit get <permit id> --output permit.jwt --proof permit.tlog-proof`), \
                 or make the job smaller",
                size.describe(),
                size.reached().join("; ")
            ),
        );
    };

    let token = evidence.token.trim();
    let claims = match checks
        .signature(token, jwks)
        .and_then(|c| check_permit_validity(&c, now, params.clock_skew_seconds()).map(|()| c))
    {
        Ok(claims) => claims,
        Err(e) => {
            let (code, message) = permit_refusal(e, params);
            return Decision::new(code, message);
        }
    };
    let refuse = |code: Code, message: String| Decision::new(code, message).about(&claims);

    let Some(scope) = claims.provider(params.provider_id()) else {
        let listed: Vec<&str> = claims
            .providers
            .iter()
            .map(|p| p.provider.as_str())
            .collect();
        return refuse(
            Code::ProviderNotPermitted,
            format!(
                "permit {} does not allow compute at this provider ({}); it names {}. Submit the job \
                 to a provider the permit names, or ask the authority to amend the permit",
                claims.jti,
                params.provider_id(),
                listed.join(", ")
            ),
        );
    };
    if !scope.allows_cluster(&cluster.name) {
        return refuse(
            Code::ClusterNotPermitted,
            format!(
                "permit {} allows this provider's clusters {} only, not {}: submit the job to one of \
                 those, or ask the authority to amend the permit",
                claims.jti,
                scope.clusters.join(", "),
                cluster.name
            ),
        );
    }
    if job.accelerators > claims.max_accelerators {
        return refuse(
            Code::TooManyAccelerators,
            format!(
                "the job requests {} accelerators, more than the {} permit {} allows at once: \
                 request at most {}",
                job.accelerators, claims.max_accelerators, claims.jti, claims.max_accelerators
            ),
        );
    }

    if let Err((code, message)) = checks.proof(evidence, token, &claims, log_vkey) {
        return refuse(code, message);
    }

    match status.freshness(now) {
        Freshness::Fresh => {}
        Freshness::Missing => {
            return refuse(
                Code::StatusListMissing,
                format!(
                    "this gate has no status list from the authority yet, so it cannot confirm that \
                     permit {} is in good standing; it refuses jobs that need a permit until it has \
                     fetched one from {}. Nothing is known to be wrong with the permit: retry later, \
                     and tell the gate's operator if this persists",
                    claims.jti,
                    params.authority_url()
                ),
            );
        }
        Freshness::Stale { age } => {
            let (version, exp) = status
                .current()
                .map_or((0, 0), |list| (list.version, list.exp));
            return refuse(
                Code::StatusListStale,
                format!(
                    "this gate's status list (version {version}, {} old) expired at {} and its grace \
                     of {} has passed, so it cannot confirm that permit {} is in good standing; it \
                     refuses jobs that need a permit until it gets a fresh list from {}. Nothing is \
                     known to be wrong with the permit: retry later, and tell the gate's operator if \
                     this persists",
                    duration(age),
                    utc(exp),
                    duration(status.grace_seconds()),
                    claims.jti,
                    params.authority_url()
                ),
            );
        }
    }
    if let Some(entry) = status.status_of(&claims.jti) {
        let reason = if entry.reason.trim().is_empty() {
            "no reason given".to_owned()
        } else {
            entry.reason.clone()
        };
        let since = utc(entry.since);
        let what = match entry.status {
            PermitStatus::Suspended => format!(
                "permit {} is suspended since {since} ({reason}). No job runs under it until the \
                 authority reinstates it; the permit holder should contact the authority",
                claims.jti
            ),
            PermitStatus::Revoked => format!(
                "permit {} was revoked at {since} ({reason}). Run {} must stop; no job runs under \
                 this permit again",
                claims.jti, claims.sub
            ),
            PermitStatus::MilestoneHold => format!(
                "permit {} is on hold for a milestone since {since} ({reason}). Submit the milestone \
                 evaluation to the authority; jobs are admitted again once it is accepted and the \
                 next tranche is released",
                claims.jti
            ),
            PermitStatus::Paused => format!(
                "run {} under permit {} is paused since {since} ({reason}). Jobs are admitted again \
                 when the authority resumes the run",
                claims.sub, claims.jti
            ),
        };
        return refuse(Code::for_status(entry.status), what);
    }

    let used = usage.cumulative(&claims.sub);
    if used >= claims.flop_budget {
        return refuse(
            Code::BudgetExhausted,
            format!(
                "run {} has used {} at this provider, which reaches the {} budget of permit {}: \
                 no further compute is permitted; the permit holder must apply to the authority \
                 for more",
                claims.sub, used, claims.flop_budget, claims.jti
            ),
        );
    }
    let remaining = Flop::new(claims.flop_budget.get() - used.get()).unwrap_or(Flop::ZERO);
    let tranche = claims
        .tranches
        .iter()
        .find(|t| t.flop > used)
        .map(|t| {
            format!(
                "; tranche {} of {} ends at {}, where a milestone evaluation is due",
                t.index,
                claims.tranches.len(),
                t.flop
            )
        })
        .unwrap_or_default();
    Decision {
        remaining_flop: Some(remaining),
        ..Decision::new(
            Code::Permitted,
            format!(
                "{} is permitted under permit {} for run {}: {} of the {} budget remain{tranche}",
                size.describe(),
                claims.jti,
                claims.sub,
                remaining,
                claims.flop_budget
            ),
        )
        .about(&claims)
    }
}

/// What a job's size is judged by.
struct Size<'a> {
    params: &'a GateParams,
    cluster: &'a ClusterParams,
    accelerators: u64,
    hours: Option<f64>,
    /// accelerators × peak × duration; `None` without a duration or on overflow.
    projected: Option<Flop>,
}

impl<'a> Size<'a> {
    fn of(params: &'a GateParams, cluster: &'a ClusterParams, job: &JobRequest) -> Size<'a> {
        let projected = job.hours.and_then(|hours| {
            cluster
                .peak
                .checked_mul(job.accelerators as f64)
                .and_then(|rate| rate.over_seconds(hours * 3600.0))
                .ok()
        });
        Size {
            params,
            cluster,
            accelerators: job.accelerators,
            hours: job.hours,
            projected,
        }
    }

    /// Below every configured threshold. A job without a projection is not below a FLOP
    /// threshold.
    fn below(&self) -> bool {
        let t = self.params.thresholds();
        t.min_accelerators.is_none_or(|min| self.accelerators < min)
            && t.min_projected_flop
                .is_none_or(|min| self.projected.is_some_and(|p| p < min))
    }

    /// `2048 accelerators (NVIDIA H100 SXM) on cluster us-east-1 for 24 h (at most 4.86e22
    /// FLOP at the bf16 peak)`.
    fn describe(&self) -> String {
        let mut text = format!(
            "this job of {} accelerator{} ({}) on cluster {}",
            self.accelerators,
            if self.accelerators == 1 { "" } else { "s" },
            self.cluster.accelerator,
            self.cluster.name
        );
        if let Some(hours) = self.hours {
            text.push_str(&format!(" for {hours} h"));
            if let Some(p) = self.projected {
                text.push_str(&format!(
                    " (at most {p} at the {} peak)",
                    self.cluster.precision
                ));
            }
        }
        text
    }

    /// The configured thresholds, in words.
    fn thresholds(&self) -> String {
        let t = self.params.thresholds();
        let mut parts = Vec::new();
        if let Some(min) = t.min_accelerators {
            parts.push(format!("{min} accelerators"));
        }
        if let Some(min) = t.min_projected_flop {
            parts.push(format!("{min} projected"));
        }
        parts.join(" or ")
    }

    /// Why the job needs a permit: each threshold it reaches, or cannot be shown below.
    fn reached(&self) -> Vec<String> {
        let t = self.params.thresholds();
        let mut reasons = Vec::new();
        if let Some(min) = t.min_accelerators
            && self.accelerators >= min
        {
            reasons.push(format!(
                "{} accelerators reaches this gate's threshold of {min}",
                self.accelerators
            ));
        }
        if let Some(min) = t.min_projected_flop {
            match (self.hours, self.projected) {
                (None, _) => reasons.push(format!(
                    "with no duration given it cannot be shown to stay below this gate's threshold \
                     of {min} (give the job's time limit)"
                )),
                (Some(_), Some(p)) if p < min => {}
                (Some(_), Some(p)) => reasons.push(format!(
                    "its projected {p} reaches this gate's threshold of {min}"
                )),
                (Some(_), None) => reasons.push(format!(
                    "its projected compute overflows, far above this gate's threshold of {min}"
                )),
            }
        }
        reasons
    }
}

/// The code and message for a permit that does not verify.
fn permit_refusal(e: VerifyError, params: &GateParams) -> (Code, String) {
    match e {
        VerifyError::UnknownKey(kid) => (
            Code::PermitUnknownKey,
            format!(
                "the permit is signed by key {kid:?}, which is not among the keys this gate trusts \
                 for {}: the permit comes from another authority, or the authority has new keys \
                 and the gate's operator must update the pinned JWKS",
                params.authority_url()
            ),
        ),
        VerifyError::BadSignature => (
            Code::PermitBadSignature,
            "the permit's signature does not verify: the token was altered or forged. Attach the \
             token exactly as `runpermit permit get` wrote it"
                .to_owned(),
        ),
        e @ (VerifyError::NotYetValid { .. } | VerifyError::IssuedInFuture { .. }) => (
            Code::PermitNotYetValid,
            format!(
                "{e}; this gate tolerates {} of clock skew. Submit the job once the permit is valid",
                duration(params.clock_skew_seconds())
            ),
        ),
        e @ VerifyError::Expired { .. } => (Code::PermitExpired, e.to_string()),
        e @ (VerifyError::Malformed(_)
        | VerifyError::UnsupportedAlgorithm(_)
        | VerifyError::WrongType { .. }
        | VerifyError::Claims(_)) => (
            Code::PermitMalformed,
            format!(
                "the attached token is not a valid runpermit permit ({e}). Attach the token \
                 exactly as `runpermit permit get` wrote it"
            ),
        ),
    }
}

/// Checks that the evidence's proof bundle proves, under the pinned log key, the
/// `permit_issued` entry whose token is exactly `token`.
fn check_proof(
    evidence: &PermitEvidence,
    token: &str,
    claims: &PermitClaims,
    log_vkey: &str,
) -> Result<(), (Code, String)> {
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
        LogEntry::PermitIssued { token: logged, .. } if logged == token => Ok(()),
        LogEntry::PermitIssued { permit_id, .. } => Err((
            Code::ProofWrongPermit,
            format!(
                "the attached log proof is for permit {permit_id}, not for this permit ({}). Attach \
                 this permit's own proof ({fetch})",
                claims.jti
            ),
        )),
        other => Err((
            Code::ProofWrongPermit,
            format!(
                "the attached log proof is for a {} entry, not for this permit's permit_issued \
                 entry. Attach this permit's own proof ({fetch})",
                other.type_name()
            ),
        )),
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
