//! Access grants, claim set version 1. These doc comments are the grant's specification;
//! `docs/access.md` is the overview.
//!
//! An access grant lets one person of one organization use one checkpoint of a registered
//! model through the developer's interface, at a [`AccessTier`], within quotas and a rate,
//! for a stated purpose, for a validity window. It is a compact JWS (see [`crate::jws`]),
//! signed by the authority like a permit, whose header `typ` is [`ACCESS_TYP`] and whose
//! payload is one JSON object with exactly the fields of [`AccessGrantClaims`]: a verifier
//! refuses unknown fields, so a field is never silently ignored. Times are integer unix
//! seconds (RFC 7519 NumericDate).
//!
//! "Checked, then signed", as for permits: only [`check_access_grant`] makes a
//! [`CheckedAccessGrant`], and only a `CheckedAccessGrant` can be signed
//! ([`sign_access_grant`]), so no unchecked grant is ever signed. Verifiers call
//! [`verify_access_grant`] (or its two halves, [`verify_access_grant_signature`] and
//! [`check_access_grant_validity`]), which apply PyJWT's time rules, as for permits.
//!
//! Compatibility: adding, removing or changing the meaning of a field makes a new claim set
//! version, with a new value of `rpv`.

use std::fmt;
use std::str::FromStr;

use runpermit_compute::limits::Plausible;
use runpermit_compute::{FieldError, text};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{TokenKind, VerifyError, utc};
use crate::jwks::Jwks;
use crate::jws::{sign_jws, verify_jws};
use crate::keys::SigningKey;
use crate::verify::{check_window, read_versioned};

/// The header `typ` of an access grant (RFC 8725 §3.11 explicit typing): a permit, a receipt
/// or any other runpermit token is refused where a grant is expected, and a grant wherever
/// another token is.
pub const ACCESS_TYP: &str = "runpermit-access+jwt";

/// The claim set version this crate writes and reads: the value of `rpv`.
pub const ACCESS_CLAIMS_VERSION: u32 = 1;

/// The longest validity window (`exp − nbf`) of a grant: 731 days, two years. Access that
/// lasts longer is granted again, under the policy and agreement then in force.
pub const MAX_GRANT_VALIDITY_SECONDS: i64 = 731 * 86_400;

/// `quotas.tokens`: 1 to 10^13 tokens (input and output together). Ten trillion tokens is
/// beyond any research programme's budget; a larger figure is a typo, or "unlimited" in
/// disguise (leave the quota out for that).
pub const GRANT_TOKENS: Plausible = Plausible {
    min: 1.0,
    max: 1e13,
    unit: "tokens",
    hint: "leave the quota out for no token limit",
};

/// `quotas.requests`: 1 to 10^10 requests.
pub const GRANT_REQUESTS: Plausible = Plausible {
    min: 1.0,
    max: 1e10,
    unit: "requests",
    hint: "leave the quota out for no request limit",
};

/// `quotas.accelerator_hours`: 0.01 (36 seconds) to 10^7 accelerator-hours (about 1,100
/// accelerators for a year).
pub const GRANT_ACCELERATOR_HOURS: Plausible = Plausible {
    min: 0.01,
    max: 1e7,
    unit: "accelerator-hours",
    hint: "leave the quota out for no accelerator-time limit",
};

/// `rate.burst`: 1 to 10^6 requests at once.
pub const RATE_BURST: Plausible = Plausible {
    min: 1.0,
    max: 1e6,
    unit: "requests",
    hint: "how many requests may arrive at once",
};

/// `rate.count`: 1 to 10^9 requests per period.
pub const RATE_COUNT: Plausible = Plausible {
    min: 1.0,
    max: 1e9,
    unit: "requests per period",
    hint: "",
};

/// `rate.period_seconds`: 1 second to 1 day (86,400 s).
pub const RATE_PERIOD_SECONDS: Plausible = Plausible {
    min: 1.0,
    max: 86_400.0,
    unit: "seconds",
    hint: "",
};

/// `duties.usage_report_interval_seconds`: 60 seconds to 31 days (2,678,400 s), the range
/// of a usage report's interval.
pub const USAGE_REPORT_INTERVAL_SECONDS: Plausible = Plausible {
    min: 60.0,
    max: 2_678_400.0,
    unit: "seconds",
    hint: "",
};

