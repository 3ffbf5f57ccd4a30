//! Test support: an authority over a fresh database with a clock the test controls, and
//! members of every kind with their tokens. Used by this crate's tests and the CLI's.

use std::sync::Arc;

use runpermit_permit::SigningKey;
use runpermit_policy::Policy;
use runpermit_store::{Member, Organization, Token, Write};

use crate::domain::clock::FixedClock;
use crate::domain::ids::{new_id, new_token_secret, token_hash};
use crate::http::state::AppState;

/// 2026-12-01T00:00:00Z in unix milliseconds: tests start here.
pub const T0_MS: i64 = 1_796_083_200_000;

/// A test authority.
#[derive(Debug)]
pub struct TestAuthority {
    /// Its state (use with [`crate::router`]).
    pub state: AppState,
    /// Its clock.
    pub clock: Arc<FixedClock>,
}

impl TestAuthority {
    /// A fresh authority on `database_url` (`sqlite::memory:` when `None`), migrated, with a
    /// new signing key registered.
    pub async fn new(database_url: Option<&str>) -> TestAuthority {
        Self::with_interval(database_url, std::time::Duration::from_millis(20)).await
    }

    /// As [`TestAuthority::new`], sequencing the log every `interval` when idle.
    pub async fn with_interval(
        database_url: Option<&str>,
        interval: std::time::Duration,
    ) -> TestAuthority {
        Self::with_log(
            database_url,
            crate::domain::log::LogService::new(
                runpermit_log::LogKey::generate("authority.test/log").expect("a log key"),
                interval,
            ),
        )
        .await
    }

    /// As [`TestAuthority::new`], with the log service `log` (its key, interval and
    /// witnesses).
    pub async fn with_log(
        database_url: Option<&str>,
        log: crate::domain::log::LogService,
    ) -> TestAuthority {
        let store = runpermit_store::open(database_url.unwrap_or("sqlite::memory:"))
            .await
            .expect("opening the test store");
        store.migrate().await.expect("migrating the test store");
        let signer = SigningKey::generate();
        let clock = Arc::new(FixedClock::at_ms(T0_MS));
        store
            .commit(vec![Write::InsertSigningKey(runpermit_store::SigningKey {
                kid: signer.kid().to_owned(),
                public_key: signer.public().as_bytes().to_vec(),
                created_at: T0_MS,
                retired_at: None,
            })])
            .await
            .expect("registering the key");
        TestAuthority {
            state: AppState {
                authority: crate::domain::Authority {
                    store,
                    clock: clock.clone(),
                    policy: Arc::new(Policy::builtin().clone()),
                    signer: Arc::new(signer),
                    issuer: "https://authority.test".to_owned(),
                    log: Arc::new(log),
                    provider_keys: Default::default(),
                    limits: Default::default(),
                },
                metrics: None,
            },
            clock,
        }
    }

    /// Creates an organization (or reuses `org_id`) and a member with `role`; returns the
    /// organization id, member id and a token secret.
    pub async fn member(
        &self,
        org: (&str, &str),
        kind: &str,
        role: &str,
    ) -> (String, String, String) {
        let (org_id, org_name) = org;
        let store = &self.state.store;
        let mut writes = Vec::new();
        if store
            .organization(org_id)
            .await
            .expect("reading an org")
            .is_none()
        {
            writes.push(Write::InsertOrganization(Organization {
                id: org_id.to_owned(),
                name: org_name.to_owned(),
                kind: kind.parse().expect("an organization kind"),
                created_at: T0_MS,
            }));
        }
        let member = Member {
            id: new_id("mem"),
            org_id: org_id.to_owned(),
            name: format!("{role} of {org_name}"),
            role: role.parse().expect("a role"),
            created_at: T0_MS,
        };
        let secret = new_token_secret().expect("random");
        writes.push(Write::InsertMember(member.clone()));
        writes.push(Write::InsertToken(Token {
            id: new_id("tok"),
            member_id: member.id.clone(),
            hash: token_hash(&secret),
            label: "test".to_owned(),
            created_at: T0_MS,
            expires_at: None,
            revoked_at: None,
        }));
        store.commit(writes).await.expect("creating a member");
        (org_id.to_owned(), member.id, secret)
    }
}
