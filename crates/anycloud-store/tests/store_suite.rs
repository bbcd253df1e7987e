//! The store suite: every test body here runs on SQLite and on PostgreSQL (the
//! `both_backends!` macro makes a `sqlite::<name>` and a `postgres::<name>` test of each).
//!
//! A [`Fixture`] is a fresh database — an SQLite file in a temp dir, or a PostgreSQL schema
//! of its own (dropped afterwards) — plus a side connection for raw SQL, used to tamper with
//! the audit log. PostgreSQL tests skip with one loud line when no server can be reached,
//! and fail instead when `CI` is set (see `anycloud_store::testing`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use secrecy::ExposeSecret;
use serde_json::json;

use anycloud_store::copy;
use anycloud_store::governance::{AuditEntry, AuditQuery, CaptureRecord, ChainStatus};
use anycloud_store::testing::PgSchema;
use anycloud_store::transfer::Table;
use anycloud_store::{
    authenticate, create_key, keys, open, open_unmigrated, RecordedPrice, Store, StoreError,
    StoredResponse, TenantRecord, UsageRecord,
};

/// A fresh database of one backend.
struct Fixture {
    url: String,
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
    async fn sqlite() -> Fixture {
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

    async fn postgres() -> Option<Fixture> {
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
    async fn open(&self) -> Arc<dyn Store> {
        open(&self.url).await.expect("open")
    }

    /// A store with tenants `acme` and `globex` synced.
    async fn with_tenants(&self) -> Arc<dyn Store> {
        let store = self.open().await;
        store
            .sync_tenants(&[tenant("acme", json!({})), tenant("globex", json!({}))])
            .await
            .expect("sync");
        store
    }

    /// Runs `;`-separated statements on the side connection.
    async fn exec(&self, sql: &str) {
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
                    super::$name(&super::Fixture::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(f) = super::Fixture::postgres().await else { return };
                    super::$name(&f).await;
                }
            )*
        }
    };
}

both_backends!(
    migrations_are_listed_applied_once_and_idempotent,
    created_key_authenticates_and_revocation_sticks,
    keys_list_by_tenant_and_refuse_bad_inserts,
    sync_tenants_upserts,
    responses_are_per_tenant_expire_and_purge,
    usage_reports_sum_per_day_cloud_model_and_tenant,
    audit_chain_appends_queries_and_verifies,
    audit_tampering_is_detected,
    spend_policies_and_captures_round_trip,
    two_instances_appending_at_once_keep_one_chain,
    copy_moves_every_record_and_refuses_duplicates,
);

fn tenant(name: &str, policy: serde_json::Value) -> TenantRecord {
    TenantRecord {
        name: name.to_owned(),
        policy,
    }
}

fn t(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().expect("time")
}

/// 2026-11-01T00:00:00Z in milliseconds.
const NOV_1: i64 = 1_793_491_200_000;
const DAY: i64 = 86_400_000;

fn entry(i: i64) -> AuditEntry {
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

fn usage(at: DateTime<Utc>, cloud: &str, model: &str, tenant: &str, cost: i64) -> UsageRecord {
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
        usage_estimated: false,
        price: RecordedPrice {
            input_per_mtok: 2.5,
            output_per_mtok: 10.0,
            cached_input_per_mtok: 1.25,
        },
        cost_nanos: cost,
        outcome: "ok".into(),
        upstream_status: Some(200),
        latency_ms: 120,
        ttft_ms: Some(40),
    }
}

async fn migrations_are_listed_applied_once_and_idempotent(f: &Fixture) {
    // A fresh database: every migration is pending, and applied in order, once.
    let store = open_unmigrated(&f.url).await.expect("open");
    let all = store.pending_migrations().await.expect("pending");
    let versions: Vec<i64> = all.iter().map(|m| m.version).collect();
    assert_eq!(versions, vec![1, 2, 3, 5]);
    assert_eq!(
        store.pending_migrations().await.expect("pending"),
        all,
        "listing changes nothing"
    );
    let seen = std::sync::Mutex::new(Vec::new());
    let applied = store
        .migrate(&|m| seen.lock().unwrap().push(m.version))
        .await
        .expect("migrate");
    assert_eq!((applied, seen.lock().unwrap().clone()), (all, versions));
    assert!(store
        .pending_migrations()
        .await
        .expect("pending")
        .is_empty());
    assert!(store.migrate(&|_| {}).await.expect("migrate").is_empty());
    // Opening (as `serve` does) finds nothing to do either.
    f.open().await.ping().await.expect("ping");

    // Forget the newest migration: it is pending again and applying it reports it once.
    f.exec("DROP TABLE responses; DELETE FROM _sqlx_migrations WHERE version = 5")
        .await;
    let pending = store.pending_migrations().await.expect("pending");
    assert_eq!(
        pending.iter().map(|m| m.version).collect::<Vec<_>>(),
        vec![5]
    );
    let applied = store.migrate(&|_| {}).await.expect("migrate");
    assert_eq!(applied, pending);
    assert!(store
        .pending_migrations()
        .await
        .expect("pending")
        .is_empty());
    store
        .purge_responses(Utc::now())
        .await
        .expect("table is back");
}

