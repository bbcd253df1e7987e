//! SQL for the usage ledger on PostgreSQL (`usage_ledger`, migration 0002).
//!
//! Like SQLite's: multi-row inserts inside one transaction per batch, which also adds the
//! batch's sums to the daily rollups (`usage_daily`, migration 0020); reports over whole
//! UTC days read those, other ranges aggregate in SQL over an index range on `at`. Days are
//! UTC days of `at`.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};

use super::ms;
use crate::usage::{
    daily_rollup, split_needs, whole_day, DailyCost, RecordedPrice, UsageCursor, UsageRecord,
    UsageSummaryRow,
};
use crate::StoreError;

/// Rows per INSERT statement: 27 bound parameters each stays well under PostgreSQL's limit
/// of 65 535 parameters per statement.
const ROWS_PER_STATEMENT: usize = 1_000;

pub(crate) const COLUMNS: &str = "at, request_id, tenant, key_id, model, cloud, deployment, \
    input_tokens, output_tokens, cached_tokens, usage_estimated, price_input_per_mtok, \
    price_output_per_mtok, price_cached_per_mtok, cost_nanos, outcome, upstream_status, \
    latency_ms, ttft_ms, needs, estimated_tokens, cache_write_tokens, cache_write_1h_tokens, \
    reasoning_tokens, price_cache_write_per_mtok, price_cache_write_1h_per_mtok, \
    cache_saved_nanos";

pub(super) async fn insert(pool: &PgPool, records: &[UsageRecord]) -> Result<(), StoreError> {
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
    pool: &PgPool,
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
    conn: &mut sqlx::PgConnection,
    records: &[UsageRecord],
) -> Result<(), sqlx::Error> {
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Postgres> =
            QueryBuilder::new(format!("INSERT INTO usage_ledger ({COLUMNS}) "));
        q.push_values(chunk, |mut b, r| {
            b.push_bind(ms(r.at))
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
                .push_bind(r.upstream_status.map(i32::from))
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
    conn: &mut sqlx::PgConnection,
    records: &[UsageRecord],
) -> Result<(), sqlx::Error> {
    for chunk in daily_rollup(records).chunks(ROWS_PER_STATEMENT) {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO usage_daily (day, cloud, model, tenant, requests, input_tokens, \
             output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos, \
             cache_saved_nanos) ",
        );
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.day)
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
             requests = usage_daily.requests + EXCLUDED.requests, \
             input_tokens = usage_daily.input_tokens + EXCLUDED.input_tokens, \
             output_tokens = usage_daily.output_tokens + EXCLUDED.output_tokens, \
             cached_tokens = usage_daily.cached_tokens + EXCLUDED.cached_tokens, \
             cache_write_tokens = usage_daily.cache_write_tokens + EXCLUDED.cache_write_tokens, \
             reasoning_tokens = usage_daily.reasoning_tokens + EXCLUDED.reasoning_tokens, \
             cost_nanos = usage_daily.cost_nanos + EXCLUDED.cost_nanos, \
             cache_saved_nanos = usage_daily.cache_saved_nanos + EXCLUDED.cache_saved_nanos",
        );
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn summary(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageSummaryRow>, StoreError> {
    if let (Some(first), Some(end)) = (whole_day(from), whole_day(to)) {
        let rows = sqlx::query(
            "SELECT day, cloud, model, tenant, requests, input_tokens, output_tokens,
                    cached_tokens, cache_write_tokens, reasoning_tokens, cost_nanos,
                    cache_saved_nanos
             FROM usage_daily WHERE day >= $1 AND day < $2
             ORDER BY day, cloud, model, tenant",
        )
        .bind(first)
        .bind(end)
        .fetch_all(pool)
        .await?;
        return rows.iter().map(summary_from_row).collect();
    }
    // SUM(bigint) is numeric in PostgreSQL; cast back so it decodes as i64.
    let rows = sqlx::query(
        "SELECT (at AT TIME ZONE 'UTC')::date AS day, cloud, model, tenant,
                COUNT(*) AS requests,
                SUM(input_tokens)::bigint AS input_tokens,
                SUM(output_tokens)::bigint AS output_tokens,
                SUM(cached_tokens)::bigint AS cached_tokens,
                SUM(cache_write_tokens)::bigint AS cache_write_tokens,
                SUM(reasoning_tokens)::bigint AS reasoning_tokens,
                SUM(cost_nanos)::bigint AS cost_nanos,
                SUM(cache_saved_nanos)::bigint AS cache_saved_nanos
         FROM usage_ledger WHERE at >= $1 AND at < $2
         GROUP BY day, cloud, model, tenant ORDER BY day, cloud, model, tenant",
    )
    .bind(ms(from))
    .bind(ms(to))
    .fetch_all(pool)
    .await?;
    rows.iter().map(summary_from_row).collect()
}

pub(super) async fn daily_cost(
    pool: &PgPool,
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
            "SELECT day, SUM(cost_nanos)::bigint AS cost_nanos
             FROM usage_daily
             WHERE cloud = $1 AND ($2::date IS NULL OR day >= $2) AND day < $3
             GROUP BY day ORDER BY day",
        )
        .bind(cloud)
        .bind(first)
        .bind(end)
        .fetch_all(pool)
        .await?
    } else {
        sqlx::query(
            "SELECT (at AT TIME ZONE 'UTC')::date AS day, SUM(cost_nanos)::bigint AS cost_nanos
             FROM usage_ledger
             WHERE cloud = $1 AND ($2::timestamptz IS NULL OR at >= $2) AND at < $3
             GROUP BY day ORDER BY day",
        )
        .bind(cloud)
        .bind(from.map(ms))
        .bind(ms(to))
        .fetch_all(pool)
        .await?
    };
    rows.iter()
        .map(|row| {
            Ok(DailyCost {
                day: row.try_get::<NaiveDate, _>("day")?,
                cost_nanos: row.try_get("cost_nanos")?,
            })
        })
        .collect()
}

