//! The SQLite backend: [`SqliteStore`], its connection settings, and its SQL.
//!
//! All SQL for SQLite lives in this folder and its schema in `migrations/sqlite/`, embedded
//! at compile time; the PostgreSQL backend (`crate::postgres`) has its own folder and
//! migrations and implements the same [`Store`] trait.
//!
//! Queries are checked at run time (`sqlx::query` + `Row::try_get`), not with the `query!`
//! macros, so building needs no database.
//!
//! Timestamps are RFC 3339 text, UTC, millisecond precision, `Z` suffix: readable in the
//! sqlite3 shell, and fixed-width so that text order is time order.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;

mod marks;
mod responses;
mod transfer;
mod usage;

use crate::migrate::{self, MigrationInfo};
use crate::{
    DailyCost, KeyRecord, NewKey, Store, StoreError, StoredResponse, TenantRecord, UsageRecord,
    UsageSummaryRow,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Connections in a file-backed pool. SQLite has one writer at a time; a few connections let
/// readers (key lookups) proceed alongside it under WAL.
const MAX_CONNECTIONS: u32 = 4;
/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const KEY_COLUMNS: &str = "id, tenant, name, key_hash, key_prefix, created_at, revoked_at";

/// A [`Store`] on one SQLite database file (or an in-memory database).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// Where an `sqlite:` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Memory,
    File(PathBuf),
}

/// Parses what follows `sqlite:` in a URL: `//relative/path.db`, `///abs/path.db`,
/// `:memory:` (also `//:memory:`), or sqlx's own `relative/path.db`.
fn parse_location(rest: &str) -> Result<Location, StoreError> {
    if rest.contains('?') || rest.contains('#') {
        return Err(StoreError::InvalidUrl {
            reason: "query parameters are not supported in sqlite URLs",
        });
    }
    let path = rest.strip_prefix("//").unwrap_or(rest);
    match path {
        ":memory:" => Ok(Location::Memory),
        "" => Err(StoreError::InvalidUrl {
            reason: "sqlite URL has no path (expected sqlite://<path>)",
        }),
        p => Ok(Location::File(PathBuf::from(p))),
    }
}

impl SqliteStore {
    /// Opens from what follows `sqlite:` in a store URL; see [`crate::open`].
    pub async fn open(url_rest: &str) -> Result<Self, StoreError> {
        Self::migrated(Self::open_unmigrated(url_rest).await?).await
    }

    /// [`Self::open`] without applying migrations; see [`crate::open_unmigrated`].
    pub async fn open_unmigrated(url_rest: &str) -> Result<Self, StoreError> {
        match parse_location(url_rest)? {
            Location::Memory => Self::connect_in_memory().await,
            Location::File(path) => Self::connect_path(&path).await,
        }
    }

    /// Opens (creating if missing, with its parent directories) the database file at `path`
    /// and applies pending migrations.
    pub async fn open_path(path: &Path) -> Result<Self, StoreError> {
        Self::migrated(Self::connect_path(path).await?).await
    }

