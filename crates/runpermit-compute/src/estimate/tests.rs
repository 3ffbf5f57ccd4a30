use super::*;
use crate::regimes::builtin_regimes;

fn run(input: &EstimateInput) -> Result<Estimate, InvalidInput> {
    estimate(input, HardwareTable::builtin(), builtin_regimes())
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a / b - 1.0).abs() <= tolerance
}

fn dense(parameters: f64, tokens: f64) -> EstimateInput {
    EstimateInput {
        parameters: Some(parameters),
        tokens: Some(tokens),
        ..Default::default()
    }
}

/// Llama 3.1 405B's cluster: 16,384 H100s for 54 days at 38%, no utilization range.
fn llama_cluster() -> HardwareInput {
    HardwareInput {
        accelerator: "H100 SXM".into(),
        count: 16384,
        hours: 54.0 * 24.0,
        utilization: Some(0.38),
        utilization_low: None,
        utilization_high: None,
        precision: None,
    }
}

#[test]
fn gpt3_published_figure() {
    let e = run(&dense(175e9, 300e9)).unwrap();
    assert!(close(e.flop.get(), 3.14e23, 0.01), "{}", e.flop);
    assert_eq!(e.method, Method::OperationCounting);
}

#[test]
fn llama_3_1_405b_published_figure() {
    let e = run(&dense(405e9, 15.6e12)).unwrap();
    assert!(close(e.flop.get(), 3.8e25, 0.01), "{}", e.flop);
    let eu = e
        .thresholds
        .iter()
        .find(|t| t.threshold == "eu-ai-act-systemic-risk")
        .unwrap();
    assert!(eu.crossed);
    assert!(close(eu.ratio, 3.79, 0.01));
    let us = e
        .thresholds
        .iter()
        .find(|t| t.threshold == "us-eo-14110-model")
        .unwrap();
    assert!(!us.crossed);
    assert!(us.orders_of_magnitude < 0.0);
}

#[test]
fn falcon_180b_published_figure() {
    let e = run(&dense(180e9, 3.5e12)).unwrap();
    assert!(close(e.flop.get(), 3.76e24, 0.01), "{}", e.flop);
}

#[test]
fn mixture_of_experts_counts_active_parameters_and_epochs_multiply() {
    let moe = EstimateInput {
        parameters: Some(671e9),
        active_parameters: Some(37e9),
        tokens: Some(14.8e12),
        epochs: Some(2.0),
        ..Default::default()
    };
    let e = run(&moe).unwrap();
    assert!(close(e.flop.get(), 6.0 * 37e9 * 14.8e12 * 2.0, 1e-12));
}

#[test]
fn fine_tunes_add_to_their_base_model() {
    let input = EstimateInput {
        base_model_flop: Some(Flop::new(3.8e25).unwrap()),
        ..dense(253e9, 603e9)
    };
    let e = run(&input).unwrap();
    assert!(close(e.run_flop.get(), 9.15e23, 0.01));
    assert!(close(e.flop.get(), 3.8e25 + 9.15e23, 0.001));
    assert!(e.low.get() >= 3.8e25);
}

#[test]
fn synthetic_data_generation_adds_two_n_per_token() {
    let input = EstimateInput {
        synthetic_data: Some(SyntheticData {
            generator_parameters: 70e9,
            tokens_generated: 1e12,
        }),
        ..dense(8e9, 1e12)
    };
    let o = run(&input).unwrap().operation_counting.unwrap();
    assert_eq!(o.synthetic_data_flop.get(), 2.0 * 70e9 * 1e12);
    assert!(close(o.flop.get(), 6.0 * 8e9 * 1e12 + 1.4e23, 1e-12));
}

