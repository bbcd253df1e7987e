//! The gateway's persistent state behind one [`Store`] trait, used as `Arc<dyn Store>`.
//!
//! It holds tenants (synced from the config), virtual API keys (stored only as hashes, see
//! [`keys`]), the usage ledger ([`usage`]), governance state (audit chain, spend, key
//! policies, captures: [`governance`]) and stored Responses API documents.
//!
//! One folder per backend, each with its own SQL and its own migrations:
//! - [`sqlite`]: `src/sqlite/`, `migrations/sqlite/` — the default and the demo store;
//! - [`postgres`]: `src/postgres/`, `migrations/postgres/` — several instances sharing state.
//!
//! [`open`] picks the backend from the URL scheme and applies pending migrations;
//! [`open_unmigrated`] leaves the schema alone ([`migrate`] reports and applies them).
//! [`transfer`] and [`copy`] move every record between stores (`anycloud store copy`);
//! `testing` (feature `test-util`) gives tests a fresh PostgreSQL schema. [`create_key`] and [`authenticate`] are
//! the backend-independent key workflows the CLI, the admin API and the auth middleware use.

pub mod copy;
pub mod error;
pub mod governance;
pub mod keys;
pub mod migrate;
pub mod postgres;
pub mod residency;
pub mod spool;
pub mod sqlite;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod transfer;
pub mod usage;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use error::StoreError;
pub use governance::{
    aggregate_spend, AuditEntry, AuditQuery, AuditRecord, CaptureRecord, ChainKeys, ChainStatus,
    ChainVerifier, GovernanceStore,
};
pub use migrate::MigrationInfo;
pub use postgres::PgStore;
pub use residency::{ContentKind, ContentWrite, Residency, ResidentStore};
pub use sqlite::SqliteStore;
pub use transfer::{Page, Table, TransferStore};
pub use usage::{
    DailyCost, RecordedPrice, UsageCursor, UsageRecord, UsageSummaryRow, NANOS_PER_USD,
};

/// Everything the gateway persists. Implementations must be cheap to share across tasks.
#[async_trait]
pub trait Store: GovernanceStore + TransferStore + Send + Sync + std::fmt::Debug {
    /// The backend's name, for logs and `/health`: `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// The content stores by jurisdiction when content is kept apart from this store
    /// ([`residency::ResidentStore`]); `None` when it all lives here.
    fn residency(&self) -> Option<&residency::Residency> {
        None
    }

    /// Readiness: succeeds when the database answers a trivial query.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The schema migrations this build has that the database has not applied, in order.
    async fn pending_migrations(&self) -> Result<Vec<MigrationInfo>, StoreError>;

