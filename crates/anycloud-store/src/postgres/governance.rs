//! PostgreSQL implementation of [`GovernanceStore`]: `audit_log` + `audit_head`,
//! `budget_spend`, `key_policies`, `captured_payloads` (migration 0003).
//!
//! The audit chain is one total order across every instance sharing the database: an
//! append takes a transaction-scoped advisory lock (keyed on the schema, so schemas never
//! wait on each other), then reads the head and writes its entries and the new head before
//! committing, which releases the lock. Under READ COMMITTED each statement after the lock
//! sees every earlier append, so no two appends can read the same head.

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{ms, PgStore};
use crate::governance::{
    AuditEntry, AuditQuery, AuditRecord, CaptureRecord, ChainKeys, ChainStatus, ChainVerifier,
    GovernanceStore, GENESIS_HASH,
};
use crate::StoreError;

/// `json` columns are read back as text, so the bytes hashed are the bytes written.
pub(crate) const AUDIT_COLUMNS: &str = "seq, at, actor, tenant, action, model, cloud, \
     request_id, status, latency_ms, input_tokens, output_tokens, cost_usd, \
     route::text AS route, detail::text AS detail, prev_hash, hash";

/// The advisory lock's first key: "AC" for anycloud's audit chain. The second key is a hash
/// of the schema name.
const AUDIT_LOCK_CLASS: i32 = 0x4143;

/// Rows read per page when walking the whole chain, so memory per query stays bounded.
const VERIFY_PAGE: i64 = 5_000;

pub(crate) fn json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

fn json_col(row: &PgRow, col: &'static str) -> Result<Option<Value>, StoreError> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|_| StoreError::Corrupt {
            table: "audit_log",
            column: col,
        })
    })
    .transpose()
}

