//! Issue #14's defects, each as a user (or an attacker) would meet it over HTTP: no way
//! into the admin API, the dashboard or `/metrics` without the token, and a per-address
//! limit on failed attempts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{start, start_with, Options, ADMIN_TOKEN};
use reqwest::{redirect, StatusCode};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_empty_admin_token_in_the_config_opens_nothing() {
    // Validation refuses it at start; a config built in code still must not open up.
    let gw = start_with(Options {
        adjust: Some(|c| c.server.admin_token = Some(secrecy::SecretString::from(""))),
        ..Options::default()
    })
    .await;
    for form in [vec![("token", "")], vec![]] {
        let r = client()
            .post(format!("{}/ui/login", gw.url))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{form:?}");
        assert!(r.headers().get("set-cookie").is_none());
    }
    for auth in ["Bearer ", "Bearer", "bearer  "] {
        let r = client()
            .get(format!("{}/admin/v1/tenants", gw.url))
            .header("authorization", auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
    }
}

#[tokio::test]
async fn ten_failed_admin_attempts_from_one_address_get_a_429_even_with_the_right_token() {
    let gw = start().await;
    let admin = |token: &'static str| {
        client()
            .get(format!("{}/admin/v1/tenants", gw.url))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(admin(ADMIN_TOKEN).await.unwrap().status(), StatusCode::OK);
    for _ in 0..10 {
        let r = admin("not-the-admin-token").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = admin(ADMIN_TOKEN).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = common::header(&r, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failed_attempts");
    // The dashboard login shares the limit.
    let r = client()
        .post(format!("{}/ui/login", gw.url))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Client traffic is not affected.
    assert_eq!(
        gw.chat(common::hello("gpt-4o")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_need_the_metrics_or_admin_token_except_on_the_internal_listener() {
    let gw = start_with(Options {
        adjust: Some(|c| {
            c.server.metrics_token = Some(secrecy::SecretString::from("metrics-token-0123456789"))
        }),
        ..Options::default()
    })
    .await;
    assert_eq!(
        gw.chat(common::hello("gpt-4o")).await.status(),
        StatusCode::OK
    );
    let metrics = |token: Option<String>| {
        let mut rb = client().get(format!("{}/metrics", gw.url));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        rb.send()
    };
    for refused in [
        None,
        Some(gw.key.clone()),
        Some("metrics-token-012345678".into()),
    ] {
        let r = metrics(refused.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{refused:?}");
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("tenant=\"team\""),
            "no tenant data in a refusal"
        );
    }
    for ok in ["metrics-token-0123456789", ADMIN_TOKEN] {
        let r = metrics(Some(ok.into())).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("anycloud_requests_total"));
    }
    // The internal listener (`server.metrics_listen`) serves it without a token, and
    // nothing else.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let internal = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(anycloud_server::serve_metrics(
        listener,
        gw.state.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    let r = client()
        .get(format!("{internal}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("anycloud_requests_total"));
    let r = client()
        .get(format!("{internal}/admin/v1/tenants"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    drop(tx);
}

#[tokio::test]
async fn metrics_without_any_token_configured_are_refused_on_the_main_listener() {
    let gw = start_with(Options {
        adjust: Some(|c| c.server.admin_token = None),
        ..Options::default()
    })
    .await;
    let r = client()
        .get(format!("{}/metrics", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "metrics_disabled");
}

/// A cloud that answers like OpenAI but with absurd numbers: usage far beyond what the
/// request allowed, or a 429 whose `retry-after` is `1e20` / `inf` (chosen by the
/// prompt's text).
async fn hostile_cloud() -> String {
    use axum::http::HeaderMap;
    async fn reply(body: axum::body::Bytes) -> axum::response::Response {
        use axum::response::IntoResponse;
        let text = String::from_utf8_lossy(&body);
        for (marker, value) in [("throttle-1e20", "1e20"), ("throttle-inf", "inf")] {
            if text.contains(marker) {
                let mut h = HeaderMap::new();
                h.insert("retry-after", value.parse().unwrap());
                h.insert("retry-after-ms", "1e30".parse().unwrap());
                let err = serde_json::json!({"error": {"message": "slow down", "type": "rate_limit", "code": "rate_limited"}});
                return (StatusCode::TOO_MANY_REQUESTS, h, axum::Json(err)).into_response();
            }
        }
        axum::Json(serde_json::json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "ok"}}],
            "usage": {"prompt_tokens": 18_000_000_000_000_000_000u64,
                      "completion_tokens": 18_000_000_000_000_000_000u64,
                      "total_tokens": 18_000_000_000_000_000_000u64}
        }))
        .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(axum::routing::post(reply));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

static HOSTILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn gateway_over_a_hostile_cloud() -> common::Gateway {
    // nextest runs each test in its own process, so one static is enough; under `cargo
    // test` the first URL wins and every test still gets a hostile cloud.
    let url = hostile_cloud().await;
    let _ = HOSTILE.set(url);
    start_with(Options {
        adjust: Some(|c| {
            let url = HOSTILE.get().cloned().unwrap_or_default();
            for cloud in &mut c.clouds {
                if cloud.name == "local-openai" {
                    cloud.base_url = Some(url.clone());
                }
            }
        }),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn usage_beyond_the_request_is_clamped_for_billing_kept_as_reported_and_counted() {
    let gw = gateway_over_a_hostile_cloud().await;
    let body = serde_json::json!({"model": "other-model", "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hello!"}]});
    let r = gw.chat(body).await;
    assert_eq!(r.status(), StatusCode::OK);
    let out = gw.outcomes(1).await;
    let a = &out[0].attempts[0];
    let billed = a.usage.unwrap();
    assert_eq!(billed.output_tokens, 10, "output clamped to max_tokens");
    assert_eq!(
        billed.input_tokens, 1_024,
        "input clamped to the estimate bound"
    );
    assert_eq!(
        a.reported_usage.unwrap().output_tokens,
        18_000_000_000_000_000_000,
        "the report is kept beside the billed figure"
    );
    let r = client()
        .get(format!("{}/metrics", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let m = r.text().await.unwrap();
    assert!(
        m.contains(r#"anycloud_usage_clamped_total{cloud="local-openai"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn a_retry_after_of_1e20_or_inf_is_clamped_not_a_panic() {
    for marker in ["throttle-1e20", "throttle-inf"] {
        // A fresh gateway each: the first 429 rests the cloud for the clamped hour.
        let gw = gateway_over_a_hostile_cloud().await;
        let body = serde_json::json!({"model": "other-model",
            "messages": [{"role": "user", "content": marker}]});
        let r = gw.chat(body).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS, "{marker}");
        let retry: u64 = common::header(&r, "retry-after").parse().unwrap();
        assert!(retry <= 3600, "{marker}: {retry}");
    }
}

#[tokio::test]
async fn more_than_2048_embedding_inputs_is_a_400_naming_input_before_any_cloud() {
    let gw = start().await;
    let many =
        |n: usize| serde_json::json!({"model": "text-embedding-3-small", "input": vec!["x"; n]});
    let key = gw.key.clone();
    let e = common::error_of(
        gw.post("/v1/embeddings", Some(&key), many(2_049)).await,
        400,
    )
    .await;
    assert_eq!(e["param"], "input");
    assert!(e["message"].as_str().unwrap().contains("2048"), "{e}");
    assert_eq!(
        gw.upstream_requests(),
        0,
        "a refused request reached a cloud"
    );
    let r = gw.post("/v1/embeddings", Some(&key), many(2_048)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2_048);
}

#[tokio::test]
async fn secure_cookies_marks_the_dashboard_session_cookie_secure() {
    let gw = start_with(Options {
        adjust: Some(|c| c.server.secure_cookies = true),
        ..Options::default()
    })
    .await;
    let r = client()
        .post(format!("{}/ui/login", gw.url))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = common::header(&r, "set-cookie");
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[tokio::test]
async fn an_unknown_model_suggests_only_models_the_tenant_may_use() {
    let gw = start().await;
    // `narrow` may use `other-model` only; `gpt-4` is close to `gpt-4o`, which it may not.
    let key = gw.narrow_key.clone();
    let r = gw
        .post("/v1/chat/completions", Some(&key), common::hello("gpt-4"))
        .await;
    let e = common::error_of(r, 404).await;
    assert!(!e["message"].as_str().unwrap().contains("gpt-4o"), "{e}");
}