    /// Applies pending migrations one at a time, calling `applied` after each, and returns
    /// them (empty when up to date). Safe to run from several instances at once: each
    /// backend takes its migration lock.
    async fn migrate(
        &self,
        applied: &(dyn for<'m> Fn(&'m MigrationInfo) + Send + Sync),
    ) -> Result<Vec<MigrationInfo>, StoreError>;

    /// Inserts or updates every tenant given (by name). Tenants absent from `tenants` are left
    /// alone: their keys still reference them.
    async fn sync_tenants(&self, tenants: &[TenantRecord]) -> Result<(), StoreError>;

    /// All tenants, ordered by name.
    async fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;

    /// Stores a new key. Fails with [`StoreError::UnknownTenant`] if the tenant has not been
    /// synced, and [`StoreError::Conflict`] if the id or hash already exists.
    async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError>;

    /// The key with this id, revoked or not.
    async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// All keys, or one tenant's, ordered by creation time; revoked keys included.
    async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, StoreError>;

    /// Marks the key revoked and returns it; `None` if there is no such key. Idempotent: a
    /// second revocation keeps the first `revoked_at`.
    async fn revoke_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// Stores (or replaces, for the same tenant) a Responses API document.
    async fn put_response(&self, r: &StoredResponse) -> Result<(), StoreError>;

    /// The tenant's stored response, if it exists and has not expired. Another tenant's id
    /// reads as absent.
    async fn get_response(
        &self,
        tenant: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredResponse>, StoreError>;

    /// Deletes the tenant's stored response; false if there was none.
    async fn delete_response(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    /// Deletes every response that expired at or before `now`; returns how many.
    async fn purge_responses(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    // --- The usage ledger (`usage_ledger`); see [`usage`]. ---

    /// Appends `records` in one transaction: all or none.
    async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError>;

    /// [`Store::insert_usage`] for a spool's batch, once per [`spool::Stamp`]: records an
    /// earlier try already committed (its acknowledgement lost) are skipped.
    async fn insert_usage_once(&self, batch: &spool::Batch<UsageRecord>) -> Result<(), StoreError>;

    /// Deletes `spool`'s marks (`spool_marks`) of `origins`: spool instances whose records
    /// can never be tried again (see [`spool::ForgetFn`] for when that is known).
    async fn forget_spool_marks(&self, spool: &str, origins: &[i64]) -> Result<(), StoreError>;

    /// Usage records with `from <= at < to`, summed per UTC day, cloud, model and tenant.
    async fn usage_summary(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<UsageSummaryRow>, StoreError>;

    /// One cloud's spend per UTC day with `from <= at < to` (no lower bound without `from`),
    /// days with no records omitted, in day order.
    async fn daily_cost(
        &self,
        cloud: &str,
        from: Option<DateTime<Utc>>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DailyCost>, StoreError>;

    /// Usage records with `from <= at < to`, oldest first, at most `limit`.
    async fn usage_records(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>, StoreError>;

    /// The number of usage records.
    async fn usage_count(&self) -> Result<u64, StoreError>;

    /// The served attempts (`outcome = 'ok'`, one per served request) with
    /// `from <= at < to`, ordered by time then id, at most `limit`, after `after` (keyset
    /// paging: a replay streams a period page by page with flat memory).
    async fn served_usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<UsageCursor>,
        limit: u32,
    ) -> Result<Vec<(UsageCursor, UsageRecord)>, StoreError>;
}

/// A stored Responses API document. `body` is opaque to the store: the server seals
/// (encrypts) it before storing, and `key_id` names the key that did.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    pub id: String,
    pub tenant: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub key_id: Option<String>,
    pub body: Vec<u8>,
}

/// A tenant as the store keeps it: its name and its policy from the config, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub name: String,
    pub policy: serde_json::Value,
}

/// A key to insert: everything but the timestamps, which the store sets.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    pub key_hash: String,
    pub key_prefix: String,
}

/// A stored key. Serializes without `key_hash`, for listings and the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRecord {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    #[serde(skip_serializing)]
    pub key_hash: String,
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl KeyRecord {
    /// Whether the key has been revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// Opens the store named by `url`, creating the database if missing and applying migrations.
///
/// - `sqlite://relative/path.db` (relative to the working directory),
///   `sqlite:///abs/path.db`, `sqlite::memory:`; the file and its directory are created.
/// - `postgres://user:password@host:port/db` or `postgresql://…` (sqlx's parameters, e.g.
///   `sslmode=require`, `options=-c search_path=<schema>`); the database must exist.
/// - Any other scheme fails with [`StoreError::UnsupportedUrl`] naming the scheme only.
///
/// No error ever repeats the URL: a `postgres://` URL may hold a password.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let store = open_unmigrated(url).await?;
    store.migrate(&|_| {}).await?;
    Ok(store)
}

/// Opens the store named by `url` like [`open`] (an SQLite file is still created), without
/// applying migrations: for `anycloud migrate` and `store.auto_migrate = false`.
pub async fn open_unmigrated(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(StoreError::InvalidUrl {
            reason: "missing scheme (expected sqlite://<path> or postgres://…)",
        });
    };
    match scheme {
        "sqlite" => Ok(Arc::new(SqliteStore::open_unmigrated(rest).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(PgStore::open_unmigrated(url).await?)),
        other => Err(StoreError::UnsupportedUrl {
            scheme: other.to_owned(),
        }),
    }
}

/// Generates a key for `tenant`, stores its hash, and returns the record with the clear key.
/// The returned `SecretString` is the only time the clear key exists: show it once.
pub async fn create_key(
    store: &dyn Store,
    tenant: &str,
    name: Option<&str>,
) -> Result<(KeyRecord, SecretString), StoreError> {
    let generated = keys::generate();
    let record = store
        .insert_key(&NewKey {
            id: generated.id,
            tenant: tenant.to_owned(),
            name: name.map(str::to_owned),
            key_hash: generated.hash,
            key_prefix: generated.prefix,
        })
        .await?;
    Ok((record, generated.key))
}

/// Resolves a presented key to its record: `None` if malformed, unknown, wrong or revoked.
///
/// The id is parsed from the key, the row found by id, and the hash compared in constant
/// time, so timing reveals nothing about the secret.
pub async fn authenticate(
    store: &dyn Store,
    presented: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    let Some(id) = keys::parse_id(presented) else {
        return Ok(None);
    };
    let Some(record) = store.key_by_id(id).await? else {
        return Ok(None);
    };
    if !keys::verify(presented, &record.key_hash) || record.is_revoked() {
        return Ok(None);
    }
    Ok(Some(record))
}

/// [`authenticate`] for callers holding the presented key as a `SecretString`.
pub async fn authenticate_secret(
    store: &dyn Store,
    presented: &SecretString,
) -> Result<Option<KeyRecord>, StoreError> {
    authenticate(store, presented.expose_secret()).await
}
