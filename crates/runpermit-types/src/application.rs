//! Applications and their review: where an application stands, what is done to it, and what
//! a reviewer decides. The transitions themselves are `runpermit-policy`'s rules.

use crate::names::names;

names! {
    /// Where an application stands.
    pub enum ApplicationStatus ("status") {
        /// Being written; only the applicant sees it.
        Draft => "draft",
        /// Submitted; the policy decides what comes next.
        Submitted => "submitted",
        /// Reviewers are deciding.
        UnderReview => "under_review",
        /// Reviewers asked the applicant to change the plan.
        ChangesRequested => "changes_requested",
        /// A permit may be issued. Final.
        Approved => "approved",
        /// Refused; the applicant may appeal.
        Denied => "denied",
        /// The applicant took it back. Final.
        Withdrawn => "withdrawn",
        /// A denial is being appealed; the next step is a new review.
        Appealed => "appealed",
        /// No permit is needed; an exemption receipt is issued. Final.
        Exempt => "exempt",
    }
}

names! {
    /// What someone does to an application.
    pub enum ApplicationAction ("action") {
        /// The applicant submits a draft.
        Submit => "submit",
        /// The authority opens the review (of a submission or an appeal).
        StartReview => "start_review",
        /// A reviewer sends the plan back.
        RequestChanges => "request_changes",
        /// Reviewers approve (once enough distinct reviewers have).
        Approve => "approve",
        /// Reviewers refuse, or the policy denies a submission by default.
        Deny => "deny",
        /// The applicant takes the application back.
        Withdraw => "withdraw",
        /// The applicant appeals a denial.
        Appeal => "appeal",
        /// The applicant submits the changed plan.
        Resubmit => "resubmit",
        /// The policy exempts a submission.
        Exempt => "exempt",
        /// The policy permits a complete submission without review (notify tier).
        AutoApprove => "auto_approve",
    }
}

names! {
    /// What a reviewer decides about an application.
    pub enum ReviewDecision ("review decision") {
        /// Approve (the top tier needs two distinct reviewers).
        Approve => "approve",
        /// Deny.
        Deny => "deny",
        /// Send back to the applicant.
        RequestChanges => "request_changes",
    }
}

names! {
    /// Where a permit record stands: its claims decided (`intent`), then signed (`issued`).
    pub enum PermitState ("permit state") {
        /// The claims are decided and recorded; the token is not signed yet.
        Intent => "intent",
        /// Signed, with its token.
        Issued => "issued",
    }
}
