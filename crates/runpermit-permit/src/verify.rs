//! Verifying a permit: signature and type (through [`verify_jws`]), claim-set version,
//! and validity window at a given time.

use serde_json::Value;

use crate::claims::{PERMIT_CLAIMS_VERSIONS_READ, PERMIT_TYP, PermitClaims};
use crate::error::{TokenKind, VerifyError};
use crate::jwks::Jwks;
use crate::jws::verify_jws;

/// Verifies a permit token against the authority's `jwks` at time `now` (unix seconds),
/// allowing `leeway_seconds` of clock difference (negative counts as 0).
///
/// Checks, in order: the JWS (structure, `alg`, `typ` = [`PERMIT_TYP`], `kid` in `jwks`,
/// signature), `rpv` (3; 2 for permits signed before `accounting` existed, 1 before
/// `evaluators` existed), the claim
/// set's fields, then time: refused when
/// `now + leeway < nbf`, when `now + leeway < iat`, or when `now - leeway >= exp`. These are
/// PyJWT's rules, so that the gate and an independent verifier agree.
pub fn verify_permit(
    token: &str,
    jwks: &Jwks,
    now: i64,
    leeway_seconds: i64,
) -> Result<PermitClaims, VerifyError> {
    let claims = verify_permit_signature(token, jwks)?;
    check_permit_validity(&claims, now, leeway_seconds)?;
    Ok(claims)
}

/// The part of [`verify_permit`] that does not depend on time: the JWS (structure, `alg`,
/// `typ`, `kid`, signature), `rpv` and the claim set's fields. Its result for a given token
/// and JWKS never changes, so a gate may cache it; it must still call
/// [`check_permit_validity`] at every decision.
pub fn verify_permit_signature(token: &str, jwks: &Jwks) -> Result<PermitClaims, VerifyError> {
    let (_, payload) = verify_jws::<Value>(token, PERMIT_TYP, jwks)?;
    read_permit(payload)
}

/// Reads a permit's payload in any version this crate reads. Version 1 has no `evaluators`
/// (it reads as `None`: nobody) and versions 2 and 3 must have it; versions 1 and 2 have no
/// `accounting` and version 3 must have it, so that each version's fields are exactly its
/// own and claims read are written back as they were.
fn read_permit(payload: Value) -> Result<PermitClaims, VerifyError> {
    let rpv = payload.get("rpv").and_then(Value::as_u64);
    let has_evaluators = payload.get("evaluators").is_some();
    let has_accounting = payload.get("accounting").is_some();
    match rpv {
        Some(1 | 2) if has_accounting => Err(VerifyError::Claims(format!(
            "unknown field `accounting`: claim-set version {} has none (version 3 added it)",
            rpv.unwrap_or_default()
        ))),
        Some(3) if !has_accounting => Err(VerifyError::Claims(
            "missing field `accounting` (claim-set version 3 always has it)".to_owned(),
        )),
        Some(1) if has_evaluators => Err(VerifyError::Claims(
            "unknown field `evaluators`: claim-set version 1 has none (version 2 added it)"
                .to_owned(),
        )),
        Some(2 | 3) if !has_evaluators => Err(VerifyError::Claims(format!(
            "missing field `evaluators` (claim-set version {} always has it, perhaps empty)",
            rpv.unwrap_or_default()
        ))),
        _ => read_versioned(payload, PERMIT_CLAIMS_VERSIONS_READ),
    }
}

/// The time part of [`verify_permit`]: refused when `now + leeway < nbf`, when
/// `now + leeway < iat`, or when `now - leeway >= exp` (negative leeway counts as 0).
pub fn check_permit_validity(
    claims: &PermitClaims,
    now: i64,
    leeway_seconds: i64,
) -> Result<(), VerifyError> {
    check_window(
        TokenKind::Permit,
        (claims.iat, claims.nbf, claims.exp),
        now,
        leeway_seconds,
    )
}

/// PyJWT's time rules, for every token with a validity window: refused when
/// `now + leeway < nbf`, when `now + leeway < iat`, or when `now - leeway >= exp` (negative
/// leeway counts as 0; no arithmetic overflows).
pub(crate) fn check_window(
    token: TokenKind,
    (iat, nbf, exp): (i64, i64, i64),
    now: i64,
    leeway_seconds: i64,
) -> Result<(), VerifyError> {
    let leeway = leeway_seconds.max(0);
    if now.saturating_add(leeway) < nbf {
        return Err(VerifyError::NotYetValid { token, nbf, now });
    }
    if now.saturating_add(leeway) < iat {
        return Err(VerifyError::IssuedInFuture { token, iat, now });
    }
    if now.saturating_sub(leeway) >= exp {
        return Err(VerifyError::Expired { token, exp, now });
    }
    Ok(())
}

