//! Identity on both databases: organizations, members, tokens, signing keys and providers'
//! reporting keys.

mod common;

use common::{Db, expect_err, hash, member, org, seed, token};
use runpermit_store::{ProviderKey, Session, SigningKey, StoreError, Write};

common::suite!(
    organizations_members_and_tokens,
    authenticate_refuses_revoked_and_expired_tokens,
    revoke_token_twice_is_a_conflict,
    duplicate_token_hash,
    signing_keys_retire_once,
    provider_keys_insert_read_and_revoke_once,
    sessions_live_with_their_token_until_expiry_or_sign_out,
);

async fn organizations_members_and_tokens(db: Db) {
    let store = db.store();
    seed(store).await;
    assert_eq!(
        store.organization("o_dev").await.unwrap(),
        Some(org("o_dev", "developer", 20))
    );
    assert_eq!(store.organization("nope").await.unwrap(), None);
    let orgs = store.organizations().await.unwrap();
    assert_eq!(
        orgs.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["o_auth", "o_dev"]
    );
    assert_eq!(
        store.member("m_rev").await.unwrap(),
        Some(member("m_rev", "o_auth", "reviewer", 40))
    );
    assert_eq!(store.member("nope").await.unwrap(), None);
    let members = store.members("o_auth").await.unwrap();
    assert_eq!(
        members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["m_admin", "m_rev"]
    );
    assert!(store.members("nope").await.unwrap().is_empty());

    let mut t2 = token("tok_2", "m_admin", 2, Some(9_000));
    t2.created_at = 2_000;
    store
        .commit(vec![
            Write::InsertToken(t2.clone()),
            Write::InsertToken(token("tok_1", "m_admin", 1, None)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.tokens("m_admin").await.unwrap(),
        [token("tok_1", "m_admin", 1, None), t2.clone()]
    );
    assert!(store.tokens("m_rev").await.unwrap().is_empty());
    assert_eq!(store.token("tok_2").await.unwrap(), Some(t2));
    assert_eq!(store.token("nope").await.unwrap(), None);
    assert_eq!(store.organization_count().await.unwrap(), 2);
}

async fn authenticate_refuses_revoked_and_expired_tokens(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![
            Write::InsertToken(token("tok_forever", "m_app", 1, None)),
            Write::InsertToken(token("tok_expiring", "m_app", 2, Some(5_000))),
            Write::InsertToken(token("tok_revoked", "m_app", 3, None)),
        ])
        .await
        .unwrap();
    store
        .commit(vec![Write::RevokeToken {
            id: "tok_revoked".into(),
            at: 2_000,
        }])
        .await
        .unwrap();

    let principal = store
        .authenticate(&hash(1), 1_000_000)
        .await
        .unwrap()
        .expect("a valid token authenticates");
    assert_eq!(principal.member, member("m_app", "o_dev", "applicant", 50));
    assert_eq!(principal.org, org("o_dev", "developer", 20));
    assert_eq!(principal.token, token("tok_forever", "m_app", 1, None));

    assert!(store.authenticate(&hash(2), 4_999).await.unwrap().is_some());
    assert!(
        store.authenticate(&hash(2), 5_000).await.unwrap().is_none(),
        "expires_at is the first instant the token is refused"
    );
    assert!(store.authenticate(&hash(3), 1_500).await.unwrap().is_none());
    assert_eq!(
        store
            .token("tok_revoked")
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        Some(2_000)
    );
    assert!(store.authenticate(&hash(99), 0).await.unwrap().is_none());
}

async fn revoke_token_twice_is_a_conflict(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![Write::InsertToken(token("tok_1", "m_app", 1, None))])
        .await
        .unwrap();
    let revoke = |at| Write::RevokeToken {
        id: "tok_1".into(),
        at,
    };
    store.commit(vec![revoke(10)]).await.unwrap();
    let e = expect_err(store.commit(vec![revoke(20)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("already revoked")),
        "{e}"
    );
    assert_eq!(
        store.token("tok_1").await.unwrap().unwrap().revoked_at,
        Some(10)
    );
    let e = expect_err(
        store
            .commit(vec![Write::RevokeToken {
                id: "nope".into(),
                at: 1,
            }])
            .await,
    );
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
}

async fn duplicate_token_hash(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![Write::InsertToken(token("tok_1", "m_app", 7, None))])
        .await
        .unwrap();
    let e = expect_err(
        store
            .commit(vec![Write::InsertToken(token("tok_2", "m_admin", 7, None))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("hash")),
        "a repeated hash is a Duplicate that names the hash: {e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertToken(token("tok_1", "m_admin", 8, None))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("token id \"tok_1\"")),
        "a repeated id is a Duplicate that names the id: {e}"
    );
    assert!(store.tokens("m_admin").await.unwrap().is_empty());
    let e = expect_err(
        store
            .commit(vec![Write::InsertOrganization(org(
                "o_dev",
                "developer",
                1,
            ))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("o_dev")),
        "{e}"
    );
}

