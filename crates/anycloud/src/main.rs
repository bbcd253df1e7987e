//! The `anycloud` binary: clap commands over the library crates
//! (product.md §3.1). Each subcommand lives in `cmd/`.

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

#[derive(Subcommand)]
enum Command {
    /// Start the gateway with built-in emulated clouds and a temporary SQLite store.
    Demo {
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Run the gateway.
    Serve {
        #[arg(long)]
        config: PathBuf,
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
    /// The hash-chained audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Run the cloud emulators alone.
    Emulate {
        #[arg(long, default_value_t = 9100)]
        port: u16,
        /// One cloud only: openai_compatible or azure_openai.
        #[arg(long)]
        cloud: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a config file; errors name the file, line and key.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the chain: exit 0 with the count when intact, 1 naming the first bad entry.
    Verify {
        #[arg(long)]
        config: PathBuf,
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
    cmd::init_logging();
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
            Command::Demo { port } => cmd::demo::run(port).await,
            Command::Serve { config } => cmd::serve::run(&config).await,
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
            Command::Audit {
                command: AuditCommand::Verify { config },
            } => cmd::audit::verify(&config).await,
            Command::Emulate { port, cloud } => cmd::emulate::run(port, cloud.as_deref()).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