/// `duties.publication_review_days`: 0 (no review before publication) to 365 days.
pub const PUBLICATION_REVIEW_DAYS: Plausible = Plausible {
    min: 0.0,
    max: 365.0,
    unit: "days",
    hint: "0 for no review before publication",
};

/// `duties.incident_report_hours`: 1 to 720 hours (30 days).
pub const INCIDENT_REPORT_HOURS: Plausible = Plausible {
    min: 1.0,
    max: 720.0,
    unit: "hours",
    hint: "",
};

/// How deep into a model a grant reaches. Tiers are ordered, each including everything the
/// ones before it allow: `api_sampling` < `logprobs` < `finetune` < `activations` <
/// `weights` ([`AccessTier::includes`]). In JSON, the snake_case name.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AccessTier {
    /// Sampling through the developer's API: prompts in, generated text out, with the usual
    /// sampling parameters. No token probabilities, no training, no internals.
    ApiSampling,
    /// Sampling, and the log-probabilities of the generated and of alternative tokens
    /// (`logprobs`, `top_logprobs`).
    Logprobs,
    /// The above, and fine-tuning jobs on the developer's infrastructure; the weights, the
    /// original and the fine-tuned, stay with the developer.
    Finetune,
    /// The above, and hooks into the model's internals: reading and steering activations
    /// (interpretability), still on the developer's infrastructure.
    Activations,
    /// The above, and a copy of the weights, under the agreement's security terms.
    Weights,
}

impl AccessTier {
    /// Every tier, from the shallowest to the deepest.
    pub const ALL: [AccessTier; 5] = [
        AccessTier::ApiSampling,
        AccessTier::Logprobs,
        AccessTier::Finetune,
        AccessTier::Activations,
        AccessTier::Weights,
    ];

    /// The name in tokens, policy files and the API (`api_sampling`).
    pub fn as_str(self) -> &'static str {
        match self {
            AccessTier::ApiSampling => "api_sampling",
            AccessTier::Logprobs => "logprobs",
            AccessTier::Finetune => "finetune",
            AccessTier::Activations => "activations",
            AccessTier::Weights => "weights",
        }
    }

    /// Whether a grant at this tier allows what `other` allows: true when `other` is this
    /// tier or a shallower one. A `logprobs` grant includes `api_sampling`; an
    /// `api_sampling` grant does not include `logprobs`.
    pub fn includes(self, other: AccessTier) -> bool {
        self >= other
    }
}

impl fmt::Display for AccessTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AccessTier {
    type Err = String;

    /// The tier named exactly by `name` (`logprobs`); otherwise a message listing the tiers.
    fn from_str(name: &str) -> Result<AccessTier, String> {
        AccessTier::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = AccessTier::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown access tier {name:?}: the tiers are {}",
                    names.join(", ")
                )
            })
    }
}

/// What an access grant authorizes: one person of one organization using one checkpoint of
/// one registered model, at one tier, within quotas and a rate, for a validity window.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccessGrantClaims {
    /// Issuer: the authority that signed the grant, as its base URL or name. Verifiers use
    /// this authority's JWKS to check the signature.
    pub iss: String,
    /// JWT id: the grant's own id, unique per authority. The status list and the
    /// transparency log refer to the grant by it.
    pub jti: String,
    /// Issued at: when the authority signed the grant (unix seconds).
    pub iat: i64,
    /// Not before: the grant allows nothing before this time (unix seconds).
    pub nbf: i64,
    /// Expiry: the grant allows nothing at or after this time (unix seconds). Later than
    /// `nbf`, by at most [`MAX_GRANT_VALIDITY_SECONDS`].
    pub exp: i64,
    /// runpermit claim-set version: [`ACCESS_CLAIMS_VERSION`] (1).
    pub rpv: u32,
    /// Who may use the access: the organization that answers for it, and the one person in
    /// it the grant is for.
    pub grantee: Grantee,
    /// The model's developer: the organization id (at the authority) that registered the
    /// model and runs the interface the access goes through. Never the grantee's
    /// organization: a developer needs no grant to its own model.
    pub developer: String,
    /// The model and the exact checkpoint the grant is for. An enforcement point admits a
    /// request only for this checkpoint.
    pub model: GrantedModel,
    /// How deep the access goes; a grant allows its tier and every shallower one.
    pub tier: AccessTier,
    /// The most the grantee may use over the grant's whole validity. A quota left out is no
    /// limit on that measure; a grant above `api_sampling` sets at least one.
    pub quotas: Quotas,
    /// How fast the grantee may send requests (the enforcement point's rate limit).
    pub rate: Rate,
    /// What the access is for, in words, as the grantee stated it and the authority approved
    /// it (for an evaluation grant, the evaluation). At most 4,000 characters.
    pub purpose: String,
    /// The SHA-256 digest of the research plan the grant was decided on, as `sha256:` and 64
    /// lowercase hex digits.
    pub research_plan_digest: String,
    /// The SHA-256 digest of the access agreement the grantee accepted (its terms, including
    /// the duties below), as `sha256:` and 64 lowercase hex digits.
    pub agreement_digest: String,
    /// What the grantee has undertaken to do while it holds the grant.
    pub duties: Duties,
    /// Why the grant exists: an application decided by the authority, or a pre-deployment
    /// evaluation the policy grants automatically at a milestone.
    pub origin: GrantOrigin,
}

