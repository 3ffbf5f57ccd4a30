//! Witness policies and cosignatures checked by code nobody here wrote: the `sigsum` crate.
//!
//! - Differential: policies in Sigsum's hex-key form, parsed by both, must agree on the
//!   quorum for every subset of witnesses.
//! - Third-party verification: a Sigsum-shaped log (its origin, leaves and leaf signatures as
//!   Sigsum defines them) is built with this crate's tree, checkpoint and cosignature code, and
//!   `sigsum::verify` must accept its proof with a policy naming the witnesses, and refuse a
//!   tampered cosignature or a quorum not met.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use runpermit_log::{
    Checkpoint, CosignerKey, Hash, LogKey, PolicyError, WitnessPolicy, add_signature_lines, append,
    inclusion_proof, leaf_hash, sign_checkpoint,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// A deterministic generator, so a failure can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random policy over `n` hex-key witnesses `w0.example`…: groups formed from names not
/// yet a member anywhere (the C2SP rule), thresholds written as all, any or a number, and a
/// quorum on any defined name (or none).
fn random_policy(rng: &mut XorShift, keys: &[CosignerKey]) -> String {
    let mut text = String::new();
    let mut defined: Vec<String> = Vec::new();
    let mut free: Vec<String> = Vec::new();
    for key in keys {
        text.push_str(&format!(
            "witness {} {}\n",
            key.name(),
            hex(&key.public_key())
        ));
        defined.push(key.name().to_owned());
        free.push(key.name().to_owned());
    }
    let groups = rng.below(5);
    for g in 0..groups {
        if free.is_empty() {
            break;
        }
        let size = 1 + rng.below(free.len());
        let mut members = Vec::new();
        for _ in 0..size {
            members.push(free.remove(rng.below(free.len())));
        }
        let k = match rng.below(3) {
            0 => "all".to_owned(),
            1 => "any".to_owned(),
            _ => (1 + rng.below(members.len())).to_string(),
        };
        let name = format!("group-{g}");
        text.push_str(&format!("group {name} {k} {}\n", members.join(" ")));
        defined.push(name.clone());
        free.push(name);
    }
    let quorum = if rng.below(10) == 0 {
        "none".to_owned()
    } else if rng.below(2) == 0 {
        free[rng.below(free.len())].clone()
    } else {
        defined[rng.below(defined.len())].clone()
    };
    text.push_str(&format!("quorum {quorum}\n"));
    text
}

fn witnesses(n: usize) -> Vec<CosignerKey> {
    (0..n)
        .map(|i| CosignerKey::from_seed(&format!("w{i}.example"), &[i as u8 + 1; 32]).unwrap())
        .collect()
}

fn fixed_shapes() -> Vec<String> {
    [
        "quorum w0.example",
        "group g any w0.example w1.example w2.example\nquorum g",
        "group g all w0.example w1.example w2.example\nquorum g",
        "group g 2 w0.example w1.example w2.example\nquorum g",
        "group X 2 w0.example w1.example w2.example\ngroup Y any w3.example w4.example\n\
         group XY all X Y\nquorum XY",
        "group g1 2 w0.example w1.example w2.example\ngroup g2 all w3.example w4.example\n\
         group g3 2 g1 g2 w5.example\nquorum g3",
        "quorum none",
    ]
    .iter()
    .map(|shape| {
        let mut text = String::from("# fixed shape\n");
        for key in witnesses(6) {
            text.push_str(&format!(
                "witness {} {}\n",
                key.name(),
                hex(&key.public_key())
            ));
        }
        text.push_str(shape);
        text.push('\n');
        text
    })
    .collect()
}

#[test]
fn quorum_agrees_with_sigsum_on_every_subset() {
    let mut rng = XorShift(0x5eed_0f51_65a5_u64);
    let mut policies: Vec<(String, usize)> = fixed_shapes().into_iter().map(|p| (p, 6)).collect();
    for _ in 0..200 {
        let n = 1 + rng.below(7);
        policies.push((random_policy(&mut rng, &witnesses(n)), n));
    }
    let mut met_count = 0;
    let mut unmet_count = 0;
    for (text, n) in &policies {
        let keys = witnesses(*n);
        let ours = WitnessPolicy::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let theirs = sigsum::Policy::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for subset in 0u32..(1 << n) {
            let chosen: Vec<&CosignerKey> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| subset & (1 << i) != 0)
                .map(|(_, k)| k)
                .collect();
            let names: Vec<&str> = chosen.iter().map(|k| k.name()).collect();
            let keyhashes: Vec<sigsum::Hash> = chosen
                .iter()
                .map(|k| sigsum::Hash::new(k.public_key()))
                .collect();
            let met = ours.quorum_met(&names);
            assert_eq!(
                met,
                theirs.check_quorum(&keyhashes),
                "quorum disagrees for cosigners {names:?} under\n{text}"
            );
            // What `missing` names, added, meets the quorum; a met quorum misses nothing.
            let missing = ours.missing(&names);
            if met {
                met_count += 1;
                assert!(missing.is_empty(), "{names:?} {missing:?}\n{text}");
            } else {
                unmet_count += 1;
                let mut all = names.clone();
                all.extend(missing.iter().map(String::as_str));
                assert!(ours.quorum_met(&all), "{names:?} + {missing:?}\n{text}");
            }
        }
    }
    // The generator produced both outcomes plenty of times.
    assert!(
        met_count > 500 && unmet_count > 500,
        "{met_count} {unmet_count}"
    );
}

