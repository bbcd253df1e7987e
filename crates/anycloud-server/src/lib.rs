//! The gateway's HTTP server.
//!
//! [`serve`] is the one entry point: `main`, `anycloud demo` and the tests
//! all call it with a bound listener, a built [`AppState`] and a shutdown
//! future. The request path is drawn at the top of [`app`].

// ApiError carries the route decisions for its headers; it is built once per
// failed request, so its size is not worth boxing.
#![allow(clippy::result_large_err)]

pub mod access_log;
pub mod admin;
pub mod admin_auth;
pub mod affinity;
pub mod app;
pub mod auth;
pub mod body;
pub mod cloud_state;
pub mod cluster;
pub mod dispatch;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod governance;
pub mod health;
pub mod ingress;
#[cfg(test)]
mod layering;
pub mod ledger_sink;
pub mod mcp;
pub mod metrics;
pub mod outcome;
pub mod request_id;
pub mod request_scope;
pub mod residency;
pub mod state;
pub mod telemetry;
pub mod ui;

pub use error::ApiError;
pub use state::{AppState, StartError};

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the gateway on `listener` until `shutdown` resolves, then finishes
/// in-flight requests and drains the audit and budget writers.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let purger = ingress::responses::spawn_purger(state.clone());
    // One shutdown signal for the main and the metrics listener.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let metrics_server = match &state.config.server.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(addr = %listener.local_addr()?, "metrics listener (no auth)");
            let mut rx = stop_rx.clone();
            Some(tokio::spawn(serve_metrics(
                listener,
                state.clone(),
                async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                },
            )))
        }
        None => None,
    };
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let app = app::router(state.clone());
    // Nagle off: each SSE event must leave at once, not wait for the
    // client's delayed ACK (measured: +180 ms p50 on streams without it).
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    // MCP sessions hold SSE streams open: end them when shutdown begins, or graceful
    // shutdown would wait for clients to hang up.
    let mcp_sessions = state.mcp.shutdown_token();
    // The peer address feeds the failed-admin-auth limiter (`admin_auth`).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            mcp_sessions.cancel();
        })
        .await;
    purger.abort();
    state.mcp.shutdown().await;
    if let Some(m) = metrics_server {
        m.abort();
    }
    // In-flight requests have finished: write every queued audit entry and spend record.
    state.governance.flush().await;
    served
}

/// Serves only `GET /metrics`, without auth, on `listener` until `shutdown` resolves:
/// the internal listener of `server.metrics_listen`, for a Prometheus that should not
/// hold a token. Everything else there is a 404.
pub async fn serve_metrics(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(health::open_metrics))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
