//! `anycloud config check FILE`: validate and summarise, exit 1 on error.

use std::path::Path;
use std::process::ExitCode;

pub fn run(file: &Path) -> anyhow::Result<ExitCode> {
    match anycloud_config::load(file) {
        Ok(c) => {
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
