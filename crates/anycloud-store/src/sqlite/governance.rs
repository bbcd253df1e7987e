//! SQLite implementation of [`GovernanceStore`]: `audit_log` + `audit_head`,
//! `budget_spend`, `key_policies`, `captured_payloads` (migration 0003).

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{parse_timestamp, timestamp, SqliteStore};
use crate::governance::{
    AuditEntry, AuditQuery, AuditRecord, CaptureRecord, ChainKeys, ChainStatus, ChainVerifier,
    GovernanceStore, GENESIS_HASH,
};
use crate::StoreError;

pub(super) const AUDIT_COLUMNS: &str =
    "seq, at, actor, tenant, action, model, cloud, request_id, status, \
     latency_ms, input_tokens, output_tokens, cost_usd, route, detail, prev_hash, hash";

/// Rows read per page when walking the whole chain, so memory stays bounded.
const VERIFY_PAGE: i64 = 5_000;

fn json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

fn json_col(row: &SqliteRow, col: &'static str) -> Result<Option<Value>, StoreError> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|_| StoreError::Corrupt {
            table: "audit_log",
            column: col,
        })
    })
    .transpose()
}

pub(super) fn audit_from_row(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    let at: String = row.try_get("at")?;
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        entry: AuditEntry {
            at: parse_timestamp(&at, "audit_log", "at")?,
            actor: row.try_get("actor")?,
            tenant: row.try_get("tenant")?,
            action: row.try_get("action")?,
            model: row.try_get("model")?,
            cloud: row.try_get("cloud")?,
            request_id: row.try_get("request_id")?,
            status: row.try_get("status")?,
            latency_ms: row.try_get("latency_ms")?,
            input_tokens: row.try_get("input_tokens")?,
            output_tokens: row.try_get("output_tokens")?,
            cost_usd: row.try_get("cost_usd")?,
            route: json_col(row, "route")?,
            detail: json_col(row, "detail")?,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Inserts one chained row as given (seq and hashes included); appends and `store copy`
/// both write through here. The timestamp is stored at the precision it is hashed with.
/// Rows per multi-row audit INSERT: 17 parameters a row stays below SQLite's bind limit
/// (32,766 since 3.32).
const AUDIT_ROWS_PER_STATEMENT: usize = 512;

/// Inserts chained records with one multi-row statement per [`AUDIT_ROWS_PER_STATEMENT`].
pub(super) async fn insert_audit_rows(
    conn: &mut sqlx::SqliteConnection,
    records: &[AuditRecord],
) -> Result<(), sqlx::Error> {
    for chunk in super::pow2_chunks(records, AUDIT_ROWS_PER_STATEMENT) {
        let mut q: sqlx::QueryBuilder<sqlx::Sqlite> =
            sqlx::QueryBuilder::new(format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) "));
        q.push_values(chunk, |mut b, r| {
            let e = &r.entry;
            b.push_bind(r.seq)
                .push_bind(timestamp(e.at))
                .push_bind(&e.actor)
                .push_bind(&e.tenant)
                .push_bind(&e.action)
                .push_bind(&e.model)
                .push_bind(&e.cloud)
                .push_bind(&e.request_id)
                .push_bind(e.status)
                .push_bind(e.latency_ms)
                .push_bind(e.input_tokens)
                .push_bind(e.output_tokens)
                .push_bind(e.cost_usd)
                .push_bind(json_text(&e.route))
                .push_bind(json_text(&e.detail))
                .push_bind(&r.prev_hash)
                .push_bind(&r.hash);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(super) async fn set_head(
    conn: &mut sqlx::SqliteConnection,
    seq: i64,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(seq)
    .bind(hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

type Stamps<'a> = Option<(&'a str, &'a [Option<crate::spool::Stamp>])>;

impl SqliteStore {
    /// Chains and inserts `entries`; with stamps, only those no earlier try chained.
    async fn append_chained(
        &self,
        entries: &[AuditEntry],
        stamps: Stamps<'_>,
        keys: &ChainKeys,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        // BEGIN IMMEDIATE takes the write lock first, so two writers cannot both read the
        // same head and fork the chain.
        let mut conn = self.pool.acquire().await?;
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        let result = async {
            let entries = match stamps {
                Some((spool, stamps)) => {
                    let keep = super::marks::claim(&mut conn, spool, stamps).await?;
                    crate::spool::kept(entries, &keep)
                }
                None => std::borrow::Cow::Borrowed(entries),
            };
            let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_optional(&mut *conn)
                .await?;
            let (mut seq, mut prev): (i64, String) = match head {
                Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
                None => (0, GENESIS_HASH.to_string()),
            };
            let mut out = Vec::with_capacity(entries.len());
            for e in entries.iter() {
                seq += 1;
                let record = AuditRecord {
                    seq,
                    hash: keys.hash(&prev, seq, e),
                    entry: e.clone(),
                    prev_hash: prev,
                };
                prev = record.hash.clone();
                out.push(record);
            }
            if !out.is_empty() {
                insert_audit_rows(&mut conn, &out).await?;
                set_head(&mut conn, seq, &prev).await?;
            }
            Ok::<_, StoreError>(out)
        }
        .await;
        match result {
            Ok(out) => {
                sqlx::query("COMMIT").execute(&mut *conn).await?;
                Ok(out)
            }
            Err(e) => {
                let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
                Err(e)
            }
        }
    }

    async fn upsert_spend(
        conn: &mut sqlx::SqliteConnection,
        deltas: &[(String, String, f64)],
    ) -> Result<(), StoreError> {
        for (scope, period, usd) in deltas {
            sqlx::query(
                "INSERT INTO budget_spend (scope, period_start, spent_usd) VALUES (?1, ?2, ?3)
                 ON CONFLICT (scope, period_start) DO UPDATE
                 SET spent_usd = spent_usd + excluded.spent_usd",
            )
            .bind(scope)
            .bind(period)
            .bind(usd)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl GovernanceStore for SqliteStore {
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        keys: &ChainKeys,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.append_chained(entries, None, keys).await
    }

    async fn append_audit_once(
        &self,
        batch: &crate::spool::Batch<AuditEntry>,
        keys: &ChainKeys,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.append_chained(&batch.items, Some((batch.spool, &batch.stamps)), keys)
            .await
    }

    async fn add_spend_once(
        &self,
        batch: &crate::spool::Batch<(String, String, f64)>,
    ) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let keep = super::marks::claim(&mut tx, batch.spool, &batch.stamps).await?;
        let deltas = crate::governance::aggregate_spend(&crate::spool::kept(&batch.items, &keep));
        Self::upsert_spend(&mut tx, &deltas).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_log
             WHERE (?1 IS NULL OR at >= ?1) AND (?2 IS NULL OR at < ?2)
               AND (?3 IS NULL OR tenant = ?3) AND (?4 IS NULL OR cloud = ?4)
               AND (?5 IS NULL OR action = ?5) AND (?6 IS NULL OR seq > ?6)
             ORDER BY seq LIMIT ?7"
        );
        let rows = sqlx::query(&sql)
            .bind(q.from.map(timestamp))
            .bind(q.to.map(timestamp))
            .bind(&q.tenant)
            .bind(&q.cloud)
            .bind(&q.action)
            .bind(q.after)
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn verify_audit(&self, keys: &ChainKeys) -> Result<ChainStatus, StoreError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| Ok::<_, StoreError>((r.try_get("seq")?, r.try_get("hash")?)))
            .transpose()?;
        // Page by page in seq order, holding one page and the previous hash.
        let mut v = ChainVerifier::new(keys);
        let mut after = i64::MIN;
        loop {
            let sql = format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            );
            let rows = sqlx::query(&sql)
                .bind(after)
                .bind(VERIFY_PAGE)
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                after = seq;
                match audit_from_row(row) {
                    Ok(r) => v.feed(&r),
                    Err(StoreError::Corrupt { column, .. }) => v.unreadable(seq, column),
                    Err(e) => return Err(e),
                }
            }
            if (rows.len() as i64) < VERIFY_PAGE || v.is_broken() {
                break;
            }
        }
        Ok(v.finish(head))
    }

    async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
            .map(|r| Ok((r.try_get("seq")?, r.try_get("hash")?)))
            .transpose()
    }

    async fn audit_entry(&self, seq: i64) -> Result<Option<AuditRecord>, StoreError> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq = ?1");
        let row = sqlx::query(&sql)
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(audit_from_row).transpose()
    }

    async fn add_spend(&self, deltas: &[(String, String, f64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        Self::upsert_spend(&mut tx, deltas).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn spend(&self, scope: &str, period_start: &str) -> Result<f64, StoreError> {
        let row = sqlx::query(
            "SELECT spent_usd FROM budget_spend WHERE scope = ?1 AND period_start = ?2",
        )
        .bind(scope)
        .bind(period_start)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(r) => r.try_get("spent_usd")?,
            None => 0.0,
        })
    }

    async fn set_key_policy(&self, key_id: &str, policy: &Value) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO key_policies (key_id, policy, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (key_id) DO UPDATE SET policy = excluded.policy,
                                                updated_at = excluded.updated_at",
        )
        .bind(key_id)
        .bind(policy.to_string())
        .bind(timestamp(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn key_policy(&self, key_id: &str) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query("SELECT policy FROM key_policies WHERE key_id = ?1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let text: String = r.try_get("policy")?;
            serde_json::from_str(&text).map_err(|_| StoreError::Corrupt {
                table: "key_policies",
                column: "policy",
            })
        })
        .transpose()
    }

    async fn insert_capture(&self, c: &CaptureRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO captured_payloads
             (request_id, at, tenant, key_id, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&c.request_id)
        .bind(timestamp(c.at))
        .bind(&c.tenant)
        .bind(&c.key_id)
        .bind(&c.nonce)
        .bind(&c.ciphertext)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn capture(&self, request_id: &str) -> Result<Option<CaptureRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT request_id, at, tenant, key_id, nonce, ciphertext
             FROM captured_payloads WHERE request_id = ?1",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(capture_from_row).transpose()
    }
}

pub(super) fn capture_from_row(r: &SqliteRow) -> Result<CaptureRecord, StoreError> {
    let at: String = r.try_get("at")?;
    Ok(CaptureRecord {
        request_id: r.try_get("request_id")?,
        at: parse_timestamp(&at, "captured_payloads", "at")?,
        tenant: r.try_get("tenant")?,
        key_id: r.try_get("key_id")?,
        nonce: r.try_get("nonce")?,
        ciphertext: r.try_get("ciphertext")?,
    })
}
