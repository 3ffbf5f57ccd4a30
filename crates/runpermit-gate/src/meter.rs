//! Metering: from what a provider observes to FLOP, with the method and bounds stated.
//!
//! Three methods, each documented with its bounds:
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
//! - **NVML GPU utilization** (`nvml_utilization`): samples of NVML's GPU utilization (the
//!   fraction of time one or more kernels ran, `nvmlDeviceGetUtilizationRates`), for nodes
//!   without DCGM profiling. Metered = Σ utilization × interval × the chip's 16-bit dense
//!   peak: what the run computed if every busy moment ran the tensor pipes flat out in
//!   16-bit. Upper bound = Σ interval × the chip's highest peak (as for accounting); lower
//!   bound 0, because a kernel running says nothing about how much arithmetic it does
//!   (NVIDIA documents this counter as "a kernel was executing", not a throughput signal).
//!   Coarser than DCGM's tensor activity, tighter than accounting when GPUs sit idle.
//!
//! All operations count the same whatever their precision; a multiply-add is 2 FLOP. The
//! reports carry the method and both bounds, so the authority can sum conservatively.

use std::collections::BTreeMap;

use runpermit_compute::{Accelerator, Flop, Precision};
use runpermit_permit::{MeterMethod, Metered};

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

/// Sums samples of (busy fraction, seconds): total seconds, and seconds weighted by the
/// fraction. Every fraction must lie in [0, 1] and every duration be finite and ≥ 0; `what`
/// names the fraction in the error.
fn busy_seconds(
    what: &str,
    samples: impl Iterator<Item = (f64, f64)>,
) -> Result<(f64, f64), MeterError> {
    let (mut seconds, mut busy) = (0.0, 0.0);
    for (i, (fraction, s)) in samples.enumerate() {
        seconds_ok(s)?;
        if !(fraction.is_finite() && (0.0..=1.0).contains(&fraction)) {
            return Err(MeterError::Invalid(format!(
                "sample {i}: {what} must be a fraction in [0, 1] (got {fraction})"
            )));
        }
        seconds += s;
        busy += fraction * s;
    }
    Ok((seconds, busy))
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
    let (seconds, active_seconds) = busy_seconds(
        "tensor activity",
        samples.iter().map(|s| (s.tensor_active, s.seconds)),
    )?;
    let metered = flop(active_seconds * sixteen)?;
    Ok(Metered {
        method: MeterMethod::DcgmTensorActivity,
        accelerator_seconds: BTreeMap::from([(chip.id.clone(), seconds)]),
        flop: metered,
        lower: flop(metered.get() * 0.5)?,
        upper: flop(seconds * max)?,
    })
}

/// One NVML sample of one accelerator: GPU utilization over an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UtilizationSample {
    /// NVML's GPU utilization as a fraction in [0, 1] (its percentage / 100): the share of
    /// the interval during which one or more kernels ran.
    pub utilization: f64,
    /// Seconds the sample stands for.
    pub seconds: f64,
}

/// Meters NVML utilization samples of accelerators of type `chip` (see the module
/// documentation for the method and its bounds).
pub fn nvml_utilization(
    chip: &Accelerator,
    samples: &[UtilizationSample],
) -> Result<Metered, MeterError> {
    let (sixteen, max) = (sixteen_bit_peak(chip)?, max_peak(chip)?);
    let (seconds, busy_seconds) = busy_seconds(
        "GPU utilization",
        samples.iter().map(|s| (s.utilization, s.seconds)),
    )?;
    Ok(Metered {
        method: MeterMethod::NvmlUtilization,
        accelerator_seconds: BTreeMap::from([(chip.id.clone(), seconds)]),
        flop: flop(busy_seconds * sixteen)?,
        lower: Flop::ZERO,
        upper: flop(seconds * max)?,
    })
}

/// One series of a Prometheus text exposition: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The labels (`gpu`, `Hostname`, `hpc_job`, …).
    pub labels: BTreeMap<String, String>,
    /// The sample value.
    pub value: f64,
}

