//! Metering: from what a provider observes to FLOP, counted with the permit's accounting
//! basis (the precision and utilization its holder declared), as a central estimate with
//! bounds. The rules are runpermit-compute's `accounting` module; here they meet the
//! provider's observations:
//!
//! - **Scheduler accounting** (`scheduler_accounting`): accelerator-seconds allocated to the
//!   run's jobs. Central = seconds × the peak at the declared precision × the declared
//!   utilization; lower = at the declared low utilization; upper = seconds × the chip's
//!   highest dense peak (what the allocation could have computed at most).
//! - **DCGM tensor-pipe activity** (`dcgm_tensor_activity`): samples of
//!   `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE` (the fraction of cycles the tensor pipes were busy)
//!   from NVIDIA's DCGM exporter. Central = Σ activity × interval × the peak at the declared
//!   precision: a measurement of utilization, so the declared one is not used. Lower =
//!   central × 0.5 (activity counts partly-filled pipe cycles as busy, and the peak assumes a
//!   boost clock that power capping takes away); upper = the active time at the chip's
//!   highest peak plus 10% for arithmetic outside the tensor pipes, at most the whole time
//!   at that peak.
//! - **NVML GPU utilization** (`nvml_utilization`): samples of NVML's GPU utilization (the
//!   fraction of time one or more kernels ran, `nvmlDeviceGetUtilizationRates`), for nodes
//!   without DCGM profiling. It measures busy time, not arithmetic (NVIDIA documents the
//!   counter as "a kernel was executing"), so it replaces the allocation's seconds and is
//!   counted as scheduler accounting counts them: central = busy seconds × the peak at the
//!   declared precision × the declared utilization; lower at the low utilization; upper =
//!   busy seconds × the highest peak. Tighter than accounting when GPUs sit idle.
//!
//! Without a basis (a permit signed before claim-set version 3, or one this gate does not
//! hold) every figure is counted at its most: central = upper, lower 0.
//!
//! All operations count the same whatever their precision; a multiply-add is 2 FLOP. The
//! reports carry the method and both bounds; the authority sums all three.

use std::collections::BTreeMap;

use runpermit_compute::accounting::{self, AccountingError, Figures};
use runpermit_compute::{Accelerator, AccountingBasis};
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

impl From<AccountingError> for MeterError {
    fn from(e: AccountingError) -> MeterError {
        match e {
            AccountingError::Invalid(m) => MeterError::Invalid(m),
            AccountingError::NoPeak(accelerator) => MeterError::NoPeak {
                accelerator,
                what: "any",
            },
            AccountingError::Overflow(m) => MeterError::Overflow(m),
        }
    }
}

fn metered(method: MeterMethod, chip: &Accelerator, seconds: f64, f: Figures) -> Metered {
    Metered {
        method,
        accelerator_seconds: BTreeMap::from([(chip.id.clone(), seconds)]),
        flop: f.central,
        lower: f.lower,
        upper: f.upper,
    }
}

