//! `anycloud config check FILE`: validate and summarise, exit 1 on error.

use std::path::Path;
use std::process::ExitCode;

pub fn run(file: &Path) -> anyhow::Result<ExitCode> {
    match anycloud_config::load(file) {
        Ok(c) => {
            // Residency warnings: the config is valid, but an auditor will ask.
            for w in anycloud_config::residency::warnings(&c) {
                eprintln!("{}: warning: `{}`: {}", file.display(), w.key, w.message);
            }
            println!(
                "{}: ok ({} clouds, {} models, {} tenants)",
                file.display(),
                c.clouds.len(),
                c.models.len(),
                c.tenants.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
