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
//! - `runs`: runs, one run with its chart (`chart`), its actions and the milestone form
//!   (`run_actions`);
//! - `milestones`: the evaluator's queue and decisions;
//! - `incidents`: incidents with their deadlines, and split-run flags;
//! - `access`: applications for access to registered models, grants, their forms, and the
//!   researcher's application form;
//! - `provider`: a provider's runs, reports, gaps and reporting keys.

mod access;
mod applications;
mod chart;
mod home;
mod incidents;
mod milestones;
mod plan;
mod provider;
mod reviews;
mod run_actions;
mod runs;
mod widgets;

use axum::Router;
use axum::routing::{get, post};

use crate::http::state::AppState;

pub use crate::http::console::nav::nav;

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
        .route("/console/runs/{id}/action", post(run_actions::act))
        .route(
            "/console/runs/{id}/milestones",
            post(run_actions::submit_milestone),
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
        .route("/console/access", get(access::list))
        .route("/console/access/apply", post(access::apply))
        .route("/console/access/requests/{id}", get(access::show_request))
        .route(
            "/console/access/requests/{id}/consent",
            post(access::consent),
        )
        .route("/console/access/requests/{id}/review", post(access::review))
        .route("/console/access/grants/{id}", get(access::show_grant))
        .route(
            "/console/access/grants/{id}/action",
            post(access::act_on_grant),
        )
}
