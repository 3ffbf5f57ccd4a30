//! Oversight during training, as pure rules: where a permitted run stands ([`RunStatus`]),
//! what may happen to it and by whom ([`RunAction`], [`run_next`]), how its released budget
//! is watched ([`tranche_progress`], [`next_tranche`]), incident deadlines
//! ([`IncidentCategory`]) and split-run detection over providers' know-your-customer reports
//! ([`split_runs`]).
//!
//! ```text
//! active         --reach_tranche_end-->  milestone_due   (usage reached the released tranche)
//! milestone_due  --accept_milestone-->   active          (an evaluator accepts; next tranche)
//! milestone_due  --reject_milestone-->   paused
//! paused         --accept_milestone-->   active          (a resubmitted report is accepted)
//! active | milestone_due             --pause-->     paused
//! active | milestone_due | paused    --suspend-->   suspended
//! paused | suspended                 --resume-->    active
//! paused | suspended                 --appeal-->    (unchanged; an appeal is pending)
//! any but final                      --revoke-->    revoked
//! any but final                      --terminate--> terminated
//! active | milestone_due | paused    --complete-->  completed
//! active | milestone_due | paused    --submit_milestone--> (unchanged)
//! ```
//!
//! Revoked, terminated and completed are final. Only `active` is in good standing: every
//! other status puts the run's permit on the signed status list, so gates refuse new work.

use std::fmt;

use runpermit_compute::Flop;
use serde::{Deserialize, Serialize};

use crate::policy::Policy;
use crate::workflow::Lifecycle;

pub use runpermit_types::{RunAction, RunActor, RunStatus, UsageFigure};

impl Lifecycle for RunStatus {
    type Action = RunAction;

    fn allowed_actions(self) -> Vec<RunAction> {
        RunAction::ALL
            .iter()
            .copied()
            .filter(|a| run_target(self, *a).is_some())
            .collect()
    }
}

/// An action that the run's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidRunTransition {
    /// Where the run stands.
    pub status: RunStatus,
    /// What was attempted.
    pub action: RunAction,
    /// What is allowed from `status` (empty when it is final).
    pub allowed: Vec<RunAction>,
}

impl fmt::Display for InvalidRunTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} a run that is {}: ", self.action, self.status)?;
        if self.allowed.is_empty() {
            write!(f, "{} is final, no action is allowed", self.status)
        } else {
            let names: Vec<&str> = self.allowed.iter().map(|a| a.as_str()).collect();
            write!(f, "allowed from {}: {}", self.status, names.join(", "))
        }
    }
}

/// The single table of run transitions.
fn run_target(status: RunStatus, action: RunAction) -> Option<RunStatus> {
    use RunAction as A;
    use RunStatus as S;
    Some(match (status, action) {
        (S::Active, A::ReachTrancheEnd) => S::MilestoneDue,
        (S::MilestoneDue | S::Paused, A::AcceptMilestone) => S::Active,
        (S::MilestoneDue, A::RejectMilestone) => S::Paused,
        (S::Paused, A::RejectMilestone) => S::Paused,
        (S::Active | S::MilestoneDue, A::Pause) => S::Paused,
        (S::Active | S::MilestoneDue | S::Paused, A::Suspend) => S::Suspended,
        (S::Paused | S::Suspended, A::Resume) => S::Active,
        (s @ (S::Paused | S::Suspended), A::Appeal) => s,
        (S::Active | S::MilestoneDue | S::Paused | S::Suspended, A::Revoke) => S::Revoked,
        (S::Active | S::MilestoneDue | S::Paused | S::Suspended, A::Terminate) => S::Terminated,
        (S::Active | S::MilestoneDue | S::Paused, A::Complete) => S::Completed,
        (s @ (S::Active | S::MilestoneDue | S::Paused), A::SubmitMilestone) => s,
        _ => return None,
    })
}

/// The status after `action`, or why `action` is not allowed from `status`.
pub fn run_next(status: RunStatus, action: RunAction) -> Result<RunStatus, InvalidRunTransition> {
    run_target(status, action).ok_or_else(|| InvalidRunTransition {
        status,
        action,
        allowed: status.allowed_actions(),
    })
}