/// Who a grant is for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grantee {
    /// The grantee's organization id at the authority; it answers for the access.
    pub org_id: String,
    /// The member id (at the authority) of the one person the grant is for.
    pub member_id: String,
    /// The organization's name, for people reading the token.
    pub name: String,
}

/// The checkpoint a grant is for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GrantedModel {
    /// The model's id in the authority's model registry.
    pub model_id: String,
    /// The model's name as registered, for people reading the token.
    pub name: String,
    /// The SHA-256 digest of the checkpoint as registered, `sha256:` and 64 lowercase hex
    /// digits.
    pub checkpoint_digest: String,
}

/// The most a grantee may use over a grant's validity; each quota is optional, and one left
/// out (absent from the JSON) sets no limit on its measure. A grant at a tier above
/// `api_sampling` sets at least one. The enforcement point refuses a request once any quota
/// set is used up.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Tokens, input and output together, as the upstream's usage fields count them; within
    /// [`GRANT_TOKENS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Requests admitted; within [`GRANT_REQUESTS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Accelerator-hours of the developer's compute (fine-tuning jobs, activation runs);
    /// within [`GRANT_ACCELERATOR_HOURS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerator_hours: Option<f64>,
}

impl Quotas {
    /// Whether no quota is set.
    pub fn is_unlimited(&self) -> bool {
        self.tokens.is_none() && self.requests.is_none() && self.accelerator_hours.is_none()
    }
}

/// A request rate as a generic cell rate (GCRA, equivalently a token bucket): on average at
/// most `count` requests per `period_seconds`, with up to `burst` at once. The enforcement
/// point admits a request when the bucket holds a token; the bucket holds at most `burst`
/// tokens and refills one every `period_seconds / count` seconds (GCRA's emission interval
/// T = period / count and tolerance τ = (burst − 1)·T).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests that may arrive at once, within [`RATE_BURST`].
    pub burst: u64,
    /// Requests per period on average, within [`RATE_COUNT`].
    pub count: u64,
    /// The period in seconds, within [`RATE_PERIOD_SECONDS`] (1 second to 1 day).
    pub period_seconds: u64,
}

/// What a grantee undertakes while it holds a grant (the access agreement, whose digest the
/// grant carries, states them in full).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Duties {
    /// Usage under the grant is reported to the authority at least this often, in seconds
    /// (by the enforcement point's signed access-usage reports); within
    /// [`USAGE_REPORT_INTERVAL_SECONDS`].
    pub usage_report_interval_seconds: u64,
    /// Days the developer has to review a publication that draws on the access before it is
    /// published (0: no review); within [`PUBLICATION_REVIEW_DAYS`].
    pub publication_review_days: u64,
    /// Hours within which the grantee reports an incident (a capability of concern found, a
    /// leak of outputs or weights) to the authority and the developer; within
    /// [`INCIDENT_REPORT_HOURS`].
    pub incident_report_hours: u64,
}

