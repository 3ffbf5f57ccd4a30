//! The log key, verifier keys, and checkpoints (C2SP `tlog-checkpoint`) signed as C2SP
//! `signed-note`s.
//!
//! A checkpoint's body is three lines: the log's origin, the tree size in decimal and the
//! root hash in base64. The note adds a blank line and one signature line by the log key,
//! `— <name> base64(key id || Ed25519 signature of the body)`. The key's name is the origin.
//!
//! The verifier key that auditors pin is `<name>+<key id as 8 hex digits>+<base64(0x01 ||
//! 32-byte Ed25519 public key)>`, where the key id is the first 4 bytes (big-endian) of
//! `SHA-256(name || 0x0A || 0x01 || public key)`: the form Go's `note.NewVerifier` reads.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use signed_note::{Note, NoteError, VerifierList};
use zeroize::Zeroizing;

use crate::error::{CheckpointError, KeyError};
use crate::tree::Hash;

/// The signed-note signature type byte for Ed25519.
const ALG_ED25519: u8 = 0x01;

/// Whether `name` may name a note key (and so a log): non-empty, no whitespace, no `+`.
fn valid_name(name: &str) -> bool {
    signed_note::is_key_name_valid(name)
}

/// Reads an unencrypted PKCS#8 Ed25519 `PRIVATE KEY` PEM document (log and cosigner keys).
pub(crate) fn key_from_pem(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Pem(e.to_string()))
}

/// `key` as a PKCS#8 v1 `PRIVATE KEY` PEM document, the form OpenSSL writes.
pub(crate) fn key_to_pem(key: &SigningKey) -> Zeroizing<String> {
    KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_pem(LineEnding::LF)
    .expect("encoding a 32-byte Ed25519 key as PKCS#8 cannot fail")
}

fn key_id(name: &str, public: &VerifyingKey) -> u32 {
    let mut encoded = vec![ALG_ED25519];
    encoded.extend_from_slice(public.as_bytes());
    signed_note::key_id(name, &encoded)
}

/// The log's private signing key, with the log's name (its checkpoint origin).
///
/// Kept on disk as an unencrypted PKCS#8 `PRIVATE KEY` PEM document (RFC 8410, what
/// `openssl genpkey -algorithm ed25519` writes), like the authority's permit key; the name
/// comes from configuration. `Debug` shows the name and key id only.
pub struct LogKey {
    name: String,
    id: u32,
    key: SigningKey,
}

impl LogKey {
    /// A new random key named `name`, from the operating system's generator.
    pub fn generate(name: &str) -> Result<LogKey, KeyError> {
        LogKey::new(name, SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key named `name` whose 32-byte Ed25519 seed is `seed` (for tests and fixtures).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<LogKey, KeyError> {
        LogKey::new(name, SigningKey::from_bytes(seed))
    }

    /// Reads an unencrypted PKCS#8 Ed25519 `PRIVATE KEY` PEM document.
    pub fn from_pkcs8_pem(name: &str, pem: &str) -> Result<LogKey, KeyError> {
        LogKey::new(name, key_from_pem(pem)?)
    }

    /// The key as a PKCS#8 v1 `PRIVATE KEY` PEM document, the form OpenSSL writes.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        key_to_pem(&self.key)
    }

    fn new(name: &str, key: SigningKey) -> Result<LogKey, KeyError> {
        if !valid_name(name) {
            return Err(KeyError::InvalidName(name.to_owned()));
        }
        Ok(LogKey {
            id: key_id(name, &key.verifying_key()),
            name: name.to_owned(),
            key,
        })
    }

    /// The log's name: its checkpoints' origin line and its signature lines' key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signed-note key id.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The verifier key auditors pin: `<name>+<key id>+<base64(0x01 || public key)>`.
    pub fn verifier_key(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.name, &self.key.verifying_key())
    }
}

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

/// Signs notes with a [`LogKey`] (kept out of the public API).
struct NoteSigner<'a>(&'a LogKey);

impl signed_note::Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn key_id(&self) -> u32 {
        self.0.id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.0.key.sign(msg).to_bytes().to_vec())
    }
}

