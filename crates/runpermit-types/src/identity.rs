//! Who is who: the kinds of organization and the roles of their members.

use crate::names::names;

names! {
    /// The kind of an organization.
    pub enum OrgKind ("organization kind") {
        /// The licensing office.
        Authority => "authority",
        /// An AI lab that applies for permits.
        Developer => "developer",
        /// A cloud or HPC centre that runs the gate.
        Provider => "provider",
        /// A safety institute or accredited third-party evaluator.
        Evaluator => "evaluator",
    }
}

names! {
    /// A member's role in their organization.
    pub enum Role ("role") {
        /// Manages the organization's members and tokens (the authority's admins manage all).
        Admin => "admin",
        /// Reviews applications (authority).
        Reviewer => "reviewer",
        /// Reviews milestone evaluations (evaluator organizations).
        Evaluator => "evaluator",
        /// Applies for permits (developers).
        Applicant => "applicant",
        /// Runs a provider's gate.
        ProviderOperator => "provider_operator",
        /// Reads everything, changes nothing (authority).
        Auditor => "auditor",
    }
}

impl OrgKind {
    /// Roles a member of this kind of organization may hold.
    pub fn roles(self) -> &'static [Role] {
        match self {
            OrgKind::Authority => &[Role::Admin, Role::Reviewer, Role::Auditor],
            OrgKind::Developer => &[Role::Admin, Role::Applicant],
            OrgKind::Provider => &[Role::Admin, Role::ProviderOperator],
            OrgKind::Evaluator => &[Role::Admin, Role::Evaluator],
        }
    }
}
