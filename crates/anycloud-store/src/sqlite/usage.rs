//! SQL for the usage ledger (`usage_ledger`, migration 0002).
//!
//! Inserts are multi-row `INSERT … VALUES (…), (…)` statements inside one transaction per
//! batch: one fsync per batch instead of one per row, and far fewer statement round trips.
//! The same transaction adds the batch's sums to the daily rollups (`usage_daily`, migration
//! 0020); reports over whole UTC days read those, other ranges aggregate in SQL
//! (`GROUP BY`) over an index range on `at`, so the rows never leave SQLite.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{parse_timestamp, timestamp};
use crate::usage::{
    daily_rollup, split_needs, whole_day, DailyCost, RecordedPrice, UsageCursor, UsageRecord,
    UsageSummaryRow,
};
use crate::StoreError;

/// Rows per INSERT statement at most: 27 bound parameters each keeps a statement under
/// SQLite's default limit of 32 766 parameters. Statements have power-of-two row counts
/// (see [`super::pow2_chunks`]) so they are prepared once.
const ROWS_PER_STATEMENT: usize = 512;

pub(super) const COLUMNS: &str = "at, request_id, tenant, key_id, model, cloud, deployment, \
    input_tokens, output_tokens, cached_tokens, usage_estimated, price_input_per_mtok, \
    price_output_per_mtok, price_cached_per_mtok, cost_nanos, outcome, upstream_status, \
    latency_ms, ttft_ms, needs, estimated_tokens, cache_write_tokens, cache_write_1h_tokens, \
    reasoning_tokens, price_cache_write_per_mtok, price_cache_write_1h_per_mtok, \
    cache_saved_nanos";

pub(super) async fn insert(pool: &SqlitePool, records: &[UsageRecord]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    insert_on(&mut tx, records).await?;
    tx.commit().await?;
    Ok(())
}

/// [`insert`] once per stamp (see [`crate::spool::Stamp`]).
pub(super) async fn insert_once(
    pool: &SqlitePool,
    batch: &crate::spool::Batch<UsageRecord>,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let keep = super::marks::claim(&mut tx, batch.spool, &batch.stamps).await?;
    insert_on(&mut tx, &crate::spool::kept(&batch.items, &keep)).await?;
    tx.commit().await?;
    Ok(())
}

/// The inserts of [`insert`], on a connection (inside the caller's transaction).
pub(super) async fn insert_on(
    conn: &mut sqlx::SqliteConnection,
    records: &[UsageRecord],
) -> Result<(), sqlx::Error> {
    for chunk in super::pow2_chunks(records, ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("INSERT INTO usage_ledger ({COLUMNS}) "));
        q.push_values(chunk, |mut b, r| {
            b.push_bind(timestamp(r.at))
                .push_bind(&r.request_id)
                .push_bind(&r.tenant)
                .push_bind(&r.key_id)
                .push_bind(&r.model)
                .push_bind(&r.cloud)
                .push_bind(&r.deployment)
                .push_bind(to_i64(r.input_tokens))
                .push_bind(to_i64(r.output_tokens))
                .push_bind(to_i64(r.cached_tokens))
                .push_bind(r.usage_estimated)
                .push_bind(r.price.input_per_mtok)
                .push_bind(r.price.output_per_mtok)
                .push_bind(r.price.cached_input_per_mtok)
                .push_bind(r.cost_nanos)
                .push_bind(&r.outcome)
                .push_bind(r.upstream_status.map(i64::from))
                .push_bind(to_i64(r.latency_ms))
                .push_bind(r.ttft_ms.map(to_i64))
                .push_bind(r.needs.as_ref().map(|n| n.join(",")))
                .push_bind(r.estimated_tokens.map(to_i64))
                .push_bind(to_i64(r.cache_write_tokens))
                .push_bind(to_i64(r.cache_write_1h_tokens))
                .push_bind(to_i64(r.reasoning_tokens))
                .push_bind(r.price.cache_write_per_mtok)
                .push_bind(r.price.cache_write_1h_per_mtok)
                .push_bind(r.cache_saved_nanos);
        });
        q.build().execute(&mut *conn).await?;
    }
    add_to_rollups(conn, records).await
}

