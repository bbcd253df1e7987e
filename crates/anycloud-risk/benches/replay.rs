//! Scale check of `anycloud simulate` (README "Vendor risk"): fills a file-backed SQLite
//! ledger with N served rows (default 1 million, `REPLAY_BENCH_ROWS` to change) spread
//! over 30 days, then replays them under a candidate config on a current-thread runtime
//! (one core) and prints the replay's duration, rows per second and the process's peak
//! resident memory before and after the replay (flat memory: the replay streams pages).
//! Run with `cargo bench -p anycloud-risk --bench replay`; a plain `main` (harness = false).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use anycloud_store::{RecordedPrice, SqliteStore, Store, UsageRecord};
use chrono::{Duration as Span, NaiveDate, TimeZone, Utc};
use std::path::Path;
use std::time::Instant;

const CONFIG: &str = r#"
[[clouds]]
name = "azure-us"
provider = "openai_compatible"
base_url = "http://127.0.0.1:1/v1"
jurisdiction = "us"
[[clouds]]
name = "aws-eu"
provider = "bedrock"
region = "eu-central-1"
jurisdiction = "eu"
[[clouds]]
name = "gcp-eu"
provider = "openai_compatible"
base_url = "http://127.0.0.1:2/v1"
jurisdiction = "eu"
[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "a"
capabilities = ["chat", "stream", "tools", "vision"]
price = { input_per_mtok = 2.5, output_per_mtok = 10.0 }
[[models.deployments]]
cloud = "aws-eu"
target = "b"
capabilities = ["chat", "stream", "tools"]
price = { input_per_mtok = 0.15, output_per_mtok = 0.6 }
[[models.deployments]]
cloud = "gcp-eu"
target = "c"
capabilities = ["chat", "stream"]
price = { input_per_mtok = 1.0, output_per_mtok = 4.0 }
[agreements.primary]
cloud = "azure-us"
ship_first = true
[[agreements.commitment]]
cloud = "aws-eu"
amount_usd = 5000.0
from = "2026-01-01"
to = "2026-12-31"
[routing]
strategy = "commitment"
[[tenants]]
name = "acme"
[[tenants]]
name = "globex"
jurisdictions = ["eu"]
"#;

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: u64 = std::env::var("REPLAY_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(n));
}

async fn run(n: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_path(&dir.path().join("bench.db"))
        .await
        .unwrap();
    let start_at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let step_ms = (30 * 86_400_000 / n.max(1)).max(1) as i64;
    let t = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        batch.push(UsageRecord {
            at: start_at + Span::milliseconds(i as i64 * step_ms),
            request_id: format!("req_{i}"),
            tenant: if i % 3 == 0 { "globex" } else { "acme" }.into(),
            key_id: "k".into(),
            model: "gpt-4o".into(),
            cloud: "azure-us".into(),
            deployment: "a".into(),
            input_tokens: 100 + i % 50,
            output_tokens: 20 + i % 7,
            cached_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            reasoning_tokens: 0,
            cache_saved_nanos: 0,
            usage_estimated: false,
            price: RecordedPrice::default(),
            cost_nanos: 500_000,
            outcome: "ok".into(),
            upstream_status: Some(200),
            latency_ms: 100,
            ttft_ms: None,
            // One in ten rows predates the recorded needs (replayed as plain chat).
            needs: (i % 10 != 0).then(|| {
                if i % 4 == 0 {
                    vec!["chat".into(), "vision".into()]
                } else {
                    vec!["chat".into(), "stream".into()]
                }
            }),
            estimated_tokens: (i % 10 != 0).then_some(200),
        });
        if batch.len() == 10_000 {
            store.insert_usage(&batch).await.unwrap();
            batch.clear();
        }
    }
    store.insert_usage(&batch).await.unwrap();
    println!("filled {n} rows in {:.1} s", t.elapsed().as_secs_f64());
    let config = anycloud_config::parse_str(CONFIG, Path::new("bench.toml"), &|_| None).unwrap();
    let candidate_text = CONFIG.replace("ship_first = true", "declined_models = [\"gpt-4o\"]");
    let candidate =
        anycloud_config::parse_str(&candidate_text, Path::new("candidate.toml"), &|_| None)
            .unwrap();
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let period = anycloud_risk::Period::new(d("2026-11-01"), d("2026-12-01")).unwrap();
    let rss_before = peak_rss_kib();
    let t = Instant::now();
    let sim = anycloud_risk::simulate::simulate(
        &store,
        &config,
        &candidate,
        period,
        d("2026-12-01"),
        &|_| {},
    )
    .await
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "replayed {} rows ({} as plain chat) in {secs:.2} s on one core: {:.0} rows/s; \
         peak RSS {} MiB before the replay, {} MiB after",
        sim.replayed,
        sim.replayed_as_plain_chat,
        sim.replayed as f64 / secs,
        rss_before / 1024,
        peak_rss_kib() / 1024
    );
    println!("candidate refused: {:?}", sim.candidate.refused);
}
