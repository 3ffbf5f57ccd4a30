//! The signed-in pages: each person's desk, by organization kind and role.
//!
//! Every page reads through the API's own handlers (`crate::http::routes`), called with the
//! signed-in person as the caller, or, where the API's full view would cost more than a page
//! shows (application lists, a provider's own reports), through the same records after the
//! same endpoint's rule (`authz::…::authorize`) and the same scope, so that a page shows no
//! more than that person's API token would be answered. Every form goes through the same
//! handler as its API endpoint, so it is audited with the person as the actor.
//!
//! - `home`: what is waiting for me, by role;
//! - `reviews`: the reviewer's queue and the review form's action;
//! - `applications`: applications, and one application with its whole plan (`plan`);
//! - `runs`: runs, one run with its chart (`chart`), its actions and the milestone form;
//! - `milestones`: the evaluator's queue and decisions;
//! - `incidents`: incidents with their deadlines, and split-run flags;
//! - `provider`: a provider's runs, reports, gaps and reporting keys.

mod applications;
mod chart;
mod home;
mod incidents;
mod milestones;
mod plan;
mod provider;
mod reviews;
mod runs;
mod widgets;

use axum::Router;
use axum::routing::{get, post};

use crate::domain::Caller;
use crate::http::authz::{self, OrgKind};
use crate::http::state::AppState;

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

/// The routes of the signed-in pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(home::page))
        .route("/console/reviews", get(reviews::queue))
        .route("/console/applications", get(applications::list))
        .route("/console/applications/{id}", get(applications::show))
        .route("/console/applications/{id}/review", post(reviews::decide))
        .route("/console/runs", get(runs::list))
        .route("/console/runs/{id}", get(runs::show))
        .route("/console/runs/{id}/action", post(runs::act))
        .route(
            "/console/runs/{id}/milestones",
            post(runs::submit_milestone),
        )
        .route("/console/milestones", get(milestones::queue))
        .route("/console/milestones/{id}/decide", post(milestones::decide))
        .route("/console/incidents", get(incidents::list))
        .route(
            "/console/incidents/{id}/follow-up",
            post(incidents::follow_up),
        )
        .route("/console/kyc", get(incidents::kyc))
        .route("/console/provider", get(provider::page))
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
                "/console/incidents"
            ]
        );
        assert_eq!(
            paths(OrgKind::Evaluator, Role::Evaluator),
            ["/console", "/console/runs", "/console/milestones"]
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
