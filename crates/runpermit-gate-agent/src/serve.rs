//! Serving the router, over TLS (rustls with the ring provider, HTTP/1.1 and HTTP/2 by ALPN)
//! or plain HTTP, until a shutdown signal; and polling the authority's status list.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::{Agent, AgentError, Refreshed, router};

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers (HTTP/1.1).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections may take to finish after shutdown is signalled.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's certificate chain and private key, PEM files (as in a Kubernetes
/// `kubernetes.io/tls` Secret: `tls.crt`, `tls.key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, ALPN `h2` and
/// `http/1.1`) from PEM files.
pub fn tls_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, AgentError> {
    let tls = |path: &PathBuf, message: String| AgentError::Tls {
        path: path.clone(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls(&files.cert, format!("reading the certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(tls(&files.cert, "no certificate in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| tls(&files.key, format!("reading the private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&files.cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls(
                &files.key,
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves [`router`]`(agent)` on `listen` (TLS when `tls` is given) until `shutdown`
/// completes, then lets open connections finish (up to 10 s).
pub async fn serve(
    agent: Arc<Agent>,
    listen: SocketAddr,
    tls: Option<TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let config = tls.as_ref().map(tls_config).transpose()?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| AgentError::Bind {
            addr: listen,
            source,
        })?;
    serve_on(listener, router(agent), config, shutdown).await;
    Ok(())
}

/// Serves `app` on a bound `listener` (TLS when `tls` is given) until `shutdown` completes.
/// For callers that bind themselves (tests bind port 0).
pub async fn serve_on(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, tls = tls.is_some(), "runpermit gate serving");
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        match acceptor.clone() {
            Some(acceptor) => {
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            None => {
                tokio::spawn(async move {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("connections still open after the drain timeout; closing");
        }
    }
}

/// Fetches and accepts the authority's status list now and then every `every`, until
/// `shutdown` completes ([`Agent::refresh_status`], run on the blocking pool). Any error is
/// logged and the held list kept: refusing jobs when the list goes stale is the decision's
/// job.
pub async fn poll_status(
    agent: Arc<Agent>,
    every: Duration,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let worker = Arc::clone(&agent);
        let fetch = tokio::task::spawn_blocking(move || worker.refresh_status());
        tokio::select! {
            result = fetch => match result {
                Ok(Ok(Refreshed::Newer { version })) => {
                    tracing::info!(version, "status list accepted");
                }
                Ok(Ok(Refreshed::Unchanged { version })) => {
                    tracing::debug!(version, "status list unchanged");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, held = ?agent.status_version(),
                        freshness = ?agent.status_freshness(), "status list not updated");
                }
                Err(e) => tracing::error!(error = %e, "status list refresh panicked"),
            },
            () = &mut shutdown => return,
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = &mut shutdown => return,
        }
    }
}