async fn created_key_authenticates_and_revocation_sticks(f: &Fixture) {
    let store = f.with_tenants().await;
    let (record, key) = create_key(store.as_ref(), "acme", Some("ci"))
        .await
        .expect("create");
    assert_eq!(record.key_prefix, format!("sk-ac-{}", record.id));
    let found = authenticate(store.as_ref(), key.expose_secret())
        .await
        .expect("auth");
    assert_eq!(found, Some(record.clone()));

    // Same id, one character of the secret changed.
    let clear = key.expose_secret();
    let last = clear.chars().last().expect("non-empty");
    let forged = format!(
        "{}{}",
        &clear[..clear.len() - 1],
        if last == 'a' { 'b' } else { 'a' }
    );
    assert_eq!(
        authenticate(store.as_ref(), &forged).await.expect("auth"),
        None
    );

    let revoked = store
        .revoke_key(&record.id)
        .await
        .expect("revoke")
        .expect("exists");
    let at = revoked.revoked_at.expect("revoked_at");
    assert!(at >= record.created_at);
    let again = store
        .revoke_key(&record.id)
        .await
        .expect("revoke")
        .expect("exists");
    assert_eq!(
        again.revoked_at,
        Some(at),
        "the first revocation time stays"
    );
    assert_eq!(
        authenticate(store.as_ref(), key.expose_secret())
            .await
            .expect("auth"),
        None
    );
    assert_eq!(
        store.revoke_key("nosuchkey000").await.expect("revoke"),
        None
    );
    // Another instance reads the same key, revoked.
    let other = f.open().await;
    assert_eq!(other.key_by_id(&record.id).await.expect("get"), Some(again));
}

