//! Attacks on classification: a lab that wants less scrutiny argues its figures down.

use runpermit_compute::HardwareTable;

use super::*;

/// The standard example with `data.epochs` set to `epochs`.
fn standard_epochs(epochs: &str) -> RunPlan {
    standard_with(|t| t.replace("epochs = 1\n", &format!("epochs = {epochs}\n")))
}

#[test]
fn an_understated_epoch_count_cannot_exempt_a_frontier_cluster() {
    let policy = Policy::builtin();
    // 16,384 H100s for 54 days at 38%: 2.9e25 FLOP by the plan's own hardware, while
    // operation counting with 0.2 epochs says 7.6e24.
    let plan = standard_epochs("0.2");
    let e = estimate(&plan);
    let c = classify(policy, &plan, &e);
    assert_ne!(c.tier, "exempt", "classified by {}", c.flop);
    assert_eq!(c.tier, "standard");
    assert!(c.flop.get() > 2.8e25, "{}", c.flop);
    assert_eq!(c.decision, Decision::Review, "never automatic approval");
    assert!(c.approvals_required >= 1);
    assert!(
        c.review_reasons.iter().any(|r| r.contains("disagree")),
        "{:?}",
        c.review_reasons
    );
    // The budget follows the higher figure too (capped below the next tier).
    let terms = permit_terms(policy, &plan, &e, 0);
    assert!(
        terms.flop_budget.get() > 2.8e25 * 1.1,
        "{}",
        terms.flop_budget
    );
}

#[test]
fn absurd_numbers_are_refused_by_name_never_exempted() {
    // (edit of the standard example's TOML, the field that must be named)
    let cases: &[(&str, &str, &str)] = &[
        ("epochs = 1\n", "epochs = 1e-300\n", "data.epochs"),
        ("epochs = 1\n", "epochs = 5e-324\n", "data.epochs"),
        ("epochs = 1\n", "epochs = -0.0\n", "data.epochs"),
        ("epochs = 1\n", "epochs = nan\n", "data.epochs"),
        ("epochs = 1\n", "epochs = 1e308\n", "data.epochs"),
        (
            "parameters = 405e9",
            "parameters = 1e308",
            "model.parameters",
        ),
        ("parameters = 405e9", "parameters = 0.5", "model.parameters"),
        ("tokens = 15.6e12", "tokens = 1e300", "data.tokens"),
        ("tokens = 15.6e12", "tokens = 5e-324", "data.tokens"),
        (
            "accelerators = 16384",
            "accelerators = 100000000",
            "compute.accelerators",
        ),
        (
            "duration_days = 54",
            "duration_days = 1e-300",
            "compute.duration_days",
        ),
        (
            "duration_days = 54",
            "duration_days = 36500",
            "compute.duration_days",
        ),
        (
            "expected_utilization = 0.38\nutilization_low = 0.35",
            "expected_utilization = 0.38\nutilization_low = 5e-324",
            "compute.utilization_low",
        ),
        (
            "precision = \"bf16\"",
            "precision = \"bf16\"\nadditional_flop = \"1e300 FLOP\"",
            "compute.additional_flop",
        ),
        (
            "precision = \"bf16\"",
            "precision = \"bf16\"\nadditional_flop = 5e-324",
            "compute.additional_flop",
        ),
        (
            "examples = 12_000_000_000",
            "examples = 9_000_000_000_000_000_000",
            "data.examples",
        ),
    ];
    for (from, to, field) in cases {
        let plan = standard_with(|t| {
            assert!(t.contains(from), "{from}");
            t.replace(from, to)
        });
        let errors = plan.validate().expect_err(to);
        assert_eq!(fields(&errors), [*field], "{to}: {errors:?}");
        assert!(
            errors[0].message.contains("must be between"),
            "{to}: {}",
            errors[0].message
        );
        // The estimator refuses the same, under the same name.
        let errors = plan
            .estimate(HardwareTable::builtin(), builtin_regimes())
            .expect_err(to);
        assert_eq!(fields(&errors), [*field], "{to}: {errors:?}");
    }
    let tiny = standard_epochs("1e-300");
    let message = &tiny.validate().unwrap_err()[0].message;
    assert!(message.ends_with("(got 1e-300)"), "{message}");
    // NaN and infinity written as text are refused as they are read.
    for text in ["\"nan\"", "\"inf\"", "\"1e999\""] {
        let err = standard_from("parameters = 405e9", &format!("parameters = {text}"));
        assert_eq!(err.field, "model.parameters", "{text}: {err}");
    }
    for text in ["\"NaN FLOP\"", "\"1e400 FLOP\"", "\"inf\""] {
        let err = RunPlan::from_toml(
            &include_str!("../../../../examples/plans/fine-tune.toml").replace(
                "additional_flop = \"5e22\"",
                &format!("additional_flop = {text}"),
            ),
        )
        .unwrap_err();
        assert_eq!(err.field, "compute.additional_flop", "{text}: {err}");
    }
    let base = RunPlan::from_toml(
        &include_str!("../../../../examples/plans/fine-tune.toml")
            .replace("cumulative_flop = 9.6e24", "cumulative_flop = 1e300"),
    )
    .unwrap();
    assert_eq!(
        fields(&base.validate().unwrap_err()),
        ["base_model.cumulative_flop"]
    );
}

