//! Tampering with any single `audit_log` row in the SQLite file — changing a field,
//! deleting a row (first, middle, last), reordering rows — is detected by
//! `verify_audit`, which names the first bad entry.

#![allow(clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::SqliteStore;
use crate::governance::{AuditEntry, ChainStatus, GovernanceStore};

fn entry(i: i64) -> AuditEntry {
    AuditEntry {
        at: Utc
            .timestamp_millis_opt(1_790_000_000_000 + i * 1000)
            .single()
            .expect("time"),
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
        route: Some(json!([{"cloud": "azure-us", "outcome": "ok"}])),
        detail: None,
    }
}

/// A store on a temp file holding five chained entries.
async fn chained() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_path(&dir.path().join("a.db"))
        .await
        .expect("open");
    let entries: Vec<AuditEntry> = (1..=3).map(entry).collect();
    store.append_audit(&entries).await.expect("append");
    // A second batch continues the same chain.
    store
        .append_audit(&[entry(4), entry(5)])
        .await
        .expect("append");
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { count: 5 }
    );
    (dir, store)
}

async fn tamper(store: &SqliteStore, sql: &str) {
    for stmt in sql.split(';').filter(|s| !s.trim().is_empty()) {
        sqlx::query(stmt).execute(&store.pool).await.expect(stmt);
    }
}

async fn broken_at(store: &SqliteStore) -> (i64, String) {
    match store.verify_audit().await.expect("verify") {
        ChainStatus::Broken { seq, problem, .. } => (seq, problem),
        ChainStatus::Intact { count } => panic!("tampering not detected ({count} entries)"),
    }
}

#[tokio::test]
async fn changing_any_field_is_detected() {
    for (column, value) in [
        ("tenant", "'other'"),
        ("cost_usd", "0.0"),
        ("status", "500"),
        ("input_tokens", "1"),
        ("actor", "'admin'"),
        ("at", "'2027-01-01T00:00:00.000Z'"),
        ("route", "'[]'"),
        ("detail", "'{\"x\":1}'"),
        ("action", "'admin.key.create'"),
    ] {
        let (_dir, store) = chained().await;
        tamper(
            &store,
            &format!("UPDATE audit_log SET {column} = {value} WHERE seq = 3"),
        )
        .await;
        let (seq, problem) = broken_at(&store).await;
        assert_eq!(seq, 3, "{column}: {problem}");
        assert!(problem.contains("altered"), "{column}: {problem}");
    }
}

#[tokio::test]
async fn rewriting_a_hash_is_detected() {
    let (_dir, store) = chained().await;
    tamper(&store, "UPDATE audit_log SET hash = 'ab' WHERE seq = 2").await;
    assert_eq!(broken_at(&store).await.0, 2);
}

#[tokio::test]
async fn deleting_a_middle_row_is_detected() {
    let (_dir, store) = chained().await;
    tamper(&store, "DELETE FROM audit_log WHERE seq = 3").await;
    let (seq, problem) = broken_at(&store).await;
    assert_eq!(seq, 3);
    assert!(problem.contains("missing"), "{problem}");
}

#[tokio::test]
async fn deleting_the_first_row_is_detected() {
    let (_dir, store) = chained().await;
    tamper(&store, "DELETE FROM audit_log WHERE seq = 1").await;
    assert_eq!(broken_at(&store).await.0, 1);
}

#[tokio::test]
async fn deleting_the_last_row_is_detected() {
    let (_dir, store) = chained().await;
    tamper(&store, "DELETE FROM audit_log WHERE seq = 5").await;
    let (seq, problem) = broken_at(&store).await;
    assert_eq!(seq, 5);
    assert!(problem.contains("missing"), "{problem}");
}

#[tokio::test]
async fn reordering_rows_is_detected() {
    let (_dir, store) = chained().await;
    tamper(
        &store,
        "UPDATE audit_log SET seq = -2 WHERE seq = 2;
         UPDATE audit_log SET seq = 2 WHERE seq = 4;
         UPDATE audit_log SET seq = 4 WHERE seq = -2",
    )
    .await;
    let (seq, problem) = broken_at(&store).await;
    assert_eq!(seq, 2, "{problem}");
}

#[tokio::test]
async fn renumbering_after_a_deletion_is_detected() {
    // Delete entry 3 and shift 4 and 5 down so there is no gap: the hashes cover `seq`.
    let (_dir, store) = chained().await;
    tamper(
        &store,
        "DELETE FROM audit_log WHERE seq = 3;
         UPDATE audit_log SET seq = 3 WHERE seq = 4;
         UPDATE audit_log SET seq = 4 WHERE seq = 5;
         UPDATE audit_head SET seq = 4",
    )
    .await;
    assert_eq!(broken_at(&store).await.0, 3);
}

#[tokio::test]
async fn queries_filter_by_tenant_action_and_time() {
    let (_dir, store) = chained().await;
    let mut extra = entry(6);
    extra.tenant = Some("globex".into());
    extra.action = "admin.key.create".into();
    extra.cloud = None;
    store.append_audit(&[extra]).await.expect("append");
    let q = |f: fn(&mut crate::AuditQuery)| {
        let mut q = crate::AuditQuery {
            limit: 100,
            ..Default::default()
        };
        f(&mut q);
        q
    };
    let by_tenant = store
        .query_audit(&q(|q| q.tenant = Some("globex".into())))
        .await
        .expect("query");
    assert_eq!(by_tenant.len(), 1);
    assert_eq!(by_tenant[0].seq, 6);
    let by_action = store
        .query_audit(&q(|q| q.action = Some("ai.chat_completions".into())))
        .await
        .expect("query");
    assert_eq!(by_action.len(), 5);
    let by_cloud = store
        .query_audit(&q(|q| q.cloud = Some("azure-us".into())))
        .await
        .expect("query");
    assert_eq!(by_cloud.len(), 5);
    let page = store
        .query_audit(&q(|q| {
            q.after = Some(2);
            q.limit = 2
        }))
        .await
        .expect("query");
    assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3, 4]);
    let window = store
        .query_audit(&q(|q| {
            q.from = Utc.timestamp_millis_opt(1_790_000_002_000).single();
            q.to = Utc.timestamp_millis_opt(1_790_000_004_000).single();
        }))
        .await
        .expect("query");
    assert_eq!(window.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { count: 6 }
    );
}

#[tokio::test]
async fn negative_zero_cost_verifies_after_a_round_trip() {
    // An empty f64 sum is -0.0; SQLite stores it as 0, which must hash the same.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open_path(&dir.path().join("z.db"))
        .await
        .expect("open");
    let mut e = entry(1);
    e.cost_usd = Some(-0.0);
    store.append_audit(&[e]).await.expect("append");
    assert_eq!(
        store.verify_audit().await.expect("verify"),
        ChainStatus::Intact { count: 1 }
    );
}