async fn keys_list_by_tenant_and_refuse_bad_inserts(f: &Fixture) {
    let store = f.with_tenants().await;
    let (a1, _) = create_key(store.as_ref(), "acme", Some("one"))
        .await
        .expect("create");
    let (g1, _) = create_key(store.as_ref(), "globex", None)
        .await
        .expect("create");
    let (a2, _) = create_key(store.as_ref(), "acme", Some("two"))
        .await
        .expect("create");
    store.revoke_key(&a2.id).await.expect("revoke");
    let mut acme: Vec<String> = store
        .list_keys(Some("acme"))
        .await
        .expect("list")
        .into_iter()
        .map(|k| k.id)
        .collect();
    acme.sort();
    let mut expected = vec![a1.id.clone(), a2.id.clone()];
    expected.sort();
    assert_eq!(acme, expected, "revoked keys are listed too");
    let globex = store.list_keys(Some("globex")).await.expect("list");
    assert_eq!(
        globex.iter().map(|k| &k.id).collect::<Vec<_>>(),
        vec![&g1.id]
    );
    assert_eq!(store.list_keys(None).await.expect("list").len(), 3);
    assert!(store
        .list_keys(Some("nobody"))
        .await
        .expect("list")
        .is_empty());

    let err = create_key(store.as_ref(), "initech", None)
        .await
        .expect_err("unknown tenant");
    assert!(
        matches!(err, StoreError::UnknownTenant { ref tenant } if tenant == "initech"),
        "{err:?}"
    );
    assert_eq!(err.kind(), "unknown_tenant");
    let dup = anycloud_store::NewKey {
        id: a1.id.clone(),
        tenant: "acme".into(),
        name: None,
        key_hash: keys::generate().hash,
        key_prefix: a1.key_prefix.clone(),
    };
    let err = store.insert_key(&dup).await.expect_err("duplicate id");
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

async fn sync_tenants_upserts(f: &Fixture) {
    let store = f.with_tenants().await;
    store
        .sync_tenants(&[
            tenant("acme", json!({"models": ["gpt-4o"], "budget_usd": 100})),
            tenant("initech", json!({"clouds": ["aws-eu"]})),
        ])
        .await
        .expect("sync");
    assert_eq!(
        store.list_tenants().await.expect("list"),
        vec![
            tenant("acme", json!({"models": ["gpt-4o"], "budget_usd": 100})),
            tenant("globex", json!({})),
            tenant("initech", json!({"clouds": ["aws-eu"]})),
        ]
    );
    store.sync_tenants(&[]).await.expect("empty sync");
    assert_eq!(store.list_tenants().await.expect("list").len(), 3);
}

async fn responses_are_per_tenant_expire_and_purge(f: &Fixture) {
    let store = f.open().await;
    let now = Utc::now();
    let doc = |id: &str, tenant: &str, ttl: Duration, body: &[u8]| StoredResponse {
        id: id.into(),
        tenant: tenant.into(),
        created_at: now,
        expires_at: now + ttl,
        key_id: Some("k1".into()),
        body: body.to_vec(),
    };
    store
        .put_response(&doc("resp_a", "t1", Duration::days(1), b"sealed"))
        .await
        .unwrap();
    store
        .put_response(&doc("resp_old", "t1", Duration::seconds(-1), b"x"))
        .await
        .unwrap();
    let got = store
        .get_response("t1", "resp_a", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.body.as_slice(), got.key_id.as_deref()),
        (&b"sealed"[..], Some("k1"))
    );
    // Timestamps read back at millisecond precision on both backends.
    assert_eq!(got.created_at.timestamp_millis(), now.timestamp_millis());
    assert_eq!(got.created_at.timestamp_subsec_nanos() % 1_000_000, 0);
    assert!(
        store
            .get_response("t2", "resp_a", now)
            .await
            .unwrap()
            .is_none(),
        "other tenant"
    );
    assert!(
        store
            .get_response("t1", "resp_old", now)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    // Another tenant can neither overwrite nor delete it.
    store
        .put_response(&doc("resp_a", "t2", Duration::days(1), b"evil"))
        .await
        .unwrap();
    let still = store
        .get_response("t1", "resp_a", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.body, b"sealed");
    assert!(!store.delete_response("t2", "resp_a").await.unwrap());
    assert_eq!(store.purge_responses(now).await.unwrap(), 1);
    // A second instance sees what the first stored (a conversation continues anywhere).
    let other = f.open().await;
    assert!(other
        .get_response("t1", "resp_a", now)
        .await
        .unwrap()
        .is_some());
    assert!(other.delete_response("t1", "resp_a").await.unwrap());
    assert!(store
        .get_response("t1", "resp_a", now)
        .await
        .unwrap()
        .is_none());
}

async fn usage_reports_sum_per_day_cloud_model_and_tenant(f: &Fixture) {
    let store = f.open().await;
    // Sub-millisecond parts are dropped on both backends alike.
    let first = t(NOV_1 + 5_000) + Duration::microseconds(999);
    let records = vec![
        usage(first, "azure-us", "gpt-4o", "acme", 1_500),
        usage(t(NOV_1 + 60_000), "azure-us", "gpt-4o", "acme", 2_500),
        usage(t(NOV_1 + 70_000), "aws-eu", "claude", "globex", 7),
        usage(
            t(NOV_1 + DAY + 1),
            "azure-us",
            "gpt-4o",
            "acme",
            1_000_000_000_000,
        ),
        usage(t(NOV_1 + 3 * DAY - 1), "aws-eu", "claude", "acme", 3),
    ];
    store.insert_usage(&records).await.expect("insert");
    store.insert_usage(&[]).await.expect("empty insert");
    assert_eq!(store.usage_count().await.expect("count"), 5);

    let summary = store
        .usage_summary(t(NOV_1), t(NOV_1 + 2 * DAY))
        .await
        .expect("summary");
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 11, d).expect("day");
    let rows: Vec<_> = summary
        .iter()
        .map(|r| {
            (
                r.day,
                r.cloud.as_str(),
                r.tenant.as_str(),
                r.requests,
                r.input_tokens,
                r.cost_nanos,
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (day(1), "aws-eu", "globex", 1, 100, 7),
            (day(1), "azure-us", "acme", 2, 200, 4_000),
            (day(2), "azure-us", "acme", 1, 100, 1_000_000_000_000),
        ]
    );
    let daily = store
        .daily_cost("aws-eu", None, t(NOV_1 + 10 * DAY))
        .await
        .expect("daily");
    assert_eq!(
        daily
            .iter()
            .map(|d| (d.day, d.cost_nanos))
            .collect::<Vec<_>>(),
        vec![(day(1), 7), (day(3), 3)]
    );
    let from_day_2 = store
        .daily_cost("aws-eu", Some(t(NOV_1 + DAY)), t(NOV_1 + 10 * DAY))
        .await
        .expect("daily");
    assert_eq!(from_day_2.len(), 1);

    let read = store
        .usage_records(t(NOV_1), t(NOV_1 + 10 * DAY), 2)
        .await
        .expect("records");
    let mut expected = records[0].clone();
    expected.at = t(NOV_1 + 5_000);
    assert_eq!(read, vec![expected, records[1].clone()]);
}

fn query(f: impl FnOnce(&mut AuditQuery)) -> AuditQuery {
    let mut q = AuditQuery {
        limit: 100,
        ..Default::default()
    };
    f(&mut q);
    q
}

async fn audit_chain_appends_queries_and_verifies(f: &Fixture) {
    let store = f.open().await;
    assert_eq!(
        store.verify_audit().await.unwrap(),
        ChainStatus::Intact { count: 0 }
    );
    assert!(store.append_audit(&[]).await.unwrap().is_empty());
    let mut first = entry(1);
    first.at += Duration::microseconds(123); // hashed at millisecond precision
    first.cost_usd = Some(-0.0); // an empty f64 sum; must verify after a round trip
    let written = store
        .append_audit(&[first, entry(2), entry(3)])
        .await
        .unwrap();
    assert_eq!(
        written.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(written[1].prev_hash, written[0].hash);
    let mut extra = entry(4);
    extra.tenant = Some("globex".into());
    extra.action = "admin.key.create".into();
    extra.cloud = None;
    extra.detail = Some(json!({"before": null, "after": {"id": "k9", "n": 1.0}}));
    let more = store.append_audit(&[extra]).await.unwrap();
    assert_eq!(
        more[0].prev_hash, written[2].hash,
        "a second batch continues the chain"
    );

    let by_tenant = store
        .query_audit(&query(|q| q.tenant = Some("globex".into())))
        .await
        .unwrap();
    assert_eq!(by_tenant.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![4]);
    assert_eq!(by_tenant[0].entry.detail, more[0].entry.detail);
    let by_action = store
        .query_audit(&query(|q| q.action = Some("ai.chat_completions".into())))
        .await
        .unwrap();
    assert_eq!(by_action.len(), 3);
    let by_cloud = store
        .query_audit(&query(|q| q.cloud = Some("azure-us".into())))
        .await
        .unwrap();
    assert_eq!(by_cloud.len(), 3);
    let page = store
        .query_audit(&query(|q| {
            q.after = Some(1);
            q.limit = 2
        }))
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
    let window = store
        .query_audit(&query(|q| {
            q.from = Some(t(NOV_1 + 2_000));
            q.to = Some(t(NOV_1 + 4_000));
        }))
        .await
        .unwrap();
    assert_eq!(window.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(
        store.verify_audit().await.unwrap(),
        ChainStatus::Intact { count: 4 }
    );
}

async fn broken_at(store: &dyn Store) -> (i64, String) {
    match store.verify_audit().await.expect("verify") {
        ChainStatus::Broken { seq, problem, .. } => (seq, problem),
        ChainStatus::Intact { count } => panic!("tampering not detected ({count} entries)"),
    }
}

async fn audit_tampering_is_detected(f: &Fixture) {
    let store = f.open().await;
    store
        .append_audit(&(1..=5).map(entry).collect::<Vec<_>>())
        .await
        .unwrap();
    let cases = [
        ("UPDATE audit_log SET tenant = 'other' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET cost_usd = 1.0 WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET at = '2027-01-01T00:00:00.000Z' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET route = '[]' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET detail = '{\"x\":1}' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET status = 500 WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET input_tokens = 1 WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET actor = 'admin' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET action = 'admin.key.create' WHERE seq = 3", 3, "altered"),
        ("UPDATE audit_log SET hash = 'ab' WHERE seq = 2", 2, ""),
        ("DELETE FROM audit_log WHERE seq = 3", 3, "missing"),
        ("DELETE FROM audit_log WHERE seq = 1", 1, ""),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "missing"),
        (
            "UPDATE audit_log SET seq = -2 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 4;
             UPDATE audit_log SET seq = 4 WHERE seq = -2",
            2,
            "",
        ),
        // Delete entry 3 and shift 4 and 5 down, head included: the hashes cover `seq`.
        (
            "DELETE FROM audit_log WHERE seq = 3; UPDATE audit_log SET seq = 3 WHERE seq = 4;
             UPDATE audit_log SET seq = 4 WHERE seq = 5; UPDATE audit_head SET seq = 4",
            3,
            "",
        ),
        // Rows added past the recorded head.
        (
            "INSERT INTO audit_log SELECT seq + 5, at, actor, tenant, action, model, cloud,
                 request_id, status, latency_ms, input_tokens, output_tokens, cost_usd, route,
                 detail, prev_hash, hash FROM audit_log WHERE seq = 5",
            6,
            "",
        ),
    ];
    for (sql, seq, word) in cases {
        // Each case on a pristine copy of the chain: tamper, check, restore.
        f.exec(
            "CREATE TABLE audit_backup AS SELECT * FROM audit_log;
             CREATE TABLE head_backup AS SELECT * FROM audit_head",
        )
        .await;
        f.exec(sql).await;
        let (at, problem) = broken_at(store.as_ref()).await;
        assert_eq!(at, seq, "{sql}: {problem}");
        assert!(problem.contains(word), "{sql}: {problem}");
        f.exec(
            "DELETE FROM audit_log; INSERT INTO audit_log SELECT * FROM audit_backup;
             DELETE FROM audit_head; INSERT INTO audit_head SELECT * FROM head_backup;
             DROP TABLE audit_backup; DROP TABLE head_backup",
        )
        .await;
        assert_eq!(
            store.verify_audit().await.unwrap(),
            ChainStatus::Intact { count: 5 }
        );
    }
}

async fn spend_policies_and_captures_round_trip(f: &Fixture) {
    let store = f.with_tenants().await;
    store
        .add_spend(&[
            ("tenant:acme".into(), "2026-11-01".into(), 1.25),
            ("key:k1".into(), "total".into(), 0.5),
        ])
        .await
        .unwrap();
    store
        .add_spend(&[("tenant:acme".into(), "2026-11-01".into(), 0.75)])
        .await
        .unwrap();
    assert_eq!(store.spend("tenant:acme", "2026-11-01").await.unwrap(), 2.0);
    assert_eq!(store.spend("tenant:acme", "2026-12-01").await.unwrap(), 0.0);

    let (key, _) = create_key(store.as_ref(), "acme", None).await.unwrap();
    assert_eq!(store.key_policy(&key.id).await.unwrap(), None);
    let policy = json!({"budget": {"usd": 10.5, "period": "monthly"}, "rpm": 60});
    store.set_key_policy(&key.id, &policy).await.unwrap();
    store.set_key_policy(&key.id, &policy).await.unwrap();
    assert_eq!(store.key_policy(&key.id).await.unwrap(), Some(policy));

    let capture = CaptureRecord {
        request_id: "req_1".into(),
        at: t(NOV_1),
        tenant: "acme".into(),
        key_id: "2026-11".into(),
        nonce: vec![0, 1, 2, 255],
        ciphertext: vec![9; 64],
    };
    store.insert_capture(&capture).await.unwrap();
    assert_eq!(store.capture("req_1").await.unwrap(), Some(capture));
    assert_eq!(store.capture("req_2").await.unwrap(), None);
}

async fn two_instances_appending_at_once_keep_one_chain(f: &Fixture) {
    // Two stores with pools of their own, as two gateway instances would have.
    let instances = [f.open().await, f.open().await];
    const TASKS_PER_INSTANCE: i64 = 8;
    const APPENDS_PER_TASK: i64 = 12;
    let mut tasks = Vec::new();
    for (n, store) in instances.iter().enumerate() {
        for task in 0..TASKS_PER_INSTANCE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..APPENDS_PER_TASK {
                    // Batches of one to three entries.
                    let batch: Vec<AuditEntry> = (0..=(i % 3))
                        .map(|j| {
                            let mut e = entry(i);
                            e.actor = format!("instance:{n}:task:{task}:{i}:{j}");
                            e
                        })
                        .collect();
                    written.extend(store.append_audit(&batch).await.expect("append"));
                }
                written
            }));
        }
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.expect("task").into_iter().map(|r| r.seq));
    }
    let per_task: i64 = (0..APPENDS_PER_TASK).map(|i| i % 3 + 1).sum();
    let total = 2 * TASKS_PER_INSTANCE * per_task;
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "one gapless order");
    for store in &instances {
        assert_eq!(
            store.verify_audit().await.expect("verify"),
            ChainStatus::Intact { count: total }
        );
    }
}

