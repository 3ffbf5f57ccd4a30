//! Compact JWS (RFC 7515) with EdDSA over Ed25519 (RFC 8037), and nothing else.
//!
//! Signing emits the header `{"alg":"EdDSA","typ":…,"kid":…}`. Verifying accepts `alg`
//! `EdDSA` or `Ed25519` (RFC 9864) only, requires a `kid` found in the caller's JWKS and the
//! expected `typ`, refuses `crit`, never takes a key from the token itself (`jwk`, `jku`,
//! `x5u` are ignored), and checks the signature before reading the payload. Time claims are
//! the caller's business (see [`verify_permit`](crate::verify_permit)).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::VerifyError;
use crate::jwks::Jwks;
use crate::keys::{ALG_ED25519, ALG_EDDSA, SigningKey};

/// Tokens longer than this are refused unread (a permit is a few kilobytes).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The protected header of a verified token (or of one about to be signed).
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JwsHeader {
    /// `EdDSA` when signed here; `EdDSA` or `Ed25519` when verified.
    pub alg: String,
    /// The token type, such as [`PERMIT_TYP`](crate::PERMIT_TYP), as written in the token.
    pub typ: String,
    /// The signing key's RFC 7638 thumbprint.
    pub kid: String,
}

/// Signs `claims` as a compact JWS with header `{"alg":"EdDSA","typ":typ,"kid":key.kid()}`.
///
/// # Panics
///
/// If `claims` fails to serialize to JSON (a map with non-string keys, or a `Serialize`
/// impl that errors); the claim types in this crate never do.
pub fn sign_jws<T: Serialize>(typ: &str, claims: &T, key: &SigningKey) -> String {
    let header = JwsHeader {
        alg: ALG_EDDSA.to_owned(),
        typ: typ.to_owned(),
        kid: key.kid().to_owned(),
    };
    let header = serde_json::to_vec(&header).expect("a header of strings always serializes");
    let payload = serde_json::to_vec(claims).expect("claims must serialize to JSON");
    sign_parts(&header, &payload, key)
}

