//! Audit appends per second with N writers on one PostgreSQL (bench/audit_scale.sh; figures
//! in bench/README.md "Audit appends with several instances"). Each writer stands for one
//! gateway instance: a store of its own (its own connection pool, as a separate process
//! has) appending batches of `AUDIT_BATCH` entries back to back through
//! `append_audit_once` — the audit spool's write, one transaction under the chain's
//! advisory lock, hashed in memory, one multi-row insert — for `AUDIT_SECONDS`, on a fresh
//! schema of the test server (`ANYCLOUD_TEST_POSTGRES`). Prints one line of JSON, and
//! checks the chain afterwards.
//!
//!   AUDIT_WRITERS=4 cargo run --release -p anycloud-store --features test-util --example audit_scale

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use anycloud_store::spool::{Batch, Stamp};
use anycloud_store::testing::PgSchema;
use anycloud_store::{AuditEntry, ChainKeys, ChainStatus, GovernanceStore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn entry(writer: usize, i: i64) -> AuditEntry {
    AuditEntry {
        at: chrono::Utc::now(),
        actor: format!("key:k{writer}"),
        tenant: Some("bench".into()),
        action: "ai.chat_completions".into(),
        model: Some("gpt-4o".into()),
        cloud: Some("local".into()),
        request_id: Some(format!("req_{writer}_{i}")),
        status: Some(200),
        latency_ms: Some(12),
        input_tokens: Some(10),
        output_tokens: Some(5),
        cost_usd: Some(0.000_125),
        route: Some(serde_json::json!([{"cloud": "local", "outcome": "ok", "ms": 1.5}])),
        detail: None,
    }
}

#[tokio::main]
async fn main() {
    let writers = env_or("AUDIT_WRITERS", 1);
    let seconds = env_or("AUDIT_SECONDS", 10) as u64;
    let batch = env_or("AUDIT_BATCH", 200);
    let schema = PgSchema::create().await.expect("PostgreSQL for the bench");
    let keys = Arc::new(ChainKeys::unkeyed());
    let appended = Arc::new(AtomicU64::new(0));
    let batches = Arc::new(AtomicU64::new(0));
    let mut stores = Vec::new();
    for _ in 0..writers {
        stores.push(Arc::new(schema.store().await.unwrap()));
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, store) in stores.iter().enumerate() {
        let (store, keys, appended, batches) = (
            store.clone(),
            keys.clone(),
            appended.clone(),
            batches.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let origin = rand::random::<i64>();
            let mut seq = 0i64;
            while Instant::now() < deadline {
                let items: Vec<AuditEntry> = (0..batch).map(|i| entry(w, seq + i as i64)).collect();
                let stamps = (0..batch)
                    .map(|i| {
                        Some(Stamp {
                            origin,
                            seq: seq + 1 + i as i64,
                        })
                    })
                    .collect();
                seq += batch as i64;
                let b = Batch {
                    spool: "audit",
                    items,
                    stamps,
                };
                let n = store.append_audit_once(&b, &keys).await.unwrap().len();
                appended.fetch_add(n as u64, Ordering::Relaxed);
                batches.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed().as_secs_f64();
    let total = appended.load(Ordering::Relaxed);
    let status = stores[0].verify_audit(&keys).await.unwrap();
    let intact = matches!(status, ChainStatus::Intact { count } if count as u64 == total);
    println!(
        "{}",
        serde_json::json!({
            "writers": writers,
            "batch": batch,
            "seconds": took,
            "appended": total,
            "batches": batches.load(Ordering::Relaxed),
            "appends_per_s": (total as f64 / took).round(),
            "chain_intact": intact,
        })
    );
    assert!(intact, "chain after the bench: {status:?}");
}
