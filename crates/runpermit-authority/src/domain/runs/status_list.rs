//! The signed status list: every permit whose run is not in good standing, reconciled with
//! what the public log says, signed for gates to poll.

use runpermit_permit::{PermitStatus, StatusEntry};
use runpermit_policy::RunStatus;

use crate::domain::log as tlog;
use crate::domain::{Authority, DomainError};

/// The signed status list of permits not in good standing, for gates to poll: signed with
/// the permit key, valid for the policy's `status_ttl_seconds`, built from the runs' stored
/// status at this moment, so a change shows in the very next list. Its version is the signing
/// time in milliseconds, so it increases with every list any process signs as long as the
/// processes' clocks are synchronized (NTP), which a gate needs anyway.
///
/// The list never contradicts the authority's own log: before signing, every permit that the
/// sequenced log says is not in good standing is added if the runs do not list it, and a
/// final entry (`run_revoked`, `run_completed`) always lists it as revoked
/// ([`runpermit_permit::reconcile`]). Each such correction means the database was changed
/// behind the log's back: it is logged as an error and counted in
/// `runpermit_status_list_corrections_total`. A resumption takes effect on the list once it
/// is sequenced (normally within the sequencing interval).
pub async fn status_list(state: &Authority) -> Result<String, DomainError> {
    let now_ms = state.clock.now_ms();
    let iat = now_ms.div_euclid(1000);
    let mut entries = status_entries(state).await?;
    // Access grants not in good standing, by grant id, beside the permits.
    entries.extend(crate::domain::access::status_entries(state).await?);
    let skew = i64::from(state.policy.permit.clock_skew_seconds);
    {
        let folded = tlog::log_standing(state, iat - skew).await?;
        for c in runpermit_permit::reconcile(&mut entries, &folded.standing, iat, iat - skew) {
            tracing::error!(
                permit = %c.permit_id,
                was = c.was.map_or("in good standing", |s| s.as_str()),
                now = %c.now,
                log = %c.log_says,
                "the database contradicts the public log; the status list follows the log"
            );
            metrics::counter!("runpermit_status_list_corrections_total", "to" => c.now.as_str())
                .increment(1);
        }
    }
    let claims = runpermit_permit::StatusListClaims::new(
        state.issuer.clone(),
        iat,
        i64::from(state.policy.permit.status_ttl_seconds),
        u64::try_from(now_ms).unwrap_or(0),
        entries,
    );
    Ok(runpermit_permit::sign_status_list(&claims, &state.signer))
}

/// The status list's entries: every run not in good standing whose permit has not expired
/// (an expired permit admits nothing anyway).
pub async fn status_entries(state: &Authority) -> Result<Vec<StatusEntry>, DomainError> {
    let now_s = state.clock.now_s();
    let skew = i64::from(state.policy.permit.clock_skew_seconds);
    let runs = state.store.runs_not_in_good_standing(now_s - skew).await?;
    let mut entries = Vec::with_capacity(runs.len());
    for run in runs {
        let status = run.status;
        let (listed, reason) = match status {
            RunStatus::Active => continue,
            RunStatus::MilestoneDue => (PermitStatus::MilestoneHold, run.reason.clone()),
            RunStatus::Paused => (PermitStatus::Paused, run.reason.clone()),
            RunStatus::Suspended => (PermitStatus::Suspended, run.reason.clone()),
            RunStatus::Revoked => (PermitStatus::Revoked, run.reason.clone()),
            RunStatus::Terminated => (PermitStatus::Revoked, format!("terminated: {}", run.reason)),
            RunStatus::Completed => (PermitStatus::Revoked, format!("completed: {}", run.reason)),
        };
        entries.push(StatusEntry {
            permit_id: run.permit_id,
            status: listed,
            reason,
            since: run.status_since.div_euclid(1000).min(now_s),
        });
    }
    Ok(entries)
}