/// Reads `payload` as `T` after checking its `rpv` is one of `versions`, so that a newer
/// claim set is reported as a version this verifier does not know rather than as unknown
/// fields.
pub(crate) fn read_versioned<T: serde::de::DeserializeOwned>(
    payload: Value,
    versions: &[u32],
) -> Result<T, VerifyError> {
    match payload.get("rpv") {
        Some(rpv)
            if rpv
                .as_u64()
                .is_some_and(|v| versions.iter().any(|known| u64::from(*known) == v)) => {}
        Some(rpv) => {
            let known: Vec<String> = versions.iter().map(u32::to_string).collect();
            let (noun, list) = match known.as_slice() {
                [one] => ("version", one.clone()),
                [rest @ .., last] => ("versions", format!("{} and {last}", rest.join(", "))),
                [] => ("versions", "none".to_owned()),
            };
            return Err(VerifyError::Claims(format!(
                "claim-set version rpv is {rpv}, but this verifier reads {noun} {list}: upgrade runpermit"
            )));
        }
        None => {
            return Err(VerifyError::Claims(
                "missing field `rpv` (the claim-set version)".to_owned(),
            ));
        }
    }
    serde_json::from_value(payload).map_err(|e| VerifyError::Claims(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{NOW, request};
    use crate::check::{check, sign};
    use crate::jws::sign_jws;
    use crate::keys::SigningKey;

    fn permit(key: &SigningKey) -> String {
        sign(check(request(NOW), NOW).unwrap(), key).token
    }

    #[test]
    fn round_trip() {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let checked = check(request(NOW), NOW).unwrap();
        let expected = checked.claims().clone();
        let token = sign(checked, &key).token;
        assert_eq!(verify_permit(&token, &jwks, NOW + 60, 0), Ok(expected));
    }

    #[test]
    fn validity_window_with_and_without_leeway() {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let mut r = request(NOW);
        r.nbf = NOW + 100;
        r.exp = NOW + 1000;
        let token = sign(check(r, NOW).unwrap(), &key).token;
        let at = |now: i64, leeway: i64| verify_permit(&token, &jwks, now, leeway);

        assert_eq!(
            at(NOW + 99, 0),
            Err(VerifyError::NotYetValid {
                token: TokenKind::Permit,
                nbf: NOW + 100,
                now: NOW + 99
            })
        );
        assert!(at(NOW + 99, 1).is_ok());
        assert!(at(NOW + 100, 0).is_ok());
        assert!(at(NOW + 999, 0).is_ok());
        assert_eq!(
            at(NOW + 1000, 0),
            Err(VerifyError::Expired {
                token: TokenKind::Permit,
                exp: NOW + 1000,
                now: NOW + 1000
            })
        );
        assert!(at(NOW + 1000, 1).is_ok());
        assert_eq!(
            at(NOW + 1060, 60),
            Err(VerifyError::Expired {
                token: TokenKind::Permit,
                exp: NOW + 1000,
                now: NOW + 1060
            })
        );
        // Negative leeway is no leeway; huge values do not overflow.
        assert!(at(NOW + 1000, -5).is_err());
        assert!(at(i64::MAX, i64::MAX).is_ok());
        assert!(at(i64::MIN, 0).is_err());
    }

    #[test]
    fn issued_in_the_future_is_refused() {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let mut r = request(NOW);
        r.nbf = NOW - 3600;
        let token = sign(check(r, NOW).unwrap(), &key).token;
        let err = verify_permit(&token, &jwks, NOW - 60, 30).unwrap_err();
        assert_eq!(
            err,
            VerifyError::IssuedInFuture {
                token: TokenKind::Permit,
                iat: NOW,
                now: NOW - 60
            }
        );
        assert!(
            err.to_string().contains("check this machine's clock"),
            "{err}"
        );
        assert!(verify_permit(&token, &jwks, NOW - 60, 60).is_ok());
    }

    #[test]
    fn rotation_old_key_verifies_until_it_is_removed() {
        let old = SigningKey::generate();
        let token = permit(&old);
        let new = SigningKey::generate();
        let both = Jwks::from_keys(&[new.public(), old.public()]);
        assert!(verify_permit(&token, &both, NOW, 0).is_ok());
        assert!(verify_permit(&permit(&new), &both, NOW, 0).is_ok());
        let only_new = Jwks::from_keys(&[new.public()]);
        assert_eq!(
            verify_permit(&token, &only_new, NOW, 0),
            Err(VerifyError::UnknownKey(old.kid().to_owned()))
        );
    }

    /// A permit signed before version 2 (no `evaluators`) still verifies, and names no
    /// evaluator; a version-1 payload that carries `evaluators` is not a version-1 permit.
    #[test]
    fn version_1_permits_still_verify_and_name_no_evaluator() {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let claims = check(request(NOW), NOW).unwrap().claims().clone();
        assert_eq!(claims.rpv, 3);
        assert!(!claims.evaluators().is_empty());

        let mut v2 = serde_json::to_value(&claims).unwrap();
        v2["rpv"] = 2.into();
        v2.as_object_mut().unwrap().remove("accounting");
        let read = verify_permit(&sign_jws(PERMIT_TYP, &v2, &key), &jwks, NOW, 0).unwrap();
        assert_eq!((read.rpv, &read.accounting), (2, &None));
        assert_eq!(serde_json::to_value(&read).unwrap(), v2);
        let mut v2_with = v2.clone();
        v2_with["accounting"] = serde_json::to_value(&claims.accounting).unwrap();
        let err = verify_permit(&sign_jws(PERMIT_TYP, &v2_with, &key), &jwks, NOW, 0).unwrap_err();
        assert!(err.to_string().contains("version 2 has none"), "{err}");
        let mut v3_without = serde_json::to_value(&claims).unwrap();
        v3_without.as_object_mut().unwrap().remove("accounting");
        let err =
            verify_permit(&sign_jws(PERMIT_TYP, &v3_without, &key), &jwks, NOW, 0).unwrap_err();
        assert!(
            err.to_string().contains("missing field `accounting`"),
            "{err}"
        );

        let mut v1 = v2;
        v1["rpv"] = 1.into();
        v1.as_object_mut().unwrap().remove("evaluators");
        let read = verify_permit(&sign_jws(PERMIT_TYP, &v1, &key), &jwks, NOW, 0).unwrap();
        assert_eq!(read.rpv, 1);
        assert_eq!(read.evaluators, None);
        assert!(read.evaluators().is_empty());
        assert!(!read.names_evaluator("org-institute"));
        assert_eq!(read.providers, claims.providers);
        // Read and written back, it is the same version-1 payload.
        assert_eq!(serde_json::to_value(&read).unwrap(), v1);

        v1["evaluators"] = serde_json::json!(["org-institute"]);
        let err = verify_permit(&sign_jws(PERMIT_TYP, &v1, &key), &jwks, NOW, 0).unwrap_err();
        assert!(err.to_string().contains("version 1 has none"), "{err}");
    }

    #[test]
    fn other_tokens_and_versions_are_refused() {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let claims = check(request(NOW), NOW).unwrap().claims().clone();

        let as_jwt = sign_jws("JWT", &claims, &key);
        assert!(matches!(
            verify_permit(&as_jwt, &jwks, NOW, 0),
            Err(VerifyError::WrongType { .. })
        ));

        let mut v4 = serde_json::to_value(&claims).unwrap();
        v4["rpv"] = 4.into();
        v4["new_field"] = true.into();
        let err = verify_permit(&sign_jws(PERMIT_TYP, &v4, &key), &jwks, NOW, 0).unwrap_err();
        assert!(
            err.to_string()
                .contains("rpv is 4, but this verifier reads versions 1, 2 and 3: upgrade"),
            "{err}"
        );

        let mut without = serde_json::to_value(&claims).unwrap();
        without.as_object_mut().unwrap().remove("evaluators");
        let err = verify_permit(&sign_jws(PERMIT_TYP, &without, &key), &jwks, NOW, 0).unwrap_err();
        assert!(
            err.to_string().contains("missing field `evaluators`"),
            "{err}"
        );

        let mut extra = serde_json::to_value(&claims).unwrap();
        extra["new_field"] = true.into();
        let err = verify_permit(&sign_jws(PERMIT_TYP, &extra, &key), &jwks, NOW, 0).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `new_field`"),
            "{err}"
        );

        let mut missing = serde_json::to_value(&claims).unwrap();
        missing.as_object_mut().unwrap().remove("exp");
        let err = verify_permit(&sign_jws(PERMIT_TYP, &missing, &key), &jwks, NOW, 0).unwrap_err();
        assert!(err.to_string().contains("missing field `exp`"), "{err}");
    }
}
