//! Providers' know-your-customer reports of large unpermitted jobs, and split-run detection
//! over all providers: a customer whose unpermitted compute, summed over providers within the
//! policy's window, reaches the permit threshold is flagged (audited once, when it first is).

use runpermit_compute::{Flop, HardwareTable, limits};
use runpermit_policy::{SplitRunFlag, UnpermittedUse, split_runs};
use runpermit_store::{KycReport, Write};
use runpermit_types::{Problems, text};
use serde_json::json;

use crate::domain::audit::event;
use crate::domain::ids::new_id;
use crate::domain::{Authority, Caller, DomainError};

/// A KYC report as the provider sends it (the API's request body).
pub use runpermit_api::usage::NewKycReport as Report;

/// The longest interval one KYC report covers: a year.
const MAX_KYC_INTERVAL_S: i64 = 366 * 86_400;

/// Everything implausible in a KYC report: the customer id's hygiene, an interval that is
/// empty, longer than a year or in the future, and figures beyond what the largest cluster
/// (10^7 accelerators at the fastest chip's highest peak) can give the interval.
fn kyc_problems(body: &Report, now_s: i64, problems: &mut Problems) {
    if let Some(problem) = text::id_problem(body.customer.trim()) {
        problems.push(
            "customer",
            format!("the customer's registry id (such as its LEI) {problem}"),
        );
    }
    let interval = i128::from(body.to) - i128::from(body.from);
    if interval <= 0 {
        problems.push(
            "to",
            format!("must be later than from ({} ≤ {})", body.to, body.from),
        );
    } else if interval > i128::from(MAX_KYC_INTERVAL_S) {
        problems.push(
            "to",
            format!("a report covers at most {MAX_KYC_INTERVAL_S} s (a year); got {interval} s"),
        );
    } else if body.to > now_s.saturating_add(300) {
        problems.push(
            "to",
            format!(
                "{} is in the future (the authority's clock reads {})",
                runpermit_permit::utc(body.to),
                runpermit_permit::utc(now_s)
            ),
        );
    }
    if !(1..=1_000_000_000).contains(&body.jobs) {
        problems.push("jobs", format!("must be 1 to 1e9 (got {})", body.jobs));
    }
    let most_seconds =
        interval.clamp(0, i128::from(MAX_KYC_INTERVAL_S)) as f64 * limits::ACCELERATORS.max;
    let seconds = body.accelerator_seconds;
    if !(seconds.is_finite() && (0.0..=most_seconds).contains(&seconds)) {
        problems.push(
            "accelerator_seconds",
            format!(
                "must be a finite number from 0 to the interval × {} accelerators ({}) (got {})",
                limits::number(limits::ACCELERATORS.max),
                limits::number(most_seconds),
                limits::number(seconds)
            ),
        );
    } else {
        let fastest = HardwareTable::builtin()
            .accelerators()
            .iter()
            .filter_map(|a| a.max_peak())
            .map(|(_, rate)| rate.get())
            .fold(0.0, f64::max);
        let most_flop = seconds * fastest;
        if body.flop.get() > most_flop * (1.0 + 1e-9) {
            problems.push(
                "flop",
                format!(
                    "{} FLOP is more than {} accelerator-seconds can compute at the fastest \
                     chip's highest peak ({} FLOP)",
                    limits::number(body.flop.get()),
                    limits::number(seconds),
                    limits::number(most_flop)
                ),
            );
        }
    }
}

/// Records `caller`'s (a provider's) report `report_in`; returns it with the customer's flag
/// when its unpermitted compute over all providers now reaches the permit threshold.
pub async fn report(
    state: &Authority,
    caller: &Caller,
    report_in: Report,
) -> Result<(KycReport, Option<SplitRunFlag>), DomainError> {
    let mut problems = Problems::default();
    kyc_problems(&report_in, state.clock.now_s(), &mut problems);
    problems.check()?;
    let now = state.clock.now_ms();
    let report = KycReport {
        id: new_id("kyc"),
        provider_id: caller.org_id.clone(),
        customer: report_in.customer.trim().to_owned(),
        from_s: report_in.from,
        to_s: report_in.to,
        jobs: report_in.jobs,
        accelerator_seconds: report_in.accelerator_seconds,
        flop: report_in.flop.get(),
        received_at: now,
    };
    // One read of the window's totals: the customer's flag before and after this report,
    // so that the report and a new flag's audit event commit together.
    let (mut usage, since) = unpermitted_use(state).await?;
    let flag_of = |usage: &[UnpermittedUse]| {
        state.policy.permit_threshold().and_then(|threshold| {
            let mine: Vec<UnpermittedUse> = usage
                .iter()
                .filter(|u| u.customer == report.customer)
                .cloned()
                .collect();
            split_runs(&mine, threshold).into_iter().next()
        })
    };
    let was_flagged = flag_of(&usage).is_some();
    if report.to_s > since {
        usage.push(UnpermittedUse {
            customer: report.customer.clone(),
            provider_id: report.provider_id.clone(),
            flop: report_in.flop,
        });
    }
    let flag = flag_of(&usage);
    let mut writes = vec![
        Write::InsertKycReport(report.clone()),
        event(
            Some(caller),
            now,
            "kyc.report",
            &format!("customer/{}", report.customer),
            None,
            json!({"id": report.id, "flop": report.flop, "jobs": report.jobs}),
        ),
    ];
    if let (Some(flag), false) = (&flag, was_flagged) {
        tracing::warn!(customer = %flag.customer, total = %flag.total, split = flag.split,
            "unpermitted compute over all providers reached the permit threshold");
        writes.push(event(
            None,
            now,
            if flag.split {
                "kyc.split_run_suspected"
            } else {
                "kyc.unpermitted_run_suspected"
            },
            &format!("customer/{}", flag.customer),
            Some(&format!(
                "{} FLOP of unpermitted compute across {} provider(s) reaches the permit threshold {}",
                flag.total,
                flag.providers.len(),
                flag.threshold
            )),
            json!(flag),
        ));
    }
    state.store.commit(writes).await?;
    Ok((report, flag))
}

/// The permit threshold and every customer flagged now.
pub async fn flags(state: &Authority) -> Result<(Option<Flop>, Vec<SplitRunFlag>), DomainError> {
    let (usage, _) = unpermitted_use(state).await?;
    let threshold = state.policy.permit_threshold();
    let flags = threshold.map_or_else(Vec::new, |threshold| split_runs(&usage, threshold));
    Ok((threshold, flags))
}

/// Every customer's unpermitted compute by provider within the policy's window, and the
/// window's start (unix seconds; reports ending after it count).
async fn unpermitted_use(state: &Authority) -> Result<(Vec<UnpermittedUse>, i64), DomainError> {
    let window_s = i64::from(state.policy.oversight.split_run_window_days) * 86_400;
    let since = state.clock.now_s() - window_s;
    let usage = state
        .store
        .kyc_totals(since)
        .await?
        .into_iter()
        .filter_map(|t| {
            Some(UnpermittedUse {
                customer: t.customer,
                provider_id: t.provider_id,
                flop: Flop::new(t.flop).ok()?,
            })
        })
        .collect();
    Ok((usage, since))
}
