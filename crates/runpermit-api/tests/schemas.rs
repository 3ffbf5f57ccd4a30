//! The schemas written here for other crates' types describe what those types really
//! serialize to: real values, with every optional part present, are checked against them.

use runpermit_api::check::problems;
use runpermit_api::error::{ErrorBody, ErrorCode};
use runpermit_api::foreign::{EstimateInputSchema, EstimateSchema, JwksSchema, SplitRunFlagSchema};
use runpermit_api::{Body, ToSchema};
use runpermit_compute::{
    EstimateInput, Flop, HardwareInput, HardwareTable, Precision, SyntheticData, builtin_regimes,
    estimate,
};
use runpermit_types::FieldError;
use serde_json::{Value, json};

/// A document holding `bodies`' component schemas and what they refer to.
fn document(bodies: &[Body]) -> Value {
    let mut components = Vec::new();
    for body in bodies {
        body.components(&mut components);
    }
    let schemas: serde_json::Map<String, Value> = components
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).expect("a schema")))
        .collect();
    json!({"components": {"schemas": schemas}})
}

fn assert_conforms<T: ToSchema>(doc: &Value, value: &impl serde::Serialize) {
    let value = serde_json::to_value(value).expect("serializable");
    let schema = json!({"$ref": format!("#/components/schemas/{}", T::name())});
    let found = problems(doc, &schema, &value);
    assert!(found.is_empty(), "{}: {found:#?}\n{value:#}", T::name());
}

fn full_input() -> EstimateInput {
    EstimateInput {
        parameters: Some(70e9),
        active_parameters: Some(70e9),
        tokens: Some(15e12),
        epochs: Some(1.0),
        synthetic_data: Some(SyntheticData {
            generator_parameters: 8e9,
            tokens_generated: 1e12,
        }),
        additional_flop: Some(Flop::new(1e22).expect("a flop")),
        hardware: Some(HardwareInput {
            accelerator: "H100 SXM".into(),
            count: 4096,
            hours: 1000.0,
            utilization: Some(0.4),
            utilization_low: Some(0.3),
            utilization_high: Some(0.5),
            precision: Some(Precision::Bf16),
        }),
        base_model_flop: Some(Flop::new(1e24).expect("a flop")),
        biological_sequence_data: false,
    }
}

#[test]
fn estimates_and_their_inputs_conform() {
    let doc = document(&[
        Body::json::<EstimateInputSchema>(),
        Body::json::<EstimateSchema>(),
    ]);
    let input = full_input();
    assert_conforms::<EstimateInputSchema>(&doc, &input);
    let both = estimate(&input, HardwareTable::builtin(), builtin_regimes()).expect("estimates");
    assert!(both.operation_counting.is_some() && both.hardware.is_some());
    assert_conforms::<EstimateSchema>(&doc, &both);
    let minimal = EstimateInput {
        parameters: Some(1e9),
        tokens: Some(1e12),
        ..EstimateInput::default()
    };
    assert_conforms::<EstimateInputSchema>(&doc, &minimal);
    let one = estimate(&minimal, HardwareTable::builtin(), builtin_regimes()).expect("estimates");
    assert_conforms::<EstimateSchema>(&doc, &one);
}

#[test]
fn keys_flags_and_errors_conform() {
    let doc = document(&[
        Body::json::<JwksSchema>(),
        Body::json::<SplitRunFlagSchema>(),
        Body::json::<ErrorBody>(),
    ]);
    let mut jwk = runpermit_permit::SigningKey::generate().public().to_jwk();
    jwk.use_ = Some("sig".into());
    jwk.alg = Some("EdDSA".into());
    assert_conforms::<JwksSchema>(&doc, &runpermit_permit::Jwks { keys: vec![jwk] });

    let flop = |v: f64| Flop::new(v).expect("a flop");
    let usage = ["prov_a", "prov_b"].map(|p| runpermit_policy::UnpermittedUse {
        customer: "LEI-1".into(),
        provider_id: p.into(),
        flop: flop(6e25),
    });
    let flags = runpermit_policy::split_runs(&usage, flop(1e26));
    assert_eq!(flags.len(), 1);
    assert_conforms::<SplitRunFlagSchema>(&doc, &flags[0]);

    let error = ErrorBody {
        error: ErrorCode::InvalidInput,
        limit: Some("writes_per_token".into()),
        message: "1 problem".into(),
        errors: vec![FieldError {
            field: "kind".into(),
            message: "unknown".into(),
            suggestions: vec!["developer".into()],
        }],
    };
    assert_conforms::<ErrorBody>(&doc, &error);
}

#[test]
fn a_field_the_schema_does_not_describe_is_found() {
    let doc = document(&[Body::json::<EstimateSchema>()]);
    let input = full_input();
    let mut value = serde_json::to_value(
        estimate(&input, HardwareTable::builtin(), builtin_regimes()).expect("estimates"),
    )
    .expect("serializable");
    value["hardware"]["new_figure"] = json!(1);
    value.as_object_mut().expect("an object").remove("flop");
    let found = problems(
        &doc,
        &json!({"$ref": "#/components/schemas/Estimate"}),
        &value,
    );
    assert!(
        found.iter().any(|p| p.contains("required field flop")),
        "{found:#?}"
    );
    assert!(found.iter().any(|p| p.contains("new_figure")), "{found:#?}");
}
