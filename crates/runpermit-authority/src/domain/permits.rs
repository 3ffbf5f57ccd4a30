//! Permits: issuing one after an approval (intent, signature, log entry), reading back what was
//! signed, the keys that verify permits, and the signed status list of permits not in good
//! standing.
//!
//! Why the order of a permit's issuance is safe: (1) the decision and the permit's *intent*
//! (its checked claims) are committed together with their audit events; (2) the claims are
//! signed; (3) the token is committed. A crash after (1) leaves an intent that is visible and
//! can be signed again; a crash can never leave a signed permit that is not recorded.

use runpermit_compute::Estimate;
use runpermit_log::LogEntry;
use runpermit_permit::{
    Holder, Jwks, PermitClaims, PermitRequest, ProviderScope, PublicKey, Tranche, check, sign,
    verify_permit_signature,
};
use runpermit_policy::{PriorCompute, RunPlan, RunStatus, permit_terms_with_prior};
use runpermit_store::{Application, Permit, Run, Write};
use runpermit_types::PermitState;
use serde_json::json;

use crate::domain::Authority;
use crate::domain::audit::event;
use crate::domain::error::DomainError;
use crate::domain::ids::new_id;
use crate::domain::log as tlog;

/// How long a request that issues a permit waits for its entry to reach the public log.
pub const INCLUSION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A permit whose intent is committed with the decision and which is signed afterwards.
#[derive(Debug)]
pub struct PendingPermit {
    id: String,
    request: PermitRequest,
    /// The plan's earlier permit, no longer in force, whose claim on the plan this one takes.
    replaces: Option<String>,
}

/// The permit request for an approved application, checked at once so that a plan that cannot
/// yield a valid permit is refused before anything is written. `evaluators` are those the
/// approving reviewers assigned; when they named none, the policy's (`[oversight]
/// evaluators`) are named in the permit.
pub fn pending_permit(
    state: &Authority,
    app: &Application,
    (plan, estimate, prior): (&RunPlan, &Estimate, &PriorCompute),
    holder_name: &str,
    conditions: Vec<String>,
    evaluators: Vec<String>,
    replaces: Option<String>,
) -> Result<PendingPermit, DomainError> {
    let evaluators = if evaluators.is_empty() {
        state.policy.oversight.evaluators.clone()
    } else {
        evaluators
    };
    let now_s = state.clock.now_s();
    let terms = permit_terms_with_prior(&state.policy, plan, estimate, prior, now_s);
    let id = new_id("pmt");
    let request = PermitRequest {
        iss: state.issuer.clone(),
        sub: new_id("run"),
        jti: id.clone(),
        nbf: terms.nbf,
        exp: terms.exp,
        application_id: app.id.clone(),
        holder: Holder {
            org_id: app.org_id.clone(),
            name: holder_name.to_owned(),
        },
        providers: terms
            .providers
            .into_iter()
            .map(|(provider, clusters)| ProviderScope { provider, clusters })
            .collect(),
        evaluators,
        accounting: Some(terms.accounting),
        max_accelerators: terms.max_accelerators,
        flop_budget: terms.flop_budget,
        tranches: terms
            .tranches
            .into_iter()
            .enumerate()
            .map(|(i, flop)| Tranche {
                index: u32::try_from(i + 1).unwrap_or(u32::MAX),
                flop,
            })
            .collect(),
        policy_version: app.policy_version.clone(),
        tier: app.tier.clone(),
        conditions,
    };
    // Checked now and again at signing: the type only exists through `check`.
    check(request.clone(), now_s).map_err(|errors| {
        DomainError::Invalid(
            errors
                .into_iter()
                .map(|mut e| {
                    e.field = format!("permit.{}", e.field);
                    e
                })
                .collect(),
        )
    })?;
    Ok(PendingPermit {
        id,
        request,
        replaces,
    })
}

pub fn intent_writes(
    state: &Authority,
    app: &Application,
    pending: &PendingPermit,
) -> Result<Vec<Write>, DomainError> {
    let now = state.clock.now_ms();
    let claims_json = serde_json::to_string(&pending.request)
        .map_err(|e| DomainError::Internal(format!("serializing permit claims: {e}")))?;
    Ok(vec![
        Write::InsertPermit(Permit {
            id: pending.id.clone(),
            application_id: app.id.clone(),
            run_id: pending.request.sub.clone(),
            org_id: app.org_id.clone(),
            status: PermitState::Intent,
            claims_json,
            token: None,
            kid: state.signer.kid().to_owned(),
            policy_version: app.policy_version.clone(),
            created_at: now,
            issued_at: None,
        }),
        event(
            None,
            now,
            "permit.intent",
            &format!("permit/{}", pending.id),
            None,
            json!({"application_id": app.id, "run_id": pending.request.sub, "flop_budget": pending.request.flop_budget}),
        ),
        Write::ClaimPlan {
            plan_digest: app.plan_digest.clone(),
            permit_id: pending.id.clone(),
            replaces: pending.replaces.clone(),
            at: now,
        },
    ])
}

