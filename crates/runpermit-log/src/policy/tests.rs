use super::*;
use crate::checkpoint::{LogKey, sign_checkpoint};
use crate::cosignature::{CosignerKey, add_signature_lines};
use crate::tree::leaf_hash;

const LOG: &str = "log.example.org/runpermit";

fn witness(i: u8) -> CosignerKey {
    CosignerKey::from_seed(&format!("w{i}.example"), &[i; 32]).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn log_key() -> LogKey {
    LogKey::from_seed(LOG, &[7; 32]).unwrap()
}

/// Three witnesses in vkey form, named A, B, C, and `rest` after them.
fn three(rest: &str) -> String {
    format!(
        "witness A {}\nwitness B {}\nwitness C {}\n{rest}",
        witness(1).verifier_key(),
        witness(2).verifier_key(),
        witness(3).verifier_key()
    )
}

fn syntax_error(text: &str) -> (usize, String) {
    match WitnessPolicy::parse(text) {
        Err(PolicyError::Syntax { line, reason }) => (line, reason),
        other => panic!("expected a syntax error for {text:?}, got {other:?}"),
    }
}

#[test]
fn parses_the_c2sp_example_shape_with_comments_and_whitespace() {
    let text = format!(
        "# a comment\n  \t# an indented comment\n\nlog {} https://log.example.org/\n\
         \twitness  X1\t{} https://w1.example/  \n{}",
        log_key().verifier_key(),
        witness(1).verifier_key(),
        format_args!(
            "witness X2 {}\nwitness X3 {}\ngroup X-witnesses 2 X1 X2 X3\n\
             witness Y1 {}\nwitness Y2 {}\ngroup Y-witnesses any Y1 Y2\n\
             group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n",
            witness(2).verifier_key(),
            witness(3).verifier_key(),
            witness(4).verifier_key(),
            witness(5).verifier_key()
        )
    );
    let policy = WitnessPolicy::parse(&text).unwrap();
    assert_eq!(policy.logs().len(), 1);
    assert_eq!(
        policy.logs()[0].url.as_deref(),
        Some("https://log.example.org/")
    );
    let names: Vec<&str> = policy.witnesses().iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["X1", "X2", "X3", "Y1", "Y2"]);
    assert_eq!(
        policy.witnesses()[0].url.as_deref(),
        Some("https://w1.example/")
    );
    assert_eq!(policy.witnesses()[0].verifier, witness(1).verifier());
    assert!(!policy.quorum_met(&["X1", "X2"]));
    assert!(!policy.quorum_met(&["X1", "Y1", "Y2"]));
    assert!(policy.quorum_met(&["X1", "X3", "Y2"]));
    assert!(policy.quorum_met(&["X1", "X2", "X3", "Y1", "Y2"]));
    assert_eq!(policy.missing(&["X1", "X3", "Y2"]), Vec::<String>::new());
    assert_eq!(policy.missing(&["X1", "Y1"]), ["X2", "X3"]);
    assert_eq!(policy.missing(&["X1", "X2"]), ["Y1", "Y2"]);
    assert_eq!(policy.missing(&[]), ["X1", "X2", "X3", "Y1", "Y2"]);
}

#[test]
fn quorum_shapes() {
    // A single witness.
    let p = WitnessPolicy::parse(&three("quorum B\n")).unwrap();
    assert!(p.quorum_met(&["B"]));
    assert!(!p.quorum_met(&["A", "C"]));
    assert_eq!(p.missing(&["A"]), ["B"]);
    // none: nothing needed, witnesses optional.
    let p = WitnessPolicy::parse("quorum none\n").unwrap();
    assert!(p.requires_no_cosignature());
    assert!(p.quorum_met(&[]));
    assert!(p.missing(&[]).is_empty());
    // all, any, k.
    let all = WitnessPolicy::parse(&three("group g all A B C\nquorum g\n")).unwrap();
    let any = WitnessPolicy::parse(&three("group g any A B C\nquorum g\n")).unwrap();
    let two = WitnessPolicy::parse(&three("group g 2 A B C\nquorum g\n")).unwrap();
    let subsets: [&[&str]; 8] = [
        &[],
        &["A"],
        &["B"],
        &["C"],
        &["A", "B"],
        &["A", "C"],
        &["B", "C"],
        &["A", "B", "C"],
    ];
    for s in subsets {
        assert_eq!(all.quorum_met(s), s.len() == 3, "all {s:?}");
        assert_eq!(any.quorum_met(s), !s.is_empty(), "any {s:?}");
        assert_eq!(two.quorum_met(s), s.len() >= 2, "2-of-3 {s:?}");
    }
    assert_eq!(two.missing(&["C"]), ["A", "B"]);
    assert_eq!(all.missing(&["C"]), ["A", "B"]);
    // Unknown names and repeats count for nothing.
    assert!(!two.quorum_met(&["A", "A", "Z"]));
    // A group of one group.
    let nested =
        WitnessPolicy::parse(&three("group g 2 A B C\ngroup h all g\nquorum h\n")).unwrap();
    assert!(nested.quorum_met(&["A", "C"]));
    assert!(!nested.quorum_met(&["C"]));
}

