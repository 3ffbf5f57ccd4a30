//! Exemption receipts: signed statements that a planned run falls below every threshold
//! that would need a permit. Same keys and JWS machinery as permits, another `typ`, no
//! validity window (a receipt records a decision; it does not authorize compute).

use runpermit_compute::Flop;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::claims::Holder;
use crate::error::VerifyError;
use crate::jwks::Jwks;
use crate::jws::{sign_jws, verify_jws};
use crate::keys::SigningKey;
use crate::verify::read_versioned;

/// The header `typ` of an exemption receipt.
pub const EXEMPTION_TYP: &str = "runpermit-exemption+jwt";

/// The claim set version of exemption receipts: the value of their `rpv`.
pub const EXEMPTION_CLAIMS_VERSION: u32 = 1;

/// What an exemption receipt states, version 1: that the authority found the application's
/// run below every threshold under a policy version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExemptionClaims {
    /// Issuer: the authority, as its base URL or name.
    pub iss: String,
    /// The receipt's id, unique per authority.
    pub jti: String,
    /// When the authority signed the receipt (unix seconds).
    pub iat: i64,
    /// Claim-set version; [`EXEMPTION_CLAIMS_VERSION`] (1). Verification refuses others.
    pub rpv: u32,
    /// The application the decision is about.
    pub application_id: String,
    /// The organization that applied.
    pub holder: Holder,
    /// The run's estimated total compute (the high end of the estimate's range).
    pub estimated_flop: Flop,
    /// The version of the policy file the decision was made under.
    pub policy_version: String,
    /// The tier the run fell into (the policy's exempt tier).
    pub tier: String,
    /// Why no permit is needed, in words (for example "3.1e23 FLOP is below every threshold").
    pub reason: String,
}

/// Signs `claims`, exactly as given, as a receipt token (`typ` [`EXEMPTION_TYP`]).
pub fn sign_exemption(claims: &ExemptionClaims, key: &SigningKey) -> String {
    sign_jws(EXEMPTION_TYP, claims, key)
}

/// Verifies a receipt token against the authority's `jwks`: structure, `alg`, `typ`,
/// `kid`, signature and `rpv`. Receipts do not expire, so no time is checked.
pub fn verify_exemption(token: &str, jwks: &Jwks) -> Result<ExemptionClaims, VerifyError> {
    let (_, payload) = verify_jws::<Value>(token, EXEMPTION_TYP, jwks)?;
    read_versioned(payload, &[EXEMPTION_CLAIMS_VERSION])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{NOW, request};
    use crate::check::{check, sign};
    use crate::verify::verify_permit;

    fn receipt() -> ExemptionClaims {
        ExemptionClaims {
            iss: "https://authority.example".into(),
            jti: "receipt-01".into(),
            iat: NOW,
            rpv: EXEMPTION_CLAIMS_VERSION,
            application_id: "app-02".into(),
            holder: Holder {
                org_id: "org-lab".into(),
                name: "Example Lab".into(),
            },
            estimated_flop: Flop::new(3.1e23).unwrap(),
            policy_version: "2026.1".into(),
            tier: "exempt".into(),
            reason: "3.1e23 FLOP is below every threshold".into(),
        }
    }

    #[test]
    fn round_trip() {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let token = sign_exemption(&receipt(), &key);
        assert_eq!(verify_exemption(&token, &jwks), Ok(receipt()));
    }

    #[test]
    fn receipts_and_permits_are_not_interchangeable() {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let receipt_token = sign_exemption(&receipt(), &key);
        let permit_token = sign(check(request(NOW), NOW).unwrap(), &key).token;
        assert!(matches!(
            verify_permit(&receipt_token, &jwks, NOW, 0),
            Err(VerifyError::WrongType { .. })
        ));
        assert!(matches!(
            verify_exemption(&permit_token, &jwks),
            Err(VerifyError::WrongType { .. })
        ));
    }

    #[test]
    fn unknown_version_is_refused() {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let claims = ExemptionClaims {
            rpv: 9,
            ..receipt()
        };
        let err = verify_exemption(&sign_exemption(&claims, &key), &jwks).unwrap_err();
        assert!(matches!(err, VerifyError::Claims(_)), "{err}");
    }
}
