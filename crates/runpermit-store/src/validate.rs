//! Checks on a batch before it reaches the database: enumerated values, JSON text, key sizes.
//! Every problem of the batch is reported at once, each naming its write and field.

use crate::records::{MEMBER_ROLES, ORGANIZATION_KINDS, PERMIT_STATUSES, REVIEW_DECISIONS};
use crate::{StoreError, Write};

/// Checks every write of `writes`; `Invalid` lists all problems found.
pub(crate) fn batch(writes: &[Write]) -> Result<(), StoreError> {
    let mut problems = Problems::default();
    for (i, write) in writes.iter().enumerate() {
        problems.at = format!("writes[{i}] ({})", write.describe());
        check(write, &mut problems);
    }
    if problems.list.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(problems.list.join("; ")))
    }
}

#[derive(Default)]
struct Problems {
    at: String,
    list: Vec<String>,
}

impl Problems {
    fn push(&mut self, field: &str, message: String) {
        self.list.push(format!("{} {field}: {message}", self.at));
    }

    fn id(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.push(field, "must not be empty".to_owned());
        }
    }

    fn one_of(&mut self, field: &str, value: &str, accepted: &[&str]) {
        if !accepted.contains(&value) {
            self.push(
                field,
                format!("must be one of {} (got {value:?})", accepted.join(", ")),
            );
        }
    }

    fn json(&mut self, field: &str, value: &str) {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(value) {
            self.push(
                field,
                format!("must be JSON text, such as {{}} or null ({e})"),
            );
        }
    }
}

fn check(write: &Write, p: &mut Problems) {
    match write {
        Write::InsertOrganization(o) => {
            p.id("id", &o.id);
            p.one_of("kind", &o.kind, ORGANIZATION_KINDS);
        }
        Write::InsertMember(m) => {
            p.id("id", &m.id);
            p.id("org_id", &m.org_id);
            p.one_of("role", &m.role, MEMBER_ROLES);
        }
        Write::InsertToken(t) => {
            p.id("id", &t.id);
            p.id("member_id", &t.member_id);
            let hex = t.hash.len() == 64
                && t.hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                p.push(
                    "hash",
                    "must be the lowercase hex SHA-256 of the secret (64 characters 0-9a-f)"
                        .to_owned(),
                );
            }
        }
        Write::RevokeToken { id, .. } => p.id("id", id),
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
        }
        Write::InsertPermit(permit) => {
            p.id("id", &permit.id);
            p.id("application_id", &permit.application_id);
            p.id("kid", &permit.kid);
            p.one_of("status", &permit.status, PERMIT_STATUSES);
            p.json("claims_json", &permit.claims_json);
            let signed = (permit.token.is_some(), permit.issued_at.is_some());
            match (permit.status.as_str(), signed) {
                ("intent", (false, false)) | ("issued", (true, true)) => {}
                ("intent", _) => p.push(
                    "token, issued_at",
                    "must both be None for an intent (IssuePermit sets them)".to_owned(),
                ),
                ("issued", _) => p.push(
                    "token, issued_at",
                    "must both be set for an issued permit".to_owned(),
                ),
                _ => {}
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
            if k.public_key.len() != 32 {
                p.push(
                    "public_key",
                    format!(
                        "must be the 32 raw bytes of an Ed25519 public key (got {} bytes)",
                        k.public_key.len()
                    ),
                );
            }
        }
        Write::RetireSigningKey { kid, .. } => p.id("kid", kid),
        Write::InsertAudit(e) => {
            p.id("action", &e.action);
            p.id("subject", &e.subject);
            p.json("details_json", &e.details_json);
        }
        Write::PutIdempotency(i) => {
            p.id("principal_id", &i.principal_id);
            p.id("key", &i.key);
            if !(100..=599).contains(&i.status) {
                p.push(
                    "status",
                    format!("must be an HTTP status, 100 to 599 (got {})", i.status),
                );
            }
            p.json("response_json", &i.response_json);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Member, SigningKey};

    #[test]
    fn reports_every_problem_with_its_write_and_field() {
        let writes = vec![
            Write::InsertMember(Member {
                id: "m1".into(),
                org_id: String::new(),
                name: "Ada".into(),
                role: "boss".into(),
                created_at: 0,
            }),
            Write::InsertSigningKey(SigningKey {
                kid: "k1".into(),
                public_key: vec![0; 31],
                created_at: 0,
                retired_at: None,
            }),
        ];
        let Err(StoreError::Invalid(message)) = batch(&writes) else {
            panic!("expected Invalid");
        };
        assert!(
            message.contains("writes[0] (InsertMember m1) org_id: must not be empty"),
            "{message}"
        );
        assert!(
            message.contains("role: must be one of admin, reviewer"),
            "{message}"
        );
        assert!(
            message
                .contains("writes[1] (InsertSigningKey k1) public_key: must be the 32 raw bytes"),
            "{message}"
        );
    }

    #[test]
    fn accepts_an_empty_batch() {
        assert!(batch(&[]).is_ok());
    }
}
