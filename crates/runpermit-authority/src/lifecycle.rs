//! The application lifecycle as the authority runs it: estimate, classify, decide, and issue
//! a permit or an exemption receipt. Pure rules come from `runpermit-policy`
//! (`classify`, `workflow::next`, `approval_outcome`, `permit_terms`); this module applies
//! them to stored state in atomic batches.
//!
//! Why the order of a permit's issuance is safe: (1) the decision and the permit's *intent*
//! (its checked claims) are committed together with their audit events; (2) the claims are
//! signed; (3) the token is committed. A crash after (1) leaves an intent that is visible and
//! can be signed again; a crash can never leave a signed permit that is not recorded.

use runpermit_compute::Flop;
use runpermit_compute::{Estimate, FieldError, HardwareTable, builtin_regimes};
use runpermit_log::{DecisionKind, LogEntry};
use runpermit_permit::{
    ExemptionClaims, Holder, PermitRequest, ProviderScope, Tranche, check, sign, sign_exemption,
};
use runpermit_policy::Lifecycle;
use runpermit_policy::workflow::{self, Action, Status};
use runpermit_policy::{
    Classification, Decision, PriorCompute, RunPlan, RunStatus, classify_with_prior,
    permit_terms_with_prior,
};
use runpermit_store::{Application, Permit, Receipt, Write};
use serde_json::json;

use crate::audit::event;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::ids::new_id;
use crate::state::AppState;
use crate::tlog;

/// How long a request that issues a permit waits for its entry to reach the public log.
pub const INCLUSION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The public log entry for a decision on `app` (subject `application/<id>`).
pub fn log_decision(
    app: &Application,
    kind: DecisionKind,
    reason: Option<&str>,
    at_ms: i64,
) -> Result<Write, ApiError> {
    tlog::queue(
        &format!("application/{}", app.id),
        &LogEntry::Decision {
            application_id: app.id.clone(),
            decision: kind,
            tier: app.tier.clone(),
            policy_version: app.policy_version.clone(),
            reason: reason.map(str::to_owned),
        },
        at_ms,
    )
}

/// Field errors of a run plan, named by their `plan.` path in the request body.
pub fn in_plan(errors: Vec<FieldError>) -> ApiError {
    ApiError::Invalid(
        errors
            .into_iter()
            .map(|mut e| {
                e.field = if e.field.is_empty() {
                    "plan".to_owned()
                } else {
                    format!("plan.{}", e.field)
                };
                e
            })
            .collect(),
    )
}

/// Validates a plan and estimates its compute; every problem named by its `plan.` path.
pub fn assess(plan: &RunPlan) -> Result<Estimate, ApiError> {
    plan.estimate(HardwareTable::builtin(), builtin_regimes())
        .map_err(in_plan)
}

/// The application record's plan.
pub fn stored_plan(app: &Application) -> Result<RunPlan, ApiError> {
    RunPlan::from_json(&app.plan_json)
        .map_err(|e| ApiError::Internal(format!("stored plan of {}: {e:?}", app.id)))
}

/// The application record's estimate.
pub fn estimate_of(app: &Application) -> Result<Estimate, ApiError> {
    serde_json::from_str(&app.estimate_json)
        .map_err(|e| ApiError::Internal(format!("stored estimate of {}: {e}", app.id)))
}

fn transition(app: &Application, action: Action) -> Result<Status, ApiError> {
    let status: Status = app
        .status
        .parse()
        .map_err(|e| ApiError::Internal(format!("stored status of {}: {e:?}", app.id)))?;
    workflow::next(status, action).map_err(|e| ApiError::Conflict(e.to_string()))
}

/// A fresh application record (status draft) for `plan`.
pub fn draft(
    state: &AppState,
    caller: &Caller,
    id: String,
    plan: &RunPlan,
    estimate: &Estimate,
    classification: &Classification,
) -> Result<Application, ApiError> {
    let now = state.clock.now_ms();
    Ok(Application {
        id,
        org_id: caller.org_id.clone(),
        created_by: caller.member_id.clone(),
        status: Status::Draft.as_str().to_owned(),
        tier: classification.tier.clone(),
        decision: decision_str(classification.decision).to_owned(),
        approvals_required: i64::from(classification.approvals_required),
        plan_json: serde_json::to_string(plan)
            .map_err(|e| ApiError::Internal(format!("serializing a plan: {e}")))?,
        plan_digest: plan.digest(),
        estimate_json: serde_json::to_string(estimate)
            .map_err(|e| ApiError::Internal(format!("serializing an estimate: {e}")))?,
        policy_version: classification.policy_version.clone(),
        version: 0,
        created_at: now,
        updated_at: now,
    })
}