#[test]
fn hex_keys_as_sigsum_writes_them() {
    let w = witness(1);
    let text = format!(
        "log {}\nwitness w1.example {}\nquorum w1.example\n",
        hex(&log_key().public_key()).to_uppercase(),
        hex(&w.public_key())
    );
    let policy = WitnessPolicy::parse(&text).unwrap();
    assert_eq!(policy.logs()[0].vkey, None);
    assert_eq!(policy.logs()[0].public_key, log_key().public_key());
    // The witness name is its cosigner key name.
    assert_eq!(policy.witnesses()[0].verifier, w.verifier());
    // A name a cosigner key cannot have is refused on its line.
    let (line, reason) = syntax_error(&format!(
        "witness a+b {}\nquorum none\n",
        hex(&w.public_key())
    ));
    assert_eq!(line, 1);
    assert!(reason.contains("cosigner key name"), "{reason}");
}

#[test]
fn every_syntax_rule_is_refused_with_its_line() {
    let w1 = witness(1).verifier_key();
    let w2 = witness(2).verifier_key();
    let log = log_key().verifier_key();
    let cases: Vec<(String, usize, &str)> = vec![
        ("quorum none\r\n".into(), 1, "carriage return"),
        ("# ok\nquorum\x0bnone\n".into(), 2, "control character 0x0b"),
        ("quorum none\nfrobnicate x\n".into(), 2, "unknown keyword"),
        ("log\nquorum none\n".into(), 1, "`log` takes"),
        (
            format!("log {log} url extra\nquorum none\n"),
            1,
            "`log` takes",
        ),
        ("log abc\nquorum none\n".into(), 1, "log key"),
        (format!("log {w1}\nquorum none\n"), 1, "log key"),
        (
            format!("log {log}\nlog {log} http://x\nquorum none\n"),
            2,
            "already listed",
        ),
        ("witness A\nquorum none\n".into(), 1, "`witness` takes"),
        (
            format!("witness A {w1} url extra\nquorum none\n"),
            1,
            "`witness` takes",
        ),
        (
            format!("witness A {log}\nquorum none\n"),
            1,
            "witness \"A\"",
        ),
        (
            format!("witness A {}\nquorum none\n", "zz".repeat(32)),
            1,
            "witness \"A\"",
        ),
        (
            format!("witness A {w1}\nwitness A {w2}\nquorum none\n"),
            2,
            "already defined",
        ),
        (
            format!("witness A {w1}\nwitness B {w1}\nquorum none\n"),
            2,
            "same public key",
        ),
        (format!("witness none {w1}\nquorum none\n"), 1, "reserved"),
        (
            format!("witness A {w1}\ngroup g 1\nquorum none\n"),
            2,
            "at least one member",
        ),
        (
            format!("witness A {w1}\ngroup g 0 A\nquorum none\n"),
            2,
            "between 1 and",
        ),
        (
            format!("witness A {w1}\ngroup g 2 A\nquorum none\n"),
            2,
            "between 1 and",
        ),
        (
            format!("witness A {w1}\ngroup g -1 A\nquorum none\n"),
            2,
            "not all, any",
        ),
        (
            format!("witness A {w1}\ngroup g some A\nquorum none\n"),
            2,
            "not all, any",
        ),
        (
            format!("witness A {w1}\ngroup g any B\nquorum none\n"),
            2,
            "\"B\" is not",
        ),
        (
            format!("witness A {w1}\ngroup g any A none\nquorum none\n"),
            2,
            "`none` cannot",
        ),
        (
            format!("witness A {w1}\ngroup g any A A\nquorum none\n"),
            2,
            "already a member",
        ),
        (
            format!("witness A {w1}\ngroup g any A\ngroup h any A\nquorum none\n"),
            3,
            "already a member",
        ),
        (
            format!("witness A {w1}\ngroup A any A\nquorum none\n"),
            2,
            "already defined",
        ),
        (
            format!("group g any A\nwitness A {w1}\nquorum g\n"),
            1,
            "earlier line",
        ),
        (format!("quorum A\nwitness A {w1}\n"), 1, "earlier line"),
        (
            format!("witness A {w1}\nquorum A\nquorum none\n"),
            3,
            "second `quorum`",
        ),
        ("quorum\n".into(), 1, "exactly one name"),
        ("quorum a b\n".into(), 1, "exactly one name"),
    ];
    for (text, line, needle) in cases {
        let (got_line, reason) = syntax_error(&text);
        assert_eq!(got_line, line, "{text:?}: {reason}");
        assert!(
            reason.contains(needle),
            "{text:?}: {reason:?} lacks {needle:?}"
        );
        let shown = WitnessPolicy::parse(&text).unwrap_err().to_string();
        assert!(
            shown.starts_with(&format!("witness policy line {line}: ")),
            "{shown}"
        );
    }
    assert_eq!(
        WitnessPolicy::parse("# only a comment\n"),
        Err(PolicyError::NoQuorum)
    );
    assert_eq!(WitnessPolicy::parse(""), Err(PolicyError::NoQuorum));
    // Non-ASCII bytes are opaque: allowed in names and comments, and distinct.
    let p = WitnessPolicy::parse(&format!(
        "# kommentar ü\nwitness K {w1}\nwitness \u{212a} {w2}\nquorum \u{212a}\n"
    ))
    .unwrap();
    assert!(p.quorum_met(&["\u{212a}"]));
    assert!(!p.quorum_met(&["K"]));
    // No newline at the end is fine; a '#' inside a line is not a comment.
    assert!(WitnessPolicy::parse("quorum none").is_ok());
    assert!(WitnessPolicy::parse("quorum none # trailing").is_err());
}

