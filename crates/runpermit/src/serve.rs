//! `runpermit serve`: the licensing authority.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;

/// Settings of the authority's service.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        env = "RUNPERMIT_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    listen: SocketAddr,
}

/// Runs the service until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUNPERMIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "runpermit authority listening");
        println!("runpermit authority listening on http://{addr}");
        runpermit_authority::serve(listener, shutdown_signal())
            .await
            .context("serving HTTP")
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        // If the handler cannot be installed the service runs until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
