//! `run` and `load_agent`, the entry points of `runpermit gate serve`, from files on disk.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::{AUTHORITY, CLUSTER, World, config_text};
use runpermit_gate_agent::{AgentError, ServeOptions, TlsFiles, load_agent, run};

/// A gate configuration and its pinned JWKS in a temporary directory; the config's path.
fn files(world: &World, dir: &std::path::Path) -> PathBuf {
    let config = dir.join("gate.toml");
    std::fs::write(&config, config_text(AUTHORITY, &world.vkey)).unwrap();
    std::fs::write(
        dir.join("jwks.json"),
        serde_json::to_string(&world.jwks).unwrap(),
    )
    .unwrap();
    // The configuration names a reporting key; a service refuses one that does not exist.
    std::fs::write(
        dir.join("reporting-key.pem"),
        runpermit_permit::SigningKey::from_seed(&[3; 32])
            .to_pkcs8_pem()
            .as_str(),
    )
    .unwrap();
    config
}

#[test]
fn load_agent_reads_the_configuration_and_the_held_list() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = files(&world, dir.path());
    let agent = load_agent(&config, CLUSTER, None).unwrap();
    assert_eq!(agent.status_version(), None);
    assert_eq!(agent.status_file(), dir.path().join("status-list.jwt"));
    agent.accept_status_token(&world.status_token(4)).unwrap();
    assert_eq!(
        load_agent(&config, CLUSTER, None).unwrap().status_version(),
        Some(4)
    );

    let state = dir.path().join("state").join("held.jwt");
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let agent = load_agent(&config, CLUSTER, Some(state.clone())).unwrap();
    assert_eq!(agent.status_file(), state);
    assert_eq!(agent.status_version(), None);

    let err = load_agent(&config, "eu-west-9", None).unwrap_err();
    assert!(matches!(err, AgentError::UnknownCluster { .. }));
    assert!(err.is_usage());
    assert!(err.to_string().contains("us-east-1"), "{err}");
    std::fs::write(&config, "authority_url = 1").unwrap();
    let err = load_agent(&config, CLUSTER, None).unwrap_err();
    assert!(matches!(err, AgentError::Config { .. }), "{err}");
}

#[tokio::test]
async fn run_serves_until_shutdown_and_refuses_bad_tls_before_listening() {
    let world = World::new(AUTHORITY);
    let dir = tempfile::tempdir().unwrap();
    let config = files(&world, dir.path());

    let mut options = ServeOptions::new(&config, CLUSTER, "127.0.0.1:0".parse().unwrap());
    options.tls = Some(TlsFiles {
        cert: dir.path().join("missing.crt"),
        key: dir.path().join("missing.key"),
    });
    let err = run(options, async {}).await.unwrap_err();
    assert!(matches!(err, AgentError::Tls { .. }), "{err}");

    // A free port (bound, then released), plain HTTP on loopback.
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut options = ServeOptions::new(&config, CLUSTER, addr);
    options.poll_every = Duration::from_secs(3600);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(options, async move {
        let _ = stopped.await;
    }));
    let health = tokio::task::spawn_blocking(move || {
        for _ in 0..200 {
            if let Ok(mut response) = ureq::get(format!("http://{addr}/healthz")).call() {
                return response.body_mut().read_to_string().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the gate did not answer on {addr}");
    })
    .await
    .unwrap();
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["cluster"], CLUSTER);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
