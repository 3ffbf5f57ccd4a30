//! Searching the sequenced log and the public registry, on both databases: the references
//! kept with each entry (type, application, permit, run, organizations), derived from the
//! entry and the records it names, rebuilt by `migrate` when missing.

mod common;

use base64::Engine as _;
use common::{Db, seed_runs};
use runpermit_store::{
    LogBatch, LogFilter, QueuedLogEntry, RegistryFilter, SequencedEntry, Store, StoreError, Write,
};

common::suite!(
    entries_are_found_by_type_permit_run_and_organization,
    references_missing_are_rebuilt_by_migrate,
    registry_lists_logged_permits_with_their_runs,
);

/// A compact JWS whose payload names a provider and an evaluator (the store reads, never
/// verifies, what the log holds).
fn token() -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"EdDSA"}"#),
        b64(r#"{"providers":[{"provider":"o_prov","clusters":[]}],"evaluators":["o_eval"]}"#),
        b64("signature")
    )
}

/// Queues and sequences the entries of a small history: `app_1` submitted and decided,
/// `p_1` issued and paused, a usage summary of `run_2`, and bytes that are no entry.
async fn history(store: &dyn Store) {
    let entries: Vec<(&str, String)> = vec![
        (
            "application/app_1",
            r#"{"application_id":"app_1","org_id":"o_dev","type":"application_submitted","v":1}"#
                .into(),
        ),
        (
            "application/app_1",
            r#"{"application_id":"app_1","decision":"approved","type":"decision","v":1}"#.into(),
        ),
        (
            "permit/p_1",
            format!(
                r#"{{"application_id":"app_1","holder_org_id":"o_dev","permit_id":"p_1","run_id":"run_1","token":"{}","type":"permit_issued","v":1}}"#,
                token()
            ),
        ),
        (
            "run/run_1",
            r#"{"permit_id":"p_1","reason":"incident","run_id":"run_1","type":"run_paused","v":1}"#
                .into(),
        ),
        (
            "run/run_2",
            r#"{"cumulative_flop":1e20,"run_id":"run_2","type":"usage_summary","v":1}"#.into(),
        ),
        ("other", "not an entry".into()),
    ];
    store
        .commit(
            entries
                .iter()
                .map(|(subject, entry)| Write::QueueLogEntry {
                    subject: (*subject).into(),
                    entry: entry.as_bytes().to_vec(),
                    at: 1_000,
                })
                .collect(),
        )
        .await
        .expect("queue");
    let queued = store.log_queue(100).await.unwrap();
    store.sequence_log(batch(&queued)).await.expect("sequence");
}

fn batch(queued: &[QueuedLogEntry]) -> LogBatch {
    let n = queued.len() as i64;
    LogBatch {
        expected_size: 0,
        entries: queued
            .iter()
            .zip(0..)
            .map(|(q, index)| SequencedEntry {
                queue_id: q.id,
                index,
                subject: q.subject.clone(),
                entry: q.entry.clone(),
            })
            .collect(),
        hashes: (0..2 * n - i64::from(n.count_ones()))
            .map(|i| (i, vec![7; 32]))
            .collect(),
        size: n,
        root: vec![1; 32],
        checkpoint: format!("example/log\n{n}\nroot\n"),
        at: 2_000,
    }
}

