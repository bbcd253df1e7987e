//! The usage ledger (README "Ledger and reports"): what every attempt that reached a cloud cost, written
//! durably off the request path, and what finance reads from it.
//!
//! - [`money`]: cost at a deployment's price in integer nano-dollars (exact sums);
//! - [`writer`]: [`LedgerWriter`], the batched writer (bounded queue, a flush at most 50 ms
//!   apart, one transaction per batch, `close()` drains everything);
//! - [`accounting`]: revenue share (percent, window, cap) and commitment burn-down, plus
//!   [`accounting::spent_usd`] for the routing engine's `commitment` strategy;
//! - [`report`]: the `anycloud report` / `GET /admin/v1/ledger/report` document, aggregated
//!   in SQL, rendered as a table, CSV or JSON.
//!
//! Neighbours: rows and SQL live in `anycloud-store` (`usage_ledger`); the server's
//! `LedgerSink` turns a finished request's attempts into [`anycloud_store::UsageRecord`]s and
//! hands them to the writer. This crate never depends on the server.

pub mod accounting;
pub mod money;
pub mod render;
pub mod report;
pub mod writer;

pub use report::{GroupBy, Report, ReportFormat, ReportRequest};
pub use writer::{LedgerWriter, WriterConfig, WriterStats};

/// What can go wrong reading or writing the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The caller asked for something meaningless (an empty date range, a bad group).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("ledger store: {0}")]
    Store(#[from] anycloud_store::StoreError),
}

impl LedgerError {
    /// A short, stable name for metric labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerError::Invalid(_) => "invalid",
            LedgerError::Store(e) => e.kind(),
        }
    }
}
