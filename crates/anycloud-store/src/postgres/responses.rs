//! SQL for stored Responses API state on PostgreSQL (table `responses`, migration 0005).

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;

use super::ms;
use crate::{StoreError, StoredResponse};

pub(crate) const COLUMNS: &str = "id, tenant, created_at, expires_at, key_id, body";

/// Stores or replaces; another tenant's row with the same id is left alone.
pub(super) async fn put(pool: &PgPool, r: &StoredResponse) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO responses (id, tenant, created_at, expires_at, key_id, body)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE SET body = excluded.body, key_id = excluded.key_id,
             expires_at = excluded.expires_at
         WHERE responses.tenant = excluded.tenant",
    )
    .bind(&r.id)
    .bind(&r.tenant)
    .bind(ms(r.created_at))
    .bind(ms(r.expires_at))
    .bind(&r.key_id)
    .bind(&r.body)
    .execute(pool)
    .await?;
    Ok(())
}

/// Inserts as given, for `store copy`: an existing id is an error, not an update.
pub(super) async fn insert_on(
    conn: &mut sqlx::PgConnection,
    r: &StoredResponse,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO responses ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"
    ))
    .bind(&r.id)
    .bind(&r.tenant)
    .bind(ms(r.created_at))
    .bind(ms(r.expires_at))
    .bind(&r.key_id)
    .bind(&r.body)
    .execute(conn)
    .await?;
    Ok(())
}

/// Another tenant's id, and an expired response, read as absent.
pub(super) async fn get(
    pool: &PgPool,
    tenant: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<StoredResponse>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM responses WHERE id = $1 AND tenant = $2 AND expires_at > $3"
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(tenant)
        .bind(ms(now))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(response_from_row).transpose()
}

pub(super) async fn delete(pool: &PgPool, tenant: &str, id: &str) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM responses WHERE id = $1 AND tenant = $2")
        .bind(id)
        .bind(tenant)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn purge(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM responses WHERE expires_at <= $1")
        .bind(ms(now))
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

pub(crate) fn response_from_row(row: &PgRow) -> Result<StoredResponse, StoreError> {
    Ok(StoredResponse {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        key_id: row.try_get("key_id")?,
        body: row.try_get("body")?,
    })
}
