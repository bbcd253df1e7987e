//! One module per subcommand, plus what they share: logging, config loading,
//! and the shutdown signal.

pub mod audit;
pub mod config_check;
pub mod demo;
pub mod demo_console;
pub mod demo_tools;
pub mod demo_traffic;
pub mod emulate;
pub mod keys;
pub mod migrate;
pub mod reconcile;
pub mod report;
pub mod residency;
pub mod risk;
pub mod route;
pub mod serve;
pub mod simulate;
pub mod store;

use anyhow::Context;
use std::path::Path;

/// Logs go to stderr (stdout is for command output). `ANYCLOUD_LOG` sets the
/// filter (default `info`, with the MCP SDK's own `rmcp` target at `warn`). The format is `text` unless `--log-format`,
/// `ANYCLOUD_LOG_FORMAT` or `server.log_format` (in that order) say `json`:
/// one JSON object per line (`timestamp`, `level`, `target`, `fields`).
///
/// With `[telemetry] otlp_endpoint` set (serve only), spans are exported over
/// OTLP/HTTP too; the returned exporter must be shut down to flush them.
///
/// `demo`: access-log lines go to the demo's file and are counted for its summary line
/// (`demo_console`), not printed.
pub fn init_logging(
    flag: Option<anycloud_config::LogFormat>,
    configured: anycloud_config::LogFormat,
    telemetry: Option<&anycloud_config::TelemetryConfig>,
    demo: bool,
) -> Option<anycloud_server::telemetry::export::TraceExport> {
    use anycloud_config::LogFormat;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let mut filter =
        // rmcp logs every MCP session and message at info: warnings only by default.
        EnvFilter::try_from_env("ANYCLOUD_LOG").unwrap_or_else(|_| EnvFilter::new("info,rmcp=warn"));
    let demo_layers = demo.then(|| {
        if let Ok(off) = format!("{}=off", demo_console::ACCESS_TARGET).parse() {
            filter = std::mem::take(&mut filter).add_directive(off);
        }
        let file = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(demo_console::AccessFile)
            .with_filter(
                tracing_subscriber::filter::Targets::new()
                    .with_target(demo_console::ACCESS_TARGET, tracing::Level::INFO),
            );
        file.and_then(demo_console::Counter)
    });
    let env = match std::env::var("ANYCLOUD_LOG_FORMAT").as_deref() {
        Ok("json") => Some(LogFormat::Json),
        Ok("text") => Some(LogFormat::Text),
        _ => None,
    };
    let format = flag.or(env).unwrap_or(configured);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Json => fmt
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let mut startup_error = None;
    let (export, otel) = match telemetry.map(anycloud_server::telemetry::export::TraceExport::start)
    {
        Some(Ok(Some((export, tracer)))) => (
            Some(export),
            Some(anycloud_server::telemetry::export::layer(tracer)),
        ),
        Some(Err(e)) => {
            startup_error = Some(e);
            (None, None)
        }
        _ => (None, None),
    };
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .with(demo_layers)
        .init();
    if let Some(e) = startup_error {
        tracing::error!(error = %e, "traces will not be exported");
    }
    export
}

pub fn load_config(path: &Path) -> anyhow::Result<anycloud_config::Config> {
    anycloud_config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))
}

/// Opens the configured store and applies pending migrations, or with
/// `store.auto_migrate = false` refuses to go on while any are pending. With
/// `[store.content]`, each content store is opened the same way and the main store is
/// wrapped so that content goes to the tenant's jurisdiction
/// (`anycloud_store::ResidentStore`).
pub async fn open_store(
    config: &anycloud_config::Config,
) -> anyhow::Result<std::sync::Arc<dyn anycloud_store::Store>> {
    let main = open_one(config, "store.url", &config.store.url).await?;
    if config.store.content.is_empty() {
        return Ok(main);
    }
    let mut content = std::collections::BTreeMap::new();
    for (j, url) in &config.store.content {
        let name = format!("store.content.{j}");
        content.insert(j.clone(), open_one(config, &name, url).await?);
    }
    Ok(std::sync::Arc::new(anycloud_store::ResidentStore::new(
        main, content,
    )))
}

/// Every store the config names: `("store.url", main)`, then `("store.content.<j>", url)`.
pub fn store_urls(config: &anycloud_config::Config) -> Vec<(String, &str)> {
    std::iter::once(("store.url".to_owned(), config.store.url.as_str()))
        .chain(
            config
                .store
                .content
                .iter()
                .map(|(j, url)| (format!("store.content.{j}"), url.as_str())),
        )
        .collect()
}

/// One store (`name` is its config key, for errors: never the URL).
async fn open_one(
    config: &anycloud_config::Config,
    name: &str,
    url: &str,
) -> anyhow::Result<std::sync::Arc<dyn anycloud_store::Store>> {
    let store = anycloud_store::open_unmigrated(url)
        .await
        .with_context(|| format!("cannot open the store ({name})"))?;
    if config.store.auto_migrate {
        let applied = store
            .migrate(&|m| tracing::info!(store = name, migration = %migrate::name(m), "store migration applied"))
            .await
            .with_context(|| format!("cannot migrate the store ({name})"))?;
        if !applied.is_empty() {
            tracing::info!(
                store = name,
                count = applied.len(),
                backend = store.backend(),
                "store migrated"
            );
        }
        return Ok(store);
    }
    let pending = store
        .pending_migrations()
        .await
        .with_context(|| format!("cannot read the store's migrations ({name})"))?;
    if !pending.is_empty() {
        let names: Vec<String> = pending.iter().map(migrate::name).collect();
        anyhow::bail!(
            "the store ({name}) has {} pending migration{} ({}) and store.auto_migrate = false: \
             run `anycloud migrate --config <file>` first",
            pending.len(),
            if pending.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
    }
    Ok(store)
}

/// Starts the ledger writer and its sink; the caller drains it with [`drain_ledger`].
pub fn start_ledger(
    store: &std::sync::Arc<dyn anycloud_store::Store>,
    queues: &anycloud_config::StoreConfig,
) -> (
    std::sync::Arc<anycloud_ledger::LedgerWriter>,
    Vec<std::sync::Arc<dyn anycloud_server::outcome::OutcomeSink>>,
) {
    let writer = std::sync::Arc::new(anycloud_ledger::LedgerWriter::start(
        store.clone(),
        anycloud_ledger::WriterConfig {
            capacity: queues.queue_bound,
            spill: anycloud_server::governance::bookkeeping::spool_config(queues, "ledger").spill,
            ..Default::default()
        },
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