/// Why a grant exists. In JSON, an object tagged by `kind`:
/// `{"kind": "application", "application_id": "…"}` or
/// `{"kind": "evaluation", "milestone_id": "…"}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum GrantOrigin {
    /// Granted on an access application, decided as the policy requires for the tier.
    Application {
        /// The access application's id at the authority.
        application_id: String,
    },
    /// Granted automatically for a pre-deployment evaluation, when a milestone report was
    /// submitted for the checkpoint: the policy names the accredited evaluators and the
    /// evaluation window.
    Evaluation {
        /// The milestone report's id at the authority.
        milestone_id: String,
    },
}

impl AccessGrantClaims {
    /// Whether the grant allows `tier` (its own tier or a shallower one).
    pub fn allows(&self, tier: AccessTier) -> bool {
        self.tier.includes(tier)
    }
}

/// What the authority intends to sign: an [`AccessGrantClaims`] without `iat` and `rpv`,
/// which [`check_access_grant`] sets. Each field means what the claim of the same name
/// means.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccessGrantRequest {
    /// See [`AccessGrantClaims::iss`].
    pub iss: String,
    /// See [`AccessGrantClaims::jti`].
    pub jti: String,
    /// See [`AccessGrantClaims::nbf`].
    pub nbf: i64,
    /// See [`AccessGrantClaims::exp`].
    pub exp: i64,
    /// See [`AccessGrantClaims::grantee`].
    pub grantee: Grantee,
    /// See [`AccessGrantClaims::developer`].
    pub developer: String,
    /// See [`AccessGrantClaims::model`].
    pub model: GrantedModel,
    /// See [`AccessGrantClaims::tier`].
    pub tier: AccessTier,
    /// See [`AccessGrantClaims::quotas`].
    pub quotas: Quotas,
    /// See [`AccessGrantClaims::rate`].
    pub rate: Rate,
    /// See [`AccessGrantClaims::purpose`].
    pub purpose: String,
    /// See [`AccessGrantClaims::research_plan_digest`].
    pub research_plan_digest: String,
    /// See [`AccessGrantClaims::agreement_digest`].
    pub agreement_digest: String,
    /// See [`AccessGrantClaims::duties`].
    pub duties: Duties,
    /// See [`AccessGrantClaims::origin`].
    pub origin: GrantOrigin,
}

/// A grant that passed [`check_access_grant`]. It cannot be built any other way, cloned or
/// deserialized: the only route to a signature is `check_access_grant` then
/// [`sign_access_grant`].
#[derive(Debug, PartialEq)]
pub struct CheckedAccessGrant {
    claims: AccessGrantClaims,
}

impl CheckedAccessGrant {
    /// The claims that [`sign_access_grant`] will sign, for persisting the intent before
    /// signing.
    pub fn claims(&self) -> &AccessGrantClaims {
        &self.claims
    }
}

/// A signed access grant: the compact JWS, the claims it carries, and the signing key's id.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedAccessGrant {
    /// The compact JWS (`header.payload.signature`).
    pub token: String,
    /// The claims in the token.
    pub claims: AccessGrantClaims,
    /// The `kid` of the key that signed it.
    pub kid: String,
}