/// Adds `records` to `usage_daily` (see [`daily_rollup`]): a few rows per batch.
async fn add_to_rollups(
    conn: &mut sqlx::SqliteConnection,
    records: &[UsageRecord],
) -> Result<(), sqlx::Error> {
    for chunk in super::pow2_chunks(&daily_rollup(records), ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO usage_daily (day, cloud, model, tenant, requests, input_tokens, \
             output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos, \
             cache_saved_nanos) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.day.format("%Y-%m-%d").to_string())
                .push_bind(&r.cloud)
                .push_bind(&r.model)
                .push_bind(&r.tenant)
                .push_bind(to_i64(r.requests))
                .push_bind(to_i64(r.input_tokens))
                .push_bind(to_i64(r.output_tokens))
                .push_bind(to_i64(r.cached_tokens))
                .push_bind(to_i64(r.cache_write_tokens))
                .push_bind(to_i64(r.reasoning_tokens))
                .push_bind(r.cost_nanos)
                .push_bind(r.cache_saved_nanos);
        });
        q.push(
            " ON CONFLICT (day, cloud, model, tenant) DO UPDATE SET \
             requests = requests + excluded.requests, \
             input_tokens = input_tokens + excluded.input_tokens, \
             output_tokens = output_tokens + excluded.output_tokens, \
             cached_tokens = cached_tokens + excluded.cached_tokens, \
             cache_write_tokens = cache_write_tokens + excluded.cache_write_tokens, \
             reasoning_tokens = reasoning_tokens + excluded.reasoning_tokens, \
             cost_nanos = cost_nanos + excluded.cost_nanos, \
             cache_saved_nanos = cache_saved_nanos + excluded.cache_saved_nanos",
        );
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(super) async fn summary(
    pool: &SqlitePool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageSummaryRow>, StoreError> {
    if let (Some(first), Some(end)) = (whole_day(from), whole_day(to)) {
        let rows = sqlx::query(
            "SELECT day, cloud, model, tenant, requests, input_tokens, output_tokens,
                    cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos,
                    cache_saved_nanos
             FROM usage_daily WHERE day >= ?1 AND day < ?2
             ORDER BY day, cloud, model, tenant",
        )
        .bind(day_text(first))
        .bind(day_text(end))
        .fetch_all(pool)
        .await?;
        return rows.iter().map(summary_from_row).collect();
    }
    let rows = sqlx::query(
        "SELECT substr(at, 1, 10) AS day, cloud, model, tenant, COUNT(*) AS requests,
                SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
                SUM(cached_tokens) AS cached_tokens, SUM(cache_write_tokens) AS cache_write_tokens,
                SUM(reasoning_tokens) AS reasoning_tokens, SUM(cost_nanos) AS cost_nanos,
                SUM(cache_saved_nanos) AS cache_saved_nanos
         FROM usage_ledger WHERE at >= ?1 AND at < ?2
         GROUP BY day, cloud, model, tenant ORDER BY day, cloud, model, tenant",
    )
    .bind(timestamp(from))
    .bind(timestamp(to))
    .fetch_all(pool)
    .await?;
    rows.iter().map(summary_from_row).collect()
}

pub(super) async fn daily_cost(
    pool: &SqlitePool,
    cloud: &str,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Result<Vec<DailyCost>, StoreError> {
    // Whole days at both ends (or no lower bound): the rollups answer.
    let first = match from {
        None => Some(None),
        Some(f) => whole_day(f).map(Some),
    };
    let rows = if let (Some(first), Some(end)) = (first, whole_day(to)) {
        sqlx::query(
            "SELECT day, SUM(cost_nanos) AS cost_nanos
             FROM usage_daily WHERE cloud = ?1 AND (?2 IS NULL OR day >= ?2) AND day < ?3
             GROUP BY day ORDER BY day",
        )
        .bind(cloud)
        .bind(first.map(day_text))
        .bind(day_text(end))
        .fetch_all(pool)
        .await?
    } else {
        sqlx::query(
            "SELECT substr(at, 1, 10) AS day, SUM(cost_nanos) AS cost_nanos
             FROM usage_ledger WHERE cloud = ?1 AND (?2 IS NULL OR at >= ?2) AND at < ?3
             GROUP BY day ORDER BY day",
        )
        .bind(cloud)
        .bind(from.map(timestamp))
        .bind(timestamp(to))
        .fetch_all(pool)
        .await?
    };
    rows.iter()
        .map(|row| {
            Ok(DailyCost {
                day: parse_day(row)?,
                cost_nanos: row.try_get("cost_nanos")?,
            })
        })
        .collect()
}

pub(super) async fn records(
    pool: &SqlitePool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<UsageRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM usage_ledger WHERE at >= ?1 AND at < ?2 ORDER BY at, id LIMIT ?3"
    );
    let rows = sqlx::query(&sql)
        .bind(timestamp(from))
        .bind(timestamp(to))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

/// See [`crate::Store::served_usage`]. The lower bound moves with the cursor so every page
/// is an index range starting where the last one ended (no rescans: linear in the period).
pub(super) async fn served(
    pool: &SqlitePool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<UsageCursor>,
    limit: u32,
) -> Result<Vec<(UsageCursor, UsageRecord)>, StoreError> {
    let (lower, last_id) = after.map_or((from, -1), |c| (c.at.max(from), c.id));
    let sql = format!(
        "SELECT id, {COLUMNS} FROM usage_ledger
         WHERE at >= ?1 AND at < ?2 AND outcome = 'ok' AND (at > ?1 OR id > ?3)
         ORDER BY at, id LIMIT ?4"
    );
    let rows = sqlx::query(&sql)
        .bind(timestamp(lower))
        .bind(timestamp(to))
        .bind(last_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let r = record_from_row(row)?;
            let id: i64 = row.try_get("id")?;
            Ok((UsageCursor { at: r.at, id }, r))
        })
        .collect()
}

pub(super) async fn count(pool: &SqlitePool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(pool)
        .await?;
    Ok(to_u64(n))
}

/// SQLite integers are i64; token counts beyond i64::MAX cannot happen, saturate anyway.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn parse_day(row: &SqliteRow) -> Result<NaiveDate, StoreError> {
    let day: String = row.try_get("day")?;
    NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|_| StoreError::Corrupt {
        table: "usage_ledger",
        column: "at",
    })
}

