//! Cache affinity through the HTTP API (README "Prompt caching"): a follow-up turn — the
//! same `prompt_cache_key`, or the same tools, system prompt and first message of a long
//! prompt — goes back to the cloud that served the one before (`ok(cache_affinity)` in
//! `x-anycloud-route`), unless that cloud is drained or its breaker is open, and never
//! ahead of the primary's first look. Short prompts without cache hints route as always.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{header, hello, start, start_with, Gateway, Options, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::time::Duration;

fn keyed(key: &str, text: &str) -> Value {
    json!({"model": "gpt-4o", "prompt_cache_key": key,
           "messages": [{"role": "user", "content": text}]})
}

async fn drain(gw: &Gateway, cloud: &str, drained: bool) {
    let action = if drained { "drain" } else { "restore" };
    let r = gw
        .http
        .post(format!("{}/admin/v1/clouds/{cloud}/{action}", gw.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

async fn route(gw: &Gateway, body: Value) -> String {
    let r = gw.chat(body).await;
    assert_eq!(r.status(), 200, "{}", header(&r, "x-anycloud-route"));
    header(&r, "x-anycloud-route").to_string()
}

#[tokio::test]
async fn a_keyed_conversation_stays_on_its_cloud_until_drained_or_broken() {
    let gw = start().await;
    drain(&gw, "azure-us", true).await;
    assert_eq!(
        route(&gw, keyed("agent-1", "first")).await,
        "azure-us:declined(drained) local-openai:ok"
    );
    drain(&gw, "azure-us", false).await;
    // Azure is first in config order again; the cache is on local-openai.
    assert_eq!(
        route(&gw, keyed("agent-1", "second")).await,
        "local-openai:ok(cache_affinity)"
    );
    // Another key, or no hint at all on a short prompt: config order.
    assert_eq!(route(&gw, keyed("agent-2", "first")).await, "azure-us:ok");
    assert_eq!(route(&gw, hello("gpt-4o")).await, "azure-us:ok");

    // An open breaker on the affine cloud: the turn goes elsewhere, and the conversation
    // then follows it there.
    gw.state
        .clouds
        .record_failure("local-openai", Some(Duration::from_secs(60)));
    assert_eq!(
        route(&gw, keyed("agent-1", "third")).await,
        "local-openai:declined(breaker_open) azure-us:ok"
    );
    // Once the breaker closes, the turn stays on azure-us (affinity to local-openai would
    // say `local-openai:ok(cache_affinity)`).
    gw.state
        .clouds
        .record_success("local-openai", Duration::from_millis(5));
    assert_eq!(route(&gw, keyed("agent-1", "fourth")).await, "azure-us:ok");
}

#[tokio::test]
async fn a_long_conversation_is_recognised_by_its_prefix() {
    let gw = start().await;
    let system = "You are a careful assistant. ".repeat(200);
    let turn = |history: &[&str]| {
        let mut messages = vec![json!({"role": "system", "content": system})];
        for (i, t) in history.iter().enumerate() {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            messages.push(json!({"role": role, "content": t}));
        }
        json!({"model": "gpt-4o", "messages": messages})
    };
    drain(&gw, "azure-us", true).await;
    assert_eq!(
        route(&gw, turn(&["hi"])).await,
        "azure-us:declined(drained) local-openai:ok"
    );
    drain(&gw, "azure-us", false).await;
    assert_eq!(
        route(&gw, turn(&["hi", "hello", "and now?"])).await,
        "local-openai:ok(cache_affinity)"
    );
    // Another first message is another conversation.
    assert_eq!(route(&gw, turn(&["bye"])).await, "azure-us:ok");
}

#[tokio::test]
async fn the_primary_keeps_its_first_look() {
    let gw = start_with(Options {
        routing: "[agreements.primary]\ncloud = \"azure-us\"\n".into(),
        ..Options::default()
    })
    .await;
    drain(&gw, "azure-us", true).await;
    assert_eq!(
        route(&gw, keyed("agent-1", "first")).await,
        "azure-us:declined(drained) local-openai:ok"
    );
    drain(&gw, "azure-us", false).await;
    // The cache is on local-openai, but the primary looks first.
    assert_eq!(route(&gw, keyed("agent-1", "second")).await, "azure-us:ok");
}