fn decision_str(d: Decision) -> &'static str {
    match d {
        Decision::Exempt => "exempt",
        Decision::AutoPermit => "auto_permit",
        Decision::Review => "review",
        Decision::Deny => "deny",
    }
}

/// Classifies `plan` of organization `org_id` under the policy in force, on top of what the
/// authority already permitted the organization ([`prior_compute`]).
pub async fn classification(
    state: &AppState,
    org_id: &str,
    plan: &RunPlan,
    estimate: &Estimate,
) -> Result<(Classification, PriorCompute), ApiError> {
    let prior = prior_compute(state, org_id, plan).await?;
    Ok((
        classify_with_prior(&state.policy, plan, estimate, &prior),
        prior,
    ))
}

/// What the authority already permitted organization `org_id` that `plan` adds to: its
/// permits issued within the policy's aggregation window (live ones at their budget or usage,
/// whichever is higher; finished ones at their usage), and the compute of its earlier runs of
/// the plan's base model (by run name: their usage plus their own declared base).
pub async fn prior_compute(
    state: &AppState,
    org_id: &str,
    plan: &RunPlan,
) -> Result<PriorCompute, ApiError> {
    let now = state.clock.now_ms();
    let window_ms = i64::from(state.policy.aggregation.window_days) * 86_400_000;
    let runs = state.store.runs(Some(org_id)).await?;
    let mut prior = PriorCompute::default();
    let mut window = 0.0_f64;
    for run in &runs {
        if run.created_at < now - window_ms {
            continue;
        }
        let status: RunStatus = run
            .status
            .parse()
            .map_err(|e| ApiError::Internal(format!("run {}: {e}", run.id)))?;
        window += if status.is_final() {
            run.cumulative_flop
        } else {
            run.budget_flop.max(run.cumulative_flop)
        };
        prior.window_permits.push(run.permit_id.clone());
    }
    prior.window_flop = Flop::new(window)
        .map_err(|e| ApiError::Internal(format!("the organization's permitted compute {e}")))?;
    if let Some(base) = &plan.base_model {
        // The organization's applications whose run has the base model's name.
        let named: std::collections::HashMap<String, f64> = state
            .store
            .applications(Some(org_id))
            .await?
            .into_iter()
            .filter_map(|a| {
                let p = RunPlan::from_json(&a.plan_json).ok()?;
                (p.run.name == base.name)
                    .then(|| (a.id, p.base_model.map_or(0.0, |b| b.cumulative_flop.get())))
            })
            .collect();
        let mut lineage = 0.0_f64;
        for run in &runs {
            let Some(permit) = state.store.permit(&run.permit_id).await? else {
                continue;
            };
            if let Some(own_base) = named.get(&permit.application_id) {
                lineage = lineage.max(run.cumulative_flop + own_base);
                prior.lineage_runs.push(run.id.clone());
            }
        }
        prior.lineage_flop = Flop::new(lineage)
            .map_err(|e| ApiError::Internal(format!("the base model's known compute {e}")))?;
    }
    Ok(prior)
}

/// Refuses (409) an application whose plan is the plan of a permit still in force (its run not
/// finished, the permit not expired), naming the permit: the same plan is permitted once.
/// Otherwise returns the earlier permit of the plan, no longer in force, that a new permit's
/// claim replaces ([`Write::ClaimPlan`], written with the intent, so that two concurrent
/// grants of one plan cannot both commit).
pub async fn plan_claim(state: &AppState, app: &Application) -> Result<Option<String>, ApiError> {
    let Some(permit_id) = state.store.plan_permit(&app.plan_digest).await? else {
        return Ok(None);
    };
    let in_force = match state.store.run_by_permit(&permit_id).await? {
        Some(run) => {
            let finished = run
                .status
                .parse::<RunStatus>()
                .map(RunStatus::is_final)
                .unwrap_or(false);
            (!finished && run.permit_exp_s > state.clock.now_s()).then_some(run)
        }
        // Decided, not yet signed: in force as soon as it is.
        None => {
            return Err(ApiError::Conflict(format!(
                "this plan ({}) is already permitted: permit {permit_id} is being issued; a \
                 plan is permitted once — a further run needs its own plan",
                app.plan_digest
            )));
        }
    };
    match in_force {
        Some(run) => Err(ApiError::Conflict(format!(
            "this plan ({}) is already permitted: permit {permit_id} (run {}, {}); a plan is \
             permitted once — a further run needs its own plan",
            app.plan_digest, run.id, run.status
        ))),
        None => Ok(Some(permit_id)),
    }
}