#[test]
fn hardware_method_and_its_range() {
    let input = EstimateInput {
        hardware: Some(HardwareInput {
            accelerator: "H100 SXM".into(),
            count: 16384,
            hours: 54.0 * 24.0,
            utilization: Some(0.38),
            utilization_low: Some(0.3),
            utilization_high: Some(0.45),
            precision: None,
        }),
        ..Default::default()
    };
    let e = run(&input).unwrap();
    let h = e.hardware.as_ref().unwrap();
    let expected = 16384.0 * 9.894e14 * 54.0 * 86400.0 * 0.38;
    assert!(close(e.flop.get(), expected, 1e-9), "{}", e.flop);
    assert!(close(h.low.get(), expected / 0.38 * 0.3, 1e-9));
    assert!(close(h.high.get(), expected / 0.38 * 0.45, 1e-9));
    assert_eq!(h.precision, Precision::Bf16);
    // 16,384 H100s peak at ~3.2e19 FLOP/s (FP8): below the EO 14110 cluster threshold.
    let cluster = e
        .thresholds
        .iter()
        .find(|t| t.kind == "cluster_capacity")
        .unwrap();
    assert!(!cluster.crossed);
}

#[test]
fn both_methods_warn_when_they_disagree() {
    let hardware = llama_cluster();
    let agree = run(&EstimateInput {
        hardware: Some(hardware.clone()),
        ..dense(405e9, 15.6e12)
    })
    .unwrap();
    assert_eq!(agree.method, Method::Both);
    assert!(agree.warnings.is_empty(), "{:?}", agree.warnings);
    let disagree = run(&EstimateInput {
        hardware: Some(hardware),
        ..dense(40e9, 15.6e12)
    })
    .unwrap();
    assert!(
        disagree.warnings.iter().any(|w| w.contains("disagree")),
        "{:?}",
        disagree.warnings
    );
    assert!(disagree.low <= disagree.flop && disagree.flop <= disagree.high);
}

#[test]
fn biological_threshold_only_for_biological_data() {
    let plain = run(&dense(1e9, 20e12)).unwrap();
    assert!(
        plain
            .thresholds
            .iter()
            .all(|t| t.threshold != "us-eo-14110-bio")
    );
    let bio = run(&EstimateInput {
        biological_sequence_data: true,
        ..dense(1e9, 20e12)
    })
    .unwrap();
    let t = bio
        .thresholds
        .iter()
        .find(|t| t.threshold == "us-eo-14110-bio")
        .unwrap();
    assert!(t.crossed, "1.2e23 FLOP of biological data crosses 1e23");
}

#[test]
fn every_invalid_field_is_named_at_once() {
    let input = EstimateInput {
        parameters: Some(-1.0),
        active_parameters: None,
        tokens: Some(f64::NAN),
        epochs: Some(0.0),
        hardware: Some(HardwareInput {
            accelerator: "H100 SMX".into(),
            count: 0,
            hours: -3.0,
            utilization: Some(1.5),
            utilization_low: None,
            utilization_high: None,
            precision: None,
        }),
        ..Default::default()
    };
    let err = run(&input).unwrap_err();
    let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "parameters",
        "tokens",
        "epochs",
        "hardware.accelerator",
        "hardware.count",
        "hardware.hours",
        "hardware.utilization",
    ] {
        assert!(fields.contains(&f), "{f} not named in {err}");
    }
    let acc = err
        .errors
        .iter()
        .find(|e| e.field == "hardware.accelerator")
        .unwrap();
    assert!(
        acc.suggestions.iter().any(|s| s.contains("H100")),
        "{acc:?}"
    );
}

