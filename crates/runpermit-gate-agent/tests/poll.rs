//! Polling the authority's status list: a tiny local authority serves signed lists; newer
//! ones are taken and kept on disk, older ones refused, across restarts.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::World;
use runpermit_gate::StatusError;
use runpermit_gate_agent::{Agent, RefreshError, Refreshed, poll_status};

/// What the local authority serves, and how often it was asked.
#[derive(Clone, Default)]
struct Authority {
    token: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

async fn status_list(State(authority): State<Authority>) -> String {
    authority.hits.fetch_add(1, Ordering::SeqCst);
    authority.token.lock().unwrap().clone()
}

/// Starts the authority on a free port; its base URL.
async fn start(authority: Authority) -> String {
    let app = Router::new()
        .route("/v1/status-list", get(status_list))
        .with_state(authority);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Waits (up to 20 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn newer_lists_are_kept_and_older_ones_refused() {
    let authority = Authority::default();
    let url = start(authority.clone()).await;
    let world = World::new(&url);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("status-list.jwt");
    let agent = Arc::new(world.bare_agent(dir.path()));
    *authority.token.lock().unwrap() = world.status_token(2);

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let poller = tokio::spawn(poll_status(
        Arc::clone(&agent),
        Duration::from_millis(20),
        async move {
            let _ = stopped.await;
        },
    ));
    until("version 2", || agent.status_version() == Some(2)).await;
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        world.status_token(2)
    );

    // The authority (or someone in between) now serves an older list: refused, every time.
    *authority.token.lock().unwrap() = world.status_token(1);
    let seen = authority.hits.load(Ordering::SeqCst);
    until("three more polls", || {
        authority.hits.load(Ordering::SeqCst) >= seen + 3
    })
    .await;
    assert_eq!(agent.status_version(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        world.status_token(2)
    );
    stop.send(()).unwrap();
    poller.await.unwrap();

    // After a restart, the kept list still bars the older one.
    let restarted = world.bare_agent(dir.path());
    assert_eq!(restarted.status_version(), Some(2));
    let refused = tokio::task::spawn_blocking(move || restarted.refresh_status())
        .await
        .unwrap();
    assert!(
        matches!(
            refused,
            Err(RefreshError::Refused(StatusError::Rollback {
                have: 2,
                got: 1
            }))
        ),
        "{refused:?}"
    );

    // A newer list is taken and replaces the file; the same one again changes nothing.
    let agent = world.bare_agent(dir.path());
    assert_eq!(
        agent.accept_status_token(&world.status_token(3)).unwrap(),
        Refreshed::Newer { version: 3 }
    );
    assert_eq!(
        agent.accept_status_token(&world.status_token(3)).unwrap(),
        Refreshed::Unchanged { version: 3 }
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        world.status_token(3)
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["status-list.jwt"],
        "no temporary files are left behind"
    );
}

#[tokio::test]
async fn unreachable_or_forged_lists_keep_the_held_one() {
    // An authority that is down.
    let app = Router::new().route(
        "/v1/status-list",
        get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let world = World::new(&url);
    let dir = tempfile::tempdir().unwrap();
    let agent: Arc<Agent> = world.agent(dir.path());
    let worker = Arc::clone(&agent);
    let failed = tokio::task::spawn_blocking(move || worker.refresh_status())
        .await
        .unwrap();
    assert!(
        matches!(failed, Err(RefreshError::Fetch { .. })),
        "{failed:?}"
    );
    assert_eq!(agent.status_version(), Some(1));

    // A list signed by another key is refused.
    let forger = runpermit_permit::SigningKey::from_seed(&[9; 32]);
    let claims =
        runpermit_permit::StatusListClaims::new(common::AUTHORITY, common::NOW, 60, 5, vec![]);
    let forged = runpermit_permit::sign_status_list(&claims, &forger);
    assert!(matches!(
        agent.accept_status_token(&forged),
        Err(RefreshError::Refused(StatusError::Verify(_)))
    ));
    assert_eq!(agent.status_version(), Some(1));
}
