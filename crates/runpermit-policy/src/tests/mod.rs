//! Tests across the plan, the policy and the shipped examples.

use runpermit_compute::{Estimate, FieldError, Flop, HardwareTable, builtin_regimes};

use crate::*;

mod attacks;
mod validation;

const EXAMPLES: &[(&str, &str, Format, &str, Decision)] = &[
    (
        "exempt.toml",
        include_str!("../../../../examples/plans/exempt.toml"),
        Format::Toml,
        "exempt",
        Decision::Exempt,
    ),
    (
        "standard.toml",
        include_str!("../../../../examples/plans/standard.toml"),
        Format::Toml,
        "standard",
        Decision::AutoPermit,
    ),
    (
        "standard.json",
        include_str!("../../../../examples/plans/standard.json"),
        Format::Json,
        "standard",
        Decision::AutoPermit,
    ),
    (
        "full.toml",
        include_str!("../../../../examples/plans/full.toml"),
        Format::Toml,
        "full",
        Decision::Review,
    ),
    (
        "horizon.toml",
        include_str!("../../../../examples/plans/horizon.toml"),
        Format::Toml,
        "horizon",
        Decision::Deny,
    ),
    (
        "fine-tune.toml",
        include_str!("../../../../examples/plans/fine-tune.toml"),
        Format::Toml,
        "standard",
        Decision::AutoPermit,
    ),
];

