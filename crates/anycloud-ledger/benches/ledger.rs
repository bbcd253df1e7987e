//! Scale check (README "Ledger and reports", issues 6 and 18): writes N usage records (default
//! 10 million, `LEDGER_BENCH_RECORDS` to change) into a file-backed SQLite store through the
//! batched [`LedgerWriter`], then times the report over them — read from the daily rollups
//! (migration 0020) — and, for comparison, the same month's sums scanned from the ledger's
//! rows, and checks both give the same figures. `LEDGER_BENCH_DB=path` keeps the database
//! (and reuses it when it already holds the records). Prints records per second and both
//! durations. Run with `bash bench/ledger_report.sh` or
//! `cargo bench -p anycloud-ledger --bench ledger`; it is a plain `main` (harness = false),
//! not part of `cargo test`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use anycloud_config::{AgreementsConfig, Commitment, RevenueShare};
use anycloud_ledger::accounting::start_of;
use anycloud_ledger::report::{self, GroupBy, ReportRequest};
use anycloud_ledger::{LedgerWriter, WriterConfig};
use anycloud_store::{RecordedPrice, SqliteStore, Store, UsageRecord};
use chrono::{Duration as Span, NaiveDate, TimeZone, Utc};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let n: u64 = std::env::var("LEDGER_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n));
}

async fn run(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var("LEDGER_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| dir.path().join("bench.db"));
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_path(&path).await.unwrap());
    let existing = store.usage_count().await.unwrap();
    let writer = LedgerWriter::start(store.clone(), WriterConfig::default());
    let clouds = ["azure-us", "aws-eu", "gcp-eu", "onprem-vllm"];
    let models = [
        "gpt-4o",
        "gpt-4o-mini",
        "claude-sonnet",
        "llama-70b",
        "embed-small",
    ];
    let start_at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    // Spread over 30 days.
    let step_ms = (30 * 86_400_000 / n.max(1)).max(1) as i64;
    let started = Instant::now();
    for i in existing..n {
        let r = UsageRecord {
            at: start_at + Span::milliseconds(i as i64 * step_ms),
            request_id: format!("req-{i:016x}"),
            tenant: format!("tenant-{}", i % 50),
            key_id: format!("key-{}", i % 200),
            model: models[(i % 5) as usize].to_string(),
            cloud: clouds[(i % 4) as usize].to_string(),
            deployment: "dep".to_string(),
            input_tokens: 500 + i % 1000,
            output_tokens: 100 + i % 300,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 0,
            cache_saved_nanos: 0,
            usage_estimated: false,
            price: RecordedPrice {
                input_per_mtok: 2.5,
                output_per_mtok: 10.0,
                cached_input_per_mtok: 2.5,
                cache_write_per_mtok: 3.0,
                cache_write_1h_per_mtok: 4.0,
            },
            cost_nanos: 1_000_000 + (i % 1000) as i64,
            outcome: "ok".into(),
            upstream_status: Some(200),
            latency_ms: 100,
            ttft_ms: Some(20),
            needs: None,
            estimated_tokens: None,
        };
        writer.record_wait(r).await;
    }
    writer.close().await;
    let write_s = started.elapsed().as_secs_f64();
    let stats = writer.stats();
    if stats.written > 0 {
        println!(
            "wrote {} records in {:.1} s: {:.0} records/s ({} batches)",
            stats.written,
            write_s,
            stats.written as f64 / write_s,
            stats.batches
        );
    }
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let agreements = AgreementsConfig {
        revenue_share: vec![RevenueShare {
            party: "azure-us".into(),
            percent: 20.0,
            from: None,
            until: Some(d("2030-12-31")),
            cap_usd: Some(1_000_000.0),
        }],
        commitment: vec![Commitment {
            cloud: "aws-eu".into(),
            amount_usd: 500_000.0,
            from: d("2026-01-01"),
            to: d("2026-12-31"),
        }],
        ..AgreementsConfig::default()
    };
    let req = ReportRequest {
        from: d("2026-11-01"),
        to: d("2026-12-01"),
        group_by: GroupBy::default(),
        today: d("2026-12-01"),
    };
    let t = Instant::now();
    let r = report::build(store.as_ref(), &agreements, &req, &|_, _| {})
        .await
        .unwrap();
    println!(
        "report over {} records (30 days, cloud+model+tenant, 1 revenue share, 1 commitment): {:.2} s",
        r.total.requests,
        t.elapsed().as_secs_f64()
    );
    let total = store.usage_count().await.unwrap();
    assert_eq!(r.total.requests, total);

    // The same month from the rows themselves: a range that does not start at midnight
    // (1 ms before it; no record is that early) is answered by scanning the ledger.
    let (from, to) = (start_of(req.from), start_of(req.to));
    let t = Instant::now();
    let scanned = store
        .usage_summary(from - Span::milliseconds(1), to)
        .await
        .unwrap();
    let scan_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let rolled = store.usage_summary(from, to).await.unwrap();
    println!(
        "the month's per-day sums: {:.3} s from the rollups ({} rows), {:.2} s scanning the ledger; identical: {}",
        t.elapsed().as_secs_f64(),
        rolled.len(),
        scan_s,
        rolled == scanned
    );
    assert_eq!(rolled, scanned, "the rollups must equal the ledger's sums");
}
