//! `anycloud.toml` → a validated [`Config`].
//!
//! Loading is three steps: `${ENV}` interpolation of the raw text
//! ([`interpolate`]), typed deserialisation ([`model`]), and cross-checks
//! ([`validate`]) that report every problem with its file, line and key
//! ([`locate`] finds the line). The server and CLI only ever see a `Config`
//! that passed all three.

pub mod interpolate;
pub mod locate;
pub mod mcp;
pub mod model;
pub mod prompt_cache;
pub mod residency;
pub mod routing;
pub mod store;
pub mod telemetry;
pub mod validate;
pub mod warnings;

pub use mcp::{McpPolicy, McpServerConfig};
pub use model::*;
pub use prompt_cache::PromptCacheMode;
pub use routing::*;
pub use store::*;
pub use telemetry::{LogFormat, TelemetryConfig};

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `models[0].deployments[1].cloud`.
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

/// Everything wrong with a config file, each problem located.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match p.line {
                Some(line) => write!(f, "{}:{}: ", self.file.display(), line)?,
                None => write!(f, "{}: ", self.file.display())?,
            }
            if p.key.is_empty() {
                write!(f, "{}", p.message)?;
            } else {
                write!(f, "`{}`: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

/// Reads, interpolates, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let raw = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![Problem {
            key: String::new(),
            line: None,
            message: format!("cannot read file: {e}"),
        }],
    })?;
    parse_str(&raw, path, &|name| std::env::var(name).ok())
}

/// Parses config text; `env` resolves `${VAR}` (a parameter so tests and the
/// demo need not touch the process environment).
pub fn parse_str(
    raw: &str,
    file: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let err = |problems| ConfigError {
        file: file.to_path_buf(),
        problems,
    };
    let text = interpolate::interpolate(raw, env).map_err(err)?;
    let config: Config = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| locate::line_of_offset(&text, s.start));
        err(vec![Problem {
            key: String::new(),
            line,
            message: e.message().trim().to_string(),
        }])
    })?;
    let mut problems = validate::validate(&config);
    if problems.is_empty() {
        return Ok(config);
    }
    for p in &mut problems {
        p.line = locate::line_of_key(&text, &p.key);
    }
    Err(err(problems))
}

#[cfg(test)]
mod tests;
