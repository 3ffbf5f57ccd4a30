//! `GET /metrics`: the witness's Prometheus text, with the `metrics` and
//! `metrics-exporter-prometheus` crates the authority and the gate use. Each
//! [`Witness`](crate::Witness) has a recorder of its own (no global one).
//!
//! - `runpermit_witness_add_checkpoint_total{status}`: `add-checkpoint` answers by HTTP
//!   status (200, 400, 403, 404, 409, 422, 500);
//! - `runpermit_witness_log_size{origin}`: the size of the latest checkpoint cosigned for
//!   each log, and `runpermit_witness_log_updated_timestamp_seconds{origin}`, when (read
//!   from the database at each scrape, so it is right even when several processes share
//!   it).

use metrics::{counter, describe_counter, describe_gauge, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::store::StoredLog;

/// One witness's recorder.
pub(crate) struct WitnessMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for WitnessMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WitnessMetrics").finish_non_exhaustive()
    }
}

impl WitnessMetrics {
    pub(crate) fn new() -> WitnessMetrics {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, || {
            describe_counter!(
                "runpermit_witness_add_checkpoint_total",
                "add-checkpoint answers, by HTTP status."
            );
            describe_gauge!(
                "runpermit_witness_log_size",
                "Size of the latest checkpoint cosigned for the log."
            );
            describe_gauge!(
                "runpermit_witness_log_updated_timestamp_seconds",
                "When the latest checkpoint of the log was cosigned (unix seconds)."
            );
        });
        WitnessMetrics { recorder, handle }
    }

    /// Counts one `add-checkpoint` answer.
    pub(crate) fn answered(&self, status: u16) {
        with_local_recorder(&self.recorder, || {
            counter!("runpermit_witness_add_checkpoint_total", "status" => status.to_string())
                .increment(1);
        });
    }

    /// The text, with the per-log gauges set from `logs`.
    pub(crate) fn render(&self, logs: &[StoredLog]) -> String {
        with_local_recorder(&self.recorder, || {
            for log in logs {
                let origin = log.origin.clone();
                // Sizes beyond 2^53 lose precision as a float gauge; the text is for graphs.
                gauge!("runpermit_witness_log_size", "origin" => origin.clone())
                    .set(log.state.size as f64);
                gauge!("runpermit_witness_log_updated_timestamp_seconds", "origin" => origin)
                    .set(log.updated_at as f64);
            }
        });
        self.handle.render()
    }
}
