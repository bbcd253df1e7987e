//! The usage ledger's rows as the store sees them: [`UsageRecord`] (one upstream attempt
//! that reached a cloud) and [`UsageSummaryRow`] (records summed per day, cloud, model and
//! tenant — what reports and agreements accounting are built from).
//!
//! The writer, the cost arithmetic and the reports live in `anycloud-ledger`; this module
//! only fixes the shape of what is stored so every backend stores the same thing.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

/// Nano-dollars (1e-9 USD) per US dollar. Money is stored as integer nano-dollars; see
/// `migrations/sqlite/0002_usage_ledger.sql` for why.
pub const NANOS_PER_USD: i64 = 1_000_000_000;

/// The price an attempt was charged at, per million tokens, kept with the record so a later
/// price change never rewrites history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordedPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    pub cached_input_per_mtok: f64,
    /// Five-minute cache writes (the input price on rows written before migration 0017).
    pub cache_write_per_mtok: f64,
    /// One-hour cache writes (likewise).
    pub cache_write_1h_per_mtok: f64,
}

/// One attempt that reached a cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub tenant: String,
    pub key_id: String,
    /// The public model name.
    pub model: String,
    pub cloud: String,
    /// The cloud's own deployment or model id.
    pub deployment: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Prompt tokens served from the cloud's cache (a subset of `input_tokens`).
    pub cached_tokens: u64,
    /// Prompt tokens written to the cloud's cache, every TTL (a subset of `input_tokens`;
    /// 0 on rows written before migration 0017).
    pub cache_write_tokens: u64,
    /// The one-hour part of `cache_write_tokens`.
    pub cache_write_1h_tokens: u64,
    /// Reasoning tokens (a subset of `output_tokens`, billed as output).
    pub reasoning_tokens: u64,
    /// What caching saved on this attempt, nano-dollars: its cost with cache reads and writes
    /// priced as plain input, less `cost_nanos` (negative while writes are not paid back).
    pub cache_saved_nanos: i64,
    /// True when the tokens are the gateway's estimate (the cloud reported none).
    pub usage_estimated: bool,
    pub price: RecordedPrice,
    /// Cost at `price`, in nano-dollars.
    pub cost_nanos: i64,
    /// `ok` or the attempt's reason code (`upstream_503`, `timeout`, …).
    pub outcome: String,
    pub upstream_status: Option<u16>,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    /// The capabilities the router checked for the request (`chat`, `stream`, `tools`, …),
    /// so `anycloud simulate` can replay it exactly; `None` on rows written before they
    /// were recorded (migration 0015), which replay as plain chat.
    pub needs: Option<Vec<String>>,
    /// The token estimate the router checked context windows with (prompt estimate plus
    /// requested output); `None` on rows written before migration 0015.
    pub estimated_tokens: Option<u64>,
}

/// Where a page of [`crate::Store::served_usage`] ended: the last row's time and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageCursor {
    pub at: DateTime<Utc>,
    pub id: i64,
}

/// Usage records summed over one UTC day for one (cloud, model, tenant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSummaryRow {
    pub day: NaiveDate,
    pub cloud: String,
    pub model: String,
    pub tenant: String,
    /// Number of records (attempts that reached the cloud, failed ones included).
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_nanos: i64,
    pub cache_saved_nanos: i64,
}

/// One cloud's spend on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyCost {
    pub day: NaiveDate,
    pub cost_nanos: i64,
}

/// `needs` as stored (`chat,stream`; empty for none) back into names.
pub(crate) fn split_needs(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

/// The UTC day `t` is the first instant of, if it is midnight exactly. Ranges between two
/// midnights are answered from the daily rollups (`usage_daily`, migration 0020); any other
/// range scans the ledger itself.
pub(crate) fn whole_day(t: DateTime<Utc>) -> Option<NaiveDate> {
    (t.time() == NaiveTime::MIN).then(|| t.date_naive())
}

/// `records` summed per UTC day, cloud, model and tenant: what one batch adds to the daily
/// rollups (`usage_daily`), written in the batch's own transaction so the rollups always
/// equal the ledger's `GROUP BY`.
pub(crate) fn daily_rollup(records: &[UsageRecord]) -> Vec<UsageSummaryRow> {
    let mut sums: BTreeMap<(NaiveDate, &str, &str, &str), UsageSummaryRow> = BTreeMap::new();
    for r in records {
        let day = r.at.date_naive();
        let row = sums
            .entry((day, &r.cloud, &r.model, &r.tenant))
            .or_insert_with(|| UsageSummaryRow {
                day,
                cloud: r.cloud.clone(),
                model: r.model.clone(),
                tenant: r.tenant.clone(),
                requests: 0,
                input_tokens: 0,
                output_tokens: 0,
                cached_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
                cost_nanos: 0,
                cache_saved_nanos: 0,
            });
        row.requests += 1;
        row.input_tokens = row.input_tokens.saturating_add(r.input_tokens);
        row.output_tokens = row.output_tokens.saturating_add(r.output_tokens);
        row.cached_tokens = row.cached_tokens.saturating_add(r.cached_tokens);
        row.cache_write_tokens = row.cache_write_tokens.saturating_add(r.cache_write_tokens);
        row.reasoning_tokens = row.reasoning_tokens.saturating_add(r.reasoning_tokens);
        row.cost_nanos = row.cost_nanos.saturating_add(r.cost_nanos);
        row.cache_saved_nanos = row.cache_saved_nanos.saturating_add(r.cache_saved_nanos);
    }
    sums.into_values().collect()
}
