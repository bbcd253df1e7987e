//! The `vertex` provider against the Vertex emulator: OAuth JWT-grant tokens (cached,
//! refreshed, forged ones refused), Gemini chat / stream / tools / images / json_schema,
//! Google-shape errors, embeddings, and the Gemini Developer API key variant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use anycloud_providers::{build_provider, CallCtx, Provider, ProviderErrorKind};
use anycloud_types::{
    ContentBlock, EmbeddingInput, EmbeddingsRequest, FinishReason, ImageSource, Message,
    ProviderKind, ResponseFormat, Role, StreamEvent,
};
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const PROJECT: &str = "acme-prod";
const REGION: &str = "europe-west4";
const MODEL: &str = "gemini-2.0-flash";
const EMBED: &str = "text-embedding-005";

struct Setup {
    h: EmulatorHandle,
    _dir: tempfile::TempDir,
    sa_path: String,
}

async fn setup_with(cfg: EmulatorConfig) -> Setup {
    let h = spawn_on_port(cfg, 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sa_path = dir.path().join("sa.json");
    std::fs::write(&sa_path, h.service_account_json().unwrap()).unwrap();
    Setup {
        h,
        _dir: dir,
        sa_path: sa_path.display().to_string(),
    }
}

fn config() -> EmulatorConfig {
    EmulatorConfig::vertex("gcp-eu", PROJECT, REGION, vec![MODEL.into(), EMBED.into()]).unwrap()
}

async fn setup() -> Setup {
    setup_with(config()).await
}

fn provider(s: &Setup) -> Arc<dyn Provider> {
    build_provider(&cloud(json!({"name": "gcp", "provider": "vertex",
        "base_url": s.h.base_url(), "project_id": PROJECT, "region": REGION,
        "credentials_file": s.sa_path})))
    .unwrap()
}

fn ctx() -> CallCtx {
    CallCtx::default()
}

fn bearer(h: &EmulatorHandle, i: usize) -> String {
    h.requests()[i].header("authorization").unwrap().to_string()
}

#[tokio::test]
async fn chat_goes_to_the_project_location_url_with_an_oauth_token() {
    let s = setup().await;
    let p = provider(&s);
    assert_eq!(p.kind(), ProviderKind::Vertex);
    let mut req = chat(vec![
        Message {
            role: Role::System,
            content: vec![ContentBlock::text("Be brief.")],
            name: None,
        },
        user("hello vertex"),
    ]);
    req.params.temperature = Some(0.3);
    let r = p.chat(MODEL, &req, &ctx()).await.unwrap();
    assert_eq!(
        r.text().unwrap(),
        format!("Hello from gcp-eu ({MODEL}). You said: hello vertex")
    );
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.model, format!("{MODEL}-001"));
    assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);

    let rec = &s.h.requests()[0];
    assert_eq!(
        rec.path,
        format!("/v1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/{MODEL}:generateContent")
    );
    assert!(bearer(&s.h, 0).starts_with("Bearer ya29.emu-"));
    assert_eq!(
        rec.body["systemInstruction"]["parts"][0]["text"],
        "Be brief."
    );
    assert_eq!(rec.body["generationConfig"]["temperature"], 0.3);

    // The token is fetched once and reused.
    p.chat(MODEL, &req, &ctx()).await.unwrap();
    assert_eq!(bearer(&s.h, 0), bearer(&s.h, 1));
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    // A 2 s token is refreshed after 1 s (halfway for short-lived tokens).
    let s = setup_with(config().with_token_lifetime(2)).await;
    let p = provider(&s);
    let req = chat(vec![user("hi")]);
    p.chat(MODEL, &req, &ctx()).await.unwrap();
    p.chat(MODEL, &req, &ctx()).await.unwrap();
    assert_eq!(bearer(&s.h, 0), bearer(&s.h, 1));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    p.chat(MODEL, &req, &ctx()).await.unwrap();
    assert_ne!(bearer(&s.h, 1), bearer(&s.h, 2));
}

