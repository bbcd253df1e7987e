//! OpenAI chat completions (JSON and SSE) served by a Vertex AI deployment, Gemini and
//! Claude (`rawPredict`): the gateway on port 0 over the Vertex emulator, with the
//! emulator's service-account key on disk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use serde_json::json;

struct Gateway {
    url: String,
    key: String,
    vertex: EmulatorHandle,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start() -> Gateway {
    let vertex = spawn_on_port(
        EmulatorConfig::vertex(
            "gcp-eu",
            "acme",
            "europe-west4",
            vec!["gemini-2.0-flash".into(), "claude-sonnet-4@20250514".into()],
        )
        .unwrap(),
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sa = dir.path().join("sa.json");
    std::fs::write(&sa, vertex.service_account_json().unwrap()).unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[store]
url = "sqlite://{db}"

[[clouds]]
name = "gcp-eu"
provider = "vertex"
base_url = "{base}"
project_id = "acme"
region = "europe-west4"
credentials_file = "{sa}"
jurisdiction = "eu"

[[models]]
name = "gemini-flash"
[[models.deployments]]
cloud = "gcp-eu"
target = "gemini-2.0-flash"
capabilities = ["chat", "stream", "tools", "vision", "json_schema"]

[[models]]
name = "claude-vertex"
[[models.deployments]]
cloud = "gcp-eu"
target = "claude-sonnet-4@20250514"
capabilities = ["chat", "stream", "tools"]

[[tenants]]
name = "team"
"#,
        db = dir.path().join("gw.db").display(),
        base = vertex.base_url(),
        sa = sa.display(),
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
    let (url, tx) = common::listen(state).await;
    Gateway {
        url,
        key: secrecy::ExposeSecret::expose_secret(&k).to_string(),
        vertex,
        http: reqwest::Client::new(),
        _dir: dir,
        _stop: tx,
    }
}

impl Gateway {
    async fn chat(&self, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// A chat completions stream's JSON chunks (checked to end with `[DONE]`) and the
/// text its deltas carry.
async fn sse_chunks(r: reqwest::Response) -> (Vec<serde_json::Value>, String) {
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let chunks: Vec<serde_json::Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let content = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (chunks, content)
}

#[tokio::test]
async fn openai_chat_json_through_vertex() {
    let gw = start().await;
    let r = gw
        .chat(json!({"model": "gemini-flash",
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "hello gemini"}]}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-anycloud-cloud"], "gcp-eu");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["model"], "gemini-flash");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from gcp-eu (gemini-2.0-flash). You said: hello gemini"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let sent = &gw.vertex.requests()[0];
    assert_eq!(
        sent.body["systemInstruction"]["parts"][0]["text"],
        "Be brief."
    );
}

#[tokio::test]
async fn openai_sse_and_tool_calls_through_vertex() {
    let gw = start().await;
    let r = gw
        .chat(json!({"model": "gemini-flash", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "stream it"}]}))
        .await;
    let (chunks, content) = sse_chunks(r).await;
    assert_eq!(
        content,
        "Hello from gcp-eu (gemini-2.0-flash). You said: stream it"
    );
    let usage = &chunks.last().unwrap()["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["completion_tokens"], 8);

    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "additionalProperties": false,
                       "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let r = gw
        .chat(json!({"model": "gemini-flash", "tools": tools,
            "messages": [{"role": "user", "content": "Weather in Oslo?"}]}))
        .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(call["function"]["arguments"], r#"{"city":"Oslo"}"#);
    let id = call["id"].as_str().unwrap();
    let r = gw
        .chat(json!({"model": "gemini-flash", "tools": tools,
            "messages": [{"role": "user", "content": "Weather in Oslo?"},
                         {"role": "assistant", "content": null, "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": id, "content": "{\"temp_c\":12}"}]}))
        .await;
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        r#"Tool result received from gcp-eu: {"temp_c":12}"#
    );
}

#[tokio::test]
async fn claude_on_vertex_json_and_stream_through_raw_predict() {
    let gw = start().await;
    let r = gw
        .chat(json!({"model": "claude-vertex", "max_tokens": 300,
            "messages": [{"role": "system", "content": "Be brief."},
                         {"role": "user", "content": "hello claude"}]}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-anycloud-cloud"], "gcp-eu");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["model"], "claude-vertex");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Hello from gcp-eu (claude-sonnet-4@20250514). You said: hello claude"
    );
    assert_eq!(v["usage"]["completion_tokens"], 8);
    let sent = &gw.vertex.requests()[0];
    assert_eq!(
        sent.path,
        "/v1/projects/acme/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    );
    assert_eq!(sent.body["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(sent.body["system"], "Be brief.");
    assert_eq!(sent.body["max_tokens"], 300);
    assert!(sent.body.get("model").is_none(), "{}", sent.body);
    assert!(sent.header("authorization").unwrap().starts_with("Bearer "));

    let r = gw
        .chat(json!({"model": "claude-vertex", "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "stream it"}]}))
        .await;
    let (chunks, content) = sse_chunks(r).await;
    assert_eq!(
        content,
        "Hello from gcp-eu (claude-sonnet-4@20250514). You said: stream it"
    );
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 8);
    assert!(gw.vertex.requests()[1]
        .path
        .ends_with("/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict"));
}
