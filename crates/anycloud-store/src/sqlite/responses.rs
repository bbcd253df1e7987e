//! SQL for stored Responses API state (table `responses`).

use chrono::{DateTime, Utc};
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
        row.map(|row| {
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
        })
        .transpose()
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use crate::{SqliteStore, Store, StoredResponse};
    use chrono::{Duration, Utc};

    fn doc(id: &str, tenant: &str, ttl: Duration) -> StoredResponse {
        let now = Utc::now();
        StoredResponse {
            id: id.into(),
            tenant: tenant.into(),
            created_at: now,
            expires_at: now + ttl,
            key_id: Some("k1".into()),
            body: b"sealed".to_vec(),
        }
    }

    #[tokio::test]
    async fn responses_are_per_tenant_expire_and_purge() {
        let s = SqliteStore::open_in_memory().await.unwrap();
        let now = Utc::now();
        s.put_response(&doc("resp_a", "t1", Duration::days(1)))
            .await
            .unwrap();
        s.put_response(&doc("resp_old", "t1", Duration::seconds(-1)))
            .await
            .unwrap();
        let got = s.get_response("t1", "resp_a", now).await.unwrap().unwrap();
        assert_eq!(
            (got.body.as_slice(), got.key_id.as_deref()),
            (&b"sealed"[..], Some("k1"))
        );
        assert!(
            s.get_response("t2", "resp_a", now).await.unwrap().is_none(),
            "other tenant"
        );
        assert!(
            s.get_response("t1", "resp_old", now)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
        // Another tenant cannot overwrite or delete it.
        s.put_response(&StoredResponse {
            body: b"evil".to_vec(),
            ..doc("resp_a", "t2", Duration::days(1))
        })
        .await
        .unwrap();
        assert_eq!(
            s.get_response("t1", "resp_a", now)
                .await
                .unwrap()
                .unwrap()
                .body,
            b"sealed"
        );
        assert!(!s.delete_response("t2", "resp_a").await.unwrap());
        assert_eq!(s.purge_responses(now).await.unwrap(), 1);
        assert!(s.delete_response("t1", "resp_a").await.unwrap());
        assert!(s.get_response("t1", "resp_a", now).await.unwrap().is_none());
    }
}