/// `[oversight]`: how the authority follows runs as they train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OversightPolicy {
    /// Alerts go out when cumulative usage reaches these percentages of the released
    /// tranche's end (increasing, 1 to 100; default 80 and 100).
    #[serde(default = "default_alert_percents")]
    pub alert_percents: Vec<u32>,
    /// Usage beyond the released tranche's end by more than this fraction of it opens an
    /// `overrun` incident automatically (default 0.05: 5%).
    #[serde(default = "default_overrun_tolerance")]
    pub overrun_tolerance: f64,
    /// The usage figure a tranche is judged on: the run is held (`milestone_due`) when it
    /// reaches the released tranche's end, and the alert percentages are of it (default
    /// `central`; `lower` or `upper`). The public log's `usage_summary` carries this figure.
    #[serde(default = "default_tranche_figure")]
    pub tranche_figure: UsageFigure,
    /// The usage figure an overrun incident is opened on, beyond the tolerance (default
    /// `lower`: only usage the run certainly had counts against it).
    #[serde(default = "default_overrun_figure")]
    pub overrun_figure: UsageFigure,
    /// A run whose measured (tensor-activity) utilization is above its declared range's high
    /// end by more than this fraction of it is flagged: a lab may under-declare to stretch its
    /// tranches (default 0.2).
    #[serde(default = "default_utilization_flag_margin")]
    pub utilization_flag_margin: f64,
    /// At a milestone, operation counting (6 × parameters × tokens reported) and the metered
    /// central figure are flagged to the evaluator when they differ by a factor of more than
    /// 1 + this (default 0.5: by more than 1.5×).
    #[serde(default = "default_operation_count_tolerance")]
    pub operation_count_tolerance: f64,
    /// How often each run's cumulative usage is summarised into the public log, in seconds
    /// (default 3600).
    #[serde(default = "default_summary_interval")]
    pub usage_summary_interval_seconds: u32,
    /// The window over which providers' reports of unpermitted large jobs are summed per
    /// customer to detect a run split across providers, in days (default 90).
    #[serde(default = "default_split_window")]
    pub split_run_window_days: u32,
    /// The evaluator organizations (their ids at the authority) assigned to every permitted
    /// run whose approving reviewers name none: the permit names them, and only they may
    /// accept or reject its milestone reports (default: none, so that a permit issued
    /// without review names no evaluator and releases no tranche beyond the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluators: Vec<String>,
    /// `[[oversight.evaluation_threshold]]`: a milestone report whose Inspect logs' results
    /// cross one is flagged to the evaluator (`evaluation_threshold_crossed`; default: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evaluation_threshold: Vec<crate::inspect::EvaluationThreshold>,
}

fn default_alert_percents() -> Vec<u32> {
    vec![80, 100]
}

fn default_overrun_tolerance() -> f64 {
    0.05
}

fn default_tranche_figure() -> UsageFigure {
    UsageFigure::Central
}

fn default_overrun_figure() -> UsageFigure {
    UsageFigure::Lower
}

fn default_utilization_flag_margin() -> f64 {
    0.2
}

fn default_operation_count_tolerance() -> f64 {
    0.5
}

fn default_summary_interval() -> u32 {
    3600
}

fn default_split_window() -> u32 {
    90
}

impl Default for OversightPolicy {
    fn default() -> Self {
        OversightPolicy {
            alert_percents: default_alert_percents(),
            overrun_tolerance: default_overrun_tolerance(),
            tranche_figure: default_tranche_figure(),
            overrun_figure: default_overrun_figure(),
            utilization_flag_margin: default_utilization_flag_margin(),
            operation_count_tolerance: default_operation_count_tolerance(),
            usage_summary_interval_seconds: default_summary_interval(),
            split_run_window_days: default_split_window(),
            evaluators: Vec::new(),
            evaluation_threshold: Vec::new(),
        }
    }
}

/// One `[[incident_category]]`: a kind of incident and its deadlines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentCategory {
    /// Stable identifier (`weights_stolen`).
    pub id: String,
    /// What it covers.
    pub description: String,
    /// The initial report is due this many hours after the incident was discovered.
    pub report_within_hours: u32,
    /// The full follow-up report is due this many hours after the initial report.
    pub follow_up_within_hours: u32,
}

/// The categories the authority opens by itself: usage beyond the released tranche.
pub const OVERRUN_CATEGORY: &str = "overrun";