async fn signing_keys_retire_once(db: Db) {
    let store = db.store();
    let key = |kid: &str, byte: u8, at| SigningKey {
        kid: kid.into(),
        public_key: vec![byte; 32],
        created_at: at,
        retired_at: None,
    };
    store
        .commit(vec![
            Write::InsertSigningKey(key("k2", 0xff, 20)),
            Write::InsertSigningKey(key("k1", 0x00, 10)),
        ])
        .await
        .unwrap();
    let retire = |at| Write::RetireSigningKey {
        kid: "k1".into(),
        at,
    };
    store.commit(vec![retire(30)]).await.unwrap();
    assert_eq!(
        store.signing_keys().await.unwrap(),
        [
            SigningKey {
                retired_at: Some(30),
                ..key("k1", 0x00, 10)
            },
            key("k2", 0xff, 20)
        ]
    );
    let e = expect_err(store.commit(vec![retire(40)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("already retired")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::RetireSigningKey {
                kid: "nope".into(),
                at: 1,
            }])
            .await,
    );
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
    let e = expect_err(
        store
            .commit(vec![Write::InsertSigningKey(key("k1", 1, 50))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m.contains("k1")),
        "{e}"
    );
}

async fn provider_keys_insert_read_and_revoke_once(db: Db) {
    let store = db.store();
    seed(store).await;
    let key = |kid: &str, org_id: &str, at| ProviderKey {
        kid: kid.into(),
        org_id: org_id.into(),
        public_key: vec![at as u8; 32],
        created_at: at,
        revoked_at: None,
    };
    store
        .commit(vec![
            Write::InsertOrganization(org("o_prov", "provider", 60)),
            Write::InsertProviderKey(key("pk_b", "o_prov", 20)),
            Write::InsertProviderKey(key("pk_a", "o_prov", 20)),
            Write::InsertProviderKey(key("pk_0", "o_dev", 10)),
            Write::InsertProviderKey(key("pk_c", "o_prov", 5)),
        ])
        .await
        .unwrap();
    assert_eq!(
        store.provider_key("pk_a").await.unwrap(),
        Some(key("pk_a", "o_prov", 20))
    );
    assert_eq!(store.provider_key("nope").await.unwrap(), None);
    assert_eq!(
        store.provider_keys("o_prov").await.unwrap(),
        [
            key("pk_c", "o_prov", 5),
            key("pk_a", "o_prov", 20),
            key("pk_b", "o_prov", 20)
        ]
    );
    assert!(store.provider_keys("o_auth").await.unwrap().is_empty());

    let revoke = |kid: &str, at| Write::RevokeProviderKey {
        kid: kid.into(),
        at,
    };
    store.commit(vec![revoke("pk_a", 30)]).await.unwrap();
    assert_eq!(
        store.all_provider_keys().await.unwrap(),
        [
            key("pk_c", "o_prov", 5),
            key("pk_0", "o_dev", 10),
            ProviderKey {
                revoked_at: Some(30),
                ..key("pk_a", "o_prov", 20)
            },
            key("pk_b", "o_prov", 20)
        ]
    );
    let e = expect_err(store.commit(vec![revoke("pk_a", 40)]).await);
    assert!(
        matches!(e, StoreError::Conflict(ref m) if m.contains("\"pk_a\" is already revoked (at 30)")),
        "{e}"
    );
    let e = expect_err(store.commit(vec![revoke("nope", 40)]).await);
    assert!(
        matches!(e, StoreError::NotFound(ref m) if m.contains("nope")),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertProviderKey(key("pk_b", "o_prov", 50))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Duplicate(ref m) if m == "provider key kid \"pk_b\" already exists"),
        "{e}"
    );
    let e = expect_err(
        store
            .commit(vec![Write::InsertProviderKey(key("pk_x", "o_missing", 50))])
            .await,
    );
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("org_id \"o_missing\" names no organization")),
        "{e}"
    );
    assert_eq!(store.all_provider_keys().await.unwrap().len(), 4);
}

