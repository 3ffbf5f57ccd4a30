use super::*;

pub(crate) const AT: i64 = 1_767_225_600;
pub(crate) const DIGEST: &str =
    "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
pub(crate) const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJydW5fMSJ9.c2lnbmF0dXJl";

fn flop(v: f64) -> Flop {
    Flop::new(v).unwrap()
}

/// One entry of every type.
pub(crate) fn samples() -> Vec<LogEntry> {
    let run = |f: fn(String, String, String) -> LogEntry, reason: &str| {
        f("pmt_1".into(), "run_1".into(), reason.into())
    };
    vec![
        LogEntry::ApplicationSubmitted {
            application_id: "app_1".into(),
            org_id: "org_lab".into(),
            plan_digest: DIGEST.into(),
            tier: "full-review".into(),
            estimated_flop: flop(3.8e25),
            policy_version: "2026-01".into(),
        },
        LogEntry::Decision {
            application_id: "app_1".into(),
            decision: DecisionKind::Approved,
            tier: "full-review".into(),
            policy_version: "2026-01".into(),
            reason: Some("meets SL3; evaluations at 4× milestones".into()),
        },
        LogEntry::Decision {
            application_id: "app_2".into(),
            decision: DecisionKind::ChangesRequested,
            tier: "standard".into(),
            policy_version: "2026-01".into(),
            reason: None,
        },
        LogEntry::PermitIssued {
            permit_id: "pmt_1".into(),
            application_id: "app_1".into(),
            run_id: "run_1".into(),
            holder_org_id: "org_lab".into(),
            token: TOKEN.into(),
            flop_budget: flop(4e25),
            nbf: AT,
            exp: AT + 86_400 * 180,
            policy_version: "2026-01".into(),
        },
        LogEntry::TrancheReleased {
            permit_id: "pmt_1".into(),
            run_id: "run_1".into(),
            tranche: 2,
            flop: flop(1.6e25),
        },
        run(
            |permit_id, run_id, reason| LogEntry::RunPaused {
                permit_id,
                run_id,
                reason,
            },
            "milestone 2 evaluation due",
        ),
        run(
            |permit_id, run_id, reason| LogEntry::RunResumed {
                permit_id,
                run_id,
                reason,
            },
            "evaluation accepted",
        ),
        run(
            |permit_id, run_id, reason| LogEntry::RunRevoked {
                permit_id,
                run_id,
                reason,
            },
            "weights security breach \"SL3\"\n(see incident inc_9)",
        ),
        run(
            |permit_id, run_id, reason| LogEntry::RunCompleted {
                permit_id,
                run_id,
                reason,
            },
            "",
        ),
        LogEntry::UsageSummary {
            run_id: "run_1".into(),
            cumulative_flop: flop(1.23456789e24),
            providers: 3,
            through: AT + 3600,
        },
        LogEntry::ModelRegistered {
            run_id: "run_1".into(),
            model_name: "Frontier-1 ✨".into(),
            checkpoint_digest: DIGEST.into(),
        },
        LogEntry::AccessGranted {
            grant_id: "grt_1".into(),
            model_id: "mdl_1".into(),
            grantee_org_id: "org_institute".into(),
            tier: "logprobs".into(),
            token: TOKEN.into(),
        },
        LogEntry::AccessChanged {
            grant_id: "grt_1".into(),
            status: "suspended".into(),
            reason: "usage reports overdue".into(),
        },
    ]
}

#[test]
fn access_entries_name_known_tiers_and_changes_only() {
    let bad = LogEntry::AccessGranted {
        grant_id: "grt_1".into(),
        model_id: "mdl_1".into(),
        grantee_org_id: "org_institute".into(),
        tier: "root".into(),
        token: "not a token".into(),
    };
    let fields: Vec<String> = bad.problems(AT).into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["tier", "token"]);
    let bad = LogEntry::AccessChanged {
        grant_id: String::new(),
        status: "paused".into(),
        reason: "x".into(),
    };
    let fields: Vec<String> = bad.problems(AT).into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["grant_id", "status"]);
}

