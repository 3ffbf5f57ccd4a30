//! Usage reports on both databases: ingestion (duplicates, conflicts, exact sums, all or
//! nothing) and reading reports back.

mod common;

use common::{Db, UNIT, digest_of, seed_runs, usage};
use runpermit_store::{Ingested, ProviderUsage, StoreError, UsageRecord};

common::suite!(
    ingest_usage_stores_duplicates_and_conflicts,
    ingest_usage_sums_per_run_across_providers,
    ingest_usage_with_an_unknown_run_rolls_back,
    ingest_usage_refuses_invalid_records,
    concurrent_ingest_keeps_exact_sums,
    ingest_usage_large_batches,
    usage_reports_page_in_provider_seq_order,
    usage_reports_cannot_be_updated_or_deleted,
);

fn stored(previous_max_seq: i64) -> Ingested {
    Ingested::Stored { previous_max_seq }
}

async fn ingest_usage_stores_duplicates_and_conflicts(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    assert_eq!(store.ingest_usage(Vec::new()).await.unwrap(), []);

    // 1, 2, then 4 (a gap), then 3 (late).
    let first = vec![
        usage("prov_a", "run_1", 1, 1.0),
        usage("prov_a", "run_1", 2, 2.0),
        usage("prov_a", "run_1", 4, 4.0),
        usage("prov_a", "run_1", 3, 8.0),
    ];
    assert_eq!(
        store.ingest_usage(first.clone()).await.unwrap(),
        [stored(0), stored(1), stored(2), stored(4)]
    );
    let r = store.run("run_1").await.unwrap().unwrap();
    assert_eq!(
        (
            r.cumulative_flop,
            r.cumulative_upper_flop,
            r.updated_at,
            r.version
        ),
        (15.0 * UNIT, 30.0 * UNIT, 10_004, 1)
    );

    // A retry, a different report under a stored key, a new one, and the same key twice more
    // within the batch.
    let mut forged = usage("prov_a", "run_1", 2, 2.0);
    forged.token = "eyJ.forged".into();
    forged.digest = digest_of("eyJ.forged");
    let mut forged_new = usage("prov_a", "run_1", 6, 1.0);
    forged_new.token = "eyJ.other".into();
    forged_new.digest = digest_of("eyJ.other");
    let second = vec![
        usage("prov_a", "run_1", 2, 2.0),
        forged,
        usage("prov_a", "run_1", 6, 1.0),
        usage("prov_a", "run_1", 6, 1.0),
        forged_new,
        usage("prov_a", "run_1", 5, 16.0),
    ];
    assert_eq!(
        store.ingest_usage(second).await.unwrap(),
        [
            Ingested::Duplicate,
            Ingested::Conflict {
                stored_digest: first[1].digest.clone()
            },
            Ingested::Withheld,
            Ingested::Duplicate,
            Ingested::Conflict {
                stored_digest: usage("prov_a", "run_1", 6, 1.0).digest
            },
            Ingested::Withheld,
        ]
    );
    // All or nothing: with a conflict in the batch, nothing of it is written.
    assert_eq!(store.run("run_1").await.unwrap().unwrap(), r);
    assert_eq!(
        store.usage_reports("run_1", None, 100).await.unwrap().len(),
        4
    );
    // Sent again without the conflicting reports, the new ones are stored.
    let third = vec![
        usage("prov_a", "run_1", 6, 1.0),
        usage("prov_a", "run_1", 6, 1.0),
        usage("prov_a", "run_1", 5, 16.0),
    ];
    assert_eq!(
        store.ingest_usage(third).await.unwrap(),
        [stored(4), Ingested::Duplicate, stored(6)]
    );
    let r = store.run("run_1").await.unwrap().unwrap();
    assert_eq!(
        (r.cumulative_flop, r.cumulative_upper_flop, r.updated_at),
        (32.0 * UNIT, 64.0 * UNIT, 10_006)
    );
    // All duplicates: nothing changes, not even updated_at.
    assert_eq!(
        store.ingest_usage(first.clone()).await.unwrap(),
        [const { Ingested::Duplicate }; 4]
    );
    assert_eq!(store.run("run_1").await.unwrap().unwrap(), r);
    // What is stored is the first report of each key.
    let reports = store.usage_reports("run_1", None, 100).await.unwrap();
    assert_eq!(
        reports.iter().map(|u| u.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert_eq!(reports[1], first[1]);
    assert_eq!(reports[5], usage("prov_a", "run_1", 6, 1.0));
    assert_eq!(
        store.usage_by_provider("run_1").await.unwrap(),
        [ProviderUsage {
            provider_id: "prov_a".into(),
            reports: 6,
            max_seq: 6,
            flop: 32.0 * UNIT,
            flop_lower: 16.0 * UNIT,
            flop_upper: 64.0 * UNIT,
            first_from_s: 1_700_000_000 + 3_600,
            last_to_s: 1_700_000_000 + 7 * 3_600,
            last_received_at: 10_006,
        }]
    );
    // updated_at only moves forward.
    let mut early = usage("prov_a", "run_1", 9, 1.0);
    early.received_at = 5;
    assert_eq!(store.ingest_usage(vec![early]).await.unwrap(), [stored(6)]);
    let r = store.run("run_1").await.unwrap().unwrap();
    assert_eq!((r.cumulative_flop, r.updated_at), (33.0 * UNIT, 10_006));
}

async fn ingest_usage_sums_per_run_across_providers(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    let outcomes = store
        .ingest_usage(vec![
            usage("prov_b", "run_1", 1, 1.0),
            usage("prov_a", "run_1", 1, 2.0),
            usage("prov_a", "run_2", 1, 4.0),
            usage("prov_b", "run_1", 2, 8.0),
            usage("prov_a", "run_2", 3, 16.0),
            usage("prov_a", "run_1", 2, 32.0),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            stored(0),
            stored(0),
            stored(0),
            stored(1),
            stored(1),
            stored(1)
        ]
    );
    let outcomes = store
        .ingest_usage(vec![
            usage("prov_b", "run_2", 1, 64.0),
            usage("prov_a", "run_2", 2, 128.0),
            usage("prov_b", "run_1", 5, 256.0),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes, [stored(0), stored(3), stored(2)]);
    let one = store.run("run_1").await.unwrap().unwrap();
    let two = store.run("run_2").await.unwrap().unwrap();
    assert_eq!(
        (
            one.cumulative_flop,
            one.cumulative_upper_flop,
            one.updated_at
        ),
        (299.0 * UNIT, 598.0 * UNIT, 10_005)
    );
    assert_eq!(
        (
            two.cumulative_flop,
            two.cumulative_upper_flop,
            two.updated_at
        ),
        (212.0 * UNIT, 424.0 * UNIT, 10_003)
    );
    // The lower bounds are summed too, and the span the reports cover.
    assert_eq!(
        (
            one.cumulative_lower_flop,
            one.first_usage_s,
            one.last_usage_s
        ),
        (
            149.5 * UNIT,
            Some(1_700_000_000 + 3_600),
            Some(1_700_000_000 + 6 * 3_600)
        )
    );
    // No tensor-activity report: nothing measured.
    assert_eq!((one.measured_flop, one.measured_capacity_flop), (0.0, 0.0));
    let by_provider = store.usage_by_provider("run_1").await.unwrap();
    assert_eq!(
        by_provider
            .iter()
            .map(|p| (p.provider_id.as_str(), p.reports, p.max_seq, p.flop))
            .collect::<Vec<_>>(),
        [
            ("prov_a", 2, 2, 34.0 * UNIT),
            ("prov_b", 3, 5, 265.0 * UNIT)
        ]
    );
    assert_eq!(
        by_provider[1],
        ProviderUsage {
            provider_id: "prov_b".into(),
            reports: 3,
            max_seq: 5,
            flop: 265.0 * UNIT,
            flop_lower: 132.5 * UNIT,
            flop_upper: 530.0 * UNIT,
            first_from_s: 1_700_000_000 + 3_600,
            last_to_s: 1_700_000_000 + 6 * 3_600,
            last_received_at: 10_005,
        }
    );
    assert_eq!(
        store
            .usage_by_provider("run_2")
            .await
            .unwrap()
            .iter()
            .map(|p| (p.provider_id.as_str(), p.reports, p.max_seq, p.flop))
            .collect::<Vec<_>>(),
        [
            ("prov_a", 3, 3, 148.0 * UNIT),
            ("prov_b", 1, 1, 64.0 * UNIT)
        ]
    );
    assert!(
        store
            .usage_by_provider("run_nope")
            .await
            .unwrap()
            .is_empty()
    );
    // A tensor-activity report adds to the measured sums; an earlier interval widens the span.
    store
        .ingest_usage(vec![UsageRecord {
            method: "dcgm_tensor_activity".into(),
            capacity_flop: 10.0 * UNIT,
            from_s: 1_600_000_000,
            to_s: 1_600_003_600,
            ..usage("prov_a", "run_1", 3, 4.0)
        }])
        .await
        .unwrap();
    let one = store.run("run_1").await.unwrap().unwrap();
    assert_eq!(
        (
            one.measured_flop,
            one.measured_capacity_flop,
            one.first_usage_s,
            one.last_usage_s,
            one.cumulative_flop
        ),
        (
            4.0 * UNIT,
            10.0 * UNIT,
            Some(1_600_000_000),
            Some(1_700_000_000 + 6 * 3_600),
            303.0 * UNIT
        )
    );
}

async fn ingest_usage_with_an_unknown_run_rolls_back(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .ingest_usage(vec![usage("prov_a", "run_1", 1, 1.0)])
        .await
        .unwrap();
    let before = (
        store.run("run_1").await.unwrap(),
        store.run("run_2").await.unwrap(),
    );
    let e = store
        .ingest_usage(vec![
            usage("prov_a", "run_1", 2, 1.0),
            usage("prov_a", "run_2", 1, 1.0),
            usage("prov_a", "run_zz", 7, 1.0),
            usage("prov_a", "run_1", 3, 1.0),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("run \"run_zz\"") && m.contains("usage report 7 of provider \"prov_a\"")),
        "{e}"
    );
    assert_eq!(
        (
            store.run("run_1").await.unwrap(),
            store.run("run_2").await.unwrap()
        ),
        before
    );
    assert_eq!(
        store.usage_reports("run_1", None, 10).await.unwrap().len(),
        1
    );
    assert!(
        store
            .usage_reports("run_2", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The same batch without the unknown run goes through.
    assert_eq!(
        store
            .ingest_usage(vec![
                usage("prov_a", "run_1", 2, 1.0),
                usage("prov_a", "run_2", 1, 1.0),
            ])
            .await
            .unwrap(),
        [stored(1), stored(0)]
    );
}

async fn ingest_usage_refuses_invalid_records(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    let good = usage("prov_a", "run_1", 1, 1.0);
    let bad = vec![
        good.clone(),
        UsageRecord {
            provider_id: String::new(),
            seq: 0,
            to_s: good.from_s,
            ..good.clone()
        },
        UsageRecord {
            flop: f64::NAN,
            flop_lower: -1.0,
            flop_upper: f64::INFINITY,
            ..usage("prov_a", "run_1", 2, 1.0)
        },
        UsageRecord {
            flop: 3.0 * UNIT,
            digest: good.digest.to_uppercase(),
            accelerator_seconds_json: "{".into(),
            run_id: String::new(),
            permit_id: String::new(),
            ..usage("prov_a", "run_1", 3, 1.0)
        },
    ];
    let e = store.ingest_usage(bad).await.unwrap_err();
    let StoreError::Invalid(message) = e else {
        panic!("expected Invalid, got {e}");
    };
    for needle in [
        "records[1] (provider \"\" run \"run_1\" seq 0) provider_id: must not be empty",
        "records[1] (provider \"\" run \"run_1\" seq 0) seq: must be 1 or more (got 0)",
        "records[1] (provider \"\" run \"run_1\" seq 0) to_s: must be after from_s",
        "records[2] (provider \"prov_a\" run \"run_1\" seq 2) flop: must be a finite number of FLOP",
        "records[2] (provider \"prov_a\" run \"run_1\" seq 2) flop_lower: must be a finite number of FLOP, 0 or more (got -1)",
        "records[2] (provider \"prov_a\" run \"run_1\" seq 2) flop_upper: must be a finite number of FLOP",
        "records[3] (provider \"prov_a\" run \"\" seq 3) run_id: must not be empty",
        "records[3] (provider \"prov_a\" run \"\" seq 3) permit_id: must not be empty",
        "records[3] (provider \"prov_a\" run \"\" seq 3) flop: must lie within flop_lower..=flop_upper",
        "records[3] (provider \"prov_a\" run \"\" seq 3) accelerator_seconds_json: must be JSON text",
        "records[3] (provider \"prov_a\" run \"\" seq 3) digest: must be the lowercase hex SHA-256 of the token",
    ] {
        assert!(message.contains(needle), "missing {needle:?} in {message}");
    }
    assert!(!message.contains("records[0]"), "{message}");
    assert_eq!(message.matches("; ").count(), 12, "{message}");
    assert!(
        store
            .usage_reports("run_1", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.run("run_1").await.unwrap().unwrap().cumulative_flop,
        0.0
    );
}

async fn concurrent_ingest_keeps_exact_sums(db: Db) {
    const TASKS: usize = 4;
    const BATCHES: i64 = 5;
    const OWN: i64 = 40;
    const SHARED: i64 = 20;
    seed_runs(db.store()).await;
    let other = db.reopen().await;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = if task % 2 == 0 {
            db.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let provider = format!("prov_{task}");
            let mut outcomes = Vec::new();
            for batch in 0..BATCHES {
                // Reports of its own, and the same shared reports as every other task, each
                // batch on both runs.
                let mut records = Vec::new();
                for seq in batch * OWN + 1..=(batch + 1) * OWN {
                    records.push(usage(&provider, "run_1", seq, (seq % 7 + 1) as f64));
                }
                for seq in batch * SHARED + 1..=(batch + 1) * SHARED {
                    records.push(usage("prov_shared", "run_1", seq, 3.0));
                    records.push(usage("prov_shared", "run_2", seq, 5.0));
                }
                let result = store.ingest_usage(records.clone()).await.unwrap();
                outcomes.extend(records.into_iter().zip(result));
            }
            outcomes
        }));
    }
    let mut shared_stored = 0;
    for task in tasks {
        for (record, outcome) in task.await.unwrap() {
            match outcome {
                Ingested::Stored { previous_max_seq } => {
                    // Every batch extends what is stored, whoever stores it.
                    assert_eq!(previous_max_seq, record.seq - 1, "{record:?}");
                    if record.provider_id == "prov_shared" {
                        shared_stored += 1;
                    }
                }
                Ingested::Duplicate => assert_eq!(record.provider_id, "prov_shared"),
                Ingested::Conflict { .. } | Ingested::Withheld => {
                    panic!("no conflict expected: {record:?}")
                }
            }
        }
    }
    assert_eq!(
        shared_stored,
        2 * BATCHES * SHARED,
        "each shared report stored once"
    );
    let own: f64 = (1..=BATCHES * OWN).map(|seq| (seq % 7 + 1) as f64).sum();
    let one = db.store().run("run_1").await.unwrap().unwrap();
    let two = db.store().run("run_2").await.unwrap().unwrap();
    let shared = (BATCHES * SHARED) as f64;
    assert_eq!(
        one.cumulative_flop,
        (TASKS as f64 * own + 3.0 * shared) * UNIT
    );
    assert_eq!(
        one.cumulative_upper_flop,
        2.0 * (TASKS as f64 * own + 3.0 * shared) * UNIT
    );
    assert_eq!(two.cumulative_flop, 5.0 * shared * UNIT);
    assert_eq!(one.version, 1);
    let by_provider = db.store().usage_by_provider("run_1").await.unwrap();
    assert_eq!(by_provider.len(), TASKS + 1);
    assert!(
        by_provider.iter().all(|p| p.reports == p.max_seq
            && p.reports
                == if p.provider_id == "prov_shared" {
                    BATCHES * SHARED
                } else {
                    BATCHES * OWN
                }),
        "{by_provider:?}"
    );
}

async fn ingest_usage_large_batches(db: Db) {
    // Longer than one statement (1,024 rows) and than one lookup list: every chunking path.
    const N: i64 = 2_500;
    let store = db.store();
    seed_runs(store).await;
    let records: Vec<UsageRecord> = (1..=N)
        .map(|seq| usage("prov_a", "run_1", seq, 1.0))
        .collect();
    let outcomes = store.ingest_usage(records.clone()).await.unwrap();
    assert!(
        outcomes
            .iter()
            .zip(1..)
            .all(|(o, seq)| *o == stored(seq - 1)),
        "{:?}",
        &outcomes[..3]
    );
    // Again, with new reports after every stored one: lookups of 2,500 stored keys.
    let again: Vec<UsageRecord> = records
        .iter()
        .cloned()
        .flat_map(|r| {
            let seq = r.seq + N;
            [r, usage("prov_a", "run_1", seq, 1.0)]
        })
        .collect();
    let outcomes = store.ingest_usage(again).await.unwrap();
    assert_eq!(outcomes.len(), 2 * N as usize);
    for (i, outcome) in outcomes.iter().enumerate() {
        let expected = if i % 2 == 0 {
            Ingested::Duplicate
        } else if i == 1 {
            stored(N)
        } else {
            stored(N + i as i64 / 2)
        };
        assert_eq!(*outcome, expected, "outcome {i}");
    }
    let r = store.run("run_1").await.unwrap().unwrap();
    assert_eq!(r.cumulative_flop, 2.0 * N as f64 * UNIT);
    assert_eq!(
        store.usage_by_provider("run_1").await.unwrap()[0].reports,
        2 * N
    );
}

async fn usage_reports_page_in_provider_seq_order(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .ingest_usage(vec![
            usage("prov_b", "run_1", 2, 1.0),
            usage("prov_a", "run_1", 10, 1.0),
            usage("prov_b", "run_1", 1, 1.0),
            usage("prov_a", "run_1", 9, 1.0),
            usage("prov_c", "run_1", 1, 1.0),
            usage("prov_a", "run_2", 1, 1.0),
        ])
        .await
        .unwrap();
    let keys = |page: &[UsageRecord]| {
        page.iter()
            .map(|u| (u.provider_id.clone(), u.seq))
            .collect::<Vec<_>>()
    };
    let key = |p: &str, seq| (p.to_owned(), seq);
    let page = store.usage_reports("run_1", None, 2).await.unwrap();
    assert_eq!(keys(&page), [key("prov_a", 9), key("prov_a", 10)]);
    assert_eq!(page[0], usage("prov_a", "run_1", 9, 1.0));
    let page = store
        .usage_reports("run_1", Some(key("prov_a", 10)), 2)
        .await
        .unwrap();
    assert_eq!(keys(&page), [key("prov_b", 1), key("prov_b", 2)]);
    let page = store
        .usage_reports("run_1", Some(key("prov_b", 1)), 10)
        .await
        .unwrap();
    assert_eq!(keys(&page), [key("prov_b", 2), key("prov_c", 1)]);
    assert!(
        store
            .usage_reports("run_1", Some(key("prov_c", 1)), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        keys(&store.usage_reports("run_2", None, 10).await.unwrap()),
        [key("prov_a", 1)]
    );
    let e = store.usage_reports("run_1", None, 0).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
}

async fn usage_reports_cannot_be_updated_or_deleted(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .ingest_usage(vec![usage("prov_a", "run_1", 1, 1.0)])
        .await
        .unwrap();
    let e = db
        .raw("UPDATE usage_reports SET flop = 0")
        .await
        .expect_err("UPDATE on usage_reports must fail");
    assert!(e.contains("append-only"), "{e}");
    let e = db
        .raw("DELETE FROM usage_reports")
        .await
        .expect_err("DELETE on usage_reports must fail");
    assert!(e.contains("append-only"), "{e}");
    if db.is_postgres() {
        let e = db
            .raw("TRUNCATE usage_reports")
            .await
            .expect_err("TRUNCATE on usage_reports must fail");
        assert!(e.contains("append-only"), "{e}");
    }
    assert_eq!(
        store.usage_reports("run_1", None, 10).await.unwrap(),
        [usage("prov_a", "run_1", 1, 1.0)]
    );
}