/// A parsed verifier key: a log's name, key id and Ed25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses `<name>+<8 hex digits>+<base64(0x01 || 32-byte key)>`. The base64 may itself
    /// contain `+`, so the text is split at the first two `+` only. Refuses a key id that
    /// is not the one the name and key give, and points that are off the curve or weak.
    pub fn parse(vkey: &str) -> Result<VerifierKey, KeyError> {
        let bad = |reason: &str| KeyError::InvalidVerifierKey {
            key: vkey.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected three parts separated by '+'"));
        };
        if !valid_name(name) {
            return Err(bad("the name is empty or contains spaces"));
        }
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the key id is not 8 hex digits"));
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad("bad key id"))?;
        let raw = STANDARD
            .decode(key64)
            .map_err(|_| bad("the key is not standard base64"))?;
        let [ALG_ED25519, public @ ..] = raw.as_slice() else {
            return Err(bad("not an Ed25519 key (type byte 0x01)"));
        };
        let public: &[u8; 32] = public
            .try_into()
            .map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(public)
            .ok()
            .filter(|k| !k.is_weak())
            .ok_or_else(|| bad("not a usable Ed25519 public key"))?;
        if id != key_id(name, &key) {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The log's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        self.id
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&signed_note::new_ed25519_verifier_key(
            &self.name, &self.key,
        ))
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifierKey({self})")
    }
}

/// Accepts only strict (RFC 8032, canonical) Ed25519 signatures by one key.
struct StrictVerifier(VerifierKey);

impl signed_note::Verifier for StrictVerifier {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn key_id(&self) -> u32 {
        self.0.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        self.0
            .key
            .verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok()
    }
}

/// A tree head: the log's origin, its size and its root hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The log's origin (its key name), for example `log.example.org/runpermit`.
    pub origin: String,
    /// The number of entries.
    pub size: u64,
    /// The RFC 6962 root hash of those entries.
    pub root_hash: Hash,
}

impl Checkpoint {
    /// The C2SP checkpoint body: `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, self.root_hash)
    }

    /// Reads a checkpoint body, the form [`body`](Self::body) writes and nothing else:
    /// exactly three lines (no extension lines), a non-empty origin, the size in decimal
    /// without leading zeros, the root hash in standard base64.
    ///
    /// This checks no signature: it reads the text of a note already verified. A checkpoint
    /// from anyone else is read with [`verify_checkpoint`].
    pub fn from_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        parse_body(text)
    }
}

/// The signed note of `checkpoint` by `key`: the body, a blank line and the key's signature
/// line. Refuses a checkpoint whose origin is not the key's name.
pub fn sign_checkpoint(checkpoint: &Checkpoint, key: &LogKey) -> Result<String, CheckpointError> {
    if checkpoint.origin != key.name {
        return Err(CheckpointError::OriginMismatch {
            origin: checkpoint.origin.clone(),
            key_name: key.name.clone(),
        });
    }
    let mut note = Note::new(checkpoint.body().as_bytes(), &[])
        .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    note.add_sigs(&[&NoteSigner(key) as &dyn signed_note::Signer])
        .map_err(|e| CheckpointError::Malformed(e.to_string()))?;
    Ok(String::from_utf8(note.to_bytes()).expect("a note of UTF-8 text and base64 is UTF-8"))
}

/// Verifies a signed checkpoint note against the pinned verifier key `vkey` and returns the
/// checkpoint.
///
/// The note must carry a valid signature by that key (signatures by other keys, such as
/// witness cosignatures, are ignored), its body must be exactly the three checkpoint lines
/// (no extension lines), and its origin must be the key's name.
pub fn verify_checkpoint(note: &str, vkey: &str) -> Result<Checkpoint, CheckpointError> {
    let key = VerifierKey::parse(vkey)?;
    verify_checkpoint_with(note, &key)
}

