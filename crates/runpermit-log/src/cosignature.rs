//! Witness cosignatures on checkpoints: C2SP `tlog-cosignature`, type `cosignature/v1`
//! (Ed25519).
//!
//! A cosignature is a signed-note signature line on a checkpoint, by a *cosigner* (a witness)
//! that checked the checkpoint is consistent with the largest tree it saw for the log:
//!
//! ```text
//! — <cosigner name> base64(key id || u64 big-endian timestamp || Ed25519 signature)
//! ```
//!
//! - The key id is the first 4 bytes of `SHA-256(name || 0x0A || 0x04 || public key)`.
//! - The signed message is `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint's
//!   whole note body (its text, with the final newline, without signature lines).
//! - The cosigner's verifier key is a vkey with signature type 0x04:
//!   `<name>+<key id, 8 hex>+base64(0x04 || public key)`.
//!
//! The message does not commit to the cosigner's name, so one key must serve one cosigner.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, NoteError, VerifierList};
use zeroize::Zeroizing;

use crate::checkpoint::{Checkpoint, key_from_pem, key_to_pem};
use crate::error::{CheckpointError, KeyError};

/// The signed-note signature type byte of `cosignature/v1`.
pub const ALG_COSIGNATURE_V1: u8 = 0x04;

/// The largest timestamp a cosignature may carry (2^63 − 1).
pub const MAX_COSIGNATURE_TIME: u64 = i64::MAX as u64;

fn cosigner_key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut encoded = vec![ALG_COSIGNATURE_V1];
    encoded.extend_from_slice(public);
    signed_note::key_id(name, &encoded)
}

/// The message a `cosignature/v1` signs: the header line, the time line, then the note body
/// (`body` ends with its newline).
pub fn cosigned_message(body: &str, timestamp: u64) -> String {
    format!("cosignature/v1\ntime {timestamp}\n{body}")
}

/// A cosigner's private key, with its name (a schema-less URL such as `witness.example/w1`).
/// On disk as an unencrypted PKCS#8 `PRIVATE KEY` PEM document, like the log key. `Debug`
/// shows the name and key id only.
pub struct CosignerKey {
    name: String,
    id: u32,
    key: SigningKey,
}

impl CosignerKey {
    /// A new random key named `name`, from the operating system's generator.
    pub fn generate(name: &str) -> Result<CosignerKey, KeyError> {
        CosignerKey::new(name, SigningKey::generate(&mut rand_core::OsRng))
    }

    /// The key named `name` whose 32-byte Ed25519 seed is `seed` (for tests and fixtures).
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<CosignerKey, KeyError> {
        CosignerKey::new(name, SigningKey::from_bytes(seed))
    }

    /// Reads an unencrypted PKCS#8 Ed25519 `PRIVATE KEY` PEM document.
    pub fn from_pkcs8_pem(name: &str, pem: &str) -> Result<CosignerKey, KeyError> {
        CosignerKey::new(name, key_from_pem(pem)?)
    }

    /// The key as a PKCS#8 v1 `PRIVATE KEY` PEM document.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        key_to_pem(&self.key)
    }

    fn new(name: &str, key: SigningKey) -> Result<CosignerKey, KeyError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(KeyError::InvalidName(name.to_owned()));
        }
        Ok(CosignerKey {
            id: cosigner_key_id(name, &key.verifying_key().to_bytes()),
            name: name.to_owned(),
            key,
        })
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id of the cosignature lines.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The verifier key (vkey, type 0x04) that policies name this cosigner by.
    pub fn verifier_key(&self) -> String {
        self.verifier().to_string()
    }

    /// The verifier of this key's cosignatures.
    pub fn verifier(&self) -> CosignerVerifier {
        CosignerVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The cosignature line (ending in a newline) on `checkpoint` at `timestamp` (unix
    /// seconds, at most [`MAX_COSIGNATURE_TIME`]).
    pub fn cosign(&self, checkpoint: &Checkpoint, timestamp: u64) -> Result<String, KeyError> {
        self.cosign_body(&checkpoint.body(), timestamp)
    }

    /// As [`CosignerKey::cosign`], over a note body given as text (for checkpoints with
    /// extension lines, which [`Checkpoint`] does not represent).
    pub fn cosign_body(&self, body: &str, timestamp: u64) -> Result<String, KeyError> {
        if timestamp > MAX_COSIGNATURE_TIME {
            return Err(KeyError::Pem(format!(
                "a cosignature timestamp is at most 2^63-1, not {timestamp}"
            )));
        }
        let signature = self.key.sign(cosigned_message(body, timestamp).as_bytes());
        let mut raw = Vec::with_capacity(4 + 8 + 64);
        raw.extend_from_slice(&self.id.to_be_bytes());
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&signature.to_bytes());
        Ok(format!("— {} {}\n", self.name, STANDARD.encode(raw)))
    }
}

