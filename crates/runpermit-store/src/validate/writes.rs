//! What each kind of [`Write`] must hold before it reaches the database, one arm per kind,
//! each problem pushed to the batch's [`Problems`] under its field's name.

use runpermit_types::{MilestoneStatus, PermitState};

use super::Problems;
use crate::{Idempotency, REVIEW_DECISIONS, Write};

/// A secret's hash: lowercase hex SHA-256 (64 characters 0-9a-f).
fn sha256_hex(hash: &str, field: &str, p: &mut Problems) {
    let hex = hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        p.push(
            field,
            "must be the lowercase hex SHA-256 of the secret (64 characters 0-9a-f)".to_owned(),
        );
    }
}

pub(super) fn check(write: &Write, p: &mut Problems) {
    match write {
        Write::InsertOrganization(o) => {
            p.id("id", &o.id);
        }
        Write::InsertMember(m) => {
            p.id("id", &m.id);
            p.id("org_id", &m.org_id);
        }
        Write::InsertToken(t) => {
            p.id("id", &t.id);
            p.id("member_id", &t.member_id);
            sha256_hex(&t.hash, "hash", p);
        }
        Write::RevokeToken { id, .. } => p.id("id", id),
        Write::InsertSession(s) => {
            sha256_hex(&s.id_hash, "id_hash", p);
            p.id("token_id", &s.token_id);
            if s.csrf.len() < 32 || !s.csrf.bytes().all(|b| b.is_ascii_alphanumeric()) {
                p.push(
                    "csrf",
                    "must be at least 32 letters and digits (a random token)".to_owned(),
                );
            }
            if s.expires_at <= s.created_at {
                p.push("expires_at", "must be later than created_at".to_owned());
            }
        }
        Write::EndSession { id_hash, .. } => sha256_hex(id_hash, "id_hash", p),
        Write::InsertApplication(a) => application(a, p),
        Write::UpdateApplication {
            application: a,
            expected_version,
        } => {
            application(a, p);
            if *expected_version < 0 {
                p.push(
                    "expected_version",
                    format!("must be 0 or more (got {expected_version})"),
                );
            }
        }
        Write::InsertReview(r) => {
            p.id("id", &r.id);
            p.id("application_id", &r.application_id);
            p.id("reviewer_id", &r.reviewer_id);
            p.one_of("decision", &r.decision, REVIEW_DECISIONS);
            p.json("conditions_json", &r.conditions_json);
            p.json("evaluators_json", &r.evaluators_json);
        }
        Write::InsertPermit(permit) => {
            p.id("id", &permit.id);
            p.id("application_id", &permit.application_id);
            p.id("kid", &permit.kid);
            p.json("claims_json", &permit.claims_json);
            let signed = (permit.token.is_some(), permit.issued_at.is_some());
            match (permit.status, signed) {
                (PermitState::Intent, (false, false)) | (PermitState::Issued, (true, true)) => {}
                (PermitState::Intent, _) => p.push(
                    "token, issued_at",
                    "must both be None for an intent (IssuePermit sets them)".to_owned(),
                ),
                (PermitState::Issued, _) => p.push(
                    "token, issued_at",
                    "must both be set for an issued permit".to_owned(),
                ),
            }
        }
        Write::IssuePermit { id, token, .. } => {
            p.id("id", id);
            p.id("token", token);
        }
        Write::InsertReceipt(r) => {
            p.id("id", &r.id);
            p.id("application_id", &r.application_id);
            p.id("token", &r.token);
        }
        Write::InsertSigningKey(k) => {
            p.id("kid", &k.kid);
            p.ed25519_key("public_key", &k.public_key);
        }
        Write::RetireSigningKey { kid, .. } => p.id("kid", kid),
        Write::ClaimPlan {
            plan_digest,
            permit_id,
            replaces,
            ..
        } => {
            p.id("plan_digest", plan_digest);
            p.id("permit_id", permit_id);
            if let Some(previous) = replaces {
                p.id("replaces", previous);
            }
        }
        Write::InsertDeployment(d) => {
            p.id("log_origin", &d.log_origin);
            p.id("log_vkey", &d.log_vkey);
            let prefix = format!("{}+", d.log_origin);
            if !d.log_origin.is_empty() && !d.log_vkey.starts_with(&prefix) {
                p.push(
                    "log_vkey",
                    format!(
                        "must be the verifier key of the log named log_origin ({prefix}HASH+KEY)"
                    ),
                );
            }
        }
        Write::InsertAudit(e) => {
            p.id("action", &e.action);
            p.id("subject", &e.subject);
            p.json("details_json", &e.details_json);
        }
        Write::ReserveIdempotency(i) => {
            p.id("principal_id", &i.principal_id);
            p.id("key", &i.key);
            if i.status != Idempotency::RESERVED {
                p.push(
                    "status",
                    format!(
                        "must be {} for a reservation (got {})",
                        Idempotency::RESERVED,
                        i.status
                    ),
                );
            }
            if !i.response_json.is_empty() {
                p.push("response_json", "must be empty for a reservation".into());
            }
        }
        Write::TakeOverIdempotency {
            principal_id,
            key,
            reserved_at,
            at,
        } => {
            p.id("principal_id", principal_id);
            p.id("key", key);
            if at <= reserved_at {
                p.push(
                    "at",
                    format!("must be later than reserved_at {reserved_at} (got {at})"),
                );
            }
        }
        Write::AnswerIdempotency {
            principal_id,
            key,
            status,
            response_json,
            ..
        } => {
            p.id("principal_id", principal_id);
            p.id("key", key);
            if !(100..=599).contains(status) {
                p.push(
                    "status",
                    format!("must be an HTTP status, 100 to 599 (got {status})"),
                );
            }
            p.json("response_json", response_json);
        }
        Write::ReleaseIdempotency {
            principal_id, key, ..
        } => {
            p.id("principal_id", principal_id);
            p.id("key", key);
        }
        Write::QueueLogEntry { subject, entry, .. } => {
            p.id("subject", subject);
            p.log_entry("entry", entry);
        }
        Write::InsertProviderKey(k) => {
            p.id("kid", &k.kid);
            p.id("org_id", &k.org_id);
            p.ed25519_key("public_key", &k.public_key);
        }
        Write::RevokeProviderKey { kid, .. } => p.id("kid", kid),
        Write::InsertRun(r) => run(r, p),
        Write::UpdateRun {
            run: r,
            expected_version,
        } => {
            run_state(r, p);
            p.not_negative("expected_version", *expected_version);
        }
        Write::SetRunSummarized {
            id,
            flop,
            expected_flop,
            ..
        } => {
            p.id("id", id);
            p.flop("flop", *flop);
            p.flop("expected_flop", *expected_flop);
        }
        Write::InsertMilestone(m) => {
            p.id("id", &m.id);
            p.id("run_id", &m.run_id);
            if m.tranche < 1 {
                p.push("tranche", format!("must be 1 or more (got {})", m.tranche));
            }
            p.id("checkpoint_digest", &m.checkpoint_digest);
            p.flop("cumulative_flop", m.cumulative_flop);
            for (field, value) in [
                ("tokens", m.tokens),
                ("metered_flop", m.metered_flop),
                ("operation_count_flop", m.operation_count_flop),
            ] {
                if let Some(v) = value {
                    p.flop(field, v);
                }
            }
            p.json("evals_json", &m.evals_json);
            p.id("submitted_by", &m.submitted_by);
            let decided = [
                m.decided_by.is_some(),
                m.decided_org.is_some(),
                m.decided_at.is_some(),
            ];
            match m.status {
                MilestoneStatus::Submitted if decided.contains(&true) || m.reason.is_some() => p
                    .push(
                        "decided_by, decided_org, decided_at, reason",
                        "must all be None for a submitted milestone (DecideMilestone sets them)"
                            .to_owned(),
                    ),
                MilestoneStatus::Accepted | MilestoneStatus::Rejected
                    if decided.contains(&false) =>
                {
                    p.push(
                        "decided_by, decided_org, decided_at",
                        "must all be set for a decided milestone".to_owned(),
                    )
                }
                _ => {}
            }
        }
        Write::DecideMilestone {
            id,
            status,
            decided_by,
            decided_org,
            ..
        } => {
            p.id("id", id);
            if *status == MilestoneStatus::Submitted {
                p.push(
                    "status",
                    format!(
                        "must be one of accepted, rejected (got {:?})",
                        status.as_str()
                    ),
                );
            }
            p.id("decided_by", decided_by);
            p.id("decided_org", decided_org);
        }
        Write::InsertIncident(i) => {
            p.id("id", &i.id);
            p.id("org_id", &i.org_id);
            p.id("reported_by", &i.reported_by);
            if let Some(run_id) = &i.run_id {
                p.id("run_id", run_id);
            }
            p.id("category", &i.category);
            p.id("summary", &i.summary);
            p.json("details_json", &i.details_json);
            if i.followed_up_at.is_some() != i.follow_up.is_some() {
                p.push(
                    "followed_up_at, follow_up",
                    "must both be set or both be None".to_owned(),
                );
            }
        }
        Write::InsertAccessRequest(r) | Write::UpdateAccessRequest { request: r, .. } => {
            p.id("id", &r.id);
            p.id("org_id", &r.org_id);
            p.id("member_id", &r.member_id);
            p.id("model_id", &r.model_id);
            p.id("developer_org_id", &r.developer_org_id);
            p.id("tier", &r.tier);
            p.json("quotas_json", &r.quotas_json);
            p.json("approvals_json", &r.approvals_json);
            p.one_of("status", &r.status, &["pending", "granted", "denied"]);
            if let Some(c) = &r.consent {
                p.one_of("consent", c, &["consented", "objected"]);
            }
        }
        Write::InsertGrant(g) | Write::UpdateGrant { grant: g, .. } => {
            p.id("id", &g.id);
            p.id("model_id", &g.model_id);
            p.id("org_id", &g.org_id);
            p.id("developer_org_id", &g.developer_org_id);
            p.id("tier", &g.tier);
            p.one_of("origin", &g.origin, &["application", "evaluation"]);
            p.id("token", &g.token);
            p.json("claims_json", &g.claims_json);
            p.one_of("status", &g.status, &["active", "suspended", "revoked"]);
        }
        Write::InsertModel(m) => {
            p.id("id", &m.id);
            p.id("org_id", &m.org_id);
            p.id("run_id", &m.run_id);
            if let Some(milestone) = &m.milestone_id {
                p.id("milestone_id", milestone);
            }
            p.id("name", &m.name);
            p.sha256_hex(
                "checkpoint_digest",
                m.checkpoint_digest
                    .strip_prefix("sha256:")
                    .unwrap_or(&m.checkpoint_digest),
                "sha256: and the checkpoint's lowercase hex SHA-256",
            );
            if !m.checkpoint_digest.starts_with("sha256:") {
                p.push(
                    "checkpoint_digest",
                    "must start with sha256: (the digest's algorithm)".to_owned(),
                );
            }
            p.flop("cumulative_flop", m.cumulative_flop);
            p.id("release_plan", &m.release_plan);
            p.id("registered_by", &m.registered_by);
        }
        Write::InsertRunFlag(f) => {
            p.id("run_id", &f.run_id);
            p.id("kind", &f.kind);
            p.id("subject", &f.subject);
            p.id("message", &f.message);
            p.json("details_json", &f.details_json);
        }
        Write::FollowUpIncident { id, text, .. } => {
            p.id("id", id);
            p.id("text", text);
        }
        Write::InsertKycReport(k) => {
            p.id("id", &k.id);
            p.id("provider_id", &k.provider_id);
            p.id("customer", &k.customer);
            if k.to_s <= k.from_s {
                p.push(
                    "to_s",
                    format!(
                        "must be after from_s (got from_s {}, to_s {})",
                        k.from_s, k.to_s
                    ),
                );
            }
            p.not_negative("jobs", k.jobs);
            if !(k.accelerator_seconds.is_finite() && k.accelerator_seconds >= 0.0) {
                p.push(
                    "accelerator_seconds",
                    format!(
                        "must be finite and 0 or more (got {})",
                        k.accelerator_seconds
                    ),
                );
            }
            p.flop("flop", k.flop);
        }
    }
}

