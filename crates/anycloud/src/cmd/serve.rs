//! `anycloud serve --config F`: the gateway.

use std::path::Path;
use std::process::ExitCode;

pub async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path)?;
    for w in anycloud_config::warnings::warnings(&config) {
        tracing::warn!(key = %w.key, "{}", w.message);
    }
    let store = super::open_store(&config).await?;
    let listen = config.server.listen.clone();
    let (ledger, sinks) = super::start_ledger(&store, &config.store);
    let state = anycloud_server::AppState::build_with_sinks(config, store, sinks).await?;
    state.metrics.watch_ledger(ledger.clone());
    state.governance.bookkeeping.register(ledger.gauge());
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "anycloud listening");
    // Stops accepting on the signal and returns once in-flight requests have finished
    // (their trackers have handed every attempt to the ledger); then drain the ledger.
    let served = anycloud_server::serve(listener, state, super::shutdown_signal()).await;
    super::drain_ledger(&ledger).await;
    served?;
    Ok(ExitCode::SUCCESS)
}