/// The default incident categories, used when a policy file lists none. Deadlines follow
/// SB 53 (15 days; 24 hours where there is an imminent risk) and the EU AI Act's
/// serious-incident reporting, shortened where weights have left the developer's control.
pub fn default_incident_categories() -> Vec<IncidentCategory> {
    let c = |id: &str, description: &str, report: u32, follow_up: u32| IncidentCategory {
        id: id.to_owned(),
        description: description.to_owned(),
        report_within_hours: report,
        follow_up_within_hours: follow_up,
    };
    vec![
        c(
            "weights_stolen",
            "Model weights were exfiltrated by an unauthorized party.",
            24,
            7 * 24,
        ),
        c(
            "weights_leaked",
            "Model weights were released or exposed without authorization.",
            24,
            7 * 24,
        ),
        c(
            "dangerous_capability",
            "An evaluation or deployment observed a dangerous capability beyond the permit's assumptions.",
            72,
            15 * 24,
        ),
        c(
            "security_breach",
            "A breach of the training infrastructure's or the developer's security.",
            72,
            15 * 24,
        ),
        c(
            OVERRUN_CATEGORY,
            "Metered usage beyond the released tranche by more than the policy's tolerance.",
            24,
            7 * 24,
        ),
        c(
            "other",
            "Any other critical safety incident.",
            15 * 24,
            30 * 24,
        ),
    ]
}

impl Policy {
    /// The incident category with this id, if the policy has it.
    pub fn incident_category(&self, id: &str) -> Option<&IncidentCategory> {
        self.incident_categories.iter().find(|c| c.id == id)
    }

    /// The compute at which a run needs a permit: the threshold of the first tier that is
    /// not exempt (ordinary data). `None` if every tier is exempt.
    pub fn permit_threshold(&self) -> Option<Flop> {
        self.tiers
            .iter()
            .find(|t| t.decision != crate::Decision::Exempt)
            .map(|t| t.min_flop)
    }
}

/// A run's cumulative usage: the sums of its reports' central estimates and bounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UsageFigures {
    /// Σ central estimates.
    pub central: Flop,
    /// Σ lower bounds.
    pub lower: Flop,
    /// Σ upper bounds.
    pub upper: Flop,
}

impl UsageFigures {
    /// One of the three.
    pub fn get(&self, figure: UsageFigure) -> Flop {
        match figure {
            UsageFigure::Central => self.central,
            UsageFigure::Lower => self.lower,
            UsageFigure::Upper => self.upper,
        }
    }
}

/// What a run's cumulative usage means for its released tranche.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrancheProgress {
    /// The figure the tranche is judged on (`[oversight] tranche_figure`).
    pub judged: Flop,
    /// It as a percentage of the released tranche's end (may exceed 100).
    pub percent: f64,
    /// Alert percentages newly reached (above `already_alerted`), in increasing order.
    pub new_alerts: Vec<u32>,
    /// The highest alert percentage reached so far (`already_alerted` if none is new).
    pub alerted: u32,
    /// The judged figure reached the released tranche's end: a milestone is due.
    pub reached_end: bool,
    /// The overrun figure (`[oversight] overrun_figure`, the lower bound by default) is beyond
    /// the end by more than the tolerance: its excess in FLOP.
    pub overrun: Option<Flop>,
    /// The upper bound passed the end: the run may have used more than it was released.
    pub upper_past_end: bool,
}

/// Compares cumulative usage with the released tranche's end (`released`) by the policy's
/// rule: alerts at the policy's percentages of the judged figure not yet raised
/// (`already_alerted` is the highest raised for this tranche), whether the judged figure
/// reached the end, an overrun of the overrun figure beyond the tolerance, and whether the
/// upper bound passed the end.
pub fn tranche_progress(
    oversight: &OversightPolicy,
    released: Flop,
    usage: &UsageFigures,
    already_alerted: u32,
) -> TrancheProgress {
    let end = released.get();
    let judged = usage.get(oversight.tranche_figure);
    let used = judged.get();
    let percent = if end > 0.0 {
        used / end * 100.0
    } else {
        f64::INFINITY
    };
    let new_alerts: Vec<u32> = oversight
        .alert_percents
        .iter()
        .copied()
        .filter(|p| *p > already_alerted && percent >= f64::from(*p))
        .collect();
    let alerted = new_alerts.last().copied().unwrap_or(already_alerted);
    let limit = end * (1.0 + oversight.overrun_tolerance);
    let over = usage.get(oversight.overrun_figure).get();
    let overrun = (over > limit).then(|| Flop::new(over - end).ok()).flatten();
    TrancheProgress {
        judged,
        percent,
        new_alerts,
        alerted,
        reached_end: used >= end,
        overrun,
        upper_past_end: usage.upper.get() > end,
    }
}

