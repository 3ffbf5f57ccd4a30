//! The SQL and the [`Store`](crate::Store) implementation shared by both backends.
//!
//! Every statement is written once with `$N` placeholders, which PostgreSQL and sqlx's SQLite
//! driver both accept, and [`impl_store!`] expands the one implementation for each backend's
//! concrete sqlx types. What differs (connecting, migrating, starting a write transaction)
//! lives in `sqlite.rs` and `postgres.rs` as inherent methods the macro calls.

use std::sync::OnceLock;

pub(crate) const PING: &str = "SELECT 1";

pub(crate) const INSERT_ORGANIZATION: &str =
    "INSERT INTO organizations (id, name, kind, created_at) VALUES ($1, $2, $3, $4)";
pub(crate) const INSERT_MEMBER: &str =
    "INSERT INTO members (id, org_id, name, role, created_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const INSERT_TOKEN: &str = "INSERT INTO tokens \
     (id, member_id, hash, label, created_at, expires_at, revoked_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const REVOKE_TOKEN: &str =
    "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub(crate) const TOKEN_REVOKED_AT: &str = "SELECT revoked_at FROM tokens WHERE id = $1";
pub(crate) const INSERT_APPLICATION: &str = "INSERT INTO applications \
     (id, org_id, created_by, status, tier, decision, approvals_required, plan_json, \
      plan_digest, estimate_json, policy_version, version, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub(crate) const UPDATE_APPLICATION: &str = "UPDATE applications SET \
     status = $2, tier = $3, decision = $4, approvals_required = $5, plan_json = $6, \
     plan_digest = $7, estimate_json = $8, policy_version = $9, updated_at = $10, \
     version = $11 \
     WHERE id = $1 AND version = $12";
pub(crate) const APPLICATION_VERSION: &str = "SELECT version FROM applications WHERE id = $1";
pub(crate) const INSERT_REVIEW: &str = "INSERT INTO reviews \
     (id, application_id, reviewer_id, reviewer_org_id, decision, reason, conditions_json, \
      evaluators_json, policy_version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(crate) const INSERT_PERMIT: &str = "INSERT INTO permits \
     (id, application_id, run_id, org_id, status, claims_json, token, kid, policy_version, \
      created_at, issued_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const ISSUE_PERMIT: &str = "UPDATE permits SET status = 'issued', token = $2, \
     issued_at = $3 WHERE id = $1 AND status = 'intent'";
pub(crate) const PERMIT_STATUS: &str = "SELECT status FROM permits WHERE id = $1";
pub(crate) const INSERT_RECEIPT: &str = "INSERT INTO receipts \
     (id, application_id, org_id, token, created_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const INSERT_SIGNING_KEY: &str = "INSERT INTO signing_keys \
     (kid, public_key, created_at, retired_at) VALUES ($1, $2, $3, $4)";
pub(crate) const RETIRE_SIGNING_KEY: &str =
    "UPDATE signing_keys SET retired_at = $2 WHERE kid = $1 AND retired_at IS NULL";
pub(crate) const SIGNING_KEY_RETIRED_AT: &str =
    "SELECT retired_at FROM signing_keys WHERE kid = $1";
pub(crate) const INSERT_DEPLOYMENT: &str = "INSERT INTO deployment \
     (id, log_origin, log_vkey, created_at) VALUES (1, $1, $2, $3)";
pub(crate) const DEPLOYMENT: &str =
    "SELECT log_origin, log_vkey, created_at FROM deployment WHERE id = 1";
pub(crate) const INSERT_PLAN_PERMIT: &str =
    "INSERT INTO plan_permits (plan_digest, permit_id, claimed_at) VALUES ($1, $2, $3)";
pub(crate) const REPLACE_PLAN_PERMIT: &str = "UPDATE plan_permits SET permit_id = $2, \
     claimed_at = $3 WHERE plan_digest = $1 AND permit_id = $4";
pub(crate) const PLAN_PERMIT: &str = "SELECT permit_id FROM plan_permits WHERE plan_digest = $1";
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_events \
     (at, actor_member_id, actor_org_id, action, subject, reason, details_json) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const RESERVE_IDEMPOTENCY: &str = "INSERT INTO idempotency \
     (principal_id, key, method_path, request_hash, status, response_json, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Status 0 is a reservation ([`crate::Idempotency::RESERVED`]); `created_at` names which.
pub(crate) const TAKE_OVER_IDEMPOTENCY: &str = "UPDATE idempotency SET created_at = $4 \
     WHERE principal_id = $1 AND key = $2 AND status = 0 AND created_at = $3";
pub(crate) const ANSWER_IDEMPOTENCY: &str = "UPDATE idempotency \
     SET status = $4, response_json = $5 \
     WHERE principal_id = $1 AND key = $2 AND status = 0 AND created_at = $3";
pub(crate) const RELEASE_IDEMPOTENCY: &str = "DELETE FROM idempotency \
     WHERE principal_id = $1 AND key = $2 AND status = 0 AND created_at = $3";
pub(crate) const IDEMPOTENCY_STATE: &str =
    "SELECT status, created_at FROM idempotency WHERE principal_id = $1 AND key = $2";

pub(crate) const ORGANIZATION: &str =
    "SELECT id, name, kind, created_at FROM organizations WHERE id = $1";
pub(crate) const ORGANIZATIONS: &str =
    "SELECT id, name, kind, created_at FROM organizations ORDER BY created_at, id";
pub(crate) const ORGANIZATION_COUNT: &str = "SELECT COUNT(*) FROM organizations";
pub(crate) const MEMBER: &str =
    "SELECT id, org_id, name, role, created_at FROM members WHERE id = $1";
pub(crate) const MEMBERS: &str = "SELECT id, org_id, name, role, created_at FROM members \
     WHERE org_id = $1 ORDER BY created_at, id";
macro_rules! token_columns {
    () => {
        "id, member_id, hash, label, created_at, expires_at, revoked_at"
    };
}
pub(crate) const TOKEN: &str = concat!("SELECT ", token_columns!(), " FROM tokens WHERE id = $1");
pub(crate) const TOKENS: &str = concat!(
    "SELECT ",
    token_columns!(),
    " FROM tokens WHERE member_id = $1 ORDER BY created_at, id"
);
pub(crate) const AUTHENTICATE: &str = "SELECT \
     m.id AS m_id, m.org_id AS m_org_id, m.name AS m_name, m.role AS m_role, \
     m.created_at AS m_created_at, \
     o.id AS o_id, o.name AS o_name, o.kind AS o_kind, o.created_at AS o_created_at, \
     t.id AS t_id, t.member_id AS t_member_id, t.hash AS t_hash, t.label AS t_label, \
     t.created_at AS t_created_at, t.expires_at AS t_expires_at, t.revoked_at AS t_revoked_at \
     FROM tokens t \
     JOIN members m ON m.id = t.member_id \
     JOIN organizations o ON o.id = m.org_id \
     WHERE t.hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)";
macro_rules! application_columns {
    () => {
        "id, org_id, created_by, status, tier, decision, \
     approvals_required, plan_json, plan_digest, estimate_json, policy_version, version, \
     created_at, updated_at"
    };
}
pub(crate) const APPLICATION: &str = concat!(
    "SELECT ",
    application_columns!(),
    " FROM applications WHERE id = $1"
);
pub(crate) const APPLICATIONS: &str = concat!(
    "SELECT ",
    application_columns!(),
    " FROM applications ORDER BY created_at DESC, id DESC"
);
pub(crate) const APPLICATIONS_OF_ORG: &str = concat!(
    "SELECT ",
    application_columns!(),
    " FROM applications WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
);
pub(crate) const REVIEWS: &str = "SELECT id, application_id, reviewer_id, reviewer_org_id, \
     decision, reason, conditions_json, evaluators_json, policy_version, created_at FROM reviews \
     WHERE application_id = $1 ORDER BY created_at, id";
macro_rules! permit_columns {
    () => {
        "id, application_id, run_id, org_id, status, claims_json, token, \
     kid, policy_version, created_at, issued_at"
    };
}
pub(crate) const PERMIT: &str =
    concat!("SELECT ", permit_columns!(), " FROM permits WHERE id = $1");
pub(crate) const PERMITS_FOR_APPLICATION: &str = concat!(
    "SELECT ",
    permit_columns!(),
    " FROM permits WHERE application_id = $1 ORDER BY created_at, id"
);
pub(crate) const PENDING_PERMITS: &str = concat!(
    "SELECT ",
    permit_columns!(),
    " FROM permits WHERE status = 'intent' ORDER BY created_at, id"
);
pub(crate) const RECEIPT_FOR_APPLICATION: &str = "SELECT id, application_id, org_id, token, \
     created_at FROM receipts WHERE application_id = $1";
pub(crate) const SIGNING_KEYS: &str = "SELECT kid, public_key, created_at, retired_at \
     FROM signing_keys ORDER BY created_at, kid";
macro_rules! audit_columns {
    () => {
        "seq, at, actor_member_id, actor_org_id, action, subject, reason, details_json"
    };
}
pub(crate) const AUDIT: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
);
pub(crate) const AUDIT_OF_SUBJECT: &str = concat!(
    "SELECT ",
    audit_columns!(),
    " FROM audit_events WHERE subject = $1 AND seq > $2 ORDER BY seq LIMIT $3"
);
pub(crate) const IDEMPOTENCY: &str = "SELECT principal_id, key, method_path, request_hash, \
     status, response_json, created_at FROM idempotency WHERE principal_id = $1 AND key = $2";

pub(crate) const QUEUE_LOG_ENTRY: &str =
    "INSERT INTO log_queue (subject, entry, created_at) VALUES ($1, $2, $3)";
pub(crate) const LOG_QUEUE: &str =
    "SELECT id, subject, entry, created_at FROM log_queue ORDER BY id LIMIT $1";
pub(crate) const LOG_STATE: &str =
    "SELECT size, root, checkpoint, updated_at FROM log_state WHERE id = 1";
/// The stored tree size, on SQLite (whose `BEGIN IMMEDIATE` already serializes writers).
pub(crate) const LOG_SIZE: &str = "SELECT size FROM log_state WHERE id = 1";
/// The stored tree size, row-locked until the transaction ends, on PostgreSQL.
pub(crate) const LOG_SIZE_FOR_UPDATE: &str = "SELECT size FROM log_state WHERE id = 1 FOR UPDATE";
/// Stores the new tree state only if the stored size is still `$5` (the batch's
/// `expected_size`): a compare-and-set that also covers the first state row, which no
/// `FOR UPDATE` can lock before it exists (a concurrent insert makes this wait, then affect no
/// row).
pub(crate) const PUT_LOG_STATE: &str = "INSERT INTO log_state \
     (id, size, root, checkpoint, updated_at) VALUES (1, $1, $2, $3, $4) \
     ON CONFLICT (id) DO UPDATE SET size = excluded.size, root = excluded.root, \
     checkpoint = excluded.checkpoint, updated_at = excluded.updated_at \
     WHERE log_state.size = $5";
pub(crate) const TAKE_LOG_QUEUE_RANGE: &str =
    "DELETE FROM log_queue WHERE id BETWEEN $1 AND $2 RETURNING id";
pub(crate) const LOG_ENTRIES: &str =
    "SELECT entry FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx";
pub(crate) const LOG_INDEX: &str = "SELECT MAX(idx) FROM log_entries WHERE subject = $1";
pub(crate) const TAKE_LOG_LEASE: &str = "UPDATE log_lease SET holder = $1, until = $2 \
     WHERE id = 1 AND (holder = $1 OR until < $3)";

pub(crate) const INSERT_PROVIDER_KEY: &str = "INSERT INTO provider_keys \
     (kid, org_id, public_key, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const REVOKE_PROVIDER_KEY: &str =
    "UPDATE provider_keys SET revoked_at = $2 WHERE kid = $1 AND revoked_at IS NULL";
pub(crate) const PROVIDER_KEY_REVOKED_AT: &str =
    "SELECT revoked_at FROM provider_keys WHERE kid = $1";
macro_rules! provider_key_columns {
    () => {
        "kid, org_id, public_key, created_at, revoked_at"
    };
}
pub(crate) const PROVIDER_KEY: &str = concat!(
    "SELECT ",
    provider_key_columns!(),
    " FROM provider_keys WHERE kid = $1"
);
pub(crate) const PROVIDER_KEYS_OF_ORG: &str = concat!(
    "SELECT ",
    provider_key_columns!(),
    " FROM provider_keys WHERE org_id = $1 ORDER BY created_at, kid"
);
pub(crate) const PROVIDER_KEYS: &str = concat!(
    "SELECT ",
    provider_key_columns!(),
    " FROM provider_keys ORDER BY created_at, kid"
);

macro_rules! run_columns {
    () => {
        "id, permit_id, org_id, status, reason, status_since, tranche, released_flop, \
     budget_flop, cumulative_flop, cumulative_upper_flop, summarized_flop, alerted_percent, \
     appeal_pending, permit_exp_s, version, created_at, updated_at"
    };
}
pub(crate) const INSERT_RUN: &str = concat!(
    "INSERT INTO runs (",
    run_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
);
/// Only the run's state: never the usage figures, which ingestion changes concurrently.
pub(crate) const UPDATE_RUN: &str = "UPDATE runs SET \
     status = $2, reason = $3, status_since = $4, tranche = $5, released_flop = $6, \
     alerted_percent = $7, appeal_pending = $8, updated_at = $9, version = $10 \
     WHERE id = $1 AND version = $11";
pub(crate) const RUN_VERSION: &str = "SELECT version FROM runs WHERE id = $1";
pub(crate) const SET_RUN_SUMMARIZED: &str = "UPDATE runs SET summarized_flop = $2, \
     updated_at = $3 WHERE id = $1 AND summarized_flop = $4";
/// Adds one batch's stored usage to a run; `updated_at` only moves forward.
pub(crate) const ADD_RUN_USAGE: &str = "UPDATE runs SET \
     cumulative_flop = cumulative_flop + $2, \
     cumulative_upper_flop = cumulative_upper_flop + $3, \
     updated_at = CASE WHEN updated_at > $4 THEN updated_at ELSE $4 END \
     WHERE id = $1";
pub(crate) const RUN: &str = concat!("SELECT ", run_columns!(), " FROM runs WHERE id = $1");
pub(crate) const RUN_BY_PERMIT: &str =
    concat!("SELECT ", run_columns!(), " FROM runs WHERE permit_id = $1");
pub(crate) const RUNS: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs ORDER BY created_at DESC, id DESC"
);
pub(crate) const RUNS_OF_ORG: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
);
pub(crate) const RUNS_NOT_IN_GOOD_STANDING: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE status <> 'active' AND permit_exp_s > $1 ORDER BY id"
);
pub(crate) const RUNS_TO_SUMMARIZE: &str = concat!(
    "SELECT ",
    run_columns!(),
    " FROM runs WHERE cumulative_flop <> summarized_flop ORDER BY id"
);

