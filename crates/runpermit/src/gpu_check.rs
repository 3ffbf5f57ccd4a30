//! `runpermit gate gpu-check -- WORKLOAD…`: checks the `nvml` metering method against a
//! workload of known compute on a real GPU (`scripts/gpu-check` runs it with
//! `scripts/gpu-check-workload.py`, a bf16 matrix-multiply loop).
//!
//! It samples NVML's GPU utilization with the gate agent's own [`NvmlSampler`] while the
//! workload runs on one GPU (`CUDA_VISIBLE_DEVICES` set to that GPU's UUID), over exactly the
//! workload's timed window, then meters the window as the gate would
//! (runpermit-gate's `nvml_utilization`) with a basis whose precision is the workload's and
//! whose utilization is the one it achieved (true FLOP / (elapsed × the chip's peak at that
//! precision): a holder whose declared utilization matches), and compares with the true FLOP.
//!
//! Output: one JSON line. Exit status: 0 the check passed (the true FLOP lies within
//! [lower, upper] and the central figure within the tolerance, ±10% by default); 1 it
//! failed; 2 it could not run (the GPU is not in the hardware table, the workload failed);
//! 3 skipped: no GPU (NVML unavailable) or no GPU workload runtime (neither PyTorch nor
//! CuPy).
//!
//! The workload speaks JSON lines on stdout: `{"event":"start"}` when its timed loop begins,
//! `{"event":"end","flop":F,"elapsed_seconds":S,"precision":"bf16",…}` when it ends, or
//! `{"event":"unavailable","reason":R}` (then exit 3). Anything else it prints is passed on
//! to stderr.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use runpermit_compute::{Accelerator, AccountingBasis, HardwareTable, Precision};
use runpermit_gate::{TensorSample, UtilizationSample, dcgm_tensor_activity, nvml_utilization};
use runpermit_gate_agent::nvml::{NvmlSampler, describe};
use serde_json::{Value, json};

/// Exit status: the check passed.
pub const PASS: u8 = 0;
/// Exit status: the check failed.
pub const FAIL: u8 = 1;
/// Exit status: the check could not run.
pub const ERROR: u8 = 2;
/// Exit status: skipped (no GPU, or no GPU workload runtime).
pub const SKIPPED: u8 = 3;

/// How often NVML is sampled during the workload.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// `runpermit gate gpu-check` flags.
#[derive(Debug, Args)]
pub struct GpuCheckArgs {
    /// NVML index of the GPU the workload runs on.
    #[arg(long, default_value_t = 0)]
    gpu: u32,
    /// Largest relative error of the central figure that passes.
    #[arg(long, default_value_t = 0.10)]
    tolerance: f64,
    /// The workload and its arguments (after `--`), e.g.
    /// `python3 scripts/gpu-check-workload.py --seconds 30`.
    #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
    workload: Vec<String>,
}

/// What the workload reported at its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The FLOP it computed (2·M·N·K per matrix multiply × iterations).
    pub flop: f64,
    /// Seconds its timed loop took.
    pub elapsed: f64,
    /// The precision it computed in.
    pub precision: Precision,
    /// Everything it said at its end (runtime, sizes, iterations).
    pub details: Value,
}