#[test]
fn implausible_inputs_are_refused_by_name_at_the_edges_of_f64() {
    let h100 = |count: u64, hours: f64| HardwareInput {
        accelerator: "H100 SXM".into(),
        count,
        hours,
        utilization: Some(0.4),
        utilization_low: None,
        utilization_high: None,
        precision: None,
    };
    let cases: Vec<(EstimateInput, &str)> = vec![
        (dense(1e308, 1e12), "parameters"),
        (dense(0.5, 1e12), "parameters"),
        (dense(1e9, 5e-324), "tokens"),
        (dense(1e9, 1e300), "tokens"),
        (
            EstimateInput {
                epochs: Some(1e-300),
                ..dense(405e9, 15.6e12)
            },
            "epochs",
        ),
        (
            EstimateInput {
                epochs: Some(-0.0),
                ..dense(405e9, 15.6e12)
            },
            "epochs",
        ),
        (
            EstimateInput {
                additional_flop: Some(Flop::new(5e-324).unwrap()),
                ..dense(405e9, 15.6e12)
            },
            "additional_flop",
        ),
        (
            EstimateInput {
                base_model_flop: Some(Flop::new(1e300).unwrap()),
                ..dense(405e9, 15.6e12)
            },
            "base_model_flop",
        ),
        (
            EstimateInput {
                hardware: Some(h100(1 << 63, 24.0)),
                ..Default::default()
            },
            "hardware.count",
        ),
        (
            EstimateInput {
                hardware: Some(h100(8, 1e308)),
                ..Default::default()
            },
            "hardware.hours",
        ),
        (
            EstimateInput {
                hardware: Some(HardwareInput {
                    utilization: Some(f64::MIN_POSITIVE),
                    ..h100(8, 24.0)
                }),
                ..Default::default()
            },
            "hardware.utilization",
        ),
    ];
    for (input, field) in cases {
        let err = run(&input).unwrap_err();
        let fields: Vec<&str> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, [field], "{err}");
        assert!(err.to_string().contains("must be between"), "{err}");
    }
    let err = run(&EstimateInput {
        epochs: Some(1e-300),
        ..dense(405e9, 15.6e12)
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "epochs: must be between 0.001 and 10000 passes over the data (got 1e-300)"
    );
}

#[test]
fn the_highest_method_and_the_envelope() {
    let hardware = llama_cluster();
    // 0.2 epochs: operation counting 7.6e24, the cluster at 38% 2.9e25.
    let e = run(&EstimateInput {
        epochs: Some(0.2),
        hardware: Some(hardware.clone()),
        base_model_flop: Some(Flop::new(1e24).unwrap()),
        ..dense(405e9, 15.6e12)
    })
    .unwrap();
    let h = e.hardware.as_ref().unwrap();
    assert_eq!(e.run_flop, e.operation_counting.as_ref().unwrap().flop);
    assert_eq!(e.highest_run_flop(), h.flop);
    assert!(close(e.highest_flop().get(), h.flop.get() + 1e24, 1e-12));
    assert!(close(e.method_ratio().unwrap(), 2.87e25 / 7.58e24, 0.01));
    assert_eq!(e.envelope_flop(), Some(h.ceiling_flop));
    assert!(close(h.ceiling_flop.get(), h.flop.get() / 0.38, 1e-12));
    // One method: its figure; no ratio.
    let ops = run(&dense(405e9, 15.6e12)).unwrap();
    assert_eq!(ops.highest_run_flop(), ops.run_flop);
    assert_eq!((ops.method_ratio(), ops.envelope_flop()), (None, None));
    let hw = run(&EstimateInput {
        hardware: Some(hardware),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(hw.highest_flop(), hw.flop);
}

#[test]
fn incomplete_inputs_say_what_is_missing() {
    let err = run(&EstimateInput {
        parameters: Some(1e9),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.errors[0].field, "tokens");
    let nothing = run(&EstimateInput::default()).unwrap_err();
    assert!(nothing.to_string().contains("nothing to estimate"));
    let moe = run(&EstimateInput {
        active_parameters: Some(2e9),
        ..dense(1e9, 1e12)
    })
    .unwrap_err();
    assert_eq!(moe.errors[0].field, "active_parameters");
}

#[test]
fn unsupported_precision_is_named() {
    let err = run(&EstimateInput {
        hardware: Some(HardwareInput {
            accelerator: "V100".into(),
            count: 8,
            hours: 10.0,
            utilization: None,
            utilization_low: None,
            utilization_high: None,
            precision: Some(Precision::Fp8),
        }),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.errors[0].field, "hardware.precision");
    assert!(err.to_string().contains("no fp8"), "{err}");
}

#[test]
fn unknown_json_fields_are_refused() {
    let err = serde_json::from_str::<EstimateInput>(r#"{"params": 1e9}"#).unwrap_err();
    assert!(err.to_string().contains("params"), "{err}");
}
