//! Access-usage reports on both databases: ingestion (duplicates, conflicts, exact per-grant
//! sums that leave the grant's version alone, all or nothing) and the table's append-only
//! guard.

mod common;

use common::{Db, digest_of};
use runpermit_store::{AccessUsageRecord, Grant, Ingested, StoreError, Write};

common::suite!(
    access_usage_stores_duplicates_conflicts_and_sums,
    access_usage_with_an_unknown_grant_rolls_back,
    access_usage_refuses_invalid_records,
    access_usage_reports_cannot_be_updated_or_deleted,
);

fn grant(id: &str) -> Grant {
    Grant {
        id: id.into(),
        request_id: Some(format!("areq_{id}")),
        milestone_id: None,
        model_id: "mdl_1".into(),
        org_id: "org_res".into(),
        developer_org_id: "org_dev".into(),
        tier: "api".into(),
        origin: "application".into(),
        token: format!("eyJ.grant.{id}"),
        claims_json: "{}".into(),
        status: "active".into(),
        reason: String::new(),
        status_since: 1_000,
        exp_s: 1_800_000_000,
        version: 1,
        created_at: 1_000,
        usage_reports: 0,
        usage_requests: 0,
        usage_prompt_tokens: 0,
        usage_completion_tokens: 0,
        usage_refused: 0,
        usage_last_to_s: None,
    }
}

async fn seed_grants(db: &Db) {
    db.store()
        .commit(vec![
            Write::InsertGrant(grant("grt_1")),
            Write::InsertGrant(grant("grt_2")),
        ])
        .await
        .expect("seed grants");
}

/// Report `seq` of `org_dev` under `grant_id`: `requests` requests of 10 prompt and 2
/// completion tokens each, one refusal, over the hour `seq`.
fn report(grant_id: &str, seq: i64, requests: i64) -> AccessUsageRecord {
    let token = format!("eyJ.{grant_id}.{seq}.{requests}");
    AccessUsageRecord {
        iss: "org_dev".into(),
        grant_id: grant_id.into(),
        seq,
        model_id: "mdl_1".into(),
        from_s: 1_700_000_000 + seq * 3_600,
        to_s: 1_700_000_000 + (seq + 1) * 3_600,
        requests,
        prompt_tokens: requests * 10,
        completion_tokens: requests * 2,
        refused: 1,
        digest: digest_of(&token),
        token,
        received_at: 20_000 + seq,
    }
}

fn stored(previous_max_seq: i64) -> Ingested {
    Ingested::Stored { previous_max_seq }
}

fn sums(g: &Grant) -> (i64, i64, i64, i64, i64, Option<i64>, i64) {
    (
        g.usage_reports,
        g.usage_requests,
        g.usage_prompt_tokens,
        g.usage_completion_tokens,
        g.usage_refused,
        g.usage_last_to_s,
        g.version,
    )
}

