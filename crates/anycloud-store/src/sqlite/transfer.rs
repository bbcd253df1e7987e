//! SQLite implementation of [`TransferStore`]: keyset-paged reads of every table and
//! inserts that keep every value as read (see `crate::transfer`).

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::governance::{audit_from_row, capture_from_row, insert_audit_rows, set_head};
use super::responses::response_from_row;
use super::usage::record_from_row;
use super::{key_from_row, parse_timestamp, timestamp, SqliteStore};
use crate::transfer::{
    import_error, AuditHead, Cursor, KeyPolicyRow, LedgerTotals, Page, SpendRow, Table, TenantRow,
    TransferStore, UsageRow,
};
use crate::StoreError;

/// The page query for `table`, bound like PostgreSQL's: `?1` the text key, `?2` the second
/// text key, `?3` the integer key, `?4` the limit (see [`Cursor::binds`]).
fn export_sql(table: Table) -> String {
    let by_text = |cols: &str, from: &str, key: &str| {
        format!(
            "SELECT {cols} FROM {from} WHERE (?1 IS NULL OR {key} > ?1) ORDER BY {key} LIMIT ?4"
        )
    };
    match table {
        Table::Tenants => by_text("name, policy, created_at, updated_at", "tenants", "name"),
        Table::Keys => by_text(super::KEY_COLUMNS, "keys", "id"),
        Table::KeyPolicies => by_text("key_id, policy, updated_at", "key_policies", "key_id"),
        Table::Usage => format!(
            "SELECT id, {} FROM usage_ledger WHERE id > ?3 ORDER BY id LIMIT ?4",
            super::usage::COLUMNS
        ),
        Table::Audit => format!(
            "SELECT {} FROM audit_log WHERE seq > ?3 ORDER BY seq LIMIT ?4",
            super::governance::AUDIT_COLUMNS
        ),
        Table::AuditHead => {
            "SELECT id, seq, hash FROM audit_head WHERE id > ?3 ORDER BY id LIMIT ?4".into()
        }
        Table::Spend => "SELECT scope, period_start, spent_usd FROM budget_spend
             WHERE (?1 IS NULL OR (scope, period_start) > (?1, ?2))
             ORDER BY scope, period_start LIMIT ?4"
            .into(),
        Table::Captures => by_text(
            "request_id, at, tenant, key_id, nonce, ciphertext",
            "captured_payloads",
            "request_id",
        ),
        Table::Responses => by_text(super::responses::COLUMNS, "responses", "id"),
    }
}

fn policy(row: &SqliteRow, table: &'static str) -> Result<serde_json::Value, StoreError> {
    let text: String = row.try_get("policy")?;
    serde_json::from_str(&text).map_err(|_| StoreError::Corrupt {
        table,
        column: "policy",
    })
}

fn time(
    row: &SqliteRow,
    table: &'static str,
    column: &'static str,
) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    let text: String = row.try_get(column)?;
    parse_timestamp(&text, table, column)
}