/// A measured utilization (`measured` FLOP out of `capacity` FLOP at full utilization)
/// above the declared range's high end by more than the policy's
/// `utilization_flag_margin`: the measured utilization. `None` when within, or when nothing
/// was measured.
pub fn utilization_above_declared(
    oversight: &OversightPolicy,
    measured: Flop,
    capacity: Flop,
    declared_high: f64,
) -> Option<f64> {
    if capacity.get() <= 0.0 {
        return None;
    }
    let utilization = measured.get() / capacity.get();
    (utilization > declared_high * (1.0 + oversight.utilization_flag_margin)).then_some(utilization)
}

/// Operation counting (`operation_count`, 6·N·D) against the metered figure: the factor they
/// differ by when it is beyond the policy's `operation_count_tolerance`.
pub fn operation_count_gap(
    oversight: &OversightPolicy,
    operation_count: Flop,
    metered: Flop,
) -> Option<f64> {
    let factor = runpermit_compute::accounting::disagreement(operation_count, metered);
    (factor > 1.0 + oversight.operation_count_tolerance).then_some(factor)
}

/// The tranche after `current` (1-based) in a permit's cumulative tranche ends: its index
/// and end. `None` when `current` is the last (the whole budget is released).
pub fn next_tranche(tranche_ends: &[Flop], current: u32) -> Option<(u32, Flop)> {
    let i = usize::try_from(current).ok()?;
    tranche_ends.get(i).map(|end| (current + 1, *end))
}

/// One provider's report, summed over the window, of a customer's large jobs that ran
/// without a permit (know-your-customer reporting).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnpermittedUse {
    /// The customer's registry id (such as an LEI), the same at every provider.
    pub customer: String,
    /// The reporting provider.
    pub provider_id: String,
    /// Compute the customer's unpermitted jobs used there.
    pub flop: Flop,
}

/// A customer whose unpermitted compute, summed over providers, reaches the permit
/// threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitRunFlag {
    /// The customer.
    pub customer: String,
    /// Combined unpermitted compute.
    pub total: Flop,
    /// The threshold it reaches.
    pub threshold: Flop,
    /// Each provider's share, by provider id.
    pub providers: Vec<(String, Flop)>,
    /// True when no single provider saw enough to need a permit: the signature of a run
    /// split across providers to stay under the threshold.
    pub split: bool,
}

