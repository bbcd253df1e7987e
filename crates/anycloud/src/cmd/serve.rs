//! `anycloud serve --config F`: the gateway.

use std::path::Path;
use std::process::ExitCode;

pub async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path)?;
    let store = super::open_store(&config).await?;
    let listen = config.server.listen.clone();
    let state = anycloud_server::AppState::build(config, store).await?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "anycloud listening");
    anycloud_server::serve(listener, state, super::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}
