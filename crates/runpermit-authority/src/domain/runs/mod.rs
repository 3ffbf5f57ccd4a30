//! Oversight during training, as the authority runs it: [`ingestion`] of providers' signed
//! usage reports (with [`signatures`], the cost-bounded verification), run [`transitions`]
//! (people's actions and the authority's own on metered usage), and [`supervision`], the loop
//! that keeps derived state true after a crash.
//!
//! The rules are pure and live in `runpermit-policy`'s `oversight` module (`run_next`,
//! `tranche_progress`, `next_tranche`); these modules apply them to stored runs.

use runpermit_compute::Flop;
use runpermit_store::Run;
use runpermit_types::OrgKind;

use crate::domain::permits::signed_permit;
use crate::domain::{Authority, Caller, DomainError};

mod flags;
pub mod ingestion;
pub mod milestones;
pub(crate) mod signatures;
pub mod status_list;
pub mod supervision;
pub mod transitions;

/// A stored released figure: one that is not a FLOP count (it cannot be, every figure is
/// checked on the way in) releases nothing.
fn released(value: f64) -> Flop {
    Flop::new(value).unwrap_or(Flop::ZERO)
}

/// A stored usage figure: one that is not a FLOP count counts as the most there is, so that
/// a broken figure holds a run rather than frees it.
pub(crate) fn used(value: f64) -> Flop {
    Flop::new(value).unwrap_or(Flop::MAX)
}

/// A run's cumulative usage figures, each read as [`used`].
pub fn usage_figures(run: &Run) -> runpermit_policy::UsageFigures {
    runpermit_policy::UsageFigures {
        central: used(run.cumulative_flop),
        lower: used(run.cumulative_lower_flop),
        upper: used(run.cumulative_upper_flop),
    }
}

/// The figure of `run` the policy judges tranches on (and the public log summarises).
pub fn judged_usage(state: &Authority, run: &Run) -> Flop {
    usage_figures(run).get(state.policy.oversight.tranche_figure)
}

/// Whether `caller` may see `run`: authority staff every run, a developer its own, an
/// evaluator the runs whose signed permit names it among `evaluators` (assigned to evaluate
/// them), a provider the runs whose signed permit names it among `providers` (it meters
/// them). Assignment is read from the signed permit, never from a copy in the database, so
/// no write to the database widens anyone's scope. Which endpoints each may call at all is
/// the role rule's (`authz`).
pub async fn sees_run(state: &Authority, caller: &Caller, run: &Run) -> Result<bool, DomainError> {
    if caller.sees_org(&run.org_id) {
        return Ok(true);
    }
    if !matches!(caller.org_kind, OrgKind::Evaluator | OrgKind::Provider) {
        return Ok(false);
    }
    // A permit decided but not yet signed names nobody yet.
    let Some(permit) = signed_permit(state, run).await? else {
        return Ok(false);
    };
    Ok(match caller.org_kind {
        OrgKind::Evaluator => permit.names_evaluator(&caller.org_id),
        OrgKind::Provider => permit.provider(&caller.org_id).is_some(),
        OrgKind::Authority | OrgKind::Developer => false,
    })
}

/// The run `id`, or 404 when it does not exist or the caller may not see it: the same answer
/// either way, so that nobody learns which run ids exist outside their scope.
pub async fn visible_run(state: &Authority, caller: &Caller, id: &str) -> Result<Run, DomainError> {
    match state.store.run(id).await? {
        Some(run) if sees_run(state, caller, &run).await? => Ok(run),
        _ => Err(DomainError::NotFound(format!("no run {id}"))),
    }
}