async fn access_usage_stores_duplicates_conflicts_and_sums(db: Db) {
    seed_grants(&db).await;
    let store = db.store();
    assert_eq!(store.ingest_access_usage(Vec::new()).await.unwrap(), []);
    assert_eq!(
        sums(&store.grant("grt_1").await.unwrap().unwrap()),
        (0, 0, 0, 0, 0, None, 1)
    );

    // 1, then 3 (a gap), then 2 (late), on two grants.
    let first = vec![
        report("grt_1", 1, 5),
        report("grt_1", 3, 7),
        report("grt_2", 1, 1),
        report("grt_1", 2, 3),
    ];
    assert_eq!(
        store.ingest_access_usage(first.clone()).await.unwrap(),
        [stored(0), stored(1), stored(0), stored(3)]
    );
    let g1 = store.grant("grt_1").await.unwrap().unwrap();
    assert_eq!(
        sums(&g1),
        (3, 15, 150, 30, 3, Some(1_700_000_000 + 4 * 3_600), 1)
    );
    assert_eq!(
        sums(&store.grant("grt_2").await.unwrap().unwrap()),
        (1, 1, 10, 2, 1, Some(1_700_000_000 + 2 * 3_600), 1)
    );

    // A retry changes nothing.
    assert_eq!(
        store.ingest_access_usage(first.clone()).await.unwrap(),
        [const { Ingested::Duplicate }; 4]
    );
    assert_eq!(
        sums(&store.grant("grt_1").await.unwrap().unwrap()),
        sums(&g1)
    );

    // Other content under a stored key: a conflict, and nothing of the batch is written.
    let mut forged = report("grt_1", 2, 3);
    forged.token = "eyJ.forged".into();
    forged.digest = digest_of("eyJ.forged");
    assert_eq!(
        store
            .ingest_access_usage(vec![report("grt_1", 4, 9), forged.clone()])
            .await
            .unwrap(),
        [
            Ingested::Withheld,
            Ingested::Conflict {
                stored_digest: report("grt_1", 2, 3).digest
            }
        ]
    );
    // The same key twice within one batch, with other content: a conflict too.
    let mut twice = report("grt_1", 4, 9);
    twice.token = "eyJ.twice".into();
    twice.digest = digest_of("eyJ.twice");
    assert_eq!(
        store
            .ingest_access_usage(vec![report("grt_1", 4, 9), twice])
            .await
            .unwrap(),
        [
            Ingested::Withheld,
            Ingested::Conflict {
                stored_digest: report("grt_1", 4, 9).digest
            }
        ]
    );
    assert_eq!(
        sums(&store.grant("grt_1").await.unwrap().unwrap()),
        sums(&g1)
    );
    let stored_reports = store.access_usage_reports("grt_1", 10).await.unwrap();
    assert_eq!(
        stored_reports,
        [
            report("grt_1", 1, 5),
            report("grt_1", 2, 3),
            report("grt_1", 3, 7)
        ]
    );

    // Changing a grant's standing leaves its sums alone, and the sums leave its version.
    let mut suspended = store.grant("grt_1").await.unwrap().unwrap();
    suspended.status = "suspended".into();
    suspended.usage_requests = 0;
    store
        .commit(vec![Write::UpdateGrant {
            grant: suspended,
            expected_version: 1,
        }])
        .await
        .unwrap();
    let g1 = store.grant("grt_1").await.unwrap().unwrap();
    assert_eq!(
        (g1.status.as_str(), g1.usage_requests, g1.version),
        ("suspended", 15, 2)
    );
    // A suspended grant's reports still count: they are what was served.
    assert_eq!(
        store
            .ingest_access_usage(vec![report("grt_1", 4, 9)])
            .await
            .unwrap(),
        [stored(3)]
    );
    let g1 = store.grant("grt_1").await.unwrap().unwrap();
    assert_eq!(
        sums(&g1),
        (4, 24, 240, 48, 4, Some(1_700_000_000 + 5 * 3_600), 2)
    );
}

async fn access_usage_with_an_unknown_grant_rolls_back(db: Db) {
    seed_grants(&db).await;
    let store = db.store();
    let e = store
        .ingest_access_usage(vec![report("grt_1", 1, 5), report("grt_nope", 1, 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::NotFound(m) if m.contains("grt_nope")),
        "{e:?}"
    );
    assert_eq!(store.access_usage_reports("grt_1", 10).await.unwrap(), []);
    assert_eq!(
        sums(&store.grant("grt_1").await.unwrap().unwrap()),
        (0, 0, 0, 0, 0, None, 1)
    );
}

async fn access_usage_refuses_invalid_records(db: Db) {
    seed_grants(&db).await;
    let store = db.store();
    let mut bad = report("grt_1", 0, -1);
    bad.to_s = bad.from_s;
    bad.iss = String::new();
    bad.digest = "not hex".into();
    let e = store
        .ingest_access_usage(vec![report("grt_1", 1, 5), bad])
        .await
        .unwrap_err();
    let StoreError::Invalid(message) = &e else {
        panic!("{e:?}")
    };
    for field in ["records[1]", "iss", "seq", "to_s", "requests", "digest"] {
        assert!(message.contains(field), "{field} not in {message}");
    }
    assert!(!message.contains("records[0]"), "{message}");
    assert_eq!(store.access_usage_reports("grt_1", 10).await.unwrap(), []);
}

async fn access_usage_reports_cannot_be_updated_or_deleted(db: Db) {
    seed_grants(&db).await;
    let store = db.store();
    store
        .ingest_access_usage(vec![report("grt_1", 1, 5)])
        .await
        .unwrap();
    let e = db
        .raw("UPDATE access_usage_reports SET requests = 0")
        .await
        .expect_err("UPDATE on access_usage_reports must fail");
    assert!(e.contains("append-only"), "{e}");
    let e = db
        .raw("DELETE FROM access_usage_reports")
        .await
        .expect_err("DELETE on access_usage_reports must fail");
    assert!(e.contains("append-only"), "{e}");
    if db.is_postgres() {
        let e = db
            .raw("TRUNCATE access_usage_reports")
            .await
            .expect_err("TRUNCATE on access_usage_reports must fail");
        assert!(e.contains("append-only"), "{e}");
    }
    assert_eq!(
        store.access_usage_reports("grt_1", 10).await.unwrap(),
        [report("grt_1", 1, 5)]
    );
}
