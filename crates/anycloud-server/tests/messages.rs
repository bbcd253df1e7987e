//! `/v1/messages` (Anthropic Messages ingress) served by the Anthropic
//! emulator and by the Azure emulator through the canonical model, and
//! `/v1/chat/completions` served by the Anthropic cloud. Own harness: a
//! gateway on port 0 with `claude` (Anthropic first) and `gpt-4o` (Azure).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use serde_json::{json, Value};
use std::sync::Arc;

struct Gw {
    url: String,
    key: String,
    anthropic: EmulatorHandle,
    azure: EmulatorHandle,
    http: reqwest::Client,
    _state: Arc<anycloud_server::AppState>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Gw {
    let anthropic = spawn_on_port(
        EmulatorConfig::anthropic(
            "anthropic-us",
            "an-key",
            vec!["claude-sonnet-4-20250514".into()],
        ),
        0,
    )
    .await
    .unwrap();
    let azure = spawn_on_port(
        EmulatorConfig::azure("azure-us", "az-key", vec!["gpt-4o-prod".into()]),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 4096

[store]
url = "sqlite://{db}"

[[clouds]]
name = "anthropic-us"
provider = "anthropic"
base_url = "{an}"
api_key = "an-key"
jurisdiction = "us"

[[clouds]]
name = "azure-us"
provider = "azure_openai"
base_url = "{az}"
api_key = "az-key"
api_version = "2024-10-21"
jurisdiction = "us"

[[models]]
name = "claude"
[[models.deployments]]
cloud = "anthropic-us"
target = "claude-sonnet-4-20250514"
capabilities = ["chat", "stream", "tools", "vision"]

[[models]]
name = "gpt-4o"
[[models.deployments]]
cloud = "azure-us"
target = "gpt-4o-prod"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]

[[tenants]]
name = "team"
"#,
        db = dir.path().join("gw.db").display(),
        an = anthropic.base_url(),
        az = azure.base_url(),
    );
    let path = dir.path().join("anycloud.toml");
    let config = anycloud_config::parse_str(&text, &path, &|_| None).unwrap();
    let store = anycloud_store::open(&config.store.url).await.unwrap();
    let state = anycloud_server::AppState::build(config, store.clone())
        .await
        .unwrap();
    let (_, k) = anycloud_store::create_key(store.as_ref(), "team", None)
        .await
        .unwrap();
    let key = secrecy::ExposeSecret::expose_secret(&k).to_string();
    let (url, tx) = common::listen(state.clone()).await;
    Gw {
        url,
        key,
        anthropic,
        azure,
        http: reqwest::Client::new(),
        _state: state,
        _dir: dir,
        _stop: tx,
    }
}

impl Gw {
    async fn messages(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/messages", self.url))
            .header("x-api-key", &self.key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    fn upstream(&self) -> usize {
        self.anthropic.request_count() + self.azure.request_count()
    }
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": "Hello!"}]})
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// `(event name, data)` pairs of an Anthropic SSE body.
fn sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let mut name = String::new();
            let mut data = String::new();
            for line in f.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_string();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (name, serde_json::from_str(&data).unwrap())
        })
        .collect()
}

fn tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather by city", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

