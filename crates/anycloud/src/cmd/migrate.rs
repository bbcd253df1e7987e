//! `anycloud migrate --config F`: applies the pending schema migrations of the main store
//! and of each content store of `[store.content]` (SQLite or PostgreSQL), idempotently,
//! and says per store what it applied or that it is up to date. A progress bar on stderr
//! follows the migrations when stderr is a terminal.
//!
//! `serve` and the other commands do the same at start unless `store.auto_migrate = false`
//! (see [`super::open_store`]).

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anycloud_store::MigrationInfo;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub async fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path)?;
    // The main store, then each content store of `[store.content]`, migrated alike.
    for (key, url) in super::store_urls(&config) {
        let label = if key == "store.url" {
            "store".to_owned()
        } else {
            key.clone()
        };
        migrate_one(&key, &label, url).await?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate_one(key: &str, label: &str, url: &str) -> anyhow::Result<()> {
    let store = anycloud_store::open_unmigrated(url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the store ({key}): {e}"))?;
    let pending = store.pending_migrations().await?;
    if pending.is_empty() {
        println!("{label} ({}) is up to date", store.backend());
        return Ok(());
    }
    let bar = progress_bar(pending.len() as u64);
    let on_applied = {
        let bar = bar.clone();
        move |m: &MigrationInfo| {
            bar.set_message(name(m));
            bar.inc(1);
        }
    };
    let applied = store.migrate(&on_applied).await;
    bar.finish_and_clear();
    let applied = applied?;
    for m in &applied {
        println!("applied {}", name(m));
    }
    println!(
        "{label} ({}) migrated: {} migration{} applied",
        store.backend(),
        applied.len(),
        if applied.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// `0003 governance`.
pub fn name(m: &MigrationInfo) -> String {
    format!("{:04} {}", m.version, m.description)
}

/// A bar on stderr when it is a terminal, hidden otherwise (pipes and logs get only the
/// result lines).
pub fn progress_bar(len: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}