async fn found(store: &dyn Store, filter: LogFilter) -> Vec<i64> {
    store
        .log_search(&filter, 100)
        .await
        .expect("search")
        .into_iter()
        .map(|r| r.idx)
        .collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

async fn assert_searches(store: &dyn Store) {
    let all = found(store, LogFilter::default()).await;
    assert_eq!(
        all,
        [5, 4, 3, 2, 1, 0],
        "newest first, undecodable bytes too"
    );
    let kinds = |types: &[&str]| LogFilter {
        types: types.iter().map(|t| (*t).to_owned()).collect(),
        ..LogFilter::default()
    };
    assert_eq!(found(store, kinds(&["decision"])).await, [1]);
    assert_eq!(
        found(store, kinds(&["run_paused", "permit_issued"])).await,
        [3, 2]
    );
    let by_permit = |p: &str| LogFilter {
        permit_id: some(p),
        ..LogFilter::default()
    };
    assert_eq!(found(store, by_permit("p_1")).await, [3, 2]);
    // A usage summary names only its run; the run's permit comes from the runs table.
    assert_eq!(found(store, by_permit("p_2")).await, [4]);
    let by_run = LogFilter {
        run_id: some("run_1"),
        ..LogFilter::default()
    };
    assert_eq!(found(store, by_run).await, [3, 2]);
    let by_app = LogFilter {
        application_id: some("app_1"),
        ..LogFilter::default()
    };
    // Its submission, decision and the permit granted on it.
    assert_eq!(found(store, by_app).await, [2, 1, 0]);
    let by_org = |o: &str| LogFilter {
        org_id: some(o),
        ..LogFilter::default()
    };
    // The decision's organization is its application's; the pause's is its permit's.
    assert_eq!(found(store, by_org("o_dev")).await, [4, 3, 2, 1, 0]);
    // Named in the permit's token as provider and as evaluator.
    assert_eq!(found(store, by_org("o_prov")).await, [2]);
    assert_eq!(found(store, by_org("o_eval")).await, [2]);
    assert!(found(store, by_org("o_auth")).await.is_empty());
    let paged = LogFilter {
        org_id: some("o_dev"),
        before: Some(3),
        ..LogFilter::default()
    };
    assert_eq!(found(store, paged).await, [2, 1, 0]);
    let rows = store.log_search(&by_org("o_dev"), 2).await.expect("search");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].org_id.as_deref(), Some("o_dev"));
    assert_eq!(rows[0].org_name.as_deref(), Some("o_dev name"));
    assert_eq!(rows[0].created_at, 2_000);
    assert!(rows[1].entry.starts_with(br#"{"permit_id":"p_1""#));
    for limit in [0, 1001] {
        assert!(matches!(
            store.log_search(&LogFilter::default(), limit).await,
            Err(StoreError::Invalid(_))
        ));
    }
    let orgs: Vec<String> = store
        .log_organizations()
        .await
        .expect("organizations")
        .into_iter()
        .map(|o| o.id)
        .collect();
    // o_eval is named but unknown here; o_auth is not in the log.
    assert_eq!(orgs, ["o_dev", "o_prov"]);
}

async fn entries_are_found_by_type_permit_run_and_organization(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    assert!(found(store, LogFilter::default()).await.is_empty());
    history(store).await;
    assert_searches(store).await;
}

async fn references_missing_are_rebuilt_by_migrate(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    history(store).await;
    // As if the entries had been sequenced before the references were kept.
    db.raw("DELETE FROM log_entry_orgs").await.unwrap();
    db.raw("DELETE FROM log_entry_refs").await.unwrap();
    assert!(found(store, LogFilter::default()).await.is_empty());
    store.migrate().await.expect("migrate again");
    assert_searches(store).await;
    // Indexing what is indexed changes nothing.
    store.migrate().await.expect("migrate once more");
    assert_searches(store).await;
}

async fn registry_lists_logged_permits_with_their_runs(db: Db) {
    let store = db.store();
    seed_runs(store).await;
    store
        .commit(vec![
            Write::IssuePermit {
                id: "p_1".into(),
                token: token(),
                issued_at: 500,
            },
            Write::IssuePermit {
                id: "p_2".into(),
                token: token(),
                issued_at: 510,
            },
        ])
        .await
        .expect("issue");
    // p_2 is signed but its entry is not in the log: not public yet.
    history(store).await;
    let page = |filter: RegistryFilter| async move {
        let page = store.registry(&filter, 0, 50).await.expect("registry");
        let ids: Vec<String> = page.rows.iter().map(|r| r.permit_id.clone()).collect();
        (ids, page.total)
    };
    let (ids, total) = page(RegistryFilter::default()).await;
    assert_eq!((ids, total), (vec!["p_1".to_owned()], 1));
    let row = &store
        .registry(&RegistryFilter::default(), 0, 50)
        .await
        .unwrap()
        .rows[0];
    assert_eq!(row.run_id, "run_1", "the run the entry names");
    assert_eq!(row.org_name.as_deref(), Some("o_dev name"));
    assert_eq!(row.tier, "standard");
    assert_eq!(row.log_index, 2);
    assert_eq!(row.run_status.as_str(), "active");
    assert_eq!(row.token, token());
    let one = |f: RegistryFilter| async move { page(f).await.1 };
    for (filter, expected) in [
        (
            RegistryFilter {
                tier: some("standard"),
                ..RegistryFilter::default()
            },
            1,
        ),
        (
            RegistryFilter {
                tier: some("frontier"),
                ..RegistryFilter::default()
            },
            0,
        ),
        (
            RegistryFilter {
                good_standing: Some(true),
                ..RegistryFilter::default()
            },
            1,
        ),
        (
            RegistryFilter {
                good_standing: Some(false),
                ..RegistryFilter::default()
            },
            0,
        ),
        (
            RegistryFilter {
                q: some("O_DEV NA"),
                ..RegistryFilter::default()
            },
            1,
        ),
        (
            RegistryFilter {
                q: some("RUN_1"),
                ..RegistryFilter::default()
            },
            1,
        ),
        (
            RegistryFilter {
                q: some("P_"),
                ..RegistryFilter::default()
            },
            1,
        ),
        (
            RegistryFilter {
                q: some("p%1"),
                ..RegistryFilter::default()
            },
            0,
        ),
        (
            RegistryFilter {
                permit_id: some("p_2"),
                ..RegistryFilter::default()
            },
            0,
        ),
    ] {
        assert_eq!(one(filter.clone()).await, expected, "{filter:?}");
    }
    db.raw("UPDATE runs SET status = 'revoked'").await.unwrap();
    let (ids, _) = page(RegistryFilter {
        good_standing: Some(false),
        ..RegistryFilter::default()
    })
    .await;
    assert_eq!(ids, ["p_1"]);
    let past = store
        .registry(&RegistryFilter::default(), 1, 50)
        .await
        .unwrap();
    assert_eq!((past.rows.len(), past.total), (0, 1));
    assert!(matches!(
        store.registry(&RegistryFilter::default(), -1, 50).await,
        Err(StoreError::Invalid(_))
    ));
}