#[test]
fn limits_are_at_least_32_and_enforced() {
    let mut text = String::new();
    for i in 0..MAX_POLICY_WITNESSES {
        let key = CosignerKey::from_seed(&format!("w{i}"), &[i as u8 + 1; 32]).unwrap();
        text.push_str(&format!("witness w{i} {}\n", key.verifier_key()));
        text.push_str(&format!(
            "log {}\n",
            LogKey::from_seed("l", &[i as u8 + 1; 32])
                .unwrap()
                .verifier_key()
        ));
    }
    for i in 0..MAX_POLICY_GROUPS {
        text.push_str(&format!("group g{i} any w{i}\n"));
    }
    let members: Vec<String> = (0..MAX_POLICY_GROUPS).map(|i| format!("g{i}")).collect();
    let ok = format!("{text}quorum g0\n");
    const { assert!(MAX_POLICY_WITNESSES >= 32 && MAX_POLICY_LOGS >= 32 && MAX_POLICY_GROUPS >= 32) };
    assert!(WitnessPolicy::parse(&ok).is_ok());
    let key = CosignerKey::from_seed("extra", &[200; 32]).unwrap();
    let over = format!("{text}witness extra {}\nquorum none\n", key.verifier_key());
    assert!(syntax_error(&over).1.contains("more than"));
    let over = format!(
        "{text}log {}\nquorum none\n",
        LogKey::from_seed("l", &[200; 32]).unwrap().verifier_key()
    );
    assert!(syntax_error(&over).1.contains("more than"));
    let over = format!("{text}group top all {}\nquorum none\n", members.join(" "));
    assert!(syntax_error(&over).1.contains("more than"));
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: LOG.into(),
        size: 42,
        root_hash: leaf_hash(b"root"),
    }
}

fn cosigned(by: &[&CosignerKey]) -> String {
    let note = sign_checkpoint(&checkpoint(), &log_key()).unwrap();
    let lines: Vec<String> = by
        .iter()
        .map(|k| k.cosign(&checkpoint(), 1_700_000_000).unwrap())
        .collect();
    add_signature_lines(&note, &lines)
}