impl fmt::Debug for CosignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignerKey")
            .field("name", &self.name)
            .field("key_id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

/// What verifies one cosigner's `cosignature/v1` lines: its name, key id and public key.
#[derive(Clone, PartialEq, Eq)]
pub struct CosignerVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl CosignerVerifier {
    /// Parses a cosigner vkey: `<name>+<key id>+base64(0x04 || 32-byte Ed25519 key)`.
    pub fn parse(vkey: &str) -> Result<CosignerVerifier, KeyError> {
        let bad = |reason: &str| KeyError::InvalidVerifierKey {
            key: vkey.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(key64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected three parts separated by '+'"));
        };
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the key id is not 8 hex digits"));
        }
        let id = u32::from_str_radix(id_hex, 16).map_err(|_| bad("bad key id"))?;
        let raw = STANDARD
            .decode(key64)
            .map_err(|_| bad("the key is not standard base64"))?;
        let [ALG_COSIGNATURE_V1, public @ ..] = raw.as_slice() else {
            return Err(bad(
                "not a cosignature/v1 key (signature type byte 0x04); a log's own key (0x01) \
                 cannot cosign",
            ));
        };
        let public: &[u8; 32] = public
            .try_into()
            .map_err(|_| bad("an Ed25519 key is 32 bytes"))?;
        let verifier = CosignerVerifier::from_parts(name, public).map_err(|e| match e {
            KeyError::InvalidName(_) => bad("the name is empty or contains spaces or '+'"),
            _ => bad("not a usable Ed25519 public key"),
        })?;
        if id != verifier.id {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(verifier)
    }

    /// The verifier for cosigner `name` with raw Ed25519 key `public` (as Sigsum policies
    /// write witnesses: a name and a hex key).
    pub fn from_parts(name: &str, public: &[u8; 32]) -> Result<CosignerVerifier, KeyError> {
        if !signed_note::is_key_name_valid(name) {
            return Err(KeyError::InvalidName(name.to_owned()));
        }
        let key = VerifyingKey::from_bytes(public)
            .ok()
            .filter(|k| !k.is_weak())
            .ok_or_else(|| KeyError::InvalidVerifierKey {
                key: STANDARD.encode(public),
                reason: "not a usable Ed25519 public key".into(),
            })?;
        Ok(CosignerVerifier {
            id: cosigner_key_id(name, public),
            name: name.to_owned(),
            key,
        })
    }

    /// The cosigner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id its lines carry.
    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The raw Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `signature` (the line's bytes after the key id: timestamp, then Ed25519
    /// signature) is this cosigner's over note body `body`; the timestamp when it is.
    pub fn verify_signature(&self, body: &[u8], signature: &[u8]) -> Option<u64> {
        let (time, sig) = signature.split_first_chunk::<8>()?;
        let sig = <[u8; 64]>::try_from(sig).ok()?;
        let timestamp = u64::from_be_bytes(*time);
        if timestamp > MAX_COSIGNATURE_TIME {
            return None;
        }
        let mut message = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
        message.extend_from_slice(body);
        self.key
            .verify_strict(&message, &ed25519_dalek::Signature::from_bytes(&sig))
            .ok()
            .map(|()| timestamp)
    }
}

impl fmt::Display for CosignerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = vec![ALG_COSIGNATURE_V1];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, STANDARD.encode(raw))
    }
}

impl fmt::Debug for CosignerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CosignerVerifier({self})")
    }
}

struct NoteCosigner(CosignerVerifier);

impl signed_note::Verifier for NoteCosigner {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn key_id(&self) -> u32 {
        self.0.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.0.verify_signature(msg, sig).is_some()
    }
}