/// Checks `request` at time `now` (unix seconds) and, if it is sound, returns it as claims
/// with `iat = now` and `rpv` = [`ACCESS_CLAIMS_VERSION`]. Otherwise returns every problem
/// at once, each naming its claim path (`grantee.member_id`, `quotas.tokens`,
/// `origin.milestone_id`):
///
/// - ids (`jti`, `grantee.org_id`, `grantee.member_id`, `developer`, `model.model_id`, the
///   origin's id) are identifiers (runpermit-compute's `text::id_problem`); `iss` and the
///   names are one-line text of at most 200 characters, `purpose` text of at most 4,000;
/// - `developer` is not `grantee.org_id`;
/// - digests are `sha256:` and 64 lowercase hex digits;
/// - `nbf < exp`, `exp − nbf` ≤ [`MAX_GRANT_VALIDITY_SECONDS`], and `exp > now`;
/// - each quota set lies in its range ([`GRANT_TOKENS`], [`GRANT_REQUESTS`],
///   [`GRANT_ACCELERATOR_HOURS`]), and a tier above `api_sampling` sets at least one;
/// - the rate and the duties lie in their ranges ([`RATE_BURST`], [`RATE_COUNT`],
///   [`RATE_PERIOD_SECONDS`], [`USAGE_REPORT_INTERVAL_SECONDS`],
///   [`PUBLICATION_REVIEW_DAYS`], [`INCIDENT_REPORT_HOURS`]).
pub fn check_access_grant(
    request: AccessGrantRequest,
    now: i64,
) -> Result<CheckedAccessGrant, Vec<FieldError>> {
    let mut errors = Errors::default();
    errors.text("iss", &request.iss, text::MAX_NAME_CHARS, false);
    errors.id("jti", &request.jti);
    errors.id("grantee.org_id", &request.grantee.org_id);
    errors.id("grantee.member_id", &request.grantee.member_id);
    errors.text(
        "grantee.name",
        &request.grantee.name,
        text::MAX_NAME_CHARS,
        false,
    );
    errors.id("developer", &request.developer);
    if !request.developer.is_empty() && request.developer == request.grantee.org_id {
        errors.push(
            "grantee.org_id",
            format!(
                "{:?} is the model's developer: a developer needs no grant to its own model",
                request.developer
            ),
        );
    }
    errors.id("model.model_id", &request.model.model_id);
    errors.text(
        "model.name",
        &request.model.name,
        text::MAX_NAME_CHARS,
        false,
    );
    errors.digest("model.checkpoint_digest", &request.model.checkpoint_digest);
    check_window_request(&mut errors, request.nbf, request.exp, now);
    check_quotas(&mut errors, &request.quotas, request.tier);
    let rate = request.rate;
    errors.count("rate.burst", rate.burst, &RATE_BURST);
    errors.count("rate.count", rate.count, &RATE_COUNT);
    errors.count(
        "rate.period_seconds",
        rate.period_seconds,
        &RATE_PERIOD_SECONDS,
    );
    errors.text("purpose", &request.purpose, text::MAX_REASON_CHARS, true);
    errors.digest("research_plan_digest", &request.research_plan_digest);
    errors.digest("agreement_digest", &request.agreement_digest);
    let duties = request.duties;
    errors.count(
        "duties.usage_report_interval_seconds",
        duties.usage_report_interval_seconds,
        &USAGE_REPORT_INTERVAL_SECONDS,
    );
    errors.count(
        "duties.publication_review_days",
        duties.publication_review_days,
        &PUBLICATION_REVIEW_DAYS,
    );
    errors.count(
        "duties.incident_report_hours",
        duties.incident_report_hours,
        &INCIDENT_REPORT_HOURS,
    );
    match &request.origin {
        GrantOrigin::Application { application_id } => {
            errors.id("origin.application_id", application_id);
        }
        GrantOrigin::Evaluation { milestone_id } => {
            errors.id("origin.milestone_id", milestone_id);
        }
    }
    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    let AccessGrantRequest {
        iss,
        jti,
        nbf,
        exp,
        grantee,
        developer,
        model,
        tier,
        quotas,
        rate,
        purpose,
        research_plan_digest,
        agreement_digest,
        duties,
        origin,
    } = request;
    Ok(CheckedAccessGrant {
        claims: AccessGrantClaims {
            iss,
            jti,
            iat: now,
            nbf,
            exp,
            rpv: ACCESS_CLAIMS_VERSION,
            grantee,
            developer,
            model,
            tier,
            quotas,
            rate,
            purpose,
            research_plan_digest,
            agreement_digest,
            duties,
            origin,
        },
    })
}

/// Signs a checked grant with `key` (header `typ` [`ACCESS_TYP`]).
pub fn sign_access_grant(checked: CheckedAccessGrant, key: &SigningKey) -> SignedAccessGrant {
    SignedAccessGrant {
        token: sign_jws(ACCESS_TYP, &checked.claims, key),
        claims: checked.claims,
        kid: key.kid().to_owned(),
    }
}

/// Verifies a grant token against the authority's `jwks` at time `now` (unix seconds),
/// allowing `leeway_seconds` of clock difference (negative counts as 0).
///
/// Checks, in order: the JWS (structure, `alg`, `typ` = [`ACCESS_TYP`], `kid` in `jwks`,
/// signature), `rpv` (1), the claim set's fields (unknown ones refused), then time: refused
/// when `now + leeway < nbf`, when `now + leeway < iat`, or when `now - leeway >= exp`.
/// These are PyJWT's rules, as for permits. Whether the grant is in the log and in good
/// standing on the status list is the caller's business.
pub fn verify_access_grant(
    token: &str,
    jwks: &Jwks,
    now: i64,
    leeway_seconds: i64,
) -> Result<AccessGrantClaims, VerifyError> {
    let claims = verify_access_grant_signature(token, jwks)?;
    check_access_grant_validity(&claims, now, leeway_seconds)?;
    Ok(claims)
}

