//! The `openai_compatible` provider against the OpenAI-compatible emulator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use anycloud_providers::{build_provider, CallCtx, Provider, ProviderErrorKind};
use anycloud_types::{
    ContentBlock, EmbeddingInput, EmbeddingsRequest, FinishReason, Message, Role, StreamEvent,
};
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const TARGET: &str = "llama-3.1-8b";
const KEY: &str = "sk-emu-123";

async fn setup_with(extra: serde_json::Value) -> (EmulatorHandle, Arc<dyn Provider>) {
    let h = spawn_on_port(
        EmulatorConfig::openai_compatible("emu", KEY, vec![TARGET.into(), "embed-small".into()]),
        0,
    )
    .await
    .unwrap();
    let mut cfg = json!({"name": "local", "provider": "openai_compatible",
        "base_url": h.base_url(), "api_key": KEY});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let p = build_provider(&cloud(cfg)).unwrap();
    (h, p)
}

async fn setup() -> (EmulatorHandle, Arc<dyn Provider>) {
    setup_with(json!({})).await
}

fn ctx() -> CallCtx {
    CallCtx {
        request_id: "req-42".into(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    }
}

#[tokio::test]
async fn chat_sends_target_and_headers_and_parses_the_reply() {
    let (h, p) = setup().await;
    let mut req = chat(vec![user("hi there")]);
    req.params.max_tokens = Some(50);
    let r = p.chat(TARGET, &req, &ctx()).await.unwrap();
    assert_eq!(
        r.text().as_deref(),
        Some(format!("Hello from emu ({TARGET}). You said: hi there").as_str())
    );
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
    assert!(!r.id.is_empty());

    let rec = h.requests();
    assert_eq!(rec.len(), 1);
    let rec = &rec[0];
    assert_eq!(rec.method, "POST");
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(
        rec.body["model"], TARGET,
        "the public name must not go upstream"
    );
    assert_eq!(
        rec.body["max_tokens"], 50,
        "openai_compatible sends max_tokens"
    );
    assert!(rec.body.get("max_completion_tokens").is_none());
    assert!(rec.body.get("stream").is_none());
    assert_eq!(
        rec.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(rec.header("x-client-request-id"), Some("req-42"));
    assert_eq!(
        rec.header("traceparent"),
        Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    );
}

#[tokio::test]
async fn stream_yields_start_text_finish_and_usage() {
    let (h, p) = setup().await;
    // The client did not ask to stream usage; the provider asks anyway.
    let req = chat(vec![user("stream me")]);
    let s = p.chat_stream(TARGET, &req, &ctx()).await.unwrap();
    let (events, err) = drain(s).await;
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(&events[0], StreamEvent::Start { id, .. } if !id.is_empty()));
    assert_eq!(
        streamed_text(&events),
        format!("Hello from emu ({TARGET}). You said: stream me")
    );
    let finish_at = events
        .iter()
        .position(|e| {
            *e == StreamEvent::Finish {
                reason: FinishReason::Stop,
            }
        })
        .expect("a Finish event");
    let StreamEvent::Usage(u) = events.last().unwrap() else {
        panic!("usage last, got {events:?}");
    };
    assert!(finish_at < events.len() - 1);
    assert!(u.input_tokens > 0 && u.output_tokens > 0);

    let body = &h.requests()[0].body;
    assert_eq!(body["model"], TARGET);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn tools_round_trip_non_streaming_and_streaming() {
    let (_h, p) = setup().await;
    let mut req = chat(vec![user("weather in Oslo?")]);
    req.tools = vec![weather_tool()];
    let r = p.chat(TARGET, &req, &ctx()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    let Some(ContentBlock::ToolUse {
        id,
        name,
        arguments,
    }) = r
        .content
        .iter()
        .find(|b| matches!(b, ContentBlock::ToolUse { .. }))
        .cloned()
    else {
        panic!("expected a tool call, got {:?}", r.content);
    };
    assert_eq!(name, "get_weather");
    let args: serde_json::Value = serde_json::from_str(&arguments).unwrap();
    assert!(args["city"].is_string(), "{arguments}");

    // The same request streamed assembles the same call.
    let (events, err) = drain(p.chat_stream(TARGET, &req, &ctx()).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let streamed_args: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments,
            } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert!(events.contains(&StreamEvent::ToolCallStart {
        index: 0,
        id: id.clone(),
        name: "get_weather".into()
    }));
    assert_eq!(streamed_args, arguments);
    assert!(events.contains(&StreamEvent::Finish {
        reason: FinishReason::ToolCalls
    }));

    // Send the result back: the emulator acknowledges the tool result.
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
            content: vec![ContentBlock::text("sunny, 21C")],
            is_error: false,
        }],
        name: None,
    });
    let r = p.chat(TARGET, &req, &ctx()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(
        r.text().as_deref(),
        Some("Tool result received from emu: sunny, 21C")
    );
}

