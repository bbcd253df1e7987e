//! `anycloud config check FILE`: validate and summarise, exit 1 on error;
//! warnings (valid but probably unintended, e.g. a deployment on the primary
//! of a model the primary declined) go to stderr and do not fail the check.

use std::path::Path;
use std::process::ExitCode;

pub fn run(file: &Path) -> anyhow::Result<ExitCode> {
    match anycloud_config::load(file) {
        Ok(c) => {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let warnings = anycloud_config::warnings::warnings(&c);
            for w in &warnings {
                match anycloud_config::locate::line_of_key(&text, &w.key) {
                    Some(line) => eprintln!(
                        "{}:{line}: warning: `{}`: {}",
                        file.display(),
                        w.key,
                        w.message
                    ),
                    None => eprintln!("{}: warning: `{}`: {}", file.display(), w.key, w.message),
                }
            }
            println!(
                "{}: ok ({} clouds, {} models, {} tenants{})",
                file.display(),
                c.clouds.len(),
                c.models.len(),
                c.tenants.len(),
                match warnings.len() {
                    0 => String::new(),
                    n => format!(", {n} warning{}", if n == 1 { "" } else { "s" }),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
