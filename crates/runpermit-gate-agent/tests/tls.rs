//! The webhook over TLS, as kube-apiserver calls it: a self-signed certificate made here
//! (rcgen, ring), the server from `serve_on`, and a rustls client that trusts only that
//! certificate, over HTTP/2 (negotiated by ALPN, as the apiserver does) and HTTP/1.1.

mod common;

use std::sync::Arc;

use axum::body::Bytes;
use common::{AUTHORITY, CLUSTER, World};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use runpermit_gate_agent::{TlsFiles, router, serve_on, tls_config};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio_rustls::TlsConnector;

/// A client for `cert_der` only, offering `alpn`.
fn connector(cert_der: &[u8], alpn: &[u8]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der.to_vec().into()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    TlsConnector::from(Arc::new(config))
}

/// POSTs `body` to `path` over TLS with `alpn`; the negotiated protocol, status and body.
async fn post(
    addr: std::net::SocketAddr,
    connector: &TlsConnector,
    path: &str,
    body: Vec<u8>,
) -> (Vec<u8>, u16, Value) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let alpn = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let request = Request::post(format!("https://localhost{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let io = TokioIo::new(tls);
    let response = if alpn == b"h2" {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(request).await.unwrap()
    };
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (alpn, status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn the_webhook_answers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let files = TlsFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    std::fs::write(&files.cert, generated.cert.pem()).unwrap();
    std::fs::write(&files.key, generated.signing_key.serialize_pem()).unwrap();
    let config = tls_config(&files).unwrap();

    let world = World::new(AUTHORITY);
    let agent = world.agent(dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(
        listener,
        router(agent),
        Some(config),
        async move {
            let _ = stopped.await;
        },
    ));

    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "3f1c2a5e-tls", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE", "userInfo": {"username": "alice"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"},
                "spec": {"containers": [{"name": "t", "resources": {"limits": {"nvidia.com/gpu": "8"}}}]}}
        }
    });
    let h2 = connector(generated.cert.der(), b"h2");
    let (alpn, status, answer) = post(
        addr,
        &h2,
        "/v1/admission",
        serde_json::to_vec(&review).unwrap(),
    )
    .await;
    assert_eq!(alpn, b"h2");
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["uid"], "3f1c2a5e-tls");
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["code"], 403);

    let h1 = connector(generated.cert.der(), b"http/1.1");
    let job = json!({"cluster": CLUSTER, "accelerators": 8, "hours": 1.0});
    let (alpn, status, decision) =
        post(addr, &h1, "/v1/decide", serde_json::to_vec(&job).unwrap()).await;
    assert_eq!(alpn, b"http/1.1");
    assert_eq!(status, 200);
    assert_eq!(decision["code"], "below_threshold");

    // A client that trusts another certificate gets no answer.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let refused = connector(other.cert.der(), b"h2")
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(refused.is_err());

    stop.send(()).unwrap();
    server.await.unwrap();
}

#[test]
fn unusable_tls_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
    };
    let err = tls_config(&files).unwrap_err().to_string();
    assert!(err.contains("tls.crt"), "{err}");
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(&files.cert, generated.cert.pem()).unwrap();
    std::fs::write(&files.key, other.signing_key.serialize_pem()).unwrap();
    let err = tls_config(&files).unwrap_err().to_string();
    assert!(err.contains("does not fit"), "{err}");
}