    async fn connect_path(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|source| StoreError::CreateDir {
                    path: dir.to_owned(),
                    source,
                })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Opens a private in-memory database, for tests and throwaway runs. It lives as long as
    /// the store: the pool keeps exactly one connection open forever, because an in-memory
    /// database vanishes with its last connection.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        Self::migrated(Self::connect_in_memory().await?).await
    }

    async fn connect_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    async fn migrated(self) -> Result<Self, StoreError> {
        self.migrate(&|_| {}).await?;
        Ok(self)
    }

    /// Closes the pool, checkpointing the WAL; for orderly shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn pending_migrations(&self) -> Result<Vec<MigrationInfo>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        migrate::pending(&MIGRATOR, &mut *conn).await
    }

    async fn migrate(
        &self,
        applied: &(dyn for<'m> Fn(&'m MigrationInfo) + Send + Sync),
    ) -> Result<Vec<MigrationInfo>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        migrate::apply(&MIGRATOR, &mut *conn, applied).await
    }

    async fn sync_tenants(&self, tenants: &[TenantRecord]) -> Result<(), StoreError> {
        let now = timestamp(Utc::now());
        let mut tx = self.pool.begin().await?;
        for tenant in tenants {
            // Policies are small; `Value`'s own serialization is deterministic for a given
            // value, so an unchanged policy leaves `updated_at` alone.
            let policy =
                serde_json::to_string(&tenant.policy).map_err(|_| StoreError::Corrupt {
                    table: "tenants",
                    column: "policy",
                })?;
            sqlx::query(
                "INSERT INTO tenants (name, policy, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (name) DO UPDATE SET policy = excluded.policy,
                                                  updated_at = excluded.updated_at
                 WHERE tenants.policy <> excluded.policy",
            )
            .bind(&tenant.name)
            .bind(policy)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, policy FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let sql = format!(
            "INSERT INTO keys (id, tenant, name, key_hash, key_prefix, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&key.id)
            .bind(&key.tenant)
            .bind(&key.name)
            .bind(&key.key_hash)
            .bind(&key.key_prefix)
            .bind(timestamp(Utc::now()))
            .fetch_one(&self.pool)
            .await
            .map_err(|err| insert_key_error(err, &key.tenant))?;
        key_from_row(&row)
    }

    async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = ?1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE ?1 IS NULL OR tenant = ?1
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql).bind(tenant).fetch_all(&self.pool).await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        // COALESCE keeps the first revocation time: revoking twice changes nothing.
        let sql = format!(
            "UPDATE keys SET revoked_at = COALESCE(revoked_at, ?1) WHERE id = ?2
             RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(timestamp(Utc::now()))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn put_response(&self, r: &StoredResponse) -> Result<(), StoreError> {
        self.put_response_sql(r).await
    }

    async fn get_response(
        &self,
        tenant: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>, StoreError> {
        self.get_response_sql(tenant, id, now).await
    }

    async fn delete_response(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.delete_response_sql(tenant, id).await
    }

    async fn purge_responses(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.purge_responses_sql(now).await
    }

    async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        usage::insert(&self.pool, records).await
    }

    async fn insert_usage_once(
        &self,
        batch: &crate::spool::Batch<UsageRecord>,
    ) -> Result<(), StoreError> {
        usage::insert_once(&self.pool, batch).await
    }

    async fn forget_spool_marks(&self, spool: &str, origins: &[i64]) -> Result<(), StoreError> {
        marks::forget(&self.pool, spool, origins).await?;
        Ok(())
    }

    async fn usage_summary(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageSummaryRow>, StoreError> {
        usage::summary(&self.pool, from, to).await
    }

    async fn daily_cost(
        &self,
        cloud: &str,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DailyCost>, StoreError> {
        usage::daily_cost(&self.pool, cloud, from, to).await
    }

    async fn usage_records(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>, StoreError> {
        usage::records(&self.pool, from, to, limit).await
    }

    async fn usage_count(&self) -> Result<u64, StoreError> {
        usage::count(&self.pool).await
    }

    async fn served_usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<crate::UsageCursor>,
        limit: u32,
    ) -> Result<Vec<(crate::UsageCursor, UsageRecord)>, StoreError> {
        usage::served(&self.pool, from, to, after, limit).await
    }
}

/// Maps constraint violations on `keys` to errors the caller can act on.
fn insert_key_error(err: sqlx::Error, tenant: &str) -> StoreError {
    if let sqlx::Error::Database(db) = &err {
        if db.is_foreign_key_violation() {
            return StoreError::UnknownTenant {
                tenant: tenant.to_owned(),
            };
        }
        if db.is_unique_violation() {
            return StoreError::Conflict { what: "key" };
        }
    }
    StoreError::Database(err)
}

/// Splits `items` into runs whose lengths are powers of two, at most `max`. A multi-row
/// INSERT's SQL then takes one of a few shapes, each prepared once and reused from sqlx's
/// statement cache; a statement per batch size was parsed again for nearly every batch,
/// about a tenth of the gateway's instructions per request (bench/README.md "Instruction
/// counts").
pub(crate) fn pow2_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        let n = rest.len().min(max);
        if n == 0 {
            return None;
        }
        // The largest power of two that is at most n.
        let n = 1usize << (usize::BITS - 1 - n.leading_zeros());
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Some(head)
    })
}

pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_timestamp(
    text: &str,
    table: &'static str,
    column: &'static str,
) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Corrupt { table, column })
}

fn tenant_from_row(row: &SqliteRow) -> Result<TenantRecord, StoreError> {
    let policy: String = row.try_get("policy")?;
    Ok(TenantRecord {
        name: row.try_get("name")?,
        policy: serde_json::from_str(&policy).map_err(|_| StoreError::Corrupt {
            table: "tenants",
            column: "policy",
        })?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<KeyRecord, StoreError> {
    let created_at: String = row.try_get("created_at")?;
    let revoked_at: Option<String> = row.try_get("revoked_at")?;
    Ok(KeyRecord {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        key_hash: row.try_get("key_hash")?,
        key_prefix: row.try_get("key_prefix")?,
        created_at: parse_timestamp(&created_at, "keys", "created_at")?,
        revoked_at: revoked_at
            .map(|t| parse_timestamp(&t, "keys", "revoked_at"))
            .transpose()?,
    })
}

mod governance;

#[cfg(test)]
mod tests;
