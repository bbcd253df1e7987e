//! Every request that got past authentication ends in exactly one outcome
//! (what the ledger and the audit log consume), streams included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn a_served_request_records_usage_cost_and_route() {
    let gw = start().await;
    gw.azure.faults().fail_next(1, 503, None);
    let r = gw.chat(hello("gpt-4o")).await;
    let v: serde_json::Value = r.json().await.unwrap();
    let o = gw.outcomes(1).await;
    assert_eq!(o.len(), 1);
    let o = &o[0];
    assert_eq!(
        (o.tenant.as_str(), o.model.as_str(), o.status, o.api),
        ("team", "gpt-4o", 200, "chat_completions")
    );
    assert_eq!(o.attempts.len(), 2);
    assert_eq!(o.attempts[0].outcome, "upstream_503");
    assert_eq!(o.attempts[0].upstream_status, Some(503));
    assert_eq!(o.attempts[1].outcome, "ok");
    assert_eq!(o.cloud(), Some("local-openai"));
    let u = o.usage();
    assert_eq!(
        u.input_tokens,
        v["usage"]["prompt_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        u.output_tokens,
        v["usage"]["completion_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        anycloud_router::reason::header_value(&o.route),
        "azure-us:failed(upstream_503) local-openai:ok"
    );
    // local-openai's deployment has no price in this config: cost 0.
    assert_eq!(o.cost_usd(), 0.0);
}

#[tokio::test]
async fn azure_price_is_applied_to_cloud_reported_usage() {
    let gw = start().await;
    let v: serde_json::Value = gw.chat(hello("gpt-4o")).await.json().await.unwrap();
    let o = &gw.outcomes(1).await[0];
    let (p, c) = (
        v["usage"]["prompt_tokens"].as_f64().unwrap(),
        v["usage"]["completion_tokens"].as_f64().unwrap(),
    );
    let expected = (p * 2.5 + c * 10.0) / 1e6;
    assert!(
        (o.cost_usd() - expected).abs() < 1e-12,
        "{} vs {expected}",
        o.cost_usd()
    );
}

#[tokio::test]
async fn streams_record_the_clouds_usage_when_they_end() {
    let gw = start().await;
    let mut body = hello("gpt-4o");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = gw.chat(body).await.text().await.unwrap();
    let usage_chunk = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .last()
        .unwrap();
    let o = &gw.outcomes(1).await[0];
    assert_eq!(o.status, 200);
    let a = &o.attempts[0];
    assert!(!a.usage_estimated);
    assert_eq!(
        a.usage.unwrap().output_tokens,
        usage_chunk["usage"]["completion_tokens"].as_u64().unwrap()
    );
    assert!(a.ttft_ms.is_some());
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_recorded_as_499() {
    let gw = start().await;
    gw.azure
        .faults()
        .set_chunk_delay(std::time::Duration::from_millis(200));
    let mut body = hello("gpt-4o");
    body["stream"] = json!(true);
    let mut r = gw.chat(body).await;
    let _first = r.chunk().await.unwrap();
    drop(r);
    let o = &gw.outcomes(1).await[0];
    assert_eq!(o.status, 499);
    assert!(o.attempts[0].usage.is_some(), "an estimate at least");
}

#[tokio::test]
async fn rejected_requests_after_auth_are_recorded_without_attempts() {
    let gw = start().await;
    let _ = gw.chat(json!({"model": "gpt-4o"})).await;
    let _ = gw.post("/v1/chat/completions", None, hello("gpt-4o")).await;
    let o = gw.outcomes(1).await;
    assert_eq!(
        o.len(),
        1,
        "unauthenticated requests have no tenant to record"
    );
    assert_eq!(o[0].status, 400);
    assert!(o[0].attempts.is_empty());
}

#[tokio::test]
async fn streamed_and_responses_traffic_count_toward_commitment_spend() {
    use anycloud_router::SpendSource;
    let gw = start().await;
    let spent = || {
        let today = chrono::Utc::now().date_naive();
        gw.state
            .clouds
            .spent_usd("azure-us", today, today + chrono::Days::new(1))
    };
    let mut body = hello("gpt-4o");
    body["stream"] = json!(true);
    let _ = gw.chat(body).await.text().await.unwrap();
    gw.outcomes(1).await;
    let after_stream = spent();
    assert!(after_stream > 0.0, "a streamed request counts");
    let key = gw.key.clone();
    let r = gw
        .post(
            "/v1/responses",
            Some(&key),
            json!({"model": "gpt-4o", "input": "hi"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    gw.outcomes(2).await;
    assert!(spent() > after_stream, "a Responses request counts");
}

#[tokio::test]
async fn commitment_spend_already_in_the_ledger_survives_a_restart() {
    use anycloud_router::SpendSource;
    use chrono::TimeZone;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[store]
url = "sqlite://{db}"

[[clouds]]
name = "azure-us"
provider = "openai_compatible"
base_url = "http://127.0.0.1:9/v1"

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o"

[[agreements.commitment]]
cloud = "azure-us"
amount_usd = 1000.0
from = "2026-01-01"
to = "2026-12-31"
"#,
        db = dir.path().join("gw.db").display()
    );
    let config =
        anycloud_config::parse_str(&text, &dir.path().join("anycloud.toml"), &|_| None).unwrap();
    let store = anycloud_store::open(&config.store.url).await.unwrap();
    let record = |month: u32, day: u32, usd: f64| {
        let at = chrono::Utc
            .with_ymd_and_hms(2026, month, day, 9, 0, 0)
            .unwrap();
        usage_record(at, "azure-us", "team", (10, 10), usd)
    };
    store
        .insert_usage(&[record(3, 1, 2.5), record(12, 31, 1.5)])
        .await
        .unwrap();
    // Before the commitment's window: not loaded.
    let before = chrono::Utc.with_ymd_and_hms(2025, 12, 31, 9, 0, 0).unwrap();
    store
        .insert_usage(&[usage_record(before, "azure-us", "team", (10, 10), 7.0)])
        .await
        .unwrap();

    // A gateway starting on this store knows what was spent before it started.
    let state = anycloud_server::AppState::build(config, store)
        .await
        .unwrap();
    let d = |m, day| chrono::NaiveDate::from_ymd_opt(2026, m, day).unwrap();
    let spent = state
        .clouds
        .spent_usd("azure-us", d(1, 1), d(12, 31) + chrono::Days::new(1));
    assert!((spent - 4.0).abs() < 1e-9, "{spent}");
}
