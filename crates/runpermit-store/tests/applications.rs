//! Applications on both databases: applications, reviews, permits and exemption receipts.

mod common;

use common::{
    Db, application, audit, expect_err, member, org, permit, review, seed, seed_application,
};
use runpermit_store::{Application, Permit, Receipt, StoreError, Write};

common::suite!(
    applications_newest_first_and_filtered,
    update_application_is_optimistic,
    concurrent_updates_of_one_application,
    reviews_oldest_first,
    permits_issue_only_from_intent,
    one_receipt_per_application,
);

async fn applications_newest_first_and_filtered(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![
            Write::InsertOrganization(org("o_dev2", "developer", 60)),
            Write::InsertMember(member("m_app2", "o_dev2", "applicant", 70)),
            Write::InsertApplication(application("app_a", "o_dev", "m_app", 100)),
            Write::InsertApplication(application("app_c", "o_dev", "m_app", 300)),
            Write::InsertApplication(application("app_b", "o_dev2", "m_app2", 200)),
        ])
        .await
        .unwrap();
    let ids = |apps: Vec<Application>| apps.into_iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.applications(None).await.unwrap()),
        ["app_c", "app_b", "app_a"]
    );
    assert_eq!(
        ids(store.applications(Some("o_dev")).await.unwrap()),
        ["app_c", "app_a"]
    );
    assert_eq!(
        ids(store.applications(Some("o_dev2")).await.unwrap()),
        ["app_b"]
    );
    assert!(store.applications(Some("nope")).await.unwrap().is_empty());
    assert_eq!(
        store.application("app_b").await.unwrap(),
        Some(application("app_b", "o_dev2", "m_app2", 200))
    );
    assert_eq!(store.application("nope").await.unwrap(), None);
}

async fn update_application_is_optimistic(db: Db) {
    let store = db.store();
    seed_application(store).await;
    let read = store.application("app_1").await.unwrap().unwrap();
    assert_eq!(read.version, 1);

    let mut submitted = read.clone();
    submitted.status = "submitted".parse().expect("a status");
    submitted.tier = "full".into();
    submitted.decision = "none".into();
    submitted.approvals_required = 2;
    submitted.plan_json = r#"{"v":2}"#.into();
    submitted.plan_digest = "sha256:02".into();
    submitted.estimate_json = r#"{"flop":2e26}"#.into();
    submitted.policy_version = "policy/2".into();
    submitted.updated_at = 500;
    // Immutable columns are ignored.
    submitted.org_id = "o_auth".into();
    submitted.created_by = "m_admin".into();
    submitted.created_at = 1;
    store
        .commit(vec![Write::UpdateApplication {
            application: submitted.clone(),
            expected_version: 1,
        }])
        .await
        .unwrap();
    let stored = store.application("app_1").await.unwrap().unwrap();
    assert_eq!(
        stored,
        Application {
            org_id: "o_dev".into(),
            created_by: "m_app".into(),
            created_at: 100,
            version: 2,
            ..submitted.clone()
        }
    );

    // A second writer that also read version 1 loses.
    let mut stale = read.clone();
    stale.status = "withdrawn".parse().expect("a status");
    let e = expect_err(
        store
            .commit(vec![Write::UpdateApplication {
                application: stale,
                expected_version: 1,
            }])
            .await,
    );
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("expected version 1") && m.contains("stored version 2")),
        "{e}"
    );
    assert_eq!(store.application("app_1").await.unwrap().unwrap(), stored);

    let e = expect_err(
        store
            .commit(vec![Write::UpdateApplication {
                application: application("nope", "o_dev", "m_app", 1),
                expected_version: 1,
            }])
            .await,
    );
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
}

