//! Permits and exemption receipts as signed JOSE tokens.
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
//!
//! Pure: no file IO, no clock. The current time is always an argument (unix seconds); the
//! only outside input is the operating system's random generator in
//! [`SigningKey::generate`].

mod check;
mod claims;
mod error;
mod jwks;
mod jws;
mod keys;
mod receipt;
mod verify;

pub use check::{CheckedPermit, PermitRequest, SignedPermit, check, sign};
pub use claims::{
    Holder, PERMIT_CLAIMS_VERSION, PERMIT_CLAIMS_VERSIONS_READ, PERMIT_TYP, PermitClaims,
    ProviderScope, Tranche,
};
pub use error::{KeyError, VerifyError, utc};
pub use jwks::{Jwk, Jwks};
pub use jws::{JwsHeader, MAX_TOKEN_BYTES, sign_jws, verify_jws};
pub use keys::{ALG_ED25519, ALG_EDDSA, PublicKey, SigningKey};
pub use receipt::{
    EXEMPTION_CLAIMS_VERSION, EXEMPTION_TYP, ExemptionClaims, sign_exemption, verify_exemption,
};
pub use verify::{check_permit_validity, verify_permit, verify_permit_signature};