/// Signs a committed intent and records the token. Returns the permit id.
pub async fn issue(state: &Authority, pending: PendingPermit) -> Result<String, DomainError> {
    let now_s = state.clock.now_s();
    // The run the permit authorizes is followed from the moment the permit exists.
    let run = new_run(&pending.request, state.clock.now_ms());
    let checked = check(pending.request, now_s).map_err(|errors| {
        DomainError::Internal(format!(
            "a committed permit intent no longer checks: {errors:?}"
        ))
    })?;
    let signed = sign(checked, &state.signer);
    let now = state.clock.now_ms();
    let subject = format!("permit/{}", pending.id);
    let c = &signed.claims;
    let entry = tlog::queue(
        &subject,
        &LogEntry::PermitIssued {
            permit_id: c.jti.clone(),
            application_id: c.application_id.clone(),
            run_id: c.sub.clone(),
            holder_org_id: c.holder.org_id.clone(),
            token: signed.token.clone(),
            flop_budget: c.flop_budget,
            nbf: c.nbf,
            exp: c.exp,
            policy_version: c.policy_version.clone(),
        },
        now,
    )?;
    state
        .store
        .commit(vec![
            entry,
            Write::IssuePermit {
                id: pending.id.clone(),
                token: signed.token,
                issued_at: now,
            },
            run,
            event(
                None,
                now,
                "permit.issue",
                &format!("permit/{}", pending.id),
                None,
                json!({"kid": signed.kid, "run_id": signed.claims.sub, "nbf": signed.claims.nbf, "exp": signed.claims.exp}),
            ),
        ])
        .await?;
    // The permit is handed out only once it is public: wait for the sequencer.
    if tlog::await_inclusion(state, &subject, INCLUSION_WAIT)
        .await?
        .is_none()
    {
        tracing::warn!(permit = %pending.id, "the permit is not yet in the log; it is served once it is");
    }
    Ok(pending.id)
}

/// Signs every permit left decided but unsigned (a crash between committing a decision and
/// recording its token). Run at start-up; safe with several processes, since a permit is
/// issued only from its intent and the loser of a race gets a conflict. Returns how many were
/// issued.
pub async fn resume_pending(state: &Authority) -> Result<usize, DomainError> {
    let mut issued = 0;
    for permit in state.store.pending_permits().await? {
        let request: PermitRequest = match serde_json::from_str(&permit.claims_json) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(permit = %permit.id, error = %e, "a pending permit's claims do not parse");
                continue;
            }
        };
        if check(request.clone(), state.clock.now_s()).is_err() {
            tracing::warn!(permit = %permit.id, "a pending permit no longer checks (expired?); left unsigned");
            continue;
        }
        match issue(
            state,
            PendingPermit {
                id: permit.id.clone(),
                request,
                replaces: None,
            },
        )
        .await
        {
            Ok(_) => {
                tracing::info!(permit = %permit.id, "signed a pending permit");
                issued += 1;
            }
            Err(DomainError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(issued)
}

/// The claims of the permit `run` runs under, read from the signed permit and verified with
/// the authority's own keys: what was signed and logged is what decides, never a copy of it
/// in the database that a write could change. `None` while the permit is decided but not yet
/// signed.
pub(crate) async fn signed_permit(
    state: &Authority,
    run: &Run,
) -> Result<Option<PermitClaims>, DomainError> {
    let permit =
        state.store.permit(&run.permit_id).await?.ok_or_else(|| {
            DomainError::Internal(format!("run {}'s permit is not stored", run.id))
        })?;
    let Some(token) = permit.token.as_deref() else {
        return Ok(None);
    };
    let keys = verifying_keys(state, None).await?;
    let claims = verify_permit_signature(token, &keys).map_err(|e| {
        DomainError::Internal(format!("stored permit {} does not verify: {e}", permit.id))
    })?;
    if claims.jti != run.permit_id || claims.sub != run.id {
        return Err(DomainError::Internal(format!(
            "stored permit {} is signed for run {} as {}, not for run {}",
            permit.id, claims.sub, claims.jti, run.id
        )));
    }
    Ok(Some(claims))
}

/// The authority's permit keys: every key, or with `retired_after`, only those not retired
/// before that time (unix ms).
pub async fn verifying_keys(
    state: &Authority,
    retired_after: Option<i64>,
) -> Result<Jwks, DomainError> {
    let mut keys = Vec::new();
    for k in state.store.signing_keys().await? {
        if let (Some(at), Some(after)) = (k.retired_at, retired_after)
            && at < after
        {
            continue;
        }
        keys.push(
            PublicKey::from_bytes(&k.public_key)
                .map_err(|e| DomainError::Internal(format!("stored key {}: {e}", k.kid)))?,
        );
    }
    Ok(Jwks::from_keys(&keys))
}

/// The run record created with a permit's issuance: active, first tranche released.
pub fn new_run(request: &PermitRequest, now: i64) -> Write {
    let first = request
        .tranches
        .first()
        .map_or(request.flop_budget, |t| t.flop);
    Write::InsertRun(Run {
        id: request.sub.clone(),
        permit_id: request.jti.clone(),
        org_id: request.holder.org_id.clone(),
        status: RunStatus::Active,
        reason: String::new(),
        status_since: now,
        tranche: 1,
        released_flop: first.get(),
        budget_flop: request.flop_budget.get(),
        cumulative_flop: 0.0,
        cumulative_lower_flop: 0.0,
        cumulative_upper_flop: 0.0,
        measured_flop: 0.0,
        measured_capacity_flop: 0.0,
        first_usage_s: None,
        last_usage_s: None,
        summarized_flop: 0.0,
        alerted_percent: 0,
        appeal_pending: false,
        permit_exp_s: request.exp,
        version: 1,
        created_at: now,
        updated_at: now,
    })
}
