//! Metering: from what a provider observes to FLOP, with the method and bounds stated.
//!
//! Two sources, each a documented method:
//!
//! - **Scheduler accounting** (`scheduler_accounting`): accelerator-seconds per job. The
//!   provider knows how long each accelerator was allocated, not what it computed, so the
//!   metered figure *is* the upper bound: seconds × the chip's highest dense peak at any
//!   precision. Lower bound 0.
//! - **DCGM tensor-pipe activity** (`dcgm_tensor_activity`): samples of
//!   `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` (the fraction of cycles the tensor pipes were busy)
//!   from NVIDIA's DCGM exporter. Metered = Σ activity × interval × the chip's 16-bit dense
//!   peak (bf16, else fp16): what the run computed if it ran its matrix work in 16-bit, the
//!   usual training precision. Upper bound = Σ interval × the chip's highest peak (FP8 runs
//!   can do up to 2× the 16-bit figure in the same active cycles); lower bound = the metered
//!   figure × 0.5, because activity counts partly-filled pipe cycles as busy.
//!
//! All operations count the same whatever their precision; a multiply-add is 2 FLOP. The
//! reports carry the method and both bounds, so the authority can sum conservatively.

use std::collections::BTreeMap;

use runpermit_compute::{Accelerator, Flop, Precision};
use serde::{Deserialize, Serialize};

/// How a figure was metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterMethod {
    /// Allocated accelerator-seconds × the chip's highest peak (an upper bound).
    SchedulerAccounting,
    /// DCGM tensor-pipe activity × the chip's 16-bit peak.
    DcgmTensorActivity,
}

/// A metered amount of compute with its bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metered {
    /// The method.
    pub method: MeterMethod,
    /// Accelerator-seconds by accelerator id (runpermit-compute's table).
    pub accelerator_seconds: BTreeMap<String, f64>,
    /// The metered figure.
    pub flop: Flop,
    /// Lower bound.
    pub lower: Flop,
    /// Upper bound.
    pub upper: Flop,
}

/// Why a sample cannot be metered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeterError {
    /// A duration or activity is negative, not finite, or an activity is above 1.
    #[error("{0}")]
    Invalid(String),
    /// The chip has no figure for what the method needs.
    #[error("{accelerator} has no {what} peak in the hardware table")]
    NoPeak {
        /// The chip.
        accelerator: String,
        /// What was needed.
        what: &'static str,
    },
    /// The result does not fit a FLOP count.
    #[error("metered compute is too large: {0}")]
    Overflow(String),
}

fn max_peak(chip: &Accelerator) -> Result<f64, MeterError> {
    chip.max_peak()
        .map(|(_, r)| r.get())
        .ok_or(MeterError::NoPeak {
            accelerator: chip.name.clone(),
            what: "any",
        })
}

fn sixteen_bit_peak(chip: &Accelerator) -> Result<f64, MeterError> {
    chip.peak(Precision::Bf16)
        .or(chip.peak(Precision::Fp16))
        .map(|r| r.get())
        .ok_or(MeterError::NoPeak {
            accelerator: chip.name.clone(),
            what: "bf16 or fp16",
        })
}

fn flop(value: f64) -> Result<Flop, MeterError> {
    Flop::new(value).map_err(|e| MeterError::Overflow(e.to_string()))
}

fn seconds_ok(seconds: f64) -> Result<(), MeterError> {
    if seconds.is_finite() && seconds >= 0.0 {
        Ok(())
    } else {
        Err(MeterError::Invalid(format!(
            "accelerator-seconds must be a finite number ≥ 0 (got {seconds})"
        )))
    }
}

/// Meters `seconds` of allocation of `chip` from scheduler accounting.
pub fn scheduler_accounting(chip: &Accelerator, seconds: f64) -> Result<Metered, MeterError> {
    seconds_ok(seconds)?;
    let upper = flop(seconds * max_peak(chip)?)?;
    Ok(Metered {
        method: MeterMethod::SchedulerAccounting,
        accelerator_seconds: BTreeMap::from([(chip.id.clone(), seconds)]),
        flop: upper,
        lower: Flop::ZERO,
        upper,
    })
}

/// One DCGM sample of one accelerator: tensor-pipe activity over an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorSample {
    /// `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`, a fraction in [0, 1].
    pub tensor_active: f64,
    /// Seconds the sample stands for (the exporter's collection interval).
    pub seconds: f64,
}