fn collect<T>(
    rows: &[SqliteRow],
    f: impl Fn(&SqliteRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(f).collect()
}

fn page_from_rows(table: Table, r: &[SqliteRow]) -> Result<Page, StoreError> {
    Ok(match table {
        Table::Tenants => Page::Tenants(collect(r, |row| {
            Ok(TenantRow {
                name: row.try_get("name")?,
                policy: policy(row, "tenants")?,
                created_at: time(row, "tenants", "created_at")?,
                updated_at: time(row, "tenants", "updated_at")?,
            })
        })?),
        Table::Keys => Page::Keys(collect(r, key_from_row)?),
        Table::KeyPolicies => Page::KeyPolicies(collect(r, |row| {
            Ok(KeyPolicyRow {
                key_id: row.try_get("key_id")?,
                policy: policy(row, "key_policies")?,
                updated_at: time(row, "key_policies", "updated_at")?,
            })
        })?),
        Table::Usage => Page::Usage(collect(r, |row| {
            Ok(UsageRow {
                id: row.try_get("id")?,
                record: record_from_row(row)?,
            })
        })?),
        Table::Audit => Page::Audit(collect(r, audit_from_row)?),
        Table::AuditHead => Page::AuditHead(collect(r, |row| {
            Ok(AuditHead {
                seq: row.try_get("seq")?,
                hash: row.try_get("hash")?,
            })
        })?),
        Table::Spend => Page::Spend(collect(r, |row| {
            Ok(SpendRow {
                scope: row.try_get("scope")?,
                period_start: row.try_get("period_start")?,
                spent_usd: row.try_get("spent_usd")?,
            })
        })?),
        Table::Captures => Page::Captures(collect(r, capture_from_row)?),
        Table::Responses => Page::Responses(collect(r, response_from_row)?),
    })
}

/// Writes one page's rows on `conn` (inside the caller's transaction).
async fn import(conn: &mut SqliteConnection, page: &Page) -> Result<(), sqlx::Error> {
    match page {
        Page::Tenants(v) => {
            for t in v {
                sqlx::query(
                    "INSERT INTO tenants (name, policy, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .bind(&t.name)
                .bind(t.policy.to_string())
                .bind(timestamp(t.created_at))
                .bind(timestamp(t.updated_at))
                .execute(&mut *conn)
                .await?;
            }
        }
        Page::Keys(v) => {
            for k in v {
                sqlx::query(&format!(
                    "INSERT INTO keys ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    super::KEY_COLUMNS
                ))
                .bind(&k.id)
                .bind(&k.tenant)
                .bind(&k.name)
                .bind(&k.key_hash)
                .bind(&k.key_prefix)
                .bind(timestamp(k.created_at))
                .bind(k.revoked_at.map(timestamp))
                .execute(&mut *conn)
                .await?;
            }
        }
        Page::KeyPolicies(v) => {
            for p in v {
                sqlx::query(
                    "INSERT INTO key_policies (key_id, policy, updated_at) VALUES (?1, ?2, ?3)",
                )
                .bind(&p.key_id)
                .bind(p.policy.to_string())
                .bind(timestamp(p.updated_at))
                .execute(&mut *conn)
                .await?;
            }
        }
        Page::Usage(v) => {
            let records: Vec<_> = v.iter().map(|r| r.record.clone()).collect();
            super::usage::insert_on(conn, &records).await?;
        }
        Page::Audit(v) => insert_audit_rows(conn, v).await?,
        Page::AuditHead(v) => {
            for h in v {
                set_head(conn, h.seq, &h.hash).await?;
            }
        }
        Page::Spend(v) => {
            for s in v {
                sqlx::query(
                    "INSERT INTO budget_spend (scope, period_start, spent_usd)
                     VALUES (?1, ?2, ?3)",
                )
                .bind(&s.scope)
                .bind(&s.period_start)
                .bind(s.spent_usd)
                .execute(&mut *conn)
                .await?;
            }
        }
        Page::Captures(v) => {
            for c in v {
                sqlx::query(
                    "INSERT INTO captured_payloads
                         (request_id, at, tenant, key_id, nonce, ciphertext)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .bind(&c.request_id)
                .bind(timestamp(c.at))
                .bind(&c.tenant)
                .bind(&c.key_id)
                .bind(&c.nonce)
                .bind(&c.ciphertext)
                .execute(&mut *conn)
                .await?;
            }
        }
        Page::Responses(v) => {
            for r in v {
                super::responses::insert_on(conn, r).await?;
            }
        }
    }
    Ok(())
}

#[async_trait]
impl TransferStore for SqliteStore {
    async fn count(&self, table: Table) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.as_str());
        let n: i64 = sqlx::query_scalar(&sql).fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn export_page(
        &self,
        table: Table,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Page, StoreError> {
        let (text, text2, int) = Cursor::binds(after);
        let rows = sqlx::query(&export_sql(table))
            .bind(text)
            .bind(text2)
            .bind(int)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        page_from_rows(table, &rows)
    }

    async fn import_page(&self, page: &Page) -> Result<(), StoreError> {
        let table = page.table();
        let mut tx = self.pool.begin().await?;
        import(&mut tx, page)
            .await
            .map_err(|e| import_error(e, table))?;
        tx.commit().await?;
        Ok(())
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // The ledger's daily rollups (migration 0020) go with the ledger.
        sqlx::query("DELETE FROM usage_daily")
            .execute(&mut *tx)
            .await?;
        for table in Table::ALL.iter().rev() {
            sqlx::query(&format!("DELETE FROM {}", table.as_str()))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn location(&self) -> Result<String, StoreError> {
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&self.pool)
                .await?;
        if file.is_empty() {
            // In memory: private to this store.
            return Ok(format!("sqlite memory {:p}", self));
        }
        let path = std::fs::canonicalize(&file).unwrap_or_else(|_| file.into());
        Ok(format!("sqlite {}", path.display()))
    }

    async fn ledger_totals(&self) -> Result<LedgerTotals, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS records, COALESCE(SUM(input_tokens), 0) AS input_tokens,
                    COALESCE(SUM(output_tokens), 0) AS output_tokens,
                    COALESCE(SUM(cached_tokens), 0) AS cached_tokens,
                    COALESCE(SUM(cache_write_tokens), 0) AS cache_write_tokens,
                    COALESCE(SUM(cache_write_1h_tokens), 0) AS cache_write_1h_tokens,
                    COALESCE(SUM(reasoning_tokens), 0) AS reasoning_tokens,
                    COALESCE(SUM(cost_nanos), 0) AS cost_nanos,
                    COALESCE(SUM(cache_saved_nanos), 0) AS cache_saved_nanos
             FROM usage_ledger",
        )
        .fetch_one(&self.pool)
        .await?;
        let u = |c: &str| -> Result<u64, StoreError> {
            Ok(u64::try_from(row.try_get::<i64, _>(c)?).unwrap_or(0))
        };
        Ok(LedgerTotals {
            records: u("records")?,
            input_tokens: u("input_tokens")?,
            output_tokens: u("output_tokens")?,
            cached_tokens: u("cached_tokens")?,
            cache_write_tokens: u("cache_write_tokens")?,
            cache_write_1h_tokens: u("cache_write_1h_tokens")?,
            reasoning_tokens: u("reasoning_tokens")?,
            cost_nanos: row.try_get("cost_nanos")?,
            cache_saved_nanos: row.try_get("cache_saved_nanos")?,
        })
    }
}