fn summary_from_row(row: &SqliteRow) -> Result<UsageSummaryRow, StoreError> {
    Ok(UsageSummaryRow {
        day: parse_day(row)?,
        cloud: row.try_get("cloud")?,
        model: row.try_get("model")?,
        tenant: row.try_get("tenant")?,
        requests: to_u64(row.try_get("requests")?),
        input_tokens: to_u64(row.try_get("input_tokens")?),
        output_tokens: to_u64(row.try_get("output_tokens")?),
        cached_tokens: to_u64(row.try_get("cached_tokens")?),
        cache_write_tokens: to_u64(row.try_get("cache_write_tokens")?),
        reasoning_tokens: to_u64(row.try_get("reasoning_tokens")?),
        cost_nanos: row.try_get("cost_nanos")?,
        cache_saved_nanos: row.try_get("cache_saved_nanos")?,
    })
}

pub(super) fn record_from_row(row: &SqliteRow) -> Result<UsageRecord, StoreError> {
    let at: String = row.try_get("at")?;
    let upstream: Option<i64> = row.try_get("upstream_status")?;
    let ttft: Option<i64> = row.try_get("ttft_ms")?;
    let needs: Option<String> = row.try_get("needs")?;
    let estimated: Option<i64> = row.try_get("estimated_tokens")?;
    let input_price: f64 = row.try_get("price_input_per_mtok")?;
    // NULL on rows from before migration 0017, which were billed at the input price.
    let write_price: Option<f64> = row.try_get("price_cache_write_per_mtok")?;
    let write_1h_price: Option<f64> = row.try_get("price_cache_write_1h_per_mtok")?;
    Ok(UsageRecord {
        at: parse_timestamp(&at, "usage_ledger", "at")?,
        request_id: row.try_get("request_id")?,
        tenant: row.try_get("tenant")?,
        key_id: row.try_get("key_id")?,
        model: row.try_get("model")?,
        cloud: row.try_get("cloud")?,
        deployment: row.try_get("deployment")?,
        input_tokens: to_u64(row.try_get("input_tokens")?),
        output_tokens: to_u64(row.try_get("output_tokens")?),
        cached_tokens: to_u64(row.try_get("cached_tokens")?),
        cache_write_tokens: to_u64(row.try_get("cache_write_tokens")?),
        cache_write_1h_tokens: to_u64(row.try_get("cache_write_1h_tokens")?),
        reasoning_tokens: to_u64(row.try_get("reasoning_tokens")?),
        cache_saved_nanos: row.try_get("cache_saved_nanos")?,
        usage_estimated: row.try_get("usage_estimated")?,
        price: RecordedPrice {
            input_per_mtok: input_price,
            output_per_mtok: row.try_get("price_output_per_mtok")?,
            cached_input_per_mtok: row.try_get("price_cached_per_mtok")?,
            cache_write_per_mtok: write_price.unwrap_or(input_price),
            cache_write_1h_per_mtok: write_1h_price.unwrap_or(input_price),
        },
        cost_nanos: row.try_get("cost_nanos")?,
        outcome: row.try_get("outcome")?,
        upstream_status: upstream.and_then(|s| u16::try_from(s).ok()),
        latency_ms: to_u64(row.try_get("latency_ms")?),
        ttft_ms: ttft.map(to_u64),
        needs: needs.map(|n| split_needs(&n)),
        estimated_tokens: estimated.map(to_u64),
    })
}