/// A Sigsum log's entry: its checksum, the submitter's signature and key hash.
struct SigsumLeaf {
    message: [u8; 32],
    bytes: Vec<u8>,
}

fn sigsum_leaf(submitter: &SigningKey, data: &[u8]) -> SigsumLeaf {
    let message = sha256(data);
    let checksum = sha256(&message);
    let mut signed = b"sigsum.org/v1/tree-leaf\0".to_vec();
    signed.extend_from_slice(&checksum);
    let signature = submitter.sign(&signed).to_bytes();
    let mut bytes = checksum.to_vec();
    bytes.extend_from_slice(&signature);
    bytes.extend_from_slice(&sha256(submitter.verifying_key().as_bytes()));
    SigsumLeaf { message, bytes }
}

/// The bytes after the key id of the signature line by `name` in `note`.
fn signature_after_key_id(note: &str, name: &str) -> Vec<u8> {
    let prefix = format!("— {name} ");
    let line = note
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no line by {name}"));
    STANDARD.decode(line).unwrap()[4..].to_vec()
}

struct SigsumLog {
    log: LogKey,
    submitter: SigningKey,
    witnesses: Vec<CosignerKey>,
    leaves: Vec<SigsumLeaf>,
    checkpoint: Checkpoint,
    /// The checkpoint note with every witness's cosignature.
    note: String,
}

fn sigsum_log() -> SigsumLog {
    let log_seed = [21; 32];
    let log_public = SigningKey::from_bytes(&log_seed).verifying_key().to_bytes();
    let origin = format!("sigsum.org/v1/tree/{}", hex(&sha256(&log_public)));
    let log = LogKey::from_seed(&origin, &log_seed).unwrap();
    let submitter = SigningKey::from_bytes(&[22; 32]);
    let leaves: Vec<SigsumLeaf> = (0..7)
        .map(|i| sigsum_leaf(&submitter, format!("release {i}\n").as_bytes()))
        .collect();
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(&l.bytes)).collect();
    let appended = append(0, &hashes, &Vec::<Hash>::new()).unwrap();
    let checkpoint = Checkpoint {
        origin,
        size: appended.size,
        root_hash: appended.root,
    };
    let witnesses = witnesses(3);
    let lines: Vec<String> = witnesses
        .iter()
        .enumerate()
        .map(|(i, w)| w.cosign(&checkpoint, 1_767_225_600 + i as u64).unwrap())
        .collect();
    let note = add_signature_lines(&sign_checkpoint(&checkpoint, &log).unwrap(), &lines);
    SigsumLog {
        log,
        submitter,
        witnesses,
        leaves,
        checkpoint,
        note,
    }
}

impl SigsumLog {
    /// The Sigsum proof (ascii, version 2) of leaf `index`, with the cosignatures of the
    /// witnesses `cosigners` (indexes), taken from the cosigned note.
    fn proof(&self, index: usize, cosigners: &[usize], note: &str) -> String {
        let hashes: Vec<Hash> = self.leaves.iter().map(|l| leaf_hash(&l.bytes)).collect();
        let stored = append(0, &hashes, &Vec::<Hash>::new()).unwrap().hashes;
        let path = inclusion_proof(index as u64, self.checkpoint.size, &stored).unwrap();
        let leaf = &self.leaves[index].bytes;
        let mut out = format!(
            "version=2\nlog={}\nleaf={} {}\n\nsize={}\nroot_hash={}\nsignature={}\n",
            hex(&sha256(&self.log.public_key())),
            hex(&leaf[96..]),
            hex(&leaf[32..96]),
            self.checkpoint.size,
            hex(self.checkpoint.root_hash.as_bytes()),
            hex(&signature_after_key_id(note, self.log.name())),
        );
        for &i in cosigners {
            let w = &self.witnesses[i];
            let raw = signature_after_key_id(note, w.name());
            let timestamp = u64::from_be_bytes(raw[..8].try_into().unwrap());
            out.push_str(&format!(
                "cosignature={} {timestamp} {}\n",
                hex(&sha256(&w.public_key())),
                hex(&raw[8..])
            ));
        }
        out.push_str(&format!("\nleaf_index={index}\n"));
        for h in path {
            out.push_str(&format!("node_hash={}\n", hex(h.as_bytes())));
        }
        out
    }

