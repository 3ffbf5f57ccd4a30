//! Who may call what: every endpoint has an explicit rule here, and the OpenAPI document and
//! the endpoint × role test are generated from the same table, which also names each route's
//! request and response bodies (`runpermit-api`'s types).
//!
//! Two layers: the *role rule* below (which organization kinds and roles may call an
//! endpoint at all) and the *resource scope* checked in handlers with [`Caller::sees_org`]
//! (a lab never sees another lab's applications) and, for runs, by assignment in the signed
//! permit (an evaluator sees the runs whose permit names it among `evaluators`, a provider
//! those whose permit names it among `providers`); out of scope answers 404, as for an
//! unknown id.

use runpermit_api::{
    Body, Query, access, applications as apps, error, foreign, identity, incidents, log, models,
    ops, permits, reviews, runs, usage,
};

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
    /// The OpenAPI `operationId`: unique, lowerCamelCase (`createApplication`).
    pub operation_id: &'static str,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// What it does, beyond the summary (the document adds who may call it).
    pub description: &'static str,
    /// OpenAPI tag.
    pub tag: &'static str,
    /// Status of a successful answer.
    pub success: u16,
    /// The body of a successful answer.
    pub response: Body,
    /// The request body, for routes that read one.
    pub request: Option<Body>,
    /// The query parameters, for routes that read some.
    pub query: Option<Query>,
    /// Answers besides success and the shared `Error` body: (status, body), such as a usage
    /// batch refused report by report.
    pub other_responses: &'static [(u16, Body)],
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
/// Who may apply for structured access: researchers at labs and evaluation institutes.
const ACCESS_APPLICANTS: &[(OrgKind, Role)] = &[
    (OrgKind::Developer, Role::Applicant),
    (OrgKind::Developer, Role::Admin),
    (OrgKind::Evaluator, Role::Evaluator),
    (OrgKind::Evaluator, Role::Admin),
];
/// Who may read applications for access and grants (each scoped to its own organization's,
/// as grantee or as the model's developer; authority staff all).
const ACCESS_READERS: &[(OrgKind, Role)] = &[
    (OrgKind::Developer, Role::Applicant),
    (OrgKind::Developer, Role::Admin),
    (OrgKind::Evaluator, Role::Evaluator),
    (OrgKind::Evaluator, Role::Admin),
    (OrgKind::Authority, Role::Admin),
    (OrgKind::Authority, Role::Reviewer),
    (OrgKind::Authority, Role::Auditor),
];
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
    (@option) => { None };
    (@option $value:expr) => { Some($value) };
    (@query) => { None };
    (@query $query:ty) => { Some(Query::of::<$query>()) };
    (@others) => { &[] };
    (@others $others:expr) => { $others };
    ($(
        $name:ident = $method:literal $path:literal $success:literal $id:literal,
        $tag:literal, $access:expr,
        $summary:literal,
        $description:literal,
        response $response:expr
        $(, request $request:expr)?
        $(, query $query:ty)?
        $(, others $others:expr)?;
    )+) => {
        $(
            #[doc = $summary]
            pub const $name: Endpoint = Endpoint {
                method: $method,
                path: $path,
                operation_id: $id,
                summary: $summary,
                description: $description,
                tag: $tag,
                success: $success,
                response: $response,
                request: endpoints!(@option $($request)?),
                query: endpoints!(@query $($query)?),
                other_responses: endpoints!(@others $($others)?),
                access: $access,
            };
        )+
        /// Every endpoint, in documentation order.
        pub const ENDPOINTS: &[Endpoint] = &[$($name),+];
    };
}

/// The shared error body.
pub const ERROR: Body = Body::json::<error::ErrorBody>();

/// A usage batch refused report by report: 401 (a signature), 409 (a conflict with a stored
/// report) or 422.
const USAGE_REFUSED: &[(u16, Body)] = &[
    (401, Body::json::<error::UsageRefused>()),
    (409, Body::json::<error::UsageRefused>()),
    (422, Body::json::<error::UsageRefused>()),
];

