//! The batched writer against a real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use anycloud_store::{RecordedPrice, SqliteStore};
use chrono::Utc;
use std::sync::Mutex;

fn record(i: u64) -> UsageRecord {
    UsageRecord {
        at: Utc::now(),
        request_id: format!("req-{i}"),
        tenant: "t".into(),
        key_id: "k".into(),
        model: "m".into(),
        cloud: "c".into(),
        deployment: "d".into(),
        input_tokens: i,
        output_tokens: 1,
        cached_tokens: 0,
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        reasoning_tokens: 0,
        cache_saved_nanos: 0,
        usage_estimated: false,
        price: RecordedPrice::default(),
        cost_nanos: 1,
        outcome: "ok".into(),
        upstream_status: Some(200),
        latency_ms: 1,
        ttft_ms: None,
        needs: None,
        estimated_tokens: None,
    }
}

async fn store() -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open_in_memory()
            .await
            .unwrap_or_else(|e| unreachable!("{e}")),
    )
}

#[tokio::test]
async fn past_its_capacity_the_writer_says_full_and_close_drains_everything() {
    let store = store().await;
    let cfg = WriterConfig {
        capacity: 4,
        max_batch: 16,
        flush_interval: Duration::from_millis(50),
        spill: None,
    };
    let w = LedgerWriter::start(store.clone(), cfg);
    // No await between records: the writer cannot run, so they are all held.
    for i in 0..100 {
        w.record(record(i));
    }
    assert!(w.gauge().full(), "admission must see the bound passed");
    assert_eq!(w.stats().pending, 100);
    w.close().await;
    assert_eq!(store.usage_count().await.ok(), Some(100));
    let s = w.stats();
    assert_eq!((s.written, s.pending, s.lost), (100, 0, 0));
    assert!(!w.gauge().full());
    // After close: counted as lost, never silently.
    w.record(record(1));
    assert_eq!(w.stats().lost, 1);
}

#[tokio::test]
async fn a_record_is_committed_within_the_flush_interval() {
    let store = store().await;
    let w = LedgerWriter::start(store.clone(), WriterConfig::default());
    let start = std::time::Instant::now();
    w.record(record(1));
    // Nothing flushes explicitly: the writer's own 50 ms timer must commit it.
    while store.usage_count().await.ok() != Some(1) {
        assert!(start.elapsed() < Duration::from_secs(2), "not committed");
        tokio::task::yield_now().await;
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(w.stats().batches, 1);
    w.flush().await;
}

#[tokio::test]
async fn every_committed_batch_reports_its_duration_to_the_flush_hook() {
    let w = LedgerWriter::start(store().await, WriterConfig::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    w.on_flush(Arc::new(move |took| s.lock().unwrap().push(took)));
    for i in 0..3 {
        w.record(record(i));
    }
    w.flush().await;
    w.record(record(9));
    w.flush().await;
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "one report per committed batch"
    );
    assert_eq!(w.stats().pending, 0);
}
