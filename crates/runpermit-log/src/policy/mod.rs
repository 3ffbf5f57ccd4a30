//! Witness policies: which logs and witnesses a verifier trusts, and which sets of witness
//! cosignatures (the *quorum*) make a checkpoint acceptable. The format is C2SP
//! `tlog-policy`:
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <member>...
//! quorum <name>|none
//! ```
//!
//! Keys are vkeys (type 0x01 for logs, 0x04 `cosignature/v1` for witnesses) or, as Sigsum
//! writes them, 64 hex digits of a raw Ed25519 key. A hex witness key signs under the
//! witness's policy name (so that name must be its cosigner key name); a hex log key is
//! matched against the log vkey the caller pins by its public key alone.
//!
//! Rules enforced at parse time, each refused with its line number: only tab, newline and
//! printable or non-ASCII bytes; items separated by spaces and tabs; `#` comment lines;
//! names defined before use and at most once (`none` is reserved); a name is a group
//! member at most once in the whole policy; `1 <= k <= n`; no two logs or witnesses with
//! the same public key; exactly one `quorum` line; at most [`MAX_POLICY_LOGS`] logs,
//! [`MAX_POLICY_WITNESSES`] witnesses and [`MAX_POLICY_GROUPS`] groups.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::checkpoint::{Checkpoint, VerifierKey, verify_checkpoint};
use crate::cosignature::{Cosigned, CosignerVerifier, verify_cosignatures};
use crate::error::CheckpointError;

#[cfg(test)]
mod tests;

/// The most `log` lines a policy may have.
pub const MAX_POLICY_LOGS: usize = 64;
/// The most `witness` lines a policy may have.
pub const MAX_POLICY_WITNESSES: usize = 64;
/// The most `group` lines a policy may have.
pub const MAX_POLICY_GROUPS: usize = 64;

/// A log a policy accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLog {
    /// The vkey as written, or `None` for the Sigsum hex form.
    pub vkey: Option<String>,
    /// The log's raw Ed25519 public key.
    pub public_key: [u8; 32],
    /// The optional URL.
    pub url: Option<String>,
}

/// A witness a policy names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWitness {
    /// The witness's name in the policy (what groups, the quorum and error messages use).
    pub name: String,
    /// What verifies its cosignatures (its cosigner key name may differ from `name` in
    /// the vkey form).
    pub verifier: CosignerVerifier,
    /// The optional URL (for `tlog-witness`, the submission prefix).
    pub url: Option<String>,
}

/// A checkpoint that passed [`WitnessPolicy::verify_checkpoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Witnessed {
    /// The checkpoint, signed by the pinned log key.
    pub checkpoint: Checkpoint,
    /// The policy's witnesses whose cosignatures verified, in policy order; `name` is the
    /// witness's policy name.
    pub cosigned_by: Vec<Cosigned>,
}

/// Why a policy could not be read, or why a checkpoint does not satisfy it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A line of the policy file is wrong.
    #[error("witness policy line {line}: {reason}")]
    Syntax {
        /// The 1-based line number.
        line: usize,
        /// What is wrong, in words.
        reason: String,
    },
    /// The policy file has no `quorum` line.
    #[error(
        "witness policy: no `quorum` line (write `quorum <name>`, or `quorum none` to require no cosignatures)"
    )]
    NoQuorum,
    /// The pinned log key is not one of the policy's `log` lines.
    #[error(
        "the log key {key} is not among the witness policy's `log` lines; add `log {key}` to the policy or pin another log key"
    )]
    UnknownLog {
        /// The pinned log key.
        key: String,
    },
    /// The log's own signature on the checkpoint was refused.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A cosignature line by a policy witness (its name and key id) does not verify.
    #[error(
        "the cosignature of witness {witness:?} on the checkpoint does not verify: the checkpoint or the cosignature was altered, or the witness's key in the policy is wrong"
    )]
    BadCosignature {
        /// The witness's policy name.
        witness: String,
    },
    /// The valid cosignatures do not satisfy the quorum.
    #[error("{}", quorum_message(cosigned_by, missing))]
    QuorumNotMet {
        /// The policy names of the witnesses that did cosign.
        cosigned_by: Vec<String>,
        /// The witnesses whose cosignatures would still be needed.
        missing: Vec<String>,
    },
}