async fn concurrent_updates_of_one_application(db: Db) {
    seed_application(db.store()).await;
    let other = db.reopen().await;
    let read = db.store().application("app_1").await.unwrap().unwrap();
    let update = |status: &str| {
        let mut a = read.clone();
        a.status = status.parse().expect("a status");
        vec![
            Write::UpdateApplication {
                application: a,
                expected_version: read.version,
            },
            Write::InsertAudit(audit("application.update", "application/app_1", 1)),
        ]
    };
    let (first, second) = tokio::join!(
        db.store().commit(update("submitted")),
        other.commit(update("withdrawn"))
    );
    let conflicts = [&first, &second]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
        .count();
    assert!(
        first.is_ok() != second.is_ok() && conflicts == 1,
        "exactly one of two concurrent updates wins: {first:?} {second:?}"
    );
    let stored = db.store().application("app_1").await.unwrap().unwrap();
    assert_eq!(stored.version, 2);
    let winner = if first.is_ok() {
        "submitted"
    } else {
        "withdrawn"
    };
    assert_eq!(stored.status.as_str(), winner);
    assert_eq!(
        db.store().audit(None, 0, 10).await.unwrap().len(),
        1,
        "the loser's audit event was rolled back with it"
    );
}

async fn reviews_oldest_first(db: Db) {
    let store = db.store();
    seed_application(store).await;
    let mut deny = review("rev_b", "app_1", 200);
    deny.decision = "deny".into();
    store
        .commit(vec![
            Write::InsertReview(deny.clone()),
            Write::InsertReview(review("rev_a", "app_1", 100)),
            Write::InsertReview(review("rev_c", "app_1", 200)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.reviews("app_1").await.unwrap(),
        [
            review("rev_a", "app_1", 100),
            deny,
            review("rev_c", "app_1", 200)
        ]
    );
    assert!(store.reviews("nope").await.unwrap().is_empty());
}

async fn permits_issue_only_from_intent(db: Db) {
    let store = db.store();
    seed_application(store).await;
    store
        .commit(vec![
            Write::InsertPermit(permit("p_2", "app_1", 200)),
            Write::InsertPermit(permit("p_1", "app_1", 100)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.permit("p_1").await.unwrap(),
        Some(permit("p_1", "app_1", 100))
    );
    assert_eq!(store.permit("nope").await.unwrap(), None);

    let issue = |id: &str, token: &str, at| Write::IssuePermit {
        id: id.into(),
        token: token.into(),
        issued_at: at,
    };
    store
        .commit(vec![issue("p_1", "eyJ.a.b", 150)])
        .await
        .unwrap();
    let pending: Vec<String> = store
        .pending_permits()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(pending, ["p_2"], "only intents are pending");
    let issued = store.permit("p_1").await.unwrap().unwrap();
    assert_eq!(
        issued,
        Permit {
            status: "issued".parse().expect("a status"),
            token: Some("eyJ.a.b".into()),
            issued_at: Some(150),
            ..permit("p_1", "app_1", 100)
        }
    );
    let e = expect_err(store.commit(vec![issue("p_1", "eyJ.c.d", 160)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("issued")),
        "{e}"
    );
    assert_eq!(store.permit("p_1").await.unwrap().unwrap(), issued);
    let e = expect_err(store.commit(vec![issue("nope", "eyJ.c.d", 160)]).await);
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");

    let ids: Vec<String> = store
        .permits_for_application("app_1")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["p_1", "p_2"]);
    assert!(
        store
            .permits_for_application("nope")
            .await
            .unwrap()
            .is_empty()
    );

    // An issued permit can be inserted directly when it carries its token.
    let mut direct = permit("p_3", "app_1", 300);
    direct.status = "issued".parse().expect("a status");
    direct.token = Some("eyJ.e.f".into());
    direct.issued_at = Some(300);
    store
        .commit(vec![Write::InsertPermit(direct.clone())])
        .await
        .unwrap();
    assert_eq!(store.permit("p_3").await.unwrap(), Some(direct));
}

async fn one_receipt_per_application(db: Db) {
    let store = db.store();
    seed_application(store).await;
    assert_eq!(store.receipt_for_application("app_1").await.unwrap(), None);
    let receipt = Receipt {
        id: "rcpt_1".into(),
        application_id: "app_1".into(),
        org_id: "o_dev".into(),
        token: "eyJ.r.s".into(),
        created_at: 123,
    };
    store
        .commit(vec![Write::InsertReceipt(receipt.clone())])
        .await
        .unwrap();
    assert_eq!(
        store.receipt_for_application("app_1").await.unwrap(),
        Some(receipt.clone())
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertReceipt(Receipt {
                id: "rcpt_2".into(),
                ..receipt
            })])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("already has an exemption receipt")),
        "{e}"
    );
}