macro_rules! usage_columns {
    () => {
        "provider_id, run_id, seq, permit_id, cluster, from_s, to_s, flop, flop_lower, \
     flop_upper, method, accelerator_seconds_json, digest, token, received_at"
    };
}
/// Parameters of one row of [`INSERT_USAGE`].
pub(crate) const USAGE_PARAMS: usize = 15;
pub(crate) const USAGE_BY_PROVIDER: &str = "SELECT provider_id, COUNT(*) AS reports, \
     MAX(seq) AS max_seq, SUM(flop) AS flop, SUM(flop_lower) AS flop_lower, \
     SUM(flop_upper) AS flop_upper, MIN(from_s) AS first_from_s, MAX(to_s) AS last_to_s, \
     MAX(received_at) AS last_received_at \
     FROM usage_reports WHERE run_id = $1 GROUP BY provider_id ORDER BY provider_id";
pub(crate) const USAGE_REPORTS: &str = concat!(
    "SELECT ",
    usage_columns!(),
    " FROM usage_reports WHERE run_id = $1 ORDER BY provider_id, seq LIMIT $2"
);
pub(crate) const USAGE_REPORTS_AFTER: &str = concat!(
    "SELECT ",
    usage_columns!(),
    " FROM usage_reports WHERE run_id = $1 AND (provider_id, seq) > ($2, $3) \
     ORDER BY provider_id, seq LIMIT $4"
);

macro_rules! milestone_columns {
    () => {
        "id, run_id, tranche, status, checkpoint_digest, cumulative_flop, evals_json, \
     submitted_by, submitted_at, decided_by, decided_org, decided_at, reason"
    };
}
pub(crate) const INSERT_MILESTONE: &str = concat!(
    "INSERT INTO milestones (",
    milestone_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);
pub(crate) const DECIDE_MILESTONE: &str = "UPDATE milestones SET status = $2, \
     decided_by = $3, decided_org = $4, decided_at = $5, reason = $6 \
     WHERE id = $1 AND status = 'submitted'";
pub(crate) const MILESTONE_STATUS: &str = "SELECT status FROM milestones WHERE id = $1";
pub(crate) const MILESTONE: &str = concat!(
    "SELECT ",
    milestone_columns!(),
    " FROM milestones WHERE id = $1"
);
pub(crate) const MILESTONES: &str = concat!(
    "SELECT ",
    milestone_columns!(),
    " FROM milestones WHERE run_id = $1 ORDER BY submitted_at, id"
);

macro_rules! incident_columns {
    () => {
        "id, org_id, reported_by, run_id, category, summary, details_json, occurred_at, \
     reported_at, follow_up_due, followed_up_at, follow_up, status"
    };
}
pub(crate) const INSERT_INCIDENT: &str = concat!(
    "INSERT INTO incidents (",
    incident_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
);
/// `$4` is `'closed'` to close the incident, NULL to leave its status.
pub(crate) const FOLLOW_UP_INCIDENT: &str = "UPDATE incidents SET followed_up_at = $2, \
     follow_up = $3, status = COALESCE($4, status) WHERE id = $1 AND status <> 'closed'";
pub(crate) const INCIDENT_STATUS: &str = "SELECT status FROM incidents WHERE id = $1";
pub(crate) const INCIDENT: &str = concat!(
    "SELECT ",
    incident_columns!(),
    " FROM incidents WHERE id = $1"
);
pub(crate) const INCIDENTS: &str = concat!(
    "SELECT ",
    incident_columns!(),
    " FROM incidents ORDER BY reported_at DESC, id DESC"
);
pub(crate) const INCIDENTS_OF_ORG: &str = concat!(
    "SELECT ",
    incident_columns!(),
    " FROM incidents WHERE org_id = $1 ORDER BY reported_at DESC, id DESC"
);

pub(crate) const INSERT_KYC_REPORT: &str = "INSERT INTO kyc_reports \
     (id, provider_id, customer, from_s, to_s, jobs, accelerator_seconds, flop, received_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// `SUM` of a BIGINT is NUMERIC on PostgreSQL: cast back.
pub(crate) const KYC_TOTALS: &str = "SELECT customer, provider_id, COUNT(*) AS reports, \
     CAST(SUM(jobs) AS BIGINT) AS jobs, SUM(accelerator_seconds) AS accelerator_seconds, \
     SUM(flop) AS flop FROM kyc_reports WHERE to_s > $1 \
     GROUP BY customer, provider_id ORDER BY customer, provider_id";

/// Rows per multi-row `INSERT INTO log_entries` (5 parameters a row), far below SQLite's 32766
/// and PostgreSQL's 65535 parameters.
pub(crate) const LOG_ENTRY_ROWS: usize = 1024;
/// Rows per multi-row `INSERT INTO log_hashes` (2 parameters a row).
pub(crate) const LOG_HASH_ROWS: usize = 4096;
/// Values per `IN (…)` list (deleting queue rows, reading hashes).
pub(crate) const IN_LIST_ROWS: usize = 1024;

