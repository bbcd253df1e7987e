//! `anycloud audit verify --config F`: walks the audit log's hash chain. Exit 0 with the
//! entry count when intact; exit 1 naming the first altered, missing or misplaced entry.

use std::path::Path;
use std::process::ExitCode;

pub async fn verify(path: &Path) -> anyhow::Result<ExitCode> {
    let config = super::load_config(path)?;
    let store = super::open_store(&config).await?;
    match store.verify_audit().await? {
        anycloud_store::ChainStatus::Intact { count } => {
            println!("audit log intact: {count} entries verified");
            Ok(ExitCode::SUCCESS)
        }
        anycloud_store::ChainStatus::Broken {
            seq,
            verified,
            problem,
        } => {
            println!("audit log BROKEN at entry {seq}: {problem} ({verified} entries verified before it)");
            Ok(ExitCode::FAILURE)
        }
    }
}
