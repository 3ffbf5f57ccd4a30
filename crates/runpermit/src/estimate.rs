//! `runpermit estimate`: flags → [`EstimateInput`] → [`estimate`] → text or JSON.

use std::fmt::Write as _;

use anyhow::Result;
use clap::Args;
use runpermit_compute::{
    Estimate, EstimateInput, FieldError, Flop, HardwareInput, HardwareTable, Precision,
    SyntheticData, builtin_regimes, estimate, format_flop, format_flop_rate,
};

use crate::args::{self, ArgError};

/// Flags as typed. [`EstimateArgs::resolve`] turns them into the core's input.
#[derive(Debug, Args)]
pub struct EstimateArgs {
    /// Total parameters N, e.g. 405e9 or 405B.
    #[arg(long, value_name = "N", value_parser = args::count, allow_hyphen_values = true, help_heading = "Operation counting")]
    params: Option<f64>,
    /// Parameters active per token, for mixture-of-experts models (replaces N in 6·N·D).
    #[arg(long, value_name = "N", value_parser = args::count, allow_hyphen_values = true, help_heading = "Operation counting")]
    moe_active_params: Option<f64>,
    /// Training tokens D (one pass over the data), e.g. 15.6e12 or 15.6T.
    #[arg(long, value_name = "D", value_parser = args::count, allow_hyphen_values = true, help_heading = "Operation counting")]
    tokens: Option<f64>,
    /// Passes over the data [default: 1].
    #[arg(long, value_name = "E", value_parser = args::positive, allow_hyphen_values = true, help_heading = "Operation counting")]
    epochs: Option<f64>,
    /// Parameters of a model generating synthetic training data (adds 2·N·tokens generated).
    #[arg(long, value_name = "N", value_parser = args::count, allow_hyphen_values = true, requires = "synthetic_tokens", help_heading = "Operation counting")]
    synthetic_generator_params: Option<f64>,
    /// Tokens of synthetic data generated.
    #[arg(long, value_name = "N", value_parser = args::count, allow_hyphen_values = true, requires = "synthetic_generator_params", help_heading = "Operation counting")]
    synthetic_tokens: Option<f64>,
    /// Further compute attributed to the run (e.g. RL rollouts), e.g. 1e24 or 1 YFLOP.
    #[arg(long, value_name = "FLOP", value_parser = args::flop, allow_hyphen_values = true, help_heading = "Operation counting")]
    additional_flop: Option<Flop>,

    /// Accelerator name or alias, e.g. "H100 SXM", A100, "TPU v5p".
    #[arg(long, value_name = "NAME", help_heading = "Hardware method")]
    chip: Option<String>,
    /// Number of accelerators, e.g. 16384 or 16k.
    #[arg(long, value_name = "N", value_parser = args::whole, allow_hyphen_values = true, help_heading = "Hardware method")]
    count: Option<u64>,
    /// Training time in days.
    #[arg(long, value_name = "DAYS", value_parser = args::positive, allow_hyphen_values = true, conflicts_with = "hours", help_heading = "Hardware method")]
    days: Option<f64>,
    /// Training time in hours.
    #[arg(long, value_name = "HOURS", value_parser = args::positive, allow_hyphen_values = true, help_heading = "Hardware method")]
    hours: Option<f64>,
    /// Expected model FLOP utilization, e.g. 0.38 or 38% [default: 0.4, range 0.3-0.5].
    #[arg(long, value_name = "U", value_parser = args::fraction, allow_hyphen_values = true, help_heading = "Hardware method")]
    mfu: Option<f64>,
    /// Utilization range for the low–high estimate, e.g. 0.3-0.45.
    #[arg(long, value_name = "LOW-HIGH", value_parser = args::fraction_range, allow_hyphen_values = true, help_heading = "Hardware method")]
    mfu_range: Option<(f64, f64)>,
    /// Precision of the training arithmetic: fp64, fp32, tf32, bf16, fp16, fp8, int8
    /// [default: bf16, or the chip's best 16-bit format].
    #[arg(long, value_name = "P", value_parser = args::precision, help_heading = "Hardware method")]
    precision: Option<Precision>,

    /// Cumulative compute of the base model being fine-tuned, e.g. 3.8e25.
    #[arg(long, value_name = "FLOP", value_parser = args::flop, allow_hyphen_values = true)]
    base_model_flop: Option<Flop>,
    /// The training data is mostly biological sequence data (lower thresholds apply).
    #[arg(long)]
    biological_sequence_data: bool,
    /// Print the estimate as JSON (schema runpermit.estimate/v1, documented in docs/estimate.md).
    #[arg(long)]
    json: bool,
}

/// The flag that sets each input field, for error messages.
const FIELD_FLAGS: &[(&str, &str)] = &[
    ("parameters", "--params"),
    ("active_parameters", "--moe-active-params"),
    ("tokens", "--tokens"),
    ("epochs", "--epochs"),
    (
        "synthetic_data.generator_parameters",
        "--synthetic-generator-params",
    ),
    ("synthetic_data.tokens_generated", "--synthetic-tokens"),
    ("synthetic_data", "--synthetic-generator-params"),
    ("additional_flop", "--additional-flop"),
    ("hardware.accelerator", "--chip"),
    ("hardware.count", "--count"),
    ("hardware.hours", "--days/--hours"),
    ("hardware.utilization", "--mfu"),
    ("hardware.utilization_low", "--mfu-range"),
    ("hardware.utilization_high", "--mfu-range"),
    ("hardware.precision", "--precision"),
    ("hardware", "--chip"),
    ("base_model_flop", "--base-model-flop"),
];

