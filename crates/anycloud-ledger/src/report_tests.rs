//! Reports over a real (in-memory SQLite) ledger: hand-computed figures that reconcile to
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! the nano-dollar with the records, and the §8 JSON shape.

use super::*;
use crate::writer::{LedgerWriter, WriterConfig};
use anycloud_config::{Commitment, RevenueShare};
use anycloud_store::{RecordedPrice, SqliteStore, UsageRecord};
use chrono::{DateTime, Utc};
use std::sync::Arc;

fn rec(
    at: &str,
    cloud: &str,
    model: &str,
    tenant: &str,
    input: u64,
    output: u64,
    cost_nanos: i64,
) -> UsageRecord {
    UsageRecord {
        at: DateTime::parse_from_rfc3339(at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default(),
        request_id: format!("req-{at}"),
        tenant: tenant.into(),
        key_id: "k1".into(),
        model: model.into(),
        cloud: cloud.into(),
        deployment: model.into(),
        input_tokens: input,
        output_tokens: output,
        cached_tokens: 0,
        cache_write_tokens: 0,
        cache_write_1h_tokens: 0,
        reasoning_tokens: 0,
        cache_saved_nanos: 0,
        usage_estimated: false,
        price: RecordedPrice::default(),
        cost_nanos,
        outcome: "ok".into(),
        upstream_status: Some(200),
        latency_ms: 10,
        ttft_ms: None,
        needs: None,
        estimated_tokens: None,
    }
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

#[tokio::test]
async fn report_reconciles_with_the_records_and_has_the_documented_shape() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    let writer = LedgerWriter::start(store.clone(), WriterConfig::default());
    let records = [
        // Before the period: counts toward the cap only.
        rec(
            "2026-10-31T23:59:59.999Z",
            "azure-us",
            "gpt-4o",
            "payments",
            1,
            1,
            40_000_000_000,
        ),
        rec(
            "2026-11-01T00:00:00.000Z",
            "azure-us",
            "gpt-4o",
            "payments",
            1000,
            500,
            7_500_000,
        ),
        rec(
            "2026-11-02T10:00:00.000Z",
            "azure-us",
            "gpt-4o-mini",
            "search",
            2000,
            100,
            360_000,
        ),
        rec(
            "2026-11-02T11:00:00.000Z",
            "aws-eu",
            "gpt-4o",
            "search",
            4000,
            1000,
            18_000_000,
        ),
        rec(
            "2026-11-30T23:59:59.999Z",
            "aws-eu",
            "gpt-4o",
            "payments",
            10,
            10,
            3,
        ),
        // `to` is exclusive.
        rec(
            "2026-12-01T00:00:00.000Z",
            "aws-eu",
            "gpt-4o",
            "payments",
            99,
            99,
            99_000_000,
        ),
    ];
    for r in &records {
        writer.record(r.clone());
    }
    writer.close().await;
    assert_eq!(store.usage_count().await.unwrap(), 6);
    let agreements = AgreementsConfig {
        revenue_share: vec![RevenueShare {
            party: "azure-us".into(),
            percent: 20.0,
            from: None,
            until: Some(d("2030-12-31")),
            cap_usd: Some(10.0),
        }],
        commitment: vec![Commitment {
            cloud: "aws-eu".into(),
            amount_usd: 30.0,
            from: d("2026-11-01"),
            to: d("2026-11-30"),
        }],
        ..AgreementsConfig::default()
    };
    let req = ReportRequest {
        from: d("2026-11-01"),
        to: d("2026-12-01"),
        group_by: GroupBy::default(),
        today: d("2026-11-22"),
    };
    let steps = std::sync::Mutex::new(Vec::new());
    let r = build(store.as_ref(), &agreements, &req, &|done, total| {
        if let Ok(mut s) = steps.lock() {
            s.push((done, total));
        }
    })
    .await
    .unwrap();
    // 30 day chunks + 2 agreements, the last step is complete.
    assert_eq!(steps.lock().unwrap().last(), Some(&(32, 32)));
    // 7 500 000 + 360 000 + 18 000 000 + 3 nano-dollars.
    assert_eq!(r.total.cost_nanos, 25_860_003);
    assert_eq!(r.total.requests, 4);
    let sum = |m: &BTreeMap<String, Totals>| m.values().map(|t| t.cost_nanos).sum::<i64>();
    assert_eq!(sum(&r.clouds), r.total.cost_nanos);
    assert_eq!(sum(&r.models), r.total.cost_nanos);
    assert_eq!(sum(&r.tenants), r.total.cost_nanos);
    assert_eq!(r.clouds["azure-us"].cost_nanos, 7_860_000);
    assert_eq!(r.clouds["aws-eu"].input_tokens, 4010);
    assert_eq!(r.tenants["search"].cost_nanos, 18_360_000);

    let j = r.to_json();
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    for k in [
        "from",
        "to",
        "clouds",
        "models",
        "tenants",
        "revenue_share",
        "commitments",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert_eq!(j["from"], "2026-11-01");
    assert_eq!(j["clouds"][0]["cloud"], "aws-eu");
    assert_eq!(j["clouds"][0]["cost_usd"], 0.018000003);
    assert_eq!(j["clouds"][1]["requests"], 1 + 1);
    // Revenue share, 20 % capped at $10: $40 billed before the period accrued $8; in the
    // period $0.00786 billed → $0.001572 accrued; lifetime $8.001572, $1.998428 to the cap.
    let rs = &j["revenue_share"][0];
    assert_eq!(rs["billed_usd"], 0.00786);
    assert_eq!(rs["accrued_usd"], 0.001572);
    assert_eq!(rs["remaining_to_cap_usd"], 1.998428);
    assert_eq!(rs["cap_reached_on"], serde_json::Value::Null);
    // Commitment $30 on aws-eu over November, as of Nov 23: $0.018 spent, 8 days left.
    let c = &j["commitments"][0];
    assert_eq!(c["spent_usd"], 0.018);
    assert_eq!(c["days_left"], 8);
    assert_eq!(c["on_track"], false);
    for f in [ReportFormat::Table, ReportFormat::Csv] {
        let text = r.render(f).unwrap();
        assert!(
            text.contains("azure-us") && text.contains("0.018000"),
            "{text}"
        );
    }
}

#[test]
fn group_by_and_format_parse() {
    assert_eq!(
        GroupBy::parse("tenant").unwrap(),
        GroupBy {
            cloud: false,
            model: false,
            tenant: true
        }
    );
    assert!(GroupBy::parse("region").is_err());
    assert!(GroupBy::parse("").is_err());
    assert_eq!(ReportFormat::parse("csv").unwrap(), ReportFormat::Csv);
    assert!(ReportFormat::parse("xml").is_err());
}
