//! Permitted runs as they train: where a run stands, what happens to it and by whom, and the
//! statuses of its milestone reports and incidents. The transitions themselves are
//! `runpermit-policy`'s rules.

use crate::names::names;

names! {
    /// Where a permitted run stands.
    pub enum RunStatus ("run status") {
        /// Training within its released tranche. The only status in good standing.
        Active => "active",
        /// Usage reached the end of the released tranche: evaluations are due, and no new work
        /// is admitted until an evaluator accepts the milestone report.
        MilestoneDue => "milestone_due",
        /// Paused by a reviewer, or after a rejected milestone report.
        Paused => "paused",
        /// Suspended by a reviewer (for example while an incident is investigated).
        Suspended => "suspended",
        /// The permit is revoked for good. Final.
        Revoked => "revoked",
        /// The run was ended by the authority. Final.
        Terminated => "terminated",
        /// The developer declared the run finished. Final.
        Completed => "completed",
    }
}

impl RunStatus {
    /// Whether the permit of a run in this status is in good standing (only `active`).
    pub fn in_good_standing(self) -> bool {
        self == RunStatus::Active
    }
}

names! {
    /// What happens to a run.
    pub enum RunAction ("run action") {
        /// A reviewer pauses the run.
        Pause => "pause",
        /// A reviewer lets a paused or suspended run continue.
        Resume => "resume",
        /// A reviewer suspends the run.
        Suspend => "suspend",
        /// A reviewer revokes the permit.
        Revoke => "revoke",
        /// A reviewer ends the run.
        Terminate => "terminate",
        /// The developer declares the run finished.
        Complete => "complete",
        /// The developer appeals a pause or suspension.
        Appeal => "appeal",
        /// The developer submits a milestone report.
        SubmitMilestone => "submit_milestone",
        /// An evaluator accepts the milestone report: the next tranche is released.
        AcceptMilestone => "accept_milestone",
        /// An evaluator rejects the milestone report: the run is paused.
        RejectMilestone => "reject_milestone",
        /// Metered usage reached the end of the released tranche (the authority, by itself).
        ReachTrancheEnd => "reach_tranche_end",
    }
}

impl RunAction {
    /// Who may take this action.
    pub fn actor(self) -> RunActor {
        match self {
            RunAction::Pause
            | RunAction::Resume
            | RunAction::Suspend
            | RunAction::Revoke
            | RunAction::Terminate => RunActor::Reviewer,
            RunAction::Complete | RunAction::Appeal | RunAction::SubmitMilestone => {
                RunActor::Developer
            }
            RunAction::AcceptMilestone | RunAction::RejectMilestone => RunActor::Evaluator,
            RunAction::ReachTrancheEnd => RunActor::System,
        }
    }

    /// Whether the action moves the run from one status to another by the table. Submitting
    /// a milestone report and appealing leave the status as it is: they are requests, not
    /// transitions.
    pub fn changes_status(self) -> bool {
        !matches!(self, RunAction::SubmitMilestone | RunAction::Appeal)
    }
}

names! {
    /// Who may take a [`RunAction`].
    pub enum RunActor ("run actor") {
        /// A reviewer of the authority.
        Reviewer => "reviewer",
        /// The run's developer (a member of the holding organization).
        Developer => "developer",
        /// An evaluator from an evaluator organization (never the developer's).
        Evaluator => "evaluator",
        /// The authority itself, on metered usage.
        System => "system",
    }
}

names! {
    /// Where a milestone report stands.
    pub enum MilestoneStatus ("milestone status") {
        /// Waiting for an evaluator's decision.
        Submitted => "submitted",
        /// Accepted: the next tranche is released.
        Accepted => "accepted",
        /// Rejected: the run is paused.
        Rejected => "rejected",
    }
}

names! {
    /// Where an incident stands.
    pub enum IncidentStatus ("incident status") {
        /// Reported; its follow-up may be due.
        Open => "open",
        /// Followed up and closed.
        Closed => "closed",
    }
}

names! {
    /// Which of a run's usage figures a rule reads: the sum of the reports' central estimates,
    /// of their lower bounds, or of their upper bounds.
    pub enum UsageFigure ("usage figure") {
        /// The sum of the central estimates.
        Central => "central",
        /// The sum of the lower bounds.
        Lower => "lower",
        /// The sum of the upper bounds.
        Upper => "upper",
    }
}

names! {
    /// What the authority noticed about a run ([`UsageFigure`]s and declarations compared).
    pub enum RunFlagKind ("run flag") {
        /// A usage report's interval starts before the permit was issued or valid.
        UsageBeforePermit => "usage_before_permit",
        /// A usage report's interval ends after the permit expired.
        UsageAfterExpiry => "usage_after_expiry",
        /// The upper bound of the run's usage passed the released tranche's end.
        UpperBoundPastTranche => "upper_bound_past_tranche",
        /// Measured (tensor-activity) utilization is far above the declared range.
        UtilizationAboveDeclared => "utilization_above_declared",
        /// Operation counting (6·N·D) at a milestone is far from the metered figure.
        OperationCountGap => "operation_count_gap",
        /// A milestone's Inspect results crossed one of the policy's evaluation thresholds.
        EvaluationThresholdCrossed => "evaluation_threshold_crossed",
    }
}