impl EstimateArgs {
    /// The core's input, or a usage error naming the missing or conflicting flags.
    fn resolve(&self) -> Result<EstimateInput, ArgError> {
        let any_hardware = self.chip.is_some()
            || self.count.is_some()
            || self.days.is_some()
            || self.hours.is_some()
            || self.mfu.is_some()
            || self.mfu_range.is_some()
            || self.precision.is_some();
        let hardware = if any_hardware {
            let mut missing = Vec::new();
            if self.chip.is_none() {
                missing.push("--chip NAME");
            }
            if self.count.is_none() {
                missing.push("--count N");
            }
            if self.days.is_none() && self.hours.is_none() {
                missing.push("--days DAYS or --hours HOURS");
            }
            if !missing.is_empty() {
                return Err(ArgError(format!(
                    "the hardware method also needs {}",
                    missing.join(", ")
                )));
            }
            Some(HardwareInput {
                accelerator: self.chip.clone().unwrap_or_default(),
                count: self.count.unwrap_or_default(),
                hours: self
                    .hours
                    .or(self.days.map(|d| d * 24.0))
                    .unwrap_or_default(),
                utilization: self.mfu,
                utilization_low: self.mfu_range.map(|r| r.0),
                utilization_high: self.mfu_range.map(|r| r.1),
                precision: self.precision,
            })
        } else {
            None
        };
        Ok(EstimateInput {
            parameters: self.params,
            active_parameters: self.moe_active_params,
            tokens: self.tokens,
            epochs: self.epochs,
            synthetic_data: self
                .synthetic_generator_params
                .zip(self.synthetic_tokens)
                .map(|(generator_parameters, tokens_generated)| SyntheticData {
                    generator_parameters,
                    tokens_generated,
                }),
            additional_flop: self.additional_flop,
            hardware,
            base_model_flop: self.base_model_flop,
            biological_sequence_data: self.biological_sequence_data,
        })
    }
}

fn flag_for(field: &str) -> &str {
    FIELD_FLAGS
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, flag)| *flag)
        .unwrap_or(field)
}

fn flag_errors(errors: &[FieldError]) -> String {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| {
            if e.field.is_empty() {
                "give --params and --tokens (operation counting) and/or --chip, --count and \
                 --days (hardware method)"
                    .to_owned()
            } else {
                format!("{}: {}", flag_for(&e.field), e.message)
            }
        })
        .collect();
    lines.join("\nerror: ")
}

/// Runs `runpermit estimate`.
pub fn run(args: EstimateArgs) -> Result<()> {
    let input = args.resolve()?;
    let result = estimate(&input, HardwareTable::builtin(), builtin_regimes())
        .map_err(|e| ArgError(flag_errors(&e.errors)))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", render(&result));
    }
    Ok(())
}

/// The estimate for people.
pub fn render(e: &Estimate) -> String {
    let mut out = String::new();
    let cumulative = if e.base_model_flop > Flop::ZERO {
        " cumulative"
    } else {
        ""
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "Training compute{cumulative}: {} ({})",
        e.flop,
        e.flop.si()
    );
    let _ = writeln!(out, "  range:   {} to {}", e.low, e.high);
    let _ = writeln!(out, "  method:  {}", e.method);
    if e.base_model_flop > Flop::ZERO {
        let _ = writeln!(
            out,
            "  lineage: {} this run + {} base model",
            e.run_flop, e.base_model_flop
        );
    }
    if let Some(o) = &e.operation_counting {
        let _ = writeln!(out, "\nOperation counting: {}", o.flop);
        let _ = writeln!(out, "  {}", o.formula);
        let _ = writeln!(out, "  range:   {} to {} (±10%)", o.low, o.high);
    }
    if let Some(h) = &e.hardware {
        let _ = writeln!(out, "\nHardware method: {}", h.flop);
        let _ = writeln!(
            out,
            "  {} × {} at {} {} peak × {} h × {:.0}% utilization",
            h.count,
            h.accelerator,
            h.peak_flop_per_second.si(),
            h.precision,
            h.hours,
            h.utilization * 100.0
        );
        let _ = writeln!(
            out,
            "  range:   {} to {} ({:.0}–{:.0}% utilization)",
            h.low,
            h.high,
            h.utilization_low * 100.0,
            h.utilization_high * 100.0
        );
        let _ = writeln!(out, "  ceiling: {} at 100% utilization", h.ceiling_flop);
        let _ = writeln!(out, "  peak from {}", h.source);
    }
    if !e.thresholds.is_empty() {
        let _ = writeln!(out, "\nThresholds:");
        for t in &e.thresholds {
            let verdict = if t.crossed { "CROSSED" } else { "below  " };
            let limit = if t.kind == "cluster_capacity" {
                format_flop_rate(t.limit)
            } else {
                format_flop(t.limit)
            };
            let distance = if t.crossed {
                format!("{:.2}× the threshold", t.ratio)
            } else {
                format!("{:.2}× below the threshold", 1.0 / t.ratio)
            };
            let flip = if t.within_range {
                "; inside the estimate's range"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {verdict} {limit}  {} ({})  {distance}, {:+.2} orders of magnitude{flip}",
                t.regime_name, t.threshold, t.orders_of_magnitude
            );
        }
    }
    for w in &e.warnings {
        let _ = writeln!(out, "\nwarning: {w}");
    }
    out
}
