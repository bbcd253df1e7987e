//! Copying a whole store into another (`anycloud store copy`), backend to backend, through
//! [`TransferStore`]: table by table in [`Table::ALL`] order, page by page, each page in
//! one transaction on the target. Then both ends are compared: row counts per table,
//! ledger totals, and the audit chain walked on each side.

use serde::Serialize;

use crate::transfer::{LedgerTotals, Table, TransferStore};
use crate::{ChainStatus, Store, StoreError};

/// Rows per page when the caller has no preference.
pub const DEFAULT_BATCH: u32 = 1_000;

/// One table's row count on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCount {
    pub table: &'static str,
    pub source: u64,
    pub target: u64,
}

/// What a copy did and how the two ends compare afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct CopySummary {
    pub tables: Vec<TableCount>,
    pub source_ledger: LedgerTotals,
    pub target_ledger: LedgerTotals,
    pub source_chain: ChainStatus,
    pub target_chain: ChainStatus,
}

impl CopySummary {
    /// Every difference between the two ends, in words; empty when the copy is faithful.
    pub fn mismatches(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .tables
            .iter()
            .filter(|t| t.source != t.target)
            .map(|t| {
                format!(
                    "{}: {} rows in the source, {} in the target",
                    t.table, t.source, t.target
                )
            })
            .collect();
        if self.source_ledger != self.target_ledger {
            out.push(format!(
                "usage_ledger totals differ: source {:?}, target {:?}",
                self.source_ledger, self.target_ledger
            ));
        }
        if !matches!(self.target_chain, ChainStatus::Intact { .. }) {
            out.push(format!(
                "the target's audit chain is not intact: {:?}",
                self.target_chain
            ));
        }
        if self.source_chain != self.target_chain {
            out.push(format!(
                "audit chains differ: source {:?}, target {:?}",
                self.source_chain, self.target_chain
            ));
        }
        out
    }
}

/// Row counts of every table, in copy order.
pub async fn counts(store: &dyn TransferStore) -> Result<Vec<(Table, u64)>, StoreError> {
    let mut out = Vec::with_capacity(Table::ALL.len());
    for table in Table::ALL {
        out.push((table, store.count(table).await?));
    }
    Ok(out)
}

/// Copies every row of `from` into `to` (which should be empty: rows that exist already
/// make the copy fail with a conflict), `batch` rows per page. `progress` is called after
/// each page with the table and the number of rows just copied; `keys` verify the chains.
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    batch: u32,
    progress: &(dyn Fn(Table, u64) + Send + Sync),
    keys: &crate::ChainKeys,
) -> Result<CopySummary, StoreError> {
    let batch = batch.max(1);
    for table in Table::ALL {
        let mut after = None;
        loop {
            let page = from.export_page(table, after.as_ref(), batch).await?;
            if page.is_empty() {
                break;
            }
            to.import_page(&page).await?;
            progress(table, page.len() as u64);
            if page.len() < batch as usize {
                break;
            }
            after = page.cursor();
        }
    }
    compare(from, to, keys).await
}

/// Compares two stores: counts, ledger totals and audit chains.
/// `keys` verify the chains (`[audit]` of the config; unkeyed without one).
pub async fn compare(
    from: &dyn Store,
    to: &dyn Store,
    keys: &crate::ChainKeys,
) -> Result<CopySummary, StoreError> {
    let (source, target) = (counts(from).await?, counts(to).await?);
    Ok(CopySummary {
        tables: source
            .iter()
            .zip(&target)
            .map(|((table, s), (_, t))| TableCount {
                table: table.as_str(),
                source: *s,
                target: *t,
            })
            .collect(),
        source_ledger: from.ledger_totals().await?,
        target_ledger: to.ledger_totals().await?,
        source_chain: from.verify_audit(keys).await?,
        target_chain: to.verify_audit(keys).await?,
    })
}