/// Meters `seconds` of allocation of `chip` from scheduler accounting, with the permit's
/// accounting `basis`.
pub fn scheduler_accounting(
    chip: &Accelerator,
    seconds: f64,
    basis: Option<&AccountingBasis>,
) -> Result<Metered, MeterError> {
    let figures = accounting::over_time(chip, seconds, basis)?;
    Ok(metered(
        MeterMethod::SchedulerAccounting,
        chip,
        seconds,
        figures,
    ))
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
        if !(s.is_finite() && s >= 0.0) {
            return Err(MeterError::Invalid(format!(
                "sample {i}: accelerator-seconds must be a finite number ≥ 0 (got {s})"
            )));
        }
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

/// Meters DCGM samples of accelerators of type `chip`, with the permit's accounting `basis`
/// (only its precision counts: the samples measure utilization).
pub fn dcgm_tensor_activity(
    chip: &Accelerator,
    samples: &[TensorSample],
    basis: Option<&AccountingBasis>,
) -> Result<Metered, MeterError> {
    let (seconds, active_seconds) = busy_seconds(
        "tensor activity",
        samples.iter().map(|s| (s.tensor_active, s.seconds)),
    )?;
    let figures = accounting::tensor_activity(chip, active_seconds, seconds, basis)?;
    Ok(metered(
        MeterMethod::DcgmTensorActivity,
        chip,
        seconds,
        figures,
    ))
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

/// Meters NVML utilization samples of accelerators of type `chip` with the permit's
/// accounting `basis` (see the module documentation for the method and its bounds). The
/// report's accelerator-seconds are the whole time sampled; the figures count the busy time.
pub fn nvml_utilization(
    chip: &Accelerator,
    samples: &[UtilizationSample],
    basis: Option<&AccountingBasis>,
) -> Result<Metered, MeterError> {
    let (seconds, busy_seconds) = busy_seconds(
        "GPU utilization",
        samples.iter().map(|s| (s.utilization, s.seconds)),
    )?;
    let figures = accounting::over_time(chip, busy_seconds, basis)?;
    Ok(metered(
        MeterMethod::NvmlUtilization,
        chip,
        seconds,
        figures,
    ))
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
    use runpermit_compute::{Flop, HardwareTable, Precision};

    fn h100() -> &'static Accelerator {
        HardwareTable::builtin().lookup("H100 SXM").unwrap()
    }

    /// bf16 at 40% (30–50%).
    fn basis() -> AccountingBasis {
        AccountingBasis {
            precision: Precision::Bf16,
            utilization: 0.4,
            utilization_low: 0.3,
            utilization_high: 0.5,
            parameters: None,
        }
    }

    fn close(a: Flop, b: f64) -> bool {
        (a.get() / b - 1.0).abs() < 1e-9
    }

    #[test]
    fn accounting_counts_at_the_declared_precision_and_utilization() {
        let m = scheduler_accounting(h100(), 3600.0, Some(&basis())).unwrap();
        // H100 SXM: bf16 989.4 TFLOP/s dense; FP8 1979 TFLOP/s is its highest figure.
        assert!(close(m.flop, 3600.0 * 9.894e14 * 0.4), "{:?}", m.flop);
        assert!(close(m.lower, 3600.0 * 9.894e14 * 0.3));
        assert!(close(m.upper, 3600.0 * 1.979e15));
        assert_eq!(m.method, MeterMethod::SchedulerAccounting);
        // Without a basis, at its most.
        let m = scheduler_accounting(h100(), 3600.0, None).unwrap();
        assert_eq!(m.flop, m.upper);
        assert_eq!(m.lower, Flop::ZERO);
        assert!(scheduler_accounting(h100(), -1.0, None).is_err());
    }

    #[test]
    fn tensor_activity_meters_at_the_declared_precision_with_bounds() {
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
        let m = dcgm_tensor_activity(h100(), &samples, Some(&basis())).unwrap();
        // Measured activity, not the declared utilization.
        let expected = (0.5 * 10.0 + 0.25 * 20.0) * 9.894e14;
        assert!(close(m.flop, expected), "{:?}", m.flop);
        assert!(close(m.lower, expected * 0.5));
        assert!(close(m.upper, 10.0 * 1.979e15 * 1.1));
        assert!(m.lower <= m.flop && m.flop <= m.upper);
        let fp8 = AccountingBasis {
            precision: Precision::Fp8,
            ..basis()
        };
        let m8 = dcgm_tensor_activity(h100(), &samples, Some(&fp8)).unwrap();
        assert!(close(m8.flop, 10.0 * 1.979e15));
        assert_eq!(m.accelerator_seconds["nvidia-h100-sxm"], 30.0);
        let bad = [TensorSample {
            tensor_active: 1.5,
            seconds: 1.0,
        }];
        assert!(
            dcgm_tensor_activity(h100(), &bad, None)
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
    fn nvml_utilization_counts_busy_time_as_accounting_counts_allocated_time() {
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
        let m = nvml_utilization(h100(), &samples, Some(&basis())).unwrap();
        assert_eq!(m.method, MeterMethod::NvmlUtilization);
        // 45 busy seconds of 60.
        assert!(close(m.flop, 45.0 * 9.894e14 * 0.4), "{:?}", m.flop);
        assert!(close(m.lower, 45.0 * 9.894e14 * 0.3));
        assert!(close(m.upper, 45.0 * 1.979e15));
        assert_eq!(m.accelerator_seconds["nvidia-h100-sxm"], 60.0);
        let bad = [UtilizationSample {
            utilization: f64::NAN,
            seconds: 1.0,
        }];
        assert!(nvml_utilization(h100(), &bad, None).is_err());
        let bad = [UtilizationSample {
            utilization: 0.5,
            seconds: -1.0,
        }];
        assert!(nvml_utilization(h100(), &bad, None).is_err());
    }
}
