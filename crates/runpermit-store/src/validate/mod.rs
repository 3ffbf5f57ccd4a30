//! Checks on a batch before it reaches the database: enumerated values, JSON text, key sizes.
//! Every problem of the batch is reported at once, each naming its write and field.

use crate::{MAX_LOG_ENTRY_BYTES, REVIEW_DECISIONS};
use runpermit_types::{MilestoneStatus, PermitState};

use crate::{Idempotency, LogBatch, StoreError, UsageRecord, Write};

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

/// Checks every record of a [`crate::RunStore::ingest_usage`] batch; `Invalid` lists all
/// problems found, each naming its record (index and key) and field.
pub(crate) fn usage(records: &[UsageRecord]) -> Result<(), StoreError> {
    // `p.at` stays empty (each problem starts " field: …"); a record's name is prefixed below.
    let mut p = Problems::default();
    for (i, r) in records.iter().enumerate() {
        let start = p.list.len();
        p.id("provider_id", &r.provider_id);
        p.id("run_id", &r.run_id);
        if r.seq < 1 {
            p.push("seq", format!("must be 1 or more (got {})", r.seq));
        }
        p.id("permit_id", &r.permit_id);
        p.id("cluster", &r.cluster);
        if r.to_s <= r.from_s {
            p.push(
                "to_s",
                format!(
                    "must be after from_s (got from_s {}, to_s {})",
                    r.from_s, r.to_s
                ),
            );
        }
        p.flop("flop", r.flop);
        p.flop("flop_lower", r.flop_lower);
        p.flop("flop_upper", r.flop_upper);
        p.flop("capacity_flop", r.capacity_flop);
        if !(r.flop_lower <= r.flop && r.flop <= r.flop_upper) {
            p.push(
                "flop",
                format!(
                    "must lie within flop_lower..=flop_upper (got {} <= {} <= {})",
                    r.flop_lower, r.flop, r.flop_upper
                ),
            );
        }
        p.id("method", &r.method);
        p.json("accelerator_seconds_json", &r.accelerator_seconds_json);
        p.sha256_hex(
            "digest",
            &r.digest,
            "the lowercase hex SHA-256 of the token",
        );
        p.id("token", &r.token);
        if p.list.len() > start {
            // Name the record only when it has problems: formatting it costs more than checking.
            let at = format!(
                "records[{i}] (provider {:?} run {:?} seq {})",
                r.provider_id, r.run_id, r.seq
            );
            for problem in &mut p.list[start..] {
                problem.insert_str(0, &at);
            }
        }
    }
    if p.list.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(p.list.join("; ")))
    }
}

/// Access-usage records, all problems at once ([`crate::RunStore::ingest_access_usage`]).
pub(crate) fn access_usage(records: &[crate::AccessUsageRecord]) -> Result<(), StoreError> {
    let mut p = Problems::default();
    for (i, r) in records.iter().enumerate() {
        let start = p.list.len();
        p.id("iss", &r.iss);
        p.id("grant_id", &r.grant_id);
        p.id("model_id", &r.model_id);
        if r.seq < 1 {
            p.push("seq", format!("must be 1 or more (got {})", r.seq));
        }
        if r.to_s <= r.from_s {
            p.push(
                "to_s",
                format!(
                    "must be after from_s (got from_s {}, to_s {})",
                    r.from_s, r.to_s
                ),
            );
        }
        for (field, value) in [
            ("requests", r.requests),
            ("prompt_tokens", r.prompt_tokens),
            ("completion_tokens", r.completion_tokens),
            ("refused", r.refused),
        ] {
            if value < 0 {
                p.push(field, format!("must be 0 or more (got {value})"));
            }
        }
        p.sha256_hex(
            "digest",
            &r.digest,
            "the lowercase hex SHA-256 of the token",
        );
        p.id("token", &r.token);
        if p.list.len() > start {
            let at = format!(
                "records[{i}] (iss {:?} grant {:?} seq {})",
                r.iss, r.grant_id, r.seq
            );
            for problem in &mut p.list[start..] {
                problem.insert_str(0, &at);
            }
        }
    }
    if p.list.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(p.list.join("; ")))
    }
}

/// The largest tree size [`log_batch`] accepts (2^53): far beyond any real log, and small enough
/// that every stored-hash index fits an `i64` without overflow checks downstream.
const MAX_LOG_SIZE: i64 = 1 << 53;