endpoints! {
    HEALTHZ = "GET" "/healthz" 200 "health", "operations", Access::Public,
        "The process is up.",
        "Answers while the process runs, without touching the database: a liveness probe.",
        response Body::json::<ops::Health>();
    READYZ = "GET" "/readyz" 200 "ready", "operations", Access::Public,
        "The process can reach its database.",
        "200 when the database answers, 503 with the reason otherwise: a readiness probe.",
        response Body::json::<ops::Readiness>(),
        others &[(503, Body::json::<ops::Readiness>())];
    METRICS = "GET" "/metrics" 200 "metrics", "operations", Access::Public,
        "Prometheus metrics.",
        "Requests and their latency by route and status, usage reports, tranche alerts, run transitions, status-list corrections and rate-limit refusals, in the Prometheus text format.",
        response Body::media::<ops::Metrics>("text/plain; version=0.0.4");
    OPENAPI = "GET" "/v1/openapi.json" 200 "openapi", "operations", Access::Public,
        "This document.",
        "OpenAPI 3.1, generated from the endpoint table that also authorizes every request, and from the types of every body.",
        response Body::json::<ops::OpenApiDocument>();
    JWKS = "GET" "/.well-known/jwks.json" 200 "jwks", "permits", Access::Public,
        "The authority's permit-signing public keys (JWKS).",
        "Every key that may still verify a permit in force: a retired key stays until the longest permit validity has passed since its retirement.",
        response Body::json::<foreign::JwksSchema>();
    LOG_CHECKPOINT = "GET" "/log/checkpoint" 200 "logCheckpoint", "log", Access::Public,
        "The transparency log's latest signed checkpoint (C2SP tlog-checkpoint, signed-note).",
        "The log's size and root hash, signed with the log's key; 404 before the first entry is sequenced.",
        response Body::media::<log::Checkpoint>("text/plain; charset=utf-8"),
        others &[(404, ERROR)];
    LOG_VKEY = "GET" "/log/vkey" 200 "logVerifierKey", "log", Access::Public,
        "The verifier key of the log's checkpoints (C2SP signed-note vkey).",
        "Pin it once, then verify checkpoints with `runpermit log verify` or any signed-note library.",
        response Body::media::<log::VerifierKey>("text/plain; charset=utf-8");
    LOG_TILE = "GET" "/log/tile/{path}" 200 "logTile", "log", Access::Public,
        "Hash tiles and entry bundles in the C2SP tlog-tiles layout.",
        "`tile/<L>/<N>` and `tile/entries/<N>`, partial ones with `.p/<W>`. Full tiles never change and may be cached for a year.",
        response Body::media::<log::Tile>("application/octet-stream");
    LOG_PROOF = "GET" "/v1/log/proofs/{index}" 200 "logProof", "log", Access::Public,
        "An inclusion proof bundle (c2sp.org/tlog-proof@v1) for the entry at an index.",
        "The entry's index, its inclusion proof and the checkpoint it is proved against, as text.",
        response Body::media::<log::ProofBundle>("text/plain; charset=utf-8");
    STATUS_LIST = "GET" "/v1/status-list" 200 "statusList", "permits", Access::Public,
        "The signed list of permits not in good standing (typ runpermit-status+jwt), for gates to poll.",
        "Built at each request from the runs and reconciled with the public log, so that a permit the log says is not in good standing is always listed; never cached.",
        response Body::media::<permits::StatusListToken>("application/jwt");
    ESTIMATE = "POST" "/v1/estimate" 200 "estimate", "compute", Access::Public,
        "Estimate a training run's compute and the thresholds it crosses.",
        "Operation counting and/or the hardware method, and every regulatory threshold with whether the run crosses it; 422 names every invalid field. Changes nothing.",
        response Body::json::<foreign::EstimateSchema>(),
        request Body::json::<foreign::EstimateInputSchema>();
    POLICY = "GET" "/v1/policy" 200 "getPolicy", "policy", Access::AnyMember,
        "The policy in force.",
        "Tiers by cumulative compute with their decisions and requirements, tranches, permit terms, oversight and incident deadlines.",
        response Body::json::<foreign::PolicySchema>();
    WHOAMI = "GET" "/v1/whoami" 200 "whoami", "identity", Access::AnyMember,
        "The calling member, organization and token.",
        "Who the bearer token belongs to, and when it expires.",
        response Body::json::<identity::WhoAmI>();
    ORGS_CREATE = "POST" "/v1/orgs" 201 "createOrganization", "identity", Access::Only(&[(OrgKind::Authority, Role::Admin)]),
        "Create an organization.",
        "An authority, developer, provider or evaluator; its members are added next.",
        response Body::json::<identity::OrganizationView>(),
        request Body::json::<identity::NewOrganization>();
    ORGS_LIST = "GET" "/v1/orgs" 200 "listOrganizations", "identity", Access::Only(AUTHORITY_STAFF),
        "List organizations.",
        "Every organization.",
        response Body::json_list::<identity::OrganizationView>();
    ORGS_GET = "GET" "/v1/orgs/{id}" 200 "getOrganization", "identity", Access::AnyMember,
        "Read an organization (authority staff, or its own members).",
        "Another organization answers 404, as an unknown id does.",
        response Body::json::<identity::OrganizationView>();
    MEMBERS_CREATE = "POST" "/v1/orgs/{id}/members" 201 "createMember", "identity", Access::Only(ANY_ADMIN),
        "Add a member to an organization (its admins, or the authority's).",
        "A person or service with a role that fits the organization's kind; tokens are created for it next.",
        response Body::json::<identity::MemberView>(),
        request Body::json::<identity::NewMember>();
    MEMBERS_LIST = "GET" "/v1/orgs/{id}/members" 200 "listMembers", "identity", Access::Only(&[(OrgKind::Authority, Role::Admin), (OrgKind::Authority, Role::Auditor), (OrgKind::Developer, Role::Admin), (OrgKind::Provider, Role::Admin), (OrgKind::Evaluator, Role::Admin)]),
        "List an organization's members.",
        "Its members with their roles.",
        response Body::json_list::<identity::MemberView>();
    TOKENS_CREATE = "POST" "/v1/members/{id}/tokens" 201 "createToken", "identity", Access::AnyMember,
        "Create an API token for a member (the member, its organization's admins, or the authority's); the secret is shown once.",
        "Its expiry is within the policy's `tokens.max_lifetime_days` and never after the requesting token's. A replay with the same Idempotency-Key answers without the secret and says why in `secret_withheld`.",
        response Body::json::<identity::TokenView>(),
        request Body::json::<identity::NewToken>();
    TOKENS_LIST = "GET" "/v1/members/{id}/tokens" 200 "listTokens", "identity", Access::AnyMember,
        "List a member's tokens (never their secrets).",
        "Revoked and expired tokens included.",
        response Body::json_list::<identity::TokenView>();
    TOKENS_REVOKE = "POST" "/v1/tokens/{id}/revoke" 200 "revokeToken", "identity", Access::AnyMember,
        "Revoke a token.",
        "It stops working at once; the revocation is audited with its reason.",
        response Body::json::<identity::TokenView>(),
        request Body::json::<identity::Revocation>();
    APPLICATIONS_CREATE = "POST" "/v1/applications" 201 "createApplication", "applications", Access::Only(APPLICANTS),
        "Apply for a permit: create an application from a run plan (and submit it unless draft).",
        "The plan is validated, its compute estimated and the plan classified under the policy: an exempt plan gets an exemption receipt, a notify-tier plan a permit, a top-tier plan goes to review. 422 names every missing or invalid field, and nothing is written. An Idempotency-Key also makes the application's id deterministic.",
        response Body::json::<apps::ApplicationView>(),
        request Body::json::<apps::NewApplication>();
    APPLICATIONS_LIST = "GET" "/v1/applications" 200 "listApplications", "applications", Access::Only(APPLICATION_READERS),
        "List applications (a developer sees its own).",
        "Each with its estimate, tier, decision and status.",
        response Body::json_list::<apps::ApplicationView>();
    APPLICATIONS_GET = "GET" "/v1/applications/{id}" 200 "getApplication", "applications", Access::Only(APPLICATION_READERS),
        "Read an application.",
        "With its estimate, tier, decision and status, and its permit or receipt once issued; another organization's application answers 404.",
        response Body::json::<apps::ApplicationView>();
    APPLICATIONS_UPDATE = "PUT" "/v1/applications/{id}" 200 "updateApplication", "applications", Access::Only(APPLICANTS),
        "Replace the run plan of a draft or of an application with changes requested.",
        "Against the version read: a stale version answers 409.",
        response Body::json::<apps::ApplicationView>(),
        request Body::json::<apps::PlanUpdate>();
    APPLICATIONS_SUBMIT = "POST" "/v1/applications/{id}/submit" 200 "submitApplication", "applications", Access::Only(APPLICANTS),
        "Submit (or resubmit) an application.",
        "The policy decides what follows, as on creation.",
        response Body::json::<apps::ApplicationView>(),
        request Body::json::<apps::StepBody>();
    APPLICATIONS_WITHDRAW = "POST" "/v1/applications/{id}/withdraw" 200 "withdrawApplication", "applications", Access::Only(APPLICANTS),
        "Withdraw an application.",
        "With a reason. Final.",
        response Body::json::<apps::ApplicationView>(),
        request Body::json::<apps::StepBody>();
    APPLICATIONS_APPEAL = "POST" "/v1/applications/{id}/appeal" 200 "appealApplication", "applications", Access::Only(APPLICANTS),
        "Appeal a denial.",
        "With a reason; a new review follows.",
        response Body::json::<apps::ApplicationView>(),
        request Body::json::<apps::StepBody>();
    REVIEWS_CREATE = "POST" "/v1/applications/{id}/reviews" 201 "createReview", "review", Access::Only(&[(OrgKind::Authority, Role::Reviewer)]),
        "Record a review decision: approve, deny or request changes, with a reason and conditions; an approval may assign evaluator organizations.",
        "Answers the application. An approval that completes the round issues the permit: signed only after its intent is committed, served once it is in the public log.",
        response Body::json::<apps::ApplicationView>(),
        request Body::json::<reviews::NewReview>();
    REVIEWS_LIST = "GET" "/v1/applications/{id}/reviews" 200 "listReviews", "review", Access::Only(APPLICATION_READERS),
        "List an application's reviews.",
        "Every decision, oldest first.",
        response Body::json_list::<reviews::ReviewView>();
    APPLICATION_PERMIT = "GET" "/v1/applications/{id}/permit" 200 "getApplicationPermit", "permits", Access::Only(APPLICATION_READERS),
        "The permit or exemption receipt issued for an application.",
        "Told apart by `kind`; a permit's token and inclusion proof are served once it is in the public log. 404 while there is neither.",
        response Body::json::<permits::IssuedDocument>();
    PERMITS_GET = "GET" "/v1/permits/{id}" 200 "getPermit", "permits", Access::Only(PERMIT_READERS),
        "Read a permit and its signed token.",
        "Its holder, the authority's staff and the providers its signed claims name may read it; the token and inclusion proof once it is in the public log.",
        response Body::json::<permits::PermitView>();
    USAGE_INGEST = "POST" "/v1/usage" 200 "ingestUsage", "oversight", Access::Public,
        "Ingest signed usage reports from providers' gates (authenticated by each report's signature with a registered reporting key); idempotent on (provider, run, seq); a batch is stored whole or not at all.",
        "Each report is verified with the key its `kid` names and checked against the run's signed permit. A batch with any refused report stores nothing and answers `UsageRefused` with every report's result; gaps and late reports are reported back.",
        response Body::json::<usage::IngestAnswer>(),
        request Body::json::<usage::UsageBatch>(),
        others USAGE_REFUSED;
    REPORTING_KEYS_CREATE = "POST" "/v1/orgs/{id}/reporting-keys" 201 "createReportingKey", "oversight", Access::Only(&[(OrgKind::Developer, Role::Admin), (OrgKind::Provider, Role::Admin), (OrgKind::Authority, Role::Admin)]),
        "Register a provider's Ed25519 usage-reporting public key (JWK), or a developer's for its access gateway's access-usage reports.",
        "Its `kid` is the key's RFC 7638 thumbprint, which the gate puts in its reports' headers.",
        response Body::json::<usage::ReportingKeyView>(),
        request Body::json::<usage::NewReportingKey>();
    REPORTING_KEYS_LIST = "GET" "/v1/orgs/{id}/reporting-keys" 200 "listReportingKeys", "oversight", Access::Only(&[(OrgKind::Developer, Role::Admin), (OrgKind::Provider, Role::Admin), (OrgKind::Provider, Role::ProviderOperator), (OrgKind::Authority, Role::Admin), (OrgKind::Authority, Role::Reviewer), (OrgKind::Authority, Role::Auditor)]),
        "List a provider's or developer's reporting keys.",
        "Revoked keys included.",
        response Body::json_list::<usage::ReportingKeyView>();
    REPORTING_KEYS_REVOKE = "POST" "/v1/reporting-keys/{kid}/revoke" 200 "revokeReportingKey", "oversight", Access::Only(&[(OrgKind::Developer, Role::Admin), (OrgKind::Provider, Role::Admin), (OrgKind::Authority, Role::Admin)]),
        "Revoke a reporting key: reports signed with it are refused from now on.",
        "Reports already stored stay. No request body.",
        response Body::json::<usage::ReportingKeyView>();
    RUNS_LIST = "GET" "/v1/runs" 200 "listRuns", "oversight", Access::Only(RUN_LISTERS),
        "List permitted runs (a developer sees its own; an evaluator those it is assigned to; a provider those it meters: each as its signed permit names them).",
        "Each with its status, tranche, cumulative usage and the actions the caller may take.",
        response Body::json_list::<runs::RunView>();
    RUNS_GET = "GET" "/v1/runs/{id}" 200 "getRun", "oversight", Access::Only(RUN_READERS),
        "A run: status, released tranche, cumulative usage by provider, milestones (an evaluator reads only the runs it is assigned to).",
        "A run out of the caller's scope answers 404, as an unknown id does.",
        response Body::json::<runs::RunDetail>();
    RUNS_USAGE = "GET" "/v1/runs/{id}/usage" 200 "getRunUsage", "oversight", Access::Only(RUN_READERS),
        "A run's usage: by provider, and report by report (interval by interval), paged.",
        "Pass `next` back as `after_provider` and `after_seq` for the next page.",
        response Body::json::<runs::RunUsage>(),
        query runs::UsageQuery;
    RUNS_PAUSE = "POST" "/v1/runs/{id}/pause" 200 "pauseRun", "oversight", Access::Only(REVIEWERS),
        "Pause a run, with a reason: gates refuse its new work.",
        "Its permit leaves good standing and the status list names it from the next request. Audited and logged publicly with the reason.",
        response Body::json::<runs::RunView>(),
        request Body::json::<runs::Reason>();
    RUNS_RESUME = "POST" "/v1/runs/{id}/resume" 200 "resumeRun", "oversight", Access::Only(REVIEWERS),
        "Resume a paused or suspended run.",
        "Gates admit its work again at their next poll.",
        response Body::json::<runs::RunView>(),
        request Body::json::<runs::Reason>();
    RUNS_SUSPEND = "POST" "/v1/runs/{id}/suspend" 200 "suspendRun", "oversight", Access::Only(REVIEWERS),
        "Suspend a run (for example during an incident investigation).",
        "As a pause, for a run under investigation.",
        response Body::json::<runs::RunView>(),
        request Body::json::<runs::Reason>();
    RUNS_REVOKE = "POST" "/v1/runs/{id}/revoke" 200 "revokeRun", "oversight", Access::Only(REVIEWERS),
        "Revoke a run's permit for good.",
        "Final: the status list names the permit as revoked.",
        response Body::json::<runs::RunView>(),
        request Body::json::<runs::Reason>();
    RUNS_TERMINATE = "POST" "/v1/runs/{id}/terminate" 200 "terminateRun", "oversight", Access::Only(REVIEWERS),
        "End a run for good.",
        "Final: the run ends and its permit leaves good standing.",
        response Body::json::<runs::RunView>(),
        request Body::json::<runs::Reason>();
    RUNS_COMPLETE = "POST" "/v1/runs/{id}/complete" 200 "completeRun", "oversight", Access::Only(APPLICANTS),
        "Declare a run finished (its developer).",
        "Final: its permit is no longer needed.",
        response Body::json::<runs::RunView>(),
        request Body::json::<runs::Reason>();
    RUNS_APPEAL = "POST" "/v1/runs/{id}/appeal" 200 "appealRun", "oversight", Access::Only(APPLICANTS),
        "Appeal a pause or suspension (its developer).",
        "Marks the appeal pending; reviewers answer it by resuming the run or not.",
        response Body::json::<runs::RunView>(),
        request Body::json::<runs::Reason>();
    MILESTONES_CREATE = "POST" "/v1/runs/{id}/milestones" 201 "createMilestone", "oversight", Access::Only(APPLICANTS),
        "Submit a milestone report: checkpoint digest, cumulative FLOP, evaluation results.",
        "For the evaluators the run's permit names to accept or reject.",
        response Body::json::<runs::MilestoneView>(),
        request Body::json::<runs::NewMilestone>();
    MILESTONES_LIST = "GET" "/v1/runs/{id}/milestones" 200 "listMilestones", "oversight", Access::Only(RUN_READERS),
        "A run's milestone reports.",
        "Oldest first, with their decisions.",
        response Body::json_list::<runs::MilestoneView>();
    MILESTONES_ACCEPT = "POST" "/v1/milestones/{id}/accept" 200 "acceptMilestone", "oversight", Access::Only(EVALUATORS),
        "Accept a milestone report (an evaluator the run's permit names): the next tranche is released.",
        "Never by the run's own organization. Audited and logged publicly.",
        response Body::json::<runs::MilestoneView>(),
        request Body::json::<runs::Reason>();
    MILESTONES_REJECT = "POST" "/v1/milestones/{id}/reject" 200 "rejectMilestone", "oversight", Access::Only(EVALUATORS),
        "Reject a milestone report (an evaluator the run's permit names): the run is paused.",
        "Never by the run's own organization. Audited and logged publicly.",
        response Body::json::<runs::MilestoneView>(),
        request Body::json::<runs::Reason>();
    INCIDENTS_CREATE = "POST" "/v1/incidents" 201 "createIncident", "oversight", Access::Only(INCIDENT_REPORTERS),
        "Report an incident (weights stolen or leaked, dangerous capability, security breach, overrun, other); a provider only on runs whose permit names it.",
        "Its deadlines come from the policy's category: the initial report's (`reported_late` when past it) and the follow-up's.",
        response Body::json::<incidents::IncidentView>(),
        request Body::json::<incidents::NewIncident>();
    INCIDENTS_LIST = "GET" "/v1/incidents" 200 "listIncidents", "oversight", Access::Only(INCIDENT_READERS),
        "List incidents with their deadlines (authority staff see all; others their own organization's); `?overdue=true` for overdue follow-ups.",
        "Each with its report and follow-up deadlines.",
        response Body::json_list::<incidents::IncidentView>(),
        query incidents::IncidentQuery;
    INCIDENTS_FOLLOW_UP = "POST" "/v1/incidents/{id}/follow-up" 200 "followUpIncident", "oversight", Access::Only(INCIDENT_REPORTERS),
        "File an incident's follow-up report (and close it).",
        "Closes the incident unless `close` is false.",
        response Body::json::<incidents::IncidentView>(),
        request Body::json::<incidents::FollowUp>();
    MODELS_CREATE = "POST" "/v1/models" 201 "registerModel", "models", Access::Only(APPLICANTS),
        "Register a model a permitted run produced (its developer): name, checkpoint digest, the run and milestone report it came from, cumulative training compute, release plan.",
        "Audited and written to the public log (`model_registered`); each checkpoint once, a name once per organization.",
        response Body::json::<models::ModelView>(),
        request Body::json::<models::NewModel>();
    MODELS_LIST = "GET" "/v1/models" 200 "listModels", "models", Access::Public,
        "The public model registry, newest first.",
        "Every registered model, as the public log records it.",
        response Body::json_list::<models::ModelView>();
    MODELS_GET = "GET" "/v1/models/{id}" 200 "getModel", "models", Access::Public,
        "One registered model.",
        "Public, like permits.",
        response Body::json::<models::ModelView>();
    ACCESS_REQUESTS_CREATE = "POST" "/v1/access-requests" 201 "applyForAccess", "access", Access::Only(ACCESS_APPLICANTS),
        "Apply for structured access to a registered model: tier, purpose, research plan and agreement digests, quotas, days.",
        "The model's developer consents or objects; reviewers decide (docs/access.md).",
        response Body::json::<access::AccessRequestView>(),
        request Body::json::<access::NewAccessRequest>();
    ACCESS_REQUESTS_LIST = "GET" "/v1/access-requests" 200 "listAccessRequests", "access", Access::Only(ACCESS_READERS),
        "Applications for access: your organization's and those for its models (authority staff: all).",
        "Newest first, with consent and approvals.",
        response Body::json_list::<access::AccessRequestView>();
    ACCESS_REQUESTS_GET = "GET" "/v1/access-requests/{id}" 200 "getAccessRequest", "access", Access::Only(ACCESS_READERS),
        "One application for access.",
        "404 for one outside your organization's scope, as for an unknown id.",
        response Body::json::<access::AccessRequestView>();
    ACCESS_REQUESTS_CONSENT = "POST" "/v1/access-requests/{id}/consent" 200 "answerAccessRequest", "access", Access::Only(APPLICANTS),
        "The model's developer consents to or objects to an application, with its reason.",
        "From the policy's developer_consent_from tier up, no grant without consent.",
        response Body::json::<access::AccessRequestView>(),
        request Body::json::<access::Consent>();
    ACCESS_REQUESTS_REVIEW = "POST" "/v1/access-requests/{id}/review" 200 "reviewAccessRequest", "access", Access::Only(REVIEWERS),
        "A reviewer approves or denies an application; with the tier's approvals in, the grant is signed and logged.",
        "Approvals come from distinct reviewers; the grant's token is served once its access_granted entry is in the log.",
        response Body::json::<access::AccessRequestView>(),
        request Body::json::<access::AccessReview>();
    ACCESS_USAGE_INGEST = "POST" "/v1/access-usage" 200 "ingestAccessUsage", "access", Access::Public,
        "Ingest signed access-usage reports from developers' access gateways (authenticated by each report's signature with the developer's registered reporting key); idempotent on (developer, grant, seq); a batch is stored whole or not at all.",
        "Each report is verified with the key its `kid` names, whose organization must be the report's `iss`, the grant's developer; its `model_id` must be the grant's. Stored reports add to the grant's `usage`. A batch with any refused report stores nothing and answers `UsageRefused` with every report's result (`grant_id` set, `provider_id` unset).",
        response Body::json::<usage::IngestAnswer>(),
        request Body::json::<access::AccessUsageBatch>(),
        others USAGE_REFUSED;
    GRANTS_LIST = "GET" "/v1/grants" 200 "listGrants", "access", Access::Only(ACCESS_READERS),
        "Access grants: your organization's and those to its models (authority staff: all).",
        "Newest first, each with its standing.",
        response Body::json_list::<access::GrantView>();
    GRANTS_GET = "GET" "/v1/grants/{id}" 200 "getGrant", "access", Access::Only(ACCESS_READERS),
        "One grant: its token and its log proof bundle once it is in the public log.",
        "An enforcement point admits requests only with both.",
        response Body::json::<access::GrantView>();
    GRANTS_SUSPEND = "POST" "/v1/grants/{id}/suspend" 200 "suspendGrant", "access", Access::Only(REVIEWERS),
        "Suspend a grant.",
        "Audited, logged (access_changed) and on the next status list.",
        response Body::json::<access::GrantView>(),
        request Body::json::<runs::Reason>();
    GRANTS_REINSTATE = "POST" "/v1/grants/{id}/reinstate" 200 "reinstateGrant", "access", Access::Only(REVIEWERS),
        "Reinstate a suspended grant.",
        "Audited, logged (access_changed); it leaves the status list.",
        response Body::json::<access::GrantView>(),
        request Body::json::<runs::Reason>();
    GRANTS_REVOKE = "POST" "/v1/grants/{id}/revoke" 200 "revokeGrant", "access", Access::Only(REVIEWERS),
        "Revoke a grant for good.",
        "Final. Audited, logged (access_changed) and on the status list until it expires.",
        response Body::json::<access::GrantView>(),
        request Body::json::<runs::Reason>();
    KYC_CREATE = "POST" "/v1/kyc-reports" 201 "createKycReport", "oversight", Access::Only(PROVIDER_STAFF),
        "Report a customer's large jobs that ran without a permit (know-your-customer reporting).",
        "Answers the customer's flag when its unpermitted compute over all providers, within the policy's window, now reaches the permit threshold.",
        response Body::json::<usage::KycAnswer>(),
        request Body::json::<usage::NewKycReport>();
    KYC_FLAGS = "GET" "/v1/kyc/flags" 200 "listKycFlags", "oversight", Access::Only(AUTHORITY_STAFF),
        "Customers whose unpermitted compute over all providers reaches the permit threshold (split runs).",
        "Largest first; `split` marks a customer no single provider saw enough of to need a permit.",
        response Body::json::<usage::KycFlags>();
    AUDIT_LIST = "GET" "/v1/audit" 200 "listAuditEvents", "audit", Access::Only(&[(OrgKind::Authority, Role::Admin), (OrgKind::Authority, Role::Auditor)]),
        "The audit trail: who did what, when and why.",
        "In commit order, paged by `after` (a sequence number), optionally about one subject.",
        response Body::json_list::<ops::AuditView>(),
        query ops::AuditQuery;
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
