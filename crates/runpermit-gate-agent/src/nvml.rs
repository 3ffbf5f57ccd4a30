//! NVML (NVIDIA's management library, `libnvidia-ml.so`, loaded at run time through
//! `nvml-wrapper`): what `runpermit gate nvml` shows operators ([`describe`]), and the
//! `nvml` metering source's sampler ([`NvmlSampler`]), which reads every GPU's utilization
//! once a second and accumulates it until the metering loop drains it.
//!
//! Without the library or the driver (a machine with no NVIDIA GPU), [`describe`] and
//! [`NvmlSampler::start`] fail with "NVML unavailable: …"; the gate then meters with its
//! other sources.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::Clock;
use serde::Serialize;

/// What NVML shows of one GPU. A figure the device does not report is absent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NvmlDevice {
    /// NVML's index (PCI bus order).
    pub index: u32,
    /// The minor number (`/dev/nvidiaN`): the GPU index Slurm's `gres.conf` usually uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minor_number: Option<u32>,
    /// The product name (`NVIDIA H100 80GB HBM3`).
    pub name: String,
    /// The GPU's UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// GPU utilization, percent: time in the last sample period (1/6 s to 1 s) during
    /// which a kernel ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization_gpu_percent: Option<u32>,
    /// Memory utilization, percent: time device memory was read or written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilization_memory_percent: Option<u32>,
    /// Energy used since the driver was loaded, millijoules (Volta and later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_millijoules: Option<u64>,
    /// Power draw, milliwatts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub power_milliwatts: Option<u32>,
    /// SM clock now, MHz.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<u32>,
    /// Highest SM clock, MHz.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sm_clock_mhz: Option<u32>,
    /// Memory clock now, MHz.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_clock_mhz: Option<u32>,
}

/// What NVML shows of this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NvmlReport {
    /// The driver's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// NVML's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvml_version: Option<String>,
    /// The GPUs, by index.
    pub devices: Vec<NvmlDevice>,
}

fn init() -> Result<Nvml, String> {
    Nvml::init().map_err(|e| format!("NVML unavailable: {e}"))
}

/// Reads what NVML shows now: driver, devices, utilization, energy, power and clocks.
pub fn describe() -> Result<NvmlReport, String> {
    let nvml = init()?;
    let count = nvml
        .device_count()
        .map_err(|e| format!("NVML: counting devices: {e}"))?;
    let mut devices = Vec::new();
    for index in 0..count {
        let device = nvml
            .device_by_index(index)
            .map_err(|e| format!("NVML: device {index}: {e}"))?;
        let utilization = device.utilization_rates().ok();
        devices.push(NvmlDevice {
            index,
            minor_number: device.minor_number().ok(),
            name: device.name().unwrap_or_else(|e| format!("(unknown: {e})")),
            uuid: device.uuid().ok(),
            utilization_gpu_percent: utilization.as_ref().map(|u| u.gpu),
            utilization_memory_percent: utilization.as_ref().map(|u| u.memory),
            energy_millijoules: device.total_energy_consumption().ok(),
            power_milliwatts: device.power_usage().ok(),
            sm_clock_mhz: device.clock_info(Clock::SM).ok(),
            max_sm_clock_mhz: device.max_clock_info(Clock::SM).ok(),
            memory_clock_mhz: device.clock_info(Clock::Memory).ok(),
        });
    }
    Ok(NvmlReport {
        driver_version: nvml.sys_driver_version().ok(),
        nvml_version: nvml.sys_nvml_version().ok(),
        devices,
    })
}

/// Utilization accumulated for one GPU since the last drain.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Accumulated {
    /// Σ utilization × seconds.
    pub busy_seconds: f64,
    /// Σ seconds sampled.
    pub seconds: f64,
}

impl Accumulated {
    /// The mean utilization, a fraction in [0, 1]; `None` when nothing was sampled.
    pub fn mean(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| (self.busy_seconds / self.seconds).clamp(0.0, 1.0))
    }
}

type Shared = Arc<Mutex<BTreeMap<u32, Accumulated>>>;

/// Samples every GPU's utilization on a thread of its own, every `period`, keyed by minor
/// number (`/dev/nvidiaN`; NVML's index when the minor number is unknown). Stops when
/// dropped.
#[derive(Debug)]
pub struct NvmlSampler {
    shared: Shared,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    devices: u32,
}

impl NvmlSampler {
    /// Loads NVML and starts sampling; "NVML unavailable: …" when it cannot be loaded.
    pub fn start(period: Duration) -> Result<NvmlSampler, String> {
        let nvml = init()?;
        let devices = nvml
            .device_count()
            .map_err(|e| format!("NVML: counting devices: {e}"))?;
        let shared: Shared = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("runpermit-nvml".into())
            .spawn({
                let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
                move || sample(&nvml, devices, period, &shared, &stop)
            })
            .map_err(|e| format!("NVML: starting the sampler: {e}"))?;
        Ok(NvmlSampler {
            shared,
            stop,
            thread: Some(thread),
            devices,
        })
    }

    /// How many GPUs NVML sees.
    pub fn devices(&self) -> u32 {
        self.devices
    }

    /// What was accumulated since the last drain, by minor number; starts over.
    pub fn drain(&self) -> BTreeMap<u32, Accumulated> {
        std::mem::take(&mut *self.shared.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for NvmlSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn sample(nvml: &Nvml, devices: u32, period: Duration, shared: &Shared, stop: &AtomicBool) {
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(period.min(Duration::from_millis(250)));
        if last.elapsed() < period {
            continue;
        }
        let now = Instant::now();
        let seconds = now.duration_since(last).as_secs_f64();
        last = now;
        let mut readings = Vec::new();
        for index in 0..devices {
            let Ok(device) = nvml.device_by_index(index) else {
                continue;
            };
            match device.utilization_rates() {
                Ok(u) => {
                    let key = device.minor_number().unwrap_or(index);
                    readings.push((key, f64::from(u.gpu.min(100)) / 100.0));
                }
                Err(e) => tracing::debug!(index, error = %e, "NVML utilization not read"),
            }
        }
        let mut acc = shared.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, utilization) in readings {
            let a = acc.entry(key).or_default();
            a.busy_seconds += utilization * seconds;
            a.seconds += seconds;
        }
    }
}
