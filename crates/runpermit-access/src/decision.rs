//! What the check decides: a [`Code`] (stable, snake_case in JSON), a message naming what to
//! do, and what the gateway needs to act on it.

use runpermit_permit::AccessGrantClaims;
use serde::Serialize;

/// Why a request is allowed or refused. Stable: scripts match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Every check passed.
    Allowed,
    /// No grant was presented.
    GrantMissing,
    /// The token is not a grant: not a JWS, another `typ` (a permit, say), or claims of the
    /// wrong shape.
    GrantMalformed,
    /// Signed by a key the gateway does not trust.
    GrantUnknownKey,
    /// The signature does not verify: altered or forged.
    GrantBadSignature,
    /// Before the grant's `nbf` (or `iat`), beyond the tolerated clock skew.
    GrantNotYetValid,
    /// At or after the grant's `exp`.
    GrantExpired,
    /// The grant is for another model or checkpoint, or from another developer, than this
    /// gateway serves.
    GrantWrongModel,
    /// The request asks for a model this gateway does not serve.
    ModelNotServed,
    /// The request needs a tier this proxy does not serve (`finetune`, `activations`,
    /// `weights`).
    TierNotServed,
    /// The request needs a deeper tier than the grant's (`logprobs` on an `api_sampling`
    /// grant).
    TierTooLow,
    /// No log proof was presented.
    ProofMissing,
    /// The proof cannot be read.
    ProofMalformed,
    /// The proof is from another log.
    ProofWrongLog,
    /// The proof does not verify.
    ProofInvalid,
    /// The proof is for another entry than this grant's `access_granted` entry.
    ProofWrongGrant,
    /// The gateway holds no verified status list yet.
    StatusListMissing,
    /// The held status list is past its expiry and grace.
    StatusListStale,
    /// The status list shows the grant suspended.
    GrantSuspended,
    /// The status list shows the grant revoked (or otherwise not in good standing).
    GrantRevoked,
    /// A quota of the grant (requests or tokens) is used up.
    QuotaExhausted,
    /// The grant's rate is exceeded.
    RateLimited,
    /// The gateway cannot record usage durably right now (its ledger cannot be written), so
    /// it admits nothing: a request it could not count would escape the quota.
    LedgerUnavailable,
}

impl Code {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Allowed => "allowed",
            Code::GrantMissing => "grant_missing",
            Code::GrantMalformed => "grant_malformed",
            Code::GrantUnknownKey => "grant_unknown_key",
            Code::GrantBadSignature => "grant_bad_signature",
            Code::GrantNotYetValid => "grant_not_yet_valid",
            Code::GrantExpired => "grant_expired",
            Code::GrantWrongModel => "grant_wrong_model",
            Code::ModelNotServed => "model_not_served",
            Code::TierNotServed => "tier_not_served",
            Code::TierTooLow => "tier_too_low",
            Code::ProofMissing => "proof_missing",
            Code::ProofMalformed => "proof_malformed",
            Code::ProofWrongLog => "proof_wrong_log",
            Code::ProofInvalid => "proof_invalid",
            Code::ProofWrongGrant => "proof_wrong_grant",
            Code::StatusListMissing => "status_list_missing",
            Code::StatusListStale => "status_list_stale",
            Code::GrantSuspended => "grant_suspended",
            Code::GrantRevoked => "grant_revoked",
            Code::QuotaExhausted => "quota_exhausted",
            Code::RateLimited => "rate_limited",
            Code::LedgerUnavailable => "ledger_unavailable",
        }
    }

    /// Whether the decision was reached after the grant's log proof verified (the grant is
    /// real, logged, and for this gateway's model): standing, quota, rate, or allowed.
    pub fn proof_checked(self) -> bool {
        matches!(
            self,
            Code::Allowed
                | Code::StatusListMissing
                | Code::StatusListStale
                | Code::GrantSuspended
                | Code::GrantRevoked
                | Code::QuotaExhausted
                | Code::RateLimited
        )
    }

    /// The HTTP status the gateway answers with: 200 allowed; 401 no or invalid grant; 403
    /// model, tier, proof, standing; 503 no fresh status list; 429 quota or rate.
    pub fn http_status(self) -> u16 {
        match self {
            Code::Allowed => 200,
            Code::GrantMissing
            | Code::GrantMalformed
            | Code::GrantUnknownKey
            | Code::GrantBadSignature
            | Code::GrantNotYetValid
            | Code::GrantExpired => 401,
            Code::GrantWrongModel
            | Code::ModelNotServed
            | Code::TierNotServed
            | Code::TierTooLow
            | Code::ProofMissing
            | Code::ProofMalformed
            | Code::ProofWrongLog
            | Code::ProofInvalid
            | Code::ProofWrongGrant
            | Code::GrantSuspended
            | Code::GrantRevoked => 403,
            Code::StatusListMissing | Code::StatusListStale | Code::LedgerUnavailable => 503,
            Code::QuotaExhausted | Code::RateLimited => 429,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision on one request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessDecision {
    /// Allowed, or why not.
    pub code: Code,
    /// What happened and what to do, in words.
    pub message: String,
    /// The grant's id, once its signature verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// For `quota_exhausted` and `rate_limited`: when (unix seconds) to try again. For a rate,
    /// when the next request is admitted; for a quota, the grant's end (a quota covers the
    /// grant's whole validity and never refills: only a new grant serves more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<i64>,
    /// The grant's claims, once its signature verified.
    #[serde(skip)]
    pub claims: Option<AccessGrantClaims>,
    /// On `allowed`: the grant's rate state after admitting this request (GCRA theoretical
    /// arrival time, unix nanoseconds), which the caller stores.
    #[serde(skip)]
    pub next_tat_ns: Option<i64>,
}

impl AccessDecision {
    pub(crate) fn new(code: Code, message: String) -> AccessDecision {
        AccessDecision {
            code,
            message,
            grant_id: None,
            retry_at: None,
            claims: None,
            next_tat_ns: None,
        }
    }

    pub(crate) fn about(mut self, claims: &AccessGrantClaims) -> AccessDecision {
        self.grant_id = Some(claims.jti.clone());
        self.claims = Some(claims.clone());
        self
    }

    /// Whether the request is allowed.
    pub fn allowed(&self) -> bool {
        self.code == Code::Allowed
    }
}