/// The metered figures set against the truth: the JSON printed, and whether it passes.
pub fn verdict(
    chip: &Accelerator,
    workload: &Workload,
    samples: &[UtilizationSample],
    tolerance: f64,
) -> (Value, bool) {
    let mut out = json!({
        "chip": chip.name,
        "precision": workload.precision,
        "true_flop": workload.flop,
        "elapsed_seconds": workload.elapsed,
        "tolerance": tolerance,
        "workload": workload.details,
    });
    let Some(peak) = chip.peak(workload.precision) else {
        out["reason"] = json!(format!(
            "{} has no {} peak in the hardware table",
            chip.name, workload.precision
        ));
        return (out, false);
    };
    let achieved = workload.flop / (workload.elapsed * peak.get());
    out["peak_flop_per_second"] = json!(peak.get());
    out["achieved_utilization"] = json!(achieved);
    let (sampled, busy) = samples.iter().fold((0.0, 0.0), |(s, b), x| {
        (s + x.seconds, b + x.seconds * x.utilization)
    });
    out["nvml_sampled_seconds"] = json!(sampled);
    out["nvml_busy_fraction"] = json!(if sampled > 0.0 { busy / sampled } else { 0.0 });
    // The holder declared what the workload achieved, with the estimator's relative range
    // (0.4 within 0.3–0.5: ±25%).
    let basis = AccountingBasis {
        precision: workload.precision,
        utilization: achieved,
        utilization_low: achieved * 0.75,
        utilization_high: (achieved * 1.25).min(1.0),
        parameters: None,
    };
    let problems = basis.problems("basis");
    if !problems.is_empty() || sampled <= 0.0 {
        let why = if sampled <= 0.0 {
            "NVML gave no samples during the workload's timed window".to_owned()
        } else {
            format!(
                "the achieved utilization {achieved:.3} cannot be declared ({}): is the \
                 table's {} peak of {} right?",
                problems
                    .iter()
                    .map(|p| format!("{}: {}", p.field, p.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                workload.precision,
                chip.name
            )
        };
        out["reason"] = json!(why);
        return (out, false);
    }
    out["basis"] = json!(basis);
    let metered = match nvml_utilization(chip, samples, Some(&basis)) {
        Ok(m) => m,
        Err(e) => {
            out["reason"] = json!(format!("metering the samples: {e}"));
            return (out, false);
        }
    };
    let (central, lower, upper) = (metered.flop.get(), metered.lower.get(), metered.upper.get());
    let ratio = central / workload.flop;
    let within = lower <= workload.flop && workload.flop <= upper;
    let close = (ratio - 1.0).abs() <= tolerance;
    out["nvml"] = json!({"central": central, "lower": lower, "upper": upper});
    out["ratio_central_to_true"] = json!(ratio);
    out["true_within_bounds"] = json!(within);
    out["central_within_tolerance"] = json!(close);
    (out, within && close)
}

/// One line of `dcgmi dmon` output: the value of its last column, for a `GPU n` row.
fn dmon_value(line: &str) -> Option<f64> {
    let line = line.trim();
    if !line.starts_with("GPU") {
        return None;
    }
    line.split_whitespace().last()?.parse().ok()
}

fn print(value: &Value) {
    println!("{value}");
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// `runpermit gate gpu-check`.
pub fn run(args: GpuCheckArgs) -> Result<u8> {
    let GpuCheckArgs {
        gpu,
        tolerance,
        workload,
    } = args;
    if !(tolerance.is_finite() && tolerance > 0.0) {
        return Err(crate::args::ArgError(
            "--tolerance must be a positive fraction such as 0.1".into(),
        )
        .into());
    }
    let sampler = match NvmlSampler::start(SAMPLE_EVERY) {
        Ok(s) => s,
        Err(e) => {
            print(&json!({"status": "skipped", "reason": format!("no GPU: skipped ({e})")}));
            return Ok(SKIPPED);
        }
    };
    let report = match describe() {
        Ok(report) => report,
        Err(e) => {
            print(&json!({"status": "error", "reason": e}));
            return Ok(ERROR);
        }
    };
    let Some(device) = report.devices.iter().find(|d| d.index == gpu) else {
        print(&json!({"status": "error", "reason": format!(
            "--gpu {gpu}: NVML sees {} GPU(s), indices 0..{}", report.devices.len(), report.devices.len())}));
        return Ok(ERROR);
    };
    let key = device.minor_number.unwrap_or(device.index);
    let chip = match HardwareTable::builtin().lookup(&device.name) {
        Ok(chip) => chip,
        Err(e) => {
            print(
                &json!({"status": "error", "nvml_name": device.name, "reason": format!(
                "NVML's product name {:?} is not in the hardware table ({e})", device.name)}),
            );
            return Ok(ERROR);
        }
    };

    let mut command = Command::new(&workload[0]);
    command
        .args(&workload[1..])
        .env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match &device.uuid {
        Some(uuid) => command.env("CUDA_VISIBLE_DEVICES", uuid),
        None => command.env("CUDA_VISIBLE_DEVICES", gpu.to_string()),
    };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            print(
                &json!({"status": "skipped", "chip": chip.name, "reason": format!(
                "no GPU workload runtime: cannot start {:?}: {e}", workload[0])}),
            );
            return Ok(SKIPPED);
        }
    };
    let stdout = child.stdout.take().context("the workload's stdout")?;
    let mut dcgm: Option<(Child, std::thread::JoinHandle<Vec<f64>>)> = None;
    let mut window = None;
    let mut end: Option<Value> = None;
    let mut unavailable = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the workload's output")?;
        let event: Option<Value> = serde_json::from_str(&line).ok();
        match event
            .as_ref()
            .and_then(|e| e.get("event"))
            .and_then(Value::as_str)
        {
            Some("start") => {
                sampler.drain();
                dcgm = start_dcgm(gpu);
            }
            Some("end") => {
                window = Some(sampler.drain());
                end = event;
            }
            Some("unavailable") => unavailable = event,
            _ => eprintln!("{line}"),
        }
    }
    let status = child.wait().context("waiting for the workload")?;
    let dcgm_values = dcgm.map(|(child, reader)| {
        stop(child);
        reader.join().unwrap_or_default()
    });
    if let Some(u) = unavailable {
        print(&json!({"status": "skipped", "chip": chip.name,
            "reason": u.get("reason").cloned().unwrap_or(json!("no GPU workload runtime"))}));
        return Ok(SKIPPED);
    }
    let (Some(end), Some(window), true) = (end, window, status.success()) else {
        print(
            &json!({"status": "error", "chip": chip.name, "reason": format!(
            "the workload ended ({status}) without reporting its timed window")}),
        );
        return Ok(ERROR);
    };
    let workload = match parse_end(&end) {
        Ok(w) => w,
        Err(e) => {
            print(&json!({"status": "error", "chip": chip.name, "reason": e}));
            return Ok(ERROR);
        }
    };
    let samples: Vec<UtilizationSample> = window
        .get(&key)
        .filter(|a| a.seconds > 0.0)
        .map(|a| UtilizationSample {
            utilization: a.mean().unwrap_or(0.0),
            seconds: a.seconds,
        })
        .into_iter()
        .collect();
    let (mut out, pass) = verdict(chip, &workload, &samples, tolerance);
    out["nvml_name"] = json!(device.name);
    out["dcgm"] = dcgm_figures(chip, &workload, dcgm_values);
    out["status"] = json!(if pass { "pass" } else { "fail" });
    print(&out);
    Ok(if pass { PASS } else { FAIL })
}

