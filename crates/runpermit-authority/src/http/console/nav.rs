//! Which sections of the console a signed-in person sees in the header.

use crate::domain::Caller;
use crate::http::authz::{self, OrgKind};

/// The links of a signed-in person's own sections, in the header: (label, path). Each is
/// shown only to those whose role may call the endpoint it reads.
pub fn nav(caller: &Caller) -> Vec<(&'static str, &'static str)> {
    let may = |e: authz::Endpoint| e.allows(Some(caller));
    let mut links = vec![("Desk", "/console")];
    if may(authz::REVIEWS_CREATE) {
        links.push(("Reviews", "/console/reviews"));
    }
    if may(authz::APPLICATIONS_LIST) {
        links.push(("Applications", "/console/applications"));
    }
    if may(authz::RUNS_LIST) {
        links.push(("Runs", "/console/runs"));
    }
    if caller.org_kind == OrgKind::Evaluator && may(authz::MILESTONES_LIST) {
        links.push(("Milestones", "/console/milestones"));
    }
    if may(authz::ACCESS_REQUESTS_LIST) {
        links.push(("Access", "/console/access"));
    }
    if may(authz::INCIDENTS_LIST) {
        links.push(("Incidents", "/console/incidents"));
    }
    if may(authz::KYC_FLAGS) {
        links.push(("KYC flags", "/console/kyc"));
    }
    if caller.org_kind == OrgKind::Provider {
        links.push(("Provider", "/console/provider"));
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::authz::Role;

    fn caller(kind: OrgKind, role: Role) -> Caller {
        Caller {
            member_id: "mem_1".into(),
            member_name: "someone".into(),
            org_id: "org_1".into(),
            org_name: "Org".into(),
            org_kind: kind,
            role,
            token_id: "tok_1".into(),
            token_expires_at: None,
        }
    }

    fn paths(kind: OrgKind, role: Role) -> Vec<&'static str> {
        nav(&caller(kind, role))
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn each_role_sees_its_own_sections() {
        assert_eq!(
            paths(OrgKind::Authority, Role::Reviewer),
            [
                "/console",
                "/console/reviews",
                "/console/applications",
                "/console/runs",
                "/console/access",
                "/console/incidents",
                "/console/kyc"
            ]
        );
        assert_eq!(
            paths(OrgKind::Developer, Role::Applicant),
            [
                "/console",
                "/console/applications",
                "/console/runs",
                "/console/access",
                "/console/incidents"
            ]
        );
        assert_eq!(
            paths(OrgKind::Evaluator, Role::Evaluator),
            [
                "/console",
                "/console/runs",
                "/console/milestones",
                "/console/access"
            ]
        );
        assert_eq!(
            paths(OrgKind::Provider, Role::ProviderOperator),
            [
                "/console",
                "/console/runs",
                "/console/incidents",
                "/console/provider"
            ]
        );
        // An auditor reads, never reviews.
        assert!(!paths(OrgKind::Authority, Role::Auditor).contains(&"/console/reviews"));
    }
}