/// `BASE64URL(header).BASE64URL(payload).BASE64URL(signature)` over the given bytes.
pub(crate) fn sign_parts(header: &[u8], payload: &[u8], key: &SigningKey) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key.sign_bytes(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// Verifies a compact JWS's structure, algorithm, type, key and signature, then reads its
/// payload as `T`. Does not look at any time claim.
pub fn verify_jws<T: DeserializeOwned>(
    token: &str,
    expected_typ: &str,
    jwks: &Jwks,
) -> Result<(JwsHeader, T), VerifyError> {
    let parts = Parts::split(token)?;
    let header = read_header(parts.header, expected_typ)?;
    let key = jwks
        .find(&header.kid)
        .ok_or_else(|| VerifyError::UnknownKey(header.kid.clone()))?;
    let signature: [u8; 64] = decode(parts.signature, "signature")?
        .try_into()
        .map_err(|s: Vec<u8>| malformed(format!("signature must be 64 bytes, got {}", s.len())))?;
    if !key.verifies(parts.signing_input.as_bytes(), &signature) {
        return Err(VerifyError::BadSignature);
    }
    let payload = decode(parts.payload, "payload")?;
    let claims =
        serde_json::from_slice(&payload).map_err(|e| VerifyError::Claims(e.to_string()))?;
    Ok((header, claims))
}

/// The three parts of a compact JWS, still encoded.
pub(crate) struct Parts<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header.payload`: the bytes the signature covers.
    pub(crate) signing_input: &'a str,
}

impl<'a> Parts<'a> {
    pub(crate) fn split(token: &'a str) -> Result<Parts<'a>, VerifyError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(malformed(format!(
                "token is {} bytes, more than the {MAX_TOKEN_BYTES} accepted",
                token.len()
            )));
        }
        let dots: Vec<usize> = token.match_indices('.').map(|(i, _)| i).collect();
        let &[first, second] = dots.as_slice() else {
            let hint = if dots.len() == 4 {
                " (five parts is an encrypted JWE, which is not a permit)"
            } else {
                ""
            };
            return Err(malformed(format!(
                "a compact JWS has three base64url parts, header.payload.signature; found {}{hint}",
                dots.len() + 1
            )));
        };
        Ok(Parts {
            header: &token[..first],
            payload: &token[first + 1..second],
            signature: &token[second + 1..],
            signing_input: &token[..second],
        })
    }
}

/// The header, checked for `crit`, `alg`, `typ` = `expected_typ` and the presence of `kid`.
fn read_header(encoded: &str, expected_typ: &str) -> Result<JwsHeader, VerifyError> {
    let bytes = decode(encoded, "header")?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|e| malformed(format!("header is not a JSON object: {e}")))?;
    if header.contains_key("crit") {
        return Err(malformed(
            "header lists \"crit\" extensions, and this verifier understands none".to_owned(),
        ));
    }
    let text = |name: &str| match header.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(malformed(format!(
            "header {name:?} must be a string, got {other}"
        ))),
    };
    let alg = text("alg")?.ok_or_else(|| malformed("header has no \"alg\"".to_owned()))?;
    if alg != ALG_EDDSA && alg != ALG_ED25519 {
        return Err(VerifyError::UnsupportedAlgorithm(alg));
    }
    let typ = match text("typ")? {
        Some(typ) if same_typ(&typ, expected_typ) => typ,
        found => {
            return Err(VerifyError::WrongType {
                expected: expected_typ.to_owned(),
                found,
            });
        }
    };
    let kid = text("kid")?.ok_or_else(|| {
        malformed("header has no \"kid\" naming the signing key in the authority's JWKS".to_owned())
    })?;
    Ok(JwsHeader { alg, typ, kid })
}

/// RFC 7515 §4.1.9: `typ` compares case-insensitively, with or without `application/`.
fn same_typ(found: &str, expected: &str) -> bool {
    fn bare(t: &str) -> String {
        let t = t.to_ascii_lowercase();
        match t.strip_prefix("application/") {
            Some(rest) if !rest.contains('/') => rest.to_owned(),
            _ => t,
        }
    }
    bare(found) == bare(expected)
}

fn decode(part: &str, what: &str) -> Result<Vec<u8>, VerifyError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| malformed(format!("{what} is not base64url without padding: {e}")))
}

fn malformed(message: String) -> VerifyError {
    VerifyError::Malformed(message)
}

#[cfg(test)]
pub(crate) mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::keys::tests::rfc8037_key;

    /// A token with any header and payload text, signed by `key`.
    pub(crate) fn forge(header: &str, payload: &str, key: &SigningKey) -> String {
        sign_parts(header.as_bytes(), payload.as_bytes(), key)
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Claims {
        n: u32,
    }

    const TYP: &str = "test+jwt";

    fn setup() -> (SigningKey, Jwks, String) {
        let key = SigningKey::generate();
        let jwks = Jwks::from_keys(&[key.public()]);
        let token = sign_jws(TYP, &Claims { n: 7 }, &key);
        (key, jwks, token)
    }

    fn verify(token: &str, jwks: &Jwks) -> Result<(JwsHeader, Claims), VerifyError> {
        verify_jws(token, TYP, jwks)
    }

    /// RFC 8037 Appendix A.4 and A.5, as printed in the RFC.
    #[test]
    fn rfc8037_signing_and_validation() {
        let key = rfc8037_key();
        let token = forge(r#"{"alg":"EdDSA"}"#, "Example of Ed25519 signing", &key);
        assert_eq!(
            token,
            "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
             hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
        );
        let parts = Parts::split(&token).unwrap();
        let signature: [u8; 64] = decode(parts.signature, "").unwrap().try_into().unwrap();
        assert!(
            key.public()
                .verifies(parts.signing_input.as_bytes(), &signature)
        );
        assert!(
            !key.public()
                .verifies(b"eyJhbGciOiJFZERTQSJ9.e30", &signature)
        );
    }

    #[test]
    fn round_trip() {
        let (key, jwks, token) = setup();
        let (header, claims) = verify(&token, &jwks).unwrap();
        assert_eq!(claims, Claims { n: 7 });
        assert_eq!(
            header,
            JwsHeader {
                alg: "EdDSA".into(),
                typ: TYP.into(),
                kid: key.kid().into()
            }
        );
        let raw = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        let expected = format!(r#"{{"alg":"EdDSA","typ":"{TYP}","kid":"{}"}}"#, key.kid());
        assert_eq!(String::from_utf8(raw).unwrap(), expected);
    }

    #[test]
    fn tampering_is_detected() {
        let (key, jwks, token) = setup();
        let [h, p, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
        let header = format!(
            r#"{{"alg":"EdDSA","typ":"{TYP}","kid":"{}","x":1}}"#,
            key.kid()
        );
        let header = URL_SAFE_NO_PAD.encode(header);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"n":8}"#);
        assert_eq!(
            verify(&format!("{header}.{p}.{s}"), &jwks),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verify(&format!("{h}.{payload}.{s}"), &jwks),
            Err(VerifyError::BadSignature)
        );
        let flipped = if s.starts_with('A') { "B" } else { "A" };
        let signature = format!("{flipped}{}", &s[1..]);
        assert_eq!(
            verify(&format!("{h}.{p}.{signature}"), &jwks),
            Err(VerifyError::BadSignature)
        );
        // A payload that is not base64 still fails on the signature first.
        assert_eq!(
            verify(&format!("{h}.{p}!.{s}"), &jwks),
            Err(VerifyError::BadSignature)
        );
        // Non-canonical base64 (trailing bits set) in the signature is malformed.
        let last = if s.ends_with('A') { "B" } else { "A" };
        let signature = format!("{}{last}", &s[..s.len() - 1]);
        let err = verify(&format!("{h}.{p}.{signature}"), &jwks).unwrap_err();
        assert!(
            matches!(err, VerifyError::BadSignature | VerifyError::Malformed(_)),
            "{err}"
        );
    }

    #[test]
    fn other_keys_are_refused() {
        let (key, _, token) = setup();
        let other = SigningKey::generate();
        let other_jwks = Jwks::from_keys(&[other.public()]);
        assert_eq!(
            verify(&token, &other_jwks),
            Err(VerifyError::UnknownKey(key.kid().into()))
        );
        // Signed by `other` but claiming `key`'s kid.
        let header = format!(r#"{{"alg":"EdDSA","typ":"{TYP}","kid":"{}"}}"#, key.kid());
        let forged = forge(&header, r#"{"n":7}"#, &other);
        let jwks = Jwks::from_keys(&[key.public(), other.public()]);
        assert_eq!(verify(&forged, &jwks), Err(VerifyError::BadSignature));
    }

    #[test]
    fn only_eddsa_is_accepted() {
        let (key, jwks, token) = setup();
        let p = token.split('.').nth(1).unwrap();
        for alg in ["none", "HS256", "RS256", "ES256", "eddsa", ""] {
            let header = format!(r#"{{"alg":"{alg}","typ":"{TYP}","kid":"{}"}}"#, key.kid());
            let header = URL_SAFE_NO_PAD.encode(header);
            // `none` carries an empty signature; HS256 an HMAC keyed with the public key.
            for signature in ["", "c2lnbmF0dXJl"] {
                assert_eq!(
                    verify(&format!("{header}.{p}.{signature}"), &jwks),
                    Err(VerifyError::UnsupportedAlgorithm(alg.into())),
                );
            }
        }
        // RFC 9864's fully specified name is accepted.
        let header = format!(r#"{{"alg":"Ed25519","typ":"{TYP}","kid":"{}"}}"#, key.kid());
        let (header, claims) = verify(&forge(&header, r#"{"n":1}"#, &key), &jwks).unwrap();
        assert_eq!((header.alg.as_str(), claims), ("Ed25519", Claims { n: 1 }));
    }

    #[test]
    fn typ_must_match() {
        let (key, jwks, token) = setup();
        assert_eq!(
            verify_jws::<Claims>(&token, "other+jwt", &jwks),
            Err(VerifyError::WrongType {
                expected: "other+jwt".into(),
                found: Some(TYP.into())
            })
        );
        let header = format!(r#"{{"alg":"EdDSA","kid":"{}"}}"#, key.kid());
        assert_eq!(
            verify(&forge(&header, r#"{"n":1}"#, &key), &jwks),
            Err(VerifyError::WrongType {
                expected: TYP.into(),
                found: None
            })
        );
        let header = format!(
            r#"{{"alg":"EdDSA","typ":"application/TEST+JWT","kid":"{}"}}"#,
            key.kid()
        );
        assert!(verify(&forge(&header, r#"{"n":1}"#, &key), &jwks).is_ok());
    }

    #[test]
    fn malformed_tokens_say_why() {
        let (key, jwks, token) = setup();
        let sign = |header: &str| forge(header, r#"{"n":1}"#, &key);
        let kid = key.kid();
        let cases = [
            ("a.b".to_owned(), "three base64url parts"),
            ("a.b.c.d.e".to_owned(), "JWE"),
            (format!("{token}.x"), "found 4"),
            ("!!.a.b".to_owned(), "header is not base64url"),
            (sign("[]"), "header is not a JSON object"),
            (sign(r#"{"typ":"test+jwt"}"#), "no \"alg\""),
            (sign(r#"{"alg":1}"#), "\"alg\" must be a string"),
            (sign(r#"{"alg":"EdDSA","typ":"test+jwt"}"#), "no \"kid\""),
            (
                sign(&format!(
                    r#"{{"alg":"EdDSA","typ":"test+jwt","kid":"{kid}","crit":["b64"]}}"#
                )),
                "crit",
            ),
            (
                format!("{}.AAAA", &token[..token.rfind('.').unwrap()]),
                "64 bytes, got 3",
            ),
            ("x".repeat(MAX_TOKEN_BYTES + 1), "more than"),
        ];
        for (bad, why) in cases {
            match verify(&bad, &jwks) {
                Err(VerifyError::Malformed(m)) => assert!(m.contains(why), "{m:?} lacks {why:?}"),
                other => panic!("{bad:.60}: expected Malformed({why}), got {other:?}"),
            }
        }
    }

    #[test]
    fn payload_of_the_wrong_shape_is_a_claims_error() {
        let (key, jwks, _) = setup();
        let token = sign_jws(TYP, &serde_json::json!({"n": "seven"}), &key);
        assert!(matches!(verify(&token, &jwks), Err(VerifyError::Claims(_))));
    }
}
