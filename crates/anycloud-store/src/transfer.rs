//! Whole-store export and import, behind [`TransferStore`] (a supertrait of
//! [`crate::Store`]): what `anycloud store copy` uses to move every record from one backend
//! to another, e.g. an embedded SQLite deployment to a shared PostgreSQL.
//!
//! Each [`Table`] is read in keyset-ordered [`Page`]s and written back exactly as read:
//! key hashes, timestamps, audit `seq`, `prev_hash` and `hash`, and the audit head, so the
//! target's chain verifies with the same count. Only the ledger's row ids are not kept (they
//! are never shown; record order is). [`LedgerTotals`] lets the copier compare the two ends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::governance::{AuditRecord, CaptureRecord};
use crate::{KeyRecord, StoreError, StoredResponse, UsageRecord};

/// Every table a store holds, in the order they must be copied (a key before its policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Tenants,
    Keys,
    KeyPolicies,
    Usage,
    Audit,
    AuditHead,
    Spend,
    Captures,
    Responses,
}

impl Table {
    /// Copy order: referenced tables first.
    pub const ALL: [Table; 9] = [
        Table::Tenants,
        Table::Keys,
        Table::KeyPolicies,
        Table::Usage,
        Table::Audit,
        Table::AuditHead,
        Table::Spend,
        Table::Captures,
        Table::Responses,
    ];

    /// The table's SQL name, the same on every backend.
    pub fn as_str(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::Keys => "keys",
            Table::KeyPolicies => "key_policies",
            Table::Usage => "usage_ledger",
            Table::Audit => "audit_log",
            Table::AuditHead => "audit_head",
            Table::Spend => "budget_spend",
            Table::Captures => "captured_payloads",
            Table::Responses => "responses",
        }
    }
}

/// A tenant row with its timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    pub name: String,
    pub policy: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A key's policy row.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPolicyRow {
    pub key_id: String,
    pub policy: Value,
    pub updated_at: DateTime<Utc>,
}

/// A ledger row; `id` is the source's row id, used only to page.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    pub id: i64,
    pub record: UsageRecord,
}

/// The audit chain's head: the last entry's `seq` and `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditHead {
    pub seq: i64,
    pub hash: String,
}

/// Settled spend for one budget scope and period.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRow {
    pub scope: String,
    pub period_start: String,
    pub spent_usd: f64,
}

/// Rows of one table, in the table's key order.
#[derive(Debug, Clone, PartialEq)]
pub enum Page {
    Tenants(Vec<TenantRow>),
    Keys(Vec<KeyRecord>),
    KeyPolicies(Vec<KeyPolicyRow>),
    Usage(Vec<UsageRow>),
    Audit(Vec<AuditRecord>),
    AuditHead(Vec<AuditHead>),
    Spend(Vec<SpendRow>),
    Captures(Vec<CaptureRecord>),
    Responses(Vec<StoredResponse>),
}

/// Where the next page starts: after this key of the previous page's last row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    Text(String),
    Int(i64),
    Pair(String, String),
}

impl Page {
    pub fn len(&self) -> usize {
        match self {
            Page::Tenants(v) => v.len(),
            Page::Keys(v) => v.len(),
            Page::KeyPolicies(v) => v.len(),
            Page::Usage(v) => v.len(),
            Page::Audit(v) => v.len(),
            Page::AuditHead(v) => v.len(),
            Page::Spend(v) => v.len(),
            Page::Captures(v) => v.len(),
            Page::Responses(v) => v.len(),
        }
    }

    /// The table the rows belong to.
    pub fn table(&self) -> Table {
        match self {
            Page::Tenants(_) => Table::Tenants,
            Page::Keys(_) => Table::Keys,
            Page::KeyPolicies(_) => Table::KeyPolicies,
            Page::Usage(_) => Table::Usage,
            Page::Audit(_) => Table::Audit,
            Page::AuditHead(_) => Table::AuditHead,
            Page::Spend(_) => Table::Spend,
            Page::Captures(_) => Table::Captures,
            Page::Responses(_) => Table::Responses,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of the last row, to ask for the next page; `None` when empty.
    pub fn cursor(&self) -> Option<Cursor> {
        let text = |s: &String| Cursor::Text(s.clone());
        match self {
            Page::Tenants(v) => v.last().map(|r| text(&r.name)),
            Page::Keys(v) => v.last().map(|r| text(&r.id)),
            Page::KeyPolicies(v) => v.last().map(|r| text(&r.key_id)),
            Page::Usage(v) => v.last().map(|r| Cursor::Int(r.id)),
            Page::Audit(v) => v.last().map(|r| Cursor::Int(r.seq)),
            Page::AuditHead(v) => v.last().map(|_| Cursor::Int(1)),
            Page::Spend(v) => v
                .last()
                .map(|r| Cursor::Pair(r.scope.clone(), r.period_start.clone())),
            Page::Captures(v) => v.last().map(|r| text(&r.request_id)),
            Page::Responses(v) => v.last().map(|r| text(&r.id)),
        }
    }
}

impl Cursor {
    /// The cursor's parts as bind values: (text key, second text key, integer key). A
    /// missing text key means "from the start"; the integer key defaults below every row.
    pub(crate) fn binds(after: Option<&Cursor>) -> (Option<String>, Option<String>, i64) {
        match after {
            None => (None, None, i64::MIN),
            Some(Cursor::Text(t)) => (Some(t.clone()), None, i64::MIN),
            Some(Cursor::Int(i)) => (None, None, *i),
            Some(Cursor::Pair(a, b)) => (Some(a.clone()), Some(b.clone()), i64::MIN),
        }
    }
}

/// Sums over the whole usage ledger, compared between the two ends of a copy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub records: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    /// Cache writes of every TTL, the one-hour part of them, and reasoning tokens
    /// (migration 0017): a copy that lost a column would still match on the sums above.
    pub cache_write_tokens: u64,
    pub cache_write_1h_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_nanos: i64,
    /// What caching saved, summed (README "Prompt caching").
    pub cache_saved_nanos: i64,
}

#[async_trait]
pub trait TransferStore: Send + Sync {
    /// Rows in `table`.
    async fn count(&self, table: Table) -> Result<u64, StoreError>;

    /// Up to `limit` rows of `table` after `after` (from the start when `None`), in key
    /// order; fewer than `limit` means the table is done.
    async fn export_page(
        &self,
        table: Table,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Page, StoreError>;

    /// Writes the rows exactly as given, in one transaction; a row that already exists is a
    /// [`StoreError::Conflict`] (the audit head is replaced).
    async fn import_page(&self, page: &Page) -> Result<(), StoreError>;

    /// Deletes every record of every table, in one transaction (`store copy --replace`).
    async fn clear(&self) -> Result<(), StoreError>;

    /// Totals over the whole usage ledger.
    async fn ledger_totals(&self) -> Result<LedgerTotals, StoreError>;

    /// Where the data lives (an SQLite file's canonical path; a PostgreSQL server, database
    /// and schema), so a copy can refuse a target that is its own source however the two
    /// URLs are spelled. Never holds a password.
    async fn location(&self) -> Result<String, StoreError>;
}

/// Maps a unique-key violation on import to [`StoreError::Conflict`] naming the table.
pub(crate) fn import_error(err: sqlx::Error, table: Table) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_unique_violation() {
            return StoreError::Conflict {
                what: table.as_str(),
            };
        }
    }
    StoreError::Database(err)
}