/// How many hashes tlog stores for a tree of `n` records (`StoredHashCount(n)` in Go's
/// `golang.org/x/mod/sumdb/tlog`): `2n - popcount(n)`. The hashes that records `0..n` add are
/// the stored-hash indexes `0..stored_hash_count(n)`. `n` is at most [`MAX_LOG_SIZE`].
pub(crate) fn stored_hash_count(n: i64) -> i64 {
    2 * n - i64::from(n.count_ones())
}

/// Checks a [`LogBatch`] against itself (the stored size is the database's to check): sizes,
/// consecutive entry indexes, the exact run of stored-hash indexes it must add, non-empty
/// fields, distinct queue ids. `Invalid` lists every problem found (the first of each kind for
/// per-entry checks). On success, returns the batch's queue ids, sorted.
pub(crate) fn log_batch(batch: &LogBatch) -> Result<Vec<i64>, StoreError> {
    let mut p = Problems {
        at: "log batch".to_owned(),
        list: Vec::new(),
    };
    let range = 0..=MAX_LOG_SIZE;
    if !range.contains(&batch.expected_size) {
        p.push(
            "expected_size",
            format!("must be 0 to {MAX_LOG_SIZE} (got {})", batch.expected_size),
        );
    }
    let added = i64::try_from(batch.entries.len()).unwrap_or(i64::MAX);
    let size_ok =
        range.contains(&batch.size) && batch.expected_size.checked_add(added) == Some(batch.size);
    if !size_ok {
        p.push(
            "size",
            format!(
                "must be expected_size + entries.len() = {} + {} (got {})",
                batch.expected_size,
                batch.entries.len(),
                batch.size
            ),
        );
    }
    let mut expected_index = batch.expected_size;
    let (mut bad_index, mut bad_subject, mut bad_entry) = (false, false, false);
    for (i, e) in batch.entries.iter().enumerate() {
        if e.index != expected_index && !bad_index {
            bad_index = true;
            p.push(
                &format!("entries[{i}].index"),
                format!(
                    "must be {expected_index}: entries take the indexes expected_size, \
                     expected_size + 1, … in order (got {})",
                    e.index
                ),
            );
        }
        if e.subject.is_empty() && !bad_subject {
            bad_subject = true;
            p.push(
                &format!("entries[{i}].subject"),
                "must not be empty".to_owned(),
            );
        }
        if (e.entry.is_empty() || e.entry.len() >= MAX_LOG_ENTRY_BYTES) && !bad_entry {
            bad_entry = true;
            p.log_entry(&format!("entries[{i}].entry"), &e.entry);
        }
        expected_index = expected_index.saturating_add(1);
    }
    if p.list.is_empty() {
        // Sizes are in range: the stored-hash arithmetic cannot overflow.
        let first = stored_hash_count(batch.expected_size);
        let end = stored_hash_count(batch.size);
        let want = usize::try_from(end - first).unwrap_or(usize::MAX);
        if batch.hashes.len() != want {
            p.push(
                "hashes",
                format!(
                    "must hold the {want} stored hashes with indexes {first}..{end} that a tree \
                     of {} entries adds to one of {} (got {})",
                    batch.size,
                    batch.expected_size,
                    batch.hashes.len()
                ),
            );
        } else if let Some((i, (index, _))) = batch
            .hashes
            .iter()
            .enumerate()
            .find(|(i, (index, _))| *index != first + *i as i64)
        {
            p.push(
                &format!("hashes[{i}]"),
                format!(
                    "index must be {}: the hashes take the indexes {first}..{end} in order \
                     (got {index})",
                    first + i as i64
                ),
            );
        }
    }
    if let Some(i) = batch.hashes.iter().position(|(_, hash)| hash.is_empty()) {
        p.push(&format!("hashes[{i}]"), "hash must not be empty".to_owned());
    }
    if batch.root.is_empty() {
        p.push("root", "must not be empty".to_owned());
    }
    p.id("checkpoint", &batch.checkpoint);
    let mut queue_ids: Vec<i64> = batch.entries.iter().map(|e| e.queue_id).collect();
    queue_ids.sort_unstable();
    if let Some(pair) = queue_ids.windows(2).find(|pair| pair[0] == pair[1]) {
        p.push(
            "entries",
            format!("queue_id {} appears more than once", pair[0]),
        );
    }
    if p.list.is_empty() {
        Ok(queue_ids)
    } else {
        Err(StoreError::Invalid(p.list.join("; ")))
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

    /// A FLOP figure: finite and not negative.
    fn flop(&mut self, field: &str, value: f64) {
        if !(value.is_finite() && value >= 0.0) {
            self.push(
                field,
                format!("must be a finite number of FLOP, 0 or more (got {value})"),
            );
        }
    }

    /// A lowercase hex SHA-256 digest; `what` says of what.
    fn sha256_hex(&mut self, field: &str, value: &str, what: &str) {
        let hex = value.len() == 64
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            self.push(
                field,
                format!("must be {what} (64 characters 0-9a-f; got {value:?})"),
            );
        }
    }

    fn ed25519_key(&mut self, field: &str, key: &[u8]) {
        if key.len() != 32 {
            self.push(
                field,
                format!(
                    "must be the 32 raw bytes of an Ed25519 public key (got {} bytes)",
                    key.len()
                ),
            );
        }
    }

    fn not_negative(&mut self, field: &str, value: i64) {
        if value < 0 {
            self.push(field, format!("must be 0 or more (got {value})"));
        }
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

    fn log_entry(&mut self, field: &str, entry: &[u8]) {
        if entry.is_empty() || entry.len() >= MAX_LOG_ENTRY_BYTES {
            self.push(
                field,
                format!(
                    "must hold 1 to {} bytes (got {})",
                    MAX_LOG_ENTRY_BYTES - 1,
                    entry.len()
                ),
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

fn check(write: &Write, p: &mut Problems) {
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
                role: runpermit_types::Role::Admin,
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
            message
                .contains("writes[1] (InsertSigningKey k1) public_key: must be the 32 raw bytes"),
            "{message}"
        );
    }

    #[test]
    fn stored_hash_count_matches_tlog() {
        // StoredHashCount from golang.org/x/mod/sumdb/tlog, by its definition: the hashes of
        // records 0..n, each adding its leaf and one hash per completed subtree.
        let mut count = 0;
        for n in 0..1_000_i64 {
            assert_eq!(stored_hash_count(n), count, "n = {n}");
            count += 1 + i64::from((n + 1).trailing_zeros());
        }
    }

    #[test]
    fn log_batch_problems_are_each_reported() {
        use crate::{LogBatch, SequencedEntry};
        let entry = |queue_id, index| SequencedEntry {
            queue_id,
            index,
            subject: "s".into(),
            entry: vec![1],
        };
        let batch = LogBatch {
            expected_size: 3,
            entries: vec![entry(1, 3), entry(1, 5)],
            hashes: vec![],
            size: 6,
            root: vec![],
            checkpoint: String::new(),
            at: 0,
        };
        let Err(StoreError::Invalid(message)) = log_batch(&batch) else {
            panic!("expected Invalid");
        };
        for part in [
            "size: must be expected_size + entries.len() = 3 + 2 (got 6)",
            "entries[1].index: must be 4",
            "root: must not be empty",
            "checkpoint: must not be empty",
            "queue_id 1 appears more than once",
        ] {
            assert!(message.contains(part), "{part:?} in {message}");
        }

        let ok = LogBatch {
            expected_size: 3,
            entries: vec![entry(9, 3), entry(2, 4)],
            // stored_hash_count(3) = 4, stored_hash_count(5) = 8
            hashes: (4..8).map(|i| (i, vec![0; 32])).collect(),
            size: 5,
            root: vec![0; 32],
            checkpoint: "c".into(),
            at: 0,
        };
        assert_eq!(log_batch(&ok).unwrap(), vec![2, 9]);
        let mut shifted = ok.clone();
        shifted.hashes[2].0 = 7;
        let Err(StoreError::Invalid(message)) = log_batch(&shifted) else {
            panic!("expected Invalid");
        };
        assert!(message.contains("hashes[2]: index must be 6"), "{message}");
        let mut short = ok;
        short.hashes.pop();
        let Err(StoreError::Invalid(message)) = log_batch(&short) else {
            panic!("expected Invalid");
        };
        assert!(
            message.contains("must hold the 4 stored hashes with indexes 4..8"),
            "{message}"
        );
    }

    #[test]
    fn accepts_an_empty_batch() {
        assert!(batch(&[]).is_ok());
    }
}
