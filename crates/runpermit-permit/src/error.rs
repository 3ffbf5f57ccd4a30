//! The crate's two error enums, and the one time formatter their messages use.

/// Why a key, a PEM document or a JWKS cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// [`SigningKey::from_pkcs8_pem`](crate::SigningKey::from_pkcs8_pem) was given something
    /// that is not an unencrypted PKCS#8 Ed25519 private key in PEM form, or whose embedded
    /// public key does not match the private key.
    #[error(
        "not an Ed25519 private key in PKCS#8 PEM form (\"-----BEGIN PRIVATE KEY-----\", as written by \
         `openssl genpkey -algorithm ed25519`): {0}"
    )]
    Pem(String),
    /// A raw public key (or a JWK's decoded `x`) is not 32 bytes long.
    #[error("an Ed25519 public key is 32 bytes, got {0}")]
    WrongLength(usize),
    /// 32 bytes that are not a usable Ed25519 public key: not a point on the curve, or a
    /// weak (small-order) point that would accept forged signatures.
    #[error("not a usable Ed25519 public key (not a curve point, or a small-order point)")]
    InvalidPoint,
    /// [`Jwks::from_json`](crate::Jwks::from_json) was given text that is not a JWKS
    /// (`{"keys": [...]}`) with every key carrying `kty`, `crv`, `x` and `kid`.
    #[error(
        "not a JWKS document (expected {{\"keys\": [{{\"kty\", \"crv\", \"x\", \"kid\", ...}}]}}): {0}"
    )]
    Json(String),
    /// A JWK that this crate cannot use: not `kty: OKP` with `crv: Ed25519`, `alg` other
    /// than `EdDSA`/`Ed25519`, `use` other than `sig`, or an `x` that is not base64url.
    #[error("key {kid:?}: {reason}")]
    Unsupported {
        /// The JWK's `kid`.
        kid: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A JWK whose `kid` is not the RFC 7638 thumbprint of its public key. Kids are
    /// thumbprints so that a kid names exactly one key.
    #[error(
        "key {kid:?}: kid must be the RFC 7638 SHA-256 thumbprint of the key, which is {thumbprint:?}"
    )]
    KidMismatch {
        /// The JWK's `kid`.
        kid: String,
        /// The thumbprint of its `x`.
        thumbprint: String,
    },
    /// Two keys in one JWKS carry the same `kid`.
    #[error("kid {0:?} appears more than once in the JWKS")]
    DuplicateKid(String),
    /// A JWK in a JWKS carries private key material (`d`): a published JWKS must hold
    /// public keys only, so the private key should be treated as compromised.
    #[error(
        "key {0:?} carries its private part \"d\": publish public keys only, and rotate this key"
    )]
    PrivateKeyInJwks(String),
}

/// Why a token was refused.
///
/// Every variant means "do not act on this token"; the variants only say what to tell the
/// person holding it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not a compact JWS: not three base64url parts, a header or payload that is not a JSON
    /// object, a missing `alg` or `kid`, a `crit` header, or a signature that is not 64 bytes.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header's `alg` is not `EdDSA` or `Ed25519` (for example `none` or `HS256`).
    #[error(
        "unsupported algorithm {0:?}: permits are signed with EdDSA over Ed25519 (alg \"EdDSA\" or \"Ed25519\")"
    )]
    UnsupportedAlgorithm(String),
    /// The header's `typ` is missing or names another kind of token (for example an
    /// exemption receipt given where a permit is expected).
    #[error(
        "wrong token type: expected typ {expected:?}, found {}",
        found.as_deref().map_or_else(|| "no typ".to_owned(), |t| format!("{t:?}"))
    )]
    WrongType {
        /// The `typ` the caller asked for.
        expected: String,
        /// The header's `typ`, if any.
        found: Option<String>,
    },
    /// The header's `kid` names no key in the JWKS: the token was signed by another
    /// authority, or by a key that has been retired (fetch the authority's current JWKS).
    #[error(
        "signed by key {0:?}, which is not in the authority's key set: refresh the JWKS, or the token \
         comes from another issuer or a retired key"
    )]
    UnknownKey(String),
    /// The signature does not verify with the key the header names: the token was altered
    /// or forged.
    #[error("signature does not verify: the token was altered or not signed by this key")]
    BadSignature,
    /// The token's `nbf` is later than now plus the allowed leeway.
    #[error("{token} not valid before {} (unix {nbf}); now is {} (unix {now})", utc(*nbf), utc(*now))]
    NotYetValid {
        /// What kind of token it is (a permit, an access grant).
        token: TokenKind,
        /// The token's `nbf`.
        nbf: i64,
        /// The time it was checked at.
        now: i64,
    },
    /// The token's `iat` is later than now plus the allowed leeway: the issuer's clock or
    /// the verifier's is wrong. (PyJWT refuses these too; verifiers must agree.)
    #[error(
        "{token} issued in the future, at {} (unix {iat}); now is {} (unix {now}): check this machine's clock",
        utc(*iat),
        utc(*now)
    )]
    IssuedInFuture {
        /// What kind of token it is.
        token: TokenKind,
        /// The token's `iat`.
        iat: i64,
        /// The time it was checked at.
        now: i64,
    },
    /// The token's `exp` is at or before now minus the allowed leeway.
    #[error(
        "{token} expired at {} (unix {exp}); now is {} (unix {now}): ask the authority for a new {token}",
        utc(*exp),
        utc(*now)
    )]
    Expired {
        /// What kind of token it is.
        token: TokenKind,
        /// The token's `exp`.
        exp: i64,
        /// The time it was checked at.
        now: i64,
    },
    /// The signature is good but the claims are not a claim set this crate understands:
    /// missing or unknown fields, wrong types, or an unsupported `rpv` version.
    #[error("invalid claims: {0}")]
    Claims(String),
}

/// The kinds of token that carry a validity window, named in [`VerifyError`]'s messages
/// about time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A permit (`runpermit-permit+jwt`).
    Permit,
    /// An access grant (`runpermit-access+jwt`).
    AccessGrant,
}

impl std::fmt::Display for TokenKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenKind::Permit => "permit",
            TokenKind::AccessGrant => "access grant",
        })
    }
}

/// `unix` seconds as RFC 3339 UTC (`2026-01-01T00:00:00Z`), computed by hand so that the
/// crate stays free of a clock and of a date library.
pub fn utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, valid for the whole range that `unix / 86400` can take).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_seconds_as_rfc3339() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_709_164_799), "2024-02-28T23:59:59Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
        // Extremes do not panic.
        let _ = utc(i64::MAX);
        let _ = utc(i64::MIN);
    }

    #[test]
    fn expiry_message_says_when_and_what_to_do() {
        let e = VerifyError::Expired {
            token: TokenKind::Permit,
            exp: 1_767_225_600,
            now: 1_767_229_200,
        };
        assert_eq!(
            e.to_string(),
            "permit expired at 2026-01-01T00:00:00Z (unix 1767225600); now is 2026-01-01T01:00:00Z \
             (unix 1767229200): ask the authority for a new permit"
        );
        let e = VerifyError::WrongType {
            expected: "a".into(),
            found: None,
        };
        assert_eq!(
            e.to_string(),
            "wrong token type: expected typ \"a\", found no typ"
        );
    }
}
