//! How long the console's public pages take with 10^4 permits and 10^6 log entries (issue
//! 13: "a page of the registry renders in milliseconds").
//!
//! Fills a fresh SQLite file through the store's own writes: 100 labs, 10 providers,
//! `PERMITS` applications with signed permits and their runs (one in ten revoked), and a log
//! of `ENTRIES` real entries (each permit's submission, decision and issuance, then usage
//! summaries, tranche releases and revocations) queued and sequenced as the sequencer does,
//! so the references the pages search by are written by the real code path. The tree's
//! hashes are stand-ins (no page below reads them). Then it renders each page through the
//! router, in process, and prints the median and the slowest of `ROUNDS` requests.
//!
//! `cargo run --release -p runpermit-authority --example console_bench [-- PERMITS ENTRIES [DIR]]`
//! (with DIR, the database and each page's HTML are kept there, to look at; a database
//! already filled there is reused, to time the pages again).

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use runpermit_authority::testing::{T0_MS, TestAuthority};
use runpermit_compute::Flop;
use runpermit_log::{DecisionKind, LogEntry, encode};
use runpermit_permit::{Holder, PERMIT_TYP, PermitClaims, ProviderScope, Tranche, sign_jws};
use runpermit_store::{
    Application, LogBatch, Organization, Permit, Run, SequencedEntry, Store, Write,
};
use tower::ServiceExt;

const ROUNDS: usize = 30;
const LABS: usize = 100;
const PROVIDERS: usize = 10;