/// Flags every customer whose unpermitted compute over all providers reaches `threshold`
/// (see [`Policy::permit_threshold`]), largest first.
pub fn split_runs(usage: &[UnpermittedUse], threshold: Flop) -> Vec<SplitRunFlag> {
    let mut by_customer: std::collections::BTreeMap<&str, Vec<(String, f64)>> =
        std::collections::BTreeMap::new();
    for u in usage {
        let shares = by_customer.entry(&u.customer).or_default();
        match shares.iter_mut().find(|(p, _)| *p == u.provider_id) {
            Some((_, flop)) => *flop += u.flop.get(),
            None => shares.push((u.provider_id.clone(), u.flop.get())),
        }
    }
    let mut flags: Vec<SplitRunFlag> = by_customer
        .into_iter()
        .filter_map(|(customer, mut shares)| {
            let total: f64 = shares.iter().map(|(_, f)| f).sum();
            if total < threshold.get() {
                return None;
            }
            shares.sort_by(|a, b| a.0.cmp(&b.0));
            let split = shares.len() > 1 && shares.iter().all(|(_, f)| *f < threshold.get());
            Some(SplitRunFlag {
                customer: customer.to_owned(),
                total: Flop::new(total).ok()?,
                threshold,
                providers: shares
                    .into_iter()
                    .filter_map(|(p, f)| Some((p, Flop::new(f).ok()?)))
                    .collect(),
                split,
            })
        })
        .collect();
    flags.sort_by(|a, b| b.total.get().total_cmp(&a.total.get()));
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: f64) -> Flop {
        Flop::new(v).unwrap()
    }

    #[test]
    fn the_transition_table() {
        use RunAction as A;
        use RunStatus as S;
        let cases = [
            (S::Active, A::ReachTrancheEnd, Some(S::MilestoneDue)),
            (S::MilestoneDue, A::AcceptMilestone, Some(S::Active)),
            (S::MilestoneDue, A::RejectMilestone, Some(S::Paused)),
            (S::Paused, A::AcceptMilestone, Some(S::Active)),
            (S::Active, A::AcceptMilestone, None),
            (S::Active, A::Pause, Some(S::Paused)),
            (S::Paused, A::Pause, None),
            (S::Paused, A::Resume, Some(S::Active)),
            (S::Suspended, A::Resume, Some(S::Active)),
            (S::Active, A::Resume, None),
            (S::Paused, A::Appeal, Some(S::Paused)),
            (S::Suspended, A::Appeal, Some(S::Suspended)),
            (S::Active, A::Appeal, None),
            (S::Suspended, A::Revoke, Some(S::Revoked)),
            (S::MilestoneDue, A::Terminate, Some(S::Terminated)),
            (S::Suspended, A::Complete, None),
            (S::Active, A::Complete, Some(S::Completed)),
            (S::Active, A::SubmitMilestone, Some(S::Active)),
            (S::Suspended, A::SubmitMilestone, None),
            (S::MilestoneDue, A::ReachTrancheEnd, None),
        ];
        for (status, action, want) in cases {
            assert_eq!(
                run_next(status, action).ok(),
                want,
                "{status} --{action}-->"
            );
        }
        for s in [S::Revoked, S::Terminated, S::Completed] {
            assert!(s.is_final(), "{s}");
        }
        for s in [S::Active, S::MilestoneDue, S::Paused, S::Suspended] {
            assert!(!s.is_final(), "{s}");
        }
        assert!(S::Active.in_good_standing());
        assert!(S::ALL[1..].iter().all(|s| !s.in_good_standing()));
    }

    #[test]
    fn invalid_transitions_name_what_is_allowed() {
        let e = run_next(RunStatus::Suspended, RunAction::Pause).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot pause a run that is suspended: allowed from suspended: resume, revoke, terminate, appeal"
        );
        let e = run_next(RunStatus::Revoked, RunAction::Resume).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot resume a run that is revoked: revoked is final, no action is allowed"
        );
    }

    #[test]
    fn requests_never_move_a_run() {
        // What /metrics counts as a transition: an action that can change the status.
        for &s in RunStatus::ALL {
            for &a in RunAction::ALL {
                if let Ok(to) = run_next(s, a)
                    && !a.changes_status()
                {
                    assert_eq!(to, s, "{a} from {s}");
                }
            }
        }
        assert!(!RunAction::SubmitMilestone.changes_status());
        assert!(!RunAction::Appeal.changes_status());
        assert!(RunAction::Pause.changes_status());
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        for a in RunAction::ALL {
            assert_eq!(a.as_str().parse::<RunAction>().unwrap(), *a);
        }
        let e = "halt".parse::<RunAction>().unwrap_err();
        assert!(e.to_string().contains("unknown run action \"halt\""), "{e}");
        assert!(e.to_string().contains("pause, resume"), "{e}");
    }

    #[test]
    fn actors() {
        assert_eq!(RunAction::Revoke.actor(), RunActor::Reviewer);
        assert_eq!(RunAction::Appeal.actor(), RunActor::Developer);
        assert_eq!(RunAction::AcceptMilestone.actor(), RunActor::Evaluator);
        assert_eq!(RunAction::ReachTrancheEnd.actor(), RunActor::System);
    }

    /// Usage with the same figure as central, lower and upper.
    fn all(v: f64) -> UsageFigures {
        UsageFigures {
            central: f(v),
            lower: f(v),
            upper: f(v),
        }
    }

    #[test]
    fn progress_alerts_once_at_each_percentage_then_due_then_overrun() {
        let o = OversightPolicy::default();
        let end = f(1e25);
        let p = tranche_progress(&o, end, &all(5e24), 0);
        assert_eq!((p.new_alerts.clone(), p.alerted), (vec![], 0));
        assert!(!p.reached_end && p.overrun.is_none());
        assert_eq!(p.percent, 50.0);

        let p = tranche_progress(&o, end, &all(8e24), 0);
        assert_eq!((p.new_alerts.clone(), p.alerted), (vec![80], 80));
        let p = tranche_progress(&o, end, &all(9e24), 80);
        assert_eq!((p.new_alerts.clone(), p.alerted), (vec![], 80));
        // Both thresholds crossed by one report.
        let p = tranche_progress(&o, end, &all(1e25), 0);
        assert_eq!((p.new_alerts.clone(), p.alerted), (vec![80, 100], 100));
        assert!(p.reached_end && p.overrun.is_none());
        // Within the 5% tolerance: no overrun; beyond it: the excess.
        assert!(
            tranche_progress(&o, end, &all(1.05e25), 100)
                .overrun
                .is_none()
        );
        let p = tranche_progress(&o, end, &all(1.2e25), 100);
        let excess = p.overrun.unwrap().get();
        assert!((excess - 2e24).abs() < 1e12, "{excess}");
    }

    #[test]
    fn each_rule_reads_its_own_figure() {
        let o = OversightPolicy::default();
        let end = f(1e25);
        // Central at the end: held. Lower far below: no overrun. Upper past: alert.
        let usage = UsageFigures {
            central: f(1e25),
            lower: f(7.5e24),
            upper: f(5e25),
        };
        let p = tranche_progress(&o, end, &usage, 0);
        assert!(p.reached_end && p.upper_past_end && p.overrun.is_none());
        assert_eq!(p.judged, f(1e25));
        // The lower bound past the end beyond the tolerance: an overrun of its excess.
        let usage = UsageFigures {
            lower: f(1.1e25),
            central: f(1.4e25),
            upper: f(5e25),
        };
        let excess = tranche_progress(&o, end, &usage, 100).overrun.unwrap();
        assert!((excess.get() - 1e24).abs() < 1e12);
        // Judged on the upper bound instead: held at 20% of the central figure's use.
        let upper_rule = OversightPolicy {
            tranche_figure: UsageFigure::Upper,
            ..OversightPolicy::default()
        };
        let usage = UsageFigures {
            central: f(2e24),
            lower: f(1.5e24),
            upper: f(1e25),
        };
        let p = tranche_progress(&upper_rule, end, &usage, 0);
        assert!(p.reached_end);
        assert!(!tranche_progress(&o, end, &usage, 0).reached_end);
    }

    #[test]
    fn under_declared_utilization_and_operation_count_gaps_are_flagged() {
        let o = OversightPolicy::default();
        // Declared up to 0.5: flagged above 0.6.
        assert_eq!(
            utilization_above_declared(&o, f(0.55e25), f(1e25), 0.5),
            None
        );
        let measured = utilization_above_declared(&o, f(0.8e25), f(1e25), 0.5).unwrap();
        assert!((measured - 0.8).abs() < 1e-12);
        assert_eq!(
            utilization_above_declared(&o, Flop::ZERO, Flop::ZERO, 0.5),
            None
        );
        assert_eq!(operation_count_gap(&o, f(1e25), f(1.4e25)), None);
        let factor = operation_count_gap(&o, f(1e25), f(2.5e25)).unwrap();
        assert!((factor - 2.5).abs() < 1e-12);
        assert!(operation_count_gap(&o, f(4e25), f(1e25)).is_some());
    }

    #[test]
    fn next_tranche_walks_the_schedule() {
        let ends = [f(1e25), f(4e25), f(5e25)];
        assert_eq!(next_tranche(&ends, 1), Some((2, f(4e25))));
        assert_eq!(next_tranche(&ends, 2), Some((3, f(5e25))));
        assert_eq!(next_tranche(&ends, 3), None);
    }

    #[test]
    fn split_runs_are_flagged_across_providers() {
        let u = |c: &str, p: &str, v: f64| UnpermittedUse {
            customer: c.into(),
            provider_id: p.into(),
            flop: f(v),
        };
        let usage = [
            u("lab-a", "cloud-1", 6e24),
            u("lab-a", "cloud-2", 5e24),
            u("lab-b", "cloud-1", 9e24),
            u("lab-c", "cloud-1", 2e25),
            u("lab-a", "cloud-1", 1e23),
        ];
        let flags = split_runs(&usage, f(1e25));
        assert_eq!(flags.len(), 2, "{flags:?}");
        assert_eq!(flags[0].customer, "lab-c");
        assert!(
            !flags[0].split,
            "one provider saw it all: plain unpermitted use"
        );
        assert_eq!(flags[1].customer, "lab-a");
        assert!(flags[1].split);
        assert_eq!(flags[1].providers.len(), 2);
        assert!((flags[1].total.get() - 1.11e25).abs() < 1e12);
        assert!(split_runs(&usage[2..3], f(1e25)).is_empty());
    }

    #[test]
    fn the_builtin_policy_has_oversight_and_incident_categories() {
        let p = Policy::builtin();
        assert_eq!(p.oversight, OversightPolicy::default());
        assert_eq!(p.permit_threshold(), Some(f(1e25)));
        let c = p.incident_category("weights_stolen").unwrap();
        assert_eq!(c.report_within_hours, 24);
        assert!(p.incident_category(OVERRUN_CATEGORY).is_some());
    }
}
