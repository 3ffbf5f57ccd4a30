//! The `nvml` job source: this node's GPUs' mean utilization since the last cycle
//! ([`NvmlSampler`]), mapped to the permitted Slurm jobs' GPU indices on this node
//! (`scontrol show job -d`, index = the GPU's minor number). A job's GPUs on other nodes, or
//! without a sample (NVML unavailable), are metered by scheduler accounting.

use super::jobs::{ActivityByRun, split_job};
use crate::nvml::NvmlSampler;
use crate::slurm::{JobUsage, hostlist_contains};

/// The sampler (`None` when NVML could not start), and this node's name as Slurm knows it.
pub(crate) struct NvmlActivity {
    pub(crate) sampler: Option<NvmlSampler>,
    pub(crate) host: String,
}

impl NvmlActivity {
    /// The activity samples per run for `usage` since the last drain, and the GPU-time
    /// without a sample.
    pub(crate) fn measure(
        &self,
        usage: Vec<JobUsage>,
        cluster: &str,
    ) -> (ActivityByRun, Vec<JobUsage>) {
        let mut activity = ActivityByRun::new();
        let mut fallback = Vec::new();
        let drained = self
            .sampler
            .as_ref()
            .map(NvmlSampler::drain)
            .unwrap_or_default();
        for u in usage {
            let values: Vec<f64> = u
                .gpu_indices
                .iter()
                .filter(|(nodes, _)| hostlist_contains(nodes, &self.host))
                .flat_map(|(_, idx)| idx.iter())
                .filter_map(|i| drained.get(i).and_then(|a| a.mean()))
                .collect();
            split_job(u, &values, cluster, &mut activity, &mut fallback);
        }
        (activity, fallback)
    }
}
