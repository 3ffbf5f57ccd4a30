//! The application lifecycle as a pure state machine, and the rule for reviewers' approvals.
//!
//! ```text
//! draft             --submit-->          submitted
//! submitted         --start_review-->    under_review
//! submitted         --exempt-->          exempt         (policy: exempt tier)
//! submitted         --auto_approve-->    approved       (policy: notify tier, plan complete)
//! submitted         --deny-->            denied         (policy: denied by default)
//! under_review      --request_changes--> changes_requested
//! changes_requested --resubmit-->        submitted      (with the updated plan)
//! under_review      --approve-->         approved
//! under_review      --deny-->            denied
//! denied            --appeal-->          appealed
//! appealed          --start_review-->    under_review
//! draft | submitted | under_review | changes_requested --withdraw--> withdrawn
//! ```
//!
//! Approved, withdrawn and exempt are final.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::policy::Decision;

/// What someone does to an application (the shared vocabulary's [`ApplicationAction`]).
///
/// [`ApplicationAction`]: runpermit_types::ApplicationAction
pub use runpermit_types::ApplicationAction as Action;
/// Where an application stands (the shared vocabulary's [`ApplicationStatus`]).
///
/// [`ApplicationStatus`]: runpermit_types::ApplicationStatus
pub use runpermit_types::ApplicationStatus as Status;
pub use runpermit_types::UnknownName;

/// The transition rules of a lifecycle, for its status type: which actions its single table
/// accepts from a status. Implemented for application [`Status`] (by [`next`]) and for
/// [`RunStatus`](crate::RunStatus) (by [`run_next`](crate::run_next)).
pub trait Lifecycle: Copy {
    /// What is done to it.
    type Action: Copy;

    /// The actions the table accepts from this status, in the action type's `ALL` order.
    fn allowed_actions(self) -> Vec<Self::Action>;

    /// No action leaves this status.
    fn is_final(self) -> bool {
        self.allowed_actions().is_empty()
    }
}

impl Lifecycle for Status {
    type Action = Action;

    fn allowed_actions(self) -> Vec<Action> {
        Action::ALL
            .iter()
            .copied()
            .filter(|a| target(self, *a).is_some())
            .collect()
    }
}

/// The action that follows a submission (or resubmission) the policy classified with
/// `decision`: exempt → [`Action::Exempt`], auto_permit → [`Action::AutoApprove`],
/// review → [`Action::StartReview`], deny → [`Action::Deny`]. The authority refuses the
/// submission itself while the classification lists missing requirements.
pub fn after_submit(decision: Decision) -> Action {
    match decision {
        Decision::Exempt => Action::Exempt,
        Decision::AutoPermit => Action::AutoApprove,
        Decision::Review => Action::StartReview,
        Decision::Deny => Action::Deny,
    }
}

/// An action that the application's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidTransition {
    /// Where the application stands.
    pub status: Status,
    /// What was attempted.
    pub action: Action,
    /// What is allowed from `status` (empty when it is final).
    pub allowed: Vec<Action>,
}