fn flop(v: f64) -> Flop {
    Flop::new(v).expect("a FLOP figure")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let permits: usize = args.next().map_or(10_000, |n| n.parse().expect("PERMITS"));
    let entries: usize = args
        .next()
        .map_or(1_000_000, |n| n.parse().expect("ENTRIES"));
    let dump = args.next().map(std::path::PathBuf::from);
    assert!(entries >= 3 * permits, "ENTRIES: at least 3 per permit");
    let dir = dump.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "runpermit-console-bench-{}",
            runpermit_authority::domain::ids::new_id("b")
        ))
    });
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let url = format!("sqlite://{}?mode=rwc", dir.join("bench.db").display());
    let authority = TestAuthority::new(Some(&url)).await;
    let state = authority.state.clone();
    let store = state.store.clone();

    if store.log_state().await.expect("the log's state").is_some() {
        println!("reusing the filled database in {}", dir.display());
    } else {
        let started = Instant::now();
        fill(&authority, store.as_ref(), permits, entries).await;
        println!(
            "filled {permits} permits and {entries} log entries in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let router = runpermit_authority::router(state);
    let some_permit = "per_bench_00042";
    let pages = [
        "/".to_owned(),
        "/?page=100".to_owned(),
        "/?page=200".to_owned(),
        "/?standing=not".to_owned(),
        "/?tier=full".to_owned(),
        "/?q=lab+07".to_owned(),
        format!("/permits/{some_permit}"),
        "/log".to_owned(),
        "/log?before=500000".to_owned(),
        "/log?type=decision".to_owned(),
        "/log?type=run_revoked".to_owned(),
        format!("/log?permit={some_permit}"),
        "/log?org=org_lab_07".to_owned(),
        "/log?org=org_provider_3&type=permit_issued".to_owned(),
        format!("/log/entries/{}", entries * 3 / 4),
        "/decisions".to_owned(),
        "/orgs".to_owned(),
        "/verify".to_owned(),
    ];
    println!(
        "{:<48} {:>10} {:>10} {:>9}",
        "page", "median ms", "max ms", "bytes"
    );
    for path in &pages {
        let mut times = Vec::with_capacity(ROUNDS);
        let mut bytes = 0;
        for _ in 0..=ROUNDS {
            let t = Instant::now();
            let response = router
                .clone()
                .oneshot(Request::get(path).body(Body::empty()).expect("request"))
                .await
                .expect("response");
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            times.push(t.elapsed());
            assert_eq!(
                status,
                StatusCode::OK,
                "{path}: {}",
                String::from_utf8_lossy(&body)
            );
            bytes = body.len();
            if let Some(dir) = &dump {
                let name = path.replace(['/', '?', '&', '='], "_");
                std::fs::write(dir.join(format!("{name}.html")), &body).expect("writing a page");
            }
        }
        times.remove(0); // the first request warms the caches
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{path:<48} {:>10.2} {:>10.2} {bytes:>9}",
            ms(times[times.len() / 2]),
            ms(*times.last().expect("rounds"))
        );
    }
    if dump.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Organizations, applications, signed permits and runs, then the log.
async fn fill(authority: &TestAuthority, store: &dyn Store, permits: usize, entries: usize) {
    let signer = authority.state.signer.clone();
    let mut writes = Vec::new();
    for i in 0..LABS {
        writes.push(Write::InsertOrganization(Organization {
            id: format!("org_lab_{i:02}"),
            name: format!("Lab {i:02} Research"),
            kind: "developer".parse().expect("a kind"),
            created_at: T0_MS,
        }));
    }
    for i in 0..PROVIDERS {
        writes.push(Write::InsertOrganization(Organization {
            id: format!("org_provider_{i}"),
            name: format!("Provider {i} Cloud"),
            kind: "provider".parse().expect("a kind"),
            created_at: T0_MS,
        }));
    }
    store.commit(writes).await.expect("organizations");
    let nbf = T0_MS / 1000;
    let mut log: Vec<(String, Vec<u8>)> = Vec::with_capacity(entries);
    let mut writes = Vec::new();
    for i in 0..permits {
        let lab = format!("org_lab_{:02}", i % LABS);
        let app = format!("app_bench_{i:05}");
        let permit = format!("per_bench_{i:05}");
        let run = format!("run_bench_{i:05}");
        let tier = if i % 5 == 0 { "full" } else { "standard" };
        let budget = 1e25 * (1.0 + (i % 90) as f64);
        let claims = PermitClaims {
            iss: "https://authority.test".into(),
            sub: run.clone(),
            jti: permit.clone(),
            iat: nbf,
            nbf,
            exp: nbf + 365 * 86_400,
            rpv: 2,
            application_id: app.clone(),
            holder: Holder {
                org_id: lab.clone(),
                name: format!("Lab {:02} Research", i % LABS),
            },
            providers: vec![ProviderScope {
                provider: format!("org_provider_{}", i % PROVIDERS),
                clusters: vec!["east-1".into()],
            }],
            evaluators: Some(vec![]),
            accounting: None,
            max_accelerators: 16_384,
            flop_budget: flop(budget),
            tranches: (1..=4)
                .map(|t| Tranche {
                    index: t,
                    flop: flop(budget * f64::from(t) / 4.0),
                })
                .collect(),
            policy_version: "bench".into(),
            tier: tier.into(),
            conditions: vec!["weekly usage reports".into()],
        };
        let token = sign_jws(PERMIT_TYP, &claims, &signer);
        let revoked = i % 10 == 3;
        writes.push(Write::InsertApplication(Application {
            id: app.clone(),
            org_id: lab.clone(),
            created_by: "mem_bench".into(),
            status: "approved".parse().expect("a status"),
            tier: tier.into(),
            decision: "review".into(),
            approvals_required: 2,
            plan_json: "{}".into(),
            plan_digest: format!("sha256:{}", "0".repeat(64)),
            estimate_json: "{}".into(),
            policy_version: "bench".into(),
            version: 1,
            created_at: T0_MS,
            updated_at: T0_MS,
        }));
        writes.push(Write::InsertPermit(Permit {
            id: permit.clone(),
            application_id: app.clone(),
            run_id: run.clone(),
            org_id: lab.clone(),
            status: "intent".parse().expect("a state"),
            claims_json: serde_json::to_string(&claims).expect("claims"),
            token: None,
            kid: signer.kid().to_owned(),
            policy_version: "bench".into(),
            created_at: T0_MS,
            issued_at: None,
        }));
        writes.push(Write::IssuePermit {
            id: permit.clone(),
            token: token.clone(),
            issued_at: T0_MS,
        });
        writes.push(Write::InsertRun(Run {
            id: run.clone(),
            permit_id: permit.clone(),
            org_id: lab.clone(),
            status: if revoked { "revoked" } else { "active" }
                .parse()
                .expect("a status"),
            reason: if revoked {
                "weights security failed audit".into()
            } else {
                String::new()
            },
            status_since: T0_MS,
            tranche: 1,
            released_flop: budget / 4.0,
            budget_flop: budget,
            cumulative_flop: budget / 8.0,
            cumulative_upper_flop: budget / 7.0,
            cumulative_lower_flop: budget / 10.0,
            measured_flop: 0.0,
            measured_capacity_flop: 0.0,
            first_usage_s: None,
            last_usage_s: None,
            summarized_flop: budget / 8.0,
            alerted_percent: 0,
            appeal_pending: false,
            permit_exp_s: nbf + 365 * 86_400,
            version: 1,
            created_at: T0_MS,
            updated_at: T0_MS,
        }));
        if writes.len() >= 4_000 {
            store
                .commit(std::mem::take(&mut writes))
                .await
                .expect("permits");
        }
        let entry = |e: LogEntry| encode(&e, nbf).expect("an entry");
        log.push((
            format!("application/{app}"),
            entry(LogEntry::ApplicationSubmitted {
                application_id: app.clone(),
                org_id: lab.clone(),
                plan_digest: format!("sha256:{}", "0".repeat(64)),
                tier: tier.into(),
                estimated_flop: flop(budget),
                policy_version: "bench".into(),
            }),
        ));
        log.push((
            format!("application/{app}"),
            entry(LogEntry::Decision {
                application_id: app.clone(),
                decision: DecisionKind::Approved,
                tier: tier.into(),
                policy_version: "bench".into(),
                reason: Some("safeguards adequate".into()),
            }),
        ));
        log.push((
            format!("permit/{permit}"),
            entry(LogEntry::PermitIssued {
                permit_id: permit.clone(),
                application_id: app.clone(),
                run_id: run.clone(),
                holder_org_id: lab.clone(),
                token,
                flop_budget: flop(budget),
                nbf,
                exp: nbf + 365 * 86_400,
                policy_version: "bench".into(),
            }),
        ));
        if revoked {
            log.push((
                format!("run/{run}"),
                entry(LogEntry::RunRevoked {
                    permit_id: permit.clone(),
                    run_id: run.clone(),
                    reason: "weights security failed audit".into(),
                }),
            ));
        }
    }
    store.commit(writes).await.expect("permits");
    // The rest of the log: usage summaries of every run in turn, a tranche now and then.
    let mut round = 0;
    while log.len() < entries {
        for i in 0..permits {
            if log.len() >= entries {
                break;
            }
            let run = format!("run_bench_{i:05}");
            let e = if round % 40 == 39 {
                LogEntry::TrancheReleased {
                    permit_id: format!("per_bench_{i:05}"),
                    run_id: run.clone(),
                    tranche: 2,
                    flop: flop(1e25),
                }
            } else {
                LogEntry::UsageSummary {
                    run_id: run.clone(),
                    cumulative_flop: flop(1e22 * f64::from(round + 1)),
                    providers: 1,
                    through: nbf + i64::from(round) * 3600,
                }
            };
            log.push((format!("run/{run}"), encode(&e, nbf).expect("an entry")));
        }
        round += 1;
    }
    sequence(store, log).await;
}

/// Queues and sequences `log` in the sequencer's batch size, with stand-in hashes.
async fn sequence(store: &dyn Store, log: Vec<(String, Vec<u8>)>) {
    const BATCH: usize = 4_096;
    let mut size: i64 = store
        .log_state()
        .await
        .expect("state")
        .map_or(0, |s| s.size);
    let key = runpermit_log::LogKey::generate("authority.test/log").expect("a key");
    for chunk in log.chunks(BATCH) {
        store
            .commit(
                chunk
                    .iter()
                    .map(|(subject, entry)| Write::QueueLogEntry {
                        subject: subject.clone(),
                        entry: entry.clone(),
                        at: T0_MS,
                    })
                    .collect(),
            )
            .await
            .expect("queueing");
        let queued = store.log_queue(BATCH as i64).await.expect("queue");
        let new_size = size + queued.len() as i64;
        let stored = |n: i64| 2 * n - i64::from(n.count_ones());
        let checkpoint = runpermit_log::sign_checkpoint(
            &runpermit_log::Checkpoint {
                origin: "authority.test/log".into(),
                size: new_size as u64,
                root_hash: runpermit_log::Hash([7; 32]),
            },
            &key,
        )
        .expect("a checkpoint");
        store
            .sequence_log(LogBatch {
                expected_size: size,
                entries: queued
                    .into_iter()
                    .zip(size..)
                    .map(|(q, index)| SequencedEntry {
                        queue_id: q.id,
                        index,
                        subject: q.subject,
                        entry: q.entry,
                    })
                    .collect(),
                hashes: (stored(size)..stored(new_size))
                    .map(|i| (i, vec![7; 32]))
                    .collect(),
                size: new_size,
                root: vec![7; 32],
                checkpoint,
                at: T0_MS,
            })
            .await
            .expect("sequencing");
        size = new_size;
    }
}