fn session(n: u64, token_id: &str, expires_at: i64) -> Session {
    Session {
        id_hash: hash(100 + n),
        token_id: token_id.into(),
        csrf: format!("{:032}", n),
        created_at: 1_000,
        expires_at,
        ended_at: None,
    }
}

async fn sessions_live_with_their_token_until_expiry_or_sign_out(db: Db) {
    let store = db.store();
    seed(store).await;
    store
        .commit(vec![
            Write::InsertToken(token("tok_a", "m_rev", 1, None)),
            Write::InsertToken(token("tok_b", "m_rev", 2, Some(3_000))),
            Write::InsertSession(session(1, "tok_a", 5_000)),
            Write::InsertSession(session(2, "tok_b", 9_000)),
            Write::InsertSession(session(3, "tok_a", 9_000)),
        ])
        .await
        .unwrap();
    let (principal, found) = store
        .session(&hash(101), 2_000)
        .await
        .unwrap()
        .expect("a session in force");
    assert_eq!(principal.member, member("m_rev", "o_auth", "reviewer", 40));
    assert_eq!(principal.token.id, "tok_a");
    assert_eq!(found, session(1, "tok_a", 5_000));
    assert!(
        store.session(&hash(101), 5_000).await.unwrap().is_none(),
        "expires_at is the first instant the session is refused"
    );
    assert!(
        store.session(&hash(102), 3_000).await.unwrap().is_none(),
        "a session dies with its token's expiry"
    );
    assert!(store.session(&hash(999), 2_000).await.unwrap().is_none());

    // Sign-out ends the session once; revoking the token ends every session of it.
    let end = |at| Write::EndSession {
        id_hash: hash(101),
        at,
    };
    store.commit(vec![end(2_500)]).await.unwrap();
    assert!(store.session(&hash(101), 2_600).await.unwrap().is_none());
    let e = expect_err(store.commit(vec![end(2_700)]).await);
    assert!(matches!(e, StoreError::Conflict(_)), "{e}");
    assert!(store.session(&hash(103), 2_600).await.unwrap().is_some());
    store
        .commit(vec![Write::RevokeToken {
            id: "tok_a".into(),
            at: 2_800,
        }])
        .await
        .unwrap();
    assert!(store.session(&hash(103), 2_900).await.unwrap().is_none());

    // A session for a token that does not exist, or with a weak anti-forgery token, is refused.
    let e = expect_err(
        store
            .commit(vec![Write::InsertSession(session(4, "tok_nope", 9_000))])
            .await,
    );
    assert!(!matches!(e, StoreError::Duplicate(_)), "{e}");
    let mut weak = session(5, "tok_b", 9_000);
    weak.csrf = "short".into();
    let e = expect_err(store.commit(vec![Write::InsertSession(weak)]).await);
    assert!(
        matches!(e, StoreError::Invalid(ref m) if m.contains("csrf")),
        "{e}"
    );
}
