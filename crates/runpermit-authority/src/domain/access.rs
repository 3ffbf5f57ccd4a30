//! Structured access to registered models (docs/access.md): a researcher's organization
//! applies for access at a tier; the model's developer consents or objects; reviewers decide,
//! as many as the policy's `[access]` asks for the tier, and never over a required consent;
//! an approved application becomes a signed grant (`runpermit-access+jwt`), written to the
//! public log (`access_granted`, carrying the token) in the same batch, so that enforcement
//! points can demand proof that it is public. Reviewers suspend, reinstate and revoke grants
//! (`access_changed`; the signed status list names every grant not in good standing). At each
//! milestone report, the evaluator organizations the policy names get an `api_sampling` grant
//! to that checkpoint for the evaluation window, without applying.

use runpermit_log::LogEntry;
use runpermit_permit::{
    AccessGrantRequest, AccessTier, Duties, GrantOrigin, GrantedModel, Grantee, PermitStatus,
    Quotas, Rate, StatusEntry, check_access_grant, sign_access_grant,
};
use runpermit_policy::access::tier_rank;
use runpermit_store::{AccessRequest, Grant, Milestone, Run, Write};
use runpermit_types::text::{MAX_NAME_CHARS, MAX_REASON_CHARS};
use runpermit_types::{OrgKind, Problems};
use serde_json::{Value, json};

use crate::domain::audit::event;
use crate::domain::ids::{new_id, sha256_hex};
use crate::domain::log as tlog;
use crate::domain::{Authority, Caller, DomainError};

/// An application as its applicant sends it (the API's request body).
pub use runpermit_api::access::{AccessReview, Consent, NewAccessRequest};

/// How many times a decision is retried when the application changed meanwhile.
const CAS_ATTEMPTS: usize = 8;

/// The grant's log subject (its `access_granted` entry), and its standing changes'.
pub fn grant_subject(id: &str) -> String {
    format!("grant/{id}")
}

fn status_subject(id: &str) -> String {
    format!("grant-status/{id}")
}

fn digest_problem(p: &mut Problems, field: &str, value: &str) {
    let ok = value.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    });
    if !ok {
        p.push(
            field,
            format!("must be sha256: and 64 lowercase hex digits (got {value:?})"),
        );
    }
}

/// Reads `{"tokens", "requests", "accelerator_hours"}` (each optional).
fn quotas_of(value: &Value) -> Result<Quotas, String> {
    if value.is_null() {
        return Ok(Quotas::default());
    }
    serde_json::from_value(value.clone())
        .map_err(|e| format!("must be an object of tokens, requests and accelerator_hours: {e}"))
}