/// Fills a store with a bit of everything.
async fn populate(store: &dyn Store) {
    store
        .sync_tenants(&[
            tenant("acme", json!({"budget_usd": 5})),
            tenant("globex", json!({})),
        ])
        .await
        .unwrap();
    let (k1, _) = create_key(store, "acme", Some("one")).await.unwrap();
    let (k2, _) = create_key(store, "globex", None).await.unwrap();
    store.revoke_key(&k2.id).await.unwrap();
    store
        .set_key_policy(&k1.id, &json!({"rpm": 5}))
        .await
        .unwrap();
    let records: Vec<_> = (0..25)
        .map(|i| {
            let cloud = if i % 2 == 0 { "azure-us" } else { "aws-eu" };
            usage(t(NOV_1 + i * DAY / 3), cloud, "gpt-4o", "acme", 1_000 + i)
        })
        .collect();
    store.insert_usage(&records).await.unwrap();
    store
        .append_audit(&(1..=7).map(entry).collect::<Vec<_>>())
        .await
        .unwrap();
    store
        .add_spend(&[("tenant:acme".into(), "2026-11-01".into(), 0.25)])
        .await
        .unwrap();
    store
        .insert_capture(&CaptureRecord {
            request_id: "req_c".into(),
            at: t(NOV_1),
            tenant: "acme".into(),
            key_id: "2026-11".into(),
            nonce: vec![1; 12],
            ciphertext: vec![2; 40],
        })
        .await
        .unwrap();
    for (id, ttl) in [("resp_live", 1), ("resp_expired", -1)] {
        store
            .put_response(&StoredResponse {
                id: id.into(),
                tenant: "acme".into(),
                created_at: t(NOV_1),
                expires_at: Utc::now() + Duration::days(ttl),
                key_id: None,
                body: b"{}".to_vec(),
            })
            .await
            .unwrap();
    }
}

