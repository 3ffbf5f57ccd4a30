//! Identifiers and secrets.
//!
//! Ids are a short kind prefix and a UUIDv7 (time-ordered, so listings sort by creation):
//! `app_01936f1c8a7b7c3e9d2f4a5b6c7d8e9f`. API tokens are `rpt_` and 32 random bytes in
//! base64url; only their SHA-256 is stored.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A new id with `prefix` (`org`, `mem`, `tok`, `app`, `rev`, `pmt`, `run`, `rcp`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Prefix of every API token, so that leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "rpt_";

/// 32 random bytes from the operating system.
fn random_32() -> Result<[u8; 32], getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// A new API token secret.
pub fn new_token_secret() -> Result<String, getrandom::Error> {
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_32()?)
    ))
}

/// A new random token of 64 lowercase hex digits (a console session's anti-forgery token).
pub fn new_random_hex() -> Result<String, getrandom::Error> {
    Ok(hex::encode(random_32()?))
}

/// What the store keeps of a token: hex SHA-256 of the whole secret.
pub fn token_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Hex SHA-256 of arbitrary bytes (request digests for idempotency).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_ordered() {
        let a = new_id("app");
        let b = new_id("app");
        assert!(a.starts_with("app_") && a.len() == 36, "{a}");
        assert!(a < b, "{a} !< {b}");
    }

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let t = new_token_secret().unwrap();
        assert!(t.starts_with(TOKEN_PREFIX));
        assert_ne!(t, new_token_secret().unwrap());
        assert_eq!(token_hash(&t), token_hash(&t));
        assert_eq!(token_hash(&t).len(), 64);
    }
}