#[tokio::test]
async fn embeddings_decode_base64_to_the_float_vectors() {
    let (h, p) = setup().await;
    let req = EmbeddingsRequest {
        model: "public-embed".into(),
        inputs: vec![
            EmbeddingInput::Text("alpha".into()),
            EmbeddingInput::Text("beta".into()),
        ],
        dimensions: None,
        user: None,
    };
    let r = p.embed("embed-small", &req, &ctx()).await.unwrap();
    assert_eq!(r.vectors.len(), 2);
    assert!(!r.vectors[0].is_empty());
    assert_ne!(r.vectors[0], r.vectors[1]);
    assert!(r.usage.input_tokens > 0);

    let rec = &h.requests()[0];
    assert_eq!(rec.path, "/v1/embeddings");
    assert_eq!(rec.body["model"], "embed-small");
    assert_eq!(rec.body["encoding_format"], "base64");

    // Ask the emulator directly for floats: the decoded vectors must match.
    let floats: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/embeddings", h.base_url()))
        .bearer_auth(KEY)
        .json(&json!({"model": "embed-small", "input": ["alpha", "beta"], "encoding_format": "float"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (i, v) in r.vectors.iter().enumerate() {
        let want: Vec<f32> =
            serde_json::from_value(floats["data"][i]["embedding"].clone()).unwrap();
        assert_eq!(*v, want);
    }
}

#[tokio::test]
async fn overload_with_retry_after_is_a_retryable_upstream_error() {
    let (h, p) = setup().await;
    h.faults().fail_next(1, 503, Some(2));
    let e = p
        .chat(TARGET, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Upstream);
    assert_eq!(e.status, Some(503));
    assert!(e.is_retryable());
    assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
    assert!(e.message.contains("overloaded"), "{}", e.message);
    assert!(!e.message.contains(KEY));
    // The fault was one-shot.
    assert!(p.chat(TARGET, &chat(vec![user("x")]), &ctx()).await.is_ok());

    // Streams fail before the first byte the same way.
    h.faults().fail_next(1, 429, Some(1));
    let e = p
        .chat_stream(TARGET, &chat(vec![user("x")]), &ctx())
        .await
        .err()
        .unwrap();
    assert_eq!((e.kind, e.status), (ProviderErrorKind::Upstream, Some(429)));
    assert_eq!(e.retry_after, Some(Duration::from_secs(1)));
}

#[tokio::test]
async fn client_errors_and_credential_errors_are_classified() {
    let (_h, p) = setup().await;
    let e = p
        .chat("no-such-model", &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!((e.kind, e.status), (ProviderErrorKind::Upstream, Some(404)));
    assert!(e.is_retryable(), "a missing deployment fails over");

    let (h, _) = setup().await;
    let bad = build_provider(&cloud(json!({"name": "l", "provider": "openai_compatible",
        "base_url": h.base_url(), "api_key": "sk-wrong"})))
    .unwrap();
    let e = bad
        .chat(TARGET, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(401));
    assert!(!e.message.contains("sk-wrong"), "{}", e.message);
}

#[tokio::test]
async fn first_byte_timeout() {
    let (h, p) = setup_with(json!({"first_byte_timeout_ms": 200})).await;
    h.faults().set_latency(Duration::from_secs(3));
    let started = std::time::Instant::now();
    let e = p
        .chat(TARGET, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Timeout);
    assert!(e.is_retryable());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "gave up at the timeout"
    );
    let e = p
        .chat_stream(TARGET, &chat(vec![user("x")]), &ctx())
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, ProviderErrorKind::Timeout);
}

#[tokio::test]
async fn idle_timeout_between_chunks() {
    let (h, p) = setup_with(json!({"idle_timeout_ms": 200})).await;
    h.faults().set_chunk_delay(Duration::from_secs(2));
    let s = p
        .chat_stream(TARGET, &chat(vec![user("a b c")]), &ctx())
        .await
        .unwrap();
    let (_, err) = drain(s).await;
    assert_eq!(err.unwrap().kind, ProviderErrorKind::Timeout);
}

#[tokio::test]
async fn refused_connections_are_connect_errors() {
    let (h, p) = setup().await;
    h.faults().refuse_connections(true);
    let e = p
        .chat(TARGET, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Connect, "{e:?}");
    assert!(e.is_retryable());

    // And a port nobody listens on.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let p = build_provider(&cloud(
        json!({"name": "gone", "provider": "openai_compatible",
        "base_url": format!("http://127.0.0.1:{port}/v1")}),
    ))
    .unwrap();
    let e = p
        .chat(TARGET, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Connect, "{e:?}");
    assert!(
        !e.message.contains("127.0.0.1"),
        "no URL in messages: {}",
        e.message
    );
}

#[tokio::test]
async fn a_cut_stream_ends_with_a_protocol_error() {
    let (h, p) = setup().await;
    h.faults().cut_stream_after(2);
    let s = p
        .chat_stream(TARGET, &chat(vec![user("one two three four five")]), &ctx())
        .await
        .unwrap();
    let (events, err) = drain(s).await;
    let err = err.expect("the cut must surface as an error");
    assert_eq!(err.kind, ProviderErrorKind::Protocol, "{err:?}");
    assert!(err.is_retryable());
    assert!(!events
        .iter()
        .any(|e| matches!(e, StreamEvent::Finish { .. })));
    assert!(!events.iter().any(|e| matches!(e, StreamEvent::Usage(_))));
}
