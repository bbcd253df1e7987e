//! One module per subcommand, plus what they share: logging, config loading,
//! and the shutdown signal.

pub mod audit;
pub mod config_check;
pub mod demo;
pub mod demo_traffic;
pub mod emulate;
pub mod keys;
pub mod report;
pub mod route;
pub mod serve;

use anyhow::Context;
use std::path::Path;

/// Logs go to stderr (stdout is for command output). `ANYCLOUD_LOG` sets the
/// filter (default `info`); `ANYCLOUD_LOG_FORMAT=json` switches to JSON lines.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ANYCLOUD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("ANYCLOUD_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn load_config(path: &Path) -> anyhow::Result<anycloud_config::Config> {
    anycloud_config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))
}

pub async fn open_store(
    config: &anycloud_config::Config,
) -> anyhow::Result<std::sync::Arc<dyn anycloud_store::Store>> {
    anycloud_store::open(&config.store.url)
        .await
        .with_context(|| "cannot open the store (store.url)".to_string())
}

/// Starts the ledger writer and its sink; the caller drains it with [`drain_ledger`].
pub fn start_ledger(
    store: &std::sync::Arc<dyn anycloud_store::Store>,
) -> (
    std::sync::Arc<anycloud_ledger::LedgerWriter>,
    Vec<std::sync::Arc<dyn anycloud_server::outcome::OutcomeSink>>,
) {
    let writer = std::sync::Arc::new(anycloud_ledger::LedgerWriter::start(
        store.clone(),
        anycloud_ledger::WriterConfig::default(),
    ));
    let sink = anycloud_server::ledger_sink::LedgerSink::new(writer.clone());
    (writer, vec![std::sync::Arc::new(sink)])
}

/// After the server has finished its in-flight requests: commit every pending usage record.
pub async fn drain_ledger(writer: &anycloud_ledger::LedgerWriter) {
    let pending = writer.stats().pending;
    writer.close().await;
    let stats = writer.stats();
    tracing::info!(
        drained = pending,
        written = stats.written,
        lost = stats.lost,
        "ledger drained"
    );
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
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
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