#[test]
fn accelerators_beyond_any_cluster_are_refused_by_name() {
    // 2^63: reads as a u64 in JSON (and would become the permit's max_accelerators).
    let mut json: serde_json::Value =
        serde_json::from_str(include_str!("../../../../examples/plans/standard.json")).unwrap();
    json["compute"]["accelerators"] = serde_json::json!(9_223_372_036_854_775_808u64);
    let plan = RunPlan::from_json(&json.to_string()).unwrap();
    let errors = plan.validate().unwrap_err();
    assert_eq!(fields(&errors), ["compute.accelerators"], "{errors:?}");
    assert!(
        errors[0].message.contains("(got 9223372036854775808)"),
        "{errors:?}"
    );
    // The same in TOML.
    let toml =
        standard_with(|t| t.replace("accelerators = 16384", "accelerators = 9223372036854775808"));
    assert_eq!(toml, plan);
    let errors = toml
        .estimate(HardwareTable::builtin(), builtin_regimes())
        .unwrap_err();
    assert_eq!(fields(&errors), ["compute.accelerators"], "{errors:?}");
    // The largest plausible cluster is accepted.
    let mut plan = example("standard.toml");
    plan.compute.as_mut().unwrap().accelerators = 10_000_000;
    plan.validate().unwrap();
}

#[test]
fn understating_both_methods_together_meets_the_envelope() {
    let policy = Policy::builtin();
    // 0.2 epochs and 8% utilization agree with each other (7.6e24 and 6.1e24), but 16,384
    // H100s for 54 days could do 7.6e25: the plan claims 10% of its cluster.
    let plan = standard_with(|t| {
        t.replace("epochs = 1\n", "epochs = 0.2\n").replace(
            "expected_utilization = 0.38\nutilization_low = 0.35\nutilization_high = 0.43",
            "expected_utilization = 0.08",
        )
    });
    let e = estimate(&plan);
    let c = classify(policy, &plan, &e);
    assert!(e.method_ratio().unwrap() < 2.0);
    assert_eq!(c.tier, "exempt", "by its figure {}", c.flop);
    assert_eq!(c.decision, Decision::Review, "{c:?}");
    assert_eq!(c.approvals_required, 1);
    assert!(
        c.review_reasons
            .iter()
            .any(|r| r.contains("10% of its cluster's envelope") && r.contains("below the 15%")),
        "{:?}",
        c.review_reasons
    );
    assert!(
        c.notes.iter().any(|n| n.contains("envelope")),
        "{:?}",
        c.notes
    );
    // An approval would issue a permit: the standard tier's requirements apply, and the
    // example meets them.
    assert!(c.is_complete(), "{:?}", c.missing);
    assert_eq!(c.envelope_flop, e.envelope_flop());

    // A small run at low utilization on a cluster that cannot reach a permit tier is not
    // suspicious: it stays exempt.
    let small = standard_with(|t| {
        t.replace("parameters = 405e9", "parameters = 7e9")
            .replace("tokens = 15.6e12", "tokens = 1e12")
            .replace("accelerators = 16384", "accelerators = 512")
            .replace("duration_days = 54", "duration_days = 10")
            .replace(
                "expected_utilization = 0.38\nutilization_low = 0.35\nutilization_high = 0.43",
                "expected_utilization = 0.1",
            )
    });
    let e = estimate(&small);
    let c = classify(policy, &small, &e);
    assert!(e.method_ratio().unwrap() < 2.0, "{:?}", e.method_ratio());
    assert_eq!(
        (c.tier.as_str(), c.decision),
        ("exempt", Decision::Exempt),
        "{c:?}"
    );
}