/// The workload's end event.
fn parse_end(end: &Value) -> Result<Workload, String> {
    let number = |k: &str| {
        end.get(k)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or_else(|| format!("the workload's end event has no positive {k}: {end}"))
    };
    let precision: Precision = serde_json::from_value(
        end.get("precision")
            .cloned()
            .unwrap_or_else(|| json!("bf16")),
    )
    .map_err(|e| format!("the workload's precision: {e}"))?;
    Ok(Workload {
        flop: number("flop")?,
        elapsed: number("elapsed_seconds")?,
        precision,
        details: end.clone(),
    })
}

/// `dcgmi dmon` of tensor-pipe activity (field 1004) for GPU `gpu`, every 200 ms, read on
/// a thread; `None` when `dcgmi` is not here.
fn start_dcgm(gpu: u32) -> Option<(Child, std::thread::JoinHandle<Vec<f64>>)> {
    let mut child = Command::new("dcgmi")
        .args(["dmon", "-e", "1004", "-d", "200", "-i", &gpu.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| dmon_value(&l))
            .collect()
    });
    Some((child, reader))
}

/// The DCGM tensor-activity figures for the window, when `dcgmi` gave values (informative:
/// the exit status is NVML's).
fn dcgm_figures(chip: &Accelerator, workload: &Workload, values: Option<Vec<f64>>) -> Value {
    let Some(values) = values else {
        return json!({"skipped": "dcgmi is not installed"});
    };
    if values.is_empty() {
        return json!({"skipped": "dcgmi gave no tensor-activity samples (is the DCGM host engine running?)"});
    }
    let seconds = workload.elapsed / values.len() as f64;
    let samples: Vec<TensorSample> = values
        .iter()
        .map(|v| TensorSample {
            tensor_active: v.clamp(0.0, 1.0),
            seconds,
        })
        .collect();
    let basis = AccountingBasis::assumed(workload.precision);
    match dcgm_tensor_activity(chip, &samples, Some(&basis)) {
        Ok(m) => json!({
            "samples": values.len(),
            "central": m.flop.get(), "lower": m.lower.get(), "upper": m.upper.get(),
            "ratio_central_to_true": m.flop.get() / workload.flop,
            "true_within_bounds": m.lower.get() <= workload.flop && workload.flop <= m.upper.get(),
        }),
        Err(e) => json!({"error": e.to_string()}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h200() -> &'static Accelerator {
        HardwareTable::builtin().lookup("NVIDIA H200").unwrap()
    }

    /// 30 s at 70% of the H200's bf16 peak.
    fn workload() -> Workload {
        Workload {
            flop: 30.0 * 9.894e14 * 0.7,
            elapsed: 30.0,
            precision: Precision::Bf16,
            details: json!({"runtime": "torch"}),
        }
    }

    fn busy(fraction: f64, seconds: f64) -> Vec<UtilizationSample> {
        vec![UtilizationSample {
            utilization: fraction,
            seconds,
        }]
    }

    #[test]
    fn a_busy_gpu_at_its_declared_utilization_passes() {
        let (out, pass) = verdict(h200(), &workload(), &busy(0.98, 30.2), 0.1);
        assert!(pass, "{out}");
        assert!((out["achieved_utilization"].as_f64().unwrap() - 0.7).abs() < 1e-9);
        assert_eq!(out["true_within_bounds"], true);
        let ratio = out["ratio_central_to_true"].as_f64().unwrap();
        // central = busy seconds × peak × utilization = 0.98 × 30.2 / 30 of the truth.
        assert!((ratio - 0.98 * 30.2 / 30.0).abs() < 1e-9, "{out}");
        assert_eq!(out["basis"]["precision"], "bf16");
    }

    #[test]
    fn a_gpu_nvml_saw_half_idle_fails() {
        let (out, pass) = verdict(h200(), &workload(), &busy(0.5, 30.0), 0.1);
        assert!(!pass);
        assert_eq!(out["central_within_tolerance"], false);
        // The upper bound (busy time at the highest peak, fp8's, twice bf16's) still covers.
        assert_eq!(out["true_within_bounds"], true, "{out}");
        // Mostly idle: even the upper bound falls short of the truth.
        let (out, pass) = verdict(h200(), &workload(), &busy(0.3, 30.0), 0.1);
        assert!(!pass);
        assert_eq!(out["true_within_bounds"], false, "{out}");
    }

    #[test]
    fn impossible_figures_fail_with_a_reason() {
        // More than the table's peak: the declared utilization would be above 1.
        let mut w = workload();
        w.flop = 30.0 * 9.894e14 * 1.2;
        let (out, pass) = verdict(h200(), &w, &busy(1.0, 30.0), 0.1);
        assert!(!pass);
        assert!(out["reason"].as_str().unwrap().contains("peak"), "{out}");
        let (out, pass) = verdict(h200(), &workload(), &[], 0.1);
        assert!(!pass);
        assert!(
            out["reason"].as_str().unwrap().contains("no samples"),
            "{out}"
        );
    }

    #[test]
    fn reads_dmon_rows_and_end_events() {
        assert_eq!(dmon_value("GPU 0    0.712"), Some(0.712));
        assert_eq!(dmon_value("#Entity   TENSO"), None);
        assert_eq!(dmon_value("ID"), None);
        let end =
            json!({"event": "end", "flop": 1e15, "elapsed_seconds": 2.0, "precision": "fp16"});
        let w = parse_end(&end).unwrap();
        assert_eq!(
            (w.flop, w.elapsed, w.precision),
            (1e15, 2.0, Precision::Fp16)
        );
        assert!(
            parse_end(&json!({"flop": -1}))
                .unwrap_err()
                .contains("flop")
        );
    }
}