#[test]
fn every_type_round_trips() {
    let samples = samples();
    let mut types: Vec<&str> = samples.iter().map(LogEntry::type_name).collect();
    types.dedup();
    assert_eq!(types, LogEntry::TYPES);
    for entry in samples {
        let bytes = encode(&entry, AT).unwrap();
        assert_eq!(decode(&bytes).unwrap(), (entry.clone(), AT), "{entry:?}");
        let text = std::str::from_utf8(&bytes).unwrap();
        assert!(
            text.starts_with('{') && !text.contains(": ") && !text.contains(", "),
            "{text}"
        );
    }
}

#[test]
fn encoding_is_canonical_json() {
    let permit = &samples()[3];
    let text = String::from_utf8(encode(permit, AT).unwrap()).unwrap();
    assert_eq!(
        text,
        format!(
            "{{\"application_id\":\"app_1\",\"at\":1767225600,\"exp\":1782777600,\
             \"flop_budget\":4e+25,\"holder_org_id\":\"org_lab\",\"nbf\":1767225600,\
             \"permit_id\":\"pmt_1\",\"policy_version\":\"2026-01\",\"run_id\":\"run_1\",\
             \"token\":\"{TOKEN}\",\"type\":\"permit_issued\",\"v\":1}}"
        )
    );
    let decision = &samples()[2];
    let text = String::from_utf8(encode(decision, AT).unwrap()).unwrap();
    assert_eq!(
        text,
        "{\"application_id\":\"app_2\",\"at\":1767225600,\"decision\":\"changes_requested\",\
         \"policy_version\":\"2026-01\",\"reason\":null,\"tier\":\"standard\",\
         \"type\":\"decision\",\"v\":1}"
    );
    // Another JSON reader reads every member back.
    for entry in samples() {
        let bytes = encode(&entry, AT).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["v"], 1);
        assert_eq!(value["type"], entry.type_name());
        assert_eq!(value["at"], AT);
        assert_eq!(
            value.as_object().unwrap().len(),
            entry.members().len() + 3,
            "{entry:?}"
        );
    }
}

#[test]
fn tampered_or_reencoded_entries_are_refused() {
    let bytes = encode(&samples()[3], AT).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let non_canonical = [
        // Whitespace, as a pretty printer would add.
        text.replacen(":", ": ", 1),
        format!(" {text}"),
        format!("{text}\n"),
        // Keys out of order.
        text.replacen(
            "\"application_id\":\"app_1\",\"at\":1767225600",
            "\"at\":1767225600,\"application_id\":\"app_1\"",
            1,
        ),
        // Other spellings of the same numbers and strings.
        text.replacen("4e+25", "4E+25", 1),
        text.replacen("4e+25", "4e25", 1),
        text.replacen("4e+25", "40000000000000000000000000", 1),
        text.replacen("4e+25", "4.0e+25", 1),
        text.replacen("\"v\":1", "\"v\":1.0", 1),
        text.replacen("app_1", "app\\u005f1", 1),
        text.replacen("2026-01", "2026\\u002d01", 1),
    ];
    for tampered in non_canonical {
        let err = decode(tampered.as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                EntryError::NonCanonical { .. } | EntryError::UnsupportedVersion(_)
            ),
            "{tampered}: {err}"
        );
    }
    let reordered = text.replacen(
        "\"application_id\":\"app_1\",\"at\":1767225600",
        "\"at\":1767225600,\"application_id\":\"app_1\"",
        1,
    );
    assert_eq!(
        decode(reordered.as_bytes()),
        Err(EntryError::NonCanonical { offset: 3 })
    );
    // A changed value that is still canonical decodes: the tree catches those.
    let changed = text.replacen("run_1", "run_2", 1);
    assert!(decode(changed.as_bytes()).is_ok());
}

