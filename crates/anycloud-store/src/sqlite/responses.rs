//! SQL for stored Responses API state (table `responses`).

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{parse_timestamp, timestamp, SqliteStore};
use crate::{StoreError, StoredResponse};

impl SqliteStore {
    pub(crate) async fn put_response_sql(&self, r: &StoredResponse) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO responses (id, tenant, created_at, expires_at, key_id, body)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET body = excluded.body, key_id = excluded.key_id,
                 expires_at = excluded.expires_at
             WHERE responses.tenant = excluded.tenant",
        )
        .bind(&r.id)
        .bind(&r.tenant)
        .bind(timestamp(r.created_at))
        .bind(timestamp(r.expires_at))
        .bind(&r.key_id)
        .bind(&r.body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Another tenant's id, and an expired response, read as absent.
    pub(crate) async fn get_response_sql(
        &self,
        tenant: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>, StoreError> {
        let row = sqlx::query(
            "SELECT id, tenant, created_at, expires_at, key_id, body FROM responses
             WHERE id = ? AND tenant = ? AND expires_at > ?",
        )
        .bind(id)
        .bind(tenant)
        .bind(timestamp(now))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(response_from_row).transpose()
    }

    pub(crate) async fn delete_response_sql(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM responses WHERE id = ? AND tenant = ?")
            .bind(id)
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn purge_responses_sql(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM responses WHERE expires_at <= ?")
            .bind(timestamp(now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

pub(super) const COLUMNS: &str = "id, tenant, created_at, expires_at, key_id, body";

pub(super) fn response_from_row(row: &SqliteRow) -> Result<StoredResponse, StoreError> {
    let created_at: String = row.try_get("created_at")?;
    let expires_at: String = row.try_get("expires_at")?;
    Ok(StoredResponse {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        created_at: parse_timestamp(&created_at, "responses", "created_at")?,
        expires_at: parse_timestamp(&expires_at, "responses", "expires_at")?,
        key_id: row.try_get("key_id")?,
        body: row.try_get("body")?,
    })
}

/// Inserts as given, for `store copy`: an existing id is an error, not an update.
pub(super) async fn insert_on(
    conn: &mut sqlx::SqliteConnection,
    r: &StoredResponse,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "INSERT INTO responses ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))
    .bind(&r.id)
    .bind(&r.tenant)
    .bind(timestamp(r.created_at))
    .bind(timestamp(r.expires_at))
    .bind(&r.key_id)
    .bind(&r.body)
    .execute(conn)
    .await?;
    Ok(())
}
