//! JWK and JWKS (RFC 7517) for Ed25519 public keys (RFC 8037): what an authority publishes
//! so that anyone can verify its permits.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::KeyError;
use crate::keys::{ALG_ED25519, ALG_EDDSA, PublicKey};

/// One Ed25519 public key as a JWK (RFC 8037 §2).
///
/// Members other than these are ignored when reading, as RFC 7517 §4 asks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Jwk {
    /// Key type: always `OKP`.
    pub kty: String,
    /// Curve: always `Ed25519`.
    pub crv: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    /// The RFC 7638 SHA-256 thumbprint of `{crv, kty, x}`, base64url.
    pub kid: String,
    /// Intended use: `sig` when present.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Algorithm: `EdDSA` (or RFC 9864's `Ed25519`) when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl PublicKey {
    /// The key a JWK describes, after checking every member: `kty: OKP`, `crv: Ed25519`,
    /// `alg` (if any) `EdDSA` or `Ed25519`, `use` (if any) `sig`, `x` 32 bytes of a usable
    /// point, and `kid` its RFC 7638 thumbprint.
    pub fn from_jwk(jwk: &Jwk) -> Result<PublicKey, KeyError> {
        let unsupported = |reason: String| KeyError::Unsupported {
            kid: jwk.kid.clone(),
            reason,
        };
        if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
            return Err(unsupported(format!(
                "only kty \"OKP\" with crv \"Ed25519\" is supported (got kty {:?}, crv {:?})",
                jwk.kty, jwk.crv
            )));
        }
        if let Some(alg) = jwk
            .alg
            .as_deref()
            .filter(|a| ![ALG_EDDSA, ALG_ED25519].contains(a))
        {
            return Err(unsupported(format!(
                "alg must be \"{ALG_EDDSA}\" or \"{ALG_ED25519}\" (got {alg:?})"
            )));
        }
        if let Some(use_) = jwk.use_.as_deref().filter(|u| *u != "sig") {
            return Err(unsupported(format!("use must be \"sig\" (got {use_:?})")));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(&jwk.x)
            .map_err(|e| unsupported(format!("x must be base64url without padding: {e}")))?;
        let key = PublicKey::from_bytes(&raw)?;
        if key.kid() != jwk.kid {
            return Err(KeyError::KidMismatch {
                kid: jwk.kid.clone(),
                thumbprint: key.kid().to_owned(),
            });
        }
        Ok(key)
    }
}

/// A JWK Set: the authority's published verification keys, old and new during a rotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Jwks {
    /// The keys, each with a distinct `kid`.
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// A set holding `keys` in order; a key given twice appears once.
    pub fn from_keys(keys: &[PublicKey]) -> Jwks {
        let mut seen = HashSet::new();
        Jwks {
            keys: keys
                .iter()
                .filter(|k| seen.insert(k.kid()))
                .map(PublicKey::to_jwk)
                .collect(),
        }
    }

    /// The usable key whose `kid` is `kid`; `None` when there is none (or when the entry
    /// under that kid fails [`PublicKey::from_jwk`], which [`from_json`](Self::from_json)
    /// already refuses).
    pub fn find(&self, kid: &str) -> Option<PublicKey> {
        self.keys
            .iter()
            .find(|jwk| jwk.kid == kid)
            .and_then(|jwk| PublicKey::from_jwk(jwk).ok())
    }

    /// Reads and checks a JWKS document: every key must pass [`PublicKey::from_jwk`], no
    /// kid may repeat, and no key may carry private material (`d`).
    pub fn from_json(text: &str) -> Result<Jwks, KeyError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| KeyError::Json(e.to_string()))?;
        let keys = value.get("keys").and_then(|k| k.as_array());
        if let Some(leaked) = keys.into_iter().flatten().find(|k| k.get("d").is_some()) {
            let kid = leaked
                .get("kid")
                .and_then(|k| k.as_str())
                .unwrap_or_default();
            return Err(KeyError::PrivateKeyInJwks(kid.to_owned()));
        }
        let jwks: Jwks =
            serde_json::from_value(value).map_err(|e| KeyError::Json(e.to_string()))?;
        let mut seen = HashSet::new();
        for jwk in &jwks.keys {
            PublicKey::from_jwk(jwk)?;
            if !seen.insert(jwk.kid.as_str()) {
                return Err(KeyError::DuplicateKid(jwk.kid.clone()));
            }
        }
        Ok(jwks)
    }

    /// The JWKS as compact JSON, ready to publish.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a JWKS of strings always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::keys::tests::{RFC8037_X, rfc8037_key};

    #[test]
    fn jwk_shape_is_rfc8037() {
        let jwk = rfc8037_key().public().to_jwk();
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": RFC8037_X,
                "kid": "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
                "use": "sig", "alg": "EdDSA"
            })
        );
    }

    #[test]
    fn json_round_trip_and_find() {
        let (a, b) = (SigningKey::generate(), SigningKey::generate());
        let jwks = Jwks::from_keys(&[a.public(), b.public(), a.public()]);
        assert_eq!(jwks.keys.len(), 2);
        let back = Jwks::from_json(&jwks.to_json()).unwrap();
        assert_eq!(back, jwks);
        assert_eq!(back.find(a.kid()), Some(a.public()));
        assert_eq!(back.find(b.kid()), Some(b.public()));
        assert_eq!(back.find("nope"), None);
    }

    #[test]
    fn minimal_jwk_from_the_rfc_is_accepted() {
        let text = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}",
                "kid":"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k","x5t":"ignored"}}]}}"#
        );
        let jwks = Jwks::from_json(&text).unwrap();
        assert_eq!(jwks.find(rfc8037_key().kid()), Some(rfc8037_key().public()));
    }

    #[test]
    fn bad_key_sets_are_refused_with_the_reason() {
        let good = rfc8037_key().public().to_jwk();
        let with = |edit: &dyn Fn(&mut Jwk)| {
            let mut jwk = good.clone();
            edit(&mut jwk);
            Jwks::from_json(&Jwks { keys: vec![jwk] }.to_json()).unwrap_err()
        };
        assert!(matches!(
            with(&|j| j.crv = "X25519".into()),
            KeyError::Unsupported { .. }
        ));
        assert!(matches!(
            with(&|j| j.kty = "EC".into()),
            KeyError::Unsupported { .. }
        ));
        assert!(matches!(
            with(&|j| j.alg = Some("HS256".into())),
            KeyError::Unsupported { .. }
        ));
        assert!(matches!(
            with(&|j| j.use_ = Some("enc".into())),
            KeyError::Unsupported { .. }
        ));
        assert!(matches!(
            with(&|j| j.x.push('=')),
            KeyError::Unsupported { .. }
        ));
        assert_eq!(with(&|j| j.x.truncate(40)), KeyError::WrongLength(30));
        assert!(matches!(
            with(&|j| j.kid = "mine".into()),
            KeyError::KidMismatch { .. }
        ));

        let twice = Jwks {
            keys: vec![good.clone(), good.clone()],
        };
        assert!(matches!(
            Jwks::from_json(&twice.to_json()),
            Err(KeyError::DuplicateKid(_))
        ));
        assert!(matches!(Jwks::from_json("[]"), Err(KeyError::Json(_))));
        assert!(matches!(
            Jwks::from_json(r#"{"keys":[{"kty":"OKP"}]}"#),
            Err(KeyError::Json(_))
        ));

        let leaked = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{RFC8037_X}","d":"secret","kid":"k"}}]}}"#
        );
        assert_eq!(
            Jwks::from_json(&leaked),
            Err(KeyError::PrivateKeyInJwks("k".into()))
        );
    }
}