/// Every series of `metric` in a Prometheus text exposition (comments and other metrics
/// skipped); a malformed line of this metric is an error naming the line.
pub fn exposition_series(exposition: &str, metric: &str) -> Result<Vec<Series>, MeterError> {
    let mut out = Vec::new();
    for (n, line) in exposition.lines().enumerate() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        // Another metric whose name starts with this one's.
        if rest
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let bad = || MeterError::Invalid(format!("line {}: cannot read {line:?}", n + 1));
        let (labels, number) = match rest.strip_prefix('{') {
            Some(rest) => {
                let (labels, number) = rest.rsplit_once('}').ok_or_else(bad)?;
                (parse_labels(labels).ok_or_else(bad)?, number)
            }
            None => (BTreeMap::new(), rest),
        };
        let value: f64 = number
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)?;
        out.push(Series { labels, value });
    }
    Ok(out)
}

/// The DCGM field of tensor-pipe activity, as dcgm-exporter names its metric.
pub const DCGM_TENSOR_ACTIVE: &str = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE";

/// The `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` values in a Prometheus text exposition from the DCGM
/// exporter, by GPU (`gpu` label) for the samples whose `label` equals `value` (the exporter's
/// job-mapping label, e.g. `hpc_job` or `pod`). Comments and other metrics are skipped; a
/// malformed value line of this metric is an error naming the line.
pub fn dcgm_tensor_active(
    exposition: &str,
    label: &str,
    value: &str,
) -> Result<BTreeMap<String, f64>, MeterError> {
    let mut out = BTreeMap::new();
    for series in exposition_series(exposition, DCGM_TENSOR_ACTIVE)? {
        if series.labels.get(label).map(String::as_str) != Some(value) {
            continue;
        }
        let gpu = series.labels.get("gpu").cloned().ok_or_else(|| {
            MeterError::Invalid(format!(
                "a {DCGM_TENSOR_ACTIVE} series with {label}={value:?} has no gpu label"
            ))
        })?;
        out.insert(gpu, series.value);
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

        let series = exposition_series(text, DCGM_TENSOR_ACTIVE).unwrap();
        assert_eq!(series.len(), 3);
        assert_eq!(series[2].labels["hpc_job"], "777");
        assert_eq!(series[2].labels["modelName"], "NVIDIA H100 80GB HBM3");
        assert_eq!(series[2].value, 0.1);
        // A metric whose name extends this one's is another metric.
        let other = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE_X{gpu=\"0\"} 1\nup 1\n";
        assert!(
            exposition_series(other, DCGM_TENSOR_ACTIVE)
                .unwrap()
                .is_empty()
        );
        let bare = exposition_series("up 1 1700000000\n", "up").unwrap();
        assert_eq!(
            bare,
            [Series {
                labels: BTreeMap::new(),
                value: 1.0
            }]
        );
    }

    #[test]
    fn nvml_utilization_meters_at_the_16_bit_peak_with_a_zero_floor() {
        let samples = [
            UtilizationSample {
                utilization: 1.0,
                seconds: 30.0,
            },
            UtilizationSample {
                utilization: 0.5,
                seconds: 30.0,
            },
        ];
        let m = nvml_utilization(h100(), &samples).unwrap();
        assert_eq!(m.method, MeterMethod::NvmlUtilization);
        let expected = 45.0 * 9.894e14;
        assert!((m.flop.get() / expected - 1.0).abs() < 1e-9, "{:?}", m.flop);
        assert_eq!(m.lower, Flop::ZERO);
        assert!((m.upper.get() / (60.0 * 1.979e15) - 1.0).abs() < 1e-9);
        assert_eq!(m.accelerator_seconds["nvidia-h100-sxm"], 60.0);
        let bad = [UtilizationSample {
            utilization: f64::NAN,
            seconds: 1.0,
        }];
        assert!(nvml_utilization(h100(), &bad).is_err());
        let bad = [UtilizationSample {
            utilization: 0.5,
            seconds: -1.0,
        }];
        assert!(nvml_utilization(h100(), &bad).is_err());
    }
}