fn example(name: &str) -> RunPlan {
    let (_, text, format, _, _) = EXAMPLES
        .iter()
        .find(|e| e.0 == name)
        .unwrap_or_else(|| panic!("no example {name}"));
    RunPlan::parse(text, *format).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn estimate(plan: &RunPlan) -> Estimate {
    plan.estimate(HardwareTable::builtin(), builtin_regimes())
        .unwrap_or_else(|e| panic!("{}: {e:?}", plan.run.name))
}

fn flop(value: f64) -> Flop {
    Flop::new(value).unwrap()
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

/// The standard example with `edit` applied to its TOML text.
fn standard_with(edit: impl Fn(&str) -> String) -> RunPlan {
    let text = edit(include_str!("../../../../examples/plans/standard.toml"));
    RunPlan::from_toml(&text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_example_parses_validates_and_lands_in_its_tier() {
    let policy = Policy::builtin();
    for (name, _, _, tier, decision) in EXAMPLES {
        let plan = example(name);
        plan.validate().unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let e = estimate(&plan);
        let c = classify(policy, &plan, &e);
        assert_eq!(c.tier, *tier, "{name} at {}", e.flop);
        assert_eq!(c.decision, *decision, "{name}");
        assert!(c.is_complete(), "{name} is incomplete: {:?}", c.missing);
        assert!(
            c.review_reasons.is_empty(),
            "{name}: {:?}",
            c.review_reasons
        );
        assert_eq!(c.policy_version, "2026.5");
        assert!(
            e.warnings.is_empty(),
            "{name}: the methods should agree: {:?}",
            e.warnings
        );
    }
}

#[test]
fn examples_are_sized_as_documented() {
    let close = |name: &str, expected: f64| {
        let e = estimate(&example(name));
        assert!(
            (e.flop.get() / expected - 1.0).abs() < 0.02,
            "{name}: {} instead of {expected:e}",
            e.flop
        );
        e
    };
    close("exempt.toml", 1.008e23);
    close("standard.toml", 3.79e25);
    close("full.toml", 1.98e26 + 2.8e23);
    close("horizon.toml", 3e27);
    let ft = close("fine-tune.toml", 9.6e24 + 8.4e23 + 5e22);
    assert!(ft.run_flop.get() < 1e25 && ft.flop.get() >= 1e25);
    let full = classify(
        Policy::builtin(),
        &example("full.toml"),
        &estimate(&example("full.toml")),
    );
    assert_eq!(full.approvals_required, 2);
}

#[test]
fn toml_and_json_of_the_same_plan_share_a_digest() {
    let toml = example("standard.toml");
    let json = example("standard.json");
    assert_eq!(toml, json);
    let digest = toml.digest();
    assert_eq!(digest, json.digest());
    let hex = digest.strip_prefix("sha256:").unwrap();
    assert_eq!(hex.len(), 64);
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // The canonical JSON reads back to the same plan, and keys follow struct order.
    let canonical = toml.canonical_json();
    assert_eq!(RunPlan::from_json(&canonical).unwrap(), toml);
    assert!(canonical.starts_with(r#"{"schema":"runpermit.plan/v1","run":{"name":"heron-405b""#));
    // Any change changes it.
    let mut other = toml.clone();
    other.compute.as_mut().unwrap().accelerators += 1;
    assert_ne!(other.digest(), digest);
    // A default written out or left out is the same plan.
    let without_epochs = standard_with(|t| t.replace("epochs = 1\n", ""));
    assert_eq!(without_epochs.digest(), digest);
}

/// Numbers in JSON are read exactly as in TOML (serde_json's `float_roundtrip`: without it
/// `9.6e24` reads one unit in the last place off), so every example's canonical JSON reads
/// back to the same plan and the same text. Found by the `plan_toml` fuzz target.
#[test]
fn canonical_json_reads_back_to_the_same_plan() {
    for &(name, text, format, ..) in EXAMPLES {
        let plan = RunPlan::parse(text, format).unwrap();
        let canonical = plan.canonical_json();
        let again = RunPlan::from_json(&canonical).unwrap();
        assert_eq!(again, plan, "{name}");
        assert_eq!(again.canonical_json(), canonical, "{name}");
    }
    let toml = example("fine-tune.toml");
    let json = RunPlan::from_json(&toml.canonical_json().replace("9.6e+24", "9.6e24")).unwrap();
    assert_eq!(json.base_model.unwrap().cumulative_flop.get(), 9.6e24);
}

#[test]
fn counts_and_dates_take_every_documented_form() {
    let a = standard_with(|t| {
        t.replace("parameters = 405e9", "parameters = \"405B\"")
            .replace("start = 2027-04-01", "start = \"2027-04-01\"")
    });
    assert_eq!(a.model.parameters, 405e9);
    assert_eq!(a, example("standard.toml"));
    let b = standard_with(|t| t.replace("start = 2027-04-01", "start = 2027-04-01T00:00:00Z"));
    assert_eq!(b.start_unix(), example("standard.toml").start_unix());
    assert_eq!(b.start_unix(), Some(parse_timestamp("2027-04-01").unwrap()));
}

fn standard_from(from: &str, to: &str) -> ParseError {
    RunPlan::from_toml(&include_str!("../../../../examples/plans/standard.toml").replace(from, to))
        .unwrap_err()
}

#[test]
fn biological_sequence_data_lowers_the_thresholds() {
    let policy = Policy::builtin();
    let plain = example("exempt.toml");
    let e = estimate(&plain);
    assert_eq!(classify(policy, &plain, &e).tier, "exempt");
    let mut bio = plain.clone();
    bio.model.biological_sequence_data = true;
    let e = estimate(&bio);
    let c = classify(policy, &bio, &e);
    assert_eq!(c.tier, "standard", "1e23 FLOP of biological data");
    assert!(c.biological_sequence_data);
    assert!(
        c.notes.iter().any(|n| n.contains("biological")),
        "{:?}",
        c.notes
    );
    // Tier requirements apply: the exempt example declares none of them.
    assert!(fields(&c.missing).contains(&"providers"));
    // 1e24 of biological data is reviewed; the same compute on text is exempt.
    assert_eq!(policy.tier_index(flop(1e24), true), 2);
    assert_eq!(policy.tier_index(flop(1e24), false), 0);
    assert_eq!(policy.tier_index(flop(1e27), true), 3);
}

#[test]
fn tiers_meet_their_thresholds_at_equality() {
    let policy = Policy::builtin();
    let tier = |f: f64| &policy.tiers[policy.tier_index(flop(f), false)].id;
    assert_eq!(tier(0.0), "exempt");
    assert_eq!(tier(9.99e24), "exempt");
    assert_eq!(tier(1e25), "standard");
    assert_eq!(tier(1e26), "full");
    assert_eq!(tier(1e27), "horizon");
    assert_eq!(tier(1e30), "horizon");
}

#[test]
fn missing_requirements_are_named_per_tier() {
    let policy = Policy::builtin();
    let plan = standard_with(|t| {
        t.replace("weights_security_level = \"SL3\"", "weights_security_level = \"SL1\"")
            .replace(
                "incident_response = \"https://lab.example/security/incident-response-plan\"\n",
                "",
            )
            .replace("[[providers]]\nprovider = \"northwind-cloud\"\nclusters = [\"nw-east-1\", \"nw-east-2\"]\n", "")
    });
    let c = classify(policy, &plan, &estimate(&plan));
    assert_eq!(c.tier, "standard");
    assert_eq!(
        fields(&c.missing),
        [
            "providers",
            "safeguards.incident_response",
            "safeguards.weights_security_level"
        ]
    );
    let level = &c.missing[2];
    assert!(level.message.contains("SL1 is below the SL2"), "{level:?}");

    // The full tier: shutdown must be true, evaluations planned, release and digest given.
    let full = example("full.toml");
    let mut weaker = full.clone();
    weaker.safeguards.full_shutdown_capability = Some(false);
    weaker
        .safeguards
        .evaluation_plan
        .as_mut()
        .unwrap()
        .milestones
        .clear();
    weaker.release = None;
    weaker.responsibility.safety_framework_sha256 = None;
    weaker.safeguards.weights_security_level = None;
    let c = classify(policy, &weaker, &estimate(&weaker));
    assert_eq!(c.tier, "full");
    assert_eq!(
        fields(&c.missing),
        [
            "safeguards.weights_security_level",
            "safeguards.evaluation_plan.milestones",
            "release.plan",
            "responsibility.safety_framework_sha256",
            "safeguards.full_shutdown_capability",
        ]
    );
    assert!(
        c.missing[0]
            .message
            .starts_with("SL3 or higher required for tier \"full\""),
        "{:?}",
        c.missing[0]
    );
}

#[test]
fn a_range_reaching_the_next_tier_is_noted() {
    let policy = Policy::builtin();
    // 9.5e25 central, ±10%: the high end reaches the full tier.
    let plan = standard_with(|t| {
        t.replace("tokens = 15.6e12", "tokens = 39.1e12").replace(
            "[compute]\naccelerator = \"H100 SXM\"\naccelerators = 16384\nduration_days = 54",
            "[compute]\naccelerator = \"H100 SXM\"\naccelerators = 16384\nduration_days = 135",
        )
    });
    let e = estimate(&plan);
    let c = classify(policy, &plan, &e);
    assert_eq!(c.tier, "standard");
    assert!(
        c.notes.iter().any(|n| n.contains("reaches tier \"full\"")),
        "{:?}",
        c.notes
    );
    // The budget stops at the next tier's threshold.
    let terms = permit_terms(policy, &plan, &e, 0);
    assert_eq!(terms.flop_budget, flop(1e26));
    assert_eq!(terms.tranches.last(), Some(&flop(1e26)));
}

#[test]
fn tranche_schedule_multiplies_to_the_budget() {
    let policy = Policy::builtin();
    let ends = |budget: f64| -> Vec<f64> {
        tranche_schedule(policy, flop(budget))
            .into_iter()
            .map(Flop::get)
            .collect()
    };
    assert_eq!(ends(3e26), [1e25, 4e25, 1.6e26, 3e26]);
    assert_eq!(ends(1.6e26), [1e25, 4e25, 1.6e26]);
    assert_eq!(ends(5e24), [5e24]);
    assert_eq!(ends(1e25), [1e25]);
    assert!(ends(0.0).is_empty());
    let mut fine = policy.clone();
    fine.tranches.milestone_factor = 1.0001;
    let many = tranche_schedule(&fine, flop(1e27));
    assert_eq!(many.len(), MAX_TRANCHES);
    assert_eq!(many.last(), Some(&flop(1e27)));
}

#[test]
fn permit_terms_budget_validity_and_scope() {
    let policy = Policy::builtin();
    let plan = example("standard.toml");
    let e = estimate(&plan);
    let day = 86_400;
    let start = parse_timestamp("2027-04-01").unwrap();
    let end = parse_timestamp("2027-06-15").unwrap();

    // Issued before the schedule: valid from its start, until its end plus the grace.
    let terms = permit_terms(policy, &plan, &e, start - 10 * day);
    assert_eq!(terms.nbf, start);
    assert_eq!(terms.exp, end + 14 * day);
    assert_eq!(
        terms.providers,
        [(
            "northwind-cloud".to_owned(),
            vec!["nw-east-1".to_owned(), "nw-east-2".to_owned()]
        )]
    );
    assert_eq!(terms.max_accelerators, 16384);
    assert!((terms.flop_budget.get() / (e.run_flop.get() * 1.1) - 1.0).abs() < 1e-12);
    let ends: Vec<f64> = terms.tranches.iter().map(|f| f.get()).collect();
    assert_eq!(ends[..2], [1e25, 4e25]);
    assert_eq!(terms.tranches.last(), Some(&terms.flop_budget));
    assert_eq!(terms.policy_version, "2026.5");
    assert_eq!(terms.reporting_interval_seconds, 300);

    // Issued during the schedule: valid from now.
    let now = start + 3 * day;
    assert_eq!(permit_terms(policy, &plan, &e, now).nbf, now);

    // A long schedule: validity_days bounds it.
    let long = standard_with(|t| t.replace("end = 2027-06-15", "end = 2028-06-15"));
    let terms = permit_terms(policy, &long, &e, start);
    assert_eq!(terms.exp, start + 180 * day);

    // The schedule is over: an empty window.
    let late = end + 30 * day;
    let terms = permit_terms(policy, &plan, &e, late);
    assert_eq!((terms.nbf, terms.exp), (late, late));

    // A fine-tune's budget is its own compute; the tier counts its lineage.
    let ft = example("fine-tune.toml");
    let e = estimate(&ft);
    let terms = permit_terms(policy, &ft, &e, 0);
    assert!((terms.flop_budget.get() / (e.run_flop.get() * 1.1) - 1.0).abs() < 1e-12);
    assert!(terms.flop_budget.get() < 1e24);
    assert_eq!(terms.tranches, [terms.flop_budget]);
}

#[test]
fn builtin_policy_is_the_documented_one() {
    let p = Policy::builtin();
    assert_eq!(p.version, "2026.5");
    let ids: Vec<&str> = p.tiers.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["exempt", "standard", "full", "horizon"]);
    let decisions: Vec<Decision> = p.tiers.iter().map(|t| t.decision).collect();
    assert_eq!(
        decisions,
        [
            Decision::Exempt,
            Decision::AutoPermit,
            Decision::Review,
            Decision::Deny
        ]
    );
    let standard = p.tier("standard").unwrap();
    assert_eq!(standard.min_flop, flop(1e25));
    assert_eq!(standard.threshold(true), flop(1e23));
    assert_eq!(
        standard.min_weights_security_level,
        Some(SecurityLevel::Sl2)
    );
    let full = p.tier("full").unwrap();
    assert_eq!((full.min_flop, full.approvals), (flop(1e26), 2));
    assert_eq!(full.min_weights_security_level, Some(SecurityLevel::Sl3));
    assert_eq!(p.tier("horizon").unwrap().min_flop, flop(1e27));
    assert_eq!(p.tranches.milestone_factor, 4.0);
    assert_eq!(p.permit.budget_headroom, 1.1);
    // No evaluator is assigned by default: a deployment names its own.
    assert!(p.oversight.evaluators.is_empty());
    // It serializes and reads back.
    let json = serde_json::to_value(p).unwrap();
    assert_eq!(json["tier"][1]["decision"], "auto_permit");
}

#[test]
fn policy_files_are_checked_as_a_whole() {
    let unknown = BUILTIN_POLICY_TOML.replace("validity_days = 180", "validity_dayz = 180");
    match Policy::from_toml(&unknown) {
        Err(PolicyError::Parse { message, line, .. }) => {
            assert!(message.contains("validity_dayz"), "{message}");
            assert!(line.is_some());
        }
        other => panic!("{other:?}"),
    }
    let broken = BUILTIN_POLICY_TOML
        .replace("version = \"2026.5\"", "version = \"\"")
        .replace("min_flop = 0\n", "min_flop = 1e20\n")
        .replace("min_flop = 1e26\n", "min_flop = 1e24\n")
        .replace("approvals = 2\nmin_weights_security_level = \"SL3\"", "approvals = 3\nmin_weights_security_level = \"SL3\"")
        .replace("\"release.plan\",\n    \"responsibility.safety_framework_url\",\n    \"responsibility.safety_framework_sha256\",\n]\nrequired_true", "\"release.date\",\n]\nrequired_true")
        .replace("milestone_factor = 4.0", "milestone_factor = 1.0")
        .replace("budget_headroom = 1.1", "budget_headroom = 0.9")
        .replace("regimes = [\"eu-ai-act\"", "regimes = [\"eu-ai-akt\"")
        .replace("evaluators = []", "evaluators = [\"org_aisi\", \"org aisi\", \"org_aisi\"]");
    let errors = match Policy::from_toml(&broken) {
        Err(PolicyError::Invalid(errors)) => errors,
        other => panic!("{other:?}"),
    };
    let named = fields(&errors);
    for f in [
        "version",
        "regimes[0]",
        "tier[0].min_flop",
        "tier[2].min_flop",
        "tier[2].approvals",
        "tier[2].required_fields[8]",
        "tranches.milestone_factor",
        "permit.budget_headroom",
        "oversight.evaluators[1]",
        "oversight.evaluators[2]",
    ] {
        assert!(named.contains(&f), "{f} not named in {named:?}");
    }
    assert!(
        !named.contains(&"oversight.evaluators[0]"),
        "{named:?}: the first is sound"
    );
    let text = PolicyError::Invalid(errors).to_string();
    assert!(text.starts_with("policy: "), "{text}");

    let bio_above = BUILTIN_POLICY_TOML.replace("bio_min_flop = 1e23", "bio_min_flop = 1e26");
    match Policy::from_toml(&bio_above) {
        Err(PolicyError::Invalid(errors)) => {
            assert!(
                fields(&errors).contains(&"tier[1].bio_min_flop"),
                "{errors:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_optional_field_is_answerable() {
    let plan = example("full.toml");
    for f in OPTIONAL_FIELDS {
        assert!(plan.has_field(f).is_some(), "{f}");
    }
    for f in BOOLEAN_FIELDS {
        assert!(plan.is_true(f).is_some(), "{f}");
    }
    assert_eq!(plan.has_field("model.parameters"), None);
}

/// The first ```toml block of a document that starts a line (not one indented in a list).
fn toml_block(doc: &str) -> &str {
    let start = doc.find("\n```toml\n").expect("a toml block") + "\n```toml\n".len();
    let len = doc[start..].find("```").expect("a closed block");
    &doc[start..start + len]
}

#[test]
fn the_documentation_examples_are_valid() {
    let policy = Policy::from_toml(toml_block(include_str!("../../../../docs/policy.md")))
        .unwrap_or_else(|e| panic!("docs/policy.md: {e}"));
    assert_eq!(policy.tiers.len(), 2);
    let plan = RunPlan::from_toml(toml_block(include_str!("../../../../docs/run-plan.md")))
        .unwrap_or_else(|e| panic!("docs/run-plan.md: {e}"));
    plan.validate().unwrap();
    let mut exempt = example("exempt.toml");
    exempt.run.description = None;
    assert_eq!(plan, exempt);
}

#[test]
fn a_schedule_that_has_ended_cannot_be_submitted() {
    let plan = example("standard.toml");
    let end = plan.end_unix().unwrap();
    // The clock is an argument: a second before the end is fine, the end itself is not.
    assert_eq!(plan.validate_schedule_at(end - 1), Ok(()));
    let errors = plan.validate_schedule_at(end).unwrap_err();
    assert_eq!(fields(&errors), ["schedule.end"]);
    assert!(
        errors[0].message.contains("has passed") && errors[0].message.contains("--start"),
        "{:?}",
        errors[0]
    );
    // A plan without a schedule has nothing to be late for.
    let mut unscheduled = plan.clone();
    unscheduled.schedule = None;
    assert_eq!(unscheduled.validate_schedule_at(i64::MAX), Ok(()));
}

#[test]
fn token_lifetime_has_a_bounded_maximum() {
    assert_eq!(Policy::builtin().tokens.max_lifetime_days, 365);
    let without = BUILTIN_POLICY_TOML.replace("[tokens]\nmax_lifetime_days = 365\n", "");
    assert_ne!(without, BUILTIN_POLICY_TOML);
    assert_eq!(
        Policy::from_toml(&without).unwrap().tokens,
        TokenPolicy::default(),
        "absent: the default"
    );
    for bad in ["0", "3651", "4294967295"] {
        let text = BUILTIN_POLICY_TOML.replace(
            "max_lifetime_days = 365",
            &format!("max_lifetime_days = {bad}"),
        );
        match Policy::from_toml(&text) {
            Err(PolicyError::Invalid(errors)) => {
                assert_eq!(fields(&errors), ["tokens.max_lifetime_days"], "{bad}");
                assert!(errors[0].message.contains("1 to 3650"), "{errors:?}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn evaluation_thresholds_are_read_and_checked() {
    let with = |t: &str| {
        BUILTIN_POLICY_TOML.replace("evaluators = []\n", &format!("evaluators = []\n{t}"))
    };
    let good = with(
        "\n[[oversight.evaluation_threshold]]\ntask = \"arithmetic\"\nmetric = \"accuracy\"\nabove = 0.4\n",
    );
    let p = Policy::from_toml(&good).unwrap();
    let t = &p.oversight.evaluation_threshold[0];
    assert_eq!(
        (t.task.as_str(), t.metric.as_str(), t.above, t.below),
        ("arithmetic", "accuracy", Some(0.4), None)
    );
    let bad = with(
        "\n[[oversight.evaluation_threshold]]\ntask = \"arithmetic\"\nmetric = \"accuracy\"\nabove = 0.4\n\
         \n[[oversight.evaluation_threshold]]\ntask = \"\"\nmetric = \"accuracy\"\n",
    );
    let errors = match Policy::from_toml(&bad) {
        Err(PolicyError::Invalid(errors)) => errors,
        other => panic!("{other:?}"),
    };
    let named = fields(&errors);
    assert!(
        named.contains(&"oversight.evaluation_threshold[1].task"),
        "{named:?}"
    );
    assert!(
        named.contains(&"oversight.evaluation_threshold[1]"),
        "{named:?}"
    );
    assert!(
        !named
            .iter()
            .any(|f| f.starts_with("oversight.evaluation_threshold[0]")),
        "{named:?}"
    );
    let unknown = with(
        "\n[[oversight.evaluation_threshold]]\ntask = \"a\"\nmetric = \"m\"\nabove = 1\nabov = 2\n",
    );
    assert!(matches!(
        Policy::from_toml(&unknown),
        Err(PolicyError::Parse { .. })
    ));
}