async fn copy_moves_every_record_and_refuses_duplicates(f: &Fixture) {
    let source = f.open().await;
    populate(source.as_ref()).await;
    // Into an SQLite file (for the PostgreSQL run, the other backend); batches of 4 so
    // every table takes several pages.
    let dir = tempfile::tempdir().unwrap();
    let target = open(&format!(
        "sqlite://{}",
        dir.path().join("copy.db").display()
    ))
    .await
    .unwrap();
    let rows = std::sync::atomic::AtomicU64::new(0);
    let summary = copy::copy(source.as_ref(), target.as_ref(), 4, &|_, n| {
        rows.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    })
    .await
    .expect("copy");
    assert!(
        summary.mismatches().is_empty(),
        "{:?}",
        summary.mismatches()
    );
    assert_eq!(summary.target_chain, ChainStatus::Intact { count: 7 });
    let copied: u64 = summary.tables.iter().map(|t| t.target).sum();
    assert_eq!(rows.into_inner(), copied);
    assert_eq!(
        summary
            .tables
            .iter()
            .find(|t| t.table == "usage_ledger")
            .unwrap()
            .target,
        25
    );

    // Every page reads back the same on both ends, hashes and timestamps included.
    for table in Table::ALL {
        let a = source.export_page(table, None, 1_000).await.unwrap();
        let b = target.export_page(table, None, 1_000).await.unwrap();
        if table == Table::Usage {
            assert_eq!(a.len(), b.len()); // row ids are not kept
        } else {
            assert_eq!(a, b, "{}", table.as_str());
        }
    }
    let window = (t(NOV_1), t(NOV_1 + 30 * DAY));
    assert_eq!(
        source.usage_summary(window.0, window.1).await.unwrap(),
        target.usage_summary(window.0, window.1).await.unwrap()
    );

    // A second copy into the now full target conflicts instead of duplicating.
    let err = copy::copy(source.as_ref(), target.as_ref(), 4, &|_, _| {})
        .await
        .expect_err("target is not empty");
    assert!(
        matches!(err, StoreError::Conflict { what: "tenants" }),
        "{err:?}"
    );
    // After clearing, the copy goes through again.
    target.clear().await.unwrap();
    assert!(copy::counts(target.as_ref())
        .await
        .unwrap()
        .iter()
        .all(|(_, n)| *n == 0));
    let again = copy::copy(source.as_ref(), target.as_ref(), 1_000, &|_, _| {})
        .await
        .unwrap();
    assert!(again.mismatches().is_empty(), "{:?}", again.mismatches());
}
