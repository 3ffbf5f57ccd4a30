//! The supervisor: keeps derived state true after a crash or a policy change by re-evaluating
//! every run that is not final, and summarises each run's usage into the public log.

use std::time::Duration;

use runpermit_compute::Flop;
use runpermit_log::LogEntry;
use runpermit_policy::{Lifecycle, UsageFigure};
use runpermit_store::{Run, Write};

use super::transitions::evaluate_run;
use crate::domain::Authority;
use crate::domain::error::DomainError;
use crate::domain::log as tlog;

/// Writes each run's cumulative usage (the figure the policy judges tranches on: the central
/// estimate by default) to the public log when it changed since the last summary
/// (`usage_summary`), one batch per run.
pub async fn summarize_usage(state: &Authority) -> Result<usize, DomainError> {
    let mut written = 0;
    let figure = state.policy.oversight.tranche_figure;
    for run in state.store.runs_to_summarize(figure).await? {
        // One run that cannot be summarised never holds up the others.
        match summarize_run(state, &run).await {
            Ok(true) => written += 1,
            Ok(false) => {}
            Err(e) => {
                metrics::counter!("runpermit_usage_summary_failures_total").increment(1);
                tracing::error!(run = %run.id, error = ?e, "summarising a run's usage failed");
            }
        }
    }
    Ok(written)
}

/// Writes `run`'s usage summary to the log; `false` when another process did it first.
async fn summarize_run(state: &Authority, run: &Run) -> Result<bool, DomainError> {
    let stored = match state.policy.oversight.tranche_figure {
        UsageFigure::Central => run.cumulative_flop,
        UsageFigure::Lower => run.cumulative_lower_flop,
        UsageFigure::Upper => run.cumulative_upper_flop,
    };
    let cumulative_flop = Flop::new(stored).map_err(|e| {
        DomainError::Internal(format!("run {}: stored cumulative usage {e}", run.id))
    })?;
    let providers = state.store.usage_by_provider(&run.id).await?;
    let through = providers.iter().map(|p| p.last_to_s).max().unwrap_or(0);
    let now = state.clock.now_ms();
    let entry = LogEntry::UsageSummary {
        run_id: run.id.clone(),
        cumulative_flop,
        providers: u32::try_from(providers.len()).unwrap_or(u32::MAX),
        through,
    };
    let committed = state
        .store
        .commit(vec![
            tlog::queue(&format!("run/{}", run.id), &entry, now)?,
            Write::SetRunSummarized {
                id: run.id.clone(),
                flop: stored,
                expected_flop: run.summarized_flop,
                at: now,
            },
        ])
        .await;
    match committed {
        Ok(()) => Ok(true),
        // Another process summarised this run first: its entry is the one logged.
        Err(runpermit_store::StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Re-evaluates every run that is not final (after a crash between ingestion and
/// evaluation, or a policy change). Returns how many were looked at.
pub async fn evaluate_all(state: &Authority) -> Result<usize, DomainError> {
    let mut n = 0;
    for run in state.store.runs(None).await? {
        if run.status.is_final() {
            continue;
        }
        evaluate_run(state, &run.id).await?;
        n += 1;
    }
    Ok(n)
}

/// The supervisor: re-evaluates every run now and every `every`, and summarises usage
/// into the public log every `oversight.usage_summary_interval_seconds`. Runs until
/// `shutdown` completes; errors are logged and retried on the next tick.
pub async fn supervise(
    state: Authority,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let summary_every = Duration::from_secs(u64::from(
        state.policy.oversight.usage_summary_interval_seconds,
    ));
    let mut last_summary: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = evaluate_all(&state).await {
            tracing::warn!(error = ?e, "evaluating runs");
        }
        if last_summary.is_none_or(|t| t.elapsed() >= summary_every) {
            match summarize_usage(&state).await {
                Ok(n) if n > 0 => tracing::info!(runs = n, "usage summarised into the log"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = ?e, "summarising usage"),
            }
            last_summary = Some(std::time::Instant::now());
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