/// A verified cosignature: who, and when they said they cosigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigned {
    /// The cosigner's name.
    pub name: String,
    /// Unix seconds, as the cosigner wrote it.
    pub timestamp: u64,
}

/// The cosignatures in `note` (a signed checkpoint) by any of `cosigners`, verified against
/// the note's body; signature lines of other keys are ignored, as signed-note requires.
///
/// `Err(BadSignature)` when a line carries a listed cosigner's name and key id but does not
/// verify (the note is malformed), `Err(Malformed)` when `note` is not a signed note.
pub fn verify_cosignatures(
    note: &str,
    cosigners: &[CosignerVerifier],
) -> Result<Vec<Cosigned>, CheckpointError> {
    let parsed = Note::from_bytes(note.as_bytes()).map_err(|_| {
        CheckpointError::Malformed(
            "not a signed note (text lines, a blank line, then \"— <name> <signature>\" lines)"
                .into(),
        )
    })?;
    crate::checkpoint::verify_every_line(note, |name, id, text, sig| {
        cosigners
            .iter()
            .find(|c| c.name == name && c.id == id)
            .map(|c| c.verify_signature(text, sig).is_some())
    })?;
    let verifiers: Vec<Box<dyn signed_note::Verifier>> = cosigners
        .iter()
        .map(|c| Box::new(NoteCosigner(c.clone())) as Box<dyn signed_note::Verifier>)
        .collect();
    let list = VerifierList::new(verifiers);
    let verified = match parsed.verify(&list) {
        Ok((verified, _)) => verified,
        Err(NoteError::UnverifiedNote) => return Ok(Vec::new()),
        Err(NoteError::InvalidSignature { .. }) => return Err(CheckpointError::BadSignature),
        Err(other) => return Err(CheckpointError::Malformed(other.to_string())),
    };
    let mut out: Vec<Cosigned> = Vec::new();
    for sig in verified {
        let timestamp = sig
            .signature()
            .first_chunk::<8>()
            .map(|t| u64::from_be_bytes(*t))
            .ok_or_else(|| CheckpointError::Malformed("a cosignature is too short".into()))?;
        if !out.iter().any(|c| c.name == sig.name()) {
            out.push(Cosigned {
                name: sig.name().to_owned(),
                timestamp,
            });
        }
    }
    Ok(out)
}