/// Meters DCGM samples of accelerators of type `chip`.
pub fn dcgm_tensor_activity(
    chip: &Accelerator,
    samples: &[TensorSample],
) -> Result<Metered, MeterError> {
    let (sixteen, max) = (sixteen_bit_peak(chip)?, max_peak(chip)?);
    let (mut seconds, mut active_seconds) = (0.0, 0.0);
    for (i, s) in samples.iter().enumerate() {
        seconds_ok(s.seconds)?;
        if !(s.tensor_active.is_finite() && (0.0..=1.0).contains(&s.tensor_active)) {
            return Err(MeterError::Invalid(format!(
                "sample {i}: tensor activity must be a fraction in [0, 1] (got {})",
                s.tensor_active
            )));
        }
        seconds += s.seconds;
        active_seconds += s.tensor_active * s.seconds;
    }
    let metered = flop(active_seconds * sixteen)?;
    Ok(Metered {
        method: MeterMethod::DcgmTensorActivity,
        accelerator_seconds: BTreeMap::from([(chip.id.clone(), seconds)]),
        flop: metered,
        lower: flop(metered.get() * 0.5)?,
        upper: flop(seconds * max)?,
    })
}

/// The `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` values in a Prometheus text exposition from the DCGM
/// exporter, by GPU (`gpu` label) for the samples whose `label` equals `value` (the exporter's
/// job-mapping label, e.g. `hpc_job` or `pod`). Comments and other metrics are skipped; a
/// malformed value line of this metric is an error naming the line.
pub fn dcgm_tensor_active(
    exposition: &str,
    label: &str,
    value: &str,
) -> Result<BTreeMap<String, f64>, MeterError> {
    const METRIC: &str = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE";
    let mut out = BTreeMap::new();
    for (n, line) in exposition.lines().enumerate() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix(METRIC) else {
            continue;
        };
        let bad = || MeterError::Invalid(format!("line {}: cannot read {line:?}", n + 1));
        let rest = rest.strip_prefix('{').ok_or_else(bad)?;
        let (labels, number) = rest.rsplit_once('}').ok_or_else(bad)?;
        let number: f64 = number
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        let labels = parse_labels(labels).ok_or_else(bad)?;
        if labels.get(label).map(String::as_str) != Some(value) {
            continue;
        }
        let gpu = labels.get("gpu").cloned().ok_or_else(bad)?;
        out.insert(gpu, number);
    }
    Ok(out)
}

/// `a="x",b="y"` → map; `None` when malformed. Values may contain escaped quotes.
fn parse_labels(text: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => value.push(chars.next()?.1),
                '"' => break i,
                c => value.push(c),
            }
        };
        out.insert(name.trim().to_owned(), value);
        rest = after[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runpermit_compute::HardwareTable;

    fn h100() -> &'static Accelerator {
        HardwareTable::builtin().lookup("H100 SXM").unwrap()
    }

    #[test]
    fn accounting_is_an_upper_bound_at_the_highest_peak() {
        let m = scheduler_accounting(h100(), 3600.0).unwrap();
        // H100 SXM: FP8 1979 TFLOP/s dense is its highest figure.
        assert!((m.upper.get() / (3600.0 * 1.979e15) - 1.0).abs() < 1e-9);
        assert_eq!(m.flop, m.upper);
        assert_eq!(m.lower, Flop::ZERO);
        assert!(scheduler_accounting(h100(), -1.0).is_err());
    }

    #[test]
    fn tensor_activity_meters_at_the_16_bit_peak_with_bounds() {
        let samples = [
            TensorSample {
                tensor_active: 0.5,
                seconds: 10.0,
            },
            TensorSample {
                tensor_active: 0.25,
                seconds: 20.0,
            },
        ];
        let m = dcgm_tensor_activity(h100(), &samples).unwrap();
        let expected = (0.5 * 10.0 + 0.25 * 20.0) * 9.894e14;
        assert!((m.flop.get() / expected - 1.0).abs() < 1e-9, "{:?}", m.flop);
        assert!(m.lower <= m.flop && m.flop <= m.upper);
        assert_eq!(m.accelerator_seconds["nvidia-h100-sxm"], 30.0);
        let bad = [TensorSample {
            tensor_active: 1.5,
            seconds: 1.0,
        }];
        assert!(
            dcgm_tensor_activity(h100(), &bad)
                .unwrap_err()
                .to_string()
                .contains("sample 0")
        );
    }

    #[test]
    fn reads_the_dcgm_exporters_exposition_for_one_job() {
        let text = r#"# HELP DCGM_FI_PROF_PIPE_TENSOR_ACTIVE Ratio of cycles the tensor (HMMA) pipe is active.
# TYPE DCGM_FI_PROF_PIPE_TENSOR_ACTIVE gauge
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="n1",hpc_job="4242"} 0.612
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA H100 80GB HBM3",Hostname="n1",hpc_job="4242"} 0.598
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu="2",UUID="GPU-c",device="nvidia2",modelName="NVIDIA H100 80GB HBM3",Hostname="n1",hpc_job="777"} 0.100
DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="GPU-a",hpc_job="4242"} 1980
"#;
        let active = dcgm_tensor_active(text, "hpc_job", "4242").unwrap();
        assert_eq!(active.len(), 2);
        assert_eq!(active["0"], 0.612);
        assert_eq!(active["1"], 0.598);
        let broken = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{gpu=\"0\",hpc_job=\"1\" 0.5";
        assert!(dcgm_tensor_active(broken, "hpc_job", "1").is_err());
    }
}
