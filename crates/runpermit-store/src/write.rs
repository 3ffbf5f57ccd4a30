//! [`Write`]: one change of a [`crate::Store::commit`] batch, whichever aggregate it touches.

use serde::{Deserialize, Serialize};

use crate::{
    AccessRequest, Application, AuditEvent, Deployment, Grant, Idempotency, Incident, KycReport,
    Member, Milestone, Model, Organization, Permit, ProviderKey, Receipt, Review, Run, RunFlag,
    Session, SigningKey, Token,
};

/// One write of a [`crate::Store::commit`] batch. A batch is applied in order, in one
/// transaction: all of it or none of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Write {
    InsertOrganization(Organization),
    InsertMember(Member),
    InsertToken(Token),
    /// Sets `revoked_at`. A missing token is `NotFound`; an already revoked one `Conflict`.
    RevokeToken {
        id: String,
        at: i64,
    },
    InsertSession(Session),
    /// Sets a console session's `ended_at` (sign-out). A missing session is `NotFound`; an
    /// ended one `Conflict`.
    EndSession {
        id_hash: String,
        at: i64,
    },
    InsertApplication(Application),
    /// Sets every mutable column (`status`, `tier`, `decision`, `approvals_required`,
    /// `plan_json`, `plan_digest`, `estimate_json`, `policy_version`, `updated_at`) and
    /// `version = expected_version + 1`. `id` selects the row; `org_id`, `created_by`,
    /// `created_at` and `application.version` are ignored. A stored version other than
    /// `expected_version` is `Conflict`; a missing application `NotFound`.
    UpdateApplication {
        application: Application,
        expected_version: i64,
    },
    InsertReview(Review),
    InsertPermit(Permit),
    /// Moves a permit from `intent` to `issued` with its signed token. A missing permit is
    /// `NotFound`; one not in `intent` is `Conflict`.
    IssuePermit {
        id: String,
        token: String,
        issued_at: i64,
    },
    InsertReceipt(Receipt),
    InsertSigningKey(SigningKey),
    /// Sets `retired_at`. A missing key is `NotFound`; an already retired one `Conflict`.
    RetireSigningKey {
        kid: String,
        at: i64,
    },
    /// Claims a plan for a permit, in the batch that writes the permit's intent. With
    /// `replaces` `None` the plan must be unclaimed (else `Duplicate`: of two concurrent grants
    /// of one plan exactly one commits); with `Some(previous)` the claim must still name
    /// `previous` (else `Conflict`), whose permit the caller found no longer in force.
    ClaimPlan {
        plan_digest: String,
        permit_id: String,
        replaces: Option<String>,
        at: i64,
    },
    /// Records the deployment's identity. Written once: when one is recorded already this is
    /// `Duplicate` and the whole batch rolls back, so of two first starts racing on one
    /// database exactly one records its keys (the other reads them with
    /// [`crate::OpsStore::deployment`] and compares). `log_origin` must not be empty and
    /// `log_vkey` must start with `log_origin` and `+`.
    InsertDeployment(Deployment),
    /// Appends to the audit trail; `seq` is assigned by the store.
    InsertAudit(AuditEvent),
    /// Reserves an idempotency key before the request's work: inserts the record with
    /// `status` [`Idempotency::RESERVED`] and an empty `response_json`. Insert only: when
    /// `(principal_id, key)` already has a record (reserved or answered) it is `Duplicate`,
    /// so of concurrent requests with one key exactly one reserves it.
    ReserveIdempotency(Idempotency),
    /// Takes over a reservation abandoned by a request that never finished (a crash): the
    /// reservation made at `reserved_at` is dated `at` (later than `reserved_at`) and
    /// belongs to the caller from then on. `NotFound` when the key has no record;
    /// `Conflict` when it holds an answer or a reservation made at another time (another
    /// request took it over, or finished, first).
    TakeOverIdempotency {
        principal_id: String,
        key: String,
        reserved_at: i64,
        at: i64,
    },
    /// Stores the answer of a reserved request in the reservation made at `reserved_at`:
    /// `status` 100..=599 and `response_json`. `NotFound` and `Conflict` as for
    /// [`Write::TakeOverIdempotency`] (the reservation was taken over meanwhile).
    AnswerIdempotency {
        principal_id: String,
        key: String,
        reserved_at: i64,
        status: i64,
        response_json: String,
    },
    /// Deletes the reservation made at `reserved_at`: its request failed, and the key may
    /// be used again. `NotFound` and `Conflict` as for [`Write::TakeOverIdempotency`].
    ReleaseIdempotency {
        principal_id: String,
        key: String,
        reserved_at: i64,
    },
    /// Queues a transparency-log entry for the sequencer, atomically with the rest of the
    /// batch (the state change it records). `subject` must not be empty; `entry` must hold 1 to
    /// `MAX_LOG_ENTRY_BYTES - 1` bytes. The queue id is assigned by the store.
    QueueLogEntry {
        subject: String,
        entry: Vec<u8>,
        at: i64,
    },
    InsertProviderKey(ProviderKey),
    /// Sets `revoked_at`. A missing key is `NotFound`; an already revoked one `Conflict`.
    RevokeProviderKey {
        kid: String,
        at: i64,
    },
    InsertRun(Run),
    /// Sets the run's mutable state (`status`, `reason`, `status_since`, `tranche`,
    /// `released_flop`, `alerted_percent`, `appeal_pending`, `updated_at`) and
    /// `version = expected_version + 1`. `run.id` selects the row; every other field of `run`
    /// is ignored, notably the usage figures (`cumulative_flop`, `cumulative_upper_flop`,
    /// `summarized_flop`), which ingestion changes concurrently without a version bump. A
    /// stored version other than `expected_version` is `Conflict`; a missing run `NotFound`.
    UpdateRun {
        run: Run,
        expected_version: i64,
    },
    /// Records that the run's cumulative figure `flop` was written to the public log: sets
    /// `summarized_flop` and `updated_at`, not `version`, if `summarized_flop` is still
    /// `expected_flop` (so that two processes never both log the same summary: the second
    /// gets `Conflict` and its batch, log entry included, rolls back). A missing run is
    /// `NotFound`.
    SetRunSummarized {
        id: String,
        flop: f64,
        expected_flop: f64,
        at: i64,
    },
    InsertMilestone(Milestone),
    /// Decides a `submitted` milestone: sets `status` (`accepted` or `rejected`), the
    /// `decided_*` fields and `reason`. A missing milestone is `NotFound`; one already decided
    /// `Conflict`.
    DecideMilestone {
        id: String,
        status: runpermit_types::MilestoneStatus,
        decided_by: String,
        decided_org: String,
        decided_at: i64,
        reason: String,
    },
    InsertIncident(Incident),
    InsertAccessRequest(AccessRequest),
    /// Sets an access request's decision state (`status`, `consent`, `consent_reason`,
    /// `approvals_json`, `reason`, `grant_id`, `updated_at`) and `version = expected_version + 1`,
    /// if the stored version is `expected_version` (else `Conflict`; a missing one `NotFound`).
    UpdateAccessRequest {
        request: AccessRequest,
        expected_version: i64,
    },
    /// Stores a signed grant. A second grant on the same request is `Duplicate`.
    InsertGrant(Grant),
    /// Sets a grant's standing (`status`, `reason`, `status_since`) and `version =
    /// expected_version + 1`, if the stored version is `expected_version`.
    UpdateGrant {
        grant: Grant,
        expected_version: i64,
    },
    /// Registers a model. A second model with the same checkpoint digest, or the same name in
    /// its organization, is `Duplicate`; a missing run or milestone `NotFound`.
    InsertModel(Model),
    /// Raises a flag on a run, once: a flag with the same (run, kind, subject) already stored
    /// is left as it is (no error). A missing run is `NotFound`.
    InsertRunFlag(RunFlag),
    /// Records a follow-up of an open incident: sets `followed_up_at = at`,
    /// `follow_up = text`, and `status = "closed"` when `close`. A missing incident is
    /// `NotFound`; a closed one `Conflict`.
    FollowUpIncident {
        id: String,
        at: i64,
        text: String,
        close: bool,
    },
    InsertKycReport(KycReport),
}