#[tokio::test]
async fn non_stream_through_anthropic_and_through_azure() {
    let gw = start().await;
    for (model, cloud) in [("claude", "anthropic-us"), ("gpt-4o", "azure-us")] {
        let r = gw.messages(hello(model)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-anycloud-cloud"), cloud);
        assert_eq!(header(&r, "x-anycloud-route"), format!("{cloud}:ok"));
        assert!(header(&r, "x-request-id").starts_with("req_"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["role"], "assistant");
        assert_eq!(v["model"], model);
        assert!(v["id"].as_str().unwrap().starts_with("msg_"));
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(v["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with(&format!("Hello from {cloud}")));
        assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn stream_through_both_clouds_has_anthropic_events_and_usage() {
    let gw = start().await;
    for (model, cloud) in [("claude", "anthropic-us"), ("gpt-4o", "azure-us")] {
        let mut body = hello(model);
        body["stream"] = json!(true);
        let r = gw.messages(body).await;
        assert_eq!(r.status(), 200);
        assert!(header(&r, "content-type").starts_with("text/event-stream"));
        assert_eq!(header(&r, "x-anycloud-cloud"), cloud);
        let evs = sse(&r.text().await.unwrap());
        assert_eq!(evs.first().unwrap().0, "message_start");
        assert_eq!(evs.last().unwrap().0, "message_stop");
        for (name, data) in &evs {
            assert_eq!(data["type"], *name);
        }
        let text: String = evs
            .iter()
            .filter_map(|(_, d)| d["delta"]["text"].as_str())
            .collect();
        assert!(text.starts_with(&format!("Hello from {cloud}")), "{text}");
        let delta = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn tool_round_trip_streamed_and_back() {
    let gw = start().await;
    for (model, cloud) in [("claude", "anthropic-us"), ("gpt-4o", "azure-us")] {
        let body = json!({"model": model, "max_tokens": 256, "stream": true, "tools": tools(),
            "messages": [{"role": "user", "content": "Weather in Oslo?"}]});
        let evs = sse(&gw.messages(body).await.text().await.unwrap());
        let start = &evs
            .iter()
            .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
            .unwrap()
            .1;
        let (index, id) = (
            start["index"].clone(),
            start["content_block"]["id"].as_str().unwrap().to_string(),
        );
        let input: String = evs
            .iter()
            .filter(|(_, d)| d["index"] == index && d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&input).unwrap(),
            json!({"city": "Oslo"}),
            "{cloud}"
        );
        let stop = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
        assert_eq!(stop["delta"]["stop_reason"], "tool_use");

        let body = json!({"model": model, "max_tokens": 256, "tools": tools(), "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": "get_weather", "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "12 C"}]}]});
        let v: Value = gw.messages(body).await.json().await.unwrap();
        assert_eq!(
            v["content"][0]["text"],
            format!("Tool result received from {cloud}: 12 C")
        );
    }
}

#[tokio::test]
async fn bearer_auth_works_too_and_errors_use_the_anthropic_shape() {
    let gw = start().await;
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .bearer_auth(&gw.key)
        .json(&hello("claude"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let check = |status: u16, kind: &'static str| {
        move |r: reqwest::Response| async move {
            assert_eq!(r.status(), status);
            assert!(!header(&r, "x-request-id").is_empty());
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["type"], "error", "{v}");
            assert_eq!(v["error"]["type"], kind, "{v}");
            assert!(!v["error"]["message"].as_str().unwrap().is_empty());
            v
        }
    };
    // 401: no key, wrong key.
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .json(&hello("claude"))
        .send()
        .await
        .unwrap();
    check(401, "authentication_error")(r).await;
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", "ac-wrong")
        .json(&hello("claude"))
        .send()
        .await
        .unwrap();
    check(401, "authentication_error")(r).await;
    // 400: max_tokens missing; bad JSON.
    let mut body = hello("claude");
    body.as_object_mut().unwrap().remove("max_tokens");
    let v = check(400, "invalid_request_error")(gw.messages(body).await).await;
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));
    let r = gw
        .http
        .post(format!("{}/v1/messages", gw.url))
        .header("x-api-key", &gw.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    check(400, "invalid_request_error")(r).await;
    // 404: unknown model.
    check(404, "not_found_error")(gw.messages(hello("claude-nope")).await).await;
    // 413: over the body limit.
    let mut body = hello("claude");
    body["messages"][0]["content"] = json!("x".repeat(10_000));
    check(413, "request_too_large")(gw.messages(body).await).await;
    // None of it reached a cloud.
    assert_eq!(gw.upstream(), 1);
}

#[tokio::test]
async fn bad_requests_never_reach_a_cloud() {
    let gw = start().await;
    let bad = [
        json!({"model": "claude", "max_tokens": 10, "messages": []}),
        json!({"model": "claude", "max_tokens": 10, "temperature": 3, "messages": [{"role": "user", "content": "x"}]}),
        json!({"model": "claude", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]}),
        json!({"model": "claude", "max_tokens": 10, "tools": [{"name": "has space", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "x"}]}),
    ];
    for body in bad {
        let r = gw.messages(body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    assert_eq!(gw.upstream(), 0);
}

#[tokio::test]
async fn stream_failing_after_first_byte_ends_with_an_error_event() {
    let gw = start().await;
    gw.anthropic
        .faults()
        .stream_error_after(5, "overloaded_error");
    let mut body = hello("claude");
    body["stream"] = json!(true);
    body["messages"][0]["content"] = json!("one two three four five six seven");
    let evs = sse(&gw.messages(body).await.text().await.unwrap());
    let (name, data) = evs.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(data["error"]["type"], "overloaded_error");
    assert!(!evs.iter().any(|(n, _)| n == "message_stop"));
}

#[tokio::test]
async fn chat_completions_served_by_the_anthropic_cloud() {
    let gw = start().await;
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&gw.key)
        .json(&json!({"model": "claude", "messages": [
            {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-anycloud-cloud"), "anthropic-us");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .starts_with("Hello from anthropic-us"));
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let sent = gw.anthropic.requests().pop().unwrap();
    assert_eq!(sent.body["system"], "Be brief.");
    assert_eq!(sent.body["max_tokens"], 4096);

    // Streamed, with usage and a tool call.
    let r = gw
        .http
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&gw.key)
        .json(&json!({"model": "claude", "stream": true, "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": tools()[0]["input_schema"]}}],
            "messages": [{"role": "user", "content": "Weather?"}]}))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let args: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "Oslo"})
    );
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}