/// The part of [`verify_access_grant`] that does not depend on time: the JWS, `rpv` and the
/// claim set's fields. Its result for a given token and JWKS never changes, so an
/// enforcement point may cache it; it must still call [`check_access_grant_validity`] at
/// every decision.
pub fn verify_access_grant_signature(
    token: &str,
    jwks: &Jwks,
) -> Result<AccessGrantClaims, VerifyError> {
    let (_, payload) = verify_jws::<Value>(token, ACCESS_TYP, jwks)?;
    read_versioned(payload, &[ACCESS_CLAIMS_VERSION])
}

/// The time part of [`verify_access_grant`]: refused when `now + leeway < nbf`, when
/// `now + leeway < iat`, or when `now - leeway >= exp` (negative leeway counts as 0).
pub fn check_access_grant_validity(
    claims: &AccessGrantClaims,
    now: i64,
    leeway_seconds: i64,
) -> Result<(), VerifyError> {
    check_window(
        TokenKind::AccessGrant,
        (claims.iat, claims.nbf, claims.exp),
        now,
        leeway_seconds,
    )
}

fn check_window_request(errors: &mut Errors, nbf: i64, exp: i64, now: i64) {
    // i128: the difference of two arbitrary i64 cannot overflow there.
    let validity = i128::from(exp) - i128::from(nbf);
    if validity <= 0 {
        errors.push(
            "exp",
            format!(
                "must be later than nbf ({}, unix {nbf}); got {} (unix {exp})",
                utc(nbf),
                utc(exp),
            ),
        );
    } else if validity > i128::from(MAX_GRANT_VALIDITY_SECONDS) {
        errors.push(
            "exp",
            format!(
                "must be at most {} days after nbf; got {} days (grant access again when it ends)",
                MAX_GRANT_VALIDITY_SECONDS / 86_400,
                validity / 86_400
            ),
        );
    }
    if exp <= now {
        errors.push(
            "exp",
            format!(
                "must be in the future (now is {}, unix {now}); got {} (unix {exp})",
                utc(now),
                utc(exp),
            ),
        );
    }
}

fn check_quotas(errors: &mut Errors, quotas: &Quotas, tier: AccessTier) {
    if let Some(tokens) = quotas.tokens {
        errors.count("quotas.tokens", tokens, &GRANT_TOKENS);
    }
    if let Some(requests) = quotas.requests {
        errors.count("quotas.requests", requests, &GRANT_REQUESTS);
    }
    if let Some(hours) = quotas.accelerator_hours
        && let Err(problem) = GRANT_ACCELERATOR_HOURS.check(hours)
    {
        errors.push("quotas.accelerator_hours", problem);
    }
    if tier > AccessTier::ApiSampling && quotas.is_unlimited() {
        errors.push(
            "quotas",
            format!(
                "a {tier} grant must set at least one quota (tokens, requests or \
                 accelerator_hours); only api_sampling may leave all three unlimited"
            ),
        );
    }
}

/// Whether `digest` is `sha256:` and 64 lowercase hex digits.
fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: &str, message: String) {
        self.0.push(FieldError::new(field, message));
    }

    fn id(&mut self, field: &str, value: &str) {
        if let Some(problem) = text::id_problem(value) {
            self.push(field, problem);
        }
    }

    fn text(&mut self, field: &str, value: &str, max: usize, multiline: bool) {
        if let Some(problem) = text::text_problem(value, max, multiline) {
            self.push(field, problem);
        }
    }

    fn digest(&mut self, field: &str, value: &str) {
        if !is_sha256_digest(value) {
            let shown: String = value.chars().take(80).collect();
            self.push(
                field,
                format!("must be sha256: and 64 lowercase hex digits (got {shown:?})"),
            );
        }
    }

    fn count(&mut self, field: &str, value: u64, range: &Plausible) {
        if let Err(problem) = range.check_count(value) {
            self.push(field, problem);
        }
    }
}

#[cfg(test)]
mod tests;