/// Records an application by `caller` (a developer's applicant or an evaluator of another
/// organization than the model's developer). Every invalid field is named at once; an
/// unknown model is named as such.
pub async fn apply(
    state: &Authority,
    caller: &Caller,
    body: NewAccessRequest,
) -> Result<AccessRequest, DomainError> {
    let mut p = Problems::default();
    p.id("model_id", &body.model_id);
    if tier_rank(&body.tier).is_none() {
        p.push(
            "tier",
            format!(
                "must be one of {} (got {:?})",
                runpermit_policy::access::ACCESS_TIERS.join(", "),
                body.tier
            ),
        );
    }
    p.text("purpose", &body.purpose, MAX_REASON_CHARS, true);
    digest_problem(&mut p, "research_plan_digest", &body.research_plan_digest);
    digest_problem(&mut p, "agreement_digest", &body.agreement_digest);
    let quotas = match quotas_of(&body.quotas) {
        Ok(q) => Some(q),
        Err(e) => {
            p.push("quotas", e);
            None
        }
    };
    let max_days = state.policy.access.max_grant_days;
    if !(1..=max_days).contains(&body.days) {
        p.push(
            "days",
            format!("must be from 1 to {max_days} (the policy's longest grant)"),
        );
    }
    p.check()?;
    let Some(model) = state.store.model(&body.model_id).await? else {
        return Err(DomainError::field(
            "model_id",
            format!("no registered model {}", body.model_id),
        ));
    };
    if model.org_id == caller.org_id {
        return Err(DomainError::field(
            "model_id",
            "a developer needs no grant to its own model",
        ));
    }
    let now = state.clock.now_ms();
    let request = AccessRequest {
        id: new_id("acr"),
        org_id: caller.org_id.clone(),
        member_id: caller.member_id.clone(),
        model_id: model.id.clone(),
        developer_org_id: model.org_id.clone(),
        tier: body.tier,
        purpose: body.purpose.trim().to_owned(),
        research_plan_digest: body.research_plan_digest,
        agreement_digest: body.agreement_digest,
        quotas_json: serde_json::to_string(&quotas.unwrap_or_default())
            .map_err(|e| DomainError::Internal(e.to_string()))?,
        days: i64::from(body.days),
        status: "pending".into(),
        consent: None,
        consent_reason: None,
        approvals_json: "[]".into(),
        reason: None,
        grant_id: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    // The whole grant is checked now, so that nothing approved later fails to sign.
    let (draft, _) = grant_request(state, &request, &model.name, &model.checkpoint_digest, now)?;
    check_access_grant(draft, now.div_euclid(1000)).map_err(prefixed)?;
    state
        .store
        .commit(vec![
            Write::InsertAccessRequest(request.clone()),
            event(
                Some(caller),
                now,
                "access.apply",
                &format!("access-request/{}", request.id),
                None,
                json!({"model_id": request.model_id, "tier": request.tier, "days": request.days}),
            ),
        ])
        .await?;
    Ok(request)
}

fn prefixed(errors: Vec<runpermit_types::FieldError>) -> DomainError {
    DomainError::Invalid(
        errors
            .into_iter()
            .map(|mut e| {
                e.field = format!("grant.{}", e.field);
                e
            })
            .collect(),
    )
}

/// The policy's rate and duties for every grant.
fn rate_and_duties(state: &Authority) -> (Rate, Duties) {
    let a = &state.policy.access;
    (
        Rate {
            burst: a.rate_burst,
            count: a.rate_count,
            period_seconds: a.rate_period_seconds,
        },
        Duties {
            usage_report_interval_seconds: a.usage_report_interval_seconds,
            publication_review_days: a.publication_review_days,
            incident_report_hours: a.incident_report_hours,
        },
    )
}

/// The grant an application becomes, to be checked and signed at `now_ms`.
fn grant_request(
    state: &Authority,
    r: &AccessRequest,
    model_name: &str,
    checkpoint_digest: &str,
    now_ms: i64,
) -> Result<(AccessGrantRequest, String), DomainError> {
    let tier: AccessTier = r
        .tier
        .parse()
        .map_err(|e: String| DomainError::field("tier", e))?;
    let quotas: Quotas = serde_json::from_str(&r.quotas_json)
        .map_err(|e| DomainError::Internal(format!("stored quotas: {e}")))?;
    let (rate, duties) = rate_and_duties(state);
    let now_s = now_ms.div_euclid(1000);
    let id = new_id("grt");
    Ok((
        AccessGrantRequest {
            iss: state.issuer.clone(),
            jti: id.clone(),
            nbf: now_s,
            exp: now_s + r.days * 86_400,
            grantee: Grantee {
                org_id: r.org_id.clone(),
                member_id: r.member_id.clone(),
                name: r.org_id.clone(),
            },
            developer: r.developer_org_id.clone(),
            model: GrantedModel {
                model_id: r.model_id.clone(),
                name: model_name.to_owned(),
                checkpoint_digest: checkpoint_digest.to_owned(),
            },
            tier,
            quotas,
            rate,
            purpose: r.purpose.clone(),
            research_plan_digest: r.research_plan_digest.clone(),
            agreement_digest: r.agreement_digest.clone(),
            duties,
            origin: GrantOrigin::Application {
                application_id: r.id.clone(),
            },
        },
        id,
    ))
}

/// Signs `request` and returns the grant with the writes that store it, audit it and put it
/// in the public log (one batch with whatever else the caller commits).
fn sign(
    state: &Authority,
    caller: Option<&Caller>,
    request: AccessGrantRequest,
    (request_id, milestone_id): (Option<String>, Option<String>),
    now_ms: i64,
) -> Result<(Grant, Vec<Write>), DomainError> {
    let checked = check_access_grant(request, now_ms.div_euclid(1000)).map_err(prefixed)?;
    let signed = sign_access_grant(checked, &state.signer);
    let c = &signed.claims;
    let origin = match c.origin {
        GrantOrigin::Application { .. } => "application",
        GrantOrigin::Evaluation { .. } => "evaluation",
    };
    let grant = Grant {
        id: c.jti.clone(),
        request_id,
        milestone_id,
        model_id: c.model.model_id.clone(),
        org_id: c.grantee.org_id.clone(),
        developer_org_id: c.developer.clone(),
        tier: c.tier.as_str().to_owned(),
        origin: origin.to_owned(),
        token: signed.token.clone(),
        claims_json: serde_json::to_string(c).map_err(|e| DomainError::Internal(e.to_string()))?,
        status: "active".into(),
        reason: String::new(),
        status_since: now_ms,
        exp_s: c.exp,
        version: 1,
        created_at: now_ms,
        usage_reports: 0,
        usage_requests: 0,
        usage_prompt_tokens: 0,
        usage_completion_tokens: 0,
        usage_refused: 0,
        usage_last_to_s: None,
    };
    let subject = grant_subject(&grant.id);
    let writes = vec![
        Write::InsertGrant(grant.clone()),
        event(
            caller,
            now_ms,
            "access.grant",
            &subject,
            None,
            json!({"model_id": grant.model_id, "org_id": grant.org_id, "tier": grant.tier,
                   "origin": grant.origin, "token_sha256": sha256_hex(grant.token.as_bytes())}),
        ),
        tlog::queue(
            &subject,
            &LogEntry::AccessGranted {
                grant_id: grant.id.clone(),
                model_id: grant.model_id.clone(),
                grantee_org_id: grant.org_id.clone(),
                tier: grant.tier.clone(),
                token: grant.token.clone(),
            },
            now_ms,
        )?,
    ];
    Ok((grant, writes))
}

/// The application `id`, or 404 when the caller may not see it: authority staff see every
/// one; an organization those it made and those for its models.
pub async fn visible_request(
    state: &Authority,
    caller: &Caller,
    id: &str,
) -> Result<AccessRequest, DomainError> {
    match state.store.access_request(id).await? {
        Some(r)
            if caller.is_authority_staff()
                || r.org_id == caller.org_id
                || r.developer_org_id == caller.org_id =>
        {
            Ok(r)
        }
        _ => Err(DomainError::NotFound(format!("no access request {id}"))),
    }
}

/// The applications `caller` may see, newest first.
pub async fn visible_requests(
    state: &Authority,
    caller: &Caller,
) -> Result<Vec<AccessRequest>, DomainError> {
    let scope = (!caller.is_authority_staff()).then_some(caller.org_id.as_str());
    Ok(state.store.access_requests(scope).await?)
}

/// Applies `change` to application `id` by compare-and-set, retrying on a concurrent change;
/// `change` returns the writes to add (a grant), or refuses.
async fn decide<F>(
    state: &Authority,
    caller: &Caller,
    id: &str,
    action: &str,
    reason: &str,
    mut change: F,
) -> Result<AccessRequest, DomainError>
where
    F: FnMut(&mut AccessRequest, i64) -> Result<Vec<Write>, DomainError>,
{
    for _ in 0..CAS_ATTEMPTS {
        let stored = visible_request(state, caller, id).await?;
        if stored.status != "pending" {
            return Err(DomainError::Conflict(format!(
                "access request {id} is already {}",
                stored.status
            )));
        }
        let now = state.clock.now_ms();
        let mut next = stored.clone();
        let mut writes = change(&mut next, now)?;
        next.updated_at = now;
        writes.push(event(
            Some(caller),
            now,
            action,
            &format!("access-request/{id}"),
            Some(reason),
            json!({"status": next.status, "consent": next.consent, "grant_id": next.grant_id}),
        ));
        writes.insert(
            0,
            Write::UpdateAccessRequest {
                request: next.clone(),
                expected_version: stored.version,
            },
        );
        match state.store.commit(writes).await {
            Ok(()) => {
                next.version = stored.version + 1;
                return Ok(next);
            }
            Err(runpermit_store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Conflict(format!(
        "access request {id} kept changing; try again"
    )))
}

/// The model developer's answer to application `id`.
pub async fn consent(
    state: &Authority,
    caller: &Caller,
    id: &str,
    body: Consent,
) -> Result<AccessRequest, DomainError> {
    let reason = checked_reason(&body.reason)?;
    let stored = visible_request(state, caller, id).await?;
    if stored.developer_org_id != caller.org_id {
        return Err(DomainError::Forbidden(format!(
            "only the model's developer ({}) answers for its consent",
            stored.developer_org_id
        )));
    }
    decide(state, caller, id, "access.consent", &reason, |r, _| {
        r.consent = Some(
            if body.consent {
                "consented"
            } else {
                "objected"
            }
            .into(),
        );
        r.consent_reason = Some(reason.clone());
        Ok(Vec::new())
    })
    .await
}

fn checked_reason(reason: &str) -> Result<String, DomainError> {
    let mut p = Problems::default();
    p.text("reason", reason, MAX_REASON_CHARS, true);
    p.check()?;
    Ok(reason.trim().to_owned())
}

/// A reviewer's decision on application `id`: a denial decides; an approval counts, and once
/// the tier's approvals are in (distinct reviewers) and the developer's consent is in where
/// the policy requires it, the grant is signed and logged in the same batch.
pub async fn review(
    state: &Authority,
    caller: &Caller,
    id: &str,
    body: AccessReview,
) -> Result<AccessRequest, DomainError> {
    let reason = checked_reason(&body.reason)?;
    let stored = visible_request(state, caller, id).await?;
    let model = state
        .store
        .model(&stored.model_id)
        .await?
        .ok_or_else(|| DomainError::Internal(format!("model {} vanished", stored.model_id)))?;
    let policy = &state.policy.access;
    let needed = policy.approvals_for(&stored.tier);
    let consent_required = policy.consent_required(&stored.tier);
    decide(state, caller, id, "access.review", &reason, |r, now| {
        if !body.approve {
            r.status = "denied".into();
            r.reason = Some(reason.clone());
            return Ok(Vec::new());
        }
        let mut approvals: Vec<Value> = serde_json::from_str(&r.approvals_json).unwrap_or_default();
        if approvals
            .iter()
            .any(|a| a["member_id"] == caller.member_id.as_str())
        {
            return Err(DomainError::Conflict(format!(
                "you already approved access request {id}: another reviewer must"
            )));
        }
        if consent_required && r.consent.as_deref() != Some("consented") {
            return Err(DomainError::Conflict(format!(
                "tier {} needs the model developer's consent first ({}): the policy's [access] \
                 developer_consent_from is {}",
                r.tier,
                match r.consent.as_deref() {
                    Some("objected") => "it objected",
                    _ => "it has not answered",
                },
                policy.developer_consent_from
            )));
        }
        approvals.push(json!({"member_id": caller.member_id, "reason": reason, "at": now}));
        r.approvals_json = Value::Array(approvals.clone()).to_string();
        if (approvals.len() as u32) < needed {
            return Ok(Vec::new());
        }
        let (draft, _) = grant_request(state, r, &model.name, &model.checkpoint_digest, now)?;
        let (grant, writes) = sign(state, Some(caller), draft, (Some(r.id.clone()), None), now)?;
        r.status = "granted".into();
        r.grant_id = Some(grant.id);
        r.reason = Some(
            approvals
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    format!(
                        "reviewer {} of {}: {}",
                        i + 1,
                        approvals.len(),
                        a["reason"].as_str().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(" | "),
        );
        Ok(writes)
    })
    .await
}

/// The approvals an application has so far.
pub fn approvals_of(r: &AccessRequest) -> u32 {
    serde_json::from_str::<Vec<Value>>(&r.approvals_json).map_or(0, |a| a.len() as u32)
}

/// The grant `id`, or 404 when the caller may not see it (authority staff, the grantee, the
/// model's developer).
pub async fn visible_grant(
    state: &Authority,
    caller: &Caller,
    id: &str,
) -> Result<Grant, DomainError> {
    match state.store.grant(id).await? {
        Some(g)
            if caller.is_authority_staff()
                || g.org_id == caller.org_id
                || g.developer_org_id == caller.org_id =>
        {
            Ok(g)
        }
        _ => Err(DomainError::NotFound(format!("no grant {id}"))),
    }
}

/// The grants `caller` may see, newest first.
pub async fn visible_grants(state: &Authority, caller: &Caller) -> Result<Vec<Grant>, DomainError> {
    let scope = (!caller.is_authority_staff()).then_some(caller.org_id.as_str());
    Ok(state.store.grants(scope).await?)
}

/// A reviewer suspends (`suspended`), reinstates (`active`) or revokes (`revoked`, final)
/// grant `id`: audited and written to the public log (`access_changed`); the next status list
/// names it.
pub async fn change_grant(
    state: &Authority,
    caller: &Caller,
    id: &str,
    to: &str,
    reason: &str,
) -> Result<Grant, DomainError> {
    let reason = checked_reason(reason)?;
    for _ in 0..CAS_ATTEMPTS {
        let stored = visible_grant(state, caller, id).await?;
        let allowed = matches!(
            (stored.status.as_str(), to),
            ("active", "suspended") | ("suspended", "active") | ("active" | "suspended", "revoked")
        );
        if !allowed {
            return Err(DomainError::Conflict(format!(
                "grant {id} is {}: it cannot become {to}{}",
                stored.status,
                if stored.status == "revoked" {
                    " (revocation is final)"
                } else {
                    ""
                }
            )));
        }
        let now = state.clock.now_ms();
        let mut next = stored.clone();
        next.status = to.to_owned();
        next.reason = reason.clone();
        next.status_since = now;
        let logged = if to == "active" { "reinstated" } else { to };
        let writes = vec![
            Write::UpdateGrant {
                grant: next.clone(),
                expected_version: stored.version,
            },
            event(
                Some(caller),
                now,
                &format!("access.{logged}"),
                &grant_subject(id),
                Some(&reason),
                json!({"from": stored.status, "to": to}),
            ),
            tlog::queue(
                &status_subject(id),
                &LogEntry::AccessChanged {
                    grant_id: id.to_owned(),
                    status: logged.to_owned(),
                    reason: reason.clone(),
                },
                now,
            )?,
        ];
        match state.store.commit(writes).await {
            Ok(()) => {
                next.version = stored.version + 1;
                return Ok(next);
            }
            Err(runpermit_store::StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(DomainError::Conflict(format!(
        "grant {id} kept changing; try again"
    )))
}

/// The status list's entries for grants not in good standing whose token has not expired.
pub async fn status_entries(state: &Authority) -> Result<Vec<StatusEntry>, DomainError> {
    let now_s = state.clock.now_s();
    let skew = i64::from(state.policy.permit.clock_skew_seconds);
    Ok(state
        .store
        .grants_not_in_good_standing(now_s - skew)
        .await?
        .into_iter()
        .filter_map(|g| {
            let status = match g.status.as_str() {
                "suspended" => PermitStatus::Suspended,
                "revoked" => PermitStatus::Revoked,
                _ => return None,
            };
            Some(StatusEntry {
                permit_id: g.id,
                status,
                reason: g.reason,
                since: g.status_since.div_euclid(1000).min(now_s),
            })
        })
        .collect())
}

/// The pre-deployment evaluation grants of a milestone report: for each evaluator the
/// policy's `[access] evaluators` names (other than the run's own organization), an
/// `api_sampling` grant to the report's checkpoint for the evaluation window, signed and
/// logged in the batch that records the report. The grant names the milestone report as its
/// model (the checkpoint need not be a registered model yet) and the run's plan digest as its
/// research plan; the agreement is the policy's, by version.
pub async fn evaluation_grants(
    state: &Authority,
    run: &Run,
    milestone: &Milestone,
    now_ms: i64,
) -> Result<Vec<Write>, DomainError> {
    let a = &state.policy.access;
    let evaluators: Vec<&String> = a.evaluators.iter().filter(|e| **e != run.org_id).collect();
    if evaluators.is_empty() {
        return Ok(Vec::new());
    }
    let plan_digest = match state.store.permit(&run.permit_id).await? {
        Some(p) => match state.store.application(&p.application_id).await? {
            Some(app) => app.plan_digest,
            None => format!("sha256:{}", sha256_hex(run.id.as_bytes())),
        },
        None => format!("sha256:{}", sha256_hex(run.id.as_bytes())),
    };
    let agreement = format!(
        "sha256:{}",
        sha256_hex(
            format!(
                "runpermit pre-deployment evaluation access under policy {}",
                state.policy.version
            )
            .as_bytes()
        )
    );
    let (rate, duties) = rate_and_duties(state);
    let now_s = now_ms.div_euclid(1000);
    let mut writes = Vec::new();
    for org in evaluators {
        let name = match state.store.organization(org).await? {
            Some(o) => o.name,
            None => org.clone(),
        };
        let request = AccessGrantRequest {
            iss: state.issuer.clone(),
            jti: new_id("grt"),
            nbf: now_s,
            exp: now_s + i64::from(a.evaluation_window_days) * 86_400,
            grantee: Grantee {
                org_id: org.clone(),
                member_id: org.clone(),
                name: truncate(&name),
            },
            developer: run.org_id.clone(),
            model: GrantedModel {
                model_id: milestone.id.clone(),
                name: truncate(&format!(
                    "run {} checkpoint at tranche {}",
                    run.id, milestone.tranche
                )),
                checkpoint_digest: milestone.checkpoint_digest.clone(),
            },
            tier: AccessTier::ApiSampling,
            quotas: Quotas {
                tokens: Some(a.evaluation_tokens),
                ..Quotas::default()
            },
            rate,
            purpose: format!(
                "pre-deployment evaluation of run {}'s checkpoint at milestone {} (tranche {})",
                run.id, milestone.id, milestone.tranche
            ),
            research_plan_digest: plan_digest.clone(),
            agreement_digest: agreement.clone(),
            duties,
            origin: GrantOrigin::Evaluation {
                milestone_id: milestone.id.clone(),
            },
        };
        let (_, w) = sign(
            state,
            None,
            request,
            (None, Some(milestone.id.clone())),
            now_ms,
        )?;
        writes.extend(w);
    }
    Ok(writes)
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_NAME_CHARS).collect()
}

/// Whether organizations of `kind` may apply for access (researchers at labs and evaluation
/// institutes; not providers or the authority).
pub fn may_apply(kind: OrgKind) -> bool {
    matches!(kind, OrgKind::Developer | OrgKind::Evaluator)
}