#[test]
fn operation_counting_beyond_the_cluster_goes_to_review() {
    let policy = Policy::builtin();
    // 100% utilization keeps the methods within 2x, but 8.5e25 FLOP of 6·N·D does not fit
    // into 16,384 H100s for 54 days even at peak (7.6e25).
    let plan = standard_with(|t| {
        t.replace("tokens = 15.6e12", "tokens = 35e12").replace(
            "expected_utilization = 0.38\nutilization_low = 0.35\nutilization_high = 0.43",
            "expected_utilization = 1.0",
        )
    });
    let e = estimate(&plan);
    let c = classify(policy, &plan, &e);
    assert!(e.method_ratio().unwrap() < 2.0);
    assert_eq!(c.tier, "standard");
    assert_eq!(c.decision, Decision::Review);
    assert!(
        c.review_reasons
            .iter()
            .any(|r| r.contains("exceeds the cluster's envelope")),
        "{:?}",
        c.review_reasons
    );
}

#[test]
fn an_exempt_plan_sent_to_review_must_be_permittable() {
    let policy = Policy::builtin();
    // The exempt example (1e23 FLOP) with a cluster that disagrees 4.6x: 64 H100s for 10 days.
    let text = format!(
        "{}\n[compute]\naccelerator = \"H100 SXM\"\naccelerators = 64\nduration_days = 10\nexpected_utilization = 0.4\n",
        include_str!("../../../../examples/plans/exempt.toml")
    );
    let plan = RunPlan::from_toml(&text).unwrap();
    let e = estimate(&plan);
    let c = classify(policy, &plan, &e);
    assert_eq!(c.tier, "exempt");
    assert_eq!(c.decision, Decision::Review, "never exempted: {c:?}");
    assert!(
        c.review_reasons[0].contains("disagree by 4.6x"),
        "{:?}",
        c.review_reasons
    );
    // What the standard tier requires, since an approval grants a permit.
    let missing = fields(&c.missing);
    for f in ["providers", "schedule", "safeguards.weights_security_level"] {
        assert!(missing.contains(&f), "{f} not in {missing:?}");
    }
    assert!(
        c.missing[0].message.starts_with("required for review"),
        "{:?}",
        c.missing[0]
    );
    // The permit it could get stays below the standard tier.
    let terms = permit_terms(policy, &plan, &e, 0);
    assert!(terms.flop_budget < flop(1e25));
}

#[test]
fn the_disagreement_factor_is_the_policys() {
    let plan = standard_epochs("0.2"); // 3.8x apart
    let e = estimate(&plan);
    let with = |knobs: &str| {
        let text = BUILTIN_POLICY_TOML.replace(
            "disagreement_factor = 2.0\n",
            &format!("disagreement_factor = {knobs}\n"),
        );
        Policy::from_toml(&text).unwrap_or_else(|e| panic!("{e}"))
    };
    let lenient = with("5");
    let c = classify(&lenient, &plan, &e);
    assert_eq!(
        (c.tier.as_str(), c.decision),
        ("standard", Decision::AutoPermit)
    );
    assert!(c.review_reasons.is_empty());
    let strict = with("1.2");
    let c = classify(
        &strict,
        &example("standard.toml"),
        &estimate(&example("standard.toml")),
    );
    assert_eq!(c.decision, Decision::Review, "1.3x apart");
    // Absent, the defaults apply.
    let start = BUILTIN_POLICY_TOML.find("[estimate]").unwrap();
    let end = BUILTIN_POLICY_TOML
        .find("min_utilization = 0.15\n")
        .unwrap()
        + "min_utilization = 0.15\n".len();
    let without = format!(
        "{}{}",
        &BUILTIN_POLICY_TOML[..start],
        &BUILTIN_POLICY_TOML[end..]
    );
    let defaults = Policy::from_toml(&without).unwrap();
    assert_eq!(defaults.estimate, Policy::builtin().estimate);
    assert_eq!(defaults.estimate, EstimatePolicy::default());
    // Nonsense is refused by name.
    for (knob, bad) in [
        ("disagreement_factor = 2.0", "disagreement_factor = 0.5"),
        ("disagreement_factor = 2.0", "disagreement_factor = nan"),
        ("min_utilization = 0.15", "min_utilization = 1.5"),
    ] {
        let text = BUILTIN_POLICY_TOML.replace(knob, bad);
        match Policy::from_toml(&text) {
            Err(PolicyError::Invalid(errors)) => {
                let field = format!("estimate.{}", knob.split(' ').next().unwrap());
                assert_eq!(fields(&errors), [field.as_str()], "{bad}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}
