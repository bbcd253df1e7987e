//! OpenAI-shaped client requests routed to a Bedrock deployment: the gateway signs
//! with SigV4, speaks Converse/ConverseStream to the strict Bedrock emulator, and
//! answers in OpenAI JSON and SSE with usage. Failover off a throttled Bedrock too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use serde_json::{json, Value};
use std::sync::Arc;

const MODEL_ID: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

/// A gateway on port 0 with one Bedrock cloud (`aws-eu`) and an OpenAI-compatible
/// fallback (`local-openai`) for `claude-sonnet`.
struct Gateway {
    url: String,
    key: String,
    bedrock: EmulatorHandle,
    local: EmulatorHandle,
    http: reqwest::Client,
    _state: Arc<anycloud_server::AppState>,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Gateway {
    let bedrock = spawn_on_port(
        EmulatorConfig::bedrock(
            "aws-eu",
            "AKIDGATEWAYTEST",
            "gw-secret",
            vec![MODEL_ID.into()],
        )
        .with_region("eu-west-1"),
        0,
    )
    .await
    .unwrap();
    let local = spawn_on_port(
        EmulatorConfig::openai_compatible("local-openai", "local-key", vec!["gpt-4o".into()]),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[store]
url = "sqlite://{db}"

[[clouds]]
name = "aws-eu"
provider = "bedrock"
base_url = "{bedrock}"
region = "eu-west-1"
jurisdiction = "eu"
access_key_id = "AKIDGATEWAYTEST"
secret_access_key = "gw-secret"

[[clouds]]
name = "local-openai"
provider = "openai_compatible"
base_url = "{local}"
api_key = "local-key"
jurisdiction = "eu"

[[models]]
name = "claude-sonnet"
[[models.deployments]]
cloud = "aws-eu"
target = "{MODEL_ID}"
capabilities = ["chat", "stream", "tools"]
[[models.deployments]]
cloud = "local-openai"
target = "gpt-4o"
capabilities = ["chat", "stream", "tools"]

[[tenants]]
name = "team"
"#,
        db = dir.path().join("gw.db").display(),
        bedrock = bedrock.base_url(),
        local = local.base_url(),
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
    let (url, tx) = common::listen(state.clone()).await;
    Gateway {
        url,
        key: secrecy::ExposeSecret::expose_secret(&k).to_string(),
        bedrock,
        local,
        http: reqwest::Client::new(),
        _state: state,
        _dir: dir,
        _stop: tx,
    }
}

impl Gateway {
    async fn chat(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn openai_chat_is_served_by_bedrock() {
    let g = start().await;
    let r = g
        .chat(json!({"model": "claude-sonnet", "max_tokens": 50,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello Bedrock!"}]}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-anycloud-cloud"), "aws-eu");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "claude-sonnet");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("Hello from aws-eu ({MODEL_ID}). You said: Hello Bedrock!")
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(v["usage"]["completion_tokens"], 8);
    let rec = &g.bedrock.requests()[0];
    assert_eq!(
        rec.path,
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    assert_eq!(rec.body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(g.local.request_count(), 0);
}

#[tokio::test]
async fn openai_stream_from_bedrock_carries_usage() {
    let g = start().await;
    let r = g
        .chat(json!({"model": "claude-sonnet", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Stream it"}]}))
        .await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/event-stream"));
    let body = r.text().await.unwrap();
    let chunks: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text,
        format!("Hello from aws-eu ({MODEL_ID}). You said: Stream it")
    );
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("usage chunk");
    assert!(usage["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["usage"]["completion_tokens"], 8);
}

#[tokio::test]
async fn throttled_bedrock_fails_over() {
    let g = start().await;
    g.bedrock.faults().fail_next(1, 429, None);
    let r = g
        .chat(json!({"model": "claude-sonnet", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-anycloud-cloud"), "local-openai");
    assert_eq!(g.bedrock.request_count(), 1);
}
