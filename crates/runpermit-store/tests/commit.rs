//! `commit` on both databases: a batch is validated first, then applied all or nothing.

mod common;

use common::{
    Db, application, audit, expect_err, member, org, permit, review, seed, seed_application, token,
};
use runpermit_store::{AuditEvent, Idempotency, Receipt, SigningKey, StoreError, Write};

common::suite!(
    batch_is_all_or_nothing,
    missing_references_are_invalid,
    invalid_writes_are_refused_before_the_database,
);

async fn batch_is_all_or_nothing(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![Write::InsertToken(token("tok_1", "m_app", 1, None))])
        .await
        .unwrap();
    let before = store.audit(None, 0, 100).await.unwrap();

    // Every kind of write, then one that violates a constraint.
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertOrganization(org("o_new", "provider", 1)),
                Write::InsertMember(member("m_new", "o_new", "provider_operator", 1)),
                Write::InsertToken(token("tok_new", "m_new", 2, None)),
                Write::RevokeToken {
                    id: "tok_1".into(),
                    at: 5,
                },
                Write::InsertApplication(application("app_new", "o_new", "m_new", 1)),
                Write::UpdateApplication {
                    application: application("app_new", "o_new", "m_new", 1),
                    expected_version: 1,
                },
                Write::InsertReview(review("rev_new", "app_new", 1)),
                Write::InsertPermit(permit("p_new", "app_new", 1)),
                Write::IssuePermit {
                    id: "p_new".into(),
                    token: "eyJ".into(),
                    issued_at: 2,
                },
                Write::InsertReceipt(Receipt {
                    id: "rcpt_new".into(),
                    application_id: "app_new".into(),
                    org_id: "o_new".into(),
                    token: "eyJ".into(),
                    created_at: 1,
                }),
                Write::InsertSigningKey(SigningKey {
                    kid: "k_new".into(),
                    public_key: vec![1; 32],
                    created_at: 1,
                    retired_at: None,
                }),
                Write::RetireSigningKey {
                    kid: "k_new".into(),
                    at: 2,
                },
                Write::InsertAudit(audit("organization.create", "organization/o_new", 1)),
                Write::ReserveIdempotency(Idempotency {
                    principal_id: "m_new".into(),
                    key: "k".into(),
                    method_path: "POST /v1/x".into(),
                    request_hash: "h".into(),
                    status: Idempotency::RESERVED,
                    response_json: String::new(),
                    created_at: 1,
                }),
                Write::AnswerIdempotency {
                    principal_id: "m_new".into(),
                    key: "k".into(),
                    reserved_at: 1,
                    status: 200,
                    response_json: "null".into(),
                },
                // The hash of tok_1: a unique violation at the very end.
                Write::InsertToken(token("tok_dup", "m_new", 1, None)),
            ])
            .await,
    );
    assert!(matches!(e, StoreError::Duplicate(_)), "{e}");

    assert_eq!(store.organization("o_new").await.unwrap(), None);
    assert_eq!(store.organization_count().await.unwrap(), 2);
    assert_eq!(store.member("m_new").await.unwrap(), None);
    assert_eq!(store.token("tok_new").await.unwrap(), None);
    assert_eq!(
        store.token("tok_1").await.unwrap().unwrap().revoked_at,
        None
    );
    assert_eq!(store.application("app_new").await.unwrap(), None);
    assert!(store.reviews("app_new").await.unwrap().is_empty());
    assert_eq!(store.permit("p_new").await.unwrap(), None);
    assert_eq!(
        store.receipt_for_application("app_new").await.unwrap(),
        None
    );
    assert!(store.signing_keys().await.unwrap().is_empty());
    assert_eq!(store.audit(None, 0, 100).await.unwrap(), before);
    assert_eq!(store.idempotency("m_new", "k").await.unwrap(), None);

    // The store is still usable, and the same batch without the bad write commits.
    store
        .commit(vec![
            Write::InsertOrganization(org("o_new", "provider", 1)),
            Write::InsertAudit(audit("organization.create", "organization/o_new", 1)),
        ])
        .await
        .unwrap();
    assert_eq!(store.organization_count().await.unwrap(), 3);
    assert_eq!(
        store.audit(None, 0, 100).await.unwrap().len(),
        before.len() + 1
    );
}

async fn missing_references_are_invalid(db: Db) {
    let store = db.store();
    seed_application(store).await;
    let cases = vec![
        (
            Write::InsertMember(member("m_x", "o_missing", "admin", 1)),
            "org_id \"o_missing\"",
        ),
        (
            Write::InsertToken(token("tok_x", "m_missing", 5, None)),
            "member_id \"m_missing\"",
        ),
        (
            Write::InsertApplication(application("app_x", "o_missing", "m_app", 1)),
            "org_id \"o_missing\"",
        ),
        (
            Write::InsertReview(review("rev_x", "app_missing", 1)),
            "application_id \"app_missing\"",
        ),
        (
            Write::InsertPermit(permit("p_x", "app_missing", 1)),
            "application_id \"app_missing\"",
        ),
        (
            Write::InsertReceipt(Receipt {
                id: "rcpt_x".into(),
                application_id: "app_missing".into(),
                org_id: "o_dev".into(),
                token: "eyJ".into(),
                created_at: 1,
            }),
            "application_id \"app_missing\"",
        ),
    ];
    for (write, names) in cases {
        let described = write.describe();
        let e = expect_err(
            store
                .commit(vec![Write::InsertAudit(audit("x", "x/1", 1)), write])
                .await,
        );
        assert!(
            matches!(e, StoreError::Invalid(ref m) if m.contains(names)),
            "{described}: {e}"
        );
    }
    assert!(store.audit(None, 0, 100).await.unwrap().is_empty());
}

async fn invalid_writes_are_refused_before_the_database(db: Db) {
    let store = db.store();
    seed(store).await;
    let mut bad_token = token("tok_x", "m_app", 1, None);
    bad_token.hash = "NOT-HEX".into();
    let mut bad_permit = permit("p_x", "app_x", 1);
    bad_permit.token = Some("eyJ".into());
    let e = expect_err(
        store
            .commit(vec![
                Write::InsertOrganization(org("", "developer", 1)),
                Write::InsertMember(member("m_x", "", "admin", 1)),
                Write::InsertToken(bad_token),
                Write::InsertPermit(bad_permit),
                Write::InsertAudit(AuditEvent {
                    details_json: "{not json".into(),
                    ..audit("a", "s", 1)
                }),
            ])
            .await,
    );
    let StoreError::Invalid(message) = e else {
        panic!("expected Invalid, got {e}");
    };
    for needle in [
        "writes[0] (InsertOrganization ) id: must not be empty",
        "writes[1] (InsertMember m_x) org_id: must not be empty",
        "writes[2] (InsertToken tok_x) hash: must be the lowercase hex SHA-256",
        "writes[3] (InsertPermit p_x) token, issued_at: must both be None for an intent",
        "writes[4] (InsertAudit a s) details_json: must be JSON text",
    ] {
        assert!(message.contains(needle), "missing {needle:?} in {message}");
    }
    assert_eq!(store.organization("o_x").await.unwrap(), None);
    let e = store.audit(None, 0, 0).await.unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    store
        .commit(Vec::new())
        .await
        .expect("an empty batch is a no-op");
}