pub(crate) fn verify_checkpoint_with(
    note: &str,
    key: &VerifierKey,
) -> Result<Checkpoint, CheckpointError> {
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| {
        CheckpointError::Malformed(
            "not a signed note (text lines, a blank line, then \"— <name> <signature>\" lines)"
                .into(),
        )
    })?;
    // Every line by the key must verify, not only the first (signed-note: a line matching a
    // known key's name and id MUST be verified; one that fails rejects the note).
    verify_every_line(note, |name, id, text, sig| {
        (name == key.name && id == key.id)
            .then(|| signed_note::Verifier::verify(&StrictVerifier(key.clone()), text, sig))
    })?;
    let verifiers = VerifierList::new(vec![Box::new(StrictVerifier(key.clone()))]);
    parsed.verify(&verifiers).map_err(|e| match e {
        NoteError::UnverifiedNote => CheckpointError::NotSignedByKey {
            key: format!("{}+{:08x}", key.name, key.id),
        },
        NoteError::InvalidSignature { .. } => CheckpointError::BadSignature,
        other => CheckpointError::Malformed(other.to_string()),
    })?;
    let text = std::str::from_utf8(parsed.text()).expect("a parsed note is UTF-8");
    let checkpoint = parse_body(text)?;
    if checkpoint.origin != key.name {
        return Err(CheckpointError::OriginMismatch {
            origin: checkpoint.origin,
            key_name: key.name.clone(),
        });
    }
    Ok(checkpoint)
}

/// Checks every signature line of `note` that `verify` knows (it answers `Some(valid)` for a
/// known name and key id, `None` otherwise): `BadSignature` if any known line fails. The
/// signed-note crate, like Go's, verifies only the first line per key; the spec asks for all.
pub(crate) fn verify_every_line(
    note: &str,
    verify: impl Fn(&str, u32, &[u8], &[u8]) -> Option<bool>,
) -> Result<(), CheckpointError> {
    let Some((text, sigs)) = note.rsplit_once("\n\n") else {
        return Ok(());
    };
    let text = format!("{text}\n");
    for line in sigs.lines() {
        let Ok(sig) = signed_note::Signature::from_bytes(line.as_bytes()) else {
            continue;
        };
        if verify(sig.name(), sig.id(), text.as_bytes(), sig.signature()) == Some(false) {
            return Err(CheckpointError::BadSignature);
        }
    }
    Ok(())
}

fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
    let malformed = |what: &str| CheckpointError::Malformed(what.to_owned());
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .ok_or_else(|| malformed("the body does not end with a newline"))?
        .split('\n')
        .collect();
    let [origin, size, root] = lines.as_slice() else {
        return Err(malformed(
            "the body must be exactly three lines: origin, tree size, root hash (runpermit logs write no extension lines)",
        ));
    };
    if origin.is_empty() {
        return Err(malformed("empty origin line"));
    }
    let size_ok = !size.is_empty()
        && size.bytes().all(|b| b.is_ascii_digit())
        && (size.len() == 1 || !size.starts_with('0'));
    let size = size
        .parse::<u64>()
        .ok()
        .filter(|_| size_ok)
        .ok_or_else(|| malformed("the tree size is not a decimal number without leading zeros"))?;
    let root_hash = Hash::from_base64(root)
        .map_err(|_| malformed("the root hash is not 32 bytes in standard base64"))?;
    Ok(Checkpoint {
        origin: (*origin).to_owned(),
        size,
        root_hash,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tree::{EMPTY_ROOT, leaf_hash};

    pub(crate) const NAME: &str = "log.example.org/runpermit";

    pub(crate) fn key() -> LogKey {
        LogKey::from_seed(NAME, &[7; 32]).unwrap()
    }

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            origin: NAME.into(),
            size,
            root_hash: leaf_hash(b"root"),
        }
    }

    #[test]
    fn signs_and_verifies() {
        let key = key();
        let cp = checkpoint(20_852_163);
        let note = sign_checkpoint(&cp, &key).unwrap();
        let (body, sig) = note.split_once("\n\n").unwrap();
        assert_eq!(format!("{body}\n"), cp.body());
        assert!(sig.starts_with(&format!("— {NAME} ")), "{sig}");
        assert!(sig.ends_with('\n') && sig.lines().count() == 1);
        assert_eq!(verify_checkpoint(&note, &key.verifier_key()).unwrap(), cp);
        // Ed25519 is deterministic: the same checkpoint gives the same note.
        assert_eq!(sign_checkpoint(&cp, &key).unwrap(), note);
    }

    #[test]
    fn verifier_key_form() {
        let key = key();
        let vkey = key.verifier_key();
        let parts: Vec<&str> = vkey.splitn(3, '+').collect();
        assert_eq!(parts[0], NAME);
        assert_eq!(parts[1], format!("{:08x}", key.key_id()));
        let raw = STANDARD.decode(parts[2]).unwrap();
        assert_eq!(raw[0], 1);
        assert_eq!(raw[1..], key.public_key());
        // key id = SHA-256(name || 0x0A || 0x01 || key)[:4], computed here by hand.
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(NAME.as_bytes());
        h.update([0x0a, 0x01]);
        h.update(key.public_key());
        let digest = h.finalize();
        assert_eq!(
            key.key_id(),
            u32::from_be_bytes(digest[..4].try_into().unwrap())
        );
        assert_eq!(VerifierKey::parse(&vkey).unwrap().to_string(), vkey);
    }

    #[test]
    fn a_base64_key_with_plus_signs_parses() {
        // Find a seed whose verifier key's base64 contains '+'.
        let key = (0u8..=255)
            .map(|i| LogKey::from_seed(NAME, &[i; 32]).unwrap())
            .find(|k| {
                k.verifier_key()
                    .splitn(3, '+')
                    .nth(2)
                    .unwrap()
                    .contains('+')
            })
            .unwrap();
        let vkey = key.verifier_key();
        let note = sign_checkpoint(&checkpoint(1), &key).unwrap();
        assert_eq!(verify_checkpoint(&note, &vkey).unwrap().size, 1);
    }

    #[test]
    fn wrong_key_name_or_tampered_body_is_refused() {
        let key = key();
        let note = sign_checkpoint(&checkpoint(5), &key).unwrap();
        let other = LogKey::from_seed(NAME, &[8; 32]).unwrap();
        assert!(matches!(
            verify_checkpoint(&note, &other.verifier_key()),
            Err(CheckpointError::NotSignedByKey { .. })
        ));
        // Same key, another name: the key id differs, so the signature is not by that key.
        let renamed = LogKey::from_seed("other.example/log", &[7; 32]).unwrap();
        assert!(matches!(
            verify_checkpoint(&note, &renamed.verifier_key()),
            Err(CheckpointError::NotSignedByKey { .. })
        ));
        let tampered = note.replacen("\n5\n", "\n6\n", 1);
        assert_eq!(
            verify_checkpoint(&tampered, &key.verifier_key()),
            Err(CheckpointError::BadSignature)
        );
        let tampered_root =
            note.replacen(&leaf_hash(b"root").to_string(), &EMPTY_ROOT.to_string(), 1);
        assert_eq!(
            verify_checkpoint(&tampered_root, &key.verifier_key()),
            Err(CheckpointError::BadSignature)
        );
        for garbage in [
            "",
            "hello\n",
            &note.replace("\n\n", "\n"),
            &note.replace('—', "-"),
        ] {
            assert!(matches!(
                verify_checkpoint(garbage, &key.verifier_key()),
                Err(CheckpointError::Malformed(_))
            ));
        }
    }

    #[test]
    fn a_foreign_cosignature_is_ignored() {
        let key = key();
        let note = sign_checkpoint(&checkpoint(9), &key).unwrap();
        let witness = LogKey::from_seed("witness.example", &[9; 32]).unwrap();
        let mut parsed = Note::from_bytes(note.as_bytes()).unwrap();
        parsed
            .add_sigs(&[&NoteSigner(&witness) as &dyn signed_note::Signer])
            .unwrap();
        let cosigned = String::from_utf8(parsed.to_bytes()).unwrap();
        assert_eq!(cosigned.lines().count(), note.lines().count() + 1);
        assert_eq!(
            verify_checkpoint(&cosigned, &key.verifier_key())
                .unwrap()
                .size,
            9
        );
    }

    #[test]
    fn origin_must_be_the_key_name() {
        let key = key();
        let mut cp = checkpoint(1);
        cp.origin = "elsewhere.example/log".into();
        assert!(matches!(
            sign_checkpoint(&cp, &key),
            Err(CheckpointError::OriginMismatch { .. })
        ));
        // A note signed with a matching key name but another origin line.
        let body = "elsewhere.example/log\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
        let mut note = Note::new(body.as_bytes(), &[]).unwrap();
        note.add_sigs(&[&NoteSigner(&key) as &dyn signed_note::Signer])
            .unwrap();
        let note = String::from_utf8(note.to_bytes()).unwrap();
        assert_eq!(
            verify_checkpoint(&note, &key.verifier_key()),
            Err(CheckpointError::OriginMismatch {
                origin: "elsewhere.example/log".into(),
                key_name: NAME.into()
            })
        );
    }

    #[test]
    fn bodies_must_be_exactly_three_canonical_lines() {
        let key = key();
        let root = EMPTY_ROOT.to_string();
        for body in [
            format!("{NAME}\n01\n{root}\n"),
            format!("{NAME}\n+1\n{root}\n"),
            format!("{NAME}\n18446744073709551616\n{root}\n"),
            format!("{NAME}\n1\n{}\n", &root[..43]),
            format!("{NAME}\n1\n{root}\nextension\n"),
            format!("{NAME}\n1\n"),
        ] {
            let mut note = Note::new(body.as_bytes(), &[]).unwrap();
            note.add_sigs(&[&NoteSigner(&key) as &dyn signed_note::Signer])
                .unwrap();
            let note = String::from_utf8(note.to_bytes()).unwrap();
            assert!(
                matches!(
                    verify_checkpoint(&note, &key.verifier_key()),
                    Err(CheckpointError::Malformed(_))
                ),
                "{body:?}"
            );
        }
    }

    #[test]
    fn bad_names_and_verifier_keys_are_refused() {
        for name in ["", "a b", "a+b", "tab\there"] {
            assert_eq!(
                LogKey::from_seed(name, &[1; 32]).unwrap_err(),
                KeyError::InvalidName(name.into())
            );
        }
        let vkey = key().verifier_key();
        let (name, rest) = vkey.split_once('+').unwrap();
        let (id, b64) = rest.split_once('+').unwrap();
        let flipped_id = format!(
            "{name}+{:08x}+{b64}",
            u32::from_str_radix(id, 16).unwrap() ^ 1
        );
        let mut raw = STANDARD.decode(b64).unwrap();
        raw[0] = 2;
        let wrong_alg = format!("{name}+{id}+{}", STANDARD.encode(&raw));
        let mut identity = vec![1u8; 33];
        identity[1..].fill(0);
        identity[1] = 1;
        let weak = format!("{name}+{id}+{}", STANDARD.encode(&identity));
        for bad in [
            "",
            name,
            &format!("{name}+{id}"),
            &format!("{name}+{}+{b64}", &id[..7]),
            &format!("{name}+{id}+{}", &b64[1..]),
            &flipped_id,
            &wrong_alg,
            &weak,
            &format!("+{id}+{b64}"),
        ] {
            assert!(
                matches!(
                    VerifierKey::parse(bad),
                    Err(KeyError::InvalidVerifierKey { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn pem_round_trip_and_debug_hides_the_secret() {
        let key = LogKey::generate(NAME).unwrap();
        let pem = key.to_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let back = LogKey::from_pkcs8_pem(NAME, &pem).unwrap();
        assert_eq!(back.verifier_key(), key.verifier_key());
        assert!(matches!(
            LogKey::from_pkcs8_pem(NAME, "nope"),
            Err(KeyError::Pem(_))
        ));
        let shown = format!("{key:?}");
        assert!(shown.contains(NAME), "{shown}");
        let seed = STANDARD.encode(key.key.to_bytes());
        assert!(!shown.contains(&seed));
        let hex: String = key
            .key
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(!shown.contains(&hex));
    }
}
