//! Who may call what: every endpoint has an explicit rule here, and the OpenAPI document and
//! the endpoint × role test are generated from the same table.
//!
//! Two layers: the *role rule* below (which organization kinds and roles may call an
//! endpoint at all) and the *resource scope* checked in handlers with [`Caller::sees_org`]
//! (a lab never sees another lab's applications) and, for runs, by assignment in the signed
//! permit (an evaluator sees the runs whose permit names it among `evaluators`, a provider
//! those whose permit names it among `providers`); out of scope answers 404, as for an
//! unknown id.

use crate::domain::Caller;
use crate::http::error::ApiError;

pub use runpermit_types::{OrgKind, Role};

/// Who may call an endpoint, before resource scoping.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// Any authenticated member.
    AnyMember,
    /// Members holding one of these (organization kind, role) pairs.
    Only(&'static [(OrgKind, Role)]),
}

/// One endpoint: the single source for routing docs, OpenAPI and the authorization test.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// HTTP method.
    pub method: &'static str,
    /// Path template, OpenAPI style (`/v1/applications/{id}`).
    pub path: &'static str,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// OpenAPI tag.
    pub tag: &'static str,
    /// Status of a successful answer.
    pub success: u16,
    /// The role rule.
    pub access: Access,
}

const AUTHORITY_STAFF: &[(OrgKind, Role)] = &[
    (OrgKind::Authority, Role::Admin),
    (OrgKind::Authority, Role::Reviewer),
    (OrgKind::Authority, Role::Auditor),
];
const ANY_ADMIN: &[(OrgKind, Role)] = &[
    (OrgKind::Authority, Role::Admin),
    (OrgKind::Developer, Role::Admin),
    (OrgKind::Provider, Role::Admin),
    (OrgKind::Evaluator, Role::Admin),
];
const APPLICANTS: &[(OrgKind, Role)] = &[
    (OrgKind::Developer, Role::Applicant),
    (OrgKind::Developer, Role::Admin),
];
const APPLICATION_READERS: &[(OrgKind, Role)] = &[
    (OrgKind::Developer, Role::Applicant),
    (OrgKind::Developer, Role::Admin),
    (OrgKind::Authority, Role::Admin),
    (OrgKind::Authority, Role::Reviewer),
    (OrgKind::Authority, Role::Auditor),
];
const PERMIT_READERS: &[(OrgKind, Role)] = &[
    (OrgKind::Developer, Role::Applicant),
    (OrgKind::Developer, Role::Admin),
    (OrgKind::Authority, Role::Admin),
    (OrgKind::Authority, Role::Reviewer),
    (OrgKind::Authority, Role::Auditor),
    (OrgKind::Provider, Role::ProviderOperator),
    (OrgKind::Provider, Role::Admin),
];

const REVIEWERS: &[(OrgKind, Role)] = &[(OrgKind::Authority, Role::Reviewer)];
const RUN_READERS: &[(OrgKind, Role)] = &[
    (OrgKind::Developer, Role::Applicant),
    (OrgKind::Developer, Role::Admin),
    (OrgKind::Authority, Role::Admin),
    (OrgKind::Authority, Role::Reviewer),
    (OrgKind::Authority, Role::Auditor),
    (OrgKind::Evaluator, Role::Evaluator),
    (OrgKind::Evaluator, Role::Admin),
];
/// Who may list runs: the run readers, and providers (the runs they meter).
const RUN_LISTERS: &[(OrgKind, Role)] = &[
    (OrgKind::Developer, Role::Applicant),
    (OrgKind::Developer, Role::Admin),
    (OrgKind::Authority, Role::Admin),
    (OrgKind::Authority, Role::Reviewer),
    (OrgKind::Authority, Role::Auditor),
    (OrgKind::Evaluator, Role::Evaluator),
    (OrgKind::Evaluator, Role::Admin),
    (OrgKind::Provider, Role::ProviderOperator),
    (OrgKind::Provider, Role::Admin),
];
const EVALUATORS: &[(OrgKind, Role)] = &[(OrgKind::Evaluator, Role::Evaluator)];
const PROVIDER_STAFF: &[(OrgKind, Role)] = &[
    (OrgKind::Provider, Role::ProviderOperator),
    (OrgKind::Provider, Role::Admin),
];
const INCIDENT_REPORTERS: &[(OrgKind, Role)] = &[
    (OrgKind::Developer, Role::Applicant),
    (OrgKind::Developer, Role::Admin),
    (OrgKind::Provider, Role::ProviderOperator),
    (OrgKind::Provider, Role::Admin),
    (OrgKind::Authority, Role::Reviewer),
];
const INCIDENT_READERS: &[(OrgKind, Role)] = &[
    (OrgKind::Developer, Role::Applicant),
    (OrgKind::Developer, Role::Admin),
    (OrgKind::Provider, Role::ProviderOperator),
    (OrgKind::Provider, Role::Admin),
    (OrgKind::Authority, Role::Admin),
    (OrgKind::Authority, Role::Reviewer),
    (OrgKind::Authority, Role::Auditor),
];

