//! The demo's console stays readable: access-log lines go to a file in the demo's
//! directory instead of the terminal, and a one-line summary of the traffic is printed
//! every few seconds, so the printed key and examples stay on screen.
//!
//! [`AccessFile`] is the file's writer (lines written before the demo opened the file are
//! dropped); [`Counter`] is a tracing layer that counts access-log events as they pass.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

pub const ACCESS_TARGET: &str = "anycloud::access";

static FILE: OnceLock<Mutex<std::fs::File>> = OnceLock::new();

/// Traffic since start, from the access log.
#[derive(Debug, Default)]
pub struct Totals {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub tool_calls: AtomicU64,
    pub tool_refusals: AtomicU64,
}

pub static TOTALS: Totals = Totals {
    requests: AtomicU64::new(0),
    errors: AtomicU64::new(0),
    tool_calls: AtomicU64::new(0),
    tool_refusals: AtomicU64::new(0),
};

/// Starts writing access-log lines to `path`.
pub fn open(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let _ = FILE.set(Mutex::new(f));
    Ok(())
}

/// `MakeWriter` for the access-log file. A write is one short line to a local file; the
/// demo accepts that on the request path, as the console writer did.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessFile;

impl Write for AccessFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(f) = FILE.get() {
            if let Ok(mut f) = f.lock() {
                f.write_all(buf)?;
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AccessFile {
    type Writer = AccessFile;
    fn make_writer(&'a self) -> AccessFile {
        AccessFile
    }
}

/// Counts access-log events into [`TOTALS`].
#[derive(Debug, Default)]
pub struct Counter;

#[derive(Default)]
struct Fields {
    status: Option<u64>,
    mcp: bool,
    outcome_ok: bool,
    refused: bool,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "status" {
            self.status = Some(value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "api" => self.mcp = value == "mcp.tools_call",
            "outcome" => {
                self.outcome_ok = value == "ok";
                self.refused = matches!(
                    value,
                    "tool_denied"
                        | "tool_not_allowed"
                        | "server_not_allowed"
                        | "jurisdiction"
                        | "no_mcp_policy"
                        | "server_drained"
                        | "rate_limited"
                );
            }
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // `%value` fields arrive here.
        let s = format!("{value:?}");
        self.record_str(field, s.trim_matches('"'));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Counter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != ACCESS_TARGET {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if f.mcp {
            TOTALS.tool_calls.fetch_add(1, Ordering::Relaxed);
            if f.refused {
                TOTALS.tool_refusals.fetch_add(1, Ordering::Relaxed);
            } else if !f.outcome_ok {
                TOTALS.errors.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            TOTALS.requests.fetch_add(1, Ordering::Relaxed);
            if f.status.is_some_and(|s| s >= 400) {
                TOTALS.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Prints one line every `every` until the task is aborted.
pub async fn summaries(every: std::time::Duration, log: std::path::PathBuf) {
    let mut last = [0u64; 4];
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = [
            TOTALS.requests.load(Ordering::Relaxed),
            TOTALS.errors.load(Ordering::Relaxed),
            TOTALS.tool_calls.load(Ordering::Relaxed),
            TOTALS.tool_refusals.load(Ordering::Relaxed),
        ];
        let d: Vec<u64> = now.iter().zip(last).map(|(n, l)| n - l).collect();
        last = now;
        eprintln!(
            "[{}] last {}s: {} requests, {} MCP tool calls ({} refused by policy), {} errors | total {} requests, {} tool calls | access log: {}",
            chrono::Utc::now().format("%H:%M:%S"),
            every.as_secs(),
            d[0],
            d[2],
            d[3],
            d[1],
            now[0],
            now[2],
            log.display()
        );
    }
}