impl Write {
    /// A short description for messages, such as `InsertToken tok_1`.
    pub fn describe(&self) -> String {
        match self {
            Write::InsertOrganization(o) => format!("InsertOrganization {}", o.id),
            Write::InsertMember(m) => format!("InsertMember {}", m.id),
            Write::InsertToken(t) => format!("InsertToken {}", t.id),
            Write::RevokeToken { id, .. } => format!("RevokeToken {id}"),
            Write::InsertSession(s) => format!("InsertSession for {}", s.token_id),
            Write::EndSession { .. } => "EndSession".to_owned(),
            Write::InsertApplication(a) => format!("InsertApplication {}", a.id),
            Write::UpdateApplication { application, .. } => {
                format!("UpdateApplication {}", application.id)
            }
            Write::InsertReview(r) => format!("InsertReview {}", r.id),
            Write::InsertPermit(p) => format!("InsertPermit {}", p.id),
            Write::IssuePermit { id, .. } => format!("IssuePermit {id}"),
            Write::InsertReceipt(r) => format!("InsertReceipt {}", r.id),
            Write::InsertSigningKey(k) => format!("InsertSigningKey {}", k.kid),
            Write::RetireSigningKey { kid, .. } => format!("RetireSigningKey {kid}"),
            Write::ClaimPlan {
                plan_digest,
                permit_id,
                ..
            } => format!("ClaimPlan {plan_digest} {permit_id}"),
            Write::InsertDeployment(d) => format!("InsertDeployment {}", d.log_origin),
            Write::InsertAudit(e) => format!("InsertAudit {} {}", e.action, e.subject),
            Write::ReserveIdempotency(i) => {
                format!("ReserveIdempotency {} {}", i.principal_id, i.key)
            }
            Write::TakeOverIdempotency {
                principal_id, key, ..
            } => format!("TakeOverIdempotency {principal_id} {key}"),
            Write::AnswerIdempotency {
                principal_id, key, ..
            } => format!("AnswerIdempotency {principal_id} {key}"),
            Write::ReleaseIdempotency {
                principal_id, key, ..
            } => format!("ReleaseIdempotency {principal_id} {key}"),
            Write::QueueLogEntry { subject, .. } => format!("QueueLogEntry {subject}"),
            Write::InsertProviderKey(k) => format!("InsertProviderKey {}", k.kid),
            Write::RevokeProviderKey { kid, .. } => format!("RevokeProviderKey {kid}"),
            Write::InsertRun(r) => format!("InsertRun {}", r.id),
            Write::UpdateRun { run, .. } => format!("UpdateRun {}", run.id),
            Write::SetRunSummarized { id, .. } => format!("SetRunSummarized {id}"),
            Write::InsertMilestone(m) => format!("InsertMilestone {}", m.id),
            Write::DecideMilestone { id, .. } => format!("DecideMilestone {id}"),
            Write::InsertIncident(i) => format!("InsertIncident {}", i.id),
            Write::InsertModel(m) => format!("InsertModel {}", m.id),
            Write::InsertAccessRequest(r) => format!("InsertAccessRequest {}", r.id),
            Write::UpdateAccessRequest { request, .. } => {
                format!("UpdateAccessRequest {}", request.id)
            }
            Write::InsertGrant(g) => format!("InsertGrant {}", g.id),
            Write::UpdateGrant { grant, .. } => format!("UpdateGrant {}", grant.id),
            Write::InsertRunFlag(f) => {
                format!("InsertRunFlag {} {} {}", f.run_id, f.kind, f.subject)
            }
            Write::FollowUpIncident { id, .. } => format!("FollowUpIncident {id}"),
            Write::InsertKycReport(k) => format!("InsertKycReport {}", k.id),
        }
    }
}