/// What a submission leads to: the writes to commit (after `app`'s own write) and, for
/// permits, the intent to sign afterwards.
#[derive(Debug)]
pub struct Submission {
    /// The application as it will be stored.
    pub app: Application,
    /// Writes besides the application's own.
    pub writes: Vec<Write>,
    /// A permit to sign once the writes are committed.
    pub permit: Option<PendingPermit>,
}

/// A permit whose intent is committed with the decision and which is signed afterwards.
#[derive(Debug)]
pub struct PendingPermit {
    id: String,
    request: PermitRequest,
    /// The plan's earlier permit, no longer in force, whose claim on the plan this one takes.
    replaces: Option<String>,
}

/// Applies a submission (or resubmission) of `app` by `caller`: the policy's decision for the
/// tier, refused with 422 when the plan lacks what the tier requires.
pub async fn submit(
    state: &AppState,
    caller: &Caller,
    mut app: Application,
    action: Action,
) -> Result<Submission, ApiError> {
    let plan = stored_plan(&app)?;
    let estimate = estimate_of(&app)?;
    plan.validate_schedule_at(state.clock.now_s())
        .map_err(in_plan)?;
    let replaces = plan_claim(state, &app).await?;
    let (class, prior) = classification(state, &app.org_id, &plan, &estimate).await?;
    if !class.missing.is_empty() {
        return Err(in_plan(class.missing));
    }
    let now = state.clock.now_ms();
    let subject = format!("application/{}", app.id);
    app.status = transition(&app, action)?.as_str().to_owned();
    app.tier = class.tier.clone();
    app.decision = decision_str(class.decision).to_owned();
    app.approvals_required = i64::from(class.approvals_required);
    app.policy_version = class.policy_version.clone();
    app.updated_at = now;
    let mut writes = vec![event(
        Some(caller),
        now,
        "application.submit",
        &subject,
        None,
        json!({
            "plan_digest": app.plan_digest,
            "tier": app.tier,
            "decision": app.decision,
            "estimated_flop": class.flop,
            "tiered_flop": class.tiered_flop,
            "aggregated_permits": prior.window_permits,
            "policy_version": app.policy_version,
            "review_reasons": class.review_reasons,
        }),
    )];
    writes.push(tlog::queue(
        &subject,
        &LogEntry::ApplicationSubmitted {
            application_id: app.id.clone(),
            org_id: app.org_id.clone(),
            plan_digest: app.plan_digest.clone(),
            tier: app.tier.clone(),
            estimated_flop: class.flop,
            policy_version: app.policy_version.clone(),
        },
        now,
    )?);
    let mut permit = None;
    match class.decision {
        Decision::Review => {}
        Decision::Deny => {
            app.status = transition(&app, Action::Deny)?.as_str().to_owned();
            let reason = format!(
                "policy {} denies runs of tier {} by default; you may appeal",
                app.policy_version, app.tier
            );
            writes.push(event(
                None,
                now,
                "application.deny",
                &subject,
                Some(&reason),
                json!({"by": "policy"}),
            ));
            writes.push(log_decision(
                &app,
                DecisionKind::Denied,
                Some(&reason),
                now,
            )?);
        }
        Decision::Exempt => {
            app.status = transition(&app, Action::Exempt)?.as_str().to_owned();
            let receipt_id = new_id("rcp");
            let claims = ExemptionClaims {
                iss: state.issuer.clone(),
                jti: receipt_id.clone(),
                iat: now.div_euclid(1000),
                rpv: 1,
                application_id: app.id.clone(),
                holder: Holder {
                    org_id: app.org_id.clone(),
                    name: caller.org_name.clone(),
                },
                estimated_flop: class.flop,
                policy_version: app.policy_version.clone(),
                tier: app.tier.clone(),
                reason: format!(
                    "estimated {} is below every permit threshold of policy {}",
                    class.flop, app.policy_version
                ),
            };
            let token = sign_exemption(&claims, &state.signer);
            writes.push(Write::InsertReceipt(Receipt {
                id: receipt_id.clone(),
                application_id: app.id.clone(),
                org_id: app.org_id.clone(),
                token,
                created_at: now,
            }));
            writes.push(event(
                None,
                now,
                "application.exempt",
                &subject,
                Some(&claims.reason),
                json!({"receipt_id": receipt_id}),
            ));
            writes.push(log_decision(
                &app,
                DecisionKind::Exempt,
                Some(&claims.reason),
                now,
            )?);
        }
        Decision::AutoPermit => {
            app.status = transition(&app, Action::AutoApprove)?.as_str().to_owned();
            writes.push(event(
                None,
                now,
                "application.approve",
                &subject,
                Some("the tier's permit is issued once the plan is complete"),
                json!({"by": "policy", "tier": app.tier}),
            ));
            writes.push(log_decision(&app, DecisionKind::Approved, None, now)?);
            let pending = pending_permit(
                state,
                &app,
                (&plan, &estimate, &prior),
                &caller.org_name,
                Vec::new(),
                Vec::new(),
                replaces,
            )?;
            writes.extend(intent_writes(state, &app, &pending)?);
            permit = Some(pending);
        }
    }
    Ok(Submission {
        app,
        writes,
        permit,
    })
}

