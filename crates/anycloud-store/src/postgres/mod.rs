//! The PostgreSQL backend: [`PgStore`], its connection settings, and its SQL — for several
//! gateway instances sharing one database.
//!
//! It mirrors `src/sqlite/` module by module (`usage`, `responses`, `governance`) and its
//! schema lives in `migrations/postgres/`, version for version the same tables as SQLite's.
//! Queries are checked at run time, like SQLite's, so building needs no database.
//!
//! Timestamps are `timestamptz`, written truncated to the millisecond ([`ms`]): the
//! precision SQLite keeps and the audit chain hashes (`governance::entry_hash`), so a record
//! reads back identical on both backends and `store copy` moves it without change.
//!
//! The connection URL may hold a password: it is parsed here and never kept, logged or put
//! in an error.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

mod governance;
mod marks;
mod responses;
mod transfer;
mod usage;

use crate::migrate::{self, MigrationInfo};
use crate::{
    DailyCost, KeyRecord, NewKey, Store, StoreError, StoredResponse, TenantRecord, UsageRecord,
    UsageSummaryRow,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per instance. Requests touch the store for key lookups and on a tracked task
/// afterwards (ledger, audit); ten keeps a busy instance from queueing without crowding a
/// server shared by several instances (PostgreSQL's default limit is 100).
const MAX_CONNECTIONS: u32 = 10;
/// How long a caller waits for a free connection (or a new one) before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

const KEY_COLUMNS: &str = "id, tenant, name, key_hash, key_prefix, created_at, revoked_at";

/// A [`Store`] on a PostgreSQL database (the schema is the connection's `search_path`).
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

/// Shows no connection details: they may include the password.
impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://` or `postgresql://`) and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::open_unmigrated(url).await?;
        store.migrate(&|_| {}).await?;
        Ok(store)
    }

    /// Connects without touching the schema; for `anycloud migrate` and
    /// `store.auto_migrate = false`.
    pub async fn open_unmigrated(url: &str) -> Result<Self, StoreError> {
        // sqlx's parse errors may quote the URL; say only what kind of problem it is.
        let options = PgConnectOptions::from_str(url).map_err(|_| StoreError::InvalidUrl {
            reason: "cannot parse the postgres URL (postgres://user:password@host:port/db)",
        })?;
        // Without this every start logs notices such as "relation _sqlx_migrations already
        // exists, skipping"; warnings and errors still come through.
        Self::connect(options.options([("client_min_messages", "warning")])).await
    }

    /// Connects with ready-made options (tests use this to pick a schema).
    pub async fn connect(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    /// Closes the pool; for orderly shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let now = ms(Utc::now());
        let mut tx = self.pool.begin().await?;
        for tenant in tenants {
            let policy =
                serde_json::to_string(&tenant.policy).map_err(|_| StoreError::Corrupt {
                    table: "tenants",
                    column: "policy",
                })?;
            // jsonb compares by value, so an unchanged policy leaves `updated_at` alone.
            sqlx::query(
                "INSERT INTO tenants (name, policy, created_at, updated_at)
                 VALUES ($1, $2::jsonb, $3, $3)
                 ON CONFLICT (name) DO UPDATE SET policy = excluded.policy,
                                                  updated_at = excluded.updated_at
                 WHERE tenants.policy IS DISTINCT FROM excluded.policy",
            )
            .bind(&tenant.name)
            .bind(policy)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let rows = sqlx::query("SELECT name, policy::text AS policy FROM tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        let sql = format!(
            "INSERT INTO keys (id, tenant, name, key_hash, key_prefix, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&key.id)
            .bind(&key.tenant)
            .bind(&key.name)
            .bind(&key.key_hash)
            .bind(&key.key_prefix)
            .bind(ms(Utc::now()))
            .fetch_one(&self.pool)
            .await
            .map_err(|err| insert_key_error(err, &key.tenant))?;
        key_from_row(&row)
    }

    async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE $1::text IS NULL OR tenant = $1
             ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql).bind(tenant).fetch_all(&self.pool).await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        // COALESCE keeps the first revocation time: revoking twice changes nothing.
        let sql = format!(
            "UPDATE keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2
             RETURNING {KEY_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(ms(Utc::now()))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn put_response(&self, r: &StoredResponse) -> Result<(), StoreError> {
        responses::put(&self.pool, r).await
    }

    async fn get_response(
        &self,
        tenant: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>, StoreError> {
        responses::get(&self.pool, tenant, id, now).await
    }

    async fn delete_response(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        responses::delete(&self.pool, tenant, id).await
    }

    async fn purge_responses(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        responses::purge(&self.pool, now).await
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

/// `at` truncated to the millisecond: what every timestamp is stored and compared as.
pub(crate) fn ms(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(3)
}

fn tenant_from_row(row: &PgRow) -> Result<TenantRecord, StoreError> {
    let policy: String = row.try_get("policy")?;
    Ok(TenantRecord {
        name: row.try_get("name")?,
        policy: serde_json::from_str(&policy).map_err(|_| StoreError::Corrupt {
            table: "tenants",
            column: "policy",
        })?,
    })
}

pub(crate) fn key_from_row(row: &PgRow) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        id: row.try_get("id")?,
        tenant: row.try_get("tenant")?,
        name: row.try_get("name")?,
        key_hash: row.try_get("key_hash")?,
        key_prefix: row.try_get("key_prefix")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}
