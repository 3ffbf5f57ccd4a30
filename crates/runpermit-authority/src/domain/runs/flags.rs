//! What the authority notices about a run for its reviewers and evaluators, beyond holds and
//! incidents: usage reported outside the permit's validity, an upper bound past the released
//! tranche, a measured utilization far above the declared one (a lab under-declaring to
//! stretch its tranches), and, at milestones, operation counting far from the metered figure
//! (`milestones.rs`). Each flag is raised once per (run, kind, subject), audited (`run.flag`)
//! and counted (`runpermit_run_flags_total{kind}`); the rules are `runpermit-policy`'s.
//!
//! Flags are derived from the run's stored sums and its signed permit, so a crash between
//! storing usage and raising a flag loses nothing: the supervisor evaluates every run again.

use runpermit_compute::{Flop, format_flop};
use runpermit_permit::PermitClaims;
use runpermit_policy::{TrancheProgress, utilization_above_declared};
use runpermit_store::{Run, RunFlag};
use runpermit_types::RunFlagKind;
use serde_json::{Value, json};

use crate::domain::permits::signed_permit;
use crate::domain::{Authority, DomainError};

/// A flag on `run`, raised at `now`.
pub(super) fn flag(
    run: &Run,
    kind: RunFlagKind,
    subject: String,
    now: i64,
    message: String,
    details: Value,
) -> RunFlag {
    RunFlag {
        run_id: run.id.clone(),
        kind: kind.as_str().to_owned(),
        subject,
        raised_at: now,
        message,
        details_json: details.to_string(),
    }
}

/// The flags `run` has earned and does not have yet, given its tranche `progress`.
pub(super) async fn new_flags(
    state: &Authority,
    run: &Run,
    progress: &TrancheProgress,
    now: i64,
) -> Result<Vec<RunFlag>, DomainError> {
    let mut candidates = Vec::new();
    let tranche = format!("tranche {}", run.tranche);
    if progress.upper_past_end {
        candidates.push(flag(
            run,
            RunFlagKind::UpperBoundPastTranche,
            tranche.clone(),
            now,
            format!(
                "the upper bound of run {}'s usage ({}) passed the end of its released tranche \
                 {} ({}): it may have used more than it was released (central estimate {}, \
                 lower bound {})",
                run.id,
                format_flop(run.cumulative_upper_flop),
                run.tranche,
                format_flop(run.released_flop),
                format_flop(run.cumulative_flop),
                format_flop(run.cumulative_lower_flop)
            ),
            json!({"tranche": run.tranche, "released_flop": run.released_flop,
                   "cumulative_flop": run.cumulative_flop,
                   "cumulative_lower_flop": run.cumulative_lower_flop,
                   "cumulative_upper_flop": run.cumulative_upper_flop}),
        ));
    }
    let has_usage = run.first_usage_s.is_some();
    let measured = run.measured_capacity_flop > 0.0;
    if has_usage || measured {
        // A permit decided but not yet signed has no usage to judge.
        if let Some(permit) = signed_permit(state, run).await? {
            candidates.extend(usage_times(run, &permit, now));
            candidates.extend(utilization(state, run, &permit, &tranche, now));
        }
    }
    if candidates.is_empty() {
        return Ok(candidates);
    }
    let raised = state.store.run_flags(&run.id).await?;
    candidates.retain(|c| {
        !raised
            .iter()
            .any(|r| r.kind == c.kind && r.subject == c.subject)
    });
    Ok(candidates)
}

/// Usage reported before the permit was issued or valid, or after it expired. Gates admit
/// nothing outside the validity window, so such usage is either a gate's clock or work that
/// ran without a valid permit; either way a reviewer should look.
fn usage_times(run: &Run, permit: &PermitClaims, now: i64) -> Vec<RunFlag> {
    let utc = runpermit_permit::utc;
    let mut out = Vec::new();
    let start = permit.iat.max(permit.nbf);
    if let Some(first) = run.first_usage_s
        && first < start
    {
        out.push(flag(
            run,
            RunFlagKind::UsageBeforePermit,
            "permit".into(),
            now,
            format!(
                "usage of run {} is reported from {}, {} s before permit {} was issued and \
                 valid ({})",
                run.id,
                utc(first),
                start - first,
                permit.jti,
                utc(start)
            ),
            json!({"first_usage_s": first, "iat": permit.iat, "nbf": permit.nbf}),
        ));
    }
    if let Some(last) = run.last_usage_s
        && last > permit.exp
    {
        out.push(flag(
            run,
            RunFlagKind::UsageAfterExpiry,
            "permit".into(),
            now,
            format!(
                "usage of run {} is reported until {}, {} s after permit {} expired ({})",
                run.id,
                utc(last),
                last - permit.exp,
                permit.jti,
                utc(permit.exp)
            ),
            json!({"last_usage_s": last, "exp": permit.exp}),
        ));
    }
    out
}

/// Measured (tensor-activity) utilization above the declared range by more than the policy's
/// margin, once per tranche.
fn utilization(
    state: &Authority,
    run: &Run,
    permit: &PermitClaims,
    tranche: &str,
    now: i64,
) -> Option<RunFlag> {
    let basis = permit.accounting.as_ref()?;
    let measured = Flop::new(run.measured_flop).ok()?;
    let capacity = Flop::new(run.measured_capacity_flop).ok()?;
    let oversight = &state.policy.oversight;
    let utilization =
        utilization_above_declared(oversight, measured, capacity, basis.utilization_high)?;
    Some(flag(
        run,
        RunFlagKind::UtilizationAboveDeclared,
        tranche.to_owned(),
        now,
        format!(
            "run {}'s measured utilization is {:.0}% (DCGM tensor-pipe activity at {}), above \
             the {:.0}–{:.0}% its permit declares by more than the policy's margin of {:.0}%: \
             its central estimate counts {:.0}%, so its tranches may be stretched",
            run.id,
            utilization * 100.0,
            basis.precision,
            basis.utilization_low * 100.0,
            basis.utilization_high * 100.0,
            oversight.utilization_flag_margin * 100.0,
            basis.utilization * 100.0
        ),
        json!({"measured_utilization": utilization, "declared_utilization": basis.utilization,
               "declared_utilization_low": basis.utilization_low,
               "declared_utilization_high": basis.utilization_high,
               "measured_flop": run.measured_flop,
               "measured_capacity_flop": run.measured_capacity_flop,
               "precision": basis.precision}),
    ))
}
