//! Ed25519 signing and public keys, each named by its RFC 7638 JWK thumbprint (`kid`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::KeyError;
use crate::jwks::Jwk;

/// The JOSE algorithm name this crate emits in headers and JWKs (RFC 8037).
pub const ALG_EDDSA: &str = "EdDSA";
/// The fully specified name for the same algorithm (RFC 9864), accepted when verifying.
pub const ALG_ED25519: &str = "Ed25519";

/// An authority's private signing key and its `kid`.
///
/// `Debug` shows the `kid` only; the secret never leaves this type except through
/// [`to_pkcs8_pem`](Self::to_pkcs8_pem), which returns a zeroizing string.
pub struct SigningKey {
    kid: String,
    inner: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> SigningKey {
        Self::from_dalek(ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key whose 32-byte private seed (RFC 8032 `k`, JWK `d`) is `seed`. For test
    /// vectors and fixtures; real keys come from [`generate`](Self::generate) or a PEM file.
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    /// Reads an unencrypted PKCS#8 `PRIVATE KEY` PEM document, such as the output of
    /// `openssl genpkey -algorithm ed25519` or of [`to_pkcs8_pem`](Self::to_pkcs8_pem).
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(Self::from_dalek)
            .map_err(|e| KeyError::Pem(e.to_string()))
    }

    /// The key as a PKCS#8 v1 `PRIVATE KEY` PEM document (RFC 8410), the same form
    /// `openssl genpkey -algorithm ed25519` writes.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        // v1 (no embedded public key) is what OpenSSL writes and what every reader accepts.
        let pair = KeypairBytes {
            secret_key: self.inner.to_bytes(),
            public_key: None,
        };
        pair.to_pkcs8_pem(LineEnding::LF)
            .expect("encoding a 32-byte Ed25519 key as PKCS#8 cannot fail")
    }

    /// The RFC 7638 thumbprint of the public JWK (SHA-256, base64url).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, with the same `kid`.
    pub fn public(&self) -> PublicKey {
        PublicKey {
            kid: self.kid.clone(),
            key: self.inner.verifying_key(),
        }
    }

    /// The Ed25519 signature of `message`.
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }

    fn from_dalek(inner: ed25519_dalek::SigningKey) -> SigningKey {
        SigningKey {
            kid: thumbprint(inner.verifying_key().as_bytes()),
            inner,
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// An Ed25519 public key and its `kid` (RFC 7638 thumbprint).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kid: String,
    key: ed25519_dalek::VerifyingKey,
}

impl PublicKey {
    /// A public key from its 32 raw bytes (the JWK's decoded `x`). Refuses points off the
    /// curve and weak (small-order) points.
    pub fn from_bytes(raw: &[u8]) -> Result<PublicKey, KeyError> {
        let bytes: &[u8; 32] = raw
            .try_into()
            .map_err(|_| KeyError::WrongLength(raw.len()))?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        if key.is_weak() {
            return Err(KeyError::InvalidPoint);
        }
        Ok(PublicKey {
            kid: thumbprint(bytes),
            key,
        })
    }

    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// The RFC 7638 thumbprint (SHA-256, base64url) of [`to_jwk`](Self::to_jwk).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK: `kty: OKP`, `crv: Ed25519`, `x`, `kid`, `use: sig`, `alg: EdDSA`.
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".to_owned(),
            crv: "Ed25519".to_owned(),
            x: URL_SAFE_NO_PAD.encode(self.as_bytes()),
            kid: self.kid.clone(),
            use_: Some("sig".to_owned()),
            alg: Some(ALG_EDDSA.to_owned()),
        }
    }

    /// Whether `signature` is this key's strict (RFC 8032, canonical) signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.key.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("x", &URL_SAFE_NO_PAD.encode(self.as_bytes()))
            .finish()
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 public key: SHA-256 over the required members in
/// lexicographic order with no whitespace (RFC 8037 §2 lists them: `crv`, `kty`, `x`).
pub(crate) fn thumbprint(public: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// RFC 8037 Appendix A.1: the private seed `d` and public `x`.
    pub(crate) const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    pub(crate) const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    /// RFC 8037 Appendix A.3: the thumbprint of the A.1 public key.
    const RFC8037_THUMBPRINT: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

    pub(crate) fn rfc8037_key() -> SigningKey {
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(RFC8037_D)
            .unwrap()
            .try_into()
            .unwrap();
        SigningKey::from_seed(&seed)
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        let key = rfc8037_key();
        assert_eq!(key.public().to_jwk().x, RFC8037_X);
        assert_eq!(key.kid(), RFC8037_THUMBPRINT);
        let raw = URL_SAFE_NO_PAD.decode(RFC8037_X).unwrap();
        assert_eq!(
            PublicKey::from_bytes(&raw).unwrap().kid(),
            RFC8037_THUMBPRINT
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let key = rfc8037_key();
        let shown = format!("{key:?} {key:#?}");
        assert!(shown.contains(key.kid()), "{shown}");
        let seed = key.inner.to_bytes();
        let seed_b64 = URL_SAFE_NO_PAD.encode(seed);
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        let bytes = format!("{seed:?}");
        for secret in [seed_b64.as_str(), &hex, &bytes[1..bytes.len() - 1]] {
            assert!(!shown.contains(secret), "{shown} shows {secret}");
        }
        assert!(!shown.contains(RFC8037_D));
    }

    #[test]
    fn pem_round_trip() {
        let key = SigningKey::generate();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{}", *pem);
        assert!(pem.trim_end().ends_with("-----END PRIVATE KEY-----"));
        let back = SigningKey::from_pkcs8_pem(&pem).unwrap();
        assert_eq!(back.kid(), key.kid());
        assert_eq!(back.public(), key.public());
        assert_eq!(back.sign_bytes(b"m"), key.sign_bytes(b"m"));
    }

    #[test]
    fn reads_openssl_pem() {
        // RFC 8410 §10.3: the example private key, as `openssl genpkey` writes it.
        let pem = "-----BEGIN PRIVATE KEY-----\n\
                   MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
                   -----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pkcs8_pem(pem).unwrap();
        // RFC 8410 §10.1: the matching public key, as SubjectPublicKeyInfo DER in base64.
        let spki = base64::engine::general_purpose::STANDARD
            .decode("MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=")
            .unwrap();
        assert_eq!(key.public().as_bytes()[..], spki[12..]);
        // The same key written back is byte for byte what OpenSSL wrote.
        assert_eq!(key.to_pkcs8_pem().as_str(), pem);
    }

    #[test]
    fn bad_pem_and_bad_public_keys_are_refused() {
        let err = SigningKey::from_pkcs8_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap_err();
        assert!(matches!(err, KeyError::Pem(_)), "{err}");
        assert!(err.to_string().contains("BEGIN PRIVATE KEY"), "{err}");
        assert_eq!(
            PublicKey::from_bytes(&[1; 31]),
            Err(KeyError::WrongLength(31))
        );
        // The identity point is a valid encoding but of small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            PublicKey::from_bytes(&identity),
            Err(KeyError::InvalidPoint)
        );
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(SigningKey::generate().kid(), SigningKey::generate().kid());
    }
}