/// The part of the store a [`Write`] changes: whose `sql.rs` applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Aggregate {
    Identity,
    Applications,
    Log,
    Runs,
    Ops,
}

impl Write {
    /// The aggregate whose SQL applies this write.
    pub(crate) fn aggregate(&self) -> Aggregate {
        match self {
            Write::InsertOrganization(_)
            | Write::InsertMember(_)
            | Write::InsertToken(_)
            | Write::RevokeToken { .. }
            | Write::InsertSession(_)
            | Write::EndSession { .. }
            | Write::InsertSigningKey(_)
            | Write::RetireSigningKey { .. }
            | Write::InsertProviderKey(_)
            | Write::RevokeProviderKey { .. } => Aggregate::Identity,
            Write::InsertApplication(_)
            | Write::UpdateApplication { .. }
            | Write::InsertReview(_)
            | Write::InsertPermit(_)
            | Write::IssuePermit { .. }
            | Write::InsertReceipt(_)
            | Write::ClaimPlan { .. } => Aggregate::Applications,
            Write::QueueLogEntry { .. } => Aggregate::Log,
            Write::InsertRun(_)
            | Write::UpdateRun { .. }
            | Write::SetRunSummarized { .. }
            | Write::InsertMilestone(_)
            | Write::DecideMilestone { .. }
            | Write::InsertIncident(_)
            | Write::InsertRunFlag(_)
            | Write::InsertModel(_)
            | Write::InsertAccessRequest(_)
            | Write::UpdateAccessRequest { .. }
            | Write::InsertGrant(_)
            | Write::UpdateGrant { .. }
            | Write::FollowUpIncident { .. }
            | Write::InsertKycReport(_) => Aggregate::Runs,
            Write::InsertDeployment(_)
            | Write::InsertAudit(_)
            | Write::ReserveIdempotency(_)
            | Write::TakeOverIdempotency { .. }
            | Write::AnswerIdempotency { .. }
            | Write::ReleaseIdempotency { .. } => Aggregate::Ops,
        }
    }
}