fn run(r: &crate::Run, p: &mut Problems) {
    run_state(r, p);
    p.id("permit_id", &r.permit_id);
    p.id("org_id", &r.org_id);
    p.flop("budget_flop", r.budget_flop);
    p.flop("cumulative_flop", r.cumulative_flop);
    p.flop("cumulative_upper_flop", r.cumulative_upper_flop);
    p.flop("cumulative_lower_flop", r.cumulative_lower_flop);
    p.flop("measured_flop", r.measured_flop);
    p.flop("measured_capacity_flop", r.measured_capacity_flop);
    p.flop("summarized_flop", r.summarized_flop);
}

/// The fields `UpdateRun` writes: never the usage figures, so that a run whose stored usage is
/// broken can still be held.
fn run_state(r: &crate::Run, p: &mut Problems) {
    p.id("id", &r.id);
    if r.tranche < 1 {
        p.push("tranche", format!("must be 1 or more (got {})", r.tranche));
    }
    p.flop("released_flop", r.released_flop);
    if !(0..=100).contains(&r.alerted_percent) {
        p.push(
            "alerted_percent",
            format!("must be 0 to 100 (got {})", r.alerted_percent),
        );
    }
    p.not_negative("version", r.version);
}

fn application(a: &crate::Application, p: &mut Problems) {
    p.id("id", &a.id);
    p.id("org_id", &a.org_id);
    p.id("created_by", &a.created_by);
    if a.approvals_required < 0 {
        p.push(
            "approvals_required",
            format!("must be 0 or more (got {})", a.approvals_required),
        );
    }
    p.json("plan_json", &a.plan_json);
    p.json("estimate_json", &a.estimate_json);
}