/// `note` with the signature `lines` (each `— name base64\n`) appended after its own,
/// dropping any line already there: how a log attaches what witnesses returned.
pub fn add_signature_lines(note: &str, lines: &[String]) -> String {
    let mut out = note.to_owned();
    for line in lines {
        let line = if line.ends_with('\n') {
            line.clone()
        } else {
            format!("{line}\n")
        };
        if !out.split_inclusive('\n').any(|l| l == line) {
            out.push_str(&line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{LogKey, sign_checkpoint, verify_checkpoint};
    use crate::tree::leaf_hash;

    const LOG: &str = "log.example.org/runpermit";
    const W1: &str = "witness.example/w1";

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: LOG.into(),
            size: 20_852_163,
            root_hash: leaf_hash(b"root"),
        }
    }

    #[test]
    fn a_cosignature_line_has_the_c2sp_layout() {
        use sha2::{Digest, Sha256};
        let key = CosignerKey::from_seed(W1, &[3; 32]).unwrap();
        let line = key.cosign(&checkpoint(), 1_679_315_147).unwrap();
        let (name, b64) = line
            .strip_prefix("— ")
            .unwrap()
            .trim_end()
            .split_once(' ')
            .unwrap();
        assert_eq!(name, W1);
        let raw = STANDARD.decode(b64).unwrap();
        assert_eq!(raw.len(), 4 + 8 + 64);
        let mut h = Sha256::new();
        h.update(W1.as_bytes());
        h.update([0x0a, 0x04]);
        h.update(key.public_key());
        assert_eq!(raw[..4], h.finalize()[..4]);
        assert_eq!(raw[4..12], 1_679_315_147u64.to_be_bytes());
        let message = format!(
            "cosignature/v1\ntime 1679315147\n{LOG}\n20852163\n{}\n",
            checkpoint().root_hash
        );
        let sig = ed25519_dalek::Signature::from_bytes(&raw[12..].try_into().unwrap());
        key.key
            .verifying_key()
            .verify_strict(message.as_bytes(), &sig)
            .unwrap();
    }

    #[test]
    fn cosigned_checkpoints_still_verify_under_the_log_key_and_cosignatures_verify() {
        let log = LogKey::from_seed(LOG, &[7; 32]).unwrap();
        let w1 = CosignerKey::from_seed(W1, &[3; 32]).unwrap();
        let w2 = CosignerKey::from_seed("witness.example/w2", &[4; 32]).unwrap();
        let note = sign_checkpoint(&checkpoint(), &log).unwrap();
        let cosigned = add_signature_lines(
            &note,
            &[
                w1.cosign(&checkpoint(), 100).unwrap(),
                w2.cosign(&checkpoint(), 200).unwrap(),
            ],
        );
        assert_eq!(
            verify_checkpoint(&cosigned, &log.verifier_key()).unwrap(),
            checkpoint()
        );
        let found = verify_cosignatures(&cosigned, &[w1.verifier(), w2.verifier()]).unwrap();
        assert_eq!(
            found,
            vec![
                Cosigned {
                    name: W1.into(),
                    timestamp: 100
                },
                Cosigned {
                    name: "witness.example/w2".into(),
                    timestamp: 200
                }
            ]
        );
        // Unknown cosigners are ignored; a log key is not a cosigner key.
        assert!(
            verify_cosignatures(&note, &[w1.verifier()])
                .unwrap()
                .is_empty()
        );
        // The vkey round-trips and a 0x01 key is refused as a cosigner.
        assert_eq!(
            CosignerVerifier::parse(&w1.verifier_key()).unwrap(),
            w1.verifier()
        );
        assert!(CosignerVerifier::parse(&log.verifier_key()).is_err());
    }

    #[test]
    fn a_cosignature_on_another_tree_or_time_is_refused() {
        let log = LogKey::from_seed(LOG, &[7; 32]).unwrap();
        let w1 = CosignerKey::from_seed(W1, &[3; 32]).unwrap();
        let mut other = checkpoint();
        other.size += 1;
        let note = sign_checkpoint(&checkpoint(), &log).unwrap();
        let wrong = add_signature_lines(&note, &[w1.cosign(&other, 100).unwrap()]);
        assert_eq!(
            verify_cosignatures(&wrong, &[w1.verifier()]),
            Err(CheckpointError::BadSignature)
        );
        // A changed timestamp breaks the signature.
        let line = w1.cosign(&checkpoint(), 100).unwrap();
        let (head, b64) = line.trim_end().rsplit_once(' ').unwrap();
        let mut raw = STANDARD.decode(b64).unwrap();
        raw[11] ^= 1;
        let forged = format!("{head} {}\n", STANDARD.encode(raw));
        assert_eq!(
            verify_cosignatures(&add_signature_lines(&note, &[forged]), &[w1.verifier()]),
            Err(CheckpointError::BadSignature)
        );
        assert!(w1.cosign(&checkpoint(), u64::MAX).is_err());
        // A valid line followed by a broken one by the same key: the note is refused (the
        // signed-note crate alone would verify only the first).
        let good = w1.cosign(&checkpoint(), 100).unwrap();
        let twice = add_signature_lines(&note, &[good, forged_line(&w1)]);
        assert_eq!(
            verify_cosignatures(&twice, &[w1.verifier()]),
            Err(CheckpointError::BadSignature)
        );
        let (body, sigs) = note.split_once("\n\n").unwrap();
        let log_line = sigs.lines().next().unwrap();
        let (head, b64) = log_line.rsplit_once(' ').unwrap();
        let mut raw = STANDARD.decode(b64).unwrap();
        raw[10] ^= 1;
        let doubled = format!("{body}\n\n{log_line}\n{head} {}\n", STANDARD.encode(raw));
        assert_eq!(
            verify_checkpoint(&doubled, &log.verifier_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    fn forged_line(key: &CosignerKey) -> String {
        let line = key.cosign(&checkpoint(), 200).unwrap();
        let (head, b64) = line.trim_end().rsplit_once(' ').unwrap();
        let mut raw = STANDARD.decode(b64).unwrap();
        raw[20] ^= 1;
        format!("{head} {}\n", STANDARD.encode(raw))
    }
}
