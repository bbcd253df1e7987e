//! Every bad input gets the right status and the OpenAI error shape, and
//! never reaches a cloud.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_keys_are_401() {
    let gw = start().await;
    let body = hello("gpt-4o");
    let e = error_of(
        gw.post("/v1/chat/completions", None, body.clone()).await,
        401,
    )
    .await;
    assert_eq!(e["type"], "authentication_error");
    let e = error_of(
        gw.post("/v1/chat/completions", Some("not-a-key"), body.clone())
            .await,
        401,
    )
    .await;
    assert_eq!(e["code"], "invalid_api_key");
    // Well-formed but unknown id, and a known id with the wrong secret.
    let fake = "sk-ac-aaaaaaaaaaaa-0123456789012345678901234567890123456789";
    error_of(
        gw.post("/v1/chat/completions", Some(fake), body.clone())
            .await,
        401,
    )
    .await;
    // The same key id with its last secret character changed.
    let last = if gw.key.ends_with('A') { 'B' } else { 'A' };
    let wrong_secret = format!("{}{last}", &gw.key[..gw.key.len() - 1]);
    assert_ne!(wrong_secret, gw.key);
    error_of(
        gw.post("/v1/chat/completions", Some(&wrong_secret), body.clone())
            .await,
        401,
    )
    .await;
    // Revocation bites within two seconds even with a warm cache.
    assert_eq!(gw.chat(body.clone()).await.status(), 200);
    let before = gw.upstream_requests();
    let id = anycloud_store::keys::parse_id(&gw.key).unwrap().to_string();
    gw.state.store.revoke_key(&id).await.unwrap();
    tokio::time::sleep(anycloud_server::auth::CACHE_TTL + std::time::Duration::from_millis(100))
        .await;
    error_of(gw.chat(body).await, 401).await;
    assert_eq!(
        gw.upstream_requests(),
        before,
        "a refused request reached a cloud"
    );
}

/// A key in steady use is read again in the background once its cache entry is half its
/// TTL old: a revocation made straight in the store (another instance, no Redis) is
/// seen before the entry would have expired, and the request that noticed the age did
/// not wait for the read (it was served from the cache).
#[tokio::test]
async fn a_key_in_use_is_refreshed_ahead_of_its_ttl() {
    use anycloud_server::auth::{CACHE_TTL, REFRESH_AHEAD};
    let gw = start().await;
    let body = hello("gpt-4o");
    assert_eq!(gw.chat(body.clone()).await.status(), 200);
    let cached_at = std::time::Instant::now();
    let id = anycloud_store::keys::parse_id(&gw.key).unwrap().to_string();
    gw.state.store.revoke_key(&id).await.unwrap();
    tokio::time::sleep(REFRESH_AHEAD + std::time::Duration::from_millis(50)).await;
    // Half-way through the TTL: served from the cache, which starts the refresh.
    assert_eq!(gw.chat(body.clone()).await.status(), 200);
    let mut refused = false;
    while cached_at.elapsed() < CACHE_TTL - std::time::Duration::from_millis(100) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if gw.chat(body.clone()).await.status() == 401 {
            refused = true;
            break;
        }
    }
    assert!(
        refused,
        "the revocation was not seen before the cached entry expired: no refresh ahead"
    );
}

