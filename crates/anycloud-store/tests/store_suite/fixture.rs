//! The per-backend fixture, the `both_backends!` macro and the records tests share.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use anycloud_store::governance::AuditEntry;
use anycloud_store::testing::PgSchema;
use anycloud_store::{open, RecordedPrice, Store, TenantRecord, UsageRecord};

/// A fresh database of one backend.
pub struct Fixture {
    pub url: String,
    raw: Raw,
    _guard: Guard,
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

#[allow(dead_code)] // held for its Drop
enum Guard {
    Dir(tempfile::TempDir),
    Schema(PgSchema),
}

impl Fixture {
    pub async fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        // The side connection creates the (empty) file; stores migrate it when they open.
        let raw = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
            .await
            .expect("raw sqlite");
        Fixture {
            url,
            raw: Raw::Sqlite(raw),
            _guard: Guard::Dir(dir),
        }
    }

    pub async fn postgres() -> Option<Fixture> {
        let schema = PgSchema::create().await?;
        let url = schema.url();
        let raw = sqlx::PgPool::connect(&url).await.expect("raw postgres");
        Some(Fixture {
            url,
            raw: Raw::Postgres(raw),
            _guard: Guard::Schema(schema),
        })
    }

    /// A migrated store on the fixture's database; each call opens another pool, as
    /// another gateway instance would.
    pub async fn open(&self) -> Arc<dyn Store> {
        open(&self.url).await.expect("open")
    }

    /// A store with tenants `acme` and `globex` synced.
    pub async fn with_tenants(&self) -> Arc<dyn Store> {
        let store = self.open().await;
        store
            .sync_tenants(&[tenant("acme", json!({})), tenant("globex", json!({}))])
            .await
            .expect("sync");
        store
    }

    /// Runs `;`-separated statements on the side connection.
    pub async fn exec(&self, sql: &str) {
        for stmt in sql.split(';').filter(|s| !s.trim().is_empty()) {
            match &self.raw {
                Raw::Sqlite(p) => sqlx::query(stmt).execute(p).await.map(|_| ()),
                Raw::Postgres(p) => sqlx::query(stmt).execute(p).await.map(|_| ()),
            }
            .expect(stmt);
        }
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&$crate::fixture::Fixture::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(f) = $crate::fixture::Fixture::postgres().await else { return };
                    super::$name(&f).await;
                }
            )*
        }
    };
}

pub fn tenant(name: &str, policy: serde_json::Value) -> TenantRecord {
    TenantRecord {
        name: name.to_owned(),
        policy,
    }
}

pub fn t(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().expect("time")
}

/// 2026-11-01T00:00:00Z in milliseconds.
pub const NOV_1: i64 = 1_793_491_200_000;
pub const DAY: i64 = 86_400_000;

pub fn entry(i: i64) -> AuditEntry {
    AuditEntry {
        at: t(NOV_1 + i * 1000),
        actor: format!("key:k{i}"),
        tenant: Some("acme".into()),
        action: "ai.chat_completions".into(),
        model: Some("gpt-4o".into()),
        cloud: Some("azure-us".into()),
        request_id: Some(format!("req_{i}")),
        status: Some(200),
        latency_ms: Some(12),
        input_tokens: Some(10 + i),
        output_tokens: Some(5),
        cost_usd: Some(0.000_125 * i as f64),
        route: Some(json!([{"cloud": "azure-us", "outcome": "ok", "ms": 1.5}])),
        detail: None,
    }
}

pub fn usage(at: DateTime<Utc>, cloud: &str, model: &str, tenant: &str, cost: i64) -> UsageRecord {
    UsageRecord {
        at,
        request_id: format!("req_{}", at.timestamp_micros()),
        tenant: tenant.into(),
        key_id: "k1".into(),
        model: model.into(),
        cloud: cloud.into(),
        deployment: format!("{model}-dep"),
        input_tokens: 100,
        output_tokens: 20,
        cached_tokens: 10,
        cache_write_tokens: 20,
        cache_write_1h_tokens: 5,
        reasoning_tokens: 7,
        cache_saved_nanos: -30,
        usage_estimated: false,
        price: RecordedPrice {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
            cached_input_per_mtok: 1.25,
            cache_write_per_mtok: 3.0,
            cache_write_1h_per_mtok: 4.0,
        },
        cost_nanos: cost,
        outcome: "ok".into(),
        upstream_status: Some(200),
        latency_ms: 120,
        ttft_ms: Some(40),
        needs: Some(vec!["chat".into(), "stream".into()]),
        estimated_tokens: Some(120),
    }
}
