//! Routing, resilience and the kill switch through the HTTP API, with fault
//! injection on the emulators: random primary failures lose no request, a
//! 429 with retry-after opens the breaker for that long, a drained cloud
//! gets nothing, hedging picks the fast cloud, admin auth, explain agrees
//! with the live header, 403 vs 503 when nothing can serve.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{error_of, header, hello, start, start_with, Options, ADMIN_TOKEN};
use std::time::{Duration, Instant};

async fn admin(
    gw: &common::Gateway,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> reqwest::Response {
    let mut rb = gw.http.request(method, format!("{}{}", gw.url, path));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    rb.send().await.unwrap()
}

#[tokio::test]
async fn primary_failing_30_percent_loses_no_request() {
    let gw = start().await;
    gw.azure.faults().seed(42);
    gw.azure.faults().fail_rate(0.3, 503);
    let mut failed_over = 0;
    for _ in 0..100 {
        let r = gw.chat(hello("gpt-4o")).await;
        assert_eq!(r.status(), 200, "route {}", header(&r, "x-anycloud-route"));
        if header(&r, "x-anycloud-route").contains("failed(upstream_503)") {
            failed_over += 1;
        }
    }
    assert!(failed_over > 5, "faults were injected: {failed_over}");
}

#[tokio::test]
async fn retry_after_opens_the_breaker_for_that_long() {
    let gw = start().await;
    gw.azure.faults().fail_next(1, 429, Some(1));
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:failed(upstream_429) local-openai:ok"
    );
    let before = gw.azure.request_count();
    assert_eq!(
        gw.route_of("gpt-4o").await,
        "azure-us:declined(breaker_open) local-openai:ok"
    );
    assert_eq!(gw.azure.request_count(), before, "open breaker: no traffic");
    let clouds: serde_json::Value = admin(
        &gw,
        reqwest::Method::GET,
        "/admin/v1/clouds",
        Some(ADMIN_TOKEN),
    )
    .await
    .json()
    .await
    .unwrap();
    let az = &clouds["data"][0];
    assert_eq!(az["name"], "azure-us");
    assert_eq!(az["breaker"], "open");
    assert!(az["opened_until"].is_string());
    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("anycloud_cloud_breaker_state{cloud=\"azure-us\"} 2"),
        "{metrics}"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        gw.route_of("gpt-4o").await,
        "azure-us:ok",
        "half-open probe succeeds"
    );
    assert_eq!(gw.route_of("gpt-4o").await, "azure-us:ok", "closed again");
}

#[tokio::test]
async fn consecutive_failures_open_the_breaker() {
    let gw = start_with(Options {
        routing: "[routing.breaker]\nconsecutive_failures = 2\ncool_down_ms = 60000\n".into(),
        ..Options::default()
    })
    .await;
    gw.azure.faults().fail_next(2, 500, None);
    for _ in 0..2 {
        let r = gw.chat(hello("gpt-4o")).await;
        assert_eq!(
            header(&r, "x-anycloud-route"),
            "azure-us:failed(upstream_500) local-openai:ok"
        );
    }
    assert_eq!(
        gw.route_of("gpt-4o").await,
        "azure-us:declined(breaker_open) local-openai:ok"
    );
}