#[tokio::test]
async fn malformed_json_missing_fields_and_bad_values_are_400() {
    let gw = start().await;
    let raw = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&gw.key)
        .header("content-type", "application/json")
        .body("{\"model\": \"gpt-4o\", \"messages\": [")
        .send()
        .await
        .unwrap();
    let e = error_of(raw, 400).await;
    assert_eq!(e["type"], "invalid_request_error");
    assert!(e["message"].as_str().unwrap().contains("parse"), "{e}");

    let e = error_of(gw.chat(json!({"model": "gpt-4o"})).await, 400).await;
    assert_eq!(e["param"], "messages");
    let e = error_of(
        gw.chat(json!({"messages": [{"role": "user", "content": "x"}]}))
            .await,
        400,
    )
    .await;
    assert_eq!(e["param"], "model");
    let e = error_of(
        gw.chat(json!({"model": "gpt-4o", "messages": []})).await,
        400,
    )
    .await;
    assert_eq!(e["param"], "messages");
    let e = error_of(
        gw.chat(json!({"model": "gpt-4o", "temperature": 7, "messages": [{"role": "user", "content": "x"}]}))
            .await,
        400,
    )
    .await;
    assert_eq!(e["param"], "temperature");
    let e = error_of(
        gw.chat(json!({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}))
            .await,
        400,
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("wizard"), "{e}");
    let e = error_of(
        gw.post(
            "/v1/embeddings",
            Some(&gw.key.clone()),
            json!({"model": "text-embedding-3-small", "input": []}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(e["param"], "input");
    assert_eq!(gw.upstream_requests(), 0, "a bad request reached a cloud");
}

#[tokio::test]
async fn unknown_model_is_404_with_suggestions_and_forbidden_model_is_403() {
    let gw = start().await;
    let e = error_of(gw.chat(hello("gpt-4")).await, 404).await;
    assert_eq!(e["code"], "model_not_found");
    assert!(e["message"].as_str().unwrap().contains("`gpt-4o`"), "{e}");
    let narrow = gw.narrow_key.clone();
    let e = error_of(
        gw.post("/v1/chat/completions", Some(&narrow), hello("gpt-4o"))
            .await,
        403,
    )
    .await;
    assert_eq!(e["type"], "permission_error");
    assert_eq!(e["code"], "model_not_allowed");
    // An EU-only tenant with only US clouds: policy names the rule and clouds.
    let eu = gw.eu_key.clone();
    let r = gw
        .post("/v1/chat/completions", Some(&eu), hello("gpt-4o"))
        .await;
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:declined(jurisdiction) local-openai:declined(jurisdiction)"
    );
    let e = error_of(r, 403).await;
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("jurisdiction") && msg.contains("azure-us") && msg.contains("local-openai"),
        "{msg}"
    );
    assert_eq!(gw.upstream_requests(), 0);
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let gw = start_with(Options {
        max_body_bytes: 2048,
        ..Options::default()
    })
    .await;
    let big = "x".repeat(4096);
    let e = error_of(
        gw.chat(json!({"model": "gpt-4o", "messages": [{"role": "user", "content": big}]}))
            .await,
        413,
    )
    .await;
    assert!(e["message"].as_str().unwrap().contains("2048"), "{e}");
    assert_eq!(gw.upstream_requests(), 0);
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_openai_shape() {
    let gw = start().await;
    let r = gw
        .http
        .get(format!("{}/v1/nope", gw.url))
        .send()
        .await
        .unwrap();
    let e = error_of(r, 404).await;
    assert_eq!(e["code"], "unknown_url");
    let r = gw
        .http
        .get(format!("{}/v1/chat/completions", gw.url))
        .send()
        .await
        .unwrap();
    error_of(r, 405).await;
}

#[tokio::test]
async fn a_model_that_cannot_do_the_request_is_400_not_an_outage() {
    let gw = start().await;
    let key = gw.key.clone();
    let r = gw
        .post(
            "/v1/embeddings",
            Some(&key),
            json!({"model": "gpt-4o", "input": "x"}),
        )
        .await;
    assert_eq!(
        header(&r, "x-anycloud-route"),
        "azure-us:declined(capability:embeddings) local-openai:declined(capability:embeddings)"
    );
    let e = error_of(r, 400).await;
    assert_eq!(e["code"], "model_capability_mismatch");
    let e = error_of(
        gw.chat(json!({"model": "gpt-4o", "tool_choice": {"type": "function", "function": {"name": "nope"}},
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "x"}]}))
            .await,
        400,
    )
    .await;
    assert_eq!(e["param"], "tool_choice");
    assert_eq!(gw.upstream_requests(), 0);
}
