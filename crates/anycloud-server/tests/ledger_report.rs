//! `GET /admin/v1/ledger/report`: the same report as `anycloud report`, over the
//! gateway's own store, as JSON, CSV and a table; bad parameters are 400s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use anycloud_store::UsageRecord;
use chrono::{TimeZone, Utc};
use common::*;

fn record(day: u32, cloud: &str, tenant: &str, input: u64, output: u64, usd: f64) -> UsageRecord {
    let at = Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap();
    usage_record(at, cloud, tenant, (input, output), usd)
}

async fn get(gw: &Gateway, query: &str) -> reqwest::Response {
    gw.http
        .get(format!("{}/admin/v1/ledger/report?{query}", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_admin_report_sums_the_ledger_in_every_format() {
    let gw = start().await;
    gw.state
        .store
        .insert_usage(&[
            record(2, "azure-us", "team", 100, 10, 0.25),
            record(3, "azure-us", "narrow", 50, 5, 0.5),
            record(3, "local-openai", "team", 10, 1, 1.0),
            // Outside the range (`to` is exclusive).
            record(20, "azure-us", "team", 1, 1, 9.0),
        ])
        .await
        .unwrap();

    let r = get(&gw, "from=2026-11-01&to=2026-11-20").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["from"], "2026-11-01");
    assert_eq!(v["to"], "2026-11-20");
    let clouds = v["clouds"].as_array().unwrap();
    let azure = clouds.iter().find(|c| c["cloud"] == "azure-us").unwrap();
    assert_eq!(azure["requests"], 2);
    assert_eq!(azure["input_tokens"], 150);
    assert_eq!(azure["output_tokens"], 15);
    assert!((azure["cost_usd"].as_f64().unwrap() - 0.75).abs() < 1e-9);
    let tenants = v["tenants"].as_array().unwrap();
    let team = tenants.iter().find(|t| t["tenant"] == "team").unwrap();
    assert!((team["cost_usd"].as_f64().unwrap() - 1.25).abs() < 1e-9);

    let r = get(&gw, "from=2026-11-01&to=2026-11-20&format=csv").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert!(csv.lines().count() > 2, "{csv}");
    assert!(csv.contains("local-openai"), "{csv}");

    let r = get(&gw, "from=2026-11-01&to=2026-11-20&format=table").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("azure-us"));
}

#[tokio::test]
async fn bad_report_parameters_are_400s_and_the_token_is_required() {
    let gw = start().await;
    for (query, param) in [
        ("to=2026-11-20", "from"),
        ("from=2026-13-01&to=2026-11-20", "from"),
        ("from=2026-11-01&to=2026-11-20&format=xml", "format"),
        ("from=2026-11-01&to=2026-11-20&group_by=planet", "group_by"),
    ] {
        let r = get(&gw, query).await;
        assert_eq!(r.status(), 400, "{query}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{query}");
        assert_eq!(v["error"]["param"], param, "{query}");
    }
    let r = gw
        .http
        .get(format!(
            "{}/admin/v1/ledger/report?from=2026-11-01&to=2026-11-20",
            gw.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