/// Rows per multi-row `INSERT INTO log_queue` (3 parameters a row).
pub(crate) const QUEUE_LOG_ENTRY_ROWS: usize = 1024;

// Every generated statement stays within SQLite's 32766 parameters.
const _: () = assert!(
    QUEUE_LOG_ENTRY_ROWS * 3 <= 32_766
        && LOG_ENTRY_ROWS * 5 <= 32_766
        && LOG_HASH_ROWS * 2 <= 32_766
        && IN_LIST_ROWS <= 32_766
);

/// `INSERT INTO log_queue` of `rows` rows; bind `subject, entry, created_at` for each. Rows
/// are inserted, and their ids drawn, in the order listed.
pub(crate) static QUEUE_LOG_ENTRIES: SizedSql = SizedSql::new(QUEUE_LOG_ENTRY_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| format!("({}, {}, {})", p.next(), p.next(), p.next()))
        .collect();
    format!(
        "INSERT INTO log_queue (subject, entry, created_at) VALUES {}",
        rows.join(", ")
    )
});
/// `INSERT INTO log_entries` of `rows` rows; bind `idx, subject, entry, queue_id, created_at`
/// for each.
pub(crate) static INSERT_LOG_ENTRIES: SizedSql = SizedSql::new(LOG_ENTRY_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| {
            let row: Vec<String> = (0..5).map(|_| p.next()).collect();
            format!("({})", row.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO log_entries (idx, subject, entry, queue_id, created_at) VALUES {}",
        rows.join(", ")
    )
});
/// `INSERT INTO log_hashes` of `rows` rows; bind `idx, hash` for each.
pub(crate) static INSERT_LOG_HASHES: SizedSql = SizedSql::new(LOG_HASH_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| format!("({}, {})", p.next(), p.next()))
        .collect();
    format!(
        "INSERT INTO log_hashes (idx, hash) VALUES {}",
        rows.join(", ")
    )
});
/// Deletes the queue rows with the `rows` ids bound, returning the ids deleted.
pub(crate) static TAKE_LOG_QUEUE_IN: SizedSql = SizedSql::new(IN_LIST_ROWS, |rows, p| {
    format!(
        "DELETE FROM log_queue WHERE id IN ({}) RETURNING id",
        p.list(rows)
    )
});
/// The stored hashes with the `rows` indexes bound, as `(idx, hash)` in no particular order.
pub(crate) static LOG_HASHES: SizedSql = SizedSql::new(IN_LIST_ROWS, |rows, p| {
    format!(
        "SELECT idx, hash FROM log_hashes WHERE idx IN ({})",
        p.list(rows)
    )
});

/// Rows per multi-row `INSERT INTO usage_reports` (15 parameters a row).
pub(crate) const USAGE_ROWS: usize = 1024;
/// Rows per `WITH b(…) AS (VALUES …)` lookup list of usage ingestion (at most 4 parameters a
/// row).
pub(crate) const LOOKUP_ROWS: usize = 1024;

const _: () = assert!(USAGE_ROWS * USAGE_PARAMS <= 32_766 && LOOKUP_ROWS * 4 <= 32_766);

/// `INSERT INTO usage_reports` of `rows` rows; bind the 15 columns of `usage_columns!` for
/// each.
pub(crate) static INSERT_USAGE: SizedSql = SizedSql::new(USAGE_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows)
        .map(|_| format!("({})", p.list(USAGE_PARAMS)))
        .collect();
    format!(
        "INSERT INTO usage_reports ({}) VALUES {}",
        usage_columns!(),
        rows.join(", ")
    )
});
/// The ids, among the `rows` bound, of the runs that exist (SQLite, where `BEGIN IMMEDIATE`
/// already serializes writers).
pub(crate) static RUNS_IN: SizedSql = SizedSql::new(IN_LIST_ROWS, |rows, p| {
    format!("SELECT id FROM runs WHERE id IN ({})", p.list(rows))
});
/// The same, row-locked until the transaction ends (PostgreSQL). `FOR NO KEY UPDATE` is the
/// lock an `UPDATE` of non-key columns takes: concurrent ingestion batches of a run take
/// turns, while foreign-key checks of other tables (`FOR KEY SHARE`) do not wait. Rows are
/// locked in byte order of their ids (`COLLATE "C"`, the order ingestion sorts them in), so
/// two batches never deadlock on each other's runs.
pub(crate) static RUNS_IN_FOR_UPDATE: SizedSql = SizedSql::new(IN_LIST_ROWS, |rows, p| {
    format!(
        "SELECT id FROM runs WHERE id IN ({}) ORDER BY id COLLATE \"C\" FOR NO KEY UPDATE",
        p.list(rows)
    )
});
/// For `rows` rows of `(i, provider_id, run_id)` bound, `(i, the highest stored seq)`, the
/// latter NULL when none is stored. One primary-key lookup per row.
pub(crate) static USAGE_MAX_SEQS: SizedSql = SizedSql::new(LOOKUP_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows).map(|_| format!("({})", p.list(3))).collect();
    format!(
        "WITH b (i, p, r) AS (VALUES {}) SELECT b.i, (SELECT MAX(u.seq) FROM usage_reports u \
         WHERE u.provider_id = b.p AND u.run_id = b.r) FROM b",
        rows.join(", ")
    )
});
/// For `rows` rows of `(i, provider_id, run_id, seq)` bound, `(i, digest)` of those stored.
pub(crate) static USAGE_DIGESTS: SizedSql = SizedSql::new(LOOKUP_ROWS, |rows, p| {
    let rows: Vec<String> = (0..rows).map(|_| format!("({})", p.list(4))).collect();
    format!(
        "WITH b (i, p, r, s) AS (VALUES {}) SELECT b.i, u.digest FROM b JOIN usage_reports u \
         ON u.provider_id = b.p AND u.run_id = b.r AND u.seq = b.s",
        rows.join(", ")
    )
});

/// How a backend's generated statements write their parameters: the fixed statements above use
/// `$N` on both backends, but binding a SQLite statement with `n` *named* parameters costs
/// O(n²) (sqlx looks up each parameter's name, and `sqlite3_bind_parameter_name` scans the
/// names linearly): for statements of thousands of parameters SQLite gets plain `?`, bound in
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Params {
    /// `$1`, `$2`, … (PostgreSQL).
    Numbered,
    /// `?`, `?`, … (SQLite).
    Anonymous,
}

/// Writes the parameters of one statement, in binding order.
#[derive(Debug)]
pub(crate) struct Placeholders {
    style: Params,
    count: usize,
}

impl Placeholders {
    fn next(&mut self) -> String {
        self.count += 1;
        match self.style {
            Params::Numbered => format!("${}", self.count),
            Params::Anonymous => "?".to_owned(),
        }
    }

    fn list(&mut self, n: usize) -> String {
        let list: Vec<String> = (0..n).map(|_| self.next()).collect();
        list.join(", ")
    }
}

/// A statement with a list of `rows` rows (or values), for every power of two `rows` up to a
/// maximum and each parameter style, each text built once and then reused: one text per size
/// keeps every statement in the connections' prepared-statement caches, however long the
/// batches are. Split a longer list with [`pieces`] (inserts) or pad it to a power of two by
/// repeating a value (`IN`).
#[derive(Debug)]
pub(crate) struct SizedSql {
    max_rows: usize,
    build: fn(usize, &mut Placeholders) -> String,
    numbered: [OnceLock<String>; 16],
    anonymous: [OnceLock<String>; 16],
}

impl SizedSql {
    const fn new(max_rows: usize, build: fn(usize, &mut Placeholders) -> String) -> SizedSql {
        assert!(max_rows.is_power_of_two() && max_rows.trailing_zeros() < 16);
        SizedSql {
            max_rows,
            build,
            numbered: [const { OnceLock::new() }; 16],
            anonymous: [const { OnceLock::new() }; 16],
        }
    }

