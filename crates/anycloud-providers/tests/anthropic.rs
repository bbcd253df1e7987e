//! The `anthropic` provider against the strict Anthropic emulator: headers,
//! chat, streams with split usage, tool round trips with streamed input,
//! images, and the error classes (529/429 retryable, in-stream overload,
//! 400 invalid).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use anycloud_emulators::{spawn_on_port, EmulatorConfig, EmulatorHandle};
use anycloud_providers::{build_provider, CallCtx, Provider, ProviderErrorKind};
use anycloud_types::{
    ContentBlock, FinishReason, ImageSource, Message, ProviderKind, Role, StreamEvent,
};
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const MODEL: &str = "claude-sonnet-4-20250514";
const KEY: &str = "sk-ant-emulated-key";

async fn emulator() -> EmulatorHandle {
    spawn_on_port(
        EmulatorConfig::anthropic("anthropic-us", KEY, vec![MODEL.into()]),
        0,
    )
    .await
    .unwrap()
}

fn provider(h: &EmulatorHandle, key: &str) -> Arc<dyn Provider> {
    build_provider(&cloud(
        json!({"name": "anthropic-us", "provider": "anthropic",
        "base_url": h.base_url(), "api_key": key}),
    ))
    .unwrap()
}

fn ctx() -> CallCtx {
    CallCtx {
        request_id: "req-an".into(),
        traceparent: None,
    }
}

#[tokio::test]
async fn chat_sends_anthropic_headers_and_maps_the_reply() {
    let h = emulator().await;
    let p = provider(&h, KEY);
    assert_eq!(p.kind(), ProviderKind::Anthropic);
    let mut req = chat(vec![
        Message {
            role: Role::System,
            content: vec![ContentBlock::text("Be brief.")],
            name: None,
        },
        user("hello claude"),
    ]);
    req.user = Some("u-1".into());
    let r = p.chat(MODEL, &req, &ctx()).await.unwrap();
    assert_eq!(
        r.text().unwrap(),
        format!("Hello from anthropic-us ({MODEL}). You said: hello claude")
    );
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0);
    let sent = h.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert!(sent.header("authorization").is_none());
    assert_eq!(sent.body["model"], MODEL);
    assert_eq!(sent.body["max_tokens"], 4096);
    assert_eq!(sent.body["system"], "Be brief.");
    assert_eq!(sent.body["metadata"]["user_id"], "u-1");
}

#[tokio::test]
async fn stream_reports_text_and_usage_from_message_start_and_delta() {
    let h = emulator().await;
    let p = provider(&h, KEY);
    let non_stream = p
        .chat(MODEL, &chat(vec![user("count me")]), &ctx())
        .await
        .unwrap();
    let mut req = chat(vec![user("count me")]);
    req.stream = true;
    let (events, err) = drain(p.chat_stream(MODEL, &req, &ctx()).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(&events[0], StreamEvent::Start { model, .. } if model == MODEL));
    assert_eq!(streamed_text(&events), non_stream.text().unwrap());
    let usages: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Usage(u) => Some(*u),
            _ => None,
        })
        .collect();
    // The prompt's count as message_start gives it, before any output…
    assert_eq!(usages[0].input_tokens, non_stream.usage.input_tokens);
    assert_eq!(usages[0].output_tokens, 0);
    // …and at the end the same numbers as the non-streamed call: input from
    // message_start, output the last cumulative value (not message_start's 1 added on).
    assert_eq!(usages.last(), Some(&non_stream.usage));
    assert_eq!(h.requests().last().unwrap().body["stream"], true);
}

