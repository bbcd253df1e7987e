//! Vendor risk (README "Vendor risk"): what the config, the ledger and the router together
//! say about depending on each cloud.
//!
//! - [`concentration`]: shares of requests, tokens and cost per cloud, provider (owner) and
//!   jurisdiction, with the Herfindahl–Hirschman index and its band;
//! - [`eligibility`]: which clouds the real router would let serve each tenant × model
//!   (single points of failure, and the outage drill with one cloud drained);
//! - [`report`]: the `anycloud risk` / `GET /admin/v1/risk` document;
//! - [`simulate`]: `anycloud simulate` / `POST /admin/v1/simulate`, a pure replay of the
//!   ledger's served requests through a candidate config's router and prices.
//!
//! Neighbours: rows come from `anycloud-store` (summaries and [`anycloud_store::Store::served_usage`]
//! pages), money and agreements accounting from `anycloud-ledger`, decisions from
//! `anycloud-router`'s pure `route()`. Nothing here calls a cloud.

pub mod concentration;
pub mod eligibility;
pub mod report;
pub mod simulate;

use chrono::NaiveDate;

/// What can go wrong building a risk document or a simulation.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// The caller asked for something meaningless (an empty period, a bad cloud name).
    #[error("{0}")]
    Invalid(String),
    #[error("ledger: {0}")]
    Ledger(#[from] anycloud_ledger::LedgerError),
    #[error("ledger store: {0}")]
    Store(#[from] anycloud_store::StoreError),
}

/// A report period `[from, to)` in UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Period {
    pub from: NaiveDate,
    /// Exclusive.
    pub to: NaiveDate,
}

impl Period {
    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Period, RiskError> {
        if from >= to {
            return Err(RiskError::Invalid(format!(
                "empty range: from {from} must be before to {to} (to is exclusive)"
            )));
        }
        Ok(Period { from, to })
    }
}
