//! Whole-store copy between backends (`anycloud_store::copy`).

use chrono::{Duration, Utc};
use serde_json::json;

use anycloud_store::copy;
use anycloud_store::governance::{CaptureRecord, ChainStatus};
use anycloud_store::transfer::Table;
use anycloud_store::{create_key, open, ChainKeys, Store, StoreError, StoredResponse};

use crate::fixture::*;

both_backends!(copy_moves_every_record_and_refuses_duplicates,);

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
        .append_audit(
            &(1..=7).map(entry).collect::<Vec<_>>(),
            &ChainKeys::unkeyed(),
        )
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
    let summary = copy::copy(
        source.as_ref(),
        target.as_ref(),
        4,
        &|_, n| {
            rows.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        },
        &ChainKeys::unkeyed(),
    )
    .await
    .expect("copy");
    assert!(
        summary.mismatches().is_empty(),
        "{:?}",
        summary.mismatches()
    );
    assert_eq!(summary.target_chain, ChainStatus::Intact { count: 7 });
    // The totals compared cover every kind of token, cache writes and reasoning too
    // (the fixture's usage rows carry 20 writes, 5 of them one-hour, 7 reasoning).
    let l = summary.source_ledger;
    assert_eq!(
        (
            l.cache_write_tokens,
            l.cache_write_1h_tokens,
            l.reasoning_tokens
        ),
        (25 * 20, 25 * 5, 25 * 7)
    );
    assert_eq!(summary.target_ledger, l);
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
    let err = copy::copy(
        source.as_ref(),
        target.as_ref(),
        4,
        &|_, _| {},
        &ChainKeys::unkeyed(),
    )
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
    let again = copy::copy(
        source.as_ref(),
        target.as_ref(),
        1_000,
        &|_, _| {},
        &ChainKeys::unkeyed(),
    )
    .await
    .unwrap();
    assert!(again.mismatches().is_empty(), "{:?}", again.mismatches());
}