/// The permit request for an approved application, checked at once so that a plan that cannot
/// yield a valid permit is refused before anything is written. `evaluators` are those the
/// approving reviewers assigned; when they named none, the policy's (`[oversight]
/// evaluators`) are named in the permit.
pub fn pending_permit(
    state: &AppState,
    app: &Application,
    (plan, estimate, prior): (&RunPlan, &Estimate, &PriorCompute),
    holder_name: &str,
    conditions: Vec<String>,
    evaluators: Vec<String>,
    replaces: Option<String>,
) -> Result<PendingPermit, ApiError> {
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
        ApiError::Invalid(
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
    state: &AppState,
    app: &Application,
    pending: &PendingPermit,
) -> Result<Vec<Write>, ApiError> {
    let now = state.clock.now_ms();
    let claims_json = serde_json::to_string(&pending.request)
        .map_err(|e| ApiError::Internal(format!("serializing permit claims: {e}")))?;
    Ok(vec![
        Write::InsertPermit(Permit {
            id: pending.id.clone(),
            application_id: app.id.clone(),
            run_id: pending.request.sub.clone(),
            org_id: app.org_id.clone(),
            status: "intent".to_owned(),
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
pub async fn issue(state: &AppState, pending: PendingPermit) -> Result<String, ApiError> {
    let now_s = state.clock.now_s();
    // The run the permit authorizes is followed from the moment the permit exists.
    let run = crate::oversight::new_run(&pending.request, state.clock.now_ms());
    let checked = check(pending.request, now_s).map_err(|errors| {
        ApiError::Internal(format!(
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

/// Commits a submission and, for a permit, signs and records it.
pub async fn commit_submission(
    state: &AppState,
    first_write: Write,
    submission: Submission,
) -> Result<Application, ApiError> {
    let mut writes = vec![first_write];
    writes.extend(submission.writes);
    state.store.commit(writes).await?;
    if let Some(pending) = submission.permit {
        issue(state, pending).await?;
    }
    Ok(submission.app)
}

/// The review decisions a reviewer can record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// Approve (the top tier needs two distinct reviewers).
    Approve,
    /// Deny.
    Deny,
    /// Send back to the applicant.
    RequestChanges,
}

impl ReviewDecision {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Approve => "approve",
            ReviewDecision::Deny => "deny",
            ReviewDecision::RequestChanges => "request_changes",
        }
    }
}

/// The writes for a transition of `app` by `action`: its audit event and, when the new
/// status is a decision the public should see, its log entry.
pub fn transition_writes(
    state: &AppState,
    caller: &Caller,
    app: &mut Application,
    action: Action,
    audit_action: &str,
    reason: Option<&str>,
) -> Result<Vec<Write>, ApiError> {
    let status = transition(app, action)?;
    app.status = status.as_str().to_owned();
    app.updated_at = state.clock.now_ms();
    let mut writes = vec![event(
        Some(caller),
        app.updated_at,
        audit_action,
        &format!("application/{}", app.id),
        reason,
        json!({"status": app.status}),
    )];
    let public = match status {
        Status::Approved => Some(DecisionKind::Approved),
        Status::Denied => Some(DecisionKind::Denied),
        Status::ChangesRequested => Some(DecisionKind::ChangesRequested),
        Status::Withdrawn => Some(DecisionKind::Withdrawn),
        Status::Appealed => Some(DecisionKind::Appealed),
        Status::Exempt => Some(DecisionKind::Exempt),
        Status::Draft | Status::Submitted | Status::UnderReview => None,
    };
    if let Some(kind) = public {
        writes.push(log_decision(app, kind, reason, app.updated_at)?);
    }
    Ok(writes)
}

/// Signs every permit left decided but unsigned (a crash between committing a decision and
/// recording its token). Run at start-up; safe with several processes, since a permit is
/// issued only from its intent and the loser of a race gets a conflict. Returns how many were
/// issued.
pub async fn resume_pending(state: &AppState) -> Result<usize, ApiError> {
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
            Err(ApiError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(issued)
}