#[tokio::test]
async fn tool_round_trip_with_streamed_input() {
    let h = emulator().await;
    let p = provider(&h, KEY);
    let mut req = chat(vec![user("Weather in Oslo?")]);
    req.tools = vec![weather_tool()];
    req.stream = true;
    let (events, err) = drain(p.chat_stream(MODEL, &req, &ctx()).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let (id, name) = events
        .iter()
        .find_map(|e| match e {
            StreamEvent::ToolCallStart { index: 0, id, name } => Some((id.clone(), name.clone())),
            _ => None,
        })
        .unwrap();
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments,
            } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        deltas.len() > 1,
        "input should arrive in pieces: {deltas:?}"
    );
    let args = deltas.concat();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&args).unwrap(),
        json!({"city": "Oslo"})
    );
    assert!(events.contains(&StreamEvent::Finish {
        reason: FinishReason::ToolCalls
    }));

    // Second turn: the call and its result go back; the emulator checks the
    // tool_result follows a tool_use with the same id.
    let mut req = chat(vec![
        user("Weather in Oslo?"),
        Message {
            role: Role::Assistant,
            content: vec![ContentBlock::ToolUse {
                id: id.clone(),
                name,
                arguments: args,
            }],
            name: None,
        },
        Message {
            role: Role::Tool,
            content: vec![ContentBlock::ToolResult {
                tool_use_id: id,
                content: vec![ContentBlock::text("12 C and clear")],
                is_error: false,
            }],
            name: None,
        },
    ]);
    req.tools = vec![weather_tool()];
    let r = p.chat(MODEL, &req, &ctx()).await.unwrap();
    assert_eq!(
        r.text().unwrap(),
        "Tool result received from anthropic-us: 12 C and clear"
    );
    let sent = h.requests().pop().unwrap();
    assert_eq!(
        sent.body["messages"][2]["content"][0]["type"],
        "tool_result"
    );
}

#[tokio::test]
async fn images_are_sent_as_base64_sources() {
    let h = emulator().await;
    let p = provider(&h, KEY);
    let req = chat(vec![Message {
        role: Role::User,
        content: vec![
            ContentBlock::text("What is this?"),
            ContentBlock::Image {
                source: ImageSource::from_url_or_data("data:image/png;base64,iVBORw0KGgo="),
                detail: None,
            },
        ],
        name: None,
    }]);
    p.chat(MODEL, &req, &ctx()).await.unwrap();
    let sent = h.requests().pop().unwrap();
    assert_eq!(
        sent.body["messages"][0]["content"][1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    );
}

#[tokio::test]
async fn emulator_rejects_a_bad_key_or_a_missing_version() {
    let h = emulator().await;
    let e = provider(&h, "wrong")
        .chat(MODEL, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(401));
    assert!(e.message.contains("x-api-key"), "{e}");

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v1/messages", h.base_url()))
        .header("x-api-key", KEY)
        .json(&json!({"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(
        v["error"]["message"],
        "anthropic-version: header is required"
    );
}

#[tokio::test]
async fn overloaded_and_rate_limited_are_retryable() {
    let h = emulator().await;
    let p = provider(&h, KEY);
    h.faults().fail_next(1, 529, None);
    let e = p
        .chat(MODEL, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!((e.status, e.is_retryable()), (Some(529), true));
    assert_eq!(e.message, "Overloaded");
    h.faults().fail_next(1, 429, Some(7));
    let e = p
        .chat(MODEL, &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!((e.status, e.is_retryable()), (Some(429), true));
    assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn overload_inside_a_200_stream_is_an_err() {
    let h = emulator().await;
    let p = provider(&h, KEY);
    h.faults().stream_error_after(4, "overloaded_error");
    let mut req = chat(vec![user("a longer message to stream")]);
    req.stream = true;
    let (events, err) = drain(p.chat_stream(MODEL, &req, &ctx()).await.unwrap()).await;
    let err = err.expect("the in-stream error must surface");
    assert_eq!(err.status, Some(529));
    assert!(err.is_retryable());
    assert!(!events
        .iter()
        .any(|e| matches!(e, StreamEvent::Finish { .. })));
}

#[tokio::test]
async fn invalid_requests_are_the_clients_fault() {
    let h = emulator().await;
    let p = provider(&h, KEY);
    let mut req = chat(vec![user("x")]);
    req.params.temperature = Some(1.7);
    let e = p.chat(MODEL, &req, &ctx()).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::InvalidRequest);
    assert_eq!(e.status, Some(400));
    assert!(e.message.contains("temperature"), "{e}");
    assert!(!e.is_retryable());
    // Unknown model: 404 not_found_error, which fails over.
    let e = p
        .chat("claude-nope", &chat(vec![user("x")]), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.status, Some(404));
}