macro_rules! endpoints {
    ($($name:ident = $method:literal $path:literal $success:literal, $tag:literal, $access:expr, $summary:literal;)+) => {
        $(
            #[doc = $summary]
            pub const $name: Endpoint = Endpoint {
                method: $method,
                path: $path,
                summary: $summary,
                tag: $tag,
                success: $success,
                access: $access,
            };
        )+
        /// Every endpoint, in documentation order.
        pub const ENDPOINTS: &[Endpoint] = &[$($name),+];
    };
}

endpoints! {
    HEALTHZ = "GET" "/healthz" 200, "operations", Access::Public, "The process is up.";
    READYZ = "GET" "/readyz" 200, "operations", Access::Public, "The process can reach its database.";
    METRICS = "GET" "/metrics" 200, "operations", Access::Public, "Prometheus metrics.";
    OPENAPI = "GET" "/v1/openapi.json" 200, "operations", Access::Public, "This document.";
    JWKS = "GET" "/.well-known/jwks.json" 200, "permits", Access::Public, "The authority's permit-signing public keys (JWKS).";
    LOG_CHECKPOINT = "GET" "/log/checkpoint" 200, "log", Access::Public, "The transparency log's latest signed checkpoint (C2SP tlog-checkpoint, signed-note).";
    LOG_VKEY = "GET" "/log/vkey" 200, "log", Access::Public, "The verifier key of the log's checkpoints (C2SP signed-note vkey).";
    LOG_TILE = "GET" "/log/tile/{path}" 200, "log", Access::Public, "Hash tiles and entry bundles in the C2SP tlog-tiles layout.";
    LOG_PROOF = "GET" "/v1/log/proofs/{index}" 200, "log", Access::Public, "An inclusion proof bundle (c2sp.org/tlog-proof@v1) for the entry at an index.";
    STATUS_LIST = "GET" "/v1/status-list" 200, "permits", Access::Public, "The signed list of permits not in good standing (typ runpermit-status+jwt), for gates to poll.";
    ESTIMATE = "POST" "/v1/estimate" 200, "compute", Access::Public, "Estimate a training run's compute and the thresholds it crosses.";
    POLICY = "GET" "/v1/policy" 200, "policy", Access::AnyMember, "The policy in force.";
    WHOAMI = "GET" "/v1/whoami" 200, "identity", Access::AnyMember, "The calling member, organization and token.";
    ORGS_CREATE = "POST" "/v1/orgs" 201, "identity", Access::Only(&[(OrgKind::Authority, Role::Admin)]), "Create an organization.";
    ORGS_LIST = "GET" "/v1/orgs" 200, "identity", Access::Only(AUTHORITY_STAFF), "List organizations.";
    ORGS_GET = "GET" "/v1/orgs/{id}" 200, "identity", Access::AnyMember, "Read an organization (authority staff, or its own members).";
    MEMBERS_CREATE = "POST" "/v1/orgs/{id}/members" 201, "identity", Access::Only(ANY_ADMIN), "Add a member to an organization (its admins, or the authority's).";
    MEMBERS_LIST = "GET" "/v1/orgs/{id}/members" 200, "identity", Access::Only(&[(OrgKind::Authority, Role::Admin), (OrgKind::Authority, Role::Auditor), (OrgKind::Developer, Role::Admin), (OrgKind::Provider, Role::Admin), (OrgKind::Evaluator, Role::Admin)]), "List an organization's members.";
    TOKENS_CREATE = "POST" "/v1/members/{id}/tokens" 201, "identity", Access::AnyMember, "Create an API token for a member (the member, its organization's admins, or the authority's); the secret is shown once.";
    TOKENS_LIST = "GET" "/v1/members/{id}/tokens" 200, "identity", Access::AnyMember, "List a member's tokens (never their secrets).";
    TOKENS_REVOKE = "POST" "/v1/tokens/{id}/revoke" 200, "identity", Access::AnyMember, "Revoke a token.";
    APPLICATIONS_CREATE = "POST" "/v1/applications" 201, "applications", Access::Only(APPLICANTS), "Apply for a permit: create an application from a run plan (and submit it unless draft).";
    APPLICATIONS_LIST = "GET" "/v1/applications" 200, "applications", Access::Only(APPLICATION_READERS), "List applications (a developer sees its own).";
    APPLICATIONS_GET = "GET" "/v1/applications/{id}" 200, "applications", Access::Only(APPLICATION_READERS), "Read an application.";
    APPLICATIONS_UPDATE = "PUT" "/v1/applications/{id}" 200, "applications", Access::Only(APPLICANTS), "Replace the run plan of a draft or of an application with changes requested.";
    APPLICATIONS_SUBMIT = "POST" "/v1/applications/{id}/submit" 200, "applications", Access::Only(APPLICANTS), "Submit (or resubmit) an application.";
    APPLICATIONS_WITHDRAW = "POST" "/v1/applications/{id}/withdraw" 200, "applications", Access::Only(APPLICANTS), "Withdraw an application.";
    APPLICATIONS_APPEAL = "POST" "/v1/applications/{id}/appeal" 200, "applications", Access::Only(APPLICANTS), "Appeal a denial.";
    REVIEWS_CREATE = "POST" "/v1/applications/{id}/reviews" 201, "review", Access::Only(&[(OrgKind::Authority, Role::Reviewer)]), "Record a review decision: approve, deny or request changes, with a reason and conditions; an approval may assign evaluator organizations.";
    REVIEWS_LIST = "GET" "/v1/applications/{id}/reviews" 200, "review", Access::Only(APPLICATION_READERS), "List an application's reviews.";
    APPLICATION_PERMIT = "GET" "/v1/applications/{id}/permit" 200, "permits", Access::Only(APPLICATION_READERS), "The permit or exemption receipt issued for an application.";
    PERMITS_GET = "GET" "/v1/permits/{id}" 200, "permits", Access::Only(PERMIT_READERS), "Read a permit and its signed token.";
    USAGE_INGEST = "POST" "/v1/usage" 200, "oversight", Access::Public, "Ingest signed usage reports from providers' gates (authenticated by each report's signature with a registered reporting key); idempotent on (provider, run, seq); a batch is stored whole or not at all.";
    REPORTING_KEYS_CREATE = "POST" "/v1/orgs/{id}/reporting-keys" 201, "oversight", Access::Only(&[(OrgKind::Provider, Role::Admin), (OrgKind::Authority, Role::Admin)]), "Register a provider's Ed25519 usage-reporting public key (JWK).";
    REPORTING_KEYS_LIST = "GET" "/v1/orgs/{id}/reporting-keys" 200, "oversight", Access::Only(&[(OrgKind::Provider, Role::Admin), (OrgKind::Provider, Role::ProviderOperator), (OrgKind::Authority, Role::Admin), (OrgKind::Authority, Role::Reviewer), (OrgKind::Authority, Role::Auditor)]), "List a provider's reporting keys.";
    REPORTING_KEYS_REVOKE = "POST" "/v1/reporting-keys/{kid}/revoke" 200, "oversight", Access::Only(&[(OrgKind::Provider, Role::Admin), (OrgKind::Authority, Role::Admin)]), "Revoke a reporting key: reports signed with it are refused from now on.";
    RUNS_LIST = "GET" "/v1/runs" 200, "oversight", Access::Only(RUN_LISTERS), "List permitted runs (a developer sees its own; an evaluator those it is assigned to; a provider those it meters: each as its signed permit names them).";
    RUNS_GET = "GET" "/v1/runs/{id}" 200, "oversight", Access::Only(RUN_READERS), "A run: status, released tranche, cumulative usage by provider, milestones (an evaluator reads only the runs it is assigned to).";
    RUNS_USAGE = "GET" "/v1/runs/{id}/usage" 200, "oversight", Access::Only(RUN_READERS), "A run's usage: by provider, and report by report (interval by interval), paged.";
    RUNS_PAUSE = "POST" "/v1/runs/{id}/pause" 200, "oversight", Access::Only(REVIEWERS), "Pause a run, with a reason: gates refuse its new work.";
    RUNS_RESUME = "POST" "/v1/runs/{id}/resume" 200, "oversight", Access::Only(REVIEWERS), "Resume a paused or suspended run.";
    RUNS_SUSPEND = "POST" "/v1/runs/{id}/suspend" 200, "oversight", Access::Only(REVIEWERS), "Suspend a run (for example during an incident investigation).";
    RUNS_REVOKE = "POST" "/v1/runs/{id}/revoke" 200, "oversight", Access::Only(REVIEWERS), "Revoke a run's permit for good.";
    RUNS_TERMINATE = "POST" "/v1/runs/{id}/terminate" 200, "oversight", Access::Only(REVIEWERS), "End a run for good.";
    RUNS_COMPLETE = "POST" "/v1/runs/{id}/complete" 200, "oversight", Access::Only(APPLICANTS), "Declare a run finished (its developer).";
    RUNS_APPEAL = "POST" "/v1/runs/{id}/appeal" 200, "oversight", Access::Only(APPLICANTS), "Appeal a pause or suspension (its developer).";
    MILESTONES_CREATE = "POST" "/v1/runs/{id}/milestones" 201, "oversight", Access::Only(APPLICANTS), "Submit a milestone report: checkpoint digest, cumulative FLOP, evaluation results.";
    MILESTONES_LIST = "GET" "/v1/runs/{id}/milestones" 200, "oversight", Access::Only(RUN_READERS), "A run's milestone reports.";
    MILESTONES_ACCEPT = "POST" "/v1/milestones/{id}/accept" 200, "oversight", Access::Only(EVALUATORS), "Accept a milestone report (an evaluator the run's permit names): the next tranche is released.";
    MILESTONES_REJECT = "POST" "/v1/milestones/{id}/reject" 200, "oversight", Access::Only(EVALUATORS), "Reject a milestone report (an evaluator the run's permit names): the run is paused.";
    INCIDENTS_CREATE = "POST" "/v1/incidents" 201, "oversight", Access::Only(INCIDENT_REPORTERS), "Report an incident (weights stolen or leaked, dangerous capability, security breach, overrun, other); a provider only on runs whose permit names it.";
    INCIDENTS_LIST = "GET" "/v1/incidents" 200, "oversight", Access::Only(INCIDENT_READERS), "List incidents with their deadlines (authority staff see all; others their own organization's); `?overdue=true` for overdue follow-ups.";
    INCIDENTS_FOLLOW_UP = "POST" "/v1/incidents/{id}/follow-up" 200, "oversight", Access::Only(INCIDENT_REPORTERS), "File an incident's follow-up report (and close it).";
    KYC_CREATE = "POST" "/v1/kyc-reports" 201, "oversight", Access::Only(PROVIDER_STAFF), "Report a customer's large jobs that ran without a permit (know-your-customer reporting).";
    KYC_FLAGS = "GET" "/v1/kyc/flags" 200, "oversight", Access::Only(AUTHORITY_STAFF), "Customers whose unpermitted compute over all providers reaches the permit threshold (split runs).";
    AUDIT_LIST = "GET" "/v1/audit" 200, "audit", Access::Only(&[(OrgKind::Authority, Role::Admin), (OrgKind::Authority, Role::Auditor)]), "The audit trail: who did what, when and why.";
}

impl Endpoint {
    /// Whether `caller` passes the role rule.
    pub fn allows(&self, caller: Option<&Caller>) -> bool {
        match (self.access, caller) {
            (Access::Public, _) => true,
            (_, None) => false,
            (Access::AnyMember, Some(_)) => true,
            (Access::Only(grants), Some(c)) => grants.contains(&(c.org_kind, c.role)),
        }
    }

    /// Ok when `caller` passes the role rule, else 403 naming the endpoint.
    pub fn authorize(&self, caller: &Caller) -> Result<(), ApiError> {
        if self.allows(Some(caller)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "{} of {} organization may not call {} {}",
                runpermit_types::names::with_article(caller.role.as_str()),
                runpermit_types::names::with_article(caller.org_kind.as_str()),
                self.method,
                self.path
            )))
        }
    }
}
