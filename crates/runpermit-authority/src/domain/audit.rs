//! Audit events: who did what, when and why. Every state change commits its events in the
//! same batch as the change itself.

use runpermit_store::{AuditEvent, Write};
use serde_json::Value;

use crate::domain::Caller;

/// An audit write for `action` on `subject` (`application/app_…`).
pub fn event(
    caller: Option<&Caller>,
    at_ms: i64,
    action: &str,
    subject: &str,
    reason: Option<&str>,
    details: Value,
) -> Write {
    Write::InsertAudit(AuditEvent {
        seq: 0,
        at: at_ms,
        actor_member_id: caller.map(|c| c.member_id.clone()),
        actor_org_id: caller.map(|c| c.org_id.clone()),
        action: action.to_owned(),
        subject: subject.to_owned(),
        reason: reason.map(str::to_owned),
        details_json: details.to_string(),
    })
}

/// RFC 3339 (UTC, milliseconds) for a unix-millisecond timestamp.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
