//! Throughput of usage ingestion: `TASKS` concurrent writers each send `N / TASKS` signed
//! usage reports (about 700-byte tokens) in batches of 1,000 (`ingest_usage`), spread over 16
//! runs and 4 providers with increasing seqs, as providers' report streams would arrive; then
//! the same reports again (all duplicates, as retries would be). Prints reports per second
//! for each phase and checks the runs' cumulative sums.
//!
//! `cargo run --release -p runpermit-store --example ingest_bench -- URL [N] [TASKS]`, where URL
//! is a fresh database: `sqlite:///tmp/ingest-bench.db` or
//! `postgres://postgres@127.0.0.1:5432/bench`.

use std::sync::Arc;
use std::time::Instant;

use runpermit_store::{
    Application, Ingested, Organization, Permit, Run, Store, StoreError, UsageRecord, Write,
};

const BATCH: usize = 1_000;
const RUNS: usize = 16;
const PROVIDERS: usize = 4;
const TOKEN_BYTES: usize = 700;
/// 2^60 FLOP a report: sums stay exact, so the check at the end can be exact.
const FLOP: f64 = 1_152_921_504_606_846_976.0;

/// Report `i` of a writer's stream: run, provider and seq follow from it, so that every
/// (provider, run) stream counts 1, 2, 3, …
fn report(writer: usize, i: usize) -> UsageRecord {
    let stream = i % (RUNS * PROVIDERS);
    let (run, provider) = (stream / PROVIDERS, stream % PROVIDERS);
    let seq = (i / (RUNS * PROVIDERS) + 1) as i64;
    let mut token = format!("eyJhbGciOiJFZERTQSJ9.{writer}.{run}.{provider}.{seq}.");
    token.extend(std::iter::repeat_n('x', TOKEN_BYTES - token.len()));
    // A stand-in digest; the store only compares digests.
    let digest = format!("{:016x}{:048x}", i, writer);
    UsageRecord {
        provider_id: format!("prov_{writer}_{provider}"),
        run_id: format!("run_{run}"),
        seq,
        permit_id: format!("per_{run}"),
        cluster: "cluster-a".into(),
        from_s: 1_700_000_000 + seq * 60,
        to_s: 1_700_000_000 + (seq + 1) * 60,
        flop: FLOP,
        flop_lower: FLOP / 2.0,
        flop_upper: FLOP * 2.0,
        method: "nvml-counters".into(),
        accelerator_seconds_json: r#"{"H100-SXM":61440}"#.into(),
        capacity_flop: 0.0,
        digest,
        token,
        received_at: 1_700_000_000_000 + i as i64,
    }
}

async fn phase(
    store: &Arc<dyn Store>,
    tasks: usize,
    per_task: usize,
    name: &str,
) -> Result<(usize, usize), StoreError> {
    let started = Instant::now();
    let mut handles = Vec::new();
    for writer in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let (mut stored, mut duplicates) = (0, 0);
            for start in (0..per_task).step_by(BATCH) {
                let records: Vec<UsageRecord> = (start..per_task.min(start + BATCH))
                    .map(|i| report(writer, i))
                    .collect();
                for outcome in store.ingest_usage(records).await? {
                    match outcome {
                        Ingested::Stored { .. } => stored += 1,
                        Ingested::Duplicate => duplicates += 1,
                        Ingested::Conflict { .. } | Ingested::Withheld => {
                            panic!("unexpected conflict")
                        }
                    }
                }
            }
            Ok::<_, StoreError>((stored, duplicates))
        }));
    }
    let (mut stored, mut duplicates) = (0, 0);
    for handle in handles {
        let (s, d) = handle.await.expect("writer task")?;
        stored += s;
        duplicates += d;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{name:<10} {} reports ({stored} stored, {duplicates} duplicates) by {tasks} writers \
         in batches of {BATCH} in {secs:.2} s: {:.0} reports/s",
        stored + duplicates,
        (stored + duplicates) as f64 / secs
    );
    Ok((stored, duplicates))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), StoreError> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "sqlite:///tmp/runpermit-ingest-bench.db".to_owned());
    let n: usize = args
        .next()
        .map_or(200_000, |n| n.parse().expect("N: a number"));
    let tasks: usize = args
        .next()
        .map_or(1, |n| n.parse().expect("TASKS: a number"));
    let store = runpermit_store::open(&url).await?;
    store.migrate().await?;
    if store.organization_count().await? != 0 {
        return Err(StoreError::Invalid(
            "the bench needs a fresh database".into(),
        ));
    }

    let mut writes = vec![Write::InsertOrganization(Organization {
        id: "o_dev".into(),
        name: "Lab".into(),
        kind: "developer".parse().expect("a name"),
        created_at: 0,
    })];
    writes.push(Write::InsertApplication(Application {
        id: "app".into(),
        org_id: "o_dev".into(),
        created_by: "m".into(),
        status: "approved".parse().expect("a name"),
        tier: "t".into(),
        decision: "d".into(),
        approvals_required: 0,
        plan_json: "{}".into(),
        plan_digest: "x".into(),
        estimate_json: "{}".into(),
        policy_version: "p".into(),
        version: 1,
        created_at: 0,
        updated_at: 0,
    }));
    for run in 0..RUNS {
        writes.push(Write::InsertPermit(Permit {
            id: format!("per_{run}"),
            application_id: "app".into(),
            run_id: format!("run_{run}"),
            org_id: "o_dev".into(),
            status: "issued".parse().expect("a name"),
            claims_json: "{}".into(),
            token: Some("eyJ".into()),
            kid: "k".into(),
            policy_version: "p".into(),
            created_at: 0,
            issued_at: Some(0),
        }));
        writes.push(Write::InsertRun(Run {
            id: format!("run_{run}"),
            permit_id: format!("per_{run}"),
            org_id: "o_dev".into(),
            status: "active".parse().expect("a name"),
            reason: String::new(),
            status_since: 0,
            tranche: 1,
            released_flop: 1e27,
            budget_flop: 1e27,
            cumulative_flop: 0.0,
            cumulative_upper_flop: 0.0,
            cumulative_lower_flop: 0.0,
            measured_flop: 0.0,
            measured_capacity_flop: 0.0,
            first_usage_s: None,
            last_usage_s: None,
            summarized_flop: 0.0,
            alerted_percent: 0,
            appeal_pending: false,
            permit_exp_s: 2_000_000_000,
            version: 1,
            created_at: 0,
            updated_at: 0,
        }));
    }
    store.commit(writes).await?;

    let per_task = n / tasks;
    let (stored, _) = phase(&store, tasks, per_task, "new").await?;
    assert_eq!(stored, per_task * tasks);
    let (_, duplicates) = phase(&store, tasks, per_task, "resent").await?;
    assert_eq!(duplicates, per_task * tasks);

    let total: f64 = store
        .runs(None)
        .await?
        .iter()
        .map(|r| r.cumulative_flop)
        .sum();
    assert_eq!(total, (per_task * tasks) as f64 * FLOP);
    println!("cumulative FLOP over all runs: {total:e} (as sent)");
    Ok(())
}