pub(crate) fn audit_from_row(row: &PgRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        entry: AuditEntry {
            at: row.try_get("at")?,
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
/// both write through here.
/// Rows per multi-row audit INSERT: 17 parameters a row stays far below PostgreSQL's
/// 65,535 bind limit.
const AUDIT_ROWS_PER_STATEMENT: usize = 1_000;

/// Inserts chained records with one multi-row statement per [`AUDIT_ROWS_PER_STATEMENT`]
/// (one round trip per batch instead of one per entry: what lets the chain keep up).
pub(crate) async fn insert_audit_rows(
    conn: &mut sqlx::PgConnection,
    records: &[AuditRecord],
) -> Result<(), sqlx::Error> {
    for chunk in records.chunks(AUDIT_ROWS_PER_STATEMENT) {
        let mut q: sqlx::QueryBuilder<sqlx::Postgres> = sqlx::QueryBuilder::new(
            "INSERT INTO audit_log (seq, at, actor, tenant, action, model, cloud, request_id,
             status, latency_ms, input_tokens, output_tokens, cost_usd, route, detail,
             prev_hash, hash) ",
        );
        q.push_values(chunk, |mut b, r| {
            let e = &r.entry;
            b.push_bind(r.seq)
                .push_bind(ms(e.at))
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
                .push_unseparated("::json")
                .push_bind(json_text(&e.detail))
                .push_unseparated("::json")
                .push_bind(&r.prev_hash)
                .push_bind(&r.hash);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

pub(crate) async fn set_head(
    conn: &mut sqlx::PgConnection,
    seq: i64,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .bind(seq)
    .bind(hash)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

type Stamps<'a> = Option<(&'a str, &'a [Option<crate::spool::Stamp>])>;

impl PgStore {
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
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
            .bind(AUDIT_LOCK_CLASS)
            .execute(&mut *tx)
            .await?;
        let entries = match stamps {
            Some((spool, stamps)) => {
                let keep = super::marks::claim(&mut tx, spool, stamps).await?;
                crate::spool::kept(entries, &keep)
            }
            None => std::borrow::Cow::Borrowed(entries),
        };
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (mut seq, mut prev): (i64, String) = match head {
            Some(r) => (r.try_get("seq")?, r.try_get("hash")?),
            None => (0, GENESIS_HASH.to_string()),
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries.iter() {
            seq += 1;
            let mut entry = e.clone();
            entry.at = ms(e.at);
            let record = AuditRecord {
                seq,
                hash: keys.hash(&prev, seq, &entry),
                entry,
                prev_hash: prev,
            };
            prev = record.hash.clone();
            out.push(record);
        }
        if !out.is_empty() {
            insert_audit_rows(&mut tx, &out).await?;
            set_head(&mut tx, seq, &prev).await?;
        }
        // Dropping the transaction on an error rolls it back and releases the lock.
        tx.commit().await?;
        Ok(out)
    }

    async fn upsert_spend(
        conn: &mut sqlx::PgConnection,
        deltas: &[(String, String, f64)],
    ) -> Result<(), StoreError> {
        for (scope, period, usd) in deltas {
            sqlx::query(
                "INSERT INTO budget_spend (scope, period_start, spent_usd) VALUES ($1, $2, $3)
                 ON CONFLICT (scope, period_start) DO UPDATE
                 SET spent_usd = budget_spend.spent_usd + excluded.spent_usd",
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
impl GovernanceStore for PgStore {
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
             WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::timestamptz IS NULL OR at < $2)
               AND ($3::text IS NULL OR tenant = $3) AND ($4::text IS NULL OR cloud = $4)
               AND ($5::text IS NULL OR action = $5) AND ($6::bigint IS NULL OR seq > $6)
             ORDER BY seq LIMIT $7"
        );
        let rows = sqlx::query(&sql)
            .bind(q.from.map(ms))
            .bind(q.to.map(ms))
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
        // One snapshot for the head and every page: appends by other instances meanwhile
        // are simply not seen, instead of looking like rows written past the head.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| Ok::<_, StoreError>((r.try_get("seq")?, r.try_get("hash")?)))
            .transpose()?;
        // Page by page in seq order, holding one page and the previous hash.
        let mut v = ChainVerifier::new(keys);
        let mut after = i64::MIN;
        loop {
            let sql = format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            );
            let rows = sqlx::query(&sql)
                .bind(after)
                .bind(VERIFY_PAGE)
                .fetch_all(&mut *tx)
                .await?;
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                after = seq;
                match audit_from_row(row) {
                    Ok(r) => v.feed(&r),
                    Err(StoreError::Corrupt { column, .. }) => v.unreadable(seq, column),
                    // A column PostgreSQL itself can no longer decode is the same story.
                    Err(StoreError::Database(_)) => v.unreadable(seq, "content"),
                    Err(e) => return Err(e),
                }
            }
            if (rows.len() as i64) < VERIFY_PAGE || v.is_broken() {
                break;
            }
        }
        tx.commit().await?;
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
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE seq = $1");
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
            "SELECT spent_usd FROM budget_spend WHERE scope = $1 AND period_start = $2",
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
            "INSERT INTO key_policies (key_id, policy, updated_at) VALUES ($1, $2::jsonb, $3)
             ON CONFLICT (key_id) DO UPDATE SET policy = excluded.policy,
                                                updated_at = excluded.updated_at",
        )
        .bind(key_id)
        .bind(policy.to_string())
        .bind(ms(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn key_policy(&self, key_id: &str) -> Result<Option<Value>, StoreError> {
        let row = sqlx::query("SELECT policy::text AS policy FROM key_policies WHERE key_id = $1")
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
            "INSERT INTO captured_payloads (request_id, at, tenant, key_id, nonce, ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (request_id) DO UPDATE SET at = excluded.at, tenant = excluded.tenant,
                 key_id = excluded.key_id, nonce = excluded.nonce,
                 ciphertext = excluded.ciphertext",
        )
        .bind(&c.request_id)
        .bind(ms(c.at))
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
             FROM captured_payloads WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(capture_from_row).transpose()
    }
}

pub(crate) fn capture_from_row(r: &PgRow) -> Result<CaptureRecord, StoreError> {
    Ok(CaptureRecord {
        request_id: r.try_get("request_id")?,
        at: r.try_get("at")?,
        tenant: r.try_get("tenant")?,
        key_id: r.try_get("key_id")?,
        nonce: r.try_get("nonce")?,
        ciphertext: r.try_get("ciphertext")?,
    })
}