impl fmt::Display for InvalidTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot {} an application that is {}: ",
            self.action, self.status
        )?;
        if self.allowed.is_empty() {
            write!(f, "{} is final, no action is allowed", self.status)
        } else {
            write!(
                f,
                "allowed from {}: {}",
                self.status,
                self.allowed
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// The single table of transitions.
fn target(status: Status, action: Action) -> Option<Status> {
    use Action as A;
    use Status as S;
    Some(match (status, action) {
        (S::Draft, A::Submit) => S::Submitted,
        (S::Submitted, A::StartReview) => S::UnderReview,
        (S::Submitted, A::Exempt) => S::Exempt,
        (S::Submitted, A::AutoApprove) => S::Approved,
        (S::Submitted, A::Deny) => S::Denied,
        (S::UnderReview, A::RequestChanges) => S::ChangesRequested,
        (S::UnderReview, A::Approve) => S::Approved,
        (S::UnderReview, A::Deny) => S::Denied,
        (S::ChangesRequested, A::Resubmit) => S::Submitted,
        (S::Denied, A::Appeal) => S::Appealed,
        (S::Appealed, A::StartReview) => S::UnderReview,
        (S::Draft | S::Submitted | S::UnderReview | S::ChangesRequested, A::Withdraw) => {
            S::Withdrawn
        }
        _ => return None,
    })
}

/// The status after `action`, or why `action` is not allowed from `status`.
pub fn next(status: Status, action: Action) -> Result<Status, InvalidTransition> {
    target(status, action).ok_or_else(|| InvalidTransition {
        status,
        action,
        allowed: status.allowed_actions(),
    })
}

/// One reviewer's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The reviewer's user id.
    pub reviewer_id: String,
    /// The organization the reviewer belongs to.
    pub reviewer_org: String,
}

/// Whether the approvals given so far approve the application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalOutcome {
    /// Enough distinct reviewers approved.
    Approved,
    /// More approvals are needed: `have` distinct reviewers of the `need` required.
    NeedsMore {
        /// Distinct reviewers who approved.
        have: u32,
        /// Distinct reviewers required in all.
        need: u32,
    },
    /// An approval is not acceptable (a reviewer from the applicant's organization, or one
    /// without an id); the reason says which.
    Rejected(String),
}

