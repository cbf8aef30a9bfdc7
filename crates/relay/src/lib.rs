//! Fullscript Lab Notifier's relay (`fullscript-notifier-relay`): the server
//! side that lets one Fullscript app registration serve many clinics. It
//! receives Fullscript's `lab_order.updated` webhooks, checks their
//! signature, strips patient data and stores each event durably in one
//! NATS JetStream stream (a subject per clinic, de-duplicated by event id)
//! before acknowledging it. Several relays share one JetStream cluster and
//! keep no other state.

pub mod broker;
pub mod config;
pub mod log;
pub mod push;
pub mod server;
pub mod webhook;

use std::sync::Arc;

pub use config::Config;
pub use server::{router, Relay};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Log(#[from] log::LogError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the HTTP server stopped: {0}")]
    Serve(std::io::Error),
}

/// Connect to NATS and serve until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| RelayError::Listen {
            addr: config.listen,
            source,
        })?;
    serve(config, listener, shutdown).await
}

/// Serve on a bound listener (tests bind port 0).
pub async fn serve(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    let log = log::EventLog::connect(&config.nats_urls, config.stream.clone()).await?;
    if let Err(e) = log.ensure_stream().await {
        // Not fatal: the relay says it is not ready and retries at the
        // first webhook (which is not acknowledged until it is stored).
        tracing::warn!(error = %e, "the JetStream stream is not there yet");
    }
    let relay: Arc<Relay> =
        Relay::new(config, log).map_err(|e| RelayError::Serve(std::io::Error::other(e)))?;
    tracing::info!(addr = ?listener.local_addr().ok(), "relay listening");
    axum::serve(
        listener,
        router(relay).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(RelayError::Serve)
}
