//! Plan validation: every wrong field named at once, in TOML and JSON, with its line.

use runpermit_compute::HardwareTable;

use super::*;

#[test]
fn validation_names_every_wrong_field_at_once() {
    let text = r#"
schema = "runpermit.plan/v2"
[run]
name = " "
[model]
architecture_family = "moe_transformer"
parameters = -5
modality = []
[data]
tokens = 1e12
epochs = 0
synthetic_tokens = 1e9
[compute]
accelerator = "H100 SXM"
accelerators = 0
duration_days = 10
expected_utilization = 1.5
utilization_low = 0.3
[[providers]]
provider = "org-a"
clusters = ["c1"]
[[providers]]
provider = "org b"
clusters = []
[schedule]
start = 2026-06-01
end = 2026-05-01
[safeguards]
affordances = ["none", "tool_use"]
[safeguards.evaluation_plan]
description = "evals"
[[safeguards.evaluation_plan.milestones]]
at_flop = 0
evaluations = ["x"]
[[safeguards.evaluation_plan.milestones]]
at_flop = 1e25
evaluations = []
[responsibility]
safety_framework_url = "ftp://example.org/f.pdf"
safety_framework_sha256 = "abc"
"#;
    let plan = RunPlan::from_toml(text).unwrap();
    let errors = plan.validate().unwrap_err();
    let named = fields(&errors);
    for f in [
        "schema",
        "run.name",
        "model.parameters",
        "model.active_parameters",
        "model.modality",
        "data.epochs",
        "data.synthetic_generator_parameters",
        "compute.accelerators",
        "compute.expected_utilization",
        "compute.utilization_high",
        "providers[1].provider",
        "providers[1].clusters",
        "schedule.end",
        "safeguards.affordances",
        "safeguards.evaluation_plan.milestones[0].at_flop",
        "safeguards.evaluation_plan.milestones[1].evaluations",
        "responsibility.safety_framework_url",
        "responsibility.safety_framework_sha256",
    ] {
        assert!(named.contains(&f), "{f} not named in {named:?}");
    }
    let utilization = errors
        .iter()
        .find(|e| e.field == "compute.expected_utilization")
        .unwrap();
    assert!(
        utilization.message.contains("between 0.01 and 1"),
        "{utilization:?}"
    );
    // `estimate` reports the same problems, in plan vocabulary, plus the estimator's own.
    let bad_accelerator = standard_with(|t| {
        t.replace("\"H100 SXM\"", "\"H100 SMX\"")
            .replace("expected_utilization = 0.38", "expected_utilization = 0.5")
    });
    let errors = bad_accelerator
        .estimate(HardwareTable::builtin(), builtin_regimes())
        .unwrap_err();
    assert_eq!(
        fields(&errors),
        ["compute.expected_utilization", "compute.accelerator"]
    );
    assert!(errors[1].suggestions.iter().any(|s| s.contains("H100")));
}

#[test]
fn unknown_fields_are_refused_and_named_in_toml_and_json() {
    let toml_err = RunPlan::from_toml(
        &include_str!("../../../../examples/plans/standard.toml")
            .replace("accelerators = 16384", "acelerators = 16384"),
    )
    .unwrap_err();
    assert!(toml_err.message.contains("acelerators"), "{toml_err}");
    assert_eq!(toml_err.field, "compute.acelerators", "{toml_err:?}");
    assert_eq!(toml_err.line, Some(22), "{toml_err:?}");
    let json_err = RunPlan::from_json(
        &include_str!("../../../../examples/plans/standard.json")
            .replace("\"weights_security_level\"", "\"weight_security_level\""),
    )
    .unwrap_err();
    assert!(
        json_err.message.contains("weight_security_level"),
        "{json_err}"
    );
    assert_eq!(json_err.field, "safeguards.weight_security_level");
    assert!(json_err.line.is_some());
    // A JSON object is not a date, whatever its key.
    let not_a_date = RunPlan::from_json(
        &include_str!("../../../../examples/plans/standard.json").replace(
            "\"start\": \"2027-04-01\"",
            "\"start\": {\"date\": \"2027-04-01\"}",
        ),
    )
    .unwrap_err();
    assert_eq!(not_a_date.field, "schedule.start", "{not_a_date}");
    let top =
        RunPlan::from_json(r#"{"schema": "runpermit.plan/v1", "colour": "blue"}"#).unwrap_err();
    assert!(top.to_string().contains("colour"), "{top}");
}

#[test]
fn parse_errors_name_the_field_path_and_line() {
    let err = RunPlan::from_toml(
        &include_str!("../../../../examples/plans/full.toml").replace(
            "clusters = [\"fjord-a\", \"fjord-b\"]",
            "clusters = \"fjord-a\"",
        ),
    )
    .unwrap_err();
    assert_eq!(err.field, "providers[1].clusters", "{err}");
    assert!(err.line.is_some(), "{err:?}");
    let err =
        RunPlan::from_json(r#"{"schema": "runpermit.plan/v1", "run": {"name": 3}}"#).unwrap_err();
    assert_eq!(err.field, "run.name");
    assert_eq!(err.line, Some(1));
    assert!(
        err.to_string()
            .starts_with("run plan (JSON) line 1, column"),
        "{err}"
    );
    let err = RunPlan::from_toml("schema = ").unwrap_err();
    assert!(err.field.is_empty() && err.line == Some(1), "{err:?}");
    let err = standard_from(
        "architecture_family = \"dense_transformer\"",
        "architecture_family = \"dense\"",
    );
    assert_eq!(err.field, "model.architecture_family");
    assert!(err.message.contains("moe_transformer"), "{err}");
    let err = standard_from("parameters = 405e9", "parameters = \"405 billion\"");
    assert_eq!(err.field, "model.parameters");
    assert!(err.message.contains("405B"), "{err}");
    assert_eq!(err.to_field_error().field, "model.parameters");
}
