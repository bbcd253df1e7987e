//! The `anycloud` binary: clap commands over the library crates
//! (README "Quick start", "Running it for real"). Each subcommand lives in `cmd/`.

// The CLI's job is to print to stdout.
#![allow(clippy::print_stdout)]

mod cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "anycloud",
    version,
    about = "One OpenAI-compatible endpoint for every model on every cloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// mimalloc instead of glibc malloc: under sustained load glibc's per-thread arenas keep
/// freed memory, so RSS only grows; mimalloc returns it (README "Reliability").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Subcommand)]
enum Command {
    /// Start the gateway with built-in emulated clouds and a temporary SQLite store.
    Demo {
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Start without the steady trickle of demo traffic.
        #[arg(long)]
        no_traffic: bool,
    },
    /// Run the gateway.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Log lines as `text` (default) or `json`; overrides `server.log_format`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Virtual API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Routing engine commands.
    Route {
        #[command(subcommand)]
        command: RouteCommand,
    },
    /// Vendor risk: concentration (HHI) per cloud, provider and jurisdiction, single points
    /// of failure and the outage drill (README "Vendor risk").
    Risk {
        #[arg(long)]
        config: PathBuf,
        /// First day (YYYY-MM-DD, UTC), inclusive (default: 30 days before --to).
        #[arg(long)]
        from: Option<String>,
        /// Last day (YYYY-MM-DD, UTC), exclusive (default: tomorrow).
        #[arg(long)]
        to: Option<String>,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// The outage drill for this cloud in detail.
        #[arg(long)]
        without: Option<String>,
    },
    /// Replay the period's served requests under a candidate config (README "Vendor risk").
    Simulate {
        #[arg(long)]
        config: PathBuf,
        /// The candidate config (agreements, policies, prices) to replay under.
        #[arg(long)]
        candidate: PathBuf,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Spend per cloud/model/tenant, revenue share and commitment burn-down.
    Report {
        #[arg(long)]
        config: PathBuf,
        /// First day (YYYY-MM-DD, UTC), inclusive.
        #[arg(long)]
        from: String,
        /// Last day (YYYY-MM-DD, UTC), exclusive.
        #[arg(long)]
        to: String,
        /// Breakdowns to show: any of cloud,model,tenant (default: all).
        #[arg(long)]
        group_by: Option<String>,
        /// table, csv or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// The usage ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Apply the store's pending schema migrations (idempotent).
    Migrate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Store maintenance.
    Store {
        #[command(subcommand)]
        command: StoreCommand,
    },
    /// Run the cloud emulators alone.
    Emulate {
        #[arg(long, default_value_t = 9100)]
        port: u16,
        /// One emulator only: openai_compatible, azure_openai, oci, bedrock, vertex,
        /// anthropic or mcp.
        #[arg(long)]
        cloud: Option<String>,
        /// Serve the MCP emulator over stdio instead (for `[[mcp_servers]] command`).
        #[arg(long, conflicts_with_all = ["cloud"])]
        mcp_stdio: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file; errors name the file, line and key.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum RouteCommand {
    /// Dry-run the routing engine: ordered candidates and every skip reason.
    Explain {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        model: String,
        #[arg(long)]
        tenant: String,
        /// Capabilities the request needs, comma-separated
        /// (tools,vision,json_schema,stream,embeddings); chat is implied.
        #[arg(long)]
        needs: Option<String>,
        /// The request's date (YYYY-MM-DD); default today (UTC).
        #[arg(long)]
        at: Option<String>,
        /// Estimated request tokens, for context-length checks.
        #[arg(long, default_value_t = 0)]
        tokens: u64,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Compare a load generator's record of responses (JSON lines with `request_id` and
    /// `status`) with the ledger: prints matched, missing, unexpected and duplicated;
    /// exit 1 unless only matched.
    Reconcile {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        requests: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the chain: exit 0 with the count when intact, 1 naming the first bad entry.
    Verify {
        #[arg(long)]
        config: PathBuf,
        /// A checkpoint written by `audit checkpoint`: also prove that nothing up to it
        /// was rewritten or truncated.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Write the chain's signed head (sequence, hash, time) to a file or stdout, for the
    /// operator to keep outside the database (needs `[audit] key`).
    Checkpoint {
        #[arg(long)]
        config: PathBuf,
        /// Where to write it (stdout without).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Copy every record (keys, ledger, audit chain, responses, …) into another, empty store;
    /// then compare both and exit 1 on any difference.
    Copy {
        /// The source store URL (sqlite://… or postgres://…).
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        from: Option<String>,
        /// Take the source store from this config's `store.url` instead of --from.
        #[arg(long)]
        config: Option<PathBuf>,
        /// With --config: copy this jurisdiction's content store (`[store.content]`)
        /// instead of the main store.
        #[arg(long, requires = "config")]
        content: Option<String>,
        /// The target store URL; migrated first, and it must hold no records.
        #[arg(long)]
        to: String,
        /// Delete every record the target already holds before copying.
        #[arg(long)]
        replace: bool,
        /// Rows per batch (one transaction on the target each).
        #[arg(long, default_value_t = anycloud_store::copy::DEFAULT_BATCH)]
        batch_size: u32,
    },
    /// Where each tenant's content (stored responses, captures) lives, with the rows of
    /// each tenant found in every store.
    Residency {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; the key alone is the last line of stdout.
    Create {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key, given the key or its id.
    Revoke {
        #[arg(long)]
        config: PathBuf,
        key: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` reads its config's log format and telemetry before logging
    // starts (a bad config is reported by `serve` itself, with text logs).
    // Set up here, outside the async runtime: the exporter's blocking HTTP
    // client must not be created or dropped on a runtime thread.
    let export = match &cli.command {
        Command::Serve { config, log_format } => {
            let loaded = anycloud_config::load(config).ok();
            let flag = log_format.map(|f| match f {
                LogFormatArg::Json => anycloud_config::LogFormat::Json,
                LogFormatArg::Text => anycloud_config::LogFormat::Text,
            });
            let configured = loaded
                .as_ref()
                .map(|c| c.server.log_format)
                .unwrap_or_default();
            cmd::init_logging(
                flag,
                configured,
                loaded.as_ref().map(|c| &c.telemetry),
                false,
            )
        }
        Command::Demo { .. } => {
            cmd::init_logging(None, anycloud_config::LogFormat::Text, None, true)
        }
        _ => cmd::init_logging(None, anycloud_config::LogFormat::Text, None, false),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Demo { port, no_traffic } => cmd::demo::run(port, !no_traffic).await,
            Command::Serve { config, .. } => cmd::serve::run(&config).await,
            Command::Config {
                command: ConfigCommand::Check { file },
            } => cmd::config_check::run(&file),
            Command::Keys { command } => match command {
                KeysCommand::Create {
                    config,
                    tenant,
                    name,
                } => cmd::keys::create(&config, &tenant, name.as_deref()).await,
                KeysCommand::List { config, tenant } => {
                    cmd::keys::list(&config, tenant.as_deref()).await
                }
                KeysCommand::Revoke { config, key } => cmd::keys::revoke(&config, &key).await,
            },
            Command::Route {
                command:
                    RouteCommand::Explain {
                        config,
                        model,
                        tenant,
                        needs,
                        at,
                        tokens,
                        format,
                    },
            } => cmd::route::explain_cmd(&cmd::route::ExplainArgs {
                config: &config,
                model: &model,
                tenant: &tenant,
                needs: needs.as_deref(),
                at: at.as_deref(),
                tokens,
                json: format == Format::Json,
            }),
            Command::Risk {
                config,
                from,
                to,
                format,
                without,
            } => {
                cmd::risk::run(cmd::risk::Args {
                    config: &config,
                    from: from.as_deref(),
                    to: to.as_deref(),
                    format: &format,
                    without: without.as_deref(),
                })
                .await
            }
            Command::Simulate {
                config,
                candidate,
                from,
                to,
                format,
            } => {
                cmd::simulate::run(cmd::simulate::Args {
                    config: &config,
                    candidate: &candidate,
                    from: from.as_deref(),
                    to: to.as_deref(),
                    format: &format,
                })
                .await
            }
            Command::Report {
                config,
                from,
                to,
                group_by,
                format,
            } => {
                cmd::report::run(cmd::report::Args {
                    config: &config,
                    from: &from,
                    to: &to,
                    group_by: group_by.as_deref(),
                    format: &format,
                })
                .await
            }
            Command::Audit {
                command: AuditCommand::Verify { config, checkpoint },
            } => cmd::audit::verify(&config, checkpoint.as_deref()).await,
            Command::Audit {
                command: AuditCommand::Checkpoint { config, out },
            } => cmd::audit::checkpoint(&config, out.as_deref()).await,
            Command::Ledger {
                command: LedgerCommand::Reconcile { config, requests },
            } => cmd::reconcile::run(&config, &requests).await,
            Command::Migrate { config } => cmd::migrate::run(&config).await,
            Command::Store {
                command: StoreCommand::Residency { config, format },
            } => cmd::residency::run(&config, format == Format::Json).await,
            Command::Store {
                command:
                    StoreCommand::Copy {
                        from,
                        config,
                        content,
                        to,
                        replace,
                        batch_size,
                    },
            } => {
                cmd::store::copy(cmd::store::CopyArgs {
                    from: from.as_deref(),
                    config: config.as_deref(),
                    content: content.as_deref(),
                    to: &to,
                    replace,
                    batch_size,
                })
                .await
            }
            Command::Emulate {
                mcp_stdio: true, ..
            } => {
                anycloud_emulators::mcp::serve_stdio().await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Emulate { port, cloud, .. } => cmd::emulate::run(port, cloud.as_deref()).await,
        }
    });
    // After the server drained on SIGTERM: export the last spans.
    if let Some(export) = export {
        export.shutdown();
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