#[test]
fn unknown_versions_types_and_fields_are_refused() {
    let text = String::from_utf8(encode(&samples()[4], AT).unwrap()).unwrap();
    assert_eq!(
        decode(text.replacen("\"v\":1", "\"v\":2", 1).as_bytes()),
        Err(EntryError::UnsupportedVersion("2".into()))
    );
    assert_eq!(
        decode(
            text.replacen("tranche_released", "tranche_revoked", 1)
                .as_bytes()
        ),
        Err(EntryError::UnknownType("tranche_revoked".into()))
    );
    let extra = text.replacen("{", "{\"a_new_field\":\"x\",", 1);
    let Err(EntryError::Invalid(errors)) = decode(extra.as_bytes()) else {
        panic!("accepted an unknown field");
    };
    assert_eq!(errors[0].field, "a_new_field");
    assert_eq!(errors[0].message, "unknown field");
    let missing = text.replacen("\"tranche\":2,", "", 1);
    let Err(EntryError::Invalid(errors)) = decode(missing.as_bytes()) else {
        panic!("accepted a missing field");
    };
    assert_eq!(
        (errors[0].field.as_str(), errors[0].message.as_str()),
        ("tranche", "missing")
    );
    let wrong = text.replacen("\"tranche\":2", "\"tranche\":\"2\"", 1);
    let err = decode(wrong.as_bytes()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid log entry: tranche: must be an integer"
    );
    for bad in [&b"[1]"[..], b"", b"{\"v\":1", b"null"] {
        assert!(matches!(decode(bad), Err(EntryError::Malformed { .. })));
    }
    assert!(matches!(
        decode(b"{\"type\":\"decision\"}"),
        Err(EntryError::Invalid(_))
    ));
}

#[test]
fn unknown_decisions_are_named() {
    let text = String::from_utf8(encode(&samples()[1], AT).unwrap()).unwrap();
    for (bad, message) in [
        ("\"decision\":\"approved\"", "decision: missing"),
        ("\"decision\":\"\"", "decision: unknown decision \"\""),
        (
            "\"decision\":\"granted\"",
            "decision: unknown decision \"granted\"",
        ),
        ("\"decision\":1", "decision: must be a string"),
    ] {
        let changed = if message.ends_with("missing") {
            text.replacen(&format!("{bad},"), "", 1)
        } else {
            text.replacen("\"decision\":\"approved\"", bad, 1)
        };
        let err = decode(changed.as_bytes()).unwrap_err();
        assert!(err.to_string().contains(message), "{changed}: {err}");
    }
}

#[test]
fn every_invalid_field_is_named_at_once() {
    let entry = LogEntry::PermitIssued {
        permit_id: String::new(),
        application_id: "app\u{7}".into(),
        run_id: "run_1".into(),
        holder_org_id: "org".into(),
        token: "not a token".into(),
        flop_budget: flop(1e25),
        nbf: 10,
        exp: 10,
        policy_version: "v".into(),
    };
    let Err(EntryError::Invalid(errors)) = encode(&entry, -1) else {
        panic!("accepted an invalid entry");
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        ["at", "permit_id", "application_id", "token", "exp"]
    );
    let bad_digest = LogEntry::ModelRegistered {
        run_id: "r".into(),
        model_name: "m".into(),
        checkpoint_digest: DIGEST.to_uppercase(),
    };
    let err = encode(&bad_digest, AT).unwrap_err();
    assert!(
        err.to_string()
            .contains("checkpoint_digest: must be \"sha256:\""),
        "{err}"
    );
    let tranche0 = LogEntry::TrancheReleased {
        permit_id: "p".into(),
        run_id: "r".into(),
        tranche: 0,
        flop: flop(1.0),
    };
    assert!(encode(&tranche0, AT).is_err());
    // Negative FLOP cannot be decoded either.
    let text = String::from_utf8(encode(&samples()[4], AT).unwrap()).unwrap();
    let negative = text.replacen("1.6e+25", "-1.6e+25", 1);
    let err = decode(negative.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("flop: must not be negative"),
        "{err}"
    );
}

#[test]
fn entries_stay_below_the_bundle_limit() {
    let long = |n: usize| LogEntry::RunRevoked {
        permit_id: "p".into(),
        run_id: "r".into(),
        reason: "x".repeat(n),
    };
    let base = encode(&long(0), AT).unwrap().len();
    let fits = encode(&long(MAX_ENTRY_BYTES - base), AT).unwrap();
    assert_eq!(fits.len(), MAX_ENTRY_BYTES);
    assert!(decode(&fits).is_ok());
    assert_eq!(
        encode(&long(MAX_ENTRY_BYTES - base + 1), AT),
        Err(EntryError::TooLarge {
            size: MAX_ENTRY_BYTES + 1
        })
    );
    assert!(matches!(
        decode(&vec![b' '; MAX_ENTRY_BYTES + 1]),
        Err(EntryError::TooLarge { .. })
    ));
}