fn quorum_message(cosigned_by: &[String], missing: &[String]) -> String {
    let had = if cosigned_by.is_empty() {
        "no policy witness".to_owned()
    } else {
        cosigned_by.join(", ")
    };
    format!(
        "the checkpoint does not meet the witness quorum: cosigned by {had}; still needed: \
         cosignatures from {}",
        missing.join(", ")
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    Witness(usize),
    Group(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Group {
    name: String,
    k: usize,
    members: Vec<Node>,
}

/// A parsed witness policy. See the [module documentation](self) for the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessPolicy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    /// `None`: `quorum none`.
    quorum: Option<Node>,
}

impl WitnessPolicy {
    /// Parses a policy file. Errors name the line and what is wrong with it.
    pub fn parse(text: &str) -> Result<WitnessPolicy, PolicyError> {
        Parser::default().run(text)
    }

    /// The logs listed (empty: any log the caller pins).
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The witnesses listed, in file order.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// Whether the policy requires no cosignature (`quorum none`).
    pub fn requires_no_cosignature(&self) -> bool {
        self.quorum.is_none()
    }

    /// Whether cosignatures by the witnesses named `cosigned_by` (policy names; unknown
    /// names count for nothing) satisfy the quorum.
    pub fn quorum_met(&self, cosigned_by: &[&str]) -> bool {
        let have = self.have(cosigned_by);
        self.quorum.is_none_or(|q| self.met(q, &have))
    }

    /// The witnesses whose cosignatures would still be needed, beyond `cosigned_by`: empty
    /// when the quorum is met; for a group short of its threshold, every witness (in any
    /// unmet member) not yet cosigning. In policy order, each once.
    pub fn missing(&self, cosigned_by: &[&str]) -> Vec<String> {
        let have = self.have(cosigned_by);
        let mut out = BTreeSet::new();
        if let Some(q) = self.quorum {
            self.collect_missing(q, &have, &mut out);
        }
        out.into_iter()
            .map(|i| self.witnesses[i].name.clone())
            .collect()
    }

    /// Verifies `note` as this policy requires: signed by the pinned log key `log_vkey`
    /// (which must be one of the policy's `log` lines when it lists any), then the
    /// cosignatures of the policy's witnesses, then the quorum.
    pub fn verify_checkpoint(&self, note: &str, log_vkey: &str) -> Result<Witnessed, PolicyError> {
        let key = VerifierKey::parse(log_vkey).map_err(CheckpointError::from)?;
        if !self.logs.is_empty() {
            let public = vkey_public_key(log_vkey);
            let listed = self.logs.iter().any(|log| match &log.vkey {
                Some(vkey) => VerifierKey::parse(vkey).is_ok_and(|k| k == key),
                None => Some(log.public_key) == public,
            });
            if !listed {
                return Err(PolicyError::UnknownLog {
                    key: log_vkey.to_owned(),
                });
            }
        }
        let checkpoint = verify_checkpoint(note, log_vkey)?;
        let mut cosigned_by = Vec::new();
        for witness in &self.witnesses {
            match verify_cosignatures(note, std::slice::from_ref(&witness.verifier)) {
                Ok(found) => {
                    if let Some(c) = found.into_iter().next() {
                        cosigned_by.push(Cosigned {
                            name: witness.name.clone(),
                            timestamp: c.timestamp,
                        });
                    }
                }
                Err(CheckpointError::BadSignature) => {
                    return Err(PolicyError::BadCosignature {
                        witness: witness.name.clone(),
                    });
                }
                Err(other) => return Err(other.into()),
            }
        }
        let names: Vec<&str> = cosigned_by.iter().map(|c| c.name.as_str()).collect();
        if !self.quorum_met(&names) {
            return Err(PolicyError::QuorumNotMet {
                missing: self.missing(&names),
                cosigned_by: names.into_iter().map(str::to_owned).collect(),
            });
        }
        Ok(Witnessed {
            checkpoint,
            cosigned_by,
        })
    }

    fn have(&self, cosigned_by: &[&str]) -> Vec<bool> {
        self.witnesses
            .iter()
            .map(|w| cosigned_by.contains(&w.name.as_str()))
            .collect()
    }

    fn met(&self, node: Node, have: &[bool]) -> bool {
        match node {
            Node::Witness(i) => have[i],
            Node::Group(g) => {
                let group = &self.groups[g];
                group.members.iter().filter(|m| self.met(**m, have)).count() >= group.k
            }
        }
    }

    fn collect_missing(&self, node: Node, have: &[bool], out: &mut BTreeSet<usize>) {
        if self.met(node, have) {
            return;
        }
        match node {
            Node::Witness(i) => {
                out.insert(i);
            }
            Node::Group(g) => {
                for member in &self.groups[g].members {
                    self.collect_missing(*member, have, out);
                }
            }
        }
    }
}

/// The raw public key of a vkey that [`VerifierKey::parse`] accepted.
fn vkey_public_key(vkey: &str) -> Option<[u8; 32]> {
    let b64 = vkey.splitn(3, '+').nth(2)?;
    let raw = STANDARD.decode(b64).ok()?;
    raw.get(1..)?.try_into().ok()
}

/// 64 hex digits (either case) as 32 bytes.
fn parse_hex_key(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[derive(Default)]
struct Parser {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<Group>,
    quorum: Option<Option<Node>>,
    /// Names already listed as a group member.
    used_as_member: BTreeSet<String>,
}

impl Parser {
    fn run(mut self, text: &str) -> Result<WitnessPolicy, PolicyError> {
        for (i, line) in text.split('\n').enumerate() {
            let line_no = i + 1;
            let syntax = |reason: String| PolicyError::Syntax {
                line: line_no,
                reason,
            };
            if let Some(bad) = line
                .bytes()
                .find(|b| *b != b'\t' && (*b < 0x20 || *b == 0x7f))
            {
                let hint = if bad == b'\r' {
                    " (carriage return: save the file with Unix line endings)"
                } else {
                    ""
                };
                return Err(syntax(format!(
                    "control character 0x{bad:02x} is not allowed{hint}"
                )));
            }
            let tokens: Vec<&str> = line.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
            match tokens.first() {
                None => continue,
                Some(t) if t.starts_with('#') => continue,
                Some(_) => {}
            }
            self.line(&tokens).map_err(syntax)?;
        }
        let Some(quorum) = self.quorum else {
            return Err(PolicyError::NoQuorum);
        };
        Ok(WitnessPolicy {
            logs: self.logs,
            witnesses: self.witnesses,
            groups: self.groups,
            quorum,
        })
    }

    fn line(&mut self, tokens: &[&str]) -> Result<(), String> {
        match tokens {
            ["log", rest @ ..] => match rest {
                [key] => self.log(key, None),
                [key, url] => self.log(key, Some(url)),
                _ => Err(format!(
                    "`log` takes a key and an optional URL (log <vkey> [<url>]), not {} items",
                    rest.len()
                )),
            },
            ["witness", rest @ ..] => match rest {
                [name, key] => self.witness(name, key, None),
                [name, key, url] => self.witness(name, key, Some(url)),
                _ => Err(format!(
                    "`witness` takes a name, a key and an optional URL (witness <name> <vkey> [<url>]), not {} items",
                    rest.len()
                )),
            },
            ["group", name, k, members @ ..] if !members.is_empty() => {
                self.group(name, k, members)
            }
            ["group", ..] => Err(
                "`group` takes a name, all|any|<k> and at least one member (group <name> <k> <member>...)"
                    .into(),
            ),
            ["quorum", name] => self.quorum(name),
            ["quorum", ..] => {
                Err("`quorum` takes exactly one name (quorum <name>, or quorum none)".into())
            }
            [other, ..] => Err(format!(
                "unknown keyword {other:?}: a line starts with log, witness, group, quorum or #"
            )),
            [] => Ok(()),
        }
    }

    fn log(&mut self, key: &str, url: Option<&str>) -> Result<(), String> {
        if self.logs.len() == MAX_POLICY_LOGS {
            return Err(format!("more than {MAX_POLICY_LOGS} logs"));
        }
        let (vkey, public_key) = match parse_hex_key(key) {
            Some(raw) => {
                ed25519_dalek::VerifyingKey::from_bytes(&raw)
                    .ok()
                    .filter(|k| !k.is_weak())
                    .ok_or_else(|| format!("log key {key} is not a usable Ed25519 public key"))?;
                (None, raw)
            }
            None => {
                VerifierKey::parse(key).map_err(|e| format!("log key: {e}"))?;
                let raw = vkey_public_key(key).ok_or("log key: not a vkey")?;
                (Some(key.to_owned()), raw)
            }
        };
        if self.logs.iter().any(|l| l.public_key == public_key) {
            return Err("a log with this public key is already listed".into());
        }
        self.logs.push(PolicyLog {
            vkey,
            public_key,
            url: url.map(str::to_owned),
        });
        Ok(())
    }

    fn witness(&mut self, name: &str, key: &str, url: Option<&str>) -> Result<(), String> {
        self.check_new_name(name)?;
        if self.witnesses.len() == MAX_POLICY_WITNESSES {
            return Err(format!("more than {MAX_POLICY_WITNESSES} witnesses"));
        }
        let verifier = match parse_hex_key(key) {
            Some(raw) => CosignerVerifier::from_parts(name, &raw).map_err(|e| {
                format!(
                    "witness {name:?} with a hex key: its name is its cosigner key name, and {e}"
                )
            })?,
            None => CosignerVerifier::parse(key).map_err(|e| format!("witness {name:?}: {e}"))?,
        };
        if let Some(other) = self
            .witnesses
            .iter()
            .find(|w| w.verifier.public_key() == verifier.public_key())
        {
            return Err(format!(
                "witness {name:?} has the same public key as witness {:?}",
                other.name
            ));
        }
        self.witnesses.push(PolicyWitness {
            name: name.to_owned(),
            verifier,
            url: url.map(str::to_owned),
        });
        Ok(())
    }

    fn group(&mut self, name: &str, k: &str, members: &[&str]) -> Result<(), String> {
        self.check_new_name(name)?;
        if self.groups.len() == MAX_POLICY_GROUPS {
            return Err(format!("more than {MAX_POLICY_GROUPS} groups"));
        }
        let n = members.len();
        let k = match k {
            "all" => n,
            "any" => 1,
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                let k: usize = digits.parse().unwrap_or(usize::MAX);
                if !(1..=n).contains(&k) {
                    return Err(format!(
                        "group {name:?}: the threshold {digits} must be between 1 and its {n} members"
                    ));
                }
                k
            }
            other => {
                return Err(format!(
                    "group {name:?}: the threshold {other:?} is not all, any or a decimal number"
                ));
            }
        };
        let mut nodes = Vec::with_capacity(n);
        for member in members {
            if *member == "none" {
                return Err(format!("group {name:?}: `none` cannot be a group member"));
            }
            let node = self.lookup(member).ok_or_else(|| {
                format!(
                    "group {name:?}: member {member:?} is not a witness or group defined on an earlier line"
                )
            })?;
            if !self.used_as_member.insert((*member).to_owned()) {
                return Err(format!(
                    "group {name:?}: {member:?} is already a member of a group (a name may be a member once)"
                ));
            }
            nodes.push(node);
        }
        self.groups.push(Group {
            name: name.to_owned(),
            k,
            members: nodes,
        });
        Ok(())
    }

    fn quorum(&mut self, name: &str) -> Result<(), String> {
        if self.quorum.is_some() {
            return Err("a second `quorum` line (a policy has exactly one)".into());
        }
        let node = if name == "none" {
            None
        } else {
            Some(self.lookup(name).ok_or_else(|| {
                format!("quorum {name:?} is not a witness or group defined on an earlier line")
            })?)
        };
        self.quorum = Some(node);
        Ok(())
    }

    fn lookup(&self, name: &str) -> Option<Node> {
        if let Some(i) = self.witnesses.iter().position(|w| w.name == name) {
            return Some(Node::Witness(i));
        }
        self.groups
            .iter()
            .position(|g| g.name == name)
            .map(Node::Group)
    }

    fn check_new_name(&self, name: &str) -> Result<(), String> {
        if name == "none" {
            return Err("the name `none` is reserved (quorum none)".into());
        }
        if self.lookup(name).is_some() {
            return Err(format!("the name {name:?} is already defined"));
        }
        Ok(())
    }
}