/// Applies the separation-of-duties rules to the approvals given so far: a reviewer from the
/// applicant's organization is refused (ids compared exactly), the same reviewer approving
/// twice counts once, and `required` distinct reviewers approve the application. With
/// `required` = 0 the application is approved.
pub fn approval_outcome(
    required: u32,
    approvals: &[Approval],
    applicant_org: &str,
) -> ApprovalOutcome {
    let mut reviewers = BTreeSet::new();
    for a in approvals {
        if a.reviewer_id.is_empty() {
            return ApprovalOutcome::Rejected("an approval names no reviewer".to_owned());
        }
        if a.reviewer_org == applicant_org {
            return ApprovalOutcome::Rejected(format!(
                "reviewer {:?} belongs to the applicant's organization {:?}: nobody reviews their own organization's application",
                a.reviewer_id, applicant_org
            ));
        }
        reviewers.insert(a.reviewer_id.as_str());
    }
    let have = u32::try_from(reviewers.len()).unwrap_or(u32::MAX);
    if have >= required {
        ApprovalOutcome::Approved
    } else {
        ApprovalOutcome::NeedsMore {
            have,
            need: required,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_transition() {
        use Action as A;
        use Status as S;
        let allowed = [
            (S::Draft, A::Submit, S::Submitted),
            (S::Submitted, A::StartReview, S::UnderReview),
            (S::UnderReview, A::RequestChanges, S::ChangesRequested),
            (S::ChangesRequested, A::Resubmit, S::Submitted),
            (S::UnderReview, A::Approve, S::Approved),
            (S::UnderReview, A::Deny, S::Denied),
            (S::Draft, A::Withdraw, S::Withdrawn),
            (S::Submitted, A::Withdraw, S::Withdrawn),
            (S::UnderReview, A::Withdraw, S::Withdrawn),
            (S::ChangesRequested, A::Withdraw, S::Withdrawn),
            (S::Denied, A::Appeal, S::Appealed),
            (S::Appealed, A::StartReview, S::UnderReview),
            (S::Submitted, A::Exempt, S::Exempt),
            (S::Submitted, A::AutoApprove, S::Approved),
            (S::Submitted, A::Deny, S::Denied),
        ];
        for (from, action, to) in allowed {
            assert_eq!(next(from, action), Ok(to), "{from} --{action}-->");
        }
        // Nothing else is allowed: the table above is the whole machine.
        let mut count = 0;
        for &s in Status::ALL {
            for &a in Action::ALL {
                if next(s, a).is_ok() {
                    count += 1;
                    assert!(
                        allowed.iter().any(|(f, x, _)| *f == s && *x == a),
                        "{s} --{a}--> is allowed but not listed"
                    );
                }
            }
        }
        assert_eq!(count, allowed.len());
    }

    #[test]
    fn refused_transitions_name_status_action_and_alternatives() {
        use Action as A;
        use Status as S;
        for (from, action) in [
            (S::Draft, A::Approve),
            (S::Draft, A::StartReview),
            (S::Submitted, A::Approve),
            (S::Submitted, A::Submit),
            (S::UnderReview, A::Exempt),
            (S::UnderReview, A::AutoApprove),
            (S::ChangesRequested, A::Approve),
            (S::Approved, A::Withdraw),
            (S::Approved, A::Deny),
            (S::Denied, A::Withdraw),
            (S::Denied, A::StartReview),
            (S::Appealed, A::Approve),
            (S::Withdrawn, A::Resubmit),
            (S::Exempt, A::Submit),
        ] {
            let err = next(from, action).unwrap_err();
            assert_eq!(err.allowed, from.allowed_actions());
            let text = err.to_string();
            assert!(text.contains(from.as_str()), "{text}");
            assert!(text.contains(action.as_str()), "{text}");
        }
        let err = next(S::Draft, A::Approve).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot approve an application that is draft: allowed from draft: submit, withdraw"
        );
        let err = next(S::Approved, A::Withdraw).unwrap_err();
        assert!(err.to_string().contains("approved is final"), "{err}");
        assert!(S::Approved.is_final() && S::Withdrawn.is_final() && S::Exempt.is_final());
        assert!(!S::Denied.is_final());
    }

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for &s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for &a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
            assert_eq!(
                serde_json::from_str::<Action>(&format!("\"{}\"", a.as_str())).unwrap(),
                a
            );
        }
        let err = "under review".parse::<Status>().unwrap_err();
        assert!(err.to_string().contains("under_review"), "{err}");
    }

    #[test]
    fn each_decision_leads_somewhere_from_submitted() {
        let expected = [
            (Decision::Exempt, Status::Exempt),
            (Decision::AutoPermit, Status::Approved),
            (Decision::Review, Status::UnderReview),
            (Decision::Deny, Status::Denied),
        ];
        for (decision, status) in expected {
            assert_eq!(next(Status::Submitted, after_submit(decision)), Ok(status));
        }
    }

    fn approval(id: &str, org: &str) -> Approval {
        Approval {
            reviewer_id: id.into(),
            reviewer_org: org.into(),
        }
    }

    #[test]
    fn two_distinct_outside_reviewers() {
        let lab = "org-lab";
        assert_eq!(approval_outcome(0, &[], lab), ApprovalOutcome::Approved);
        assert_eq!(
            approval_outcome(2, &[], lab),
            ApprovalOutcome::NeedsMore { have: 0, need: 2 }
        );
        let one = [approval("alice", "org-authority")];
        assert_eq!(
            approval_outcome(2, &one, lab),
            ApprovalOutcome::NeedsMore { have: 1, need: 2 }
        );
        assert_eq!(approval_outcome(1, &one, lab), ApprovalOutcome::Approved);
        let same_twice = [
            approval("alice", "org-authority"),
            approval("alice", "org-authority"),
        ];
        assert_eq!(
            approval_outcome(2, &same_twice, lab),
            ApprovalOutcome::NeedsMore { have: 1, need: 2 }
        );
        let two = [
            approval("alice", "org-authority"),
            approval("bob", "org-evaluator"),
        ];
        assert_eq!(approval_outcome(2, &two, lab), ApprovalOutcome::Approved);
        let insider = [approval("alice", "org-authority"), approval("carol", lab)];
        match approval_outcome(2, &insider, lab) {
            ApprovalOutcome::Rejected(reason) => {
                assert!(reason.contains("carol") && reason.contains(lab), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            approval_outcome(1, &[approval("", "org-authority")], lab),
            ApprovalOutcome::Rejected(_)
        ));
    }
}
