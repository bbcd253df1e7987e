//! Failover across deployments: invisible to the client until the first
//! byte of a response has been sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn retryable_status_moves_to_the_next_deployment() {
    let gw = start().await;
    gw.azure.faults().fail_next(1, 503, Some(1));
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-anycloud-cloud"), "local-openai");
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:failed(upstream_503) local-openai:ok"
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("local-openai"));
    // The upstream got the deployment's own id, never the public name alone.
    assert_eq!(gw.local.requests()[0].body["model"], "gpt-4o");
    assert!(gw.azure.requests()[0]
        .path
        .contains("/openai/deployments/gpt-4o-prod/"));
}

#[tokio::test]
async fn a_400_from_a_cloud_is_the_clients_error_and_is_not_retried() {
    let gw = start().await;
    let r = gw
        .chat(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "please trigger-content-filter"}]}))
        .await;
    assert_eq!(header(&r, "x-anycloud-cloud"), "azure-us");
    let e = error_of(r, 400).await;
    assert_eq!(e["code"], "content_filter");
    assert!(
        e.get("innererror").is_some(),
        "Azure's innererror passed through: {e}"
    );
    assert_eq!(
        gw.local.request_count(),
        0,
        "a client error must not fail over"
    );
}

#[tokio::test]
async fn killing_the_primary_mid_run_loses_no_request() {
    let gw = start().await;
    let mut served_by_local = 0;
    for i in 0..30 {
        if i == 10 {
            gw.azure.shutdown();
        }
        let stream = i % 2 == 0;
        let mut body = hello("gpt-4o");
        body["stream"] = json!(stream);
        let r = gw.chat(body).await;
        assert_eq!(r.status(), 200, "request {i} failed");
        if header(&r, "x-anycloud-cloud") == "local-openai" {
            served_by_local += 1;
            assert!(
                // Failed attempts until the breaker opens (after 5 in a
                // row), then skipped without an attempt.
                header(&r, "x-anycloud-route").starts_with("azure-us:failed(")
                    || header(&r, "x-anycloud-route")
                        .starts_with("azure-us:declined(breaker_open)"),
                "{}",
                header(&r, "x-anycloud-route")
            );
        }
        let text = r.text().await.unwrap();
        if stream {
            assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
            assert!(!text.contains("\"error\""), "{text}");
        }
    }
    assert_eq!(served_by_local, 20);
}

#[tokio::test]
async fn refused_connections_and_first_byte_timeouts_fail_over() {
    let gw = start_with(Options {
        first_byte_timeout_ms: 300,
        ..Options::default()
    })
    .await;
    gw.azure.faults().refuse_connections(true);
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:failed(connect) local-openai:ok"
    );
    gw.azure.faults().reset();
    gw.azure.faults().set_latency(Duration::from_millis(1500));
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:failed(timeout) local-openai:ok"
    );
}

#[tokio::test]
async fn when_every_cloud_fails_the_error_lists_each_attempt() {
    let gw = start().await;
    gw.azure.faults().fail_next(5, 503, None);
    gw.local.faults().fail_next(5, 429, Some(2));
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:failed(upstream_503) local-openai:failed(upstream_429)"
    );
    let e = error_of(r, 503).await;
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("azure-us: upstream_503") && msg.contains("local-openai: upstream_429"),
        "{msg}"
    );
}

#[tokio::test]
async fn when_every_cloud_rate_limits_the_client_gets_429_with_the_soonest_retry_after() {
    let gw = start().await;
    gw.azure.faults().fail_next(5, 429, Some(7));
    gw.local.faults().fail_next(5, 429, Some(3));
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:failed(upstream_429) local-openai:failed(upstream_429)"
    );
    assert_eq!(header(&r, "retry-after"), "3");
    let e = error_of(r, 429).await;
    assert_eq!(e["type"], "rate_limit_error");
    assert_eq!(e["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn a_stream_fails_over_before_its_first_byte() {
    let gw = start().await;
    gw.azure.faults().fail_next(1, 500, None);
    let mut body = hello("gpt-4o");
    body["stream"] = json!(true);
    let r = gw.chat(body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-anycloud-cloud"), "local-openai");
    assert_eq!(header(&r, "content-type"), "text/event-stream");
    let text = r.text().await.unwrap();
    assert!(text.contains("local-openai"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_stream_cut_after_its_first_byte_ends_with_an_error_event() {
    let gw = start().await;
    gw.azure.faults().cut_stream_after(4);
    let mut body = hello("gpt-4o");
    body["stream"] = json!(true);
    let r = gw.chat(body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    let n = events.len();
    assert!(n >= 3, "{text}");
    assert_eq!(events[n - 1], "data: [DONE]");
    let last: serde_json::Value =
        serde_json::from_str(events[n - 2].trim_start_matches("data: ")).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted", "{text}");
    assert!(
        text.contains("\"content\":\"Hello \""),
        "partial content was relayed first: {text}"
    );
    assert_eq!(
        gw.local.request_count(),
        0,
        "no failover after the first byte"
    );
}