    /// The most rows one statement takes.
    pub(crate) fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// The statement for `rows` rows (a power of two, at most [`SizedSql::max_rows`]) with
    /// parameters written in `style`.
    pub(crate) fn get(&'static self, rows: usize, style: Params) -> &'static str {
        debug_assert!(
            rows.is_power_of_two() && rows <= self.max_rows,
            "{rows} rows"
        );
        let texts = match style {
            Params::Numbered => &self.numbered,
            Params::Anonymous => &self.anonymous,
        };
        texts[rows.trailing_zeros() as usize]
            .get_or_init(|| (self.build)(rows, &mut Placeholders { style, count: 0 }))
    }
}

/// Splits `n` rows into statement sizes, largest first, each a power of two of at most
/// `max_rows` (itself a power of two): full statements, then the binary digits of the rest.
pub(crate) fn pieces(n: usize, max_rows: usize) -> impl Iterator<Item = usize> {
    let rest = n % max_rows;
    std::iter::repeat_n(max_rows, n / max_rows).chain(
        (0..max_rows.trailing_zeros())
            .rev()
            .map(|bit| 1_usize << bit)
            .filter(move |size| rest & size != 0),
    )
}

/// The columns of [`AUTHENTICATE`], one flat row.
#[derive(sqlx::FromRow)]
pub(crate) struct PrincipalRow {
    m_id: String,
    m_org_id: String,
    m_name: String,
    m_role: String,
    m_created_at: i64,
    o_id: String,
    o_name: String,
    o_kind: String,
    o_created_at: i64,
    t_id: String,
    t_member_id: String,
    t_hash: String,
    t_label: String,
    t_created_at: i64,
    t_expires_at: Option<i64>,
    t_revoked_at: Option<i64>,
}

impl From<PrincipalRow> for crate::Principal {
    fn from(r: PrincipalRow) -> Self {
        crate::Principal {
            member: crate::Member {
                id: r.m_id,
                org_id: r.m_org_id,
                name: r.m_name,
                role: r.m_role,
                created_at: r.m_created_at,
            },
            org: crate::Organization {
                id: r.o_id,
                name: r.o_name,
                kind: r.o_kind,
                created_at: r.o_created_at,
            },
            token: crate::Token {
                id: r.t_id,
                member_id: r.t_member_id,
                hash: r.t_hash,
                label: r.t_label,
                created_at: r.t_created_at,
                expires_at: r.t_expires_at,
                revoked_at: r.t_revoked_at,
            },
        }
    }
}

/// Implements [`Store`](crate::Store) for `$store`, whose pool is `self.pool` of database
/// `$db`. The type must also have, as inherent methods:
///
/// - `async fn run_migrations(&self) -> Result<(), StoreError>`
/// - `async fn begin_write(&self, writes: &[Write])
///   -> Result<sqlx::Transaction<'static, $db>, StoreError>`
///
/// and the associated constants `LOG_SIZE_LOCKED: &'static str`, the query that reads the
/// stored log size and holds it until the transaction ends ([`LOG_SIZE`] or
/// [`LOG_SIZE_FOR_UPDATE`]), `RUNS_LOCKED: &'static SizedSql`, the query that reads which of
/// a list of runs exist and holds them until the transaction ends ([`RUNS_IN`] or
/// [`RUNS_IN_FOR_UPDATE`]), and `PARAMS: Params`, how its generated statements write their
/// parameters ([`Params`]).
macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        // A block of its own, so that the `use`s below stay local to this expansion.
        const _: () = {
            use $crate::error::{DbResult as _, write_error};
            use $crate::shared as sql;
            use $crate::{
                Application, AuditEvent, Deployment, Idempotency, Incident, Ingested, KycTotal,
                LogBatch, LogState, Member, Milestone, Organization, Permit, Principal,
                ProviderKey, ProviderUsage, QueuedLogEntry, Receipt, Review, Run, SigningKey,
                Store, StoreError, Token, UsageRecord, Write,
            };

            impl $store {
                /// Why a write addressed to the reservation of `key` made at `reserved_at`
                /// changed nothing: `NotFound` without a record, else `Conflict`.
                async fn not_that_reservation(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    principal_id: &str,
                    key: &str,
                    reserved_at: i64,
                ) -> StoreError {
                    let state: Option<(i64, i64)> =
                        match sqlx::query_as(sql::IDEMPOTENCY_STATE)
                            .bind(principal_id)
                            .bind(key)
                            .fetch_optional(&mut *conn)
                            .await
                            .db()
                        {
                            Ok(state) => state,
                            Err(e) => return e,
                        };
                    match state {
                        None => StoreError::NotFound(format!(
                            "idempotency key {key:?} of principal {principal_id:?}"
                        )),
                        Some((status, _)) if status != Idempotency::RESERVED => {
                            StoreError::Conflict(format!(
                                "idempotency key {key:?} of principal {principal_id:?} already \
                                 has its answer (status {status})"
                            ))
                        }
                        Some((_, at)) => StoreError::Conflict(format!(
                            "idempotency key {key:?} of principal {principal_id:?} is reserved \
                             since {at}, not since {reserved_at}: another request took it over"
                        )),
                    }
                }

                /// Applies one write inside the batch's transaction.
                async fn apply(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    write: &Write,
                ) -> Result<(), StoreError> {
                    let fail = |e| write_error(write, e);
                    match write {
                        Write::InsertOrganization(o) => {
                            sqlx::query(sql::INSERT_ORGANIZATION)
                                .bind(&o.id)
                                .bind(&o.name)
                                .bind(&o.kind)
                                .bind(o.created_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::InsertMember(m) => {
                            sqlx::query(sql::INSERT_MEMBER)
                                .bind(&m.id)
                                .bind(&m.org_id)
                                .bind(&m.name)
                                .bind(&m.role)
                                .bind(m.created_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::InsertToken(t) => {
                            sqlx::query(sql::INSERT_TOKEN)
                                .bind(&t.id)
                                .bind(&t.member_id)
                                .bind(&t.hash)
                                .bind(&t.label)
                                .bind(t.created_at)
                                .bind(t.expires_at)
                                .bind(t.revoked_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::RevokeToken { id, at } => {
                            let done = sqlx::query(sql::REVOKE_TOKEN)
                                .bind(id)
                                .bind(*at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                let revoked_at: Option<Option<i64>> =
                                    sqlx::query_scalar(sql::TOKEN_REVOKED_AT)
                                        .bind(id)
                                        .fetch_optional(&mut *conn)
                                        .await
                                        .db()?;
                                return Err(match revoked_at {
                                    None => StoreError::NotFound(format!("token {id:?}")),
                                    Some(at) => StoreError::Conflict(format!(
                                        "token {id:?} is already revoked (at {})",
                                        at.unwrap_or_default()
                                    )),
                                });
                            }
                        }
                        Write::InsertApplication(a) => {
                            sqlx::query(sql::INSERT_APPLICATION)
                                .bind(&a.id)
                                .bind(&a.org_id)
                                .bind(&a.created_by)
                                .bind(&a.status)
                                .bind(&a.tier)
                                .bind(&a.decision)
                                .bind(a.approvals_required)
                                .bind(&a.plan_json)
                                .bind(&a.plan_digest)
                                .bind(&a.estimate_json)
                                .bind(&a.policy_version)
                                .bind(a.version)
                                .bind(a.created_at)
                                .bind(a.updated_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::UpdateApplication {
                            application: a,
                            expected_version,
                        } => {
                            let next = expected_version.checked_add(1).ok_or_else(|| {
                                StoreError::Invalid(format!(
                                    "application {:?}: expected_version {} is too large",
                                    a.id, expected_version
                                ))
                            })?;
                            let done = sqlx::query(sql::UPDATE_APPLICATION)
                                .bind(&a.id)
                                .bind(&a.status)
                                .bind(&a.tier)
                                .bind(&a.decision)
                                .bind(a.approvals_required)
                                .bind(&a.plan_json)
                                .bind(&a.plan_digest)
                                .bind(&a.estimate_json)
                                .bind(&a.policy_version)
                                .bind(a.updated_at)
                                .bind(next)
                                .bind(*expected_version)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                let stored: Option<i64> =
                                    sqlx::query_scalar(sql::APPLICATION_VERSION)
                                        .bind(&a.id)
                                        .fetch_optional(&mut *conn)
                                        .await
                                        .db()?;
                                return Err(match stored {
                                    None => StoreError::NotFound(format!("application {:?}", a.id)),
                                    Some(stored) => StoreError::Conflict(format!(
                                        "application {:?} was changed concurrently: \
                                         expected version {}, stored version {}",
                                        a.id, expected_version, stored
                                    )),
                                });
                            }
                        }
                        Write::InsertReview(r) => {
                            sqlx::query(sql::INSERT_REVIEW)
                                .bind(&r.id)
                                .bind(&r.application_id)
                                .bind(&r.reviewer_id)
                                .bind(&r.reviewer_org_id)
                                .bind(&r.decision)
                                .bind(&r.reason)
                                .bind(&r.conditions_json)
                                .bind(&r.evaluators_json)
                                .bind(&r.policy_version)
                                .bind(r.created_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::InsertPermit(p) => {
                            sqlx::query(sql::INSERT_PERMIT)
                                .bind(&p.id)
                                .bind(&p.application_id)
                                .bind(&p.run_id)
                                .bind(&p.org_id)
                                .bind(&p.status)
                                .bind(&p.claims_json)
                                .bind(&p.token)
                                .bind(&p.kid)
                                .bind(&p.policy_version)
                                .bind(p.created_at)
                                .bind(p.issued_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::IssuePermit {
                            id,
                            token,
                            issued_at,
                        } => {
                            let done = sqlx::query(sql::ISSUE_PERMIT)
                                .bind(id)
                                .bind(token)
                                .bind(*issued_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                let status: Option<String> = sqlx::query_scalar(sql::PERMIT_STATUS)
                                    .bind(id)
                                    .fetch_optional(&mut *conn)
                                    .await
                                    .db()?;
                                return Err(match status {
                                    None => StoreError::NotFound(format!("permit {id:?}")),
                                    Some(status) => StoreError::Conflict(format!(
                                        "permit {:?} is {:?}; only an \"intent\" can be issued",
                                        id, status
                                    )),
                                });
                            }
                        }
                        Write::InsertReceipt(r) => {
                            sqlx::query(sql::INSERT_RECEIPT)
                                .bind(&r.id)
                                .bind(&r.application_id)
                                .bind(&r.org_id)
                                .bind(&r.token)
                                .bind(r.created_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::InsertSigningKey(k) => {
                            sqlx::query(sql::INSERT_SIGNING_KEY)
                                .bind(&k.kid)
                                .bind(&k.public_key)
                                .bind(k.created_at)
                                .bind(k.retired_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::ClaimPlan {
                            plan_digest,
                            permit_id,
                            replaces,
                            at,
                        } => match replaces {
                            None => {
                                sqlx::query(sql::INSERT_PLAN_PERMIT)
                                    .bind(plan_digest)
                                    .bind(permit_id)
                                    .bind(*at)
                                    .execute(&mut *conn)
                                    .await
                                    .map_err(fail)?;
                            }
                            Some(previous) => {
                                let done = sqlx::query(sql::REPLACE_PLAN_PERMIT)
                                    .bind(plan_digest)
                                    .bind(permit_id)
                                    .bind(*at)
                                    .bind(previous)
                                    .execute(&mut *conn)
                                    .await
                                    .map_err(fail)?;
                                if done.rows_affected() == 0 {
                                    return Err(StoreError::Conflict(format!(
                                        "plan {plan_digest:?} is no longer claimed by permit \
                                         {previous:?}: another permit claimed it meanwhile"
                                    )));
                                }
                            }
                        },
                        Write::InsertDeployment(d) => {
                            sqlx::query(sql::INSERT_DEPLOYMENT)
                                .bind(&d.log_origin)
                                .bind(&d.log_vkey)
                                .bind(d.created_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::RetireSigningKey { kid, at } => {
                            let done = sqlx::query(sql::RETIRE_SIGNING_KEY)
                                .bind(kid)
                                .bind(*at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                let retired_at: Option<Option<i64>> =
                                    sqlx::query_scalar(sql::SIGNING_KEY_RETIRED_AT)
                                        .bind(kid)
                                        .fetch_optional(&mut *conn)
                                        .await
                                        .db()?;
                                return Err(match retired_at {
                                    None => StoreError::NotFound(format!("signing key {kid:?}")),
                                    Some(at) => StoreError::Conflict(format!(
                                        "signing key {kid:?} is already retired (at {})",
                                        at.unwrap_or_default()
                                    )),
                                });
                            }
                        }
                        Write::InsertAudit(e) => {
                            sqlx::query(sql::INSERT_AUDIT)
                                .bind(e.at)
                                .bind(&e.actor_member_id)
                                .bind(&e.actor_org_id)
                                .bind(&e.action)
                                .bind(&e.subject)
                                .bind(&e.reason)
                                .bind(&e.details_json)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::ReserveIdempotency(i) => {
                            sqlx::query(sql::RESERVE_IDEMPOTENCY)
                                .bind(&i.principal_id)
                                .bind(&i.key)
                                .bind(&i.method_path)
                                .bind(&i.request_hash)
                                .bind(i.status)
                                .bind(&i.response_json)
                                .bind(i.created_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::TakeOverIdempotency {
                            principal_id,
                            key,
                            reserved_at,
                            at,
                        } => {
                            let done = sqlx::query(sql::TAKE_OVER_IDEMPOTENCY)
                                .bind(principal_id)
                                .bind(key)
                                .bind(*reserved_at)
                                .bind(*at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                return Err(
                                    Self::not_that_reservation(conn, principal_id, key, *reserved_at)
                                        .await,
                                );
                            }
                        }
                        Write::AnswerIdempotency {
                            principal_id,
                            key,
                            reserved_at,
                            status,
                            response_json,
                        } => {
                            let done = sqlx::query(sql::ANSWER_IDEMPOTENCY)
                                .bind(principal_id)
                                .bind(key)
                                .bind(*reserved_at)
                                .bind(*status)
                                .bind(response_json)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                return Err(
                                    Self::not_that_reservation(conn, principal_id, key, *reserved_at)
                                        .await,
                                );
                            }
                        }
                        Write::ReleaseIdempotency {
                            principal_id,
                            key,
                            reserved_at,
                        } => {
                            let done = sqlx::query(sql::RELEASE_IDEMPOTENCY)
                                .bind(principal_id)
                                .bind(key)
                                .bind(*reserved_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                return Err(
                                    Self::not_that_reservation(conn, principal_id, key, *reserved_at)
                                        .await,
                                );
                            }
                        }
                        Write::QueueLogEntry { subject, entry, at } => {
                            sqlx::query(sql::QUEUE_LOG_ENTRY)
                                .bind(subject)
                                .bind(entry)
                                .bind(*at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::InsertProviderKey(k) => {
                            sqlx::query(sql::INSERT_PROVIDER_KEY)
                                .bind(&k.kid)
                                .bind(&k.org_id)
                                .bind(&k.public_key)
                                .bind(k.created_at)
                                .bind(k.revoked_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::RevokeProviderKey { kid, at } => {
                            let done = sqlx::query(sql::REVOKE_PROVIDER_KEY)
                                .bind(kid)
                                .bind(*at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                let revoked_at: Option<Option<i64>> =
                                    sqlx::query_scalar(sql::PROVIDER_KEY_REVOKED_AT)
                                        .bind(kid)
                                        .fetch_optional(&mut *conn)
                                        .await
                                        .db()?;
                                return Err(match revoked_at {
                                    None => StoreError::NotFound(format!("provider key {kid:?}")),
                                    Some(at) => StoreError::Conflict(format!(
                                        "provider key {kid:?} is already revoked (at {})",
                                        at.unwrap_or_default()
                                    )),
                                });
                            }
                        }
                        Write::InsertRun(r) => {
                            sqlx::query(sql::INSERT_RUN)
                                .bind(&r.id)
                                .bind(&r.permit_id)
                                .bind(&r.org_id)
                                .bind(&r.status)
                                .bind(&r.reason)
                                .bind(r.status_since)
                                .bind(r.tranche)
                                .bind(r.released_flop)
                                .bind(r.budget_flop)
                                .bind(r.cumulative_flop)
                                .bind(r.cumulative_upper_flop)
                                .bind(r.summarized_flop)
                                .bind(r.alerted_percent)
                                .bind(r.appeal_pending)
                                .bind(r.permit_exp_s)
                                .bind(r.version)
                                .bind(r.created_at)
                                .bind(r.updated_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::UpdateRun {
                            run: r,
                            expected_version,
                        } => {
                            let next = expected_version.checked_add(1).ok_or_else(|| {
                                StoreError::Invalid(format!(
                                    "run {:?}: expected_version {} is too large",
                                    r.id, expected_version
                                ))
                            })?;
                            let done = sqlx::query(sql::UPDATE_RUN)
                                .bind(&r.id)
                                .bind(&r.status)
                                .bind(&r.reason)
                                .bind(r.status_since)
                                .bind(r.tranche)
                                .bind(r.released_flop)
                                .bind(r.alerted_percent)
                                .bind(r.appeal_pending)
                                .bind(r.updated_at)
                                .bind(next)
                                .bind(*expected_version)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                let stored: Option<i64> = sqlx::query_scalar(sql::RUN_VERSION)
                                    .bind(&r.id)
                                    .fetch_optional(&mut *conn)
                                    .await
                                    .db()?;
                                return Err(match stored {
                                    None => StoreError::NotFound(format!("run {:?}", r.id)),
                                    Some(stored) => StoreError::Conflict(format!(
                                        "run {:?} was changed concurrently: \
                                         expected version {}, stored version {}",
                                        r.id, expected_version, stored
                                    )),
                                });
                            }
                        }
                        Write::SetRunSummarized {
                            id,
                            flop,
                            expected_flop,
                            at,
                        } => {
                            let done = sqlx::query(sql::SET_RUN_SUMMARIZED)
                                .bind(id)
                                .bind(*flop)
                                .bind(*at)
                                .bind(*expected_flop)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                let stored: Option<i64> = sqlx::query_scalar(sql::RUN_VERSION)
                                    .bind(id)
                                    .fetch_optional(&mut *conn)
                                    .await
                                    .db()?;
                                return Err(match stored {
                                    None => StoreError::NotFound(format!("run {id:?}")),
                                    Some(_) => StoreError::Conflict(format!(
                                        "run {id:?} was summarised concurrently: \
                                         its summarized_flop is no longer {expected_flop}"
                                    )),
                                });
                            }
                        }
                        Write::InsertMilestone(m) => {
                            sqlx::query(sql::INSERT_MILESTONE)
                                .bind(&m.id)
                                .bind(&m.run_id)
                                .bind(m.tranche)
                                .bind(&m.status)
                                .bind(&m.checkpoint_digest)
                                .bind(m.cumulative_flop)
                                .bind(&m.evals_json)
                                .bind(&m.submitted_by)
                                .bind(m.submitted_at)
                                .bind(&m.decided_by)
                                .bind(&m.decided_org)
                                .bind(m.decided_at)
                                .bind(&m.reason)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::DecideMilestone {
                            id,
                            status,
                            decided_by,
                            decided_org,
                            decided_at,
                            reason,
                        } => {
                            let done = sqlx::query(sql::DECIDE_MILESTONE)
                                .bind(id)
                                .bind(status)
                                .bind(decided_by)
                                .bind(decided_org)
                                .bind(*decided_at)
                                .bind(reason)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                let stored: Option<String> =
                                    sqlx::query_scalar(sql::MILESTONE_STATUS)
                                        .bind(id)
                                        .fetch_optional(&mut *conn)
                                        .await
                                        .db()?;
                                return Err(match stored {
                                    None => StoreError::NotFound(format!("milestone {id:?}")),
                                    Some(stored) => StoreError::Conflict(format!(
                                        "milestone {id:?} is already decided ({stored:?}); \
                                         only a \"submitted\" one can be decided"
                                    )),
                                });
                            }
                        }
                        Write::InsertIncident(i) => {
                            sqlx::query(sql::INSERT_INCIDENT)
                                .bind(&i.id)
                                .bind(&i.org_id)
                                .bind(&i.reported_by)
                                .bind(&i.run_id)
                                .bind(&i.category)
                                .bind(&i.summary)
                                .bind(&i.details_json)
                                .bind(i.occurred_at)
                                .bind(i.reported_at)
                                .bind(i.follow_up_due)
                                .bind(i.followed_up_at)
                                .bind(&i.follow_up)
                                .bind(&i.status)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                        Write::FollowUpIncident {
                            id,
                            at,
                            text,
                            close,
                        } => {
                            let done = sqlx::query(sql::FOLLOW_UP_INCIDENT)
                                .bind(id)
                                .bind(*at)
                                .bind(text)
                                .bind(close.then_some("closed"))
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                            if done.rows_affected() == 0 {
                                let stored: Option<String> =
                                    sqlx::query_scalar(sql::INCIDENT_STATUS)
                                        .bind(id)
                                        .fetch_optional(&mut *conn)
                                        .await
                                        .db()?;
                                return Err(match stored {
                                    None => StoreError::NotFound(format!("incident {id:?}")),
                                    Some(_) => {
                                        StoreError::Conflict(format!("incident {id:?} is closed"))
                                    }
                                });
                            }
                        }
                        Write::InsertKycReport(k) => {
                            sqlx::query(sql::INSERT_KYC_REPORT)
                                .bind(&k.id)
                                .bind(&k.provider_id)
                                .bind(&k.customer)
                                .bind(k.from_s)
                                .bind(k.to_s)
                                .bind(k.jobs)
                                .bind(k.accelerator_seconds)
                                .bind(k.flop)
                                .bind(k.received_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(fail)?;
                        }
                    }
                    Ok(())
                }

                /// The body of [`Store::ingest_usage`], inside its transaction; `records` are
                /// valid (see `validate::usage`) and not empty.
                async fn ingest(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    records: &[UsageRecord],
                ) -> Result<Vec<Ingested>, StoreError> {
                    use std::collections::HashMap;

                    // The batch's runs, in byte order: checked to exist and, on PostgreSQL,
                    // locked in this order until commit.
                    let mut runs: Vec<&str> = records.iter().map(|r| r.run_id.as_str()).collect();
                    runs.sort_unstable();
                    runs.dedup();
                    let mut found: Vec<String> = Vec::with_capacity(runs.len());
                    for chunk in runs.chunks(Self::RUNS_LOCKED.max_rows()) {
                        let rows = chunk.len().next_power_of_two();
                        let mut query =
                            sqlx::query_scalar(Self::RUNS_LOCKED.get(rows, Self::PARAMS));
                        for i in 0..rows {
                            // Padding repeats the last id: the same row, read once.
                            query = query.bind(chunk[i.min(chunk.len() - 1)]);
                        }
                        found.extend(query.fetch_all(&mut *conn).await.db()?);
                    }
                    if found.len() != runs.len() {
                        found.sort_unstable();
                        if let Some(r) = records
                            .iter()
                            .find(|r| found.binary_search(&r.run_id).is_err())
                        {
                            return Err(StoreError::NotFound(format!(
                                "run {:?} (usage report {} of provider {:?})",
                                r.run_id, r.seq, r.provider_id
                            )));
                        }
                    }

                    // The highest seq stored per (provider, run), before this batch.
                    let mut pair_of: HashMap<(&str, &str), usize> = HashMap::new();
                    let mut pairs: Vec<(&str, &str)> = Vec::new();
                    for r in records {
                        pair_of
                            .entry((r.provider_id.as_str(), r.run_id.as_str()))
                            .or_insert_with_key(|key| {
                                pairs.push(*key);
                                pairs.len() - 1
                            });
                    }
                    let mut stored_max = vec![0_i64; pairs.len()];
                    for (c, chunk) in pairs.chunks(sql::USAGE_MAX_SEQS.max_rows()).enumerate() {
                        let offset = c * sql::USAGE_MAX_SEQS.max_rows();
                        let rows = chunk.len().next_power_of_two();
                        let mut query = sqlx::query_as::<_, (i64, Option<i64>)>(
                            sql::USAGE_MAX_SEQS.get(rows, Self::PARAMS),
                        );
                        for i in 0..rows {
                            let i = i.min(chunk.len() - 1);
                            let (provider, run) = chunk[i];
                            query = query.bind((offset + i) as i64).bind(provider).bind(run);
                        }
                        for (i, max) in query.fetch_all(&mut *conn).await.db()? {
                            stored_max[i as usize] = max.unwrap_or(0);
                        }
                    }

                    // The stored digests of the records that may be stored already: only those
                    // at or below their pair's highest stored seq (usually none).
                    let maybe_stored: Vec<usize> = (0..records.len())
                        .filter(|&i| {
                            let r = &records[i];
                            r.seq
                                <= stored_max[pair_of[&(r.provider_id.as_str(), r.run_id.as_str())]]
                        })
                        .collect();
                    let mut stored_digest: HashMap<usize, String> = HashMap::new();
                    for chunk in maybe_stored.chunks(sql::USAGE_DIGESTS.max_rows()) {
                        let rows = chunk.len().next_power_of_two();
                        let mut query = sqlx::query_as::<_, (i64, String)>(
                            sql::USAGE_DIGESTS.get(rows, Self::PARAMS),
                        );
                        for i in 0..rows {
                            let at = chunk[i.min(chunk.len() - 1)];
                            let r = &records[at];
                            query = query
                                .bind(at as i64)
                                .bind(&r.provider_id)
                                .bind(&r.run_id)
                                .bind(r.seq);
                        }
                        for (at, digest) in query.fetch_all(&mut *conn).await.db()? {
                            stored_digest.insert(at as usize, digest);
                        }
                    }

                    // Each record in order against what is stored, this batch's records
                    // included.
                    let mut running_max = stored_max;
                    let mut stored_now: HashMap<(&str, &str, i64), usize> = HashMap::new();
                    let mut outcomes = Vec::with_capacity(records.len());
                    let mut to_insert: Vec<&UsageRecord> = Vec::with_capacity(records.len());
                    // Per run: (Σ flop, Σ flop_upper, latest received_at).
                    let mut sums: HashMap<&str, (f64, f64, i64)> = HashMap::new();
                    for (i, r) in records.iter().enumerate() {
                        let key = (r.provider_id.as_str(), r.run_id.as_str(), r.seq);
                        let pair = pair_of[&(key.0, key.1)];
                        let existing = stored_digest
                            .get(&i)
                            .map(String::as_str)
                            .or_else(|| stored_now.get(&key).map(|&j| records[j].digest.as_str()));
                        outcomes.push(match existing {
                            Some(digest) if digest == r.digest => Ingested::Duplicate,
                            Some(digest) => Ingested::Conflict {
                                stored_digest: digest.to_owned(),
                            },
                            None => {
                                stored_now.insert(key, i);
                                to_insert.push(r);
                                let sum = sums.entry(key.1).or_insert((0.0, 0.0, i64::MIN));
                                sum.0 += r.flop;
                                sum.1 += r.flop_upper;
                                sum.2 = sum.2.max(r.received_at);
                                Ingested::Stored {
                                    previous_max_seq: running_max[pair],
                                }
                            }
                        });
                        running_max[pair] = running_max[pair].max(r.seq);
                    }

                    // All or nothing: one conflicting record withholds the whole batch.
                    if outcomes
                        .iter()
                        .any(|o| matches!(o, Ingested::Conflict { .. }))
                    {
                        for o in &mut outcomes {
                            if matches!(o, Ingested::Stored { .. }) {
                                *o = Ingested::Withheld;
                            }
                        }
                        return Ok(outcomes);
                    }

                    let inserted = |e: sqlx::Error| match &e {
                        // Cannot happen while the runs are locked; say what it would mean.
                        sqlx::Error::Database(db)
                            if db.kind() == sqlx::error::ErrorKind::UniqueViolation =>
                        {
                            StoreError::Conflict(
                                "usage reports: a report of this batch was stored concurrently"
                                    .to_owned(),
                            )
                        }
                        _ => StoreError::Database(format!("usage reports: {e}")),
                    };
                    let mut rest = &to_insert[..];
                    let max_rows = sql::INSERT_USAGE.max_rows();
                    for rows in sql::pieces(rest.len(), max_rows) {
                        let (chunk, tail) = rest.split_at(rows);
                        rest = tail;
                        let mut query = sqlx::query(sql::INSERT_USAGE.get(rows, Self::PARAMS));
                        for r in chunk {
                            query = query
                                .bind(&r.provider_id)
                                .bind(&r.run_id)
                                .bind(r.seq)
                                .bind(&r.permit_id)
                                .bind(&r.cluster)
                                .bind(r.from_s)
                                .bind(r.to_s)
                                .bind(r.flop)
                                .bind(r.flop_lower)
                                .bind(r.flop_upper)
                                .bind(&r.method)
                                .bind(&r.accelerator_seconds_json)
                                .bind(&r.digest)
                                .bind(&r.token)
                                .bind(r.received_at);
                        }
                        query.execute(&mut *conn).await.map_err(inserted)?;
                    }

                    let mut sums: Vec<_> = sums.into_iter().collect();
                    sums.sort_unstable_by(|a, b| a.0.cmp(b.0));
                    for (run, (flop, flop_upper, received_at)) in sums {
                        sqlx::query(sql::ADD_RUN_USAGE)
                            .bind(run)
                            .bind(flop)
                            .bind(flop_upper)
                            .bind(received_at)
                            .execute(&mut *conn)
                            .await
                            .map_err(|e| StoreError::Database(format!("run {run:?}: {e}")))?;
                    }
                    Ok(outcomes)
                }

                /// Applies `writes`, all [`Write::QueueLogEntry`], with multi-row inserts: the
                /// same rows, ids in the same order, as applying them one by one.
                async fn queue_log_entries(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    writes: &[Write],
                ) -> Result<(), StoreError> {
                    let mut rest = writes;
                    let max_rows = sql::QUEUE_LOG_ENTRIES.max_rows();
                    for rows in sql::pieces(rest.len(), max_rows) {
                        let (chunk, tail) = rest.split_at(rows);
                        rest = tail;
                        let mut query = sqlx::query(sql::QUEUE_LOG_ENTRIES.get(rows, Self::PARAMS));
                        for write in chunk {
                            if let Write::QueueLogEntry { subject, entry, at } = write {
                                query = query.bind(subject).bind(entry).bind(*at);
                            }
                        }
                        query
                            .execute(&mut *conn)
                            .await
                            .map_err(|e| write_error(&chunk[0], e))?;
                    }
                    Ok(())
                }

                /// The body of [`Store::sequence_log`], inside its transaction; `queue_ids` are
                /// the batch's, sorted (see `validate::log_batch`).
                async fn sequence(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    batch: &LogBatch,
                    queue_ids: &[i64],
                ) -> Result<(), StoreError> {
                    let moved_on = |stored: &str| {
                        StoreError::Conflict(format!(
                            "log: the batch extends a tree of size {}, but the stored size is \
                             {stored}: another sequencer went first",
                            batch.expected_size
                        ))
                    };
                    // Locks the state row (PostgreSQL) until commit: a second sequencer waits
                    // here, then reads the size the first one stored.
                    let stored: Option<i64> = sqlx::query_scalar(Self::LOG_SIZE_LOCKED)
                        .fetch_optional(&mut *conn)
                        .await
                        .db()?;
                    let stored = stored.unwrap_or(0);
                    if stored != batch.expected_size {
                        return Err(moved_on(&stored.to_string()));
                    }
                    // The state first: before there is a row to lock, this compare-and-set is
                    // what keeps two sequencers from both extending size 0.
                    let done = sqlx::query(sql::PUT_LOG_STATE)
                        .bind(batch.size)
                        .bind(&batch.root)
                        .bind(&batch.checkpoint)
                        .bind(batch.at)
                        .bind(batch.expected_size)
                        .execute(&mut *conn)
                        .await
                        .db()?;
                    if done.rows_affected() != 1 {
                        return Err(moved_on("no longer that"));
                    }
                    Self::take_queued(&mut *conn, queue_ids).await?;
                    let mut rest = &batch.entries[..];
                    let max_rows = sql::INSERT_LOG_ENTRIES.max_rows();
                    for rows in sql::pieces(rest.len(), max_rows) {
                        let (chunk, tail) = rest.split_at(rows);
                        rest = tail;
                        let mut query =
                            sqlx::query(sql::INSERT_LOG_ENTRIES.get(rows, Self::PARAMS));
                        for e in chunk {
                            query = query
                                .bind(e.index)
                                .bind(&e.subject)
                                .bind(&e.entry)
                                .bind(e.queue_id)
                                .bind(batch.at);
                        }
                        query
                            .execute(&mut *conn)
                            .await
                            .map_err(|e| $crate::error::log_error("entries", e))?;
                    }
                    let mut rest = &batch.hashes[..];
                    let max_rows = sql::INSERT_LOG_HASHES.max_rows();
                    for rows in sql::pieces(rest.len(), max_rows) {
                        let (chunk, tail) = rest.split_at(rows);
                        rest = tail;
                        let mut query = sqlx::query(sql::INSERT_LOG_HASHES.get(rows, Self::PARAMS));
                        for (index, hash) in chunk {
                            query = query.bind(*index).bind(hash);
                        }
                        query
                            .execute(&mut *conn)
                            .await
                            .map_err(|e| $crate::error::log_error("hashes", e))?;
                    }
                    Ok(())
                }

                /// Deletes the queue rows `ids` (sorted, distinct): one `BETWEEN` per run of
                /// consecutive ids, one `IN` list per chunk of the others. A row that is no
                /// longer queued is a `Conflict` naming it.
                async fn take_queued(
                    conn: &mut <$db as sqlx::Database>::Connection,
                    ids: &[i64],
                ) -> Result<(), StoreError> {
                    /// Runs at least this long are deleted by range.
                    const MIN_RUN: usize = 8;
                    let check = |wanted: &[i64], mut taken: Vec<i64>| {
                        if taken.len() == wanted.len() {
                            return Ok(());
                        }
                        taken.sort_unstable();
                        let missing = wanted
                            .iter()
                            .find(|id| taken.binary_search(id).is_err())
                            .copied()
                            .unwrap_or_default();
                        Err(StoreError::Conflict(format!(
                            "log: queued entry {missing} is no longer queued: another \
                             sequencer took it"
                        )))
                    };
                    let mut scattered = Vec::new();
                    let mut start = 0;
                    while start < ids.len() {
                        let mut end = start + 1;
                        while end < ids.len() && ids[end - 1].checked_add(1) == Some(ids[end]) {
                            end += 1;
                        }
                        let run = &ids[start..end];
                        if run.len() >= MIN_RUN {
                            let taken: Vec<i64> = sqlx::query_scalar(sql::TAKE_LOG_QUEUE_RANGE)
                                .bind(run[0])
                                .bind(run[run.len() - 1])
                                .fetch_all(&mut *conn)
                                .await
                                .db()?;
                            check(run, taken)?;
                        } else {
                            scattered.extend_from_slice(run);
                        }
                        start = end;
                    }
                    for chunk in scattered.chunks(sql::TAKE_LOG_QUEUE_IN.max_rows()) {
                        let rows = chunk.len().next_power_of_two();
                        let mut query =
                            sqlx::query_scalar(sql::TAKE_LOG_QUEUE_IN.get(rows, Self::PARAMS));
                        for i in 0..rows {
                            // Padding repeats the last id: the same row, deleted once.
                            query = query.bind(chunk[i.min(chunk.len() - 1)]);
                        }
                        let taken: Vec<i64> = query.fetch_all(&mut *conn).await.db()?;
                        check(chunk, taken)?;
                    }
                    Ok(())
                }
            }

            #[async_trait::async_trait]
            impl Store for $store {
                async fn migrate(&self) -> Result<(), StoreError> {
                    self.run_migrations().await
                }

                async fn ping(&self) -> Result<(), StoreError> {
                    sqlx::query(sql::PING).execute(&self.pool).await.db()?;
                    Ok(())
                }

                async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
                    $crate::validate::batch(&writes)?;
                    if writes.is_empty() {
                        return Ok(());
                    }
                    let mut tx = self.begin_write(&writes).await?;
                    let mut rest = &writes[..];
                    while !rest.is_empty() {
                        // Consecutive queued log entries go in multi-row inserts (a bulk
                        // producer may queue thousands in one batch); the rest one by one.
                        let queued = rest
                            .iter()
                            .take_while(|w| matches!(w, Write::QueueLogEntry { .. }))
                            .count();
                        let (now, later) = rest.split_at(queued.max(1));
                        rest = later;
                        let applied = if queued > 1 {
                            Self::queue_log_entries(&mut *tx, now).await
                        } else {
                            Self::apply(&mut *tx, &now[0]).await
                        };
                        if let Err(e) = applied {
                            tracing::debug!(error = %e, "store batch rolled back");
                            // Dropping `tx` would also roll back, but lazily; do it now so the
                            // connection is clean before it returns to the pool.
                            let _ = tx.rollback().await;
                            return Err(e);
                        }
                    }
                    tx.commit().await.db()?;
                    tracing::debug!(writes = writes.len(), "store batch committed");
                    Ok(())
                }

                async fn organization(&self, id: &str) -> Result<Option<Organization>, StoreError> {
                    sqlx::query_as(sql::ORGANIZATION)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn organizations(&self) -> Result<Vec<Organization>, StoreError> {
                    sqlx::query_as(sql::ORGANIZATIONS)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn member(&self, id: &str) -> Result<Option<Member>, StoreError> {
                    sqlx::query_as(sql::MEMBER)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn members(&self, org_id: &str) -> Result<Vec<Member>, StoreError> {
                    sqlx::query_as(sql::MEMBERS)
                        .bind(org_id)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn tokens(&self, member_id: &str) -> Result<Vec<Token>, StoreError> {
                    sqlx::query_as(sql::TOKENS)
                        .bind(member_id)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn token(&self, id: &str) -> Result<Option<Token>, StoreError> {
                    sqlx::query_as(sql::TOKEN)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn authenticate(
                    &self,
                    token_hash: &str,
                    now: i64,
                ) -> Result<Option<Principal>, StoreError> {
                    let row: Option<sql::PrincipalRow> = sqlx::query_as(sql::AUTHENTICATE)
                        .bind(token_hash)
                        .bind(now)
                        .fetch_optional(&self.pool)
                        .await
                        .db()?;
                    Ok(row.map(Into::into))
                }

                async fn application(&self, id: &str) -> Result<Option<Application>, StoreError> {
                    sqlx::query_as(sql::APPLICATION)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn applications(
                    &self,
                    org_id: Option<&str>,
                ) -> Result<Vec<Application>, StoreError> {
                    match org_id {
                        Some(org_id) => sqlx::query_as(sql::APPLICATIONS_OF_ORG)
                            .bind(org_id)
                            .fetch_all(&self.pool)
                            .await
                            .db(),
                        None => sqlx::query_as(sql::APPLICATIONS)
                            .fetch_all(&self.pool)
                            .await
                            .db(),
                    }
                }

                async fn reviews(&self, application_id: &str) -> Result<Vec<Review>, StoreError> {
                    sqlx::query_as(sql::REVIEWS)
                        .bind(application_id)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn permit(&self, id: &str) -> Result<Option<Permit>, StoreError> {
                    sqlx::query_as(sql::PERMIT)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn permits_for_application(
                    &self,
                    application_id: &str,
                ) -> Result<Vec<Permit>, StoreError> {
                    sqlx::query_as(sql::PERMITS_FOR_APPLICATION)
                        .bind(application_id)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn pending_permits(&self) -> Result<Vec<Permit>, StoreError> {
                    sqlx::query_as(sql::PENDING_PERMITS)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn receipt_for_application(
                    &self,
                    application_id: &str,
                ) -> Result<Option<Receipt>, StoreError> {
                    sqlx::query_as(sql::RECEIPT_FOR_APPLICATION)
                        .bind(application_id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
                    sqlx::query_as(sql::SIGNING_KEYS)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn plan_permit(
                    &self,
                    plan_digest: &str,
                ) -> Result<Option<String>, StoreError> {
                    sqlx::query_scalar(sql::PLAN_PERMIT)
                        .bind(plan_digest)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn deployment(&self) -> Result<Option<Deployment>, StoreError> {
                    sqlx::query_as(sql::DEPLOYMENT)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn audit(
                    &self,
                    subject: Option<&str>,
                    after_seq: i64,
                    limit: i64,
                ) -> Result<Vec<AuditEvent>, StoreError> {
                    if limit < 1 {
                        return Err(StoreError::Invalid(format!(
                            "audit limit: must be 1 or more (got {limit})"
                        )));
                    }
                    match subject {
                        Some(subject) => sqlx::query_as(sql::AUDIT_OF_SUBJECT)
                            .bind(subject)
                            .bind(after_seq)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                            .db(),
                        None => sqlx::query_as(sql::AUDIT)
                            .bind(after_seq)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                            .db(),
                    }
                }

                async fn idempotency(
                    &self,
                    principal_id: &str,
                    key: &str,
                ) -> Result<Option<Idempotency>, StoreError> {
                    sqlx::query_as(sql::IDEMPOTENCY)
                        .bind(principal_id)
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn organization_count(&self) -> Result<i64, StoreError> {
                    sqlx::query_scalar(sql::ORGANIZATION_COUNT)
                        .fetch_one(&self.pool)
                        .await
                        .db()
                }

                async fn log_queue(&self, limit: i64) -> Result<Vec<QueuedLogEntry>, StoreError> {
                    if limit < 1 {
                        return Err(StoreError::Invalid(format!(
                            "log queue limit: must be 1 or more (got {limit})"
                        )));
                    }
                    sqlx::query_as(sql::LOG_QUEUE)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn log_state(&self) -> Result<Option<LogState>, StoreError> {
                    sqlx::query_as(sql::LOG_STATE)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn sequence_log(&self, batch: LogBatch) -> Result<(), StoreError> {
                    let queue_ids = $crate::validate::log_batch(&batch)?;
                    let mut tx = self.begin_write(&[]).await?;
                    if let Err(e) = Self::sequence(&mut *tx, &batch, &queue_ids).await {
                        tracing::debug!(error = %e, "log batch rolled back");
                        let _ = tx.rollback().await;
                        return Err(e);
                    }
                    tx.commit().await.db()?;
                    tracing::debug!(
                        entries = batch.entries.len(),
                        size = batch.size,
                        "log batch committed"
                    );
                    Ok(())
                }

                async fn log_hashes(&self, indexes: &[i64]) -> Result<Vec<Vec<u8>>, StoreError> {
                    let mut wanted = indexes.to_vec();
                    wanted.sort_unstable();
                    wanted.dedup();
                    let mut found = std::collections::HashMap::with_capacity(wanted.len());
                    for chunk in wanted.chunks(sql::LOG_HASHES.max_rows()) {
                        let rows = chunk.len().next_power_of_two();
                        let mut query = sqlx::query_as::<_, (i64, Vec<u8>)>(
                            sql::LOG_HASHES.get(rows, Self::PARAMS),
                        );
                        for i in 0..rows {
                            // Padding repeats the last index: the same row, read once.
                            query = query.bind(chunk[i.min(chunk.len() - 1)]);
                        }
                        found.extend(query.fetch_all(&self.pool).await.db()?);
                    }
                    indexes
                        .iter()
                        .map(|index| {
                            found
                                .get(index)
                                .cloned()
                                .ok_or_else(|| StoreError::NotFound(format!("log hash {index}")))
                        })
                        .collect()
                }

                async fn log_entries(
                    &self,
                    start: i64,
                    end: i64,
                ) -> Result<Vec<Vec<u8>>, StoreError> {
                    if start < 0 || end < start {
                        return Err(StoreError::Invalid(format!(
                            "log entries: need 0 <= start <= end (got start {start}, end {end})"
                        )));
                    }
                    sqlx::query_scalar(sql::LOG_ENTRIES)
                        .bind(start)
                        .bind(end)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn log_index(&self, subject: &str) -> Result<Option<i64>, StoreError> {
                    sqlx::query_scalar(sql::LOG_INDEX)
                        .bind(subject)
                        .fetch_one(&self.pool)
                        .await
                        .db()
                }

                async fn take_log_lease(
                    &self,
                    holder: &str,
                    now: i64,
                    until: i64,
                ) -> Result<bool, StoreError> {
                    if holder.is_empty() {
                        return Err(StoreError::Invalid(
                            "log lease holder: must not be empty".to_owned(),
                        ));
                    }
                    let done = sqlx::query(sql::TAKE_LOG_LEASE)
                        .bind(holder)
                        .bind(until)
                        .bind(now)
                        .execute(&self.pool)
                        .await
                        .db()?;
                    Ok(done.rows_affected() == 1)
                }

                async fn provider_key(&self, kid: &str) -> Result<Option<ProviderKey>, StoreError> {
                    sqlx::query_as(sql::PROVIDER_KEY)
                        .bind(kid)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn provider_keys(
                    &self,
                    org_id: &str,
                ) -> Result<Vec<ProviderKey>, StoreError> {
                    sqlx::query_as(sql::PROVIDER_KEYS_OF_ORG)
                        .bind(org_id)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn all_provider_keys(&self) -> Result<Vec<ProviderKey>, StoreError> {
                    sqlx::query_as(sql::PROVIDER_KEYS)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
                    sqlx::query_as(sql::RUN)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn run_by_permit(&self, permit_id: &str) -> Result<Option<Run>, StoreError> {
                    sqlx::query_as(sql::RUN_BY_PERMIT)
                        .bind(permit_id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn runs(&self, org_id: Option<&str>) -> Result<Vec<Run>, StoreError> {
                    match org_id {
                        Some(org_id) => sqlx::query_as(sql::RUNS_OF_ORG)
                            .bind(org_id)
                            .fetch_all(&self.pool)
                            .await
                            .db(),
                        None => sqlx::query_as(sql::RUNS).fetch_all(&self.pool).await.db(),
                    }
                }

                async fn runs_not_in_good_standing(
                    &self,
                    min_permit_exp_s: i64,
                ) -> Result<Vec<Run>, StoreError> {
                    sqlx::query_as(sql::RUNS_NOT_IN_GOOD_STANDING)
                        .bind(min_permit_exp_s)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn runs_to_summarize(&self) -> Result<Vec<Run>, StoreError> {
                    sqlx::query_as(sql::RUNS_TO_SUMMARIZE)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn ingest_usage(
                    &self,
                    records: Vec<UsageRecord>,
                ) -> Result<Vec<Ingested>, StoreError> {
                    $crate::validate::usage(&records)?;
                    if records.is_empty() {
                        return Ok(Vec::new());
                    }
                    let mut tx = self.begin_write(&[]).await?;
                    let outcomes = match Self::ingest(&mut *tx, &records).await {
                        Ok(outcomes)
                            if outcomes
                                .iter()
                                .any(|o| matches!(o, Ingested::Conflict { .. })) =>
                        {
                            tx.rollback().await.db()?;
                            tracing::debug!("usage batch withheld: a record conflicts");
                            return Ok(outcomes);
                        }
                        Ok(outcomes) => outcomes,
                        Err(e) => {
                            tracing::debug!(error = %e, "usage batch rolled back");
                            let _ = tx.rollback().await;
                            return Err(e);
                        }
                    };
                    tx.commit().await.db()?;
                    tracing::debug!(records = records.len(), "usage batch committed");
                    Ok(outcomes)
                }

                async fn usage_by_provider(
                    &self,
                    run_id: &str,
                ) -> Result<Vec<ProviderUsage>, StoreError> {
                    sqlx::query_as(sql::USAGE_BY_PROVIDER)
                        .bind(run_id)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn usage_reports(
                    &self,
                    run_id: &str,
                    after: Option<(String, i64)>,
                    limit: i64,
                ) -> Result<Vec<UsageRecord>, StoreError> {
                    if limit < 1 {
                        return Err(StoreError::Invalid(format!(
                            "usage reports limit: must be 1 or more (got {limit})"
                        )));
                    }
                    match after {
                        Some((provider_id, seq)) => sqlx::query_as(sql::USAGE_REPORTS_AFTER)
                            .bind(run_id)
                            .bind(provider_id)
                            .bind(seq)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                            .db(),
                        None => sqlx::query_as(sql::USAGE_REPORTS)
                            .bind(run_id)
                            .bind(limit)
                            .fetch_all(&self.pool)
                            .await
                            .db(),
                    }
                }

                async fn milestone(&self, id: &str) -> Result<Option<Milestone>, StoreError> {
                    sqlx::query_as(sql::MILESTONE)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn milestones(&self, run_id: &str) -> Result<Vec<Milestone>, StoreError> {
                    sqlx::query_as(sql::MILESTONES)
                        .bind(run_id)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }

                async fn incident(&self, id: &str) -> Result<Option<Incident>, StoreError> {
                    sqlx::query_as(sql::INCIDENT)
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await
                        .db()
                }

                async fn incidents(
                    &self,
                    org_id: Option<&str>,
                ) -> Result<Vec<Incident>, StoreError> {
                    match org_id {
                        Some(org_id) => sqlx::query_as(sql::INCIDENTS_OF_ORG)
                            .bind(org_id)
                            .fetch_all(&self.pool)
                            .await
                            .db(),
                        None => sqlx::query_as(sql::INCIDENTS)
                            .fetch_all(&self.pool)
                            .await
                            .db(),
                    }
                }

                async fn kyc_totals(&self, since_s: i64) -> Result<Vec<KycTotal>, StoreError> {
                    sqlx::query_as(sql::KYC_TOTALS)
                        .bind(since_s)
                        .fetch_all(&self.pool)
                        .await
                        .db()
                }
            }
        };
    };
}
pub(crate) use impl_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_powers_of_two_largest_first() {
        let split = |n| pieces(n, 8).collect::<Vec<_>>();
        assert_eq!(split(0), Vec::<usize>::new());
        assert_eq!(split(1), [1]);
        assert_eq!(split(8), [8]);
        assert_eq!(split(23), [8, 8, 4, 2, 1]);
        assert_eq!(split(16), [8, 8]);
        for n in 0..100 {
            assert_eq!(split(n).iter().sum::<usize>(), n);
        }
    }

    #[test]
    fn generated_statements_number_or_list_their_parameters() {
        assert_eq!(
            INSERT_LOG_HASHES.get(2, Params::Numbered),
            "INSERT INTO log_hashes (idx, hash) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            INSERT_LOG_HASHES.get(2, Params::Anonymous),
            "INSERT INTO log_hashes (idx, hash) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            LOG_HASHES.get(4, Params::Numbered),
            "SELECT idx, hash FROM log_hashes WHERE idx IN ($1, $2, $3, $4)"
        );
        let entries = INSERT_LOG_ENTRIES.get(LOG_ENTRY_ROWS, Params::Numbered);
        assert!(
            entries.ends_with(&format!("${})", LOG_ENTRY_ROWS * 5)),
            "{entries}"
        );
    }
}