#[test]
fn verify_checkpoint_checks_log_then_cosignatures_then_quorum() {
    let (w1, w2, w3) = (witness(1), witness(2), witness(3));
    let log = log_key();
    let policy = WitnessPolicy::parse(&three(&format!(
        "log {}\ngroup g 2 A B C\nquorum g\n",
        log.verifier_key()
    )))
    .unwrap();
    let ok = policy
        .verify_checkpoint(&cosigned(&[&w3, &w1]), &log.verifier_key())
        .unwrap();
    assert_eq!(ok.checkpoint, checkpoint());
    let names: Vec<&str> = ok.cosigned_by.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["A", "C"]);
    assert_eq!(ok.cosigned_by[0].timestamp, 1_700_000_000);

    // One cosignature: quorum not met, naming who cosigned and who is missing.
    let err = policy
        .verify_checkpoint(&cosigned(&[&w2]), &log.verifier_key())
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::QuorumNotMet {
            cosigned_by: vec!["B".into()],
            missing: vec!["A".into(), "C".into()]
        }
    );
    let shown = err.to_string();
    assert!(
        shown.contains("cosigned by B") && shown.contains("A, C"),
        "{shown}"
    );

    // A cosignature by an unknown witness counts for nothing.
    let stranger = CosignerKey::from_seed("stranger.example", &[9; 32]).unwrap();
    assert!(matches!(
        policy.verify_checkpoint(&cosigned(&[&w1, &stranger]), &log.verifier_key()),
        Err(PolicyError::QuorumNotMet { .. })
    ));

    // A policy witness's line that does not verify is an error naming the witness.
    let note = sign_checkpoint(&checkpoint(), &log).unwrap();
    let mut other = checkpoint();
    other.size += 1;
    let bad = add_signature_lines(
        &note,
        &[
            w1.cosign(&checkpoint(), 5).unwrap(),
            w2.cosign(&other, 5).unwrap(),
            w3.cosign(&checkpoint(), 5).unwrap(),
        ],
    );
    assert_eq!(
        policy.verify_checkpoint(&bad, &log.verifier_key()),
        Err(PolicyError::BadCosignature {
            witness: "B".into()
        })
    );

    // Another log key: refused because the policy lists its logs.
    let other_log = LogKey::from_seed(LOG, &[8; 32]).unwrap();
    assert!(matches!(
        policy.verify_checkpoint(&cosigned(&[&w1, &w2]), &other_log.verifier_key()),
        Err(PolicyError::UnknownLog { .. })
    ));
    // A policy without log lines accepts the pinned key, whose signature still counts.
    let open = WitnessPolicy::parse(&three("group g 2 A B C\nquorum g\n")).unwrap();
    assert!(matches!(
        open.verify_checkpoint(&cosigned(&[&w1, &w2]), &other_log.verifier_key()),
        Err(PolicyError::Checkpoint(
            CheckpointError::NotSignedByKey { .. }
        ))
    ));
    assert!(
        open.verify_checkpoint(&cosigned(&[&w1, &w2]), &log.verifier_key())
            .is_ok()
    );
}

#[test]
fn a_hex_log_line_matches_the_pinned_key_by_public_key() {
    let log = log_key();
    let w1 = witness(1);
    let text = format!(
        "log {}\nwitness w1.example {}\nquorum w1.example\n",
        hex(&log.public_key()),
        hex(&w1.public_key())
    );
    let policy = WitnessPolicy::parse(&text).unwrap();
    assert!(
        policy
            .verify_checkpoint(&cosigned(&[&w1]), &log.verifier_key())
            .is_ok()
    );
    let other = LogKey::from_seed(LOG, &[8; 32]).unwrap();
    assert!(matches!(
        policy.verify_checkpoint(&cosigned(&[&w1]), &other.verifier_key()),
        Err(PolicyError::UnknownLog { .. })
    ));
}

#[test]
fn the_documented_policies_parse_and_mean_two_of_three() {
    let doc = include_str!("../../../../docs/log.md");
    let blocks: Vec<&str> = doc
        .split("```policy\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 2);
    for block in blocks {
        let policy = WitnessPolicy::parse(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        assert_eq!(policy.witnesses().len(), 3);
        let names: Vec<&str> = policy.witnesses().iter().map(|w| w.name.as_str()).collect();
        assert!(!policy.quorum_met(&names[..1]));
        assert!(policy.quorum_met(&names[1..]));
        // The documented log key is the one this crate's docs pin.
        assert_eq!(
            policy.logs()[0].public_key.to_vec(),
            STANDARD
                .decode("ARl/ayPhbIUyxqvIOPrNXqeJvgx2spIDNAOb+os9No1h")
                .unwrap()[1..]
                .to_vec()
        );
    }
}