#[tokio::test]
async fn a_half_open_probe_whose_client_went_away_does_not_block_the_cloud() {
    let gw = start_with(Options {
        routing: "[routing.breaker]\nconsecutive_failures = 1\ncool_down_ms = 300\n".into(),
        ..Options::default()
    })
    .await;
    gw.azure.faults().fail_next(1, 500, None);
    assert_eq!(
        gw.route_of("gpt-4o").await,
        "azure-us:failed(upstream_500) local-openai:ok"
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // Half-open: this request is Azure's probe, and its client gives up while
    // Azure is still thinking.
    gw.azure
        .faults()
        .set_latency(std::time::Duration::from_secs(3));
    let gone = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&gw.key)
        .json(&hello("gpt-4o"))
        .timeout(std::time::Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the client timed out");
    gw.azure.faults().reset();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // The abandoned probe's slot is free: the next request probes Azure again.
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(header(&r, "x-anycloud-route"), "azure-us:ok");
}

#[tokio::test]
async fn drained_cloud_receives_nothing_and_restore_brings_it_back() {
    let gw = start().await;
    let r = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/v1/clouds/azure-us/drain",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["name"], "azure-us");
    assert_eq!(v["drained"], true);
    let before = gw.azure.request_count();
    let t0 = Instant::now();
    for _ in 0..10 {
        let r = gw.chat(hello("gpt-4o")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "x-anycloud-route"),
            "azure-us:declined(drained) local-openai:ok"
        );
    }
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(
        gw.azure.request_count(),
        before,
        "drained cloud got traffic"
    );
    let list: serde_json::Value = admin(
        &gw,
        reqwest::Method::GET,
        "/admin/v1/clouds",
        Some(ADMIN_TOKEN),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(list["data"][0]["drained"], true);
    assert_eq!(list["data"][1]["drained"], false);
    assert_eq!(list["data"][0]["provider"], "azure_openai");
    assert_eq!(list["data"][0]["jurisdiction"], "us");
    let r = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/v1/clouds/azure-us/restore",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(header(&r, "x-anycloud-route"), "azure-us:ok");
    // Unknown cloud: 404 in the OpenAI shape.
    let r = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/v1/clouds/nope/drain",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "cloud_not_found");
}

#[tokio::test]
async fn admin_requires_the_admin_token() {
    let gw = start().await;
    for path in [
        "/admin/v1/clouds",
        "/admin/v1/route/explain?model=gpt-4o&tenant=team",
    ] {
        let r = admin(&gw, reqwest::Method::GET, path, None).await;
        assert_eq!(r.status(), 401, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "authentication_error");
        let key = gw.key.clone();
        let r = admin(&gw, reqwest::Method::GET, path, Some(&key)).await;
        assert_eq!(r.status(), 403, "client key on {path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "permission_error");
        // A wrong admin token is an authentication failure (401), like no token.
        let r = admin(&gw, reqwest::Method::GET, path, Some("admin-secret-tokeX")).await;
        assert_eq!(r.status(), 401, "wrong token on {path}");
    }
    let r = admin(
        &gw,
        reqwest::Method::POST,
        "/admin/v1/clouds/azure-us/drain",
        Some("nope"),
    )
    .await;
    assert_eq!(r.status(), 401);
    assert!(!gw.state.clouds.is_drained_now("azure-us"));
}

#[tokio::test]
async fn hedging_picks_the_fast_cloud_when_the_primary_is_slow() {
    let gw = start_with(Options {
        routing: "[routing]\nhedge_after_ms = 100\n".into(),
        ..Options::default()
    })
    .await;
    gw.azure.faults().set_latency(Duration::from_secs(3));
    let t0 = Instant::now();
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(r.status(), 200);
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(header(&r, "x-anycloud-cloud"), "local-openai");
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:failed(hedge_lost) local-openai:ok"
    );
}

#[tokio::test]
async fn hedging_applies_to_every_non_streaming_api() {
    let gw = start_with(Options {
        routing: "[routing]\nhedge_after_ms = 100\n".into(),
        ..Options::default()
    })
    .await;
    gw.azure.faults().set_latency(Duration::from_secs(3));
    for (path, body) in [
        (
            "/v1/messages",
            serde_json::json!({"model": "gpt-4o", "max_tokens": 50,
                "messages": [{"role": "user", "content": "Hello!"}]}),
        ),
        (
            "/v1/responses",
            serde_json::json!({"model": "gpt-4o", "input": "Hello!"}),
        ),
        (
            "/v1/embeddings",
            serde_json::json!({"model": "text-embedding-3-small", "input": "Hello!"}),
        ),
    ] {
        let t0 = Instant::now();
        let r = gw.post(path, Some(&gw.key), body).await;
        assert_eq!(r.status(), 200, "{path}");
        assert!(t0.elapsed() < Duration::from_millis(2000), "{path}");
        assert_eq!(
            header(&r, "x-anycloud-route"),
            "azure-us:failed(hedge_lost) local-openai:ok",
            "{path}"
        );
    }
}

#[tokio::test]
async fn no_hedging_without_the_setting() {
    let gw = start().await;
    gw.azure.faults().set_latency(Duration::from_millis(400));
    let r = gw.chat(hello("gpt-4o")).await;
    assert_eq!(header(&r, "x-anycloud-route"), "azure-us:ok");
    assert_eq!(gw.local.request_count(), 0);
}

#[tokio::test]
async fn retry_budget_limits_attempts_and_backoff_retries_the_last_cloud() {
    // One attempt allowed: the primary's failure is final.
    let gw = start_with(Options {
        routing: "[routing.retry]\nmax_attempts = 1\n".into(),
        ..Options::default()
    })
    .await;
    gw.azure.faults().fail_next(1, 503, None);
    let r = gw.chat(hello("gpt-4o")).await;
    let e = error_of(r, 503).await;
    assert!(e["message"].as_str().unwrap().contains("azure-us"));
    assert_eq!(gw.local.request_count(), 0);

    // A single candidate (local-openai only serves other-model): the same
    // cloud is retried after a backoff.
    let gw = start().await;
    gw.local.faults().fail_next(1, 502, None);
    let r = gw.chat(hello("other-model")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "local-openai:failed(upstream_502) local-openai:ok"
    );
}

#[tokio::test]
async fn all_failed_is_503_policy_is_403() {
    let gw = start().await;
    gw.azure.faults().fail_next(5, 503, None);
    gw.local.faults().fail_next(5, 503, None);
    let r = gw.chat(hello("gpt-4o")).await;
    let route = header(&r, "x-anycloud-route").to_string();
    let e = error_of(r, 503).await;
    assert!(route.contains("azure-us:failed(upstream_503)"), "{route}");
    assert!(
        route.contains("local-openai:failed(upstream_503)"),
        "{route}"
    );
    assert!(e["message"].as_str().unwrap().contains("local-openai"));

    let eu = gw.eu_key.clone();
    let r = gw
        .post("/v1/chat/completions", Some(&eu), hello("gpt-4o"))
        .await;
    let route = header(&r, "x-anycloud-route").to_string();
    let e = error_of(r, 403).await;
    assert_eq!(
        route,
        "azure-us:declined(jurisdiction) local-openai:declined(jurisdiction)"
    );
    assert!(e["message"].as_str().unwrap().contains("jurisdiction"));
}

#[tokio::test]
async fn explain_endpoint_agrees_with_the_live_header() {
    let gw = start().await;
    gw.local.faults().set_latency(Duration::ZERO);
    let r = admin(
        &gw,
        reqwest::Method::GET,
        "/admin/v1/route/explain?model=gpt-4o&tenant=team&needs=vision",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), 200);
    let ex: serde_json::Value = r.json().await.unwrap();
    assert_eq!(ex["candidates"][0]["cloud"], "azure-us");
    assert_eq!(ex["declined"][0]["reason"], "capability:vision");
    let body = serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ]}]});
    let live = gw.chat(body).await;
    assert_eq!(live.status(), 200);
    assert_eq!(
        header(&live, "x-anycloud-route"),
        ex["route_header"].as_str().unwrap()
    );

    // Drained live state shows up in the admin explain.
    gw.state.clouds.set_drained("azure-us", true);
    let ex: serde_json::Value = admin(
        &gw,
        reqwest::Method::GET,
        "/admin/v1/route/explain?model=gpt-4o&tenant=team",
        Some(ADMIN_TOKEN),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        ex["route_header"],
        "azure-us:declined(drained) local-openai:ok"
    );
    let r = admin(
        &gw,
        reqwest::Method::GET,
        "/admin/v1/route/explain?model=gpt-4o&tenant=team&needs=telepathy",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(r.status(), 400);
}
