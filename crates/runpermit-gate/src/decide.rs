//! The admission decision for one job, pure (no IO, no clock), in microseconds.
//!
//! The checks run in a fixed order and the first failure decides, so that a job owner sees
//! the most basic problem first. The codes are stable, documented in the crate's top-level
//! table, and each refusal's message names what to do.

use runpermit_compute::Flop;
use runpermit_permit::{PermitStatus, VerifyError, check_permit_validity};

use crate::config::{ClusterParams, GateParams};
use crate::decision::{Code, Decision, JobRequest, Usage};
use crate::evidence::EvidenceChecks;
use crate::gate::TrustAnchors;
use crate::status::{Freshness, StatusListCache};
use crate::text::{duration, utc};

/// The decision for `job` at `now`: see [`Gate::decide`](crate::Gate::decide), which documents
/// the checks in their order. `checks` makes the time-independent ones, cached or not.
pub(crate) fn decide(
    params: &GateParams,
    anchors: &TrustAnchors,
    status: &StatusListCache,
    job: &JobRequest,
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
        .signature(token, &anchors.jwks)
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

    if let Err((code, message)) = checks.proof(evidence, token, &claims, anchors) {
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
    // Only what this gate knows: its own provider's usage, and that the authority's list
    // does not hold the run. Which tranches are released, and how much the run used at other
    // providers, only the authority knows; a run at a tranche's end is on milestone hold in
    // its list, which refuses above.
    let schedule = match claims.tranches.len() {
        1 => "released in one tranche".to_owned(),
        n => format!("in {n} tranches"),
    };
    Decision {
        remaining_flop: Some(remaining),
        ..Decision::new(
            Code::Permitted,
            format!(
                "{} is permitted under permit {} for run {}: this provider has metered {} of the \
                 {} budget ({schedule}); the authority's status list shows the run in good \
                 standing, so its released compute is not used up",
                size.describe(),
                claims.jti,
                claims.sub,
                used,
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