#[tokio::test]
async fn tokens_the_emulator_did_not_issue_are_refused() {
    let s = setup().await;
    let url = format!(
        "{}/v1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/{MODEL}:generateContent",
        s.h.base_url()
    );
    let body = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth("ya29.forged")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    // An API key is no credential on Vertex URLs.
    let resp = reqwest::Client::new()
        .post(&url)
        .header("x-goog-api-key", &s.h.config().api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_jwt_signed_with_the_wrong_key_gets_no_token() {
    let s = setup().await;
    // Another emulator's service account (another key), but this emulator's token_uri.
    let other = config();
    let mut sa: serde_json::Value =
        serde_json::from_str(&s.h.service_account_json().unwrap()).unwrap();
    sa["private_key"] = json!(other.vertex.unwrap().private_key_pem);
    std::fs::write(&s.sa_path, sa.to_string()).unwrap();
    let e = provider(&s)
        .chat(MODEL, &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Upstream);
    assert!(e.message.contains("Invalid JWT Signature"), "{}", e.message);
    assert!(e.is_retryable(), "bad credentials fail over");
    assert_eq!(s.h.request_count(), 0, "no model call without a token");
}

#[tokio::test]
async fn stream_reports_usage_from_the_last_chunk() {
    let s = setup().await;
    let events = provider(&s)
        .chat_stream(MODEL, &chat(vec![user("stream me please")]), &ctx())
        .await
        .unwrap();
    let (events, err) = drain(events).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        streamed_text(&events),
        format!("Hello from gcp-eu ({MODEL}). You said: stream me please")
    );
    assert!(matches!(events[0], StreamEvent::Start { .. }));
    let text_chunks = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
        .count();
    assert!(text_chunks > 3, "arrived in pieces");
    let usages: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Usage(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(usages.len(), 1);
    assert!(usages[0].input_tokens > 0);
    assert_eq!(usages[0].output_tokens, 9, "one token a word");
    assert!(s.h.requests()[0]
        .path
        .ends_with(":streamGenerateContent?alt=sse"));
}

#[tokio::test]
async fn tool_round_trip_over_two_turns() {
    let s = setup().await;
    let p = provider(&s);
    let mut req = chat(vec![user("Weather in Oslo?")]);
    req.tools = vec![weather_tool()];
    let r = p.chat(MODEL, &req, &ctx()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    let ContentBlock::ToolUse {
        id,
        name,
        arguments,
    } = r.content[0].clone()
    else {
        panic!("{:?}", r.content)
    };
    assert_eq!(name, "get_weather");
    assert_eq!(arguments, r#"{"city":"Oslo"}"#);
    assert!(
        s.h.requests()[0].body["tools"][0]["functionDeclarations"][0]["parameters"]
            .get("additionalProperties")
            .is_none()
    );

    req.messages.push(Message {
        role: Role::Assistant,
        content: vec![ContentBlock::ToolUse {
            id: id.clone(),
            name,
            arguments,
        }],
        name: None,
    });
    req.messages.push(Message {
        role: Role::Tool,
        content: vec![ContentBlock::ToolResult {
            tool_use_id: id,
            content: vec![ContentBlock::text("12 C and cloudy")],
            is_error: false,
        }],
        name: None,
    });
    let r = p.chat(MODEL, &req, &ctx()).await.unwrap();
    assert_eq!(
        r.text().unwrap(),
        r#"Tool result received from gcp-eu: {"result":"12 C and cloudy"}"#
    );
    let sent = &s.h.requests()[1].body;
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"],
        json!({"name": "get_weather", "response": {"result": "12 C and cloudy"}})
    );

    // Streamed, the whole call comes as a start plus one delta with all arguments.
    req.messages.truncate(1);
    let (events, err) = drain(p.chat_stream(MODEL, &req, &ctx()).await.unwrap()).await;
    assert!(err.is_none());
    assert!(events.iter().any(|e| matches!(e, StreamEvent::ToolCallDelta { index: 0, arguments } if arguments == r#"{"city":"Oslo"}"#)));
    assert!(events.contains(&StreamEvent::Finish {
        reason: FinishReason::ToolCalls
    }));
}

#[tokio::test]
async fn inline_images_and_json_schema() {
    let s = setup().await;
    let p = provider(&s);
    let mut req = chat(vec![Message {
        role: Role::User,
        content: vec![
            ContentBlock::text("what is in it?"),
            ContentBlock::Image {
                source: ImageSource::from_url_or_data("data:image/png;base64,iVBORw0KGgo="),
                detail: None,
            },
        ],
        name: None,
    }]);
    req.response_format = Some(ResponseFormat::JsonSchema {
        name: "a".into(),
        schema: json!({"type": "object", "additionalProperties": false,
                       "properties": {"answer": {"type": "string"}}, "required": ["answer"]}),
        strict: Some(true),
        description: None,
    });
    let r = p.chat(MODEL, &req, &ctx()).await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.text().unwrap()).unwrap();
    assert_eq!(v["cloud"], "gcp-eu");
    let sent = &s.h.requests()[0].body;
    assert_eq!(
        sent["contents"][0]["parts"][1]["inlineData"],
        json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
    );
    assert_eq!(
        sent["generationConfig"]["responseMimeType"],
        "application/json"
    );
}

#[tokio::test]
async fn google_errors_are_classified() {
    let s = setup().await;
    let p = provider(&s);
    let req = chat(vec![user("hi")]);
    s.h.faults().fail_next(1, 429, Some(7));
    let e = p.chat(MODEL, &req, &ctx()).await.unwrap_err();
    assert_eq!(e.status, Some(429));
    assert!(e.is_retryable());
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
    assert!(e.message.starts_with("RESOURCE_EXHAUSTED"), "{}", e.message);

    // A temperature Vertex rejects: INVALID_ARGUMENT is the client's error.
    let mut bad = req.clone();
    bad.params.temperature = Some(5.0);
    let e = p.chat(MODEL, &bad, &ctx()).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    assert!(!e.is_retryable());

    // An unknown model is NOT_FOUND: fail over.
    let e = p.chat("gemini-9", &req, &ctx()).await.unwrap_err();
    assert_eq!(e.status, Some(404));
    assert!(e.is_retryable());
}

#[tokio::test]
async fn embeddings_use_predict() {
    let s = setup().await;
    let req = EmbeddingsRequest {
        model: "e".into(),
        inputs: vec![
            EmbeddingInput::Text("one two".into()),
            EmbeddingInput::Text("three".into()),
        ],
        dimensions: Some(8),
        user: None,
    };
    let r = provider(&s).embed(EMBED, &req, &ctx()).await.unwrap();
    assert_eq!(r.vectors.len(), 2);
    assert_eq!(r.vectors[0].len(), 8);
    assert_ne!(r.vectors[0], r.vectors[1]);
    assert_eq!(r.usage.input_tokens, 4);
    assert!(s.h.requests()[0]
        .path
        .ends_with(&format!("/models/{EMBED}:predict")));
}

#[tokio::test]
async fn gemini_api_key_variant() {
    let s = setup().await;
    let key = s.h.config().api_key.clone();
    let p = build_provider(&cloud(json!({"name": "gemini", "provider": "vertex",
        "base_url": s.h.base_url(), "api_key": key})))
    .unwrap();
    let r = p
        .chat(MODEL, &chat(vec![user("hi there")]), &ctx())
        .await
        .unwrap();
    assert!(r.text().unwrap().ends_with("You said: hi there"));
    let rec = &s.h.requests()[0];
    assert_eq!(rec.path, format!("/v1beta/models/{MODEL}:generateContent"));
    assert_eq!(rec.header("x-goog-api-key"), Some(key.as_str()));
    assert!(!rec.path.contains("key="), "the key stays out of the URL");
    let (events, err) = drain(
        p.chat_stream(MODEL, &chat(vec![user("hi")]), &ctx())
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert!(events.iter().any(|e| matches!(e, StreamEvent::Usage(_))));
    let req = EmbeddingsRequest {
        model: "e".into(),
        inputs: vec![EmbeddingInput::Text("x".into())],
        dimensions: None,
        user: None,
    };
    assert_eq!(p.embed(EMBED, &req, &ctx()).await.unwrap().vectors.len(), 1);

    let wrong = build_provider(&cloud(json!({"name": "gemini", "provider": "vertex",
        "base_url": s.h.base_url(), "api_key": "AIza-wrong"})))
    .unwrap();
    let e = wrong
        .chat(MODEL, &chat(vec![user("hi")]), &ctx())
        .await
        .unwrap_err();
    assert!(e.message.contains("API key not valid"), "{}", e.message);
    assert!(!e.message.contains("AIza-wrong"));
    assert!(e.is_retryable(), "a bad key fails over");
}

/// Claude on Vertex: the emulator's `rawPredict` / `streamRawPredict` with a token from
/// the public `TokenSource` (the Claude provider will reuse both).
#[tokio::test]
async fn claude_raw_predict_with_the_shared_token_source() {
    use anycloud_providers::http::HttpClient;
    use anycloud_providers::vertex::auth::{ServiceAccount, TokenSource};
    use anycloud_providers::vertex::VertexEndpoint;
    let cfg = EmulatorConfig::vertex(
        "gcp-eu",
        PROJECT,
        REGION,
        vec!["claude-sonnet-4-5@20250929".into()],
    )
    .unwrap();
    let s = setup_with(cfg).await;
    let c = cloud(
        json!({"name": "gcp", "provider": "vertex", "project_id": PROJECT, "region": REGION}),
    );
    let src = TokenSource::new(
        ServiceAccount::from_file(&s.sa_path).unwrap(),
        HttpClient::new(&c).unwrap(),
    );
    let token = src.token().await.unwrap();
    let ep = VertexEndpoint::vertex(Some(&s.h.base_url()), PROJECT, REGION, "gcp").unwrap();
    let url = ep.model_url("anthropic", "claude-sonnet-4-5@20250929", "rawPredict");
    let body = json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi claude"}]});
    let http = reqwest::Client::new();
    let v: serde_json::Value = http
        .post(url.clone())
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["content"][0]["text"]
        .as_str()
        .unwrap()
        .ends_with("You said: hi claude"));
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);

    // `model` in the body or a missing anthropic_version: Anthropic-shape 400s.
    let mut with_model = body.clone();
    with_model["model"] = json!("claude");
    let resp = http
        .post(url.clone())
        .bearer_auth(&token)
        .json(&with_model)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let mut no_version = body.clone();
    no_version
        .as_object_mut()
        .unwrap()
        .remove("anthropic_version");
    let resp = http
        .post(url)
        .bearer_auth(&token)
        .json(&no_version)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let mut stream = body.clone();
    stream["stream"] = json!(true);
    let url = ep.model_url(
        "anthropic",
        "claude-sonnet-4-5@20250929",
        "streamRawPredict",
    );
    let text = http
        .post(url)
        .bearer_auth(&token)
        .json(&stream)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert!(names.contains(&"content_block_delta") && names.contains(&"message_delta"));
    assert!(text.contains(r#""type":"message_delta""#));
}

/// Trap 13: Vertex rejects `id` on functionCall / functionResponse; the Developer API
/// accepts it. A functionResponse without a name is rejected too.
#[tokio::test]
async fn vertex_rejects_function_ids_the_developer_api_accepts() {
    let s = setup().await;
    let c = cloud(
        json!({"name": "gcp", "provider": "vertex", "project_id": PROJECT, "region": REGION}),
    );
    let src = anycloud_providers::vertex::auth::TokenSource::new(
        anycloud_providers::vertex::auth::ServiceAccount::from_file(&s.sa_path).unwrap(),
        anycloud_providers::http::HttpClient::new(&c).unwrap(),
    );
    let token = src.token().await.unwrap();
    let body = json!({"contents": [
        {"role": "user", "parts": [{"text": "Weather?"}]},
        {"role": "model", "parts": [{"functionCall": {"id": "c1", "name": "get_weather", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"id": "c1", "name": "get_weather", "response": {"t": 1}}}]}]});
    let http = reqwest::Client::new();
    let vertex_url = format!(
        "{}/v1/projects/{PROJECT}/locations/{REGION}/publishers/google/models/{MODEL}:generateContent",
        s.h.base_url()
    );
    let resp = http
        .post(&vertex_url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Unknown name \"id\""));

    let dev_url = format!("{}/v1beta/models/{MODEL}:generateContent", s.h.base_url());
    let resp = http
        .post(&dev_url)
        .header("x-goog-api-key", &s.h.config().api_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let mut nameless = body.clone();
    nameless["contents"][1]["parts"][0]["functionCall"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    nameless["contents"][2]["parts"][0]["functionResponse"] = json!({"response": {"t": 1}});
    let resp = http
        .post(&vertex_url)
        .bearer_auth(&token)
        .json(&nameless)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Wrong project: PERMISSION_DENIED.
    let other = vertex_url.replace(PROJECT, "someone-else");
    let resp = http
        .post(&other)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn claude_deployments_go_through_the_provider_to_raw_predict() {
    const CLAUDE: &str = "claude-sonnet-4@20250514";
    let cfg = EmulatorConfig::vertex("gcp-eu", PROJECT, REGION, vec![CLAUDE.into()]).unwrap();
    let s = setup_with(cfg).await;
    let p = provider(&s);

    let r = p
        .chat(CLAUDE, &chat(vec![user("hi claude")]), &ctx())
        .await
        .unwrap();
    assert_eq!(
        r.text().unwrap(),
        format!("Hello from gcp-eu ({CLAUDE}). You said: hi claude")
    );
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.usage.output_tokens, 8);
    let sent = &s.h.requests()[0];
    assert!(sent
        .path
        .ends_with(&format!("/publishers/anthropic/models/{CLAUDE}:rawPredict")));
    assert!(bearer(&s.h, 0).starts_with("Bearer ya29.emu-"));

    // Streams: Anthropic's events through the shared decoder, usage at the end.
    let mut req = chat(vec![user("stream claude")]);
    req.stream = true;
    let (events, err) = drain(p.chat_stream(CLAUDE, &req, &ctx()).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        streamed_text(&events),
        format!("Hello from gcp-eu ({CLAUDE}). You said: stream claude")
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, StreamEvent::Usage(u) if u.output_tokens == 8)));

    // Tools: a tool_use answer becomes a canonical tool call.
    let mut req = chat(vec![user("Weather in Oslo?")]);
    req.tools = vec![weather_tool()];
    let r = p.chat(CLAUDE, &req, &ctx()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);

    // The same token source, the same failover rules.
    s.h.faults().fail_next(1, 429, Some(3));
    let e = p
        .chat(CLAUDE, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(429));
    assert!(e.is_retryable());
}

#[tokio::test]
async fn claude_needs_vertex_not_the_gemini_api_key() {
    let s = setup().await;
    let p = build_provider(&cloud(json!({"name": "gemini-api", "provider": "vertex",
        "base_url": s.h.base_url(), "api_key": "k"})))
    .unwrap();
    let e = p
        .chat("claude-sonnet-4@20250514", &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Unsupported);
    assert!(
        e.message.contains("Claude models need Vertex AI"),
        "{}",
        e.message
    );
    assert!(s.h.requests().is_empty());
}
