//! `anycloud store copy --from URL --to URL [--replace] [--batch-size N]`: copies every
//! record of one store into another — tenants, keys (hashes), key policies, the usage
//! ledger, the audit log with its exact chain and head, budget spend, captures, stored
//! responses — e.g. an embedded SQLite deployment into a shared PostgreSQL
//! (`anycloud_store::copy`).
//!
//! With `--config F --content <jurisdiction>` the source is that jurisdiction's content
//! store (`[store.content]`): each store is copied on its own, so content never passes
//! through a store of another jurisdiction.
//!
//! The target must be empty unless `--replace` is given, which deletes its records first.
//! Afterwards both stores are compared (row counts per table, ledger totals, audit chains);
//! any difference is printed and the exit code is 1. URLs are never printed: a
//! `postgres://` URL may hold a password.

use std::path::Path;
use std::process::ExitCode;

use anycloud_store::copy::{self, CopySummary};
use anycloud_store::ChainStatus;

pub struct CopyArgs<'a> {
    pub from: Option<&'a str>,
    pub config: Option<&'a Path>,
    /// With `config`: copy this jurisdiction's content store instead of the main store.
    pub content: Option<&'a str>,
    pub to: &'a str,
    pub replace: bool,
    pub batch_size: u32,
}

pub async fn copy(args: CopyArgs<'_>) -> anyhow::Result<ExitCode> {
    let from_url = match (args.from, args.config) {
        (Some(url), _) => url.to_owned(),
        (None, Some(path)) => {
            let config = super::load_config(path)?;
            match args.content {
                None => config.store.url,
                Some(j) => config.store.content.get(j).cloned().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--content {j}: the config has no content store `{j}` in [store.content]"
                    )
                })?,
            }
        }
        (None, None) => anyhow::bail!("give the source store as --from <url> or --config <file>"),
    };
    if from_url == args.to {
        anyhow::bail!("--from and --to name the same store");
    }
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let from = anycloud_store::open(&from_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the source store (--from): {e}"))?;
    let to = anycloud_store::open(args.to)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the target store (--to): {e}"))?;

    if from.location().await? == to.location().await? {
        anyhow::bail!("--from and --to name the same store");
    }

    let existing: Vec<String> = copy::counts(to.as_ref())
        .await?
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{}: {n}", t.as_str()))
        .collect();
    if !existing.is_empty() {
        if !args.replace {
            anyhow::bail!(
                "the target store is not empty ({}); pass --replace to delete its records first",
                existing.join(", ")
            );
        }
        to.clear().await?;
        eprintln!("deleted the target's records ({})", existing.join(", "));
    }

    let total: u64 = copy::counts(from.as_ref())
        .await?
        .iter()
        .map(|(_, n)| n)
        .sum();
    let bar = super::migrate::progress_bar(total);
    let progress = {
        let bar = bar.clone();
        move |table: anycloud_store::Table, n: u64| {
            bar.set_message(table.as_str());
            bar.inc(n);
        }
    };
    let summary = copy::copy(from.as_ref(), to.as_ref(), args.batch_size, &progress).await;
    bar.finish_and_clear();
    let summary = summary?;
    print_summary(from.backend(), to.backend(), &summary);
    let mismatches = summary.mismatches();
    if mismatches.is_empty() {
        println!("copy verified: every table, the ledger totals and the audit chain match");
        Ok(ExitCode::SUCCESS)
    } else {
        for m in &mismatches {
            eprintln!("mismatch: {m}");
        }
        Ok(ExitCode::FAILURE)
    }
}

fn print_summary(from: &str, to: &str, s: &CopySummary) {
    println!(
        "{:<22} {:>14} {:>14}",
        "TABLE",
        from.to_uppercase(),
        to.to_uppercase()
    );
    for t in &s.tables {
        println!("{:<22} {:>14} {:>14}", t.table, t.source, t.target);
    }
    println!(
        "{:<22} {:>14} {:>14}",
        "ledger cost (nanoUSD)", s.source_ledger.cost_nanos, s.target_ledger.cost_nanos
    );
    println!(
        "{:<22} {:>14} {:>14}",
        "ledger tokens in", s.source_ledger.input_tokens, s.target_ledger.input_tokens
    );
    println!(
        "{:<22} {:>14} {:>14}",
        "audit chain",
        chain(&s.source_chain),
        chain(&s.target_chain)
    );
}

fn chain(c: &ChainStatus) -> String {
    match c {
        ChainStatus::Intact { count } => format!("intact {count}"),
        ChainStatus::Broken { seq, .. } => format!("broken at {seq}"),
    }
}