    fn policy(&self, quorum: &str) -> String {
        let mut text = format!("log {}\n", hex(&self.log.public_key()));
        for w in &self.witnesses {
            text.push_str(&format!("witness {} {}\n", w.name(), hex(&w.public_key())));
        }
        text.push_str(quorum);
        text
    }

    fn sigsum_verify(&self, index: usize, proof: &str, policy: &str) -> Result<(), String> {
        let signature = sigsum::SigsumSignature::from_ascii(proof).map_err(|e| e.to_string())?;
        let policy = sigsum::Policy::parse(policy).map_err(|e| e.to_string())?;
        let signers = [sigsum::PublicKey::from(
            self.submitter.verifying_key().to_bytes(),
        )];
        sigsum::verify(
            &sigsum::Hash::from(self.leaves[index].message),
            &signature,
            &signers,
            &policy,
        )
        .map_err(|e| e.to_string())
    }
}

#[test]
fn sigsum_verifies_our_tree_checkpoint_and_cosignatures() {
    let log = sigsum_log();
    let two_of_three = log.policy(&format!(
        "group g 2 {} {} {}\nquorum g\n",
        log.witnesses[0].name(),
        log.witnesses[1].name(),
        log.witnesses[2].name()
    ));
    for index in 0..log.leaves.len() {
        let proof = log.proof(index, &[0, 1, 2], &log.note);
        log.sigsum_verify(index, &proof, &two_of_three)
            .unwrap_or_else(|e| panic!("leaf {index}: {e}\n{proof}"));
        let two = log.proof(index, &[0, 2], &log.note);
        log.sigsum_verify(index, &two, &two_of_three).unwrap();
    }
    // Our policy code agrees on the same note, policy and log key.
    let ours = WitnessPolicy::parse(&two_of_three).unwrap();
    let witnessed = ours
        .verify_checkpoint(&log.note, &log.log.verifier_key())
        .unwrap();
    assert_eq!(witnessed.checkpoint, log.checkpoint);
    assert_eq!(witnessed.cosigned_by.len(), 3);

    // One cosignature is not a quorum, for Sigsum and for us.
    let one = log.proof(3, &[1], &log.note);
    let err = log.sigsum_verify(3, &one, &two_of_three).unwrap_err();
    assert!(err.contains("not enough valid cosignatures"), "{err}");
    let note_one = add_signature_lines(
        &sign_checkpoint(&log.checkpoint, &log.log).unwrap(),
        &[log.witnesses[1]
            .cosign(&log.checkpoint, 1_767_225_601)
            .unwrap()],
    );
    assert!(matches!(
        ours.verify_checkpoint(&note_one, &log.log.verifier_key()),
        Err(PolicyError::QuorumNotMet { missing, .. }) if missing == ["w0.example", "w2.example"]
    ));

    // A tampered cosignature is refused by Sigsum; the same tampering in the note, by us.
    let good = log.proof(3, &[0, 1], &log.note);
    let prefix = format!(
        "cosignature={} ",
        hex(&sha256(&log.witnesses[1].public_key()))
    );
    let tampered: String = good
        .lines()
        .map(|l| match l.strip_prefix(&prefix) {
            Some(rest) => {
                let (time, sig) = rest.split_once(' ').unwrap();
                let flipped = if sig.starts_with('0') { "1" } else { "0" };
                format!("{prefix}{time} {flipped}{}\n", &sig[1..])
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert_ne!(tampered, good);
    let err = log.sigsum_verify(3, &tampered, &two_of_three).unwrap_err();
    assert!(err.contains("bad witness cosignature"), "{err}");
    let line = log.witnesses[1].cosign(&log.checkpoint, 7).unwrap();
    let (head, b64) = line.trim_end().rsplit_once(' ').unwrap();
    let mut raw = STANDARD.decode(b64).unwrap();
    raw[20] ^= 1;
    let forged = add_signature_lines(
        &sign_checkpoint(&log.checkpoint, &log.log).unwrap(),
        &[format!("{head} {}\n", STANDARD.encode(raw))],
    );
    assert_eq!(
        ours.verify_checkpoint(&forged, &log.log.verifier_key()),
        Err(PolicyError::BadCosignature {
            witness: "w1.example".into()
        })
    );

    // A proof for another leaf does not verify under Sigsum either.
    let wrong = log.proof(2, &[0, 1, 2], &log.note);
    assert!(log.sigsum_verify(3, &wrong, &two_of_three).is_err());
}
