//! Every signed token runpermit defines, as JOSE: permits, exemption receipts, access
//! grants, the authority's status list and providers' usage reports.
//!
//! A permit is a compact JWS (RFC 7515) signed with EdDSA over Ed25519 (RFC 8037), with
//! the signing key named by its RFC 7638 thumbprint in `kid`, so that any standard JOSE
//! library can verify it with the authority's published [`Jwks`].
//!
//! - [`SigningKey`], [`PublicKey`], [`Jwk`], [`Jwks`]: keys, their ids and the published set.
//! - [`sign_jws`], [`verify_jws`]: the generic compact JWS this crate uses.
//! - [`PermitClaims`]: the permit claim set, version 2 (version 1 still read), documented
//!   field by field.
//! - [`check`] → [`CheckedPermit`] → [`sign`] → [`SignedPermit`]: "checked, then signed",
//!   enforced by types; [`verify_permit`] for verifiers.
//! - [`ExemptionClaims`], [`sign_exemption`], [`verify_exemption`]: receipts for runs below
//!   every threshold.
//! - [`StatusListClaims`], [`sign_status_list`], [`verify_status_list`]: the authority's
//!   signed, versioned, short-lived list of permits not in good standing (`typ`
//!   `runpermit-status+jwt`), documented field by field.
//! - [`UsageReportClaims`], [`sign_usage_report`], [`verify_usage_report`]: the signed usage
//!   report (`typ` `runpermit-usage+jwt`) a provider sends the authority, carrying a
//!   [`Metered`] figure and its [`MeterMethod`]; unsound claims are never signed.
//! - [`AccessGrantClaims`]: the access grant (`typ` `runpermit-access+jwt`, version 1), one
//!   person's access to one model checkpoint at an [`AccessTier`], within quotas and a rate;
//!   [`check_access_grant`] → [`CheckedAccessGrant`] → [`sign_access_grant`], and
//!   [`verify_access_grant`] with the permit's time rules.
//! - [`AccessUsageClaims`], [`sign_access_usage`], [`verify_access_usage`]: the signed
//!   access-usage report (`typ` `runpermit-access-usage+jwt`) an access gateway sends the
//!   authority: requests and tokens served under one grant over one interval.
//! - [`LogStanding`]: which permits the public log says are not in good standing (revoked,
//!   completed, paused, on milestone hold), folded entry by entry; [`check_status_list`]:
//!   where a status list disagrees with it; [`reconcile`]: a list being built made to agree.
//!   The rule that ties the status list to the log, so it lives beside the list's format.
//!
//! Pure: no file IO, no clock. The current time is always an argument (unix seconds); the
//! only outside input is the operating system's random generator in
//! [`SigningKey::generate`].

mod access;
mod access_usage;
mod check;
mod claims;
mod error;
mod jwks;
mod jws;
mod keys;
mod receipt;
mod report;
mod standing;
mod status;
mod verify;

pub use access::{
    ACCESS_CLAIMS_VERSION, ACCESS_TYP, AccessGrantClaims, AccessGrantRequest, AccessTier,
    CheckedAccessGrant, Duties, GRANT_ACCELERATOR_HOURS, GRANT_REQUESTS, GRANT_TOKENS, GrantOrigin,
    GrantedModel, Grantee, INCIDENT_REPORT_HOURS, MAX_GRANT_VALIDITY_SECONDS,
    PUBLICATION_REVIEW_DAYS, Quotas, RATE_BURST, RATE_COUNT, RATE_PERIOD_SECONDS, Rate,
    SignedAccessGrant, USAGE_REPORT_INTERVAL_SECONDS, check_access_grant,
    check_access_grant_validity, sign_access_grant, verify_access_grant,
    verify_access_grant_signature,
};
pub use access_usage::{
    ACCESS_USAGE_MAX_COUNT, ACCESS_USAGE_TYP, AccessUsageClaims, sign_access_usage,
    verify_access_usage,
};
pub use check::{CheckedPermit, PermitRequest, SignedPermit, check, sign};
pub use claims::{
    Holder, PERMIT_CLAIMS_VERSION, PERMIT_CLAIMS_VERSIONS_READ, PERMIT_TYP, PermitClaims,
    ProviderScope, Tranche,
};
pub use error::{KeyError, TokenKind, VerifyError, utc};
pub use jwks::{Jwk, Jwks};
pub use jws::{JwsHeader, MAX_TOKEN_BYTES, sign_jws, verify_jws};
pub use keys::{ALG_ED25519, ALG_EDDSA, PublicKey, SigningKey};
pub use receipt::{
    EXEMPTION_CLAIMS_VERSION, EXEMPTION_TYP, ExemptionClaims, sign_exemption, verify_exemption,
};
pub use report::{
    MeterMethod, Metered, ReportError, USAGE_TYP, UsageReportClaims, sign_usage_report,
    verify_usage_report,
};
pub use standing::{
    Correction, Ending, Hold, LogRef, LogStanding, LoggedPermit, SETTLE_SECONDS, StatusDrift,
    Verdict, check_status_list, reconcile,
};
pub use status::{
    PermitStatus, STATUS_TYP, StatusEntry, StatusListClaims, StatusListError, sign_status_list,
    verify_status_list,
};
pub use verify::{check_permit_validity, verify_permit, verify_permit_signature};
