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
use runpermit_permit::{ExemptionClaims, Holder, sign_exemption};
use runpermit_policy::Lifecycle;
use runpermit_policy::workflow::{self, Action, Status};
use runpermit_policy::{Classification, Decision, PriorCompute, RunPlan, classify_with_prior};
use runpermit_store::{Application, Receipt, Write};
use serde_json::json;

use crate::domain::Authority;
use crate::domain::Caller;
use crate::domain::audit::event;
use crate::domain::error::DomainError;
use crate::domain::error::reason as checked_reason;
use crate::domain::ids::{new_id, sha256_hex};
use crate::domain::log as tlog;
use crate::domain::permits::{PendingPermit, intent_writes, issue, pending_permit};

/// The public log entry for a decision on `app` (subject `application/<id>`).
pub fn log_decision(
    app: &Application,
    kind: DecisionKind,
    reason: Option<&str>,
    at_ms: i64,
) -> Result<Write, DomainError> {
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
pub fn in_plan(errors: Vec<FieldError>) -> DomainError {
    DomainError::Invalid(
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
pub fn assess(plan: &RunPlan) -> Result<Estimate, DomainError> {
    plan.estimate(HardwareTable::builtin(), builtin_regimes())
        .map_err(in_plan)
}

/// The application record's plan.
pub fn stored_plan(app: &Application) -> Result<RunPlan, DomainError> {
    RunPlan::from_json(&app.plan_json)
        .map_err(|e| DomainError::Internal(format!("stored plan of {}: {e:?}", app.id)))
}

/// The application record's estimate.
pub fn estimate_of(app: &Application) -> Result<Estimate, DomainError> {
    serde_json::from_str(&app.estimate_json)
        .map_err(|e| DomainError::Internal(format!("stored estimate of {}: {e}", app.id)))
}

fn transition(app: &Application, action: Action) -> Result<Status, DomainError> {
    workflow::next(app.status, action).map_err(|e| DomainError::Conflict(e.to_string()))
}

/// A fresh application record (status draft) for `plan`.
pub fn draft(
    state: &Authority,
    caller: &Caller,
    id: String,
    plan: &RunPlan,
    estimate: &Estimate,
    classification: &Classification,
) -> Result<Application, DomainError> {
    let now = state.clock.now_ms();
    Ok(Application {
        id,
        org_id: caller.org_id.clone(),
        created_by: caller.member_id.clone(),
        status: Status::Draft,
        tier: classification.tier.clone(),
        decision: decision_str(classification.decision).to_owned(),
        approvals_required: i64::from(classification.approvals_required),
        plan_json: serde_json::to_string(plan)
            .map_err(|e| DomainError::Internal(format!("serializing a plan: {e}")))?,
        plan_digest: plan.digest(),
        estimate_json: serde_json::to_string(estimate)
            .map_err(|e| DomainError::Internal(format!("serializing an estimate: {e}")))?,
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
    state: &Authority,
    org_id: &str,
    plan: &RunPlan,
    estimate: &Estimate,
) -> Result<(Classification, PriorCompute), DomainError> {
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
    state: &Authority,
    org_id: &str,
    plan: &RunPlan,
) -> Result<PriorCompute, DomainError> {
    let now = state.clock.now_ms();
    let window_ms = i64::from(state.policy.aggregation.window_days) * 86_400_000;
    let runs = state.store.runs(Some(org_id)).await?;
    let mut prior = PriorCompute::default();
    let mut window = 0.0_f64;
    for run in &runs {
        if run.created_at < now - window_ms {
            continue;
        }
        window += if run.status.is_final() {
            run.cumulative_flop
        } else {
            run.budget_flop.max(run.cumulative_flop)
        };
        prior.window_permits.push(run.permit_id.clone());
    }
    prior.window_flop = Flop::new(window)
        .map_err(|e| DomainError::Internal(format!("the organization's permitted compute {e}")))?;
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
            .map_err(|e| DomainError::Internal(format!("the base model's known compute {e}")))?;
    }
    Ok(prior)
}

/// Refuses (409) an application whose plan is the plan of a permit still in force (its run not
/// finished, the permit not expired), naming the permit: the same plan is permitted once.
/// Otherwise returns the earlier permit of the plan, no longer in force, that a new permit's
/// claim replaces ([`Write::ClaimPlan`], written with the intent, so that two concurrent
/// grants of one plan cannot both commit).
pub async fn plan_claim(
    state: &Authority,
    app: &Application,
) -> Result<Option<String>, DomainError> {
    let Some(permit_id) = state.store.plan_permit(&app.plan_digest).await? else {
        return Ok(None);
    };
    let in_force = match state.store.run_by_permit(&permit_id).await? {
        Some(run) => {
            let finished = run.status.is_final();
            (!finished && run.permit_exp_s > state.clock.now_s()).then_some(run)
        }
        // Decided, not yet signed: in force as soon as it is.
        None => {
            return Err(DomainError::Conflict(format!(
                "this plan ({}) is already permitted: permit {permit_id} is being issued; a \
                 plan is permitted once — a further run needs its own plan",
                app.plan_digest
            )));
        }
    };
    match in_force {
        Some(run) => Err(DomainError::Conflict(format!(
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

/// Applies a submission (or resubmission) of `app` by `caller`: the policy's decision for the
/// tier, refused with 422 when the plan lacks what the tier requires.
pub async fn prepare_submission(
    state: &Authority,
    caller: &Caller,
    mut app: Application,
    action: Action,
) -> Result<Submission, DomainError> {
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
    app.status = transition(&app, action)?;
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
            app.status = transition(&app, Action::Deny)?;
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
            app.status = transition(&app, Action::Exempt)?;
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
            app.status = transition(&app, Action::AutoApprove)?;
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

/// Commits a submission and, for a permit, signs and records it.
pub async fn commit_submission(
    state: &Authority,
    first_write: Write,
    submission: Submission,
) -> Result<Application, DomainError> {
    let mut writes = vec![first_write];
    writes.extend(submission.writes);
    state.store.commit(writes).await?;
    if let Some(pending) = submission.permit {
        issue(state, pending).await?;
    }
    Ok(submission.app)
}

/// The writes for a transition of `app` by `action`: its audit event and, when the new
/// status is a decision the public should see, its log entry.
pub fn transition_writes(
    state: &Authority,
    caller: &Caller,
    app: &mut Application,
    action: Action,
    audit_action: &str,
    reason: Option<&str>,
) -> Result<Vec<Write>, DomainError> {
    let status = transition(app, action)?;
    app.status = status;
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

/// The application `id`, when `caller` may see it (else 404, so that ids do not leak).
pub async fn visible(
    state: &Authority,
    caller: &Caller,
    id: &str,
) -> Result<Application, DomainError> {
    let not_found = || DomainError::NotFound(format!("no application {id}"));
    let app = state.store.application(id).await?.ok_or_else(not_found)?;
    if caller.sees_org(&app.org_id) {
        Ok(app)
    } else {
        Err(not_found())
    }
}

/// Creates an application for `plan` by `caller`'s organization: kept as a draft when
/// `as_draft`, else submitted at once. With an idempotency key, the id is derived from it and the
/// member, so that two concurrent retries collide on the primary key instead of creating two
/// applications (the HTTP layer answers replays).
pub async fn create(
    state: &Authority,
    caller: &Caller,
    plan: &RunPlan,
    as_draft: bool,
    idempotency_key: Option<&str>,
) -> Result<Application, DomainError> {
    let estimate = assess(plan)?;
    let (class, _) = classification(state, &caller.org_id, plan, &estimate).await?;
    // With an idempotency key the id is derived from it, so that two concurrent retries
    // collide on the primary key instead of creating two applications.
    let id = match idempotency_key {
        Some(k) => format!(
            "app_{}",
            &sha256_hex(format!("{}\n{k}", caller.member_id).as_bytes())[..32]
        ),
        None => new_id("app"),
    };
    let app = draft(state, caller, id, plan, &estimate, &class)?;
    let created = event(
        Some(caller),
        app.created_at,
        "application.create",
        &format!("application/{}", app.id),
        None,
        json!({"plan_digest": app.plan_digest, "tier": app.tier}),
    );
    let stored = if as_draft {
        state
            .store
            .commit(vec![Write::InsertApplication(app.clone()), created])
            .await?;
        app
    } else {
        let mut submission = prepare_submission(state, caller, app.clone(), Action::Submit).await?;
        submission.writes.insert(0, created);
        let first = Write::InsertApplication(submission.app.clone());
        commit_submission(state, first, submission).await?;
        state
            .store
            .application(&app.id)
            .await?
            .ok_or_else(|| DomainError::Internal("an application vanished after commit".into()))?
    };
    Ok(stored)
}

/// The application `id` of `caller`'s own organization (others may see it, not change it).
async fn own_application(
    state: &Authority,
    caller: &Caller,
    id: &str,
) -> Result<Application, DomainError> {
    let app = visible(state, caller, id).await?;
    if app.org_id != caller.org_id {
        return Err(DomainError::Forbidden(
            "only the applicant organization may change its application".into(),
        ));
    }
    Ok(app)
}

/// Replaces the plan of a draft, or of an application with changes requested, read at
/// `version` (a stale version is a conflict).
pub async fn update(
    state: &Authority,
    caller: &Caller,
    id: &str,
    plan: &RunPlan,
    version: i64,
) -> Result<Application, DomainError> {
    let mut app = own_application(state, caller, id).await?;
    if !matches!(app.status, Status::Draft | Status::ChangesRequested) {
        return Err(DomainError::Conflict(format!(
            "the plan of {} application cannot change; only drafts and applications with changes requested can",
            runpermit_types::names::with_article(app.status.as_str())
        )));
    }
    let estimate = assess(plan)?;
    let (class, _) = classification(state, &app.org_id, plan, &estimate).await?;
    let fresh = draft(state, caller, app.id.clone(), plan, &estimate, &class)?;
    app.plan_json = fresh.plan_json;
    app.plan_digest = fresh.plan_digest;
    app.estimate_json = fresh.estimate_json;
    app.tier = fresh.tier;
    app.decision = fresh.decision;
    app.approvals_required = fresh.approvals_required;
    app.policy_version = fresh.policy_version;
    app.updated_at = fresh.updated_at;
    let audit = event(
        Some(caller),
        app.updated_at,
        "application.update",
        &format!("application/{}", app.id),
        None,
        json!({"plan_digest": app.plan_digest, "tier": app.tier}),
    );
    state
        .store
        .commit(vec![
            Write::UpdateApplication {
                application: app.clone(),
                expected_version: version,
            },
            audit,
        ])
        .await?;
    visible(state, caller, id).await
}

/// Submits a draft, or resubmits an application with changes requested; the policy decides
/// what follows (exempt, permitted, reviewed or denied).
pub async fn submit(
    state: &Authority,
    caller: &Caller,
    id: &str,
) -> Result<Application, DomainError> {
    let app = own_application(state, caller, id).await?;
    let action = if app.status == Status::ChangesRequested {
        Action::Resubmit
    } else {
        Action::Submit
    };
    let expected_version = app.version;
    let submission = prepare_submission(state, caller, app, action).await?;
    let first = Write::UpdateApplication {
        application: submission.app.clone(),
        expected_version,
    };
    commit_submission(state, first, submission).await?;
    visible(state, caller, id).await
}

/// The applicant withdraws its application, with `reason`.
pub async fn withdraw(
    state: &Authority,
    caller: &Caller,
    id: &str,
    reason: Option<&str>,
) -> Result<Application, DomainError> {
    step(
        state,
        caller,
        id,
        reason,
        Action::Withdraw,
        "application.withdraw",
    )
    .await
}

/// The applicant appeals a denial, with `reason`.
pub async fn appeal(
    state: &Authority,
    caller: &Caller,
    id: &str,
    reason: Option<&str>,
) -> Result<Application, DomainError> {
    step(
        state,
        caller,
        id,
        reason,
        Action::Appeal,
        "application.appeal",
    )
    .await
}

/// An applicant's step that needs a reason: the transition, audited, in one batch.
async fn step(
    state: &Authority,
    caller: &Caller,
    id: &str,
    reason: Option<&str>,
    action: Action,
    audit_action: &str,
) -> Result<Application, DomainError> {
    let reason = checked_reason("reason", reason.unwrap_or_default())?;
    let mut app = own_application(state, caller, id).await?;
    let expected_version = app.version;
    let mut writes =
        transition_writes(state, caller, &mut app, action, audit_action, Some(&reason))?;
    writes.insert(
        0,
        Write::UpdateApplication {
            application: app,
            expected_version,
        },
    );
    state.store.commit(writes).await?;
    visible(state, caller, id).await
}
