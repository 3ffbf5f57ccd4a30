//! `GET /metrics`: the gate's Prometheus text, with the `metrics` and
//! `metrics-exporter-prometheus` crates the authority uses. Each [`Agent`](crate::Agent) has a
//! recorder of its own (no global one): counters are recorded as decisions are made, and the
//! gauges are read from the agent's state when the text is rendered.
//!
//! - `runpermit_gate_decisions_total{code}`: decisions made, by code (HTTP and admission);
//! - `runpermit_gate_status_list_fresh`: 1 while the held status list may be relied on, else
//!   0 (none yet, or stale); `runpermit_gate_status_list_version` and
//!   `runpermit_gate_status_list_age_seconds` (now − its `iat`) once one is held;
//! - with `[metering]`: `runpermit_gate_usage_reports_queued` (not yet acknowledged),
//!   `runpermit_gate_usage_reports_delivered_total` (acknowledged since the gate started),
//!   `runpermit_gate_usage_reports_dead_lettered` (refused for good, in the queue's
//!   dead-letter log), `runpermit_gate_usage_last_delivery_timestamp_seconds` and
//!   `runpermit_gate_metering_last_cycle_timestamp_seconds` (unix seconds).

use metrics::{counter, describe_counter, describe_gauge, gauge, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use runpermit_gate::{Code, Freshness};
use runpermit_permit::StatusListClaims;

use crate::metering::MeteringStatus;

/// What `/metrics` renders from, besides the counters: read from the agent at each scrape.
pub(crate) struct Snapshot {
    pub now: i64,
    pub freshness: Freshness,
    pub status: Option<StatusListClaims>,
    pub metering: Option<MeteringStatus>,
}

/// One agent's recorder.
pub(crate) struct AgentMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentMetrics").finish_non_exhaustive()
    }
}

impl AgentMetrics {
    pub(crate) fn new() -> AgentMetrics {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        with_local_recorder(&recorder, || {
            describe_counter!("runpermit_gate_decisions_total", "Decisions made, by code.");
            describe_gauge!(
                "runpermit_gate_status_list_fresh",
                "1 while the held status list may be relied on, else 0."
            );
            describe_gauge!(
                "runpermit_gate_status_list_version",
                "The held status list's version."
            );
            describe_gauge!(
                "runpermit_gate_status_list_age_seconds",
                "Seconds since the held status list was issued."
            );
            describe_gauge!(
                "runpermit_gate_usage_reports_queued",
                "Usage reports not yet acknowledged by the authority."
            );
            describe_counter!(
                "runpermit_gate_usage_reports_delivered_total",
                "Usage reports acknowledged by the authority since the gate started."
            );
            describe_gauge!(
                "runpermit_gate_usage_reports_dead_lettered",
                "Usage reports the authority refused for good."
            );
            describe_gauge!(
                "runpermit_gate_usage_last_delivery_timestamp_seconds",
                "When the authority last acknowledged a usage report (unix seconds)."
            );
            describe_gauge!(
                "runpermit_gate_metering_last_cycle_timestamp_seconds",
                "When the last metering cycle ran (unix seconds)."
            );
        });
        AgentMetrics { recorder, handle }
    }

    /// Counts one decision.
    pub(crate) fn decided(&self, code: Code) {
        with_local_recorder(&self.recorder, || {
            counter!("runpermit_gate_decisions_total", "code" => code.as_str()).increment(1);
        });
    }

    /// The Prometheus text, with the gauges set from `now`.
    pub(crate) fn render(&self, now: Snapshot) -> String {
        with_local_recorder(&self.recorder, || {
            let fresh = matches!(now.freshness, Freshness::Fresh);
            gauge!("runpermit_gate_status_list_fresh").set(if fresh { 1.0 } else { 0.0 });
            if let Some(list) = &now.status {
                gauge!("runpermit_gate_status_list_version").set(list.version as f64);
                gauge!("runpermit_gate_status_list_age_seconds")
                    .set(now.now.saturating_sub(list.iat) as f64);
            }
            if let Some(m) = &now.metering {
                gauge!("runpermit_gate_usage_reports_queued").set(m.pending as f64);
                counter!("runpermit_gate_usage_reports_delivered_total").absolute(m.delivered);
                gauge!("runpermit_gate_usage_reports_dead_lettered").set(m.dead_letters as f64);
                if let Some(at) = m.last_delivery {
                    gauge!("runpermit_gate_usage_last_delivery_timestamp_seconds").set(at as f64);
                }
                if let Some(at) = m.last_cycle {
                    gauge!("runpermit_gate_metering_last_cycle_timestamp_seconds").set(at as f64);
                }
            }
        });
        self.handle.render()
    }
}