pub(super) async fn records(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<UsageRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM usage_ledger WHERE at >= $1 AND at < $2 ORDER BY at, id LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(ms(from))
        .bind(ms(to))
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter().map(record_from_row).collect()
}

/// See [`crate::Store::served_usage`] and the SQLite twin: the lower bound moves with the
/// cursor so each page is an index range.
pub(super) async fn served(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<UsageCursor>,
    limit: u32,
) -> Result<Vec<(UsageCursor, UsageRecord)>, StoreError> {
    let (lower, last_id) = after.map_or((from, -1), |c| (c.at.max(from), c.id));
    let sql = format!(
        "SELECT id, {COLUMNS} FROM usage_ledger
         WHERE at >= $1 AND at < $2 AND outcome = 'ok' AND (at > $1 OR id > $3)
         ORDER BY at, id LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(ms(lower))
        .bind(ms(to))
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

pub(super) async fn count(pool: &PgPool) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger")
        .fetch_one(pool)
        .await?;
    Ok(to_u64(n))
}

/// Token counts beyond i64::MAX cannot happen; saturate anyway.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn summary_from_row(row: &PgRow) -> Result<UsageSummaryRow, StoreError> {
    Ok(UsageSummaryRow {
        day: row.try_get("day")?,
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

pub(crate) fn record_from_row(row: &PgRow) -> Result<UsageRecord, StoreError> {
    let upstream: Option<i32> = row.try_get("upstream_status")?;
    let ttft: Option<i64> = row.try_get("ttft_ms")?;
    let needs: Option<String> = row.try_get("needs")?;
    let estimated: Option<i64> = row.try_get("estimated_tokens")?;
    let input_price: f64 = row.try_get("price_input_per_mtok")?;
    // NULL on rows from before migration 0017, which were billed at the input price.
    let write_price: Option<f64> = row.try_get("price_cache_write_per_mtok")?;
    let write_1h_price: Option<f64> = row.try_get("price_cache_write_1h_per_mtok")?;
    Ok(UsageRecord {
        at: row.try_get("at")?,
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
